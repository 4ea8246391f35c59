/**
 * `bh dump` (restic's command): one file of a snapshot as a byte stream, or a directory as a
 * tar stream (tar-stream), never held whole. Every blob is verified by the one blob codec as it
 * is read; a few are read ahead, so a remote backend's latency overlaps the writing.
 *
 * Tar entries are named by their snapshot paths without the leading "/" (as `tar -C / -c`
 * would), so extracting recreates the paths below the current directory. Names that are not
 * UTF-8 are written lossily (U+FFFD); sockets are left out (tar has no type for them).
 */
import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import type { IndexedRepository } from '../repo/repository.js';
import { AbortedError } from './archiver.js';
import type { TreeNode } from './tree.js';
import { type TreeReader, nsToMs, walkTree } from './walk.js';

/** Blobs of a file read ahead of the one being written. */
const READ_AHEAD = 8;

/** The content of a file node, blob by blob, verified. */
export async function* fileContent(repo: IndexedRepository, node: TreeNode, signal?: AbortSignal): AsyncGenerator<Buffer> {
  const ids = node.content ?? [];
  const pending: Promise<Buffer>[] = [];
  let next = 0;
  const fill = (): void => {
    while (pending.length < READ_AHEAD && next < ids.length) {
      const loading = repo.loadBlob('data', ids[next++]!);
      loading.catch(() => undefined); // awaited in order below; an early failure must not go unhandled meanwhile
      pending.push(loading);
    }
  };
  fill();
  while (pending.length > 0) {
    if (signal?.aborted) throw new AbortedError();
    const piece = await pending.shift()!;
    fill();
    yield piece;
  }
}

/** Somewhere to write to that says when to wait: a Node stream, or a tar entry (streamx). */
interface Sink {
  write(chunk: Buffer): boolean;
  once(event: 'drain', listener: () => void): unknown;
}

/** Writes `chunks` to `out`, waiting whenever it asks to. */
async function writeAll(out: Sink, chunks: AsyncIterable<Buffer>): Promise<void> {
  for await (const chunk of chunks) {
    if (!out.write(chunk)) await new Promise<void>((resolve) => out.once('drain', resolve));
  }
}

export interface DumpTarOptions {
  repo: IndexedRepository;
  trees: TreeReader;
  /** The directory's tree, and its snapshot path (empty for the root). */
  tree: Buffer;
  path: Buffer;
  /** The directory's own node (undefined for the root, which has none). */
  node: TreeNode | undefined;
  out: Writable;
  signal?: AbortSignal;
}

/** A directory of a snapshot, with everything below it, as a tar stream on `out`. */
export async function dumpTar(options: DumpTarOptions): Promise<void> {
  const { repo, trees, out, signal } = options;
  const pack = tar.pack();
  const written = pipeline(pack, out);
  written.catch(() => undefined); // awaited below; a closed output fails the next entry meanwhile
  const name = (path: Buffer): string => path.toString('utf8').replace(/^\/+/, '');
  try {
    if (options.node && options.path.length > 0) await addEntry(pack, name(options.path), options.node, repo, signal);
    for await (const entry of walkTree(trees, options.tree, { prefix: options.path })) await addEntry(pack, name(entry.pathBytes), entry.node, repo, signal);
    pack.finalize();
  } catch (error) {
    pack.destroy(error as Error);
    throw error;
  }
  await written;
}

async function addEntry(pack: tar.Pack, name: string, node: TreeNode, repo: IndexedRepository, signal: AbortSignal | undefined): Promise<void> {
  const header: Partial<tar.Header> & { name: string } = { name, mode: node.mode, uid: node.uid, gid: node.gid, mtime: new Date(nsToMs(node.mtimeNs)) };
  switch (node.type) {
    case 'file': {
      let settle: (error?: Error | null) => void = () => undefined;
      const finished = new Promise<void>((resolve, reject) => (settle = (error) => (error ? reject(error) : resolve())));
      const entry = pack.entry({ ...header, type: 'file', size: node.size }, (error) => settle(error));
      await writeAll(entry, fileContent(repo, node, signal));
      entry.end(null);
      await finished;
      return;
    }
    case 'dir':
      pack.entry({ ...header, type: 'directory' });
      return;
    case 'symlink':
      pack.entry({ ...header, type: 'symlink', linkname: node.linkTarget?.toString('utf8') ?? '' });
      return;
    case 'fifo':
      pack.entry({ ...header, type: 'fifo' });
      return;
    case 'chardev':
    case 'blockdev': {
      const rdev = Number(node.rdev ?? 0n);
      pack.entry({ ...header, type: node.type === 'chardev' ? 'character-device' : 'block-device', devmajor: (rdev >> 8) & 0xfff, devminor: (rdev & 0xff) | ((rdev >> 12) & 0xfff00) });
      return;
    }
    default:
      return;
  }
}

/** A file of a snapshot to `out`. */
export async function dumpFile(repo: IndexedRepository, node: TreeNode, out: Writable, signal?: AbortSignal): Promise<void> {
  await writeAll(out, fileContent(repo, node, signal));
}
