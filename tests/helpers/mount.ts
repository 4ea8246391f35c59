/**
 * `bh mount` for tests: started as a real process serving the kernel's FUSE, read from this
 * process (never the serving one, where a synchronous read of the mount would deadlock).
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { type Running, type TestRepo, describeRun, startRunning } from './cli.js';

export interface TestMount {
  running: Running;
  mountpoint: string;
}

/** Whether `mountpoint` is in /proc/mounts. */
export async function isMounted(mountpoint: string): Promise<boolean> {
  return (await readFile('/proc/mounts', 'utf8')).split('\n').some((line) => line.split(' ')[1] === mountpoint);
}

/** Starts `bh mount` on `repo` (extra flags after the mountpoint) and waits until it serves. */
export async function startMount(repo: TestRepo, mountpoint: string, extra: string[] = []): Promise<TestMount> {
  const running = startRunning(['mount', mountpoint, ...extra], { env: repo.env });
  let ended = false;
  void running.done.then(() => (ended = true));
  const deadline = Date.now() + 30_000;
  while (!running.stdout().includes('serving ')) {
    if (ended) throw new Error(describeRun('bh mount', await running.done));
    if (Date.now() > deadline) throw new Error(`bh mount did not start serving: ${running.stderr()}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return { running, mountpoint };
}

/** Ends a mount whatever state it is in (for afterAll): SIGKILL, then a lazy unmount. */
export async function killMount(mount: TestMount | undefined): Promise<void> {
  if (!mount) return;
  mount.running.child.kill('SIGKILL');
  await mount.running.done;
  if (await isMounted(mount.mountpoint)) await promisify(execFile)('fusermount3', ['-u', '-z', mount.mountpoint]).catch(() => undefined);
}
