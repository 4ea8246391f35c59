/**
 * The repository: a backend plus the unlocked master keys.
 *
 * `Repository` reads and writes whole files (config, keys, snapshots, index, locks). Blob access
 * needs the index, so it lives on `IndexedRepository`, which only `loadIndex()` hands out: code
 * cannot look a blob up before the index is there. Order of work (docs/FORMAT.md §10,
 * invariants): writes go packs → index → snapshot; reads go snapshots → index, which the types
 * enforce: `loadIndex()` takes the `SnapshotList` it must cover, and only `listSnapshots()` makes one.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { AlreadyExistsError, type Backend, type FileInfo, type FileType, NotFoundError, NotRegularFileError, TooLargeError } from '../backends/backend.js';
import { wholeFile } from './file-limits.js';
import { AuthenticationError, type BlobType, type FileKind, MasterKeys, sha256 } from './crypto.js';
import { PayloadCodec } from './compression.js';
import { type RepoConfig, decodeConfig, encodeConfig, newConfig } from './config.js';
import { openFile, sealFile } from './envelope.js';
import { BlobOpener } from './blob-codec.js';
import { type BlobSealer, InlineSealer, createSealer } from './blob-sealer.js';
import { type CacheOptions, RepositoryCache } from './cache.js';
import {
  AbortedError,
  DamagedFileError,
  FormatError,
  LockConflictError,
  LockLostError,
  MissingBlobError,
  PacksGoneError,
  RepositoryExistsError,
  RepositoryNotFoundError,
  WrongPasswordError,
} from './errors.js';
import { type IndexFile, type IndexedPack, PackStates, decodeIndexFile, encodeIndexFile } from './index-file.js';
import { type KeyFile, type ScryptParams, type Secret, createKeyFile, decodeKeyFile, keysToTry, unsealKeyFile } from './keyfile.js';
import { type LockKind, type LockOptions, type LockRecord, LOST_AFTER_MS, REFRESH_MS, assertCompatible, lockRetryPause, lockSettleMs, newLockRecord } from './lock.js';
import { MasterIndex } from './master-index.js';
import { type PackedBlob, HEADER_READ_GUESS, parsePackTail } from './pack.js';
import { PackWriter } from './pack-writer.js';
import { TreePacks } from './tree-packs.js';

/** Bounded concurrency, for the layers above (they reach the backends' helpers only through repo/). */
export { mapLimit } from '../backends/layout.js';

const FOLDER_OF: Record<Exclude<FileKind, 'packHeader'>, 'index' | 'snapshots' | 'locks'> = { index: 'index', snapshot: 'snapshots', lock: 'locks' };

export interface InitOptions {
  config?: Partial<Omit<RepoConfig, 'version' | 'id'>>;
  /** Share this repository's chunker settings, chunker seed and blob-id key (`init --copy-chunker-params`). */
  chunkingFrom?: Repository | undefined;
  scrypt?: ScryptParams;
}

export interface OpenOptions {
  /** Use the local cache below this folder (README.md, "Local cache"); none without it. */
  cache?: CacheOptions | undefined;
  /** Told about key files passed over (a complete sentence, without a "warning:" prefix). */
  onWarning?: ((message: string) => void) | undefined;
}

export interface LoadIndexOptions {
  /**
   * For writers (backup, copy): list the packs too, and never deduplicate against a pack the
   * index lists but the backend lacks (IndexedRepository.missingPacks names them).
   */
  verifyPacks?: boolean;
  /**
   * For check: an index file that cannot be read (damaged, undecryptable, malformed) is handed
   * here and left out, instead of failing the load. Called once the load is complete, in listing
   * order, so a load run again (an index file vanished under a concurrent prune) reports once.
   */
  onUnreadableFile?: ((name: string, error: Error) => void) | undefined;
  /**
   * For check: each pack record of the index files in force (live and condemned), as decoded,
   * once the load is complete. A pack that two files list (a rewrite killed before removing the
   * old file) comes once per file.
   */
  onPackListed?: ((pack: IndexedPack) => void) | undefined;
  /** Index files read so far, of how many. */
  onProgress?: ((done: number, total: number) => void) | undefined;
}

/**
 * The snapshot files listed at one moment. An index loaded afterwards covers every one of them:
 * a backup writes its index files before its snapshot (docs/FORMAT.md §10). Only
 * `Repository.listSnapshots()` makes one (the class is exported as a type only), so holding one
 * proves the snapshots were listed first.
 */
class SnapshotList {
  constructor(
    private readonly repository: Repository,
    /** The snapshot files' names (the snapshot ids), as listed. */
    readonly names: readonly string[],
  ) {}

  /** Whether this lists `repo`'s snapshots. */
  isOf(repo: Repository): boolean {
    return repo === this.repository;
  }
}
export type { SnapshotList };

/** Only loadIndex() builds an IndexedRepository: this token, private to the module, enforces it. */
const BUILT_BY_LOAD_INDEX: unique symbol = Symbol('loadIndex');

