/**
 * The payload inside every envelope: one flag byte, then the body (docs/FORMAT.md §3).
 *   0x00 ‖ raw bytes        — stored as is (compression did not pay)
 *   0x01 ‖ one zstd frame   — compressed
 * The flag sits inside the authenticated plaintext, so it cannot be flipped unnoticed.
 */
import { createRequire } from 'node:module';
import { Compressor } from 'zstd-napi';
import { FormatError } from './errors.js';

// zstd-napi's native context decompresses into a buffer of the caller's: one sized by what the
// plaintext may be (a frame cannot grow past it, however much it claims), and reused from blob to
// blob where the caller can (fresh memory costs page faults and GC on every blob).
const zstdBinding = createRequire(import.meta.url)('zstd-napi/binding.js') as typeof import('zstd-napi/binding.js');

/** The zstd library's version (`1.5.7`), for `bh version`. */
export function zstdVersion(): string {
  return zstdBinding.versionString();
}

export const PAYLOAD_RAW = 0;
export const PAYLOAD_ZSTD = 1;

/**
 * A file's plaintext may be at most this many times its compressed body, plus FILE_SLACK: far
 * above what bh's files compress to (snapshots, index files, keys, locks), far below a zstd bomb
 * (a few KB that claim a GiB), which is refused before any memory is taken for it.
 */
const FILE_MAX_RATIO = 256;
const FILE_SLACK = 1 << 20;

/** Compression must save at least this share of the bytes to be kept (else decompression costs for nothing). */
const MIN_SAVING = 1 / 32;

export interface CompressionSettings {
  algorithm: 'zstd' | 'none';
  level: number;
}

export class PayloadCodec {
  private readonly compressor: Compressor | undefined;
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
   * `what` names the object in errors. `expected` bounds the plaintext: a blob's length from
   * the index (exactly), or for a file a size proportional to its payload. A compressed body is
   * decompressed into `into` when given (a buffer of the blob's length, reused by the caller;
   * the result is then a view of it). A frame that claims another length, or would grow past the
   * bound, is refused: authenticated but hostile (written with the key to exhaust memory), or a bug.
   */
  decode(payload: Uint8Array, what: string, expected: { exactly: number } | 'file' = 'file', into?: Buffer): Buffer {
    if (payload.length === 0) throw new FormatError(`${what}: empty payload`);
    const flag = payload[0];
    const body = payload.subarray(1);
    if (flag === PAYLOAD_RAW) return Buffer.from(body.buffer, body.byteOffset, body.length);
    if (flag !== PAYLOAD_ZSTD) throw new FormatError(`${what}: unknown payload flag ${flag}`);
    let claimed: number | null;
    try {
      claimed = zstdBinding.getFrameContentSize(body);
    } catch (error) {
      throw new FormatError(`${what}: zstd frame does not decompress (${(error as Error).message})`);
    }
    const bound = expected === 'file' ? FILE_SLACK + FILE_MAX_RATIO * body.length : expected.exactly;
    if (claimed !== null && (expected === 'file' ? claimed > bound : claimed !== bound)) {
      throw new FormatError(`${what}: zstd frame claims ${claimed} bytes of plaintext where ${expected === 'file' ? `at most ${bound}` : bound} are possible; refused unread`);
    }
    const out = into ?? Buffer.allocUnsafe(claimed ?? bound);
    try {
      return out.subarray(0, this.dctx.decompress(out, body));
    } catch (error) {
      throw new FormatError(`${what}: zstd frame does not decompress within ${out.length} bytes (${(error as Error).message})`);
    }
  }
}

/** The plaintext length a compressed payload's zstd frame declares (null: raw, or not declared). */
export function declaredLength(payload: Uint8Array): number | null {
  if (payload[0] !== PAYLOAD_ZSTD) return null;
  try {
    return zstdBinding.getFrameContentSize(payload.subarray(1));
  } catch {
    return null; // decode() names the damage
  }
}

function withFlag(flag: number, body: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(body.length + 1);
  out[0] = flag;
  out.set(body, 1);
  return out;
}
