/**
 * `bh export`: a snapshot written out in a format other tools read (README "Legacy formats").
 *
 * - `plain`: the files, directories and symlinks, with modes and mtimes (no owners, xattrs,
 *   hard links or special files: `bh restore` is for that).
 * - `enc`: the old tool's folder: each file as `NAME.enc` (src/legacy/enc.ts) at its mirror
 *   path, directories as directories, and `backup_manifest_<snapshot time>.json` at the top
 *   listing every file with its size and plaintext SHA-256, so that the old tool's verify and
 *   restore accept the folder.
 * - `zip`, `zip-aes`: one ZIP file (@zip.js/zip.js, streamed; ZIP64 where sizes or offsets need
 *   it; UTF-8 names; Unix modes and mtimes); `zip-aes` encrypts every entry with WinZip AE-2
 *   AES-256. Never ZipCrypto, which is broken.
 *
 * Layout: paths relative to the snapshot's backup path (several paths: their deepest common
 * directory), as the old tool mirrored its source directory. Memory is bounded: one chunk of a
 * file at a time, whatever the file's size.
 *
 * Every file's content is hashed as it is written and checked against the SHA-256 the
 * snapshot recorded (each chunk is already checked against its id when read).
 */
import { createHash } from 'node:crypto';
import { constants, createWriteStream } from 'node:fs';
import { chmod, mkdir, open, readdir, symlink, writeFile } from 'node:fs/promises';
import { lutimesNs } from '../fsx/index.js';
import { Writable } from 'node:stream';
import { ReadableStream } from 'node:stream/web';
import { ZipWriter, configure } from '@zip.js/zip.js';
import { AbortedError } from '../repo/errors.js';
import type { IndexedRepository } from '../repo/repository.js';
import type { PathMatcher } from '../snapshot/exclude.js';
import type { Snapshot } from '../snapshot/snapshot.js';
import type { TreeNode } from '../snapshot/tree.js';
import { type TreeReader, resolvePath, walkTree } from '../snapshot/walk.js';
import { type EncSecret, ENC_SUFFIX, encryptStream } from './enc.js';
import { LegacyKeys } from './kdf.js';
import { type ManifestCopied, formatManifest, manifestFileName, manifestOfSnapshot, pathFromBytes } from './manifest.js';

export const EXPORT_FORMATS = ['plain', 'enc', 'zip', 'zip-aes'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

export interface ExportOptions {
  format: ExportFormat;
  /** A directory that does not exist or is empty (plain, enc); a file that does not exist (zip, zip-aes). */
  target: string;
  include?: PathMatcher | undefined;
  exclude: PathMatcher;
  /** For `enc`. */
  encSecret?: EncSecret | undefined;
  /** For `zip-aes`. */
  zipPassword?: string | undefined;
  signal?: AbortSignal | undefined;
  /** Entries left out, and what the old tool will not cope with. */
  onWarning: (message: string) => void;
  onProgress?: ((progress: { files: number; bytes: number }) => void) | undefined;
}

export interface ExportSummary {
  files: number;
  dirs: number;
  symlinks: number;
  bytes: number;
  /** Entries not exported (special files; symlinks in `enc`). */
  skipped: number;
  /** The manifest written (`enc`). */
  manifest?: string;
}

export class ExportError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ExportError';
  }
}

/** One entry to export: its path in the snapshot, and relative to the export's base. */
interface ExportEntry {
  pathBytes: Buffer;
  relative: Buffer;
  node: TreeNode;
}

/** Where an export writes entries. */
interface EntryWriter {
  dir(entry: ExportEntry): Promise<void>;
  file(entry: ExportEntry, content: CheckedContent): Promise<void>;
  /** False when the format leaves symlinks out. */
  symlink(entry: ExportEntry): Promise<boolean>;
  /** `root`: the node of the directory the export's target stands for (none for the snapshot's root). */
  finish(summary: ExportSummary, root: TreeNode | undefined): Promise<void>;
  /** After an error or an interrupt: close what is open. */
  abandon(): Promise<void>;
}

const SLASH = 0x2f;
/** Old tool: cryptography's AES-GCM refuses 2^31 bytes and more (legacy-formats.md §1). */
const OLD_TOOL_MAX_ENC = 2 ** 31;
const GLOB_CHARS = /[[\]*?]/;

