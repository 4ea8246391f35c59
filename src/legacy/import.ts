/**
 * `bh import-legacy`: an old Backup Handler destination (or one of its ZIPs) becomes snapshots
 * (shared/seed/legacy-formats.md; README "Importing old backups").
 *
 * Three phases, so that nothing is written to the repository before every input was read:
 * 1. scan: the folder's mirror files (plain, `.enc`, symlinks), its top-level manifests and
 *    its ZIPs (`backup_YYYYMMDD_HHMMSS.zip`, also `.zip.enc`);
 * 2. read: every file is decrypted (tag checked) or copied into a private staging pool,
 *    hashed, and every ZIP is extracted there (CRC checked). A wrong passphrase or key, or a
 *    wrong ZIP password, stops the import here (WrongLegacyKeyError): no snapshot is written,
 *    and nothing encrypted is ever taken for content;
 * 3. snapshots, oldest first: each manifest's point in time (a full run's `copied` list; an
 *    incremental or differential one's `copied` and `skipped`), each ZIP, and the files no
 *    manifest names, are staged as hard links below a private directory and backed up by the
 *    ordinary archiver (`runBackup` with `root`), with the manifest's time and mode, the
 *    source directory the manifests name as the snapshot's path.
 *
 * The mirror holds only the newest version of each file: a manifest's file whose content is
 * now a later run's is reported as not recoverable in that older version and left out of that
 * snapshot; a file whose content matches no manifest's checksum is a checksum mismatch (an
 * error: exit 3, the rest is imported). Names from manifests and archives that could escape a
 * directory (`..`, absolute archive names, NUL) are refused.
 */
import { createHash } from 'node:crypto';
import { createReadStream, openAsBlob } from 'node:fs';
import { chmod, link, lstat, mkdir, mkdtemp, open, readFile, readdir, readlink, rm, stat, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { Writable } from 'node:stream';
import { BlobReader, ERR_INVALID_PASSWORD, type Entry, ZipReader, configure } from '@zip.js/zip.js';
import { lutimesNs } from '../fsx/index.js';
import { AbortedError } from '../repo/errors.js';
import { mapLimit, type Repository } from '../repo/repository.js';
import { workerCount } from '../repo/worker-pool.js';
import { runBackup } from '../snapshot/backup.js';
import type { BackupMode, DamagedSnapshotHandler } from '../snapshot/snapshot.js';
import { type EncSecret, ENC_OVERHEAD, ENC_SUFFIX, EncAuthenticationError, SALT_BYTES, decryptStream } from './enc.js';
import { LegacyKeys } from './kdf.js';
import { type LegacyManifest, dateOfStamp, manifestStampOf, parseManifest, pathToBytes } from './manifest.js';

export interface ImportOptions {
  /** The old destination folder, or one ZIP file. */
  source: string;
  encSecret?: EncSecret | undefined;
  zipPassword?: string | undefined;
  /** The source directory the snapshots record; inferred from the manifests when absent. */
  sourceDir?: string | undefined;
  host?: string | undefined;
  tags: string[];
  dryRun: boolean;
  /** Where staging goes (default: the system's temporary directory). */
  tempDir?: string | undefined;
  signal?: AbortSignal | undefined;
  onWarning: (message: string) => void;
  onError: (path: string, message: string) => void;
  onDamagedSnapshot: DamagedSnapshotHandler;
  /** A snapshot planned (dry run) or written. */
  onSnapshot: (snapshot: ImportedSnapshot) => void;
}

export interface ImportedSnapshot {
  /** What it comes from: a manifest's or ZIP's name, or "files no manifest lists". */
  origin: string;
  time: Date;
  mode: BackupMode;
  path: string;
  files: number;
  bytes: number;
  /** Files of this point in time whose version here the folder no longer holds. */
  notRecovered: string[];
  /** Undefined on a dry run. */
  id: string | undefined;
}

export interface ImportResult {
  snapshots: ImportedSnapshot[];
  errors: number;
}

/** The passphrase, key file or ZIP password does not open the old backup: nothing was imported. */
export class WrongLegacyKeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WrongLegacyKeyError';
  }
}

