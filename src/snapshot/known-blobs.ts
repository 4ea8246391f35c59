/**
 * A filter over the data blobs the repository held when a backup started, shared with the
 * chunk workers (a SharedArrayBuffer, read only once built). A worker that finds a chunk's id
 * in it sends the chunk's plaintext instead of compressing and encrypting it: a file that
 * changed but mostly holds chunks the repository has (a database dump, a VM image, a new
 * release of a package) then costs a hash per chunk, not a zstd pass. The repository decides
 * (IndexedRepository.saveBlob): a blob the index has outside condemned packs is dropped;
 * anything else (the rare false positive, about 1 in 70 at 16 bits per blob, or a blob only a
 * condemned pack holds) is sealed there.
 *
 * Two bits per id, taken straight from the id's first 8 bytes: ids are keyed hashes, so those
 * bytes are uniformly random already.
 */
import type { MasterIndex } from '../repo/master-index.js';

const BITS_PER_BLOB = 16;
const MIN_BITS = 1 << 16;
/** Bit numbers stay below 2^31, so they survive JavaScript's 32-bit signed bit operations. */
const MAX_BITS = 2 ** 31;

export class KnownBlobFilter {
  private readonly words: Uint32Array;
  private readonly mask: number;
  private readonly scratch = new Uint8Array(4);
  private readonly scratchWord = new Uint32Array(this.scratch.buffer);

  constructor(readonly shared: SharedArrayBuffer) {
    this.words = new Uint32Array(shared);
    this.mask = this.words.length * 32 - 1;
  }

  /**
   * The filter of the data blobs of `index`, or undefined when it has none (nothing to find).
   * Blobs in condemned packs are in it too: the repository, which must not deduplicate against
   * them, seals those itself.
   */
  static ofIndex(index: MasterIndex): KnownBlobFilter | undefined {
    const count = index.rowCount('data');
    if (count === 0) return undefined;
    const bits = Math.min(MAX_BITS, Math.max(MIN_BITS, 2 ** Math.ceil(Math.log2(count * BITS_PER_BLOB))));
    const filter = new KnownBlobFilter(new SharedArrayBuffer(bits / 8));
    index.forEachIdHead('data', (first, second) => filter.set(first, second));
    return filter;
  }

  /** Whether the id may be one of the repository's blobs (no: certainly not). */
  mayHave(id: Uint8Array): boolean {
    const { first, second } = this.heads(id);
    return this.get(first) && this.get(second);
  }

  /** The two words MasterIndex.forEachIdHead gives for this id. */
  private heads(id: Uint8Array): { first: number; second: number } {
    const first = ((id[0]! << 24) | (id[1]! << 16) | (id[2]! << 8) | id[3]!) >>> 0;
    this.scratch.set(id.subarray(4, 8));
    return { first, second: this.scratchWord[0]! };
  }

  private set(first: number, second: number): void {
    for (const word of [first, second]) {
      const bit = word & this.mask;
      this.words[bit >>> 5]! |= 1 << (bit & 31);
    }
  }

  private get(word: number): boolean {
    const bit = word & this.mask;
    return (this.words[bit >>> 5]! & (1 << (bit & 31))) !== 0;
  }
}
