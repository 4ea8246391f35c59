import { Command, Option } from 'clipanion';
import { describeLock, isStale } from '../repo/lock.js';
import { RepositoryCommand } from './base.js';

export class UnlockCommand extends RepositoryCommand {
  static override paths = [['unlock']];
  static override usage = Command.Usage({
    description: 'remove stale locks',
    details: `
      Removes the locks left by bh processes that are gone: locks older than 30 minutes (a
      running process refreshes its lock every 5), and at once the locks of processes of this
      host that no longer run (a backup killed with SIGKILL, a crash). Locks of live processes
      stay.

      With --remove-all, every lock goes, live or not, without being read (also locks that
      cannot be read): use it only when you are sure no bh process works on the repository.
    `,
    examples: [
      ['After a crashed backup', 'bh unlock -r /srv/backup'],
      ['Nothing runs, remove everything', 'bh unlock -r /srv/backup --remove-all'],
    ],
  });

  removeAll = Option.Boolean('--remove-all', false, { description: 'Remove every lock, not only stale ones' });

  async run(): Promise<number> {
    const repo = await this.openRepository('none');
    let removed = 0;
    let kept = 0;
    if (this.removeAll) {
      for (const { name } of await repo.list('locks')) {
        await repo.removeFile('lock', name);
        removed++;
      }
    } else {
      for (const { id, lock } of await repo.listLocks()) {
        if (!isStale(lock)) {
          kept++;
          continue;
        }
        await repo.removeFile('lock', id);
        removed++;
        this.report.line(`removed stale lock of ${describeLock(id, lock)}`);
      }
    }
    this.report.jsonLine({ message_type: 'summary', removed, kept });
    this.report.line(`${removed} ${removed === 1 ? 'lock' : 'locks'} removed${kept > 0 ? `, ${kept} held by running processes kept` : ''}`);
    return 0;
  }
}