/** Input that cannot be imported at all (no secret for .enc files, nothing to import). */
export class LegacyImportError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LegacyImportError';
  }
}

const ZIP_NAME = /^backup_(\d{8}_\d{6})\.zip(\.enc)?$/;
const SLASH = 0x2f;

/** A file read into the staging pool. */
interface Staged {
  /** In the pool (undefined on a dry run). */
  pool: string | undefined;
  size: number;
  sha256: string;
  /** A symlink's target instead of content. */
  linkTarget?: Buffer;
}

/** A file of the old mirror. */
interface MirrorFile {
  /** Relative path in the folder, as bytes, without `.enc`. */
  rel: Buffer;
  abs: Buffer;
  encrypted: boolean;
  symlink: boolean;
  staged?: Staged;
  /** Some manifest lists it. */
  listed?: boolean;
}

interface Scan {
  manifests: { name: string; manifest: LegacyManifest }[];
  zips: { name: string; abs: string; stamp: string; encrypted: boolean }[];
  /** By rel bytes as latin1. */
  mirror: Map<string, MirrorFile>;
  folderTime: Date;
}

/** One snapshot to write: its files by path relative to the source directory. */
interface Plan {
  origin: string;
  time: Date;
  mode: BackupMode;
  files: { rel: Buffer; staged: Staged }[];
  notRecovered: string[];
  tags: string[];
}

const key = (bytes: Buffer): string => bytes.toString('latin1');

export async function importLegacy(repo: Repository | undefined, options: ImportOptions): Promise<ImportResult> {
  configure({ useWebWorkers: false });
  const temp = await mkdtemp(join(options.tempDir ?? tmpdir(), 'bh-import-'));
  await chmod(temp, 0o700);
  const state = { errors: 0 };
  const error = (path: string, message: string): void => {
    state.errors++;
    options.onError(path, message);
  };
  try {
    const isZip = (await stat(options.source)).isFile();
    const scan = isZip ? zipOnlyScan(options.source) : await scanFolder(options.source, options, error);
    const keys = options.encSecret ? new LegacyKeys(options.encSecret) : undefined;
    try {
      await stageMirror(scan, keys, temp, options, error);
      const plans: Plan[] = [];
      const sourceDir = options.sourceDir ?? inferSourceDir(scan, options);
      plans.push(...planManifests(scan, sourceDir, options, error));
      for (const zip of scan.zips) plans.push(await stageZip(zip, keys, temp, plans.length, options, error));
      plans.push(...planUnlisted(scan, plans, options));
      plans.sort((a, b) => a.time.getTime() - b.time.getTime());
      if (plans.length === 0) throw new LegacyImportError(`${options.source}: nothing to import (no manifests, mirror files or ZIPs found)`);
      const snapshots: ImportedSnapshot[] = [];
      for (const [index, plan] of plans.entries()) {
        if (options.signal?.aborted) throw new AbortedError();
        const snapshot = await writeSnapshot(repo, plan, sourceDir, join(temp, `stage-${index}`), options, error);
        snapshots.push(snapshot);
        options.onSnapshot(snapshot);
      }
      return { snapshots, errors: state.errors };
    } finally {
      await keys?.close();
    }
  } finally {
    await rm(temp, { recursive: true, force: true });
  }
}

// ---- phase 1: scan ------------------------------------------------------------------------------

function zipOnlyScan(file: string): Scan {
  const name = posix.basename(file);
  const match = ZIP_NAME.exec(name);
  return {
    manifests: [],
    zips: [{ name, abs: file, stamp: match?.[1] ?? '', encrypted: name.endsWith(ENC_SUFFIX) }],
    mirror: new Map(),
    folderTime: new Date(),
  };
}

