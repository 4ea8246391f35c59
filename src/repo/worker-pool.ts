/**
 * Worker threads for bh's CPU-bound work, one implementation for every pool: sealing blobs
 * (seal-worker.ts), reading and sealing files for a backup (snapshot/chunk-worker.ts), reading,
 * opening and writing blobs for a restore (snapshot/restore/content-writer.ts), verifying packs
 * (verify-worker.ts).
 *
 * - The script: always the compiled file under the package's `dist/` (workerScript). From
 *   dist/ (bin/bh, library use) that is the file beside the module asking; from the TypeScript
 *   sources (vitest imports src/) it is the build tests/helpers/global-setup.ts makes before
 *   the tests. Without a build a pool does not start: it throws, naming the file and the
 *   command that builds it. Work runs on the calling thread only when the user asked for no
 *   workers (BH_WORKERS=0); each user decides that before it makes a pool.
 * - How many: workerCount (BH_WORKERS), each with WORKER_RESOURCE_LIMITS.
 * - When they start: all at once (`eager`: the work is known to come), or one at a time, when
 *   every worker started so far is busy (a pool that may see one request or thousands).
 * - Keeping the process alive: a worker holding work does, an idle one does not, so a command
 *   that is done exits even if a pool was never closed.
 * - Failure: a worker that dies (an uncaught exception, out of memory, an exit) stops the whole
 *   pool: its workers are terminated, every job in flight and every later one fails with a
 *   WorkerFailedError naming the pool and the cause. Nothing waits for an answer that cannot
 *   come.
 * - close(): after an optional last request to each worker (to let it release what it holds),
 *   terminates them; jobs still in flight fail.
 *
 * Two ways to talk to the workers. RequestPool: one answer per request, in order
 * (answerRequests on the worker's side), with transfer lists and optional back-pressure (at
 * most so many requests per worker; the rest wait here, in order). WorkerPool: messages both
 * ways as the user likes, for a user that streams many messages per job (the file chunker,
 * whose credit lives in shared memory) and keeps its own table of jobs. Neither wraps or copies
 * the user's messages: what is posted is what the user built.
 */
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { type TransferListItem, Worker, parentPort } from 'node:worker_threads';

/**
 * Limits for every worker thread: a young generation of 2 MB instead of V8's default of up to
 * 48. Workers hold their data in buffers outside the JS heap, so the small nursery costs no
 * measurable CPU and saves tens of MB of resident memory per worker (and frees what a job held
 * soon after it).
 */
export const WORKER_RESOURCE_LIMITS = { maxYoungGenerationSizeMb: 2 };

/** Worker threads per pool: `BH_WORKERS` when set, else `otherwise` (one per core). */
export function workerCount(otherwise = availableParallelism()): number {
  const fromEnv = process.env['BH_WORKERS'];
  return fromEnv !== undefined && fromEnv !== '' ? Math.max(0, Math.floor(Number(fromEnv)) || 0) : otherwise;
}

/**
 * The bytes of `view` in an ArrayBuffer of their own, ready to move to another thread.
 * postMessage clones a view's whole underlying buffer — for Node's pooled small buffers that is
 * 8 KiB per message, 400 MB over a 50 000-file backup — so a view that does not own its buffer
 * is copied first; one that does is passed as is (and can be transferred without a copy).
 */
export function movable(view: Uint8Array): Uint8Array {
  return view.byteOffset === 0 && view.byteLength === view.buffer.byteLength && view.buffer instanceof ArrayBuffer ? view : new Uint8Array(view);
}

/** `<package>/dist/`: this module is `<package>/src/repo/worker-pool.ts` or `<package>/dist/repo/worker-pool.js`. */
const DIST = new URL('../../dist/', import.meta.url);

/** The compiled worker script at `pathInDist` (such as `repo/seal-worker.js`): see the module comment. */
export function workerScript(pathInDist: string): string {
  return fileURLToPath(new URL(pathInDist, DIST));
}

