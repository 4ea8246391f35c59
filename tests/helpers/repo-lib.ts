/**
 * The library side of a test repository: open it in-process (as another host or process would)
 * to remove snapshot records, hold locks, or look at files, where the CLI has no command for it.
 */
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { openBackend } from '../../src/backends/index.js';
import { Repository } from '../../src/repo/repository.js';
import type { TestRepo } from './cli.js';

export async function openLibraryRepo(repo: TestRepo): Promise<Repository> {
  const backend = await openBackend(repo.path, { env: process.env });
  return Repository.open(backend, { kind: 'password', password: Buffer.from(repo.env.BH_PASSWORD!) });
}

/** Bytes of every file below `dir`: the repository's size on disk. */
export async function sizeOnDisk(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    total += entry.isDirectory() ? await sizeOnDisk(path) : (await stat(path)).size;
  }
  return total;
}

/** Names of the pack files in a local repository. */
export async function packNames(repoPath: string): Promise<Set<string>> {
  const out = new Set<string>();
  for (const sub of await readdir(join(repoPath, 'data'))) for (const name of await readdir(join(repoPath, 'data', sub))) if (/^[0-9a-f]{64}$/.test(name)) out.add(name);
  return out;
}
