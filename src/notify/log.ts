/**
 * [LOGGING]: the job's log file, JSON lines written by pino (one object per line: time, level,
 * msg and fields), rotated by size as the old tool's application.log was: at `maxSizeBytes` the
 * file becomes FILE.1, FILE.1 becomes FILE.2 …, and `keep` rotated files are kept. People read
 * the run on the console (bh's ordinary output); the file is for grep, jq and log shippers.
 * Every line passes the job's Redactor before it is written.
 */
import { mkdirSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { once } from 'node:events';
import { pino, type Logger } from 'pino';
import { createStream } from 'rotating-file-stream';
import type { Redactor } from './redact.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];

export interface LogSettings {
  file: string;
  maxSizeBytes: number;
  keep: number;
  level: LogLevel;
}

/** The old tool's rotation: 5 MB, 5 files kept. */
export const DEFAULT_LOG_MAX_SIZE = 5 * 1024 * 1024;
export const DEFAULT_LOG_KEEP = 5;

export interface JobLog {
  logger: Logger;
  /** Writes what is buffered and closes the file. */
  close(): Promise<void>;
}

export function openJobLog(settings: LogSettings, redactor: Redactor, base: Record<string, unknown> = {}): JobLog {
  const dir = dirname(settings.file);
  const name = basename(settings.file);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  // Classic rotation calls the generator with the rotation's number, or null for the live file.
  const rotatedName = (index: number | Date | null): string => (typeof index === 'number' && index > 0 ? `${name}.${index}` : name);
  const stream = createStream(rotatedName, {
    path: dir,
    size: `${settings.maxSizeBytes}B`,
    rotate: settings.keep,
    mode: 0o640,
  });
  const logger = pino(
    {
      level: settings.level,
      base: { pid: process.pid, ...base },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      hooks: { streamWrite: (line) => redactor.text(line) },
    },
    stream,
  );
  let closed: Promise<void> | undefined;
  return {
    logger,
    close: () => {
      closed ??= (async () => {
        const finished = once(stream, 'finish');
        stream.end();
        await finished;
      })();
      return closed;
    },
  };
}

/** "5M", "500K", "1G" or a byte count; undefined when it is none of these. */
export function parseSize(text: string): number | undefined {
  const m = /^(\d+)\s*([KMG]i?B?|B)?$/i.exec(text.trim());
  if (!m) return undefined;
  const unit = (m[2] ?? 'B').toUpperCase()[0]!;
  const factor = unit === 'K' ? 1024 : unit === 'M' ? 1024 ** 2 : unit === 'G' ? 1024 ** 3 : 1;
  const value = Number(m[1]) * factor;
  return value > 0 ? value : undefined;
}
