/**
 * System captures in the repository: a capture is stored as an ordinary encrypted snapshot,
 * tagged `system`, holding `system.json` (the document) and `files/…` (the captured files,
 * mode 0600 in the snapshot whatever their original mode; the document keeps that). So
 * `bh ls`, `bh restore`, `forget`, `copy` and `check` treat it as any snapshot, and nothing of
 * it is ever plaintext outside the repository.
 */
import { createHash } from 'node:crypto';
import type { IndexedRepository, Repository } from '../repo/repository.js';
import { type BackupResult, runBackup } from '../snapshot/backup.js';
import { type MemoryFile, memorySource } from '../snapshot/streams.js';
import { type DamagedSnapshotHandler, type Snapshot, findSnapshot, loadSnapshots } from '../snapshot/snapshot.js';
import { TreeReader, resolvePath, splitSnapshotPath } from '../snapshot/walk.js';
import { CAPTURE_DOCUMENT, type CapturedFile, SYSTEM_TAG, type SystemCapture, parseCapture } from './capture.js';
import type { CaptureResult } from './collect.js';

export interface StoreOptions {
  signal?: AbortSignal | undefined;
  onDamagedSnapshot: DamagedSnapshotHandler;
  onWarning?: (message: string) => void;
}

/** The capture as the files of a snapshot: the document first, then every captured file. */
export function captureFiles(result: CaptureResult): MemoryFile[] {
  const time = new Date(result.capture.time);
  return [
    { path: `/${CAPTURE_DOCUMENT}`, bytes: Buffer.from(JSON.stringify(result.capture, null, 2) + '\n'), mode: 0o600, mtime: time },
    ...[...result.contents].map(([stored, bytes]) => ({ path: `/${stored}`, bytes, mode: 0o600, mtime: time })),
  ];
}

/** Saves the capture as a new snapshot tagged `system` (host and time: the capture's). */
export function storeCapture(repo: Repository, result: CaptureResult, options: StoreOptions): Promise<BackupResult> {
  const paths = [`/${CAPTURE_DOCUMENT}`, ...(result.contents.size > 0 ? ['/files'] : [])];
  return runBackup(repo, {
    paths,
    // Directories 0700: the captured files are private whatever their modes were.
    source: memorySource(paths, captureFiles(result), 0o700),
    mode: 'full',
    exclude: () => false,
    excludePatterns: [],
    tags: [SYSTEM_TAG],
    host: result.capture.host,
    time: new Date(result.capture.time),
    signal: options.signal,
    onDamagedSnapshot: options.onDamagedSnapshot,
    onWarning: options.onWarning,
  });
}

export function isSystemSnapshot(snapshot: Snapshot): boolean {
  return snapshot.record.tags.includes(SYSTEM_TAG);
}

/** The system snapshots, oldest first. */
export async function listSystemSnapshots(repo: Repository, onDamagedSnapshot: DamagedSnapshotHandler): Promise<Snapshot[]> {
  return (await loadSnapshots(repo, onDamagedSnapshot)).filter(isSystemSnapshot);
}

export class NotASystemSnapshotError extends Error {
  constructor(id: string) {
    super(`snapshot ${id.slice(0, 8)} is not a system snapshot (no tag '${SYSTEM_TAG}'); list them with 'bh system list'`);
    this.name = 'NotASystemSnapshotError';
  }
}

/** One system snapshot opened for reading: its document, and its captured files on demand. */
export interface OpenedCapture {
  snapshot: Snapshot;
  capture: SystemCapture;
  /** The bytes of a captured file, verified against the document's SHA-256. */
  read(file: CapturedFile): Promise<Buffer>;
}

/**
 * Opens the system snapshots named by `refs` (ids, prefixes, or `latest` for the newest system
 * snapshot, of `host` when given), loading the index once for all, and passes them to `use`.
 */
export async function withCaptures<T>(repo: Repository, refs: readonly string[], options: StoreOptions & { host?: readonly string[] | undefined }, use: (captures: OpenedCapture[]) => Promise<T>): Promise<T> {
  const snapshots = await loadSnapshots(repo, options.onDamagedSnapshot);
  const chosen = refs.map((ref) => findSnapshot(snapshots, ref, { tags: [SYSTEM_TAG], host: options.host }));
  for (const snapshot of chosen) if (!isSystemSnapshot(snapshot)) throw new NotASystemSnapshotError(snapshot.id);
  const indexed = await repo.loadIndex(snapshots.listing);
  try {
    const trees = new TreeReader(indexed, { signal: options.signal, onWarning: options.onWarning });
    const opened: OpenedCapture[] = [];
    for (const snapshot of chosen) {
      const root = Buffer.from(snapshot.record.tree, 'hex');
      const readPath = (path: string): Promise<Buffer> => readSnapshotFile(indexed, trees, root, path, snapshot);
      const capture = parseCapture((await readPath(CAPTURE_DOCUMENT)).toString('utf8'), `${CAPTURE_DOCUMENT} of snapshot ${snapshot.id.slice(0, 8)}`);
      opened.push({
        snapshot,
        capture,
        read: async (file) => {
          const bytes = await readPath(file.stored);
          if (createHash('sha256').update(bytes).digest('hex') !== file.sha256) throw new Error(`${file.stored} of snapshot ${snapshot.id.slice(0, 8)} does not match its SHA-256 in ${CAPTURE_DOCUMENT}`);
          return bytes;
        },
      });
    }
    return await use(opened);
  } finally {
    await indexed.close();
  }
}

async function readSnapshotFile(indexed: IndexedRepository, trees: TreeReader, root: Buffer, path: string, snapshot: Snapshot): Promise<Buffer> {
  const node = await resolvePath(trees, root, splitSnapshotPath(path));
  if (!node || node.type !== 'file' || !node.content) throw new Error(`snapshot ${snapshot.id.slice(0, 8)} has no file ${path}: it is not a complete system snapshot`);
  const pieces: Buffer[] = [];
  for (const id of node.content) pieces.push(await indexed.loadBlob('data', id));
  return Buffer.concat(pieces);
}