export class Repository {
  readonly codec: PayloadCodec;

  private constructor(
    readonly backend: Backend,
    readonly config: RepoConfig,
    readonly keys: MasterKeys,
    /** Name of the key file that opened this repository. */
    readonly keyId: string,
    /** The local cache of snapshots, index files and tree packs, if one is in use. */
    readonly cache?: RepositoryCache,
  ) {
    this.codec = new PayloadCodec(config.compression);
  }

  get location(): string {
    return this.backend.location;
  }

  static async init(backend: Backend, secret: Secret, options: InitOptions = {}): Promise<Repository> {
    if (await exists(backend, { type: 'config', name: 'config' })) throw new RepositoryExistsError(backend.location);
    await backend.create();
    const from = options.chunkingFrom;
    const keys = MasterKeys.generate(from && { idKey: from.keys.idKey, chunkerSeed: from.keys.chunkerSeed });
    const config = newConfig(from ? { ...options.config, chunker: from.config.chunker } : options.config);
    const keyFile = await createKeyFile(keys, secret, options.scrypt);
    const keyId = sha256(keyFile).toString('hex');
    // The key goes first: a config without a key would be a repository nobody can open.
    await backend.write({ type: 'keys', name: keyId }, keyFile);
    // Exclusive: of inits racing for one location exactly one writes config. The losers remove
    // their key files (named by the hash of their own random salt, so no one else's): one left
    // behind would seal a master key that does not belong to this repository, and open() takes
    // the first key file the password unseals.
    try {
      await backend.write({ type: 'config', name: 'config' }, encodeConfig(config), { exclusive: true });
    } catch (error) {
      if (!(error instanceof AlreadyExistsError)) throw error;
      try {
        await backend.remove({ type: 'keys', name: keyId });
      } catch (removal) {
        throw new Error(`${new RepositoryExistsError(backend.location, true).message}; its key file keys/${keyId} could not be removed (${(removal as Error).message}): remove that file by hand`, { cause: removal });
      }
      throw new RepositoryExistsError(backend.location, true);
    }
    return new Repository(backend, config, keys, keyId);
  }

  static async open(backend: Backend, secret: Secret, options: OpenOptions = {}): Promise<Repository> {
    let configBytes: Buffer;
    try {
      configBytes = await backend.read({ type: 'config', name: 'config' }, wholeFile('config'));
    } catch (error) {
      if (error instanceof NotFoundError) throw new RepositoryNotFoundError(backend.location);
      throw error;
    }
    const config = decodeConfig(configBytes, backend.location);
    const keyFiles = await backend.list('keys');
    const damaged: string[] = [];
    const usable: { name: string; file: KeyFile }[] = [];
    for (const { name } of keyFiles) {
      try {
        usable.push({ name, file: decodeKeyFile(await backend.read({ type: 'keys', name }, wholeFile('keys')), `keys/${name}`) });
      } catch (error) {
        // One damaged (or planted) key file must not lock out the holders of the others.
        if (!(error instanceof FormatError || error instanceof TooLargeError || error instanceof NotRegularFileError)) throw error;
        damaged.push(error.message);
        options.onWarning?.(`${error.message} (a damaged or planted key file; 'bh key list' shows the others)`);
      }
    }
    if (damaged.length === keyFiles.length && damaged.length > 0) throw new FormatError(`${backend.location}: every key file is damaged: ${damaged.join('; ')}`);
    const { tried, untried } = keysToTry(usable);
    for (const { name, file } of tried) {
      const material = await unsealKeyFile(file, secret, `keys/${name}`);
      if (material) {
        const cache = options.cache && (await RepositoryCache.open(options.cache, config.id));
        return new Repository(backend, config, MasterKeys.deserialize(material), name, cache);
      }
    }
    if (untried.length > 0) {
      throw new FormatError(`${backend.location}: no key file opened with this secret, and ${untried.length} more were left untried: together they ask for more scrypt work than one open may spend (planted key files? 'bh key list' with a key that opens shows them all)`);
    }
    throw new WrongPasswordError(backend.location, usable.length);
  }

  // ---- whole files ---------------------------------------------------------------------------

  /** Every file of `type`; cached copies of files no longer listed are removed on the way. */
  async list(type: FileType): Promise<FileInfo[]> {
    const listedAt = Date.now();
    const files = await this.backend.list(type);
    await this.cache?.trim(type, files, listedAt);
    return files;
  }

  /** Lists the snapshot files: the first read of every command that loads the index (read order, §10). */
  async listSnapshots(): Promise<SnapshotList> {
    return new SnapshotList(this, (await this.list('snapshots')).map((f) => f.name));
  }

