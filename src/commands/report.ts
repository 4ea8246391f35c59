/**
 * One report object per command run: prints human text, or JSON (one document or JSON lines)
 * when --json is given, so every command gets --json the same way. Progress goes to stderr and
 * only when stderr is a terminal; a pipe or a cron mail stays quiet. Commands write to stdout
 * only through it.
 */
import { once } from 'node:events';
import type { Writable } from 'node:stream';
import { AbortedError } from '../snapshot/archiver.js';

export class Report {
  private progressShown = false;

  constructor(
    private readonly stdout: Writable & { isTTY?: boolean },
    private readonly stderr: Writable & { isTTY?: boolean },
    /** --json was given. */
    readonly jsonMode: boolean,
  ) {}

  /** A line of human output (suppressed in --json mode). */
  line(text = ''): void {
    if (this.jsonMode) return;
    this.clearProgress();
    this.stdout.write(text + '\n');
  }

  /** One JSON value on its own line (only in --json mode), one of a stream of them. */
  jsonLine(value: unknown): void {
    if (!this.jsonMode) return;
    this.stdout.write(JSON.stringify(value) + '\n');
  }

  /**
   * The command's whole output as one JSON document, printed in both modes: on one line with
   * --json, indented for people without it (`bh cat`, whose output is JSON either way). A
   * command with a human form as well calls it only in --json mode.
   */
  json(value: unknown): void {
    this.clearProgress();
    this.stdout.write((this.jsonMode ? JSON.stringify(value) : JSON.stringify(value, null, 2)) + '\n');
  }

  /** Output as it is, in both modes: a blob's bytes, a file's text, a JSON document written piece by piece. */
  raw(data: string | Uint8Array): void {
    this.clearProgress();
    this.stdout.write(data);
  }

  /**
   * Waits while stdout's buffer is full: a slow reader (a pager, a pipe) would otherwise let a
   * long listing pile up in memory. Throws AbortedError when `signal` fires meanwhile.
   */
  async drain(signal: AbortSignal): Promise<void> {
    if (!this.stdout.writableNeedDrain) return;
    try {
      await once(this.stdout, 'drain', { signal });
    } catch (error) {
      throw signal.aborted ? new AbortedError() : error;
    }
  }

  /** A table of human output: columns padded to their widest cell. */
  table(header: string[], rows: string[][]): void {
    if (this.jsonMode) return;
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
    const format = (cells: string[]): string => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
    this.line(format(header));
    this.line(widths.map((w) => '-'.repeat(w)).join('  '));
    for (const row of rows) this.line(format(row));
  }

  /** A warning or error on stderr, in both modes (JSON consumers read stdout). */
  warn(text: string): void {
    this.clearProgress();
    this.stderr.write(text + '\n');
  }

  /** A transient status line, redrawn in place on a terminal. */
  progress(text: string): void {
    if (this.jsonMode || !this.stderr.isTTY) return;
    const width = (this.stderr as { columns?: number }).columns ?? 80;
    this.stderr.write('\r\x1b[K' + text.slice(0, width - 1));
    this.progressShown = true;
  }

  clearProgress(): void {
    if (!this.progressShown) return;
    this.stderr.write('\r\x1b[K');
    this.progressShown = false;
  }
}

/** Byte counts in binary units, the same in command output and in notifications. */
export { humanBytes as formatBytes } from '../notify/format.js';

export function formatDuration(ms: number): string {
  const s = Math.floor(ms / 1000);
  return s >= 3600 ? `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m` : s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s` : `${(ms / 1000).toFixed(1)}s`;
}
