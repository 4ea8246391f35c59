/**
 * Choosing where `bh mount` may mount: never inside the repository or the cache (the mount
 * would hide, or loop over, the files it is served from), never over a directory that holds
 * anything unless asked to, and never over a stale mount a killed process left (that one is
 * cleared first, with `bh mount --unmount`).
 */
import { mkdir, readdir, realpath, stat } from 'node:fs/promises';
import { isAbsolute, relative, resolve } from 'node:path';

export class MountpointError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MountpointError';
  }
}

export interface MountpointRules {
  /** Folders the mountpoint must not be in (nor be): the local repository, the cache. */
  forbidden: readonly { path: string; what: string }[];
  allowNonEmpty: boolean;
}

/** The mountpoint as an absolute real path, made when missing (as restic does), checked against the rules. */
export async function prepareMountpoint(given: string, rules: MountpointRules): Promise<string> {
  const absolute = resolve(given);
  try {
    return await check(absolute, rules);
  } catch (error) {
    // A stale mount answers ENOTCONN to whatever the kernel has not cached (a stat may still be).
    if ((error as NodeJS.ErrnoException).code === 'ENOTCONN') {
      throw new MountpointError(`${absolute} is a stale mount (the process that served it is gone): clear it with 'bh mount --unmount ${absolute}' (or 'fusermount3 -u ${absolute}'), then mount again`);
    }
    if (error instanceof MountpointError) throw error;
    throw new MountpointError(`cannot use ${absolute} as the mountpoint: ${(error as Error).message}`);
  }
}

async function check(absolute: string, rules: MountpointRules): Promise<string> {
  const status = await stat(absolute).catch((error: NodeJS.ErrnoException) => error);
  if (status instanceof Error) {
    if (status.code !== 'ENOENT') throw status;
    await mkdir(absolute, { recursive: true });
  } else if (!status.isDirectory()) {
    throw new MountpointError(`the mountpoint ${absolute} is not a directory`);
  }
  const real = await realpath(absolute);
  for (const place of rules.forbidden) {
    const base = await realpath(place.path).catch(() => resolve(place.path));
    const inside = relative(base, real);
    if (inside === '' || (!inside.startsWith('..') && !isAbsolute(inside))) {
      throw new MountpointError(`the mountpoint ${real} is inside ${place.what} ${base}: choose a directory outside it`);
    }
  }
  const entries = await readdir(real);
  if (!rules.allowNonEmpty && entries.length > 0) {
    throw new MountpointError(`the mountpoint ${real} is not empty: choose an empty directory, or pass --allow-non-empty to hide what is in it while mounted`);
  }
  return real;
}
