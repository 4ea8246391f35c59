/**
 * One backup run: choose the parent, archive, make it durable, record the snapshot.
 * Order per docs/FORMAT.md §10: list snapshots, load the index, write packs, index, snapshot.
 */
import { hostname, userInfo } from 'node:os';
import { createRequire } from 'node:module';
import type { Repository } from '../repo/repository.js';
import { AbortedError, type ArchiveError, type ArchiveProgress, type ArchiveResult, Archiver, type Counters } from './archiver.js';
import type { PathMatcher } from './exclude.js';
import type { StreamSource } from './streams.js';
import { type BackupMode, type DamagedSnapshotHandler, type Snapshot, type SnapshotRecord, chooseParent, loadSnapshots } from './snapshot.js';

const { version } = createRequire(import.meta.url)('../../package.json') as { version: string };

export interface BackupOptions {
  /** Absolute paths (ignored with `source`). */
  paths: string[];
  /** Read the paths below this directory (see ArchiveOptions.root). */
  root?: string | undefined;
  mode: BackupMode;
  exclude: PathMatcher;
  excludePatterns: string[];
  tags: string[];
  host?: string | undefined;
  time?: Date | undefined;
  dryRun?: boolean;
  /**
   * Back up the files of this stream source instead of `paths` (no parent, recorded as full).
   * runBackup closes it, however the backup ends.
   */
  source?: StreamSource | undefined;
  signal?: AbortSignal;
  onProgress?: (progress: ArchiveProgress) => void;
  onError?: (error: ArchiveError) => void;
  /** Told about trouble in the repository that the backup works around (it still succeeds). */
  onWarning?: (message: string) => void;
  onDamagedSnapshot: DamagedSnapshotHandler;
  /** Told which parent was chosen, before any file is read. */
  onParent?: (parent: Snapshot | undefined, mode: BackupMode) => void;
}

export interface BackupResult {
  /** Undefined on a dry run. */
  snapshotId: string | undefined;
  record: SnapshotRecord;
  counters: Counters;
  errors: ArchiveError[];
}

export async function runBackup(repo: Repository, options: BackupOptions): Promise<BackupResult> {
  try {
    return await backupInto(repo, options);
  } finally {
    await options.source?.close();
  }
}

async function backupInto(repo: Repository, options: BackupOptions): Promise<BackupResult> {
  const start = new Date();
  const host = options.host ?? hostname();
  const paths = options.source ? options.source.paths : options.paths;
  const snapshots = await loadSnapshots(repo, options.onDamagedSnapshot);
  const parent = options.source ? undefined : chooseParent(snapshots, options.mode, host, paths);
  // Without a parent every file is read: whatever was asked, that is a full backup, and later
  // differential backups may use it as their base.
  const mode: BackupMode = parent ? options.mode : 'full';
  options.onParent?.(parent, mode);

  const indexed = await repo.loadIndex(snapshots.listing, { verifyPacks: true });
  if (indexed.missingPacks.length > 0) {
    options.onWarning?.(
      `the index lists ${indexed.missingPacks.length} pack(s) the repository lacks (data/${indexed.missingPacks[0]!.slice(0, 16)}…): ` +
        "their data is stored again; run 'bh check', then 'bh repair index'",
    );
  }
  const archiver = new Archiver(indexed, {
    paths,
    root: options.root,
    exclude: options.exclude,
    parentTree: parent ? Buffer.from(parent.record.tree, 'hex') : undefined,
    dryRun: options.dryRun ?? false,
    onProgress: options.onProgress,
    onError: options.onError,
    signal: options.signal,
  });
  try {
    const result = options.source ? await archiver.runStreams(options.source) : await archiver.run();
    if (!options.dryRun) {
      await indexed.flush();
      result.counters.bytes_added = indexed.bytesAdded;
    }
    const record = snapshotRecord(result, { start, host, paths, mode, parent, options });
    const snapshotId = options.dryRun ? undefined : await indexed.saveSnapshot(record, options.signal);
    return { snapshotId, record, counters: result.counters, errors: result.errors };
  } catch (error) {
    // Interrupted: make what was already packed durable, so the next run reuses it.
    if (error instanceof AbortedError && !options.dryRun) await indexed.flush();
    throw error;
  } finally {
    await archiver.close();
    await indexed.close();
  }
}

function snapshotRecord(result: ArchiveResult, run: { start: Date; host: string; paths: string[]; mode: BackupMode; parent: Snapshot | undefined; options: BackupOptions }): SnapshotRecord {
  const { start, host, paths, mode, parent, options } = run;
  const user = userInfo();
  const dump = options.source?.dumpRecord?.();
  return {
    version: 1,
    time: (options.time ?? start).toISOString(),
    tree: result.tree.toString('hex'),
    paths,
    host,
    username: user.username,
    uid: user.uid,
    gid: user.gid,
    tags: options.tags,
    mode,
    parent: parent?.id ?? null,
    excludes: options.excludePatterns,
    program_version: `bh ${version}`,
    ...(dump ? { dump } : {}),
    summary: { ...result.counters, backup_start: start.toISOString(), backup_end: new Date().toISOString() },
  };
}
