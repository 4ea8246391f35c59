/**
 * How large each kind of repository file may be before bh refuses to read it whole: far above
 * what bh writes, far below what a planted or padded file could claim (a config that is a
 * symlink to a huge file, a key file of a gigabyte). Packs are bounded by what the index says
 * they hold instead (packSizeOf in pack.ts).
 */
import type { FileType, WholeFile } from '../backends/backend.js';

const KiB = 1024;
const MiB = 1024 * KiB;

const MOST_BYTES: Record<Exclude<FileType, 'data'>, number> = {
  // Hundreds of bytes each as written.
  config: 64 * KiB,
  keys: 64 * KiB,
  locks: 64 * KiB,
  // A few KB, more with many paths and tags.
  snapshots: 64 * MiB,
  // A rewrite (prune, repair) puts the whole index into one file: ~45 bytes a blob.
  index: 2 * 1024 * MiB - 1,
};

/** The whole-file read of a (non-pack) file of `type`. */
export function wholeFile(type: Exclude<FileType, 'data'>): WholeFile {
  return { atMost: MOST_BYTES[type] };
}
