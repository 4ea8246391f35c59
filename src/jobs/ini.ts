/**
 * The INI dialect of Backup Handler's config.ini: Python configparser as the old tool used it,
 * minus the two behaviours that bit its users (README.md, "Moving from Backup Handler"):
 *
 * - `key = value` and `key: value` (the first `=` or `:` splits); keys are case-insensitive;
 *   section names too (`[ssh]` is `[SSH]`);
 * - whole-line comments start with `#` or `;`, also indented;
 * - an inline comment starts at `#` or `;` preceded by whitespace (configparser's
 *   `inline_comment_prefixes`). The old tool had none, so `workers = 4 # threads` — as its own
 *   README writes it — was the value "4 # threads" and failed;
 * - a line indented deeper than its key continues the value (joined with a newline); a blank
 *   line ends it;
 * - no interpolation: `%` is an ordinary character (the old tool's BasicInterpolation made a `%`
 *   in a password a crash);
 * - `[DEFAULT]` is a section like the others: its keys are not copied into every other section;
 * - a duplicate section or key, a key outside any section and a line that is neither are errors.
 *
 * The parser never throws anything but a ConfigError, which lists every problem with its line.
 */

export interface IniEntry {
  /** Lower-cased. */
  key: string;
  value: string;
  line: number;
}

export interface IniSection {
  /** Upper-cased. */
  name: string;
  line: number;
  entries: Map<string, IniEntry>;
}

export interface IniDocument {
  file: string;
  /** By upper-cased name, in file order. */
  sections: Map<string, IniSection>;
}

/** One thing wrong with a config file: where, what, and what to do about it. */
export interface ConfigIssue {
  file: string;
  line?: number | undefined;
  section?: string | undefined;
  key?: string | undefined;
  problem: string;
  fix: string;
}

export function formatIssue(issue: ConfigIssue): string {
  const where = issue.line === undefined ? issue.file : `${issue.file}:${issue.line}`;
  const what = issue.section === undefined ? '' : issue.key === undefined ? ` [${issue.section}]` : ` [${issue.section}] ${issue.key}`;
  return `${where}${what}: ${issue.problem}; ${issue.fix}`;
}

/** Every problem found in a config file, reported together. */
export class ConfigError extends Error {
  constructor(readonly issues: readonly ConfigIssue[]) {
    super(issues.length === 1 ? formatIssue(issues[0]!) : `${issues.length} problems in the configuration:\n${issues.map((i) => `  - ${formatIssue(i)}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

const INLINE_COMMENT = /\s[#;]/;

function stripInlineComment(text: string): string {
  const match = INLINE_COMMENT.exec(text);
  return (match ? text.slice(0, match.index) : text).trim();
}

function indentOf(line: string): number {
  return line.length - line.trimStart().length;
}

export function parseIni(text: string, file: string): IniDocument {
  const sections = new Map<string, IniSection>();
  const issues: ConfigIssue[] = [];
  let section: IniSection | undefined;
  let entry: { entry: IniEntry; indent: number } | undefined;
  const lines = text.replace(/^\uFEFF/, '').split(/\r\n|\n|\r/);

  lines.forEach((raw, index) => {
    const line = index + 1;
    const trimmed = raw.trim();
    if (trimmed === '') {
      entry = undefined;
      return;
    }
    if (trimmed.startsWith('#') || trimmed.startsWith(';')) return;
    if (entry && indentOf(raw) > entry.indent) {
      const more = stripInlineComment(trimmed);
      if (more !== '') entry.entry.value = entry.entry.value === '' ? more : `${entry.entry.value}\n${more}`;
      return;
    }
    entry = undefined;
    if (trimmed.startsWith('[')) {
      const header = /^\[([^\]]*)\]$/.exec(stripInlineComment(trimmed));
      const name = header?.[1]!.trim().toUpperCase();
      if (!name) {
        issues.push({ file, line, problem: `'${trimmed.slice(0, 60)}' is not a section header`, fix: 'write a header as [NAME] alone on its line' });
        section = undefined;
        return;
      }
      const previous = sections.get(name);
      if (previous) {
        issues.push({ file, line, section: name, problem: `section appears twice (first on line ${previous.line})`, fix: 'merge the two sections into one' });
        section = previous;
        return;
      }
      section = { name, line, entries: new Map() };
      sections.set(name, section);
      return;
    }
    const split = /[=:]/.exec(raw);
    const key = split ? raw.slice(0, split.index).trim().toLowerCase() : '';
    if (!split || key === '') {
      issues.push({ file, line, section: section?.name, problem: `'${trimmed.slice(0, 60)}' is not of the form key = value`, fix: 'write key = value, or start a comment line with # or ;' });
      return;
    }
    if (!section) {
      issues.push({ file, line, key, problem: 'setting before any [SECTION] header', fix: 'move it below the header of the section it belongs to' });
      return;
    }
    const previous = section.entries.get(key);
    if (previous) {
      issues.push({ file, line, section: section.name, key, problem: `set twice (first on line ${previous.line})`, fix: 'keep one of the two lines' });
      return;
    }
    const value: IniEntry = { key, value: stripInlineComment(raw.slice(split.index + 1)), line };
    section.entries.set(key, value);
    entry = { entry: value, indent: indentOf(raw) };
  });

  if (issues.length > 0) throw new ConfigError(issues);
  return { file, sections };
}
