/**
 * Verifying whole packs for `check --read-data`: the pack's SHA-256 against its name, its header
 * against the index, and every blob's tag, payload and id (the blob codec's BlobOpener, as
 * restore uses).
 *
 * The work runs in worker threads (src/repo/verify-worker.ts), one per core, when the compiled
 * worker script exists (the CLI runs from dist/); with BH_WORKERS=0 or without the build it runs
 * inline. Either way it is verifyPack below: one implementation, two places to run it. The
 * caller reads each pack and hands its bytes over (moved, not copied); findings come back as
 * plain objects.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { BlobOpener } from './blob-codec.js';
import { WORKER_RESOURCE_LIMITS, movable, workerCount } from './blob-sealer.js';
import type { CheckFinding } from './check.js';
import type { CompressionSettings } from './compression.js';
import { type BlobType, BlobTypeCode, MasterKeys, constantTimeEqual, sha256 } from './crypto.js';
import { DamagedFileError } from './errors.js';
import { parsePackTail, type PackedBlob } from './pack.js';

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

export interface VerifyResponse {
  findings?: CheckFinding[];
  error?: string;
}

export interface VerifyWorkerInit {
  /** MasterKeys.serialize() of the repository. */
  keys: Uint8Array;
  compression: CompressionSettings;
}

/** The worker side of one request (src/repo/verify-worker.ts). */
export function serveVerifyRequest(keys: MasterKeys, opener: BlobOpener, request: VerifyRequest): VerifyResponse {
  const bytes = Buffer.from(request.bytes.buffer, request.bytes.byteOffset, request.bytes.byteLength);
  return { findings: verifyPack(keys, opener, request.packHex, bytes, fromWire(request.blobs)) };
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

/**
 * The compiled worker. From dist/repo/ this is the file beside this one; from the TypeScript
 * sources (tests) it is the build that the test setup made, same path from the root.
 */
const WORKER_SCRIPT = fileURLToPath(new URL('../../dist/repo/verify-worker.js', import.meta.url));

interface QueuedPack {
  request: VerifyRequest;
  resolve: (findings: CheckFinding[]) => void;
  reject: (error: Error) => void;
}

/**
 * Hands each pack to a worker only when that worker is idle (packs wait here, in order), so a
 * pack never queues behind a slow one while another worker has nothing to do.
 */
class WorkerPackVerifier implements PackVerifier {
  private readonly workers: Worker[] = [];
  private readonly idle: Worker[] = [];
  private readonly working = new Map<Worker, QueuedPack>();
  private readonly queue: QueuedPack[] = [];
  private failure: Error | undefined;

  constructor(keys: MasterKeys, compression: CompressionSettings, count: number) {
    const init: VerifyWorkerInit = { keys: keys.serialize(), compression };
    for (let i = 0; i < count; i++) {
      // A small young generation: scavenges run often, so short-lived objects (and the packs
      // they hold) are freed soon after each verification.
      const worker = new Worker(WORKER_SCRIPT, { workerData: init, resourceLimits: WORKER_RESOURCE_LIMITS });
      worker.on('message', (response: VerifyResponse) => {
        const job = this.working.get(worker)!;
        this.working.delete(worker);
        // An idle worker must not keep a finished command alive; a busy one must.
        worker.unref();
        this.idle.push(worker);
        if (response.findings) job.resolve(response.findings);
        else job.reject(new Error(response.error ?? 'pack verifier worker failed'));
        this.dispatch();
      });
      worker.on('error', (error) => this.fail(error));
      worker.on('exit', () => this.fail(new Error('a pack verifier worker stopped')));
      worker.unref();
      this.workers.push(worker);
      this.idle.push(worker);
    }
  }

  get threads(): number {
    return this.workers.length;
  }

  verify(packHex: string, bytes: Buffer, indexed: readonly PackedBlob[]): Promise<CheckFinding[]> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.queue.push({ request: { packHex, bytes: movable(bytes), blobs: toWire(indexed) }, resolve, reject });
      this.dispatch();
    });
  }

  private dispatch(): void {
    while (this.queue.length > 0 && this.idle.length > 0) {
      const job = this.queue.shift()!;
      const worker = this.idle.pop()!;
      this.working.set(worker, job);
      worker.ref();
      const { request } = job;
      worker.postMessage(request, [request.bytes.buffer as ArrayBuffer, request.blobs.fields.buffer as ArrayBuffer, request.blobs.ids.buffer as ArrayBuffer]);
    }
  }

  private fail(error: Error): void {
    this.failure ??= error;
    for (const job of [...this.working.values(), ...this.queue.splice(0)]) job.reject(this.failure);
    this.working.clear();
  }

  async close(): Promise<void> {
    this.failure ??= new Error('the pack verifier is closed');
    await Promise.all(this.workers.map((worker) => worker.terminate()));
  }
}

/** Workers when the compiled worker script exists (the CLI runs from dist/), else inline (also with BH_WORKERS=0). */
export function createPackVerifier(keys: MasterKeys, compression: CompressionSettings): PackVerifier {
  const count = workerCount();
  if (count === 0 || !existsSync(WORKER_SCRIPT)) return new InlinePackVerifier(keys, compression);
  return new WorkerPackVerifier(keys, compression, count);
}
