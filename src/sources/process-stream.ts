/**
 * A child process's standard output as a stream, and the check of how it ended: exit status 0,
 * no signal and, for dump tools, the trailer they write last. Run without a shell: arguments are
 * passed as they are. The child is killed when the reader stops early or the signal fires.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DumpFailedError } from './source.js';

export interface ProcessStreamOptions {
  /** The program (a name looked up on PATH, or a path) and its arguments. */
  argv: readonly string[];
  env?: Readonly<Record<string, string | undefined>> | undefined;
  /** How messages name it: "mariadb-dump of database app". */
  what: string;
  /** What the last bytes of a complete output match (the tool's "dump completed" line). */
  trailer?: { pattern: RegExp; description: string } | undefined;
  /** Told about each piece of the tool's standard error as it comes; without it, stderr is kept for the failure message. */
  onStderr?: ((text: string) => void) | undefined;
  signal?: AbortSignal | undefined;
}

/** How much of the end of the output is kept for the trailer check, and of stderr for messages. */
const TAIL_BYTES = 4096;
/** How much of the start of the output is kept for header(): enough for a dump's comment header. */
const HEAD_BYTES = 64 * 1024;

function processEnv(env: Readonly<Record<string, string | undefined>> | undefined): NodeJS.ProcessEnv {
  return env === undefined ? process.env : (Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined)) as NodeJS.ProcessEnv);
}

export class ProcessStream {
  private readonly child: ChildProcess;
  private readonly ended: Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>;
  private stderr = '';
  private head: Buffer = Buffer.alloc(0);
  private tail: Buffer = Buffer.alloc(0);
  private finishedReading = false;

  constructor(private readonly options: ProcessStreamOptions) {
    const [program, ...args] = options.argv;
    this.child = spawn(program!, args, { stdio: ['ignore', 'pipe', 'pipe'], env: processEnv(options.env), shell: false });
    this.ended = new Promise((resolve) => {
      this.child.once('error', (error) => resolve({ code: null, signal: null, error }));
      this.child.once('close', (code, signal) => resolve({ code, signal }));
    });
    this.child.stderr!.setEncoding('utf8');
    this.child.stderr!.on('data', (text: string) => {
      this.stderr = (this.stderr + text).slice(-TAIL_BYTES);
      options.onStderr?.(text);
    });
    // A failed spawn (no such program) reports itself through 'error'; reading stdout then just ends.
    this.child.stdout!.on('error', () => undefined);
    const kill = (): void => void this.child.kill('SIGTERM');
    options.signal?.addEventListener('abort', kill, { once: true });
    void this.ended.then(() => options.signal?.removeEventListener('abort', kill));
  }

  /** The output, piece by piece. Stopping early kills the process. */
  async *data(): AsyncGenerator<Uint8Array> {
    try {
      for await (const piece of this.child.stdout! as AsyncIterable<Buffer>) {
        if (this.head.length < HEAD_BYTES) this.head = Buffer.concat([this.head, piece.subarray(0, HEAD_BYTES - this.head.length)]);
        this.tail = piece.length >= TAIL_BYTES ? piece.subarray(piece.length - TAIL_BYTES) : Buffer.concat([this.tail, piece]).subarray(-TAIL_BYTES);
        yield piece;
      }
      this.finishedReading = true;
    } finally {
      if (!this.finishedReading) this.kill();
    }
  }

  /** The first 64 KiB of the output read so far (a dump's header comments). */
  header(): string {
    return this.head.toString('utf8');
  }

  /** The last 4 KiB of the output (where some tools put their closing comments). */
  trailerText(): string {
    return this.tail.toString('utf8');
  }

  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
  }

  /** Once the output was read to its end: throws a DumpFailedError unless the process ended well. */
  async verify(): Promise<void> {
    const { code, signal, error } = await this.ended;
    // Shown as it came (onStderr): not repeated in the message.
    const said = this.options.onStderr !== undefined || this.stderr.trim() === '' ? '' : `; it said: ${this.stderr.trim()}`;
    const program = this.options.argv[0]!;
    if (error) {
      const missing = (error as NodeJS.ErrnoException).code === 'ENOENT';
      throw new DumpFailedError(`${this.options.what}: cannot run ${program}: ${missing ? 'no such program (is it installed and on PATH?)' : error.message}`);
    }
    if (signal !== null) throw new DumpFailedError(`${this.options.what}: ${program} was killed by ${signal} before it finished${said}`);
    if (code !== 0) throw new DumpFailedError(`${this.options.what}: ${program} exited with status ${code}${said}`);
    const trailer = this.options.trailer;
    if (trailer && !trailer.pattern.test(this.tail.toString('latin1'))) {
      throw new DumpFailedError(`${this.options.what}: the output ends without ${trailer.description}, so the dump is incomplete${said}`);
    }
  }
}

export interface FeedOptions {
  argv: readonly string[];
  env?: Readonly<Record<string, string | undefined>> | undefined;
  /** How messages name it: "mariadb restoring into app_restored". */
  what: string;
  input: AsyncIterable<Uint8Array>;
  signal?: AbortSignal | undefined;
}

/**
 * Streams `input` into the standard input of `argv` (a client such as mariadb or psql) and
 * waits for it: throws a DumpFailedError with its stderr unless it exits 0. A client that stops
 * at an error closes its input early; then its exit status, not the broken pipe, is the story.
 */
export async function feedProcess(options: FeedOptions): Promise<void> {
  const [program, ...args] = options.argv;
  const child = spawn(program!, args, { stdio: ['pipe', 'ignore', 'pipe'], env: processEnv(options.env), shell: false });
  let stderr = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (text: string) => (stderr = (stderr + text).slice(-TAIL_BYTES)));
  const ended = new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>((resolve) => {
    child.once('error', (error) => resolve({ code: null, signal: null, error }));
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
  const kill = (): void => void child.kill('SIGTERM');
  options.signal?.addEventListener('abort', kill, { once: true });
  let feedError: Error | undefined;
  try {
    await pipeline(Readable.from(options.input), child.stdin!);
  } catch (error) {
    feedError = error as Error;
    child.kill('SIGTERM');
  }
  const { code, signal, error } = await ended;
  options.signal?.removeEventListener('abort', kill);
  const said = stderr.trim() === '' ? '' : `; it said: ${stderr.trim()}`;
  if (error) {
    const missing = (error as NodeJS.ErrnoException).code === 'ENOENT';
    throw new DumpFailedError(`${options.what}: cannot run ${program}: ${missing ? 'no such program (is it installed and on PATH?)' : error.message}`);
  }
  if (code !== 0 && code !== null) throw new DumpFailedError(`${options.what}: ${program} exited with status ${code}${said}`);
  const pipeBroke = feedError && ['EPIPE', 'ERR_STREAM_PREMATURE_CLOSE', 'ERR_STREAM_DESTROYED'].includes((feedError as NodeJS.ErrnoException).code ?? '');
  if (feedError && !pipeBroke) throw feedError;
  if (signal !== null) throw new DumpFailedError(`${options.what}: ${program} was killed by ${signal}${said}`);
  if (feedError) throw new DumpFailedError(`${options.what}: ${program} stopped reading before the end of the dump${said}`);
}