  /** Seals `body` as a file of `kind` and stores it under the SHA-256 of its bytes; returns that name. */
  async saveFile(kind: Exclude<FileKind, 'packHeader'>, body: Uint8Array): Promise<string> {
    const bytes = sealFile(this.keys, kind, this.codec.encode(body));
    const name = sha256(bytes).toString('hex');
    const type = FOLDER_OF[kind];
    await this.backend.write({ type, name }, bytes);
    // Write-through: the next command on this host finds it without a fetch.
    await this.cache?.write(type, name, bytes);
    return name;
  }

  /** The body of a stored file, after checking its name against its hash and its tag. */
  async loadFile(kind: Exclude<FileKind, 'packHeader'>, name: string): Promise<Buffer> {
    const type = FOLDER_OF[kind];
    const what = `${type}/${name}`;
    let bytes = await this.cache?.read(type, name, wholeFile(type));
    if (!bytes) {
      bytes = await this.backend.read({ type, name }, wholeFile(type));
      if (sha256(bytes).toString('hex') !== name) throw new DamagedFileError(what, 'content does not match its name (SHA-256); the file is damaged');
      await this.cache?.write(type, name, bytes);
    }
    return this.codec.decode(openFile(this.keys, kind, bytes, what), what);
  }

  async removeFile(kind: Exclude<FileKind, 'packHeader'>, name: string): Promise<void> {
    const type = FOLDER_OF[kind];
    await this.backend.remove({ type, name });
    await this.cache?.remove(type, name);
  }

  async loadJson<T>(kind: 'snapshot' | 'lock', name: string): Promise<T> {
    const body = await this.loadFile(kind, name);
    try {
      return JSON.parse(body.toString('utf8')) as T;
    } catch {
      throw new FormatError(`${FOLDER_OF[kind]}/${name}: decrypts but is not valid JSON`);
    }
  }

  saveJson(kind: 'snapshot' | 'lock', value: unknown): Promise<string> {
    return this.saveFile(kind, Buffer.from(JSON.stringify(value)));
  }

  /** Reads and authenticates one pack's header (a ranged read from its end). */
  async readPackHeader(packId: string, packSize?: number): Promise<PackedBlob[]> {
    const ref = { type: 'data' as const, name: packId };
    const size = packSize ?? (await this.backend.stat(ref)).size;
    const what = `data/${packId}`;
    let tailLength = Math.min(size, HEADER_READ_GUESS);
    for (;;) {
      const tail = await this.backend.read(ref, { offset: size - tailLength, length: tailLength });
      const parsed = parsePackTail(this.keys, tail, size, what);
      if (Array.isArray(parsed)) return parsed;
      tailLength = parsed.need;
    }
  }

  // ---- keys ----------------------------------------------------------------------------------

  async listKeys(): Promise<{ id: string; file: KeyFile }[]> {
    const out: { id: string; file: KeyFile }[] = [];
    for (const { name } of await this.backend.list('keys')) {
      out.push({ id: name, file: decodeKeyFile(await this.backend.read({ type: 'keys', name }, wholeFile('keys')), `keys/${name}`) });
    }
    return out;
  }

  /** Adds a key file for `secret`; returns its id. */
  async addKey(secret: Secret, scrypt?: ScryptParams): Promise<string> {
    const keyFile = await createKeyFile(this.keys, secret, scrypt);
    const id = sha256(keyFile).toString('hex');
    await this.backend.write({ type: 'keys', name: id }, keyFile);
    return id;
  }

  async removeKey(id: string): Promise<void> {
    const keys = await this.backend.list('keys');
    if (!keys.some((k) => k.name === id)) throw new Error(`no key ${id} in ${this.location}`);
    if (keys.length === 1) throw new Error('refusing to remove the only key: the repository could never be opened again');
    await this.backend.remove({ type: 'keys', name: id });
  }

  // ---- locks ---------------------------------------------------------------------------------

  /** Locks this process took on this repository and has not released. */
  private readonly heldLocks = new Set<RepositoryLock>();

  /** Throws LockLostError when a lock this process holds here is lost (see RepositoryLock). */
  assertLocksHeld(): void {
    for (const lock of this.heldLocks) lock.assertHeld();
  }

  /** Whether a lock this process holds here was fresh, in other processes' eyes, at `time` (ms, their clock). */
  heldFreshAt(time: number): boolean {
    return [...this.heldLocks].some((lock) => lock.wasFreshAt(time));
  }

  /** Called by RepositoryLock.release(). */
  forgetLock(lock: RepositoryLock): void {
    this.heldLocks.delete(lock);
  }

  async listLocks(): Promise<{ id: string; lock: LockRecord }[]> {
    const out: { id: string; lock: LockRecord }[] = [];
    for (const { name } of await this.backend.list('locks')) {
      try {
        out.push({ id: name, lock: await this.loadJson<LockRecord>('lock', name) });
      } catch (error) {
        // A lock removed between list and read is just gone. A damaged one locks nothing:
        // it is not a lock anyone holds (`bh unlock --remove-all` deletes it).
        if (!(error instanceof NotFoundError || error instanceof FormatError || error instanceof DamagedFileError || error instanceof AuthenticationError)) throw error;
      }
    }
    return out;
  }

