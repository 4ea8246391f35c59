/**
 * Tests that change the machine's installed packages (packaging's `apt-get install ./bh.deb`) or
 * watch them change (system snapshots' diff around an install) take turns: vitest runs two test
 * files at once, and either would see the other's package. A directory made atomically is the
 * turn; a turn whose holder died (its pid gone) is taken over.
 */
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

const TURN = '/tmp/bh-tests-apt-turn';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export async function withAptTurn<T>(body: () => Promise<T>): Promise<T> {
  for (;;) {
    try {
      await mkdir(TURN);
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const holder = Number(await readFile(join(TURN, 'pid'), 'utf8').catch(() => ''));
      if (holder > 0 && !alive(holder)) await rm(TURN, { recursive: true, force: true });
      else await sleep(500);
    }
  }
  await writeFile(join(TURN, 'pid'), String(process.pid));
  try {
    return await body();
  } finally {
    await rm(TURN, { recursive: true, force: true });
  }
}
