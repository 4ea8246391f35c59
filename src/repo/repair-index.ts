/**
 * `bh repair index`: a fresh index from the packs themselves. Every pack's header is read
 * (a ranged read from its end), new index files are written, and only then are the old ones
 * removed. Packs whose header cannot be read are left out and reported: their blobs are lost
 * to the index, and `bh repair snapshots` then removes what needed them. Condemnations are not
 * carried over: every pack comes back live (the cautious side), and the next prune condemns
 * the unused ones again.
 */
import { IndexRewriter, blobsByPack, removeIndexFiles } from './index-rewrite.js';
import type { IndexedRepository, Repository } from './repository.js';

export interface RepairIndexResult {
  packs: number;
  blobs: number;
  unreadable: { pack: string; error: string }[];
  indexFilesWritten: number;
  indexFilesRemoved: number;
}

export async function rebuildIndex(repo: Repository, onProgress: (done: number, total: number) => void = () => undefined): Promise<RepairIndexResult> {
  const old = (await repo.list('index')).map((f) => f.name);
  const packs = await repo.list('data');
  const rewriter = new IndexRewriter(repo);
  const result: RepairIndexResult = { packs: 0, blobs: 0, unreadable: [], indexFilesWritten: 0, indexFilesRemoved: 0 };
  for (const [i, { name, size }] of packs.entries()) {
    onProgress(i, packs.length);
    try {
      const blobs = await repo.readPackHeader(name, size);
      await rewriter.addLive({ packId: Buffer.from(name, 'hex'), blobs });
      result.packs++;
      result.blobs += blobs.length;
    } catch (error) {
      result.unreadable.push({ pack: name, error: (error as Error).message });
    }
  }
  await rewriter.finish(old, []);
  await removeIndexFiles(repo, old);
  result.indexFilesWritten = rewriter.filesWritten;
  result.indexFilesRemoved = old.length;
  return result;
}

/**
 * Rewrites the loaded index without the packs that are gone from the backend (condemnations
 * kept); returns their ids. Nothing is written when every indexed pack exists.
 */
export async function dropVanishedPacks(indexed: IndexedRepository): Promise<string[]> {
  const index = indexed.index;
  const stored = new Set((await indexed.repo.list('data')).map((f) => f.name));
  const packIds = index.packs();
  const vanished = packIds.filter((id) => !stored.has(id.toString('hex'))).map((id) => id.toString('hex'));
  if (vanished.length === 0) return [];
  const blobsOf = blobsByPack(index);
  const rewriter = new IndexRewriter(indexed.repo);
  const condemned = [];
  for (const [pack, packId] of packIds.entries()) {
    if (!stored.has(packId.toString('hex'))) continue;
    const since = index.condemnedSince(pack);
    if (since === undefined) await rewriter.addLive({ packId, blobs: blobsOf(pack) });
    else condemned.push({ packId, blobs: blobsOf(pack), since });
  }
  await rewriter.finish(indexed.supersedesOnRewrite, condemned);
  await removeIndexFiles(indexed.repo, indexed.replacedIndexFiles);
  return vanished;
}