export async function exportSnapshot(indexed: IndexedRepository, trees: TreeReader, snapshot: Snapshot, options: ExportOptions): Promise<ExportSummary> {
  const summary: ExportSummary = { files: 0, dirs: 0, symlinks: 0, bytes: 0, skipped: 0 };
  const base = await exportBase(trees, snapshot);
  const writer = await openWriter(snapshot, options);
  try {
    for await (const entry of exportEntries(trees, base, options)) {
      if (options.signal?.aborted) throw new AbortedError();
      const { node } = entry;
      if (node.type === 'dir') {
        await writer.dir(entry);
        summary.dirs++;
      } else if (node.type === 'file') {
        await writer.file(entry, new CheckedContent(indexed, entry, options.signal));
        summary.files++;
        summary.bytes += node.size;
        options.onProgress?.({ files: summary.files, bytes: summary.bytes });
      } else if (node.type === 'symlink' && (await writer.symlink(entry))) {
        summary.symlinks++;
      } else {
        summary.skipped++;
        options.onWarning(`${showPath(entry.pathBytes)}: ${node.type === 'symlink' ? 'symlinks are not exported in this format' : `a ${node.type} is not exported (only files, directories and symlinks are)`}`);
      }
    }
    await writer.finish(summary, base.node);
    return summary;
  } catch (error) {
    await writer.abandon();
    throw error;
  }
}

function showPath(bytes: Buffer): string {
  return bytes.toString('utf8');
}

/**
 * The deepest directory holding every backup path of the snapshot, as path bytes ("/" for the
 * root): a single directory path is its own base, a single file path its parent.
 */
interface ExportBase {
  /** Its path bytes ("/" for the root). */
  base: Buffer;
  tree: Buffer;
  /** The directory's node (none for the root). */
  node?: TreeNode;
}

async function exportBase(trees: TreeReader, snapshot: Snapshot): Promise<ExportBase> {
  const root = Buffer.from(snapshot.record.tree, 'hex');
  const split = snapshot.record.paths.map((p) => p.split('/').filter((part) => part !== ''));
  let common = split[0] ?? [];
  for (const parts of split.slice(1)) {
    let i = 0;
    while (i < common.length && i < parts.length && common[i] === parts[i]) i++;
    common = common.slice(0, i);
  }
  for (;;) {
    if (common.length === 0) return { base: Buffer.from('/'), tree: root };
    const node = await resolvePath(trees, root, common.map((c) => Buffer.from(c)));
    if (node?.type === 'dir' && node.subtree) return { base: Buffer.from(`/${common.join('/')}`), tree: node.subtree, node };
    common = common.slice(0, -1);
  }
}

/**
 * The entries below the base, in walk order (a directory before what it holds), as restore
 * selects them: an excluded entry is left out with all below it; with include patterns, an
 * entry is exported when it or a directory above it matches (directories on the way to a
 * match are exported too).
 */
async function* exportEntries(trees: TreeReader, { base, tree }: ExportBase, options: ExportOptions): AsyncGenerator<ExportEntry> {
  const relative = (pathBytes: Buffer): Buffer => pathBytes.subarray(base.length === 1 ? 1 : base.length + 1);
  /** Depth of the included directory the walk is inside of. */
  let selectedDepth: number | undefined;
  /** Directories on the way down not exported yet (waiting for something below them to be). */
  const pendingDirs: ExportEntry[] = [];
  const isExcluded = (pathBytes: Buffer, node: TreeNode): boolean => options.exclude(pathBytes.toString(), node.name.toString());
  for await (const entry of walkTree(trees, tree, { prefix: base.length === 1 ? Buffer.alloc(0) : base, descend: (e) => !isExcluded(e.pathBytes, e.node) })) {
    const name = entry.node.name.toString();
    const path = entry.pathBytes.toString();
    if (selectedDepth !== undefined && entry.depth <= selectedDepth) selectedDepth = undefined;
    while (pendingDirs.length > 0 && pendingDirs.length >= entry.depth) pendingDirs.pop();
    if (isExcluded(entry.pathBytes, entry.node)) continue;
    const item: ExportEntry = { pathBytes: entry.pathBytes, relative: relative(entry.pathBytes), node: entry.node };
    const selected = selectedDepth !== undefined || !options.include || options.include(path, name);
    if (selected) {
      yield* pendingDirs.splice(0);
      yield item;
      if (entry.node.type === 'dir' && selectedDepth === undefined && options.include) selectedDepth = entry.depth;
    } else if (entry.node.type === 'dir') {
      pendingDirs.push(item);
    }
  }
}

