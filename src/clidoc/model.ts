/**
 * The command line as data, read from clipanion's definitions of the registered commands
 * (`cli.definitions()`): what man pages and shell completions are generated from, so they
 * cannot drift from what the parser accepts (restic's `generate` does the same from cobra).
 */
import type { Definition } from 'clipanion';

export interface CliOption {
  /** As written on the command line, short first: `-r`, `--repo`. */
  names: string[];
  /** Whether the option is followed by a value (`--repo REPO`), or is a flag (`--json`). */
  takesValue: boolean;
  description: string;
  required: boolean;
}

export interface CliCommand {
  /** The words after the binary name: `['key', 'add']`. */
  words: string[];
  description: string;
  /** Paragraphs of the details; a list item starts with `- `. */
  details: string[];
  /** Positional arguments as clipanion prints them: `<snapshot>`, `[target]`, `...`. */
  operands: string[];
  options: CliOption[];
  examples: Array<{ label: string; command: string }>;
}

export interface CliModel {
  binary: string;
  commands: CliCommand[];
}

/** Option names and command words go into shell code and roff unquoted: they must be plain. */
const PLAIN_WORD = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const PLAIN_OPTION = /^--?[A-Za-z0-9][A-Za-z0-9-]*$/;

/**
 * The model of `definitions` (from a clipanion Cli whose binary name is `binary`), commands in
 * the given order. Commands without a path (clipanion's default command) are left out.
 */
export function cliModel(binary: string, definitions: readonly Definition[]): CliModel {
  const commands: CliCommand[] = [];
  for (const definition of definitions) {
    const words = definition.path.split(' ').slice(1);
    if (words.length === 0) continue;
    for (const word of words) if (!PLAIN_WORD.test(word)) throw new Error(`command word ${JSON.stringify(word)} of "${definition.path}" cannot be put in a man page or completion`);
    const { operands, inlineOptions } = parseUsage(definition.usage, definition.path);
    const options = [...definition.options.map((o) => parseOption(o.definition, o.description ?? '', o.required)), ...inlineOptions];
    commands.push({
      words,
      description: oneLine(definition.description ?? ''),
      details: paragraphs(definition.details ?? ''),
      operands,
      options,
      examples: (definition.examples ?? []).map(([label, command]) => ({ label: oneLine(label), command })),
    });
  }
  return { binary, commands };
}

/** The command paths that have sub-commands (`key` for `key add`), with their children's next words. */
export function commandGroups(model: CliModel): Map<string, string[]> {
  const groups = new Map<string, string[]>([['', []]]);
  for (const command of model.commands) {
    for (let depth = 0; depth < command.words.length; depth++) {
      const prefix = command.words.slice(0, depth).join(' ');
      const next = command.words[depth]!;
      const children = groups.get(prefix) ?? [];
      if (!children.includes(next)) children.push(next);
      groups.set(prefix, children);
    }
  }
  return groups;
}

/**
 * clipanion's option definition: names joined by commas, then ` #0` per value it takes
 * (`-r,--repo #0`, `--json`).
 */
function parseOption(definition: string, description: string, required: boolean): CliOption {
  const [namesPart = '', ...values] = definition.split(' ');
  const names = namesPart.split(',').sort((a, b) => a.length - b.length);
  for (const name of names) if (!PLAIN_OPTION.test(name)) throw new Error(`option name ${JSON.stringify(name)} cannot be put in a man page or completion`);
  return { names, takesValue: values.length > 0, description: oneLine(description), required };
}

/**
 * clipanion's detailed usage without described options: `bh backup [--flag] <paths> ...`.
 * Bracketed segments starting with `-` are options without a description; the rest operands.
 */
function parseUsage(usage: string, path: string): { operands: string[]; inlineOptions: CliOption[] } {
  const rest = usage.startsWith(path) ? usage.slice(path.length) : usage;
  const operands: string[] = [];
  const inlineOptions: CliOption[] = [];
  for (const [segment] of rest.matchAll(/\[[^\]]*\]|<[^>]*>|\.\.\./g)) {
    const inner = segment.slice(1, -1);
    if (inner.startsWith('-')) inlineOptions.push(parseOption(inner, '', segment.startsWith('<')));
    else operands.push(segment);
  }
  return { operands, inlineOptions };
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

/**
 * clipanion wraps details at 80 columns, paragraphs apart by a blank line, list items as
 * `- ` with continuation lines indented: each becomes one line again.
 */
function paragraphs(details: string): string[] {
  return details
    .split(/\n\s*\n/)
    .map(oneLine)
    .filter((p) => p !== '');
}