async function scanFolder(folder: string, options: ImportOptions, error: (path: string, message: string) => void): Promise<Scan> {
  const scan: Scan = { manifests: [], zips: [], mirror: new Map(), folderTime: (await stat(folder)).mtime };
  const root = Buffer.from(folder);
  const walk = async (dir: Buffer, rel: Buffer | undefined): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true, encoding: 'buffer' })) {
      const name = entry.name;
      const abs = Buffer.concat([dir, Buffer.of(SLASH), name]);
      const entryRel = rel ? Buffer.concat([rel, Buffer.of(SLASH), name]) : name;
      const text = name.toString();
      if (entry.isDirectory()) {
        await walk(abs, entryRel);
        continue;
      }
      // The old tool's manifests, wherever they are, are never backup content.
      if (manifestStampOf(text) !== undefined) {
        if (rel === undefined) {
          try {
            scan.manifests.push({ name: text, manifest: parseManifest(await readFile(abs, 'utf8'), abs.toString()) });
          } catch (e) {
            error(abs.toString(), (e as Error).message);
          }
        }
        continue;
      }
      const zip = rel === undefined ? ZIP_NAME.exec(text) : null;
      if (zip && entry.isFile()) {
        scan.zips.push({ name: text, abs: abs.toString(), stamp: zip[1]!, encrypted: zip[2] !== undefined });
        continue;
      }
      if (!entry.isFile() && !entry.isSymbolicLink()) {
        options.onWarning(`${abs.toString()}: not a file, directory or symlink: left out`);
        continue;
      }
      const encrypted = entry.isFile() && text.endsWith(ENC_SUFFIX);
      const mirrorRel = encrypted ? entryRel.subarray(0, entryRel.length - ENC_SUFFIX.length) : entryRel;
      const existing = scan.mirror.get(key(mirrorRel));
      // Both NAME and NAME.enc: a file that failed to encrypt beside its encrypted copy; the plain one is the file.
      if (existing && !existing.encrypted) continue;
      scan.mirror.set(key(mirrorRel), { rel: mirrorRel, abs, encrypted, symlink: entry.isSymbolicLink() });
    }
  };
  await walk(root, undefined);
  scan.manifests.sort((a, b) => a.manifest.timestamp.localeCompare(b.manifest.timestamp));
  return scan;
}

// ---- phase 2: read everything into the staging pool ------------------------------------------

async function stageMirror(scan: Scan, keys: LegacyKeys | undefined, temp: string, options: ImportOptions, error: (path: string, message: string) => void): Promise<void> {
  const files = [...scan.mirror.values()];
  const encrypted = files.filter((f) => f.encrypted);
  if ((encrypted.length > 0 || scan.zips.some((z) => z.encrypted)) && !keys) {
    throw new LegacyImportError(`${options.source} holds ${encrypted.length > 0 ? `${encrypted.length} .enc files` : 'encrypted ZIPs'}: give the old passphrase (--passphrase-file FILE) or key file (--legacy-key-file FILE)`);
  }
  const pool = join(temp, 'pool');
  await mkdir(pool, { mode: 0o700 });
  let next = 0;
  const poolPath = (): string | undefined => (options.dryRun ? undefined : join(pool, String(next++)));
  // The key first, on the smallest files: a wrong one stops the import before anything else is read.
  if (encrypted.length > 0) {
    const sizes = await Promise.all(encrypted.map(async (f) => (await stat(f.abs)).size));
    const order = encrypted.map((f, i) => ({ f, size: sizes[i]! })).sort((a, b) => a.size - b.size).map((x) => x.f);
    let opened = 0;
    const probes = order.slice(0, 3);
    for (const file of probes) {
      try {
        file.staged = await stageEncrypted(file.abs, keys!, poolPath());
        opened++;
        break;
      } catch (e) {
        if (!(e instanceof EncAuthenticationError)) throw e;
      }
    }
    if (opened === 0) throw new WrongLegacyKeyError(`the passphrase or key file does not decrypt ${probes.length === 1 ? 'the .enc file' : `any of the ${probes.length} smallest .enc files`} of ${options.source} (${probes.map((p) => p.abs.toString()).join(', ')}): nothing was imported`);
  }
  await mapLimit(files.filter((f) => f.staged === undefined), Math.max(2, workerCount()), async (file) => {
    if (options.signal?.aborted) throw new AbortedError();
    try {
      if (file.symlink) file.staged = await stageSymlink(file.abs);
      else if (file.encrypted) file.staged = await stageEncryptedOrPlain(file, keys!, poolPath(), options);
      else file.staged = await stagePlain(file.abs, poolPath());
    } catch (e) {
      if (e instanceof AbortedError) throw e;
      error(file.abs.toString(), (e as Error).message);
    }
  });
}

