/** `bh config init-key`: a new 32-byte raw key file for [ENCRYPTION] key_file. */
import { randomBytes } from 'node:crypto';
import { open } from 'node:fs/promises';
import { resolve } from 'node:path';

/** Writes 32 random bytes to a new file readable by its owner only; refuses to replace anything. Returns the absolute path. */
export async function writeRawKeyFile(path: string): Promise<string> {
  const absolute = resolve(path);
  let handle;
  try {
    handle = await open(absolute, 'wx', 0o600);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw new Error(`${absolute} already exists; bh never overwrites a key file (it may be the only way into your backups): choose another path`);
    throw new Error(`cannot create ${absolute}: ${(error as Error).message}`);
  }
  try {
    // The umask may have narrowed the mode further; set exactly owner read/write.
    await handle.chmod(0o600);
    await handle.writeFile(randomBytes(32));
    await handle.sync();
  } finally {
    await handle.close();
  }
  return absolute;
}
