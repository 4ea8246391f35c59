/**
 * Restore: recreates a snapshot's tree under a target directory (README "What restore
 * guarantees"). This module runs it; the work is split by what it touches:
 *
 * - walk.ts: the trees, in order, on the calling thread: directories made, entries created,
 *   hardlinks, include/exclude, directory metadata once a directory is finished;
 * - fs-ops.ts: every file-system call, and the rules for what is already in the target (an
 *   existing directory is filled; an existing non-directory is replaced, or kept and skipped,
 *   as --overwrite says; an entry of the other kind is replaced, except that --overwrite never
 *   keeps it and a non-empty directory stays unless --overwrite-dirs, an error either way);
 * - content.ts: regular files' content, batched into ranged reads of packs, verified and
 *   written by worker threads (content-writer.ts) on the repository layer's verified
 *   plaintext (src/repo/blob-reader.ts); all-zero chunks are left as holes, and every file is
 *   finished (truncated, --verify, metadata, closed) once all its chunks are written;
 * - state.ts: what they share (options, result, stopping, the work under way).
 *
 * Every blob re-hashes to its id before its bytes are written; a damaged blob fails its file
 * loudly, and the partial file is removed. Ctrl-C drops what is queued, gives up the reads under
 * way and stops the workers before their next blob, removes every file not finished, and ends
 * in AbortedError.
 */
import { mkdirSync } from 'node:fs';
import type { IndexedRepository } from '../../repo/repository.js';
import { AbortedError } from '../archiver.js';
import { ContentPipeline } from './content.js';
import { type RestoreOptions, type RestoreResult, RestoreState } from './state.js';
import { RestoreWalk } from './walk.js';

export type { OverwritePolicy, RestoreOptions, RestoreProgress, RestoreResult } from './state.js';

export class Restorer {
  private readonly state: RestoreState;

  constructor(private readonly repo: IndexedRepository, options: RestoreOptions) {
    this.state = new RestoreState(options);
  }

  async run(rootTree: Buffer): Promise<RestoreResult> {
    const { state } = this;
    const { options } = state;
    const target = Buffer.from(options.target);
    if (!options.dryRun) mkdirSync(target, { recursive: true });
    const content = new ContentPipeline(state, this.repo);
    if (!options.dryRun) content.start();
    // Ctrl-C: nothing new starts, nothing more is written (reads under way are given up, the
    // workers stop before their next blob), and every file not finished is removed.
    const onAbort = (): void => {
      state.stopping = true;
      state.interrupted = true;
      content.dispatch();
      state.wake();
    };
    options.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const root = await new RestoreWalk(state, content).restoreDir(rootTree, target, '', options.include === undefined);
      content.walkDone();
      await this.helpUntil(content, root.all);
      await state.settle();
    } catch (error) {
      // Stop: queued blobs are not read, reads under way settle, unfinished files are removed.
      state.stopping = true;
      if (error instanceof AbortedError) state.interrupted = true;
      content.dispatch();
      await state.settle();
      throw error;
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
      await content.close();
    }
    if (state.interrupted) throw new AbortedError();
    state.report(true);
    return state.result;
  }

  /** Waits for `done`, meanwhile doing queued work of the workers on this thread. */
  private async helpUntil(content: ContentPipeline, done: Promise<unknown>): Promise<void> {
    let finished = false;
    void done.then(() => (finished = true));
    while (!finished) {
      if (content.helpOnce()) await new Promise<void>((resolve) => setImmediate(resolve));
      else await Promise.race([done, this.state.nextWake()]);
    }
  }
}