/** A `.enc` that does not authenticate while others do: a file whose own name ended in .enc (or that failed to encrypt) is plaintext. */
async function stageEncryptedOrPlain(file: MirrorFile, keys: LegacyKeys, pool: string | undefined, options: ImportOptions): Promise<Staged> {
  try {
    return await stageEncrypted(file.abs, keys, pool);
  } catch (e) {
    if (!(e instanceof EncAuthenticationError)) throw e;
    options.onWarning(`${file.abs.toString()}: does not decrypt with the key that opens the other .enc files: taken as a plaintext file named ${ENC_SUFFIX} (if it is damaged, its checksum will not match)`);
    file.rel = Buffer.concat([file.rel, Buffer.from(ENC_SUFFIX)]);
    file.encrypted = false;
    return stagePlain(file.abs, pool);
  }
}

/** Copies (or, on a dry run, only reads) a stream into the pool, hashing it; gives the staged file with the source's mode and mtime. */
async function stageStream(input: AsyncIterable<Uint8Array> | ((write: (piece: Buffer) => Promise<void>) => Promise<void>), pool: string | undefined, meta: { mode: number; mtimeNs: bigint }): Promise<Staged> {
  const hash = createHash('sha256');
  let size = 0;
  const handle = pool ? await open(pool, 'wx', 0o600) : undefined;
  const write = async (piece: Buffer): Promise<void> => {
    hash.update(piece);
    size += piece.length;
    if (handle) await handle.write(piece);
  };
  try {
    if (typeof input === 'function') await input(write);
    else for await (const piece of input) await write(Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength));
  } catch (e) {
    await handle?.close();
    if (pool) await rm(pool, { force: true });
    throw e;
  }
  if (handle) {
    await handle.chmod(meta.mode & 0o7777);
    await handle.close();
    lutimesNs(pool!, meta.mtimeNs, meta.mtimeNs);
  }
  return { pool, size, sha256: hash.digest('hex') };
}

async function stagePlain(abs: Buffer, pool: string | undefined): Promise<Staged> {
  const st = await lstat(abs, { bigint: true });
  return stageStream(createReadStream(abs), pool, { mode: Number(st.mode), mtimeNs: st.mtimeNs });
}

/** Decrypts a .enc file into the pool; it is kept only once its tag verified. Its mtime is the encryption's (the old tool lost the source's). */
async function stageEncrypted(abs: Buffer, keys: LegacyKeys, pool: string | undefined): Promise<Staged> {
  const st = await lstat(abs, { bigint: true });
  if (st.size < BigInt(ENC_OVERHEAD)) throw new EncAuthenticationError(abs.toString());
  const header = Buffer.alloc(SALT_BYTES);
  const fd = await open(abs, 'r');
  try {
    await fd.read(header, 0, SALT_BYTES, 0);
  } finally {
    await fd.close();
  }
  const key = await keys.keyFor(header);
  return stageStream((write) => decryptStream(key, createReadStream(abs), write, abs.toString()), pool, { mode: Number(st.mode), mtimeNs: st.mtimeNs });
}

