/**
 * Structural checks of the repository below the snapshot level: index files, packs, blobs.
 * (Which blobs the snapshots need is checked by src/snapshot/check-snapshots.ts.)
 *
 * Problems are errors (data a snapshot may need is missing or damaged); notes are harmless
 * (a pack no index lists, or a temporary file, as a killed backup leaves behind).
 */
import { randomInt } from 'node:crypto';
import type { TemporaryFile } from '../backends/backend.js';
import { createPackVerifier } from './pack-verifier.js';
import { packSizeOf, type PackedBlob } from './pack.js';
import type { IndexedRepository, Repository, SnapshotList } from './repository.js';
import { STALE_AGE_TEXT, findTemporaries } from './temporaries.js';

export interface CheckFinding {
  level: 'error' | 'note';
  /** What is affected: "index/<id>", "data/<id>", "blob <id>", "snapshot <id>", "data/<xx>/.tmp-<hex>". */
  subject: string;
  message: string;
}

export type ReadDataSelection = { kind: 'none' } | { kind: 'all' } | { kind: 'subset'; n: number; m: number } | { kind: 'percent'; percent: number };

export interface CheckProgress {
  phase: string;
  done: number;
  total: number;
}

export interface StructureCheckResult {
  /** The repository with every index file that could be read; blob lookups use it. */
  indexed: IndexedRepository;
  /** The indexed blobs of each pack that is both indexed and stored, by pack id (hex). */
  storedPacks: Map<string, PackedBlob[]>;
}

/**
 * Index files and the packs they list (their presence and size), without reading the packs. The
 * index is loaded as every command loads it, after `snapshots` were listed (read order, §10):
 * a backup finishing meanwhile cannot make a snapshot look as if its blobs were in no index.
 */
export async function checkStructure(
  repo: Repository,
  snapshots: SnapshotList,
  report: (finding: CheckFinding) => void,
  progress: (p: CheckProgress) => void = () => undefined,
): Promise<StructureCheckResult> {
  // Index files: each must hash to its name, decrypt and parse. Files another one supersedes
  // are read too (they must not be damaged either) but list nothing (docs/FORMAT.md §5).
  // Condemned packs (prune's first phase) are still indexed: they are checked like the others.
  const packBlobs = new Map<string, PackedBlob[]>();
  const indexed = await repo.loadIndex(snapshots, {
    onUnreadableFile: (name, error) => report({ level: 'error', subject: `index/${name}`, message: error.message }),
    onPackListed: ({ packId, blobs }) => {
      const key = packId.toString('hex');
      const before = packBlobs.get(key);
      packBlobs.set(key, before ? mergeByOffset(before, blobs) : blobs);
    },
    onProgress: (done, total) => progress({ phase: 'index', done, total }),
  });
  for (const name of indexed.supersededFiles) report({ level: 'note', subject: `index/${name}`, message: 'superseded by a newer index file and ignored (left by an interrupted prune or repair, or copied back; the next prune removes it)' });

  // Packs: every indexed pack must exist, and be as large as its blobs and header make it.
  const stored = new Map((await repo.list('data')).map((f) => [f.name, f.size]));
  for (const [packId, blobs] of packBlobs) {
    const size = stored.get(packId);
    const expected = packSizeOf(blobs);
    if (size === undefined) report({ level: 'error', subject: `data/${packId}`, message: `pack is listed in the index but missing from the repository (${blobs.length} blobs lost)` });
    else if (size < expected) report({ level: 'error', subject: `data/${packId}`, message: `pack is ${size} bytes, shorter than its indexed blobs and header need (${expected}): truncated` });
    else if (size > expected) report({ level: 'error', subject: `data/${packId}`, message: `pack is ${size} bytes, longer than its indexed blobs and header make it (${expected}): padded, or holding blobs no index lists` });
  }
  for (const name of stored.keys()) {
    if (!packBlobs.has(name)) report({ level: 'note', subject: `data/${name}`, message: 'pack is not referenced by any index (left by an interrupted backup; harmless, prune removes it)' });
  }

  // Temporary files of interrupted writes: invisible to every listing above, but they use space.
  const temporaries = await findTemporaries(repo.backend, Date.now());
  const noteTemporary = (file: TemporaryFile, what: string, fate: string): void =>
    report({ level: 'note', subject: file.path, message: `temporary file of ${what} (${file.size} bytes, last written ${new Date(file.mtimeMs).toISOString()}); ${fate}` });
  for (const file of temporaries.stale) noteTemporary(file, 'an interrupted write', 'harmless, prune removes it');
  for (const file of temporaries.young) noteTemporary(file, 'a write in progress or interrupted', `prune removes it once it is ${STALE_AGE_TEXT} old`);

  const storedPacks = new Map([...packBlobs].filter(([id]) => stored.has(id)));
  return { indexed, storedPacks };
}

