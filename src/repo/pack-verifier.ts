/**
 * Verifying whole packs for `check --read-data`: the pack's SHA-256 against its name, its header
 * against the index, and every blob's tag, payload and id (the blob codec's BlobOpener, as
 * restore uses).
 *
 * The work runs in worker threads (src/repo/verify-worker.ts, on a RequestPool:
 * src/repo/worker-pool.ts), one per core; with BH_WORKERS=0 it runs inline. Either way it is
 * verifyPack below: one implementation, two places to run it. The
 * caller reads each pack and hands its bytes over (moved, not copied); findings come back as
 * plain objects.
 */
import { BlobOpener } from './blob-codec.js';
import type { CheckFinding } from './check.js';
import type { CompressionSettings } from './compression.js';
import { type BlobType, BlobTypeCode, MasterKeys, constantTimeEqual, sha256 } from './crypto.js';
import { DamagedFileError } from './errors.js';
import { parsePackTail, type PackedBlob } from './pack.js';
import { RequestPool, movable, workerCount, workerScript } from './worker-pool.js';

/** Checks one pack's bytes; every finding is an error about `data/<packHex>`. */
export function verifyPack(keys: MasterKeys, opener: BlobOpener, packHex: string, bytes: Buffer, indexed: readonly PackedBlob[]): CheckFinding[] {
  const subject = `data/${packHex}`;
  const findings: CheckFinding[] = [];
  const error = (message: string): void => void findings.push({ level: 'error', subject, message });
  if (!constantTimeEqual(sha256(bytes), Buffer.from(packHex, 'hex'))) error('pack content does not match its name (SHA-256): the file is damaged');
  try {
    const header = parsePackTail(keys, bytes, bytes.length, subject);
    if (Array.isArray(header)) {
      // Envelopes are never empty, so an offset names at most one blob of the header.
      const inHeader = new Map(header.map((b) => [b.offset, b]));
      for (const b of indexed) {
        const h = inHeader.get(b.offset);
        if (!h || h.type !== b.type || h.length !== b.length || !h.id.equals(b.id)) {
          error(`${b.type} blob ${b.id.toString('hex')} is in the index but not in the pack header at offset ${b.offset}`);
        }
      }
    }
  } catch (e) {
    error(`pack header: ${(e as Error).message}`);
  }
  for (const blob of indexed) {
    try {
      opener.openParts(blob.type, blob.id, bytes.subarray(blob.offset, blob.offset + blob.length), packHex, blob.rawLength);
    } catch (e) {
      error(e instanceof DamagedFileError ? e.detail : (e as Error).message);
    }
  }
  return findings;
}

// ---- the wire: what crosses to a worker --------------------------------------------------------

/** The index's blobs of one pack, as numbers and bytes (a PackedBlob's Buffer id would drag its whole pool along). */
interface WireBlobs {
  /** Per blob: type code, offset, length, raw length. */
  fields: Float64Array;
  /** Per blob: 32 bytes of id. */
  ids: Uint8Array;
}

const FIELDS = 4;
const TYPES_BY_CODE: BlobType[] = ['data', 'tree'];

function toWire(blobs: readonly PackedBlob[]): WireBlobs {
  const fields = new Float64Array(blobs.length * FIELDS);
  const ids = new Uint8Array(blobs.length * 32);
  blobs.forEach((blob, i) => {
    fields.set([BlobTypeCode[blob.type], blob.offset, blob.length, blob.rawLength], i * FIELDS);
    ids.set(blob.id, i * 32);
  });
  return { fields, ids };
}

function fromWire({ fields, ids }: WireBlobs): PackedBlob[] {
  const blobs: PackedBlob[] = [];
  for (let i = 0; i < fields.length / FIELDS; i++) {
    const at = i * FIELDS;
    const id = Buffer.from(ids.buffer, ids.byteOffset + i * 32, 32);
    blobs.push({ type: TYPES_BY_CODE[fields[at]!]!, id, offset: fields[at + 1]!, length: fields[at + 2]!, rawLength: fields[at + 3]! });
  }
  return blobs;
}

export interface VerifyRequest {
  packHex: string;
  bytes: Uint8Array;
  blobs: WireBlobs;
}

export interface VerifyWorkerInit {
  /** MasterKeys.serialize() of the repository. */
  keys: Uint8Array;
  compression: CompressionSettings;
}

/** The worker side of one request (src/repo/verify-worker.ts). */
export function serveVerifyRequest(keys: MasterKeys, opener: BlobOpener, request: VerifyRequest): CheckFinding[] {
  const bytes = Buffer.from(request.bytes.buffer, request.bytes.byteOffset, request.bytes.byteLength);
  return verifyPack(keys, opener, request.packHex, bytes, fromWire(request.blobs));
}

// ---- the caller's side -------------------------------------------------------------------------

export interface PackVerifier {
  /** Worker threads doing the work; 0 when it runs inline. */
  readonly threads: number;
  /** The findings about one pack. `bytes` is handed over: it may be detached (moved to a worker). */
  verify(packHex: string, bytes: Buffer, indexed: readonly PackedBlob[]): Promise<CheckFinding[]>;
  close(): Promise<void>;
}

class InlinePackVerifier implements PackVerifier {
  readonly threads = 0;
  private readonly opener: BlobOpener;

  constructor(private readonly keys: MasterKeys, compression: CompressionSettings) {
    this.opener = new BlobOpener(keys, compression);
  }

  verify(packHex: string, bytes: Buffer, indexed: readonly PackedBlob[]): Promise<CheckFinding[]> {
    return Promise.resolve(verifyPack(this.keys, this.opener, packHex, bytes, indexed));
  }

  async close(): Promise<void> {}
}

class WorkerPackVerifier implements PackVerifier {
  private readonly pool: RequestPool<VerifyRequest, CheckFinding[]>;

  constructor(keys: MasterKeys, compression: CompressionSettings, count: number) {
    const init: VerifyWorkerInit = { keys: keys.serialize(), compression };
    // One pack per worker at a time, the others waiting in order: a pack never queues behind a
    // slow one while another worker has nothing to do.
    this.pool = new RequestPool({ name: 'pack verifier', script: workerScript('repo/verify-worker.js'), size: count, workerData: () => init, eager: true, perWorker: 1 });
  }

  get threads(): number {
    return this.pool.size;
  }

  verify(packHex: string, bytes: Buffer, indexed: readonly PackedBlob[]): Promise<CheckFinding[]> {
    const request: VerifyRequest = { packHex, bytes: movable(bytes), blobs: toWire(indexed) };
    return this.pool.request(request, [request.bytes.buffer as ArrayBuffer, request.blobs.fields.buffer as ArrayBuffer, request.blobs.ids.buffer as ArrayBuffer]);
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}

/** Workers (BH_WORKERS, else one per core), or inline with BH_WORKERS=0. */
export function createPackVerifier(keys: MasterKeys, compression: CompressionSettings): PackVerifier {
  const count = workerCount();
  return count === 0 ? new InlinePackVerifier(keys, compression) : new WorkerPackVerifier(keys, compression, count);
}
