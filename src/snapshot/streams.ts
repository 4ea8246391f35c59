/**
 * Files of a snapshot made from byte streams: standard input, a command's output, database
 * dumps. This is the archiver's side of the source seam of docs/ARCHITECTURE.md; src/sources/
 * yields objects of this shape (it imports nothing of ours, so it states the shape itself, and
 * the compiler checks that the two agree where commands and jobs hand one to the other).
 *
 * Every file is stored, then verified; the snapshot is saved only when all of them verified:
 * a dump tool that exited non-zero, died, or left its trailer out never gives a snapshot.
 */
import type { TreeNode } from './tree.js';

export interface StreamFile {
  /** Its path in the snapshot, absolute: "/mysql/app.sql". */
  path: string;
  data: AsyncIterable<Uint8Array>;
  /** After `data` ended: throws unless the producer finished well. */
  verify(): Promise<void>;
  /** Permission bits (default 0644). */
  mode?: number | undefined;
  /** Modification time (default: when the backup began). */
  mtime?: Date | undefined;
}

/** What a snapshot record keeps about a database dump (docs/FORMAT.md §7, `dump`). */
export interface DumpRecord {
  version: 1;
  engine: 'mysql' | 'postgres';
  server_version: string;
  tool: string;
  files: { path: string; database?: string; binlog?: { file: string; position: number; gtid?: string } }[];
}

export interface StreamSource {
  /** The snapshot's paths ("/mysql", or "/<filename>" for one stream). */
  readonly paths: string[];
  /** Permission bits of the directories made on the way to the files (default 0755). */
  readonly dirMode?: number | undefined;
  /** The files, one at a time: the next one is asked for after the previous one was stored and verified. */
  files(signal?: AbortSignal): AsyncIterable<StreamFile>;
  /** After every file verified: what the snapshot record keeps about the producer. */
  dumpRecord?(): DumpRecord | undefined;
  /** Releases what the source holds; called however the backup ended. */
  close(): Promise<void>;
}

/** A stored stream: its snapshot path's components and its file node. */
export interface StoredStream {
  names: Buffer[];
  node: TreeNode;
}

/** Checks a stream's snapshot path and splits it into names. */
export function streamPathNames(path: string): Buffer[] {
  const parts = path.split('/');
  if (parts[0] !== '' || parts.length < 2 || parts.slice(1).some((p) => p === '' || p === '.' || p === '..')) throw new Error(`'${path}' is not a plain absolute snapshot path for a stream`);
  return parts.slice(1).map((p) => Buffer.from(p));
}

/** The node of a file made from a stream: owned by us, its mode (0644) and time (now) unless the file says. */
export function streamFileNode(name: Buffer, file: Pick<StreamFile, 'mode' | 'mtime'>, content: Buffer[], size: number, nowNs: bigint): TreeNode {
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  const mtimeNs = file.mtime ? BigInt(file.mtime.getTime()) * 1_000_000n : nowNs;
  return { name, type: 'file', mode: file.mode ?? 0o644, uid, gid, mtimeNs, ctimeNs: nowNs, inode: 0n, device: 0n, links: 1, size, content };
}

/** A file held in memory, for memorySource(). */
export interface MemoryFile {
  /** Its path in the snapshot, absolute. */
  path: string;
  bytes: Uint8Array;
  mode?: number | undefined;
  mtime?: Date | undefined;
}

async function* once(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  yield bytes;
}

/** A source of files already in memory (a system capture): nothing to verify, nothing to release. */
export function memorySource(paths: string[], files: readonly MemoryFile[], dirMode?: number): StreamSource {
  return {
    paths,
    dirMode,
    async *files() {
      for (const { path, bytes, mode, mtime } of files) {
        yield { path, mode, mtime, data: once(bytes), verify: () => Promise.resolve() };
      }
    },
    close: () => Promise.resolve(),
  };
}

/**
 * Saves the trees that hold `files` (directories of `dirMode`, stamped now), bottom up, and
 * returns the root tree's id; `onDir` counts each directory made.
 */
export async function saveStreamTree(files: StoredStream[], dirMode: number, nowNs: bigint, saveTree: (nodes: TreeNode[]) => Promise<Buffer>, onDir: () => void): Promise<Buffer> {
  const save = async (depth: number, members: StoredStream[]): Promise<Buffer> => {
    const nodes: TreeNode[] = [];
    const dirs = new Map<string, StoredStream[]>();
    for (const file of members) {
      const name = file.names[depth]!;
      if (depth === file.names.length - 1) nodes.push({ ...file.node, name });
      else {
        const key = name.toString('latin1');
        dirs.set(key, [...(dirs.get(key) ?? []), file]);
      }
    }
    for (const [key, inside] of dirs) {
      const subtree = await save(depth + 1, inside);
      onDir();
      const file = streamFileNode(Buffer.from(key, 'latin1'), {}, [], 0, nowNs);
      nodes.push({ name: file.name, type: 'dir', mode: dirMode, uid: file.uid, gid: file.gid, mtimeNs: nowNs, ctimeNs: nowNs, inode: 0n, device: 0n, links: 2, size: 0, subtree });
    }
    // encodeTree sorts the entries and refuses a name given twice.
    return saveTree(nodes);
  };
  return save(0, files);
}
