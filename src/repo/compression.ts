/**
 * The payload inside every envelope: one flag byte, then the body (docs/FORMAT.md §3).
 *   0x00 ‖ raw bytes        — stored as is (compression did not pay)
 *   0x01 ‖ one zstd frame   — compressed
 * The flag sits inside the authenticated plaintext, so it cannot be flipped unnoticed.
 */
import { createRequire } from 'node:module';
import { Compressor, Decompressor } from 'zstd-napi';
import { FormatError } from './errors.js';

// zstd-napi's Decompressor allocates every result; its native context also decompresses into a
// buffer the caller reuses (fresh memory costs page faults and GC on every blob).
const zstdBinding = createRequire(import.meta.url)('zstd-napi/binding.js') as typeof import('zstd-napi/binding.js');

/** The zstd library's version (`1.5.7`), for `bh version`. */
export function zstdVersion(): string {
  return zstdBinding.versionString();
}

export const PAYLOAD_RAW = 0;
export const PAYLOAD_ZSTD = 1;

/** Compression must save at least this share of the bytes to be kept (else decompression costs for nothing). */
const MIN_SAVING = 1 / 32;

export interface CompressionSettings {
  algorithm: 'zstd' | 'none';
  level: number;
}

export class PayloadCodec {
  private readonly compressor: Compressor | undefined;
  private readonly decompressor = new Decompressor();
  private readonly dctx = new zstdBinding.DCtx();

  constructor(settings: CompressionSettings) {
    if (settings.algorithm === 'zstd') {
      this.compressor = new Compressor();
      this.compressor.setParameters({ compressionLevel: settings.level });
    }
  }

  encode(plaintext: Uint8Array): Buffer {
    if (this.compressor && plaintext.length >= 64) {
      const packed = this.compressor.compress(plaintext);
      if (packed.length <= plaintext.length * (1 - MIN_SAVING)) return withFlag(PAYLOAD_ZSTD, packed);
    }
    return withFlag(PAYLOAD_RAW, plaintext);
  }

  /**
   * `what` names the object in errors. With `into` (as long as the plaintext is expected to
   * be) a compressed body is decompressed into it, when its frame says it is of that length;
   * the result is then a view of `into`. Payloads are decoded only once authenticated, so one
   * that does not decode was written so: a FormatError (a bug, never a user error).
   */
  decode(payload: Uint8Array, what: string, into?: Buffer): Buffer {
    if (payload.length === 0) throw new FormatError(`${what}: empty payload`);
    const flag = payload[0];
    const body = payload.subarray(1);
    if (flag === PAYLOAD_RAW) return Buffer.from(body.buffer, body.byteOffset, body.length);
    if (flag === PAYLOAD_ZSTD) {
      try {
        if (into && zstdBinding.getFrameContentSize(body) === into.length) return into.subarray(0, this.dctx.decompress(into, body));
        return this.decompressor.decompress(body);
      } catch (error) {
        throw new FormatError(`${what}: zstd frame does not decompress (${(error as Error).message})`);
      }
    }
    throw new FormatError(`${what}: unknown payload flag ${flag}`);
  }
}

function withFlag(flag: number, body: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(body.length + 1);
  out[0] = flag;
  out.set(body, 1);
  return out;
}