  /**
   * Takes a lock of `kind` and keeps it fresh until `release()`: list, write ours, wait the
   * settle time, list again; on a conflict ours goes and, within `retryMs`, the whole dance is
   * tried again after a pause (docs/FORMAT.md §8).
   */
  async lock(kind: LockKind, options: LockOptions = {}): Promise<RepositoryLock> {
    const retryMs = options.retryMs ?? 0;
    const settleMs = options.settleMs ?? lockSettleMs(this.location);
    const deadline = Date.now() + retryMs;
    const started = new Date().toISOString();
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.tryLock(kind, settleMs, started);
      } catch (error) {
        const remaining = deadline - Date.now();
        if (!(error instanceof LockConflictError) || remaining <= 0) throw error;
        await lockRetryPause(attempt, remaining);
      }
    }
  }

  private async tryLock(kind: LockKind, settleMs: number, started: string): Promise<RepositoryLock> {
    assertCompatible(kind, await this.listLocks(), this.location);
    const writtenAt = Date.now();
    const held = new RepositoryLock(this, kind, started, await this.saveJson('lock', newLockRecord(kind, started)), writtenAt);
    this.heldLocks.add(held);
    // Re-check after writing (and letting slow listings catch up): of two conflicting lockers
    // that raced, the later writer always sees the earlier one; both may back off, never both win.
    if (settleMs > 0) await sleep(settleMs);
    const others = (await this.listLocks()).filter((l) => l.id !== held.id);
    try {
      assertCompatible(kind, others, this.location);
    } catch (error) {
      await held.release();
      throw error;
    }
    return held;
  }

  // ---- index ---------------------------------------------------------------------------------

  /**
   * Loads the index, which covers every snapshot of `snapshots` (listed before, per the read
   * order): every index file but those another one supersedes (docs/FORMAT.md §5). Packs
   * condemned by prune are loaded too but marked, unless some index file lists them as live (a
   * newer index revives them). The only way to an IndexedRepository.
   */
  async loadIndex(snapshots: SnapshotList, options: LoadIndexOptions = {}): Promise<IndexedRepository> {
    if (!snapshots.isOf(this)) throw new Error(`loadIndex: the snapshot list given is not of ${this.location}`);
    if (options.verifyPacks) {
      // One listing of the packs, beside the index load, so that dedup never trusts an entry
      // whose pack is gone (an index file from before a prune, copied back; a pack deleted by hand).
      const [indexed, stored] = await Promise.all([this.loadIndex(snapshots, { ...options, verifyPacks: false }), this.list('data')]);
      indexed.hidePacksNotIn(new Set(stored.map((f) => f.name)));
      return indexed;
    }
    return retryWhileIndexChanges(() => this.loadListedIndex(options));
  }

  /**
   * Which packs the index in force now lists (file names as listed): null for a live pack, or
   * when it was condemned. Reads pack lists only, without building a MasterIndex.
   */
  async packStates(): Promise<Map<string, number | null>> {
    return retryWhileIndexChanges(async () => {
      const files = [];
      for (const { name } of await this.list('index')) files.push({ name, file: decodeIndexFile(await this.loadFile('index', name), `index/${name}`) });
      const superseded = new Set(files.flatMap(({ file }) => file.supersedes.map((id) => id.toString('hex'))));
      const states = new PackStates();
      for (const { name, file } of files) if (!superseded.has(name)) states.add(file);
      return states.byPack;
    });
  }

  private async loadListedIndex(options: LoadIndexOptions): Promise<IndexedRepository> {
    const names = (await this.list('index')).map((f) => f.name);
    const unreadable = new Map<string, Error>();
    let view = await this.readIndexFiles(names, new Set(), unreadable, options);
    // Superseded files exist only briefly (prune and repair remove them right after writing
    // their successor) or after those were killed: read again without them only then.
    if (names.some((name) => view.superseded.has(name))) view = await this.readIndexFiles(names, view.superseded, unreadable, options);
    for (const [name, error] of unreadable) options.onUnreadableFile?.(name, error);
    for (const pack of view.packLists) options.onPackListed?.(pack);
    const present = new Set(names);
    return new IndexedRepository(BUILT_BY_LOAD_INDEX, this, view.index, view.loaded, names.filter((name) => view.superseded.has(name)), [...view.superseded].filter((name) => !present.has(name)));
  }

  /**
   * Reads the index files `names` but `skip`. With options.onUnreadableFile, a file that cannot
   * be read goes into `unreadable` and is left out; one that vanished always throws (NotFoundError:
   * the caller reads again).
   */
  private async readIndexFiles(
    names: string[],
    skip: ReadonlySet<string>,
    unreadable: Map<string, Error>,
    options: LoadIndexOptions,
  ): Promise<{ index: MasterIndex; loaded: string[]; superseded: Set<string>; packLists: IndexedPack[] }> {
    const index = new MasterIndex();
    const superseded = new Set<string>();
    const states = new PackStates();
    const loaded: string[] = [];
    const packLists: IndexedPack[] = [];
    index.beginBulkLoad();
    for (const [i, name] of names.entries()) {
      options.onProgress?.(i, names.length);
      if (skip.has(name) || unreadable.has(name)) continue;
      let file: IndexFile;
      try {
        file = decodeIndexFile(await this.loadFile('index', name), `index/${name}`);
      } catch (error) {
        if (!options.onUnreadableFile || error instanceof NotFoundError) throw error;
        unreadable.set(name, error as Error);
        continue;
      }
      loaded.push(name);
      for (const id of file.supersedes) superseded.add(id.toString('hex'));
      states.add(file);
      for (const pack of [...file.packs, ...(file.condemned ?? [])]) {
        index.addPack(pack.packId, pack.blobs);
        if (options.onPackListed) packLists.push(pack);
      }
    }
    index.endBulkLoad();
    for (const [key, since] of states.byPack) if (since !== null) index.condemn(Buffer.from(key, 'hex'), since);
    return { index, loaded, superseded, packLists };
  }
}