async function stageSymlink(abs: Buffer): Promise<Staged> {
  const target = await readlink(abs, { encoding: 'buffer' });
  return { pool: undefined, size: 0, sha256: '', linkTarget: target };
}

/** A relative path from a manifest or an archive that stays inside its directory (no `..`, `.`, empty part, leading `/` or drive letter, NUL; `\\` counts as a separator); undefined for a hostile one. */
function safeRelative(rel: Buffer): Buffer | undefined {
  if (rel.length === 0 || rel[0] === SLASH || rel.includes(0) || /^[A-Za-z]:/.test(rel.toString('latin1'))) return undefined;
  const parts = rel.toString('latin1').split(/[/\\]/);
  if (parts.some((p) => p === '..' || p === '.' || p === '')) return undefined;
  return rel;
}

/** Extracts one ZIP (decrypting a .zip.enc first) into the staging area; its plan. */
async function stageZip(zip: Scan['zips'][number], keys: LegacyKeys | undefined, temp: string, index: number, options: ImportOptions, error: (path: string, message: string) => void): Promise<Plan> {
  let file = zip.abs;
  if (zip.encrypted) {
    const decrypted = join(temp, `zip-${index}.zip`);
    await stageEncrypted(Buffer.from(zip.abs), keys!, decrypted);
    file = decrypted;
  }
  const reader = new ZipReader(new BlobReader(await openAsBlob(file)), { password: options.zipPassword });
  const files: Plan['files'] = [];
  const dir = join(temp, `zip-${index}`);
  await mkdir(dir, { mode: 0o700 });
  try {
    // Every name is checked here (safeRelative), one entry at a time: a hostile one is refused, the others imported.
    const entries = await reader.getEntries({ filenameValidation: 'tolerant' });
    const taken = new Set<string>();
    for (const [n, entry] of entries.entries()) {
      if (entry.directory) continue;
      const raw = Buffer.from(entry.rawFilename);
      const rel = safeRelative(raw);
      if (!rel) {
        error(`${zip.abs}: ${JSON.stringify(raw.toString())}`, 'refused: the name could escape the directory (absolute, .., or NUL)');
        continue;
      }
      const unique = uniqueName(rel, taken);
      if (!unique.equals(rel)) options.onWarning(`${zip.abs}: two entries named ${rel.toString()} (the old tool's password ZIPs keep only file names): the later one is imported as ${unique.toString()}`);
      const staged = await stageZipEntry(zip.abs, entry, options.dryRun ? undefined : join(dir, String(n)), options);
      if (staged) files.push({ rel: unique, staged });
    }
  } finally {
    await reader.close();
  }
  const time = dateOfStamp(zip.stamp) ?? (await stat(zip.abs)).mtime;
  return { origin: zip.name, time, mode: 'full', files, notRecovered: [], tags: ['legacy-zip'] };
}

async function stageZipEntry(zipPath: string, entry: Entry, pool: string | undefined, options: ImportOptions): Promise<Staged | undefined> {
  if (entry.directory) return undefined;
  if (entry.encrypted && !options.zipPassword) throw new LegacyImportError(`${zipPath} is password-protected: give its password with --passphrase-file FILE`);
  const mode = entry.unixMode !== undefined && (entry.unixMode & 0o170000) === 0o100000 ? entry.unixMode : 0o644;
  const mtimeNs = BigInt(entry.lastModDate.getTime()) * 1_000_000n;
  try {
    return await stageStream(
      async (write) => {
        const sink = new Writable({
          write: (chunk: Buffer, _encoding, done) => void write(chunk).then(() => done(), done),
        });
        await entry.getData!(Writable.toWeb(sink) as unknown as WritableStream<Uint8Array>, { password: options.zipPassword });
      },
      pool,
      { mode, mtimeNs },
    );
  } catch (e) {
    if ((e as Error).message === ERR_INVALID_PASSWORD) throw new WrongLegacyKeyError(`the ZIP password does not open ${zipPath}: nothing was imported`);
    throw e;
  }
}

