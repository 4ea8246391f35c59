import { once } from 'node:events';
import { isAbsolute } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Command, Option } from 'clipanion';
import { SnapshotMount } from '../browse/fuse-mount.js';
import { MountpointError, prepareMountpoint } from '../browse/mountpoint.js';
import { DEFAULT_REFRESH_MS, SnapshotView } from '../browse/view.js';
import { unmountFuse } from '../fsx/fuse.js';
import { LockLostError } from '../repo/errors.js';
import { ExitCode, RepositoryCommand, UserError, parseElapsed } from './base.js';

/** How long SIGINT/SIGTERM wait for files still open in the mount before leaving it detached. */
const UNMOUNT_WAIT_MS = 3000;

export class MountCommand extends RepositoryCommand {
  static override paths = [['mount']];
  static override usage = Command.Usage({
    description: 'browse the snapshots as a read-only file system (FUSE)',
    details: `
      Mounts the repository at MOUNTPOINT and serves it in the foreground until Ctrl-C
      (SIGINT) or SIGTERM, which unmount it and exit 0. Inside:

        ids/<id>/                  each snapshot by its short id
        snapshots/<time>/, latest  by time (local time), latest → the newest
        hosts/<host>/<time>/       per host, with latest
        tags/<tag>/<time>/         per tag, with latest

      A snapshot's directory shows the paths it backed up (snapshots/latest/home/alice/…).
      Use any tool on it: ls, grep, diff, cp -a or rsync -a to copy files out. Everything is
      read-only (writes fail with EROFS). Owners, modes, times (with nanoseconds), symlinks,
      hard links, xattrs, FIFOs and devices show as they were backed up; with --owner-root every
      entry shows as root's. New snapshots appear without remounting: the snapshot list is read
      again when the top directories are looked at, at most every --refresh-interval.

      The mountpoint is made when missing; it must be empty (or pass --allow-non-empty) and
      outside the repository and the cache. A killed bh leaves a stale mount ("Transport
      endpoint is not connected"): clear it with \`bh mount --unmount MOUNTPOINT\` (or
      \`fusermount3 -u MOUNTPOINT\`). Works as an unprivileged user (fusermount3 is setuid);
      --allow-other needs \`user_allow_other\` in /etc/fuse.conf unless you are root. Needs
      Debian's fuse3 package. Holds a shared lock, as a backup does, while mounted.
    `,
    examples: [
      ['Browse, then Ctrl-C', 'bh mount -r /srv/backup /mnt/bh'],
      ['Copy one file out of the newest snapshot', 'cp /mnt/bh/snapshots/latest/etc/nginx/nginx.conf /tmp/'],
      ['Clear a stale mount', 'bh mount --unmount /mnt/bh'],
    ],
  });

  mountpoint = Option.String({ name: 'mountpoint' });
  ownerRoot = Option.Boolean('--owner-root', false, { description: 'Show every file as owned by root (uid and gid 0)' });
  allowOther = Option.Boolean('--allow-other', false, { description: 'Let other users see the mount (non-root: needs user_allow_other in /etc/fuse.conf)' });
  allowNonEmpty = Option.Boolean('--allow-non-empty', false, { description: 'Mount over a directory that is not empty (hiding its contents while mounted)' });
  refreshInterval = Option.String('--refresh-interval', { description: `Read the snapshot list again at most this often (default ${DEFAULT_REFRESH_MS / 1000}s)` });
  unmount = Option.Boolean('--unmount', false, { description: 'Unmount MOUNTPOINT (also a stale mount a killed bh left) and exit' });

  async run(): Promise<number> {
    if (this.unmount) {
      try {
        await unmountFuse(this.mountpoint);
      } catch (error) {
        throw new UserError(`cannot unmount ${this.mountpoint}: ${(error as Error).message}`);
      }
      this.report.line(`unmounted ${this.mountpoint}`);
      return ExitCode.ok;
    }
    const refreshMs = this.refreshInterval === undefined ? DEFAULT_REFRESH_MS : parseElapsed(this.refreshInterval, '--refresh-interval');
    const repo = await this.openRepository('shared');
    const signal = this.interruptSignal();
    const forbidden = [{ path: this.cacheOptions()?.dir, what: 'the cache' }, { path: isAbsolute(repo.location) ? repo.location : undefined, what: 'the repository' }].filter((f): f is { path: string; what: string } => f.path !== undefined);
    let mountpoint: string;
    try {
      mountpoint = await prepareMountpoint(this.mountpoint, { forbidden, allowNonEmpty: this.allowNonEmpty });
    } catch (error) {
      if (error instanceof MountpointError) throw new UserError(error.message);
      throw error;
    }
    const view = new SnapshotView(repo, {
      ownerRoot: this.ownerRoot,
      refreshMs,
      onDamagedSnapshot: this.warnDamagedSnapshot,
      onWarning: (message) => this.report.warn(`warning: ${message}`),
    });
    const snapshots = await view.snapshots();
    const mount = await SnapshotMount.mount(view, mountpoint, {
      allowOther: this.allowOther,
      fsName: `bh:${repo.location}`,
      onReadError: (message) => this.report.warn(`error: ${message}`),
    });
    this.report.line(`serving ${snapshots.length} ${snapshots.length === 1 ? 'snapshot' : 'snapshots'} of ${repo.location} at ${mountpoint}; Ctrl-C unmounts`);
    this.report.jsonLine({ message_type: 'mounted', mountpoint, snapshots: snapshots.length });

    const stopped = once(signal, 'abort');
    await Promise.race([mount.closed, stopped]);
    if (signal.aborted) {
      const closed = await Promise.race([mount.unmount().then(() => true), sleep(UNMOUNT_WAIT_MS, undefined, { ref: false }).then(() => false)]).catch((error: unknown) => {
        this.report.warn(`warning: ${(error as Error).message}`);
        return false;
      });
      if (!closed) {
        this.report.warn(`warning: files in ${mountpoint} are still open; the mount is detached and goes away when they are closed`);
        // The FUSE thread would keep serving them; the process ends now and the kernel ends the connection.
        process.exit(signal.reason instanceof LockLostError ? ExitCode.lockFailed : ExitCode.ok);
      }
      if (signal.reason instanceof LockLostError) throw signal.reason;
    }
    await view.close();
    this.report.line(`unmounted ${mountpoint}`);
    return ExitCode.ok;
  }
}
