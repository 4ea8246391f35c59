/**
 * The snapshot half of `check`: every snapshot file reads, every tree it reaches loads and
 * parses, and every blob those trees name is in the index (docs/FORMAT.md §10, first invariant).
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
import { BlobRunWriter } from '../repo/blob-reader.js';
import type { CheckFinding } from '../repo/check.js';
import type { IndexedRepository, SnapshotList } from '../repo/repository.js';
import { validateSnapshot, type SnapshotRecord } from './snapshot.js';
import { decodeTree } from './tree.js';

/**
 * Milliseconds of walking between two turns of the event loop: loads from a local repository
 * never wait for it, and what runs beside the walk (check --read-data reading packs, in many
 * small reads) must not starve.
 */
const TURN_MS = 1;

/** Checks the snapshots of `snapshots`, the list `repo`'s index was loaded after (read order, docs/FORMAT.md §10). */
export async function checkSnapshots(repo: IndexedRepository, snapshots: SnapshotList, report: (finding: CheckFinding) => void): Promise<{ snapshots: number; trees: number }> {
  // Trees of a local repository are read and checked right here, from pack files kept open
  // (as restore does); other backends are read through loadBlob.
  const reader = new BlobRunWriter(repo);
  try {
    return await walkSnapshots(repo, snapshots.names, reader, report);
  } finally {
    await reader.close();
  }
}

async function walkSnapshots(repo: IndexedRepository, names: string[], reader: BlobRunWriter, report: (finding: CheckFinding) => void): Promise<{ snapshots: number; trees: number }> {
  const seenTrees = new Set<string>();
  let lastTurn = performance.now();
  const reportedBlobs = new Set<string>();
  for (const name of names) {
    const subject = `snapshot ${name}`;
    let record: SnapshotRecord;
    try {
      record = validateSnapshot(await repo.repo.loadJson('snapshot', name), `snapshots/${name}`);
    } catch (error) {
      report({ level: 'error', subject, message: (error as Error).message });
      continue;
    }
    const stack: { id: Buffer; path: string }[] = [{ id: Buffer.from(record.tree, 'hex'), path: '/' }];
    while (stack.length > 0) {
      const { id, path } = stack.pop()!;
      const hex = id.toString('hex');
      if (seenTrees.has(hex)) continue;
      seenTrees.add(hex);
      if (performance.now() - lastTurn > TURN_MS) {
        await nextTurn();
        lastTurn = performance.now();
      }
      let nodes;
      try {
        nodes = decodeTree(await reader.loadBlob('tree', id), `tree ${hex}`);
      } catch (error) {
        report({ level: 'error', subject, message: `tree ${hex} (${path}): ${(error as Error).message}` });
        continue;
      }
      for (const node of nodes) {
        const nodePath = path === '/' ? `/${node.name.toString()}` : `${path}/${node.name.toString()}`;
        if (node.subtree) stack.push({ id: node.subtree, path: nodePath });
        for (const blob of node.content ?? []) {
          if (repo.index.has('data', blob)) continue;
          const blobHex = blob.toString('hex');
          if (reportedBlobs.has(blobHex)) continue;
          reportedBlobs.add(blobHex);
          report({ level: 'error', subject, message: `file ${nodePath}: data blob ${blobHex} is not in any index` });
        }
      }
    }
  }
  return { snapshots: names.length, trees: seenTrees.size };
}