/**
 * A file's plaintext, chunk by chunk (each checked against its id as it is read), hashed on
 * the way; at the end the hash is checked against the SHA-256 the snapshot recorded, and kept
 * for the manifest of an `enc` export.
 */
class CheckedContent implements AsyncIterable<Buffer> {
  /** The plaintext's SHA-256, once every piece was read. */
  sha256: Buffer | undefined;

  constructor(
    private readonly indexed: IndexedRepository,
    private readonly entry: ExportEntry,
    private readonly signal: AbortSignal | undefined,
  ) {}

  async *[Symbol.asyncIterator](): AsyncGenerator<Buffer> {
    const hash = createHash('sha256');
    for (const id of this.entry.node.content ?? []) {
      if (this.signal?.aborted) throw new AbortedError();
      const plaintext = await this.indexed.loadBlob('data', id);
      hash.update(plaintext);
      yield plaintext;
    }
    const digest = hash.digest();
    const recorded = this.entry.node.sha256;
    if (recorded && !digest.equals(recorded)) throw new ExportError(`${showPath(this.entry.pathBytes)}: content does not match the SHA-256 the snapshot recorded (the repository is damaged: run 'bh check --read-data')`);
    this.sha256 = digest;
  }
}

async function openWriter(snapshot: Snapshot, options: ExportOptions): Promise<EntryWriter> {
  if (options.format === 'zip' || options.format === 'zip-aes') return ZipEntryWriter.open(options);
  await prepareTargetDir(options.target);
  if (options.format === 'plain') return new DirEntryWriter(options.target, undefined, snapshot, options);
  if (!options.encSecret) throw new ExportError('--format enc needs --passphrase-file or --key-file');
  return new DirEntryWriter(options.target, new LegacyKeys(options.encSecret), snapshot, options);
}

/** The target directory: made if missing; one with anything in it is refused (nothing there is ever overwritten or followed). */
async function prepareTargetDir(target: string): Promise<void> {
  await mkdir(target, { recursive: true, mode: 0o700 });
  const present = await readdir(target);
  if (present.length > 0) throw new ExportError(`the target ${target} is not empty: export into a new or empty directory`);
}

/** `plain` and `enc`: files under a directory. */
class DirEntryWriter implements EntryWriter {
  /** Directories and their metadata, applied once everything is written (deepest first). */
  private readonly dirs: { dest: Buffer; node: TreeNode }[] = [];
  private readonly copied: ManifestCopied[] = [];
  private readonly root: Buffer;

  constructor(
    target: string,
    private readonly keys: LegacyKeys | undefined,
    private readonly snapshot: Snapshot,
    private readonly options: ExportOptions,
  ) {
    this.root = Buffer.from(target);
  }

  private dest(entry: ExportEntry, suffix = ''): Buffer {
    return Buffer.concat([this.root, Buffer.of(SLASH), entry.relative, Buffer.from(suffix)]);
  }

  async dir(entry: ExportEntry): Promise<void> {
    const dest = this.dest(entry);
    await mkdir(dest, { mode: 0o700 });
    this.dirs.push({ dest, node: entry.node });
  }

