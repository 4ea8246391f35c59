/**
 * Live files against a snapshot (`bh verify-live`): what the old tool's `--verify` meant to do
 * for a backup, done for the source, and a bit-rot or tamper check of it. Each entry of the
 * snapshot (below the given paths) is looked up at its path on this machine: missing, another
 * type, another size or mtime, another symlink target; regular files are read and hashed
 * against the SHA-256 the snapshot recorded (docs/FORMAT.md §6.1, addition 1) unless `fast`. A
 * file whose content differs while size and mtime are unchanged is what no backup tool's change
 * detection notices: bit rot, or a change made to hide itself. Inside the backed-up paths,
 * entries the snapshot lacks (and its excludes do not explain) are listed as added.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { entryType } from '../fsx/index.js';
import { AbortedError } from './archiver.js';
import { compilePatterns } from './exclude.js';
import type { Snapshot } from './snapshot.js';
import type { TreeNode } from './tree.js';
import { type TreeReader, listEntries } from './walk.js';

export type LiveChange = 'missing' | 'added' | 'type' | 'modified' | 'content' | 'unreadable';

export interface LiveDifference {
  /** For display (lossy where a name is not UTF-8). */
  path: string;
  pathBytes: Buffer;
  change: LiveChange;
  detail: string;
}

export interface VerifyLiveOptions {
  /** Compare metadata only; read no file. */
  fast: boolean;
  signal?: AbortSignal | undefined;
  onDifference: (difference: LiveDifference) => void | Promise<void>;
}

export interface VerifyLiveSummary {
  /** Entries of the snapshot looked at. */
  entries: number;
  /** Regular files read and hashed. */
  filesHashed: number;
  bytesHashed: number;
  /** Regular files whose SHA-256 the snapshot did not record (made by bh 0.1.0 or earlier): only their metadata was compared. */
  filesWithoutHash: number;
  differences: number;
}

const SLASH = 0x2f;

/** Whether `path` is one of `roots` or below one. */
function within(path: Buffer, roots: Buffer[]): boolean {
  return roots.some((root) => path.equals(root) || (path.length > root.length && path[root.length] === SLASH && path.subarray(0, root.length).equals(root)) || root.length === 1);
}

export async function verifyLive(trees: TreeReader, snapshot: Snapshot, paths: readonly string[], options: VerifyLiveOptions): Promise<VerifyLiveSummary> {
  const summary: VerifyLiveSummary = { entries: 0, filesHashed: 0, bytesHashed: 0, filesWithoutHash: 0, differences: 0 };
  const roots = snapshot.record.paths.map((p) => Buffer.from(p));
  const excluded = compilePatterns(snapshot.record.excludes);
  const report = async (pathBytes: Buffer, change: LiveChange, detail: string): Promise<void> => {
    summary.differences++;
    await options.onDifference({ path: pathBytes.toString('utf8'), pathBytes, change, detail });
  };
  for await (const entry of listEntries(trees, Buffer.from(snapshot.record.tree, 'hex'), paths, true)) {
    if (options.signal?.aborted) throw new AbortedError();
    summary.entries++;
    const { node, pathBytes } = entry;
    let live: Awaited<ReturnType<typeof lstat>>;
    try {
      live = await lstat(pathBytes, { bigint: true });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      await report(pathBytes, code === 'ENOENT' ? 'missing' : 'unreadable', code === 'ENOENT' ? 'in the snapshot, not on disk' : (error as Error).message);
      continue;
    }
    const type = entryType(Number(live.mode));
    if (type !== node.type) {
      await report(pathBytes, 'type', `was a ${node.type}, is now a ${type}`);
      continue;
    }
    if (node.type === 'file') await compareFile(pathBytes, node, live, options, summary, report);
    else if (node.type === 'symlink') {
      const target = await readlink(pathBytes, { encoding: 'buffer' });
      if (!node.linkTarget || !target.equals(node.linkTarget)) await report(pathBytes, 'modified', `symlink target was ${node.linkTarget?.toString() ?? ''}, is now ${target.toString()}`);
    } else if (node.type === 'dir' && node.subtree && within(pathBytes, roots)) {
      const recorded = new Set((await trees.read(node.subtree)).map((child) => child.name.toString('latin1')));
      let names: Buffer[];
      try {
        names = await readdir(pathBytes, { encoding: 'buffer' });
      } catch (error) {
        await report(pathBytes, 'unreadable', (error as Error).message);
        continue;
      }
      for (const name of names.sort(Buffer.compare)) {
        if (recorded.has(name.toString('latin1'))) continue;
        const childPath = Buffer.concat([pathBytes, Buffer.of(SLASH), name]);
        if (!excluded(childPath.toString(), name.toString())) await report(childPath, 'added', 'on disk, not in the snapshot');
      }
    }
  }
  return summary;
}

async function compareFile(
  pathBytes: Buffer,
  node: TreeNode,
  live: { size: bigint; mtimeNs: bigint },
  options: VerifyLiveOptions,
  summary: VerifyLiveSummary,
  report: (pathBytes: Buffer, change: LiveChange, detail: string) => Promise<void>,
): Promise<void> {
  const changes: string[] = [];
  if (live.size !== BigInt(node.size)) changes.push(`size ${node.size} → ${live.size}`);
  if (live.mtimeNs !== node.mtimeNs) changes.push(`mtime ${isoOf(node.mtimeNs)} → ${isoOf(live.mtimeNs)}`);
  if (!node.sha256) summary.filesWithoutHash++;
  if (options.fast || !node.sha256 || changes.length > 0) {
    // Changed metadata says enough; reading would only confirm it.
    if (changes.length > 0) await report(pathBytes, 'modified', changes.join(', '));
    return;
  }
  let digest: Buffer;
  try {
    const hash = createHash('sha256');
    for await (const chunk of createReadStream(pathBytes, { signal: options.signal })) {
      hash.update(chunk as Buffer);
      summary.bytesHashed += (chunk as Buffer).length;
    }
    digest = hash.digest();
  } catch (error) {
    if (options.signal?.aborted) throw new AbortedError();
    await report(pathBytes, 'unreadable', (error as Error).message);
    return;
  }
  summary.filesHashed++;
  if (!digest.equals(node.sha256)) await report(pathBytes, 'content', `content differs (SHA-256 ${digest.toString('hex')}, recorded ${node.sha256.toString('hex')}) although size and mtime are unchanged: bit rot, or a change that hid itself`);
}

function isoOf(ns: bigint): string {
  return new Date(Number(ns / 1_000_000n)).toISOString();
}
