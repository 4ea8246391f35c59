/**
 * Reading a file into sealed chunks, the costly half of a backup, as one synchronous function:
 * read (large reads into one reusable buffer) → FastCDC cut → blob id (keyed hash) →
 * compress + encrypt, and the whole file's plain SHA-256 (FORMAT.md §6.1) over the same bytes,
 * so that recording it costs no second read. It runs in worker threads (src/snapshot/chunk-worker.ts), one file at a
 * time per worker (at least one, whatever BH_WORKERS says), so both cores work while the main
 * thread walks directories and fills packs.
 *
 * Sealing here is speculative: the repository drops chunks it already has. Chunks
 * the repository had when the backup started are recognised by a shared filter and passed on
 * unsealed; duplicates within one backup are still sealed, which saves a round trip per chunk.
 */
import { type Hash, createHash, hash } from 'node:crypto';
import { closeSync, readSync } from 'node:fs';
import { findBoundary } from '../chunker/index.js';
import type { ChunkerParams } from '../chunker/index.js';
import { type EntryStat, openRegularFile } from '../fsx/index.js';
import { sealBlobPayload } from '../repo/blob-codec.js';
import type { PayloadCodec } from '../repo/compression.js';
import type { MasterKeys } from '../repo/crypto.js';
import type { KnownBlobFilter } from './known-blobs.js';

export interface ChunkedPiece {
  id: Buffer;
  rawLength: number;
  /** The sealed blob; absent when only hashing (dry run) or when `plaintext` is given. */
  envelope?: Buffer;
  /** The chunk itself, not sealed, because the repository probably has it (see KnownBlobFilter). */
  plaintext?: Buffer;
}

export interface ChunkFileOptions {
  params: ChunkerParams;
  gear: Uint32Array;
  keys: MasterKeys;
  codec: PayloadCodec;
  seal: boolean;
  /** Chunks whose id this filter may hold are passed on as plaintext, not sealed. */
  known?: KnownBlobFilter | undefined;
  /** Try O_NOATIME (the kernel refuses it for files of other users unless root). */
  noAtime: boolean;
}

/** One reusable read buffer per thread: twice the largest chunk, so a cut always fits. */
let buffer = Buffer.alloc(0);

export interface ChunkedFile {
  /** Bytes read. */
  size: number;
  /** The fstat of the file that was read (which may not be the one scanned: see openRegularFile). */
  stat: EntryStat;
  /** Plain SHA-256 of the bytes read. */
  sha256: Buffer;
}

/**
 * Chunks the file at `path`, calling `emit` for each chunk in order. The file is opened by
 * openRegularFile: an entry swapped since it was scanned for a symlink, FIFO, device or
 * directory is refused (ChangedTypeError), never followed or waited on. Other errors carry
 * Node's `code` (EACCES, EIO, …).
 */
export function chunkFile(path: Buffer, options: ChunkFileOptions, emit: (piece: ChunkedPiece) => void): ChunkedFile {
  const { params, gear, keys, codec } = options;
  if (buffer.length < 2 * params.max) buffer = Buffer.allocUnsafe(2 * params.max);
  const { fd, stat } = openRegularFile(path, { noAtime: options.noAtime });
  let size = 0;
  // Most files of a source tree are one chunk: their digest is one call, without a Hash object.
  let whole: Hash | undefined;
  let single: Buffer | undefined;
  try {
    let start = 0;
    let end = 0;
    let eof = false;
    for (;;) {
      // Refill until a whole max-size window is there (then a cut always exists) or the file ends.
      while (!eof && end - start < params.max) {
        if (start > 0) {
          buffer.copyWithin(0, start, end);
          end -= start;
          start = 0;
        }
        const n = readSync(fd, buffer, end, buffer.length - end, null);
        if (n === 0) eof = true;
        end += n;
      }
      if (start === end) break;
      const cut = findBoundary(buffer, start, end, params, gear);
      const length = cut < 0 ? end - start : cut;
      const chunk = buffer.subarray(start, start + length);
      const id = keys.blobId(chunk);
      if (whole === undefined && eof && start === 0 && length === end) single = hash('sha256', chunk, 'buffer');
      else (whole ??= createHash('sha256')).update(chunk);
      if (!options.seal) emit({ id, rawLength: length });
      // Copied: `chunk` is a view of the read buffer, which the next refill overwrites.
      else if (options.known?.mayHave(id)) emit({ id, rawLength: length, plaintext: Buffer.from(chunk) });
      else emit({ id, rawLength: length, envelope: sealBlobPayload(keys, codec, 'data', id, chunk) });
      size += length;
      start += length;
    }
  } finally {
    closeSync(fd);
  }
  return { size, stat, sha256: single ?? (whole ?? createHash('sha256')).digest() };
}