/**
 * A lock this process holds, kept fresh every REFRESH_MS until release(). A lock that went
 * unrefreshed for LOST_AFTER_MS (the process was stopped or suspended, or the store kept refusing
 * the refresh) is **lost**: other processes may already count it stale and act on that (a prune
 * deletes what it protected), so it is not refreshed again, `signal` aborts, and assertHeld()
 * throws LockLostError. Writers call assertHeld() right before a write that depends on the lock
 * (a snapshot, a prune's index and deletions), since a stopped process's timer fires only after
 * it resumes.
 */
export class RepositoryLock {
  private readonly timer: NodeJS.Timeout;
  private refreshing: Promise<void> = Promise.resolve();
  /** When our current lock file was written (this process's clock, as others judge its `time`). */
  private writtenAt: number;
  /** When each of our lock files was written, oldest first (one per refresh: a few hundred a day). */
  private readonly writes: number[];
  private readonly lostController = new AbortController();

  constructor(
    private readonly repo: Repository,
    readonly kind: LockKind,
    /** When the first lock of this holder was written (kept across refreshes). */
    readonly started: string,
    public id: string,
    writtenAt: number,
  ) {
    this.writtenAt = writtenAt;
    this.writes = [writtenAt];
    this.timer = setInterval(() => {
      this.refreshing = this.refresh();
    }, REFRESH_MS);
    this.timer.unref();
  }

  /** Aborts once the lock is lost; its reason is the LockLostError. */
  get signal(): AbortSignal {
    return this.lostController.signal;
  }

  /** Throws LockLostError when the lock is lost, or went unrefreshed so long that it must count as lost. */
  assertHeld(now = Date.now()): void {
    if (!this.signal.aborted && now - this.writtenAt > LOST_AFTER_MS) {
      this.markLost(`our ${this.kind} lock on ${this.repo.location} was last refreshed ${formatAge(now - this.writtenAt)} ago (was this process stopped or the machine suspended?)`);
    }
    if (this.signal.aborted) throw this.signal.reason as LockLostError;
  }

  /**
   * Whether another process looking at `time` (its clock) saw a fresh lock of ours: one of our
   * lock files was then younger than LOST_AFTER_MS. REFRESH_MS of slack on each side stand for
   * the clock skew between hosts; a time further ahead of our writes is not vouched for.
   */
  wasFreshAt(time: number): boolean {
    if (time < this.writes[0]! - REFRESH_MS) return false;
    return this.writes.some((written) => written <= time + REFRESH_MS && time - written <= LOST_AFTER_MS);
  }

  /**
   * Rewrites the lock under a fresh time, unless it is lost already. A failed refresh is retried
   * at the next tick while the lock stays safely fresh; once the next tick would come too late,
   * the lock is lost.
   */
  private async refresh(): Promise<void> {
    try {
      this.assertHeld();
    } catch {
      return;
    }
    try {
      const old = this.id;
      const writtenAt = Date.now();
      this.id = await this.repo.saveJson('lock', newLockRecord(this.kind, this.started));
      this.writtenAt = writtenAt;
      this.writes.push(writtenAt);
      await this.repo.removeFile('lock', old);
    } catch (error) {
      if (Date.now() + REFRESH_MS - this.writtenAt > LOST_AFTER_MS) {
        this.markLost(`our ${this.kind} lock on ${this.repo.location} could not be refreshed for ${formatAge(Date.now() - this.writtenAt)} (${(error as Error).message})`);
      }
    }
  }

  private markLost(why: string): void {
    clearInterval(this.timer);
    this.lostController.abort(new LockLostError(`${why}: other processes may count it stale, so bh stopped before writing anything that relied on it; run the command again`));
  }

