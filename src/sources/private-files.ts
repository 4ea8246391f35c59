/**
 * Credentials for the dump and client tools: written to a file (mode 0600) in a private
 * directory (mode 0700) made for one run and removed afterwards, and named to the tool by path.
 * Never on argv (any user sees /proc/PID/cmdline) and never in a long-lived environment variable.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export class PrivateDir {
  private constructor(readonly path: string) {}

  /** mkdtemp makes the directory 0700. */
  static async create(prefix: string): Promise<PrivateDir> {
    return new PrivateDir(await mkdtemp(join(tmpdir(), `bh-${prefix}-`)));
  }

  /** Writes `text` to a new file (0600, refusing to replace one) and returns its path. */
  async write(name: string, text: string): Promise<string> {
    const path = join(this.path, name);
    await writeFile(path, text, { mode: 0o600, flag: 'wx' });
    return path;
  }

  async remove(): Promise<void> {
    await rm(this.path, { recursive: true, force: true });
  }
}