/** A worker of a pool died: the pool is stopped, and every job it had failed with this. */
export class WorkerFailedError extends Error {
  constructor(pool: string, cause: unknown) {
    super(`bh's ${pool} worker thread failed: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = 'WorkerFailedError';
  }
}

export interface PoolOptions {
  /** What the workers do, for messages ("bh's <name> worker thread failed: …"). */
  name: string;
  /** The worker script: workerScript(…), or a test's own. */
  script: string;
  /** Workers at most. */
  size: number;
  /** The workerData of the worker numbered `index` (0, 1, … in the order they start). */
  workerData: (index: number) => unknown;
  /** Start every worker now; else one at a time, when those started so far are all busy. */
  eager?: boolean;
}

export interface PooledWorker {
  /** Its number: 0, 1, … in the order the workers started. */
  readonly index: number;
  /** Work handed to it and not done, in the user's unit (jobs, bytes). */
  readonly load: number;
}

interface Slot extends PooledWorker {
  load: number;
  readonly thread: Worker;
}

/**
 * Worker threads and nothing about what they say: the user posts, receives (onMessage) and
 * counts the work it hands over (acquire, release). `onStop` is called once, when the pool
 * fails or is closed, with the error every job still in flight must fail with.
 */
export class WorkerPool<Out, In> {
  private readonly slots: Slot[] = [];
  private stopped: Error | undefined;

  constructor(
    private readonly options: PoolOptions & {
      onMessage: (worker: PooledWorker, message: In) => void;
      onStop: (error: Error) => void;
    },
  ) {
    if (!existsSync(options.script)) throw new Error(`bh's worker script ${options.script} is missing: build bh first ('npm run build')`);
    if (options.eager) while (this.slots.length < options.size) this.start();
  }

  /** Workers at most. */
  get size(): number {
    return this.options.size;
  }

  /** Why the pool takes no more work (it failed, or was closed); undefined while it does. */
  get failure(): Error | undefined {
    return this.stopped;
  }

  /**
   * The worker to give the next job: the least loaded (the first of equals), unless all are
   * busy and fewer than `size` run, then a new one. Throws once the pool stopped (failure).
   */
  pick(): PooledWorker {
    if (this.stopped !== undefined) throw this.stopped;
    let best = this.slots[0];
    for (let i = 1; i < this.slots.length; i++) if (this.slots[i]!.load < best!.load) best = this.slots[i]!;
    if ((best === undefined || best.load > 0) && this.slots.length < this.options.size) return this.start();
    return best!;
  }

  /** The workers started so far. */
  get started(): readonly PooledWorker[] {
    return this.slots;
  }

  /** Counts `cost` (more than 0) of work handed to `worker`: a worker with work keeps the process alive. */
  acquire(worker: PooledWorker, cost: number): void {
    const slot = worker as Slot;
    if (slot.load === 0) slot.thread.ref();
    slot.load += cost;
  }

  /** `cost` of `worker`'s work is done (or no longer awaited). */
  release(worker: PooledWorker, cost: number): void {
    const slot = worker as Slot;
    slot.load -= cost;
    if (slot.load === 0) slot.thread.unref();
  }

  /** Posts `message` to `worker`, moving the buffers in `transfer`; nothing once the pool stopped. */
  post(worker: PooledWorker, message: Out, transfer?: readonly TransferListItem[]): void {
    if (this.stopped === undefined) (worker as Slot).thread.postMessage(message, transfer);
  }

  /** Terminates the workers; jobs in flight fail (onStop). */
  async close(): Promise<void> {
    const threads = this.stop(new Error(`bh's ${this.options.name} workers were stopped`));
    await Promise.all(threads.map((thread) => thread.terminate()));
  }

  private start(): Slot {
    const index = this.slots.length;
    const thread = new Worker(this.options.script, { workerData: this.options.workerData(index), resourceLimits: WORKER_RESOURCE_LIMITS });
    const slot: Slot = { index, load: 0, thread };
    thread.on('message', (message: In) => this.options.onMessage(slot, message));
    thread.on('error', (error) => this.fail(error));
    thread.on('messageerror', (error) => this.fail(error));
    thread.on('exit', (code) => this.fail(new Error(`it exited with code ${code}`)));
    // Idle: see acquire().
    thread.unref();
    this.slots.push(slot);
    return slot;
  }

  private fail(cause: unknown): void {
    if (this.stopped !== undefined) return;
    for (const thread of this.stop(new WorkerFailedError(this.options.name, cause))) void thread.terminate();
  }

  /** Stops taking work and fails what is in flight; the threads to terminate (none when stopped already). */
  private stop(error: Error): Worker[] {
    if (this.stopped !== undefined) return [];
    this.stopped = error;
    this.options.onStop(error);
    return this.slots.map((slot) => slot.thread);
  }
}

/** What answerRequests posts for a request that threw. */
interface ErrorAnswer {
  bhWorkerError: string;
}

function isErrorAnswer(message: unknown): message is ErrorAnswer {
  return typeof message === 'object' && message !== null && 'bhWorkerError' in message;
}

interface PendingRequest<Request, Response> {
  request: Request;
  transfer: readonly TransferListItem[] | undefined;
  cost: number;
  resolve: (response: Response) => void;
  reject: (error: Error) => void;
}

/**
 * Requests answered by the worker threads, one answer each, in the order they were posted
 * (the worker side is answerRequests). A request goes to the least loaded worker, by `cost`.
 * With `perWorker`, a worker holds at most that many requests; the others wait here, in order.
 */
export class RequestPool<Request, Response> {
  private readonly pool: WorkerPool<Request, Response | ErrorAnswer>;
  /** Per worker (by number): its requests not answered yet, oldest first. */
  private readonly posted: PendingRequest<Request, Response>[][] = [];
  /** Requests waiting for a worker with room (perWorker). */
  private readonly waiting: PendingRequest<Request, Response>[] = [];
  /** Requests a worker holds at most; undefined: no bound. */
  private readonly perWorker: number | undefined;