/** `rel`, or `rel (2)`, `rel (3)`, … when taken (the suffix before the extension). */
function uniqueName(rel: Buffer, taken: Set<string>): Buffer {
  let candidate = rel;
  for (let n = 2; taken.has(key(candidate)); n++) {
    const text = rel.toString('latin1');
    const dot = text.lastIndexOf('.');
    candidate = Buffer.from(dot > 0 ? `${text.slice(0, dot)} (${n})${text.slice(dot)}` : `${text} (${n})`, 'latin1');
  }
  taken.add(key(candidate));
  return candidate;
}

// ---- phase 3: plans and snapshots -------------------------------------------------------------

/**
 * The source directory: the prefix that, cut from the manifests' paths, leaves paths the
 * mirror holds (the most frequent such prefix); else the manifests' common directory; else,
 * with no manifests at all, the folder itself.
 */
function inferSourceDir(scan: Scan, options: ImportOptions): string {
  const votes = new Map<string, number>();
  const all = scan.manifests.flatMap((m) => m.manifest.copied.map((c) => c.path));
  for (const path of all) {
    const parts = path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const rel = Buffer.from(pathToBytes(parts.slice(i).join('/')));
      if (scan.mirror.has(key(rel))) {
        const prefix = parts.slice(0, i).join('/') || '/';
        votes.set(prefix, (votes.get(prefix) ?? 0) + 1);
        break;
      }
    }
  }
  const best = [...votes.entries()].sort((a, b) => b[1] - a[1])[0];
  if (best) return absolute(best[0], options);
  if (all.length > 0) return absolute(commonDir(all), options);
  return posix.resolve(options.source.endsWith('.zip') || options.source.endsWith('.zip.enc') ? options.source.replace(/\.zip(\.enc)?$/, '') : options.source);
}

function absolute(dir: string, options: ImportOptions): string {
  if (dir.startsWith('/')) return posix.normalize(dir);
  options.onWarning(`the manifests name a relative source directory (${dir}): recorded as /${dir}; use --source-dir to choose another`);
  return posix.resolve('/', dir);
}

function commonDir(paths: string[]): string {
  let common = paths[0]!.split('/').slice(0, -1);
  for (const path of paths.slice(1)) {
    const parts = path.split('/');
    let i = 0;
    while (i < common.length && common[i] === parts[i]) i++;
    common = common.slice(0, i);
  }
  return common.join('/') || '/';
}

