/**
 * Exclude and include patterns (docs in README, "Patterns"), shell globs as restic users know them:
 * - a pattern without "/" matches an entry's name anywhere in the tree (`*.tmp`, `node_modules`);
 * - a pattern with "/" matches the entry's whole path (`/home/*\/.cache`, `**\/build/*.o`);
 *   a pattern not starting with "/" or "**" is anchored anywhere (`src/*.o` matches `/x/src/a.o`).
 * A directory that matches is skipped with everything in it. Dotfiles match like any other name.
 */
import picomatch from 'picomatch';

export type PathMatcher = (path: string, name: string) => boolean;

export function compilePatterns(patterns: readonly string[]): PathMatcher {
  const byName: picomatch.Matcher[] = [];
  const byPath: picomatch.Matcher[] = [];
  for (const raw of patterns) {
    const pattern = raw.trim();
    if (pattern === '') continue;
    const trimmed = pattern.length > 1 && pattern.endsWith('/') ? pattern.slice(0, -1) : pattern;
    if (!trimmed.includes('/')) byName.push(picomatch(trimmed, { dot: true }));
    else byPath.push(picomatch(trimmed.startsWith('/') || trimmed.startsWith('**') ? trimmed : `**/${trimmed}`, { dot: true }));
  }
  if (byName.length + byPath.length === 0) return () => false;
  return (path, name) => byName.some((m) => m(name)) || byPath.some((m) => m(path));
}

/** Lines of an exclude file: one pattern a line; blank lines and lines starting with '#' are ignored. */
export function parsePatternFile(text: string): string[] {
  return text
    .split('\n')
    .map((line) => line.replace(/\r$/, ''))
    .filter((line) => line.trim() !== '' && !line.trimStart().startsWith('#'));
}