  async release(): Promise<void> {
    clearInterval(this.timer);
    this.repo.forgetLock(this);
    await this.refreshing;
    await this.repo.removeFile('lock', this.id);
  }
}

function formatAge(ms: number): string {
  const minutes = Math.round(ms / 60_000);
  return minutes < 120 ? `${minutes} min` : `${(minutes / 60).toFixed(1)} h`;
}

/** Names a rewritten index carries in its supersedes list at most (32 bytes each: 320 KB). */
const MAX_SUPERSEDED_NAMES = 10_000;

/** Seconds between index checkpoints while packs are being written (BH_CHECKPOINT_SECONDS overrides). */
export const CHECKPOINT_SECONDS = 60;
/** Packs in flight to the backend at once. */
const UPLOAD_CONCURRENCY = 2;
/** Plaintext bytes handed to the sealer and not sealed yet: bounds memory while workers lag. */
const MAX_SEALING_BYTES = 32 * 1024 * 1024;

/** A blob sealed elsewhere (by a chunk worker): its id, envelope and plaintext length. */
export interface SealedBlob {
  id: Buffer;
  envelope: Buffer;
  rawLength: number;
}

export interface SaveResult {
  id: Buffer;
  /** False when the blob was already in the repository (deduplicated). */
  added: boolean;
}

/**
 * The write path is a pipeline: saveBlob hashes on the caller's thread and hands new blobs to
 * the sealer (worker threads), sealed blobs fill packs (PackWriter), full packs upload two at a
 * time, and an index file is written every checkpoint interval. saveBlob returns once the blob
 * is queued; flush() waits for all of it. A failure anywhere is raised by the next saveBlob or
 * flush.
 */
export class IndexedRepository {
  private readonly packs: PackWriter;
  /** Blobs queued or packed but not indexed yet, by type:id hex (so they are not saved twice). */
  private readonly unindexed = new Set<string>();
  private sealerInstance: BlobSealer | undefined;
  private inlineSealer: InlineSealer | undefined;
  private readonly sealing = new Set<Promise<void>>();
  private sealingBytes = 0;
  private failure: unknown;
  private added = 0;
  /** Packs written since the last index file. */
  private packsToIndex: IndexedPack[] = [];
  private lastCheckpoint = Date.now();
  private readonly checkpointMs: number;
  private readonly treePacks: TreePacks;
  private readonly opener: BlobOpener;
  /**
   * 1 for each pack (by index pack number) that holds a blob this instance's output refers to:
   * one it deduplicated against, or one it wrote. saveSnapshot() checks they are still there.
   */
  private referenced = new Uint8Array(0);
  /** Packs the index lists that the backend lacked when the index was loaded (loadIndex's verifyPacks). */
  missingPacks: string[] = [];

  constructor(
    builtBy: typeof BUILT_BY_LOAD_INDEX,
    readonly repo: Repository,
    readonly index: MasterIndex,
    /** Index files loaded. */
    readonly indexFiles: string[],
    /** Index files that exist but were skipped because a loaded one supersedes them. */
    readonly supersededFiles: string[] = [],
    /** Names the loaded files supersede that no longer exist (removed after earlier rewrites). */
    private readonly supersededEarlier: string[] = [],
  ) {
    if (builtBy !== BUILT_BY_LOAD_INDEX) throw new Error('an IndexedRepository comes from Repository.loadIndex() only');
    const fromEnv = Number(process.env['BH_CHECKPOINT_SECONDS']);
    this.checkpointMs = (Number.isFinite(fromEnv) && fromEnv > 0 ? fromEnv : CHECKPOINT_SECONDS) * 1000;
    this.treePacks = new TreePacks(repo, index);
    this.opener = new BlobOpener(repo.keys, repo.config.compression);
    this.packs = new PackWriter(repo, { concurrency: UPLOAD_CONCURRENCY, onStored: (pack) => this.indexStoredPack(pack) });
  }

  get keys(): MasterKeys {
    return this.repo.keys;
  }

  /**
   * The index files a rewrite of this view replaces: those loaded and those they supersede
   * (left by a rewrite killed before removing them). Leaving the latter behind would bring
   * them back into force once their superseder is removed.
   */
  get replacedIndexFiles(): string[] {
    return [...this.indexFiles, ...this.supersededFiles];
  }

  /**
   * What a rewrite of this view supersedes: the files it replaces, and (up to a bound) the names
   * those superseded in turn. Supersession is thereby transitive across rewrites: a stale index
   * file copied back after two prunes is still ignored (docs/FORMAT.md §5). Oldest names come
   * last and are the ones dropped past the bound; a file older than that is still harmless to
   * writers, who never deduplicate against packs the backend lacks (loadIndex's verifyPacks).
   */
  get supersedesOnRewrite(): string[] {
    const replaced = this.replacedIndexFiles;
    return [...replaced, ...this.supersededEarlier.slice(0, Math.max(0, MAX_SUPERSEDED_NAMES - replaced.length))];
  }

