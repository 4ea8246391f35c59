/**
 * What the parts of a restore share (src/snapshot/restore/): its options, its result and
 * progress, whether it is stopping, and the asynchronous work under way, which the walk, the
 * content pipeline and the orchestrator wait on together.
 */
import type { PathMatcher } from '../exclude.js';
import type { TreeNode } from '../tree.js';

export type OverwritePolicy = 'always' | 'if-changed' | 'never';

export interface RestoreOptions {
  target: string;
  /** When given, only entries matching (or inside a match) are restored. */
  include?: PathMatcher | undefined;
  exclude: PathMatcher;
  overwrite: OverwritePolicy;
  /**
   * With overwrite 'always' or 'if-changed': a non-empty directory where the snapshot has a
   * non-directory is deleted, with everything in it (else it is kept, and that is an error).
   */
  overwriteDirs?: boolean;
  dryRun?: boolean;
  /** Re-read every restored file and check its chunks against their ids. */
  verify?: boolean;
  /** Bytes of file content in the snapshot (its summary), when known: a small restore starts no worker threads. */
  expectedBytes?: number | undefined;
  onProgress?: (progress: RestoreProgress) => void;
  onError?: (error: { path: string; message: string }) => void;
  signal?: AbortSignal;
}

export interface RestoreProgress {
  files: number;
  dirs: number;
  bytes: number;
  current: string;
}

export interface RestoreResult {
  files: number;
  dirs: number;
  links: number;
  special: number;
  bytes: number;
  skipped: number;
  verified: number;
  errors: { path: string; message: string }[];
}

/** A restore step that finishes later; `all` resolves (never rejects) to whether it succeeded. */
export interface Pending {
  all: Promise<boolean>;
}

export class RestoreState {
  readonly result: RestoreResult = { files: 0, dirs: 0, links: 0, special: 0, bytes: 0, skipped: 0, verified: 0, errors: [] };
  /** Interrupted or failed: nothing new starts, unfinished files are removed. */
  stopping = false;
  interrupted = false;
  private lastProgress = 0;
  /** Entries, reads and file completions under way. */
  private readonly tasks = new Set<Promise<unknown>>();
  private waiters: (() => void)[] = [];

  constructor(readonly options: RestoreOptions) {}

  get aborted(): boolean {
    return this.options.signal?.aborted === true;
  }

  /** Whether any tracked work is under way (something to wait for). */
  get busy(): boolean {
    return this.tasks.size > 0;
  }

  track(task: Promise<unknown>): void {
    this.tasks.add(task);
    const done = (): void => {
      this.tasks.delete(task);
    };
    task.then(done, done);
  }

  /** Resolves at the next wake(): some work finished, or the restore is stopping. */
  nextWake(): Promise<void> {
    return new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const resolve of waiters) resolve();
  }

  /** Waits for every tracked task, and those they start. */
  async settle(): Promise<void> {
    while (this.tasks.size > 0) await Promise.allSettled([...this.tasks]);
  }

  /** A file or another non-directory entry is restored. */
  count(node: TreeNode): void {
    if (node.type === 'file') {
      this.result.files++;
      this.result.bytes += node.size;
    } else this.result.special++;
    this.report(false);
  }

  reportError(path: Buffer, error: unknown): void {
    const entry = { path: path.toString(), message: (error as Error).message };
    this.result.errors.push(entry);
    this.options.onError?.(entry);
  }

  report(force: boolean): void {
    const now = Date.now();
    if (!this.options.onProgress || (!force && now - this.lastProgress < 250)) return;
    this.lastProgress = now;
    this.options.onProgress({ files: this.result.files, dirs: this.result.dirs, bytes: this.result.bytes, current: '' });
  }
}
