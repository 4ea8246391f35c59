/**
 * Exclude and include patterns (docs in README, "Patterns"), shell globs as restic users know them:
 * - a pattern without "/" matches an entry's name anywhere in the tree (`*.tmp`, `node_modules`);
 * - a pattern with "/" matches the entry's whole path (`/home/*\/.cache`, `**\/build/*.o`);
 *   a pattern not starting with "/" or "**" is anchored anywhere (`src/*.o` matches `/x/src/a.o`).
 * A directory that matches is skipped with everything in it. Dotfiles match like any other name.
 *
 * A pattern that is not a well-formed glob is refused (InvalidPatternError), never guessed at:
 * picomatch reads an unclosed "[" as a literal and turns an unclosed "{" or a reversed range
 * "[z-a]" into a pattern that matches nothing, so a typo would silently exclude nothing (or
 * restore nothing).
 */
import picomatch from 'picomatch';

export type PathMatcher = (path: string, name: string) => boolean;

/** A PathMatcher that also says whether it looks at names only (no pattern has a "/"): then a match depends on the name alone. */
export type CompiledPatterns = PathMatcher & { readonly byNameOnly: boolean };

export class InvalidPatternError extends Error {
  constructor(
    readonly pattern: string,
    problem: string,
    /** Where the pattern came from, e.g. "/etc/bh/excludes:3". */
    readonly where?: string,
  ) {
    super(`invalid pattern '${pattern}'${where ? ` at ${where}` : ''}: ${problem}`);
    this.name = 'InvalidPatternError';
  }
}

export function compilePatterns(patterns: readonly string[]): CompiledPatterns {
  const byName: picomatch.Matcher[] = [];
  const byPath: picomatch.Matcher[] = [];
  for (const raw of patterns) {
    const pattern = raw.trim();
    if (pattern === '') continue;
    checkPattern(pattern);
    const trimmed = pattern.length > 1 && pattern.endsWith('/') ? pattern.slice(0, -1) : pattern;
    if (!trimmed.includes('/')) byName.push(picomatch(trimmed, { dot: true }));
    else byPath.push(picomatch(trimmed.startsWith('/') || trimmed.startsWith('**') ? trimmed : `**/${trimmed}`, { dot: true }));
  }
  const matcher: PathMatcher = byName.length + byPath.length === 0 ? () => false : (path, name) => byName.some((m) => m(name)) || byPath.some((m) => m(path));
  return Object.assign(matcher, { byNameOnly: byPath.length === 0 });
}

/** Throws InvalidPatternError when `pattern` is not a well-formed glob; `where` names its origin (file:line). */
export function checkPattern(pattern: string, where?: string): void {
  const problem = patternProblem(pattern);
  if (problem !== undefined) throw new InvalidPatternError(pattern, problem, where);
}

/** What is wrong with a glob, or undefined: unclosed brackets and braces, reversed ranges, a trailing "\", and whatever picomatch cannot compile. */
export function patternProblem(pattern: string): string | undefined {
  if (pattern === '') return 'it is empty';
  let openBraces = 0;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '\\') {
      if (i === pattern.length - 1) return "it ends with a lone '\\' (write '\\\\' to match a backslash)";
      i++;
    } else if (c === '[') {
      const end = bracketEnd(pattern, i);
      if (typeof end === 'string') return end;
      i = end;
    } else if (c === '{') {
      openBraces++;
    } else if (c === '}' && openBraces > 0) {
      openBraces--;
    }
  }
  if (openBraces > 0) return "a '{' is not closed by a '}' (write '\\{' to match a '{')";
  // Whatever else picomatch cannot compile (unbalanced parentheses of its extglobs, as in
  // "!(a" or ")("), it turns into a pattern that matches nothing.
  if (picomatch.makeRe(pattern, { dot: true }).source === '$^') return "it does not compile as a glob: check its parentheses (write '\\(' and '\\)' to match them)";
  return undefined;
}

/** Index of the "]" closing the bracket expression that starts at `start`, or what is wrong with it. */
function bracketEnd(pattern: string, start: number): number | string {
  const unclosed = "a '[' is not closed by a ']' (write '\\[' to match a '[')";
  let i = start + 1;
  if (pattern[i] === '!' || pattern[i] === '^') i++;
  if (pattern[i] === ']') i++; // a "]" first in the brackets is one of the characters
  const charAt = (at: number): { char: string; next: number } | undefined => {
    if (pattern[at] === '\\') return at + 1 < pattern.length ? { char: pattern[at + 1]!, next: at + 2 } : undefined;
    return at < pattern.length ? { char: pattern[at]!, next: at + 1 } : undefined;
  };
  while (i < pattern.length && pattern[i] !== ']') {
    if (pattern.startsWith('[:', i)) {
      const close = pattern.indexOf(':]', i + 2);
      if (close >= 0) {
        i = close + 2;
        continue;
      }
    }
    const low = charAt(i);
    if (!low) return unclosed;
    i = low.next;
    if (pattern[i] !== '-' || i + 1 >= pattern.length || pattern[i + 1] === ']') continue;
    const high = charAt(i + 1);
    if (!high) return unclosed;
    if (high.char < low.char) return `the range ${low.char}-${high.char} is reversed (write ${high.char}-${low.char})`;
    i = high.next;
  }
  return i < pattern.length ? i : unclosed;
}

/**
 * Patterns of an exclude file: one a line; blank lines and lines starting with '#' are ignored.
 * A line that is not a well-formed glob throws InvalidPatternError naming `file:line`.
 */
export function parsePatternFile(text: string, file: string): string[] {
  const patterns: string[] = [];
  text.split('\n').forEach((raw, index) => {
    const line = raw.replace(/\r$/, '');
    if (line.trim() === '' || line.trimStart().startsWith('#')) return;
    checkPattern(line.trim(), `${file}:${index + 1}`);
    patterns.push(line);
  });
  return patterns;
}