  /** Bytes of sealed blobs this instance added to the repository (after dedup, compression, encryption). */
  get bytesAdded(): number {
    return this.added;
  }

  /**
   * Whether saving the blob may be skipped: a copy is indexed outside condemned packs, or is on
   * its way. Never a copy in a condemned pack: a later prune may delete that pack (§5).
   */
  hasBlob(type: BlobType, id: Uint8Array): boolean {
    const pack = this.index.livePack(type, id);
    if (pack < 0) return this.unindexed.has(pendingKey(type, id));
    this.reference(pack);
    return true;
  }

  private reference(pack: number): void {
    if (this.referenced.length <= pack) {
      const grown = new Uint8Array(Math.max(pack + 1, this.referenced.length * 2, 64));
      grown.set(this.referenced);
      this.referenced = grown;
    }
    this.referenced[pack] = 1;
  }

  /** Hides indexed packs that `stored` (the backend's pack names) lacks, as if condemned: lookups and dedup skip them. */
  hidePacksNotIn(stored: ReadonlySet<string>): void {
    for (const packId of this.index.packs()) {
      const hex = packId.toString('hex');
      if (stored.has(hex)) continue;
      this.missingPacks.push(hex);
      this.index.condemn(packId, 0);
    }
  }

  /**
   * Saves a snapshot record, last (docs/FORMAT.md §10): writes out every blob saved, checks that
   * the packs the snapshot refers to are still there, that no interrupt came, and that our lock
   * still holds; then the record.
   */
  async saveSnapshot(record: unknown, signal?: AbortSignal): Promise<string> {
    await this.flush();
    await this.assertReferencedPacksKept();
    if (signal?.aborted) throw new AbortedError();
    this.repo.assertLocksHeld();
    return this.repo.saveJson('snapshot', record);
  }

  /**
   * Packs are condemned and deleted only by a rewrite of the index (prune, repair), which writes
   * an index file that supersedes or condemns: without one since our load, nothing we refer to
   * can have gone. With one, every referenced pack must still be stored and indexed, and a
   * condemnation is harmless only if it came while our lock was fresh (the deleting prune then
   * waits for us, §10); one made while we may have looked gone (stopped, suspended) is not.
   */
  private async assertReferencedPacksKept(): Promise<void> {
    const referenced: string[] = [];
    this.referenced.forEach((flag, pack) => {
      if (flag === 1) referenced.push(this.index.packId(pack).toString('hex'));
    });
    if (referenced.length === 0 || !(await this.indexRewrittenSinceLoad())) return;
    const states = await this.repo.packStates();
    const stored = new Set((await this.repo.list('data')).map((f) => f.name));
    const gone = referenced.filter((pack) => !stored.has(pack) || !states.has(pack));
    if (gone.length > 0) throw new PacksGoneError(gone, 'removed from the repository or its index');
    const condemned = referenced.filter((pack) => {
      const since = states.get(pack);
      return typeof since === 'number' && !this.repo.heldFreshAt(since);
    });
    if (condemned.length > 0) throw new PacksGoneError(condemned, 'condemned by a prune that may have taken this process for gone');
  }

  private async indexRewrittenSinceLoad(): Promise<boolean> {
    const listed = (await this.repo.list('index')).map((f) => f.name);
    const listedNames = new Set(listed);
    if (this.indexFiles.some((name) => !listedNames.has(name))) return true;
    const known = new Set([...this.indexFiles, ...this.supersededFiles]);
    for (const name of listed) {
      if (known.has(name)) continue;
      let file: IndexFile;
      try {
        file = decodeIndexFile(await this.repo.loadFile('index', name), `index/${name}`);
      } catch (error) {
        if (error instanceof NotFoundError) return true;
        throw error;
      }
      // Other backups' checkpoints only add; a rewrite supersedes or condemns.
      if (file.supersedes.length > 0 || (file.condemned?.length ?? 0) > 0) return true;
    }
    return false;
  }

  /** A blob's plaintext, authenticated and re-hashed against its id (src/repo/blob-codec.ts). */
  async loadBlob(type: BlobType, id: Uint8Array): Promise<Buffer> {
    const where = this.index.lookup(type, id);
    if (!where) throw MissingBlobError.notIndexed(type, id);
    const packHex = where.packId.toString('hex');
    let envelope: Buffer;
    try {
      // Trees are read by pack (src/repo/tree-packs.ts); data blobs with one ranged read each.
      envelope = type === 'tree' ? await this.treePacks.envelope(where) : await this.repo.backend.read({ type: 'data', name: packHex }, { offset: where.offset, length: where.length });
    } catch (error) {
      if (error instanceof NotFoundError) throw MissingBlobError.packGone(this.repo.location, packHex, error);
      throw error;
    }
    return this.opener.open(type, id, envelope, packHex, where.rawLength);
  }

