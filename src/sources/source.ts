/**
 * The dump source seam (docs/ARCHITECTURE.md, "Layers"): a source yields named byte streams,
 * each a file of the snapshot to be, and checks after each one that its producer finished well.
 * The archiver (src/snapshot/streams.ts) stores them; the snapshot is saved only when every
 * check passed. This layer imports nothing of ours: the snapshot layer states the same shape
 * from its side, and TypeScript checks that the two agree where commands and jobs join them.
 */

/** One file of the snapshot, as bytes from a producer. */
export interface SourceFile {
  /** Its path in the snapshot, absolute: "/mysql/app.sql". */
  path: string;
  data: AsyncIterable<Uint8Array>;
  /**
   * Called once `data` has ended: resolves when the producer finished well (exit status 0, no
   * signal, its trailer there), throws a DumpFailedError saying why not otherwise.
   */
  verify(): Promise<void>;
}

/** What the snapshot record keeps about a database dump (docs/FORMAT.md §7, `dump`). */
export interface DumpRecord {
  version: 1;
  engine: 'mysql' | 'postgres';
  /** The server's version string, as it reported it. */
  server_version: string;
  /** The dump tool's own `--version` line. */
  tool: string;
  files: DumpFileRecord[];
}

export interface DumpFileRecord {
  path: string;
  /** The database the file holds (absent for PostgreSQL's globals). */
  database?: string;
  /** MySQL/MariaDB with binlog_position: where the binary log stood when this file's transaction began. */
  binlog?: BinlogPosition;
}

export interface BinlogPosition {
  file: string;
  position: number;
  /** MariaDB's gtid_slave_pos / MySQL's gtid_purged at that point, when the server has GTIDs. */
  gtid?: string;
}

export interface Source {
  /** The snapshot's paths ("/mysql"): what `bh snapshots` shows and retention groups by. */
  readonly paths: string[];
  /** The files, one at a time: the next one starts only after the previous one was stored and verified. */
  files(signal?: AbortSignal): AsyncIterable<SourceFile>;
  /** After every file was verified: what the snapshot record keeps. */
  dumpRecord?(): DumpRecord | undefined;
  /** Releases what the source holds (credential files, child processes), however the backup ended. */
  close(): Promise<void>;
}

/** A producer failed: the tool could not start, exited non-zero, died of a signal, or left its trailer out. */
export class DumpFailedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DumpFailedError';
  }
}

/**
 * A database's name as a file name in the snapshot: '/' and '%' (and a name that is only dots)
 * percent-encoded, so that any name PostgreSQL allows is one plain file name.
 */
export function databaseFileName(database: string): string {
  const encoded = database.replace(/[%/]/g, (c) => (c === '%' ? '%25' : '%2F'));
  return /^\.*$/.test(encoded) ? encoded.replace(/\./g, '%2E') : encoded;
}