  async file(entry: ExportEntry, content: CheckedContent): Promise<void> {
    const { node } = entry;
    const dest = this.dest(entry, this.keys ? ENC_SUFFIX : '');
    if (this.keys) {
      const name = node.name.toString();
      if (GLOB_CHARS.test(name)) this.options.onWarning(`${showPath(entry.pathBytes)}: the old tool cannot find names with [ ] * ? (it reads them as patterns)`);
      if (node.size >= OLD_TOOL_MAX_ENC) this.options.onWarning(`${showPath(entry.pathBytes)}: 2 GiB or more: the old tool cannot decrypt it (bh import-legacy can)`);
    }
    // O_EXCL|O_NOFOLLOW: a name is written once, and nothing in the target is followed.
    const handle = await open(dest, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    try {
      const bytes = this.keys ? encryptStream(await this.keys.newKey(), content) : content;
      for await (const piece of bytes) await handle.write(piece);
      await handle.chmod(node.mode & 0o7777);
    } finally {
      await handle.close();
    }
    lutimesNs(dest, node.mtimeNs, node.mtimeNs);
    if (this.keys) {
      const item: ManifestCopied = { path: pathFromBytes(entry.pathBytes), size: node.size };
      if (content.sha256) item.checksum = content.sha256.toString('hex');
      this.copied.push(item);
    }
  }

  async symlink(entry: ExportEntry): Promise<boolean> {
    if (this.keys) return false;
    const dest = this.dest(entry);
    await symlink(entry.node.linkTarget ?? Buffer.alloc(0), dest);
    lutimesNs(dest, entry.node.mtimeNs, entry.node.mtimeNs);
    return true;
  }

  async finish(summary: ExportSummary, root: TreeNode | undefined): Promise<void> {
    if (this.keys) {
      await this.keys.close();
      summary.manifest = await this.writeManifest();
    }
    // Directories last, deepest first: writing into a directory changes its mtime.
    if (root) this.dirs.unshift({ dest: this.root, node: root });
    for (const { dest, node } of this.dirs.reverse()) {
      await chmod(dest, node.mode & 0o7777);
      lutimesNs(dest, node.mtimeNs, node.mtimeNs);
    }
  }

  /** The old tool's manifest of what was written, at the top of the folder. */
  private async writeManifest(): Promise<string> {
    const manifest = manifestOfSnapshot(this.snapshot, this.copied);
    const file = `${this.options.target}/${manifestFileName(manifest.timestamp)}`;
    const text = formatManifest(manifest);
    await writeFile(file, `${text}\n`, { flag: 'wx', mode: 0o644 });
    return file;
  }

  async abandon(): Promise<void> {
    await this.keys?.close();
  }
}

/** `zip`, `zip-aes`: one streamed ZIP file. */
class ZipEntryWriter implements EntryWriter {
  private constructor(
    private readonly zip: ZipWriter<unknown>,
    private readonly options: ExportOptions,
  ) {}

  static async open(options: ExportOptions): Promise<ZipEntryWriter> {
    if (options.format === 'zip-aes' && !options.zipPassword) throw new ExportError('--format zip-aes needs --passphrase-file (the ZIP password)');
    // In-process (no web workers in Node), Node's own zlib behind CompressionStream.
    configure({ useWebWorkers: false });
    const file = createWriteStream(options.target, { flags: 'wx', mode: 0o600 });
    await new Promise<void>((resolve, reject) => {
      file.once('open', () => resolve());
      file.once('error', (error) => reject(new ExportError(`cannot create ${options.target}: ${error.message}`)));
    });
    const writable = Writable.toWeb(file) as unknown as WritableStream<Uint8Array>;
    const encryption = options.format === 'zip-aes' ? { password: options.zipPassword, encryptionStrength: 3 as const, zipCrypto: false } : {};
    return new ZipEntryWriter(new ZipWriter(writable, { ...encryption, msDosCompatible: false, keepOrder: true, bufferedWrite: false }), options);
  }

  private name(entry: ExportEntry, directory = false): string {
    const text = entry.relative.toString('utf8');
    if (!Buffer.from(text).equals(entry.relative)) this.options.onWarning(`${showPath(entry.pathBytes)}: the name is not UTF-8; stored with U+FFFD in place of the bytes ZIP cannot carry`);
    return directory ? `${text}/` : text;
  }

  private common(node: TreeNode): { lastModDate: Date } {
    return { lastModDate: new Date(Number(node.mtimeNs / 1_000_000n)) };
  }

  async dir(entry: ExportEntry): Promise<void> {
    await this.zip.add(this.name(entry, true), undefined, { ...this.common(entry.node), directory: true, unixMode: 0o040000 | (entry.node.mode & 0o777) });
  }

  async file(entry: ExportEntry, content: CheckedContent): Promise<void> {
    const { node } = entry;
    // Entries whose sizes need ZIP64 get it in their local header; the others stay plain ZIP.
    await this.zip.add(this.name(entry), ReadableStream.from(content) as unknown as globalThis.ReadableStream<Uint8Array>, {
      ...this.common(node),
      unixMode: 0o100000 | (node.mode & 0o777),
      uncompressedSize: node.size,
      zip64: node.size >= 0xffff0000,
    });
  }

  async symlink(entry: ExportEntry): Promise<boolean> {
    const target = entry.node.linkTarget ?? Buffer.alloc(0);
    await this.zip.add(this.name(entry), ReadableStream.from([target]) as unknown as globalThis.ReadableStream<Uint8Array>, { ...this.common(entry.node), unixMode: 0o120777 });
    return true;
  }

  async finish(): Promise<void> {
    await this.zip.close();
  }

  async abandon(): Promise<void> {
    await this.zip.close().catch(() => undefined);
  }
}
