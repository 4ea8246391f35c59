/**
 * Rewriting the index (prune, repair): new index files first, the last of them listing the
 * files it supersedes, and only then are those removed (docs/FORMAT.md §5, §10). Until the
 * superseding file exists the old files stay in force, so a kill at any instant leaves an
 * index that lists at least every pack it listed before.
 */
import type { BlobType } from './crypto.js';
import { encodeIndexFile, type CondemnedPack, type IndexedPack } from './index-file.js';
import type { MasterIndex } from './master-index.js';
import type { PackedBlob } from './pack.js';
import type { Repository } from './repository.js';

/** Blob entries per index file written (about 4.5 MB of body each). */
const INDEX_FILE_BLOBS = 100_000;
const TYPES: readonly BlobType[] = ['data', 'tree'];

export class IndexRewriter {
  private current: IndexedPack[] = [];
  private currentBlobs = 0;
  filesWritten = 0;

  constructor(private readonly repo: Repository) {}

  /** Adds a live pack; full files are written as they fill, so memory holds one file's worth. */
  async addLive(pack: IndexedPack): Promise<void> {
    if (this.currentBlobs + pack.blobs.length > INDEX_FILE_BLOBS) await this.writeCurrent();
    this.current.push(pack);
    this.currentBlobs += pack.blobs.length;
  }

  /** Writes what is left, then the last file: the condemned packs and the list of superseded files. */
  async finish(supersedes: readonly string[], condemned: CondemnedPack[]): Promise<void> {
    await this.writeCurrent();
    await this.repo.saveFile('index', encodeIndexFile({ supersedes: supersedes.map((name) => Buffer.from(name, 'hex')), packs: [], condemned }));
    this.filesWritten++;
  }

  private async writeCurrent(): Promise<void> {
    if (this.current.length === 0) return;
    await this.repo.saveFile('index', encodeIndexFile({ supersedes: [], packs: this.current }));
    this.filesWritten++;
    this.current = [];
    this.currentBlobs = 0;
  }
}

/**
 * The blobs of each pack of a loaded index, by pack number, sorted by offset (a pack listed by
 * two index files appears once). Built by a counting sort over the rows: 4 bytes a row.
 */
export function blobsByPack(index: MasterIndex): (pack: number) => PackedBlob[] {
  const grouped = TYPES.map((type) => {
    const start = new Uint32Array(index.packCount + 1);
    const n = index.rowCount(type);
    for (let row = 0; row < n; row++) start[index.rowPack(type, row) + 1]!++;
    for (let p = 1; p <= index.packCount; p++) start[p]! += start[p - 1]!;
    const rows = new Uint32Array(n);
    const fill = start.slice(0, index.packCount);
    for (let row = 0; row < n; row++) rows[fill[index.rowPack(type, row)]!++] = row;
    return { type, start, rows };
  });
  return (pack) => {
    const seen = new Set<number>();
    const out: PackedBlob[] = [];
    for (const { type, start, rows } of grouped) {
      for (const row of rows.subarray(start[pack]!, start[pack + 1]!)) {
        const { id, offset, length, rawLength } = index.rowEntry(type, row);
        if (seen.has(offset)) continue;
        seen.add(offset);
        out.push({ type, id, offset, length, rawLength });
      }
    }
    return out.sort((a, b) => a.offset - b.offset);
  };
}

/** Removes the index files a rewrite superseded (after its last file is stored). */
export async function removeIndexFiles(repo: Repository, names: readonly string[]): Promise<void> {
  for (const name of names) await repo.removeFile('index', name);
}