  constructor({ perWorker, ...options }: PoolOptions & { perWorker?: number }) {
    this.perWorker = perWorker;
    for (let i = 0; i < options.size; i++) this.posted.push([]);
    this.pool = new WorkerPool({ ...options, onMessage: (worker, message) => this.receive(worker, message), onStop: (error) => this.failAll(error) });
  }

  /** Workers at most. */
  get size(): number {
    return this.pool.size;
  }

  /**
   * `request`'s answer. The buffers in `transfer` move to the worker (they are detached here);
   * `cost` is the request's share of a worker's load (1, or its bytes).
   */
  request(request: Request, transfer?: readonly TransferListItem[], cost = 1): Promise<Response> {
    const failure = this.pool.failure;
    if (failure) return Promise.reject(failure);
    return new Promise((resolve, reject) => {
      const pending = { request, transfer, cost, resolve, reject };
      if (this.perWorker === undefined) this.post(this.pool.pick(), pending);
      else {
        this.waiting.push(pending);
        this.dispatch();
      }
    });
  }

  /**
   * Stops the workers, after each has answered `farewell` when given (whatever it answers); requests
   * in flight then fail.
   */
  async close(farewell?: Request): Promise<void> {
    if (farewell !== undefined && this.pool.failure === undefined) {
      await Promise.allSettled(this.pool.started.map((worker) => new Promise((resolve, reject) => this.post(worker, { request: farewell, transfer: undefined, cost: 1, resolve, reject }))));
    }
    await this.pool.close();
  }

  private post(worker: PooledWorker, pending: PendingRequest<Request, Response>): void {
    const failure = this.pool.failure;
    if (failure) return pending.reject(failure);
    this.pool.post(worker, pending.request, pending.transfer);
    this.pool.acquire(worker, pending.cost);
    this.posted[worker.index]!.push(pending);
  }

  private dispatch(): void {
    while (this.waiting.length > 0) {
      const worker = this.pool.pick();
      if (this.posted[worker.index]!.length >= this.perWorker!) return;
      this.post(worker, this.waiting.shift()!);
    }
  }

  private receive(worker: PooledWorker, message: Response | ErrorAnswer): void {
    // None when the request failed already (the pool stopped while the worker was at it).
    const pending = this.posted[worker.index]!.shift();
    if (!pending) return;
    this.pool.release(worker, pending.cost);
    if (isErrorAnswer(message)) pending.reject(new Error(message.bhWorkerError));
    else pending.resolve(message);
    if (this.waiting.length > 0) this.dispatch();
  }

  private failAll(error: Error): void {
    for (const [index, posted] of this.posted.entries()) {
      for (const pending of posted.splice(0)) {
        this.pool.release(this.pool.started[index]!, pending.cost);
        pending.reject(error);
      }
    }
    for (const pending of this.waiting.splice(0)) pending.reject(error);
  }
}

/**
 * The worker's side of a RequestPool: answers each request with `handle`'s result, in the
 * order they came, moving the buffers `transfer` lists. A request that throws is answered with
 * its error (its caller's promise rejects with the message); the worker serves the next.
 */
export function answerRequests<Request, Response>(handle: (request: Request) => Response, transfer?: (response: Response) => readonly TransferListItem[]): void {
  const port = parentPort;
  if (!port) throw new Error('answerRequests runs on a worker thread');
  port.on('message', (request: Request) => {
    let response: Response;
    try {
      response = handle(request);
    } catch (error) {
      port.postMessage({ bhWorkerError: (error as Error).message } satisfies ErrorAnswer);
      return;
    }
    port.postMessage(response, transfer?.(response));
  });
}