/**
 * The blobs of one pack that two index files list (a rewrite killed before removing the old
 * file), each once: a blob is one offset of a pack.
 */
function mergeByOffset(a: readonly PackedBlob[], b: readonly PackedBlob[]): PackedBlob[] {
  const byOffset = new Map([...a, ...b].map((blob) => [blob.offset, blob]));
  return [...byOffset.values()].sort((x, y) => x.offset - y.offset);
}

/**
 * --read-data: every byte of the chosen packs (see readPacks). Resolves to the number of packs
 * read.
 */
export async function checkPackData(
  repo: Repository,
  structure: StructureCheckResult,
  readData: ReadDataSelection,
  report: (finding: CheckFinding) => void,
  progress: (p: CheckProgress) => void = () => undefined,
): Promise<number> {
  const chosen = [...structure.storedPacks.keys()].filter((id) => selected(id, readData));
  if (chosen.length > 0) await readPacks(repo, chosen, structure.storedPacks, report, progress);
  return chosen.length;
}

function selected(packId: string, selection: ReadDataSelection): boolean {
  switch (selection.kind) {
    case 'none':
      return false;
    case 'all':
      return true;
    case 'subset':
      // Subset n of m: packs whose first 32 bits fall in the n-th of m equal ranges, so m runs
      // with n = 1..m together read every pack exactly once.
      return (parseInt(packId.slice(0, 8), 16) % selection.m) + 1 === selection.n;
    case 'percent':
      return randomInt(0, 1_000_000) < selection.percent * 10_000;
  }
}

/**
 * Reads the chosen packs on this thread, one after another, while the verifier checks the ones
 * read before (on its worker threads). At most one pack more than there are workers is read and
 * not yet verified, so memory holds a few packs, never the repository. Findings are reported
 * pack by pack, in the order of `chosen`, whichever pack is verified first.
 */
async function readPacks(
  repo: Repository,
  chosen: readonly string[],
  packBlobs: ReadonlyMap<string, PackedBlob[]>,
  report: (finding: CheckFinding) => void,
  progress: (p: CheckProgress) => void,
): Promise<void> {
  const verifier = createPackVerifier(repo.keys, repo.config.compression);
  /** Findings by position in `chosen`, from the moment the pack is verified until reported. */
  const verified: (CheckFinding[] | undefined)[] = [];
  let reported = 0;
  const reportInOrder = (): void => {
    for (; verified[reported] !== undefined; reported++) {
      for (const finding of verified[reported]!) report(finding);
      verified[reported] = [];
      progress({ phase: 'read-data', done: reported + 1, total: chosen.length });
    }
  };
  const unverified = new Set<Promise<void>>();
  let failure: unknown;
  try {
    progress({ phase: 'read-data', done: 0, total: chosen.length });
    for (const [i, packId] of chosen.entries()) {
      while (unverified.size > verifier.threads && failure === undefined) await Promise.race(unverified);
      if (failure !== undefined) break;
      let findings: Promise<CheckFinding[]>;
      try {
        const blobs = packBlobs.get(packId)!;
        findings = verifier.verify(packId, await repo.backend.read({ type: 'data', name: packId }, { atMost: packSizeOf(blobs) }), blobs);
      } catch (error) {
        findings = Promise.resolve([{ level: 'error', subject: `data/${packId}`, message: `cannot read pack: ${(error as Error).message}` }]);
      }
      const settled: Promise<void> = findings
        .then((list) => {
          verified[i] = list;
          reportInOrder();
        })
        // Nothing verified can be trusted once the verifier failed: stop and say so.
        .catch((error: unknown) => void (failure ??= error))
        .finally(() => unverified.delete(settled));
      unverified.add(settled);
    }
    await Promise.all(unverified);
    if (failure !== undefined) throw failure;
  } finally {
    await verifier.close();
  }
}
