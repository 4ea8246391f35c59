/**
 * `bh generate`: man pages and completion scripts written from the command definitions.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { bashCompletion, fishCompletion, zshCompletion } from './completion.js';
import { type ManPageContext, manPages } from './man.js';
import type { CliModel } from './model.js';

export { cliModel, type CliModel } from './model.js';
export type { ManPageContext } from './man.js';

export interface GenerateTargets {
  /** Directory for the man pages (created if missing). */
  manDir?: string | undefined;
  /** Files for the completion scripts; `-` is written to `stdout`. */
  bash?: string | undefined;
  zsh?: string | undefined;
  fish?: string | undefined;
}

/** Writes what `targets` ask for; the files written, in order (`-` for stdout). */
export async function generate(model: CliModel, context: ManPageContext, targets: GenerateTargets, stdout: NodeJS.WritableStream): Promise<string[]> {
  const written: string[] = [];
  if (targets.manDir !== undefined) {
    await mkdir(targets.manDir, { recursive: true });
    for (const page of manPages(model, context)) {
      const file = join(targets.manDir, page.file);
      await writeFile(file, page.text);
      written.push(file);
    }
  }
  const scripts: Array<[string | undefined, (m: CliModel) => string]> = [
    [targets.bash, bashCompletion],
    [targets.zsh, zshCompletion],
    [targets.fish, fishCompletion],
  ];
  for (const [file, render] of scripts) {
    if (file === undefined) continue;
    if (file === '-') stdout.write(render(model));
    else await writeFile(file, render(model));
    written.push(file);
  }
  return written;
}
