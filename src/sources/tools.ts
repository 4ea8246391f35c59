/** Finding the external tools a source runs (mariadb-dump, pg_dump, …) on PATH. */
import { execFile } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/** The first of `names` found as an executable on `PATH`, as a full path; undefined when none is. */
export function findTool(names: readonly string[], env: Readonly<Record<string, string | undefined>>): string | undefined {
  const dirs = (env['PATH'] ?? '').split(delimiter).filter((d) => d !== '');
  for (const name of names) {
    for (const dir of dirs) {
      const path = join(dir, name);
      try {
        accessSync(path, constants.X_OK);
        return path;
      } catch {
        // not here
      }
    }
  }
  return undefined;
}

/**
 * The environment a tool runs with: ours, less every variable whose name says it holds a secret
 * (BH_PASSWORD, BH_MYSQL_PASSWORD, MYSQL_PWD, PGPASSWORD, …). A tool gets its credentials from a
 * private file (private-files.ts), and the secrets bh was given are none of its business.
 */
export function toolEnvironment(env: Readonly<Record<string, string | undefined>>, extra: Record<string, string> = {}): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const [name, value] of Object.entries(env)) {
    if (!/PASSWORD|PASSPHRASE|SECRET|_PWD$|_KEY$|TOKEN/i.test(name)) out[name] = value;
  }
  return { ...out, ...extra };
}

/** The first line of `tool --version`. */
export async function toolVersion(tool: string, env: Readonly<Record<string, string | undefined>>): Promise<string> {
  return new Promise((resolve) => {
    execFile(tool, ['--version'], { env: toolEnvironment(env) as NodeJS.ProcessEnv, timeout: 10_000 }, (error, stdout) => resolve(error ? `${tool} (version unknown)` : stdout.split('\n')[0]!.trim()));
  });
}