/** Each manifest's point in time. */
function planManifests(scan: Scan, sourceDir: string, options: ImportOptions, error: (path: string, message: string) => void): Plan[] {
  const plans: Plan[] = [];
  /** Per path (relative, latin1 key): the checksums later manifests recorded, to tell an older version from damage. */
  const checksumsOf = new Map<string, Set<string>>();
  const relOf = (path: string, manifest: string): Buffer | undefined => {
    const prefix = sourceDir === '/' ? '/' : `${sourceDir}/`;
    const abs = path.startsWith('/') ? path : `/${path}`;
    if (!abs.startsWith(prefix)) {
      options.onWarning(`${manifest}: ${path} is outside the source directory ${sourceDir}: left out`);
      return undefined;
    }
    const rel = safeRelative(pathToBytes(abs.slice(prefix.length)));
    if (!rel) error(`${manifest}: ${JSON.stringify(path)}`, 'refused: the path could escape the source directory (.., or NUL)');
    return rel;
  };
  for (const { manifest } of scan.manifests) {
    for (const c of manifest.copied) if (c.checksum) checksumsOf.set(c.path, (checksumsOf.get(c.path) ?? new Set()).add(c.checksum));
  }
  /** The state after each run: path → its latest copied entry. */
  let state = new Map<string, LegacyManifest['copied'][number]>();
  for (const { name, manifest } of scan.manifests) {
    const next = new Map<string, LegacyManifest['copied'][number]>();
    if (manifest.mode !== 'full') for (const s of manifest.skipped) { const before = state.get(s.path); if (before) next.set(s.path, before); }
    for (const c of manifest.copied) next.set(c.path, c);
    state = next;
    const files: Plan['files'] = [];
    const notRecovered: string[] = [];
    for (const [path, entry] of state) {
      const rel = relOf(path, name);
      if (!rel) continue;
      const file = scan.mirror.get(key(rel));
      if (!file) {
        error(`${name}: ${path}`, 'not in the folder (deleted, or never copied there): left out');
        continue;
      }
      const staged = file.staged;
      if (!staged) continue;
      file.listed = true;
      if (entry.checksum && staged.linkTarget === undefined && staged.sha256 !== entry.checksum) {
        if (checksumsOf.get(path)?.has(staged.sha256)) notRecovered.push(path);
        else error(file.abs.toString(), `checksum mismatch: SHA-256 ${staged.sha256}, the manifest ${name} recorded ${entry.checksum}: left out`);
        continue;
      }
      files.push({ rel, staged });
    }
    if (notRecovered.length > 0) options.onWarning(`${name}: ${notRecovered.length} file(s) could not be recovered in this older version (the folder holds only their newest version): ${notRecovered.slice(0, 5).join(', ')}${notRecovered.length > 5 ? ', …' : ''}`);
    const time = dateOfStamp(manifest.timestamp)!;
    plans.push({ origin: name, time, mode: manifest.mode, files, notRecovered, tags: ['legacy-manifest'] });
  }
  return plans;
}

/** The mirror files no manifest lists: one snapshot at the folder's time. */
function planUnlisted(scan: Scan, plans: Plan[], options: ImportOptions): Plan[] {
  const files = [...scan.mirror.values()].filter((f) => !f.listed && f.staged).map((f) => ({ rel: f.rel, staged: f.staged! }));
  if (files.length === 0) return [];
  if (plans.length > 0) options.onWarning(`${files.length} file(s) of the folder are in no manifest: imported as one more snapshot at the folder's time`);
  return [{ origin: scan.manifests.length > 0 ? 'files no manifest lists' : 'the folder (no manifests)', time: scan.folderTime, mode: 'full', files, notRecovered: [], tags: ['legacy-unlisted'] }];
}

async function writeSnapshot(repo: Repository | undefined, plan: Plan, sourceDir: string, stage: string, options: ImportOptions, error: (path: string, message: string) => void): Promise<ImportedSnapshot> {
  const bytes = plan.files.reduce((n, f) => n + f.staged.size, 0);
  const result: ImportedSnapshot = { origin: plan.origin, time: plan.time, mode: plan.mode, path: sourceDir, files: plan.files.length, bytes, notRecovered: plan.notRecovered, id: undefined };
  if (options.dryRun || !repo) return result;
  const base = Buffer.from(join(stage, sourceDir));
  await mkdir(base, { recursive: true, mode: 0o700 });
  for (const { rel, staged } of plan.files) {
    const dest = Buffer.concat([base, Buffer.of(SLASH), rel]);
    await mkdir(dest.subarray(0, dest.lastIndexOf(SLASH)), { recursive: true, mode: 0o755 });
    if (staged.linkTarget !== undefined) await symlink(staged.linkTarget, dest);
    else await link(staged.pool!, dest);
  }
  try {
    const backup = await runBackup(repo, {
      paths: [sourceDir],
      root: stage,
      mode: plan.mode,
      exclude: () => false,
      excludePatterns: [],
      tags: [...options.tags, ...plan.tags],
      host: options.host,
      time: plan.time,
      signal: options.signal,
      onError: (e) => error(e.path, e.message),
      onDamagedSnapshot: options.onDamagedSnapshot,
    });
    result.id = backup.snapshotId;
    return result;
  } finally {
    await rm(stage, { recursive: true, force: true });
  }
}