  /**
   * Stores a blob unless the repository already has it: the one place that decides dedup.
   * Either its plaintext (`id` may be passed when already computed), sealed here (trees on this
   * thread, data on the sealer's worker threads), or a blob sealed already by the archiver's
   * chunk workers. Returns once the blob is queued. `plaintext` is handed over: the caller must
   * not use it afterwards (it may be moved to a worker thread and detached).
   */
  saveBlob(type: BlobType, plaintext: Uint8Array, id?: Buffer): Promise<SaveResult>;
  saveBlob(type: BlobType, sealed: SealedBlob): Promise<SaveResult>;
  async saveBlob(type: BlobType, blob: Uint8Array | SealedBlob, knownId?: Buffer): Promise<SaveResult> {
    this.throwFailure();
    const id = blob instanceof Uint8Array ? (knownId ?? this.keys.blobId(blob)) : blob.id;
    if (this.hasBlob(type, id)) return { id, added: false };
    this.unindexed.add(pendingKey(type, id));
    if (!(blob instanceof Uint8Array)) {
      await this.pack(type, id, blob.envelope, blob.rawLength);
    } else {
      // Read the length now: seal() may move the buffer to a worker, detaching it.
      const rawLength = blob.length;
      this.sealingBytes += rawLength;
      const job: Promise<void> = this.sealerFor(type)
        .seal(type, id, blob)
        .then((envelope) => {
          this.sealingBytes -= rawLength;
          return this.pack(type, id, Buffer.from(envelope.buffer, envelope.byteOffset, envelope.byteLength), rawLength);
        })
        .catch((error: unknown) => {
          this.failure ??= error;
        })
        .finally(() => this.sealing.delete(job));
      this.sealing.add(job);
      // Unsealed bytes and finished packs waiting for upload hold memory: let them drain first.
      while ((this.sealingBytes > MAX_SEALING_BYTES || this.packs.packsWaiting) && this.sealing.size > 0) await Promise.race(this.sealing);
    }
    this.throwFailure();
    return { id, added: true };
  }

  private async pack(type: BlobType, id: Buffer, envelope: Buffer, rawLength: number): Promise<void> {
    this.added += envelope.length;
    const closed = await this.packs.add(type, id, envelope, rawLength);
    if (closed && Date.now() - this.lastCheckpoint >= this.checkpointMs) await this.writeIndex();
  }

  /** Writes open packs and indexes everything written; after it, every saved blob is durable and findable. */
  async flush(): Promise<void> {
    while (this.sealing.size > 0) await Promise.all(this.sealing);
    this.throwFailure();
    // No checkpoint in between: the index file written here, once every upload is done, covers all.
    await this.packs.flush();
    await this.writeIndex();
  }

  /** Stops the sealer's worker threads (flush first). */
  async close(): Promise<void> {
    await this.sealerInstance?.close();
    this.sealerInstance = undefined;
  }

  /**
   * Trees are small and sealed on this thread; data (standard input, in practice: files are
   * sealed by the archiver's own workers) goes to worker threads started on first use.
   */
  private sealerFor(type: BlobType): BlobSealer {
    if (type === 'tree') {
      this.inlineSealer ??= new InlineSealer(this.keys, this.repo.config.compression);
      return this.inlineSealer;
    }
    this.sealerInstance ??= createSealer(this.keys, this.repo.config.compression);
    return this.sealerInstance;
  }

  /** A pack is stored: its blobs are findable from now on, and go into the next index file. */
  private indexStoredPack(pack: IndexedPack): void {
    this.index.addPack(pack.packId, pack.blobs);
    this.reference(this.index.packNumber(pack.packId));
    for (const blob of pack.blobs) this.unindexed.delete(pendingKey(blob.type, blob.id));
    this.packsToIndex.push(pack);
  }

  /** Index checkpoint: an index file for the packs written since the last one. */
  private async writeIndex(): Promise<void> {
    this.lastCheckpoint = Date.now();
    if (this.packsToIndex.length === 0) return;
    const packs = this.packsToIndex;
    this.packsToIndex = [];
    const file: IndexFile = { supersedes: [], packs };
    this.indexFiles.push(await this.repo.saveFile('index', encodeIndexFile(file)));
  }

  private throwFailure(): void {
    if (this.failure !== undefined) throw this.failure;
    this.packs.throwFailure();
  }
}

function pendingKey(type: BlobType, id: Uint8Array): string {
  return type + Buffer.from(id.buffer, id.byteOffset, id.length).toString('hex');
}

async function exists(backend: Backend, ref: { type: FileType; name: string }): Promise<boolean> {
  try {
    await backend.stat(ref);
    return true;
  } catch (error) {
    if (error instanceof NotFoundError) return false;
    throw error;
  }
}

/**
 * Runs a read of the index files again when one listed a moment ago is gone when read: a prune
 * running beside us removes the files it superseded, and their successor is written already.
 */
async function retryWhileIndexChanges<T>(read: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await read();
    } catch (error) {
      if (!(error instanceof NotFoundError) || attempt >= 5) throw error;
    }
  }
}
