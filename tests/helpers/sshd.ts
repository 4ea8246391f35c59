/**
 * A real OpenSSH sshd on 127.0.0.1 for SFTP tests (Debian's openssh-server), one per test file:
 * its own ed25519 host key and user key (made with ssh-keygen in a temp folder), authorized_keys,
 * pid file and a known_hosts file that trusts it. `kill()` SIGKILLs the listener and every process
 * it forked (the per-connection children start their own sessions, so a process group would miss
 * them); `start()` brings it back on the same port with the same host key, `newHostKey()` with
 * another one.
 *
 * Self-contained (node built-ins only) so that bench/backends.mjs can load it transpiled.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { unusedPort } from './ports.js';

export interface Sshd {
  readonly port: number;
  /** Temp folder with keys, config and logs; repositories for tests may go under `dir`/repos. */
  readonly dir: string;
  /** Private key authorized for root. */
  readonly userKey: string;
  /** A known_hosts file holding the current host key as `[127.0.0.1]:PORT ssh-ed25519 …`. */
  readonly knownHosts: string;
  /** The current host key line for known_hosts. */
  knownHostsLine(): string;
  /** The current host key's raw public key blob. */
  hostKeyBlob(): Buffer;
  /** `sftp://root@127.0.0.1:PORT/` + an absolute path. */
  url(path: string): string;
  /** SIGKILLs sshd and all its children. */
  kill(): void;
  /** SIGSTOPs (true) or SIGCONTs (false) sshd and all its children: a server that stops answering. */
  freeze(frozen: boolean): void;
  /** Starts sshd again (after kill) on the same port. */
  start(): Promise<void>;
  /** Replaces the host key (sshd restarted with it). */
  newHostKey(): Promise<void>;
  /** Stops sshd and removes the temp folder. */
  stop(): Promise<void>;
  /** sshd's own log (stderr), for failure messages. */
  log(): string;
}

function keygen(file: string): void {
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'bh-test', '-f', file]);
}

/** Every live process descended from `pid` (from /proc). */
function descendants(pid: number): number[] {
  const parentOf = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      // The command name may hold spaces and parentheses: fields start after the last ')'.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      parentOf.set(Number(name), Number(fields[1]));
    } catch {
      // Gone meanwhile.
    }
  }
  const out: number[] = [];
  const visit = (p: number): void => {
    for (const [child, parent] of parentOf) {
      if (parent === p) {
        out.push(child);
        visit(child);
      }
    }
  };
  visit(pid);
  return out;
}

export interface SshdOptions {
  /** Allow password logins (`PasswordAuthentication yes`); the tests make a throwaway user for it. */
  passwordLogin?: boolean;
}

export async function startSshd(options: SshdOptions = {}): Promise<Sshd> {
  const dir = await mkdtemp(join(tmpdir(), 'bh-sshd-'));
  mkdirSync('/run/sshd', { recursive: true });
  const port = await unusedPort();
  const userKey = join(dir, 'user_key');
  keygen(userKey);
  writeFileSync(join(dir, 'authorized_keys'), readFileSync(`${userKey}.pub`));
  let hostKeyGeneration = 0;
  const hostKeyFile = (): string => join(dir, `host_key_${hostKeyGeneration}`);
  keygen(hostKeyFile());
  const knownHosts = join(dir, 'known_hosts');
  const config = join(dir, 'sshd_config');
  const writeConfig = (): void =>
    writeFileSync(
      config,
      [
        `Port ${port}`,
        'ListenAddress 127.0.0.1',
        `HostKey ${hostKeyFile()}`,
        `PidFile ${join(dir, 'sshd.pid')}`,
        `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
        'PermitRootLogin prohibit-password',
        `PasswordAuthentication ${options.passwordLogin ? 'yes' : 'no'}`,
        'KbdInteractiveAuthentication no',
        'UsePAM no',
        'StrictModes no',
        'MaxStartups 64',
        'Subsystem sftp internal-sftp',
        '',
      ].join('\n'),
    );
  const knownHostsLine = (): string => {
    const [type, base64] = readFileSync(`${hostKeyFile()}.pub`, 'utf8').trim().split(/\s+/);
    return `[127.0.0.1]:${port} ${type} ${base64}`;
  };

  let child: ChildProcess | undefined;
  let log = '';
  const start = async (): Promise<void> => {
    writeConfig();
    const proc = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
    child = proc;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`sshd did not start:\n${log}`)), 10_000);
      proc.stderr!.on('data', (d: Buffer) => {
        log += d.toString();
        if (log.includes(`Server listening on 127.0.0.1 port ${port}`)) {
          clearTimeout(timer);
          resolve();
        }
      });
      proc.on('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`sshd exited (${code}):\n${log}`));
      });
    });
    proc.removeAllListeners('exit');
  };
  const signalAll = (signal: NodeJS.Signals): void => {
    if (!child?.pid) return;
    for (const pid of [child.pid, ...descendants(child.pid)]) {
      try {
        process.kill(pid, signal);
      } catch {
        // Already gone.
      }
    }
  };
  const kill = (): void => {
    signalAll('SIGKILL');
    child = undefined;
  };
  const waitGone = async (): Promise<void> => {
    // The port is free again once the listener is gone; connecting shows it.
    for (let i = 0; i < 200; i++) {
      const busy = await new Promise<boolean>((resolve) => {
        const srv = createServer();
        srv.once('error', () => resolve(true));
        srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(false)));
      });
      if (!busy) return;
      await new Promise((r) => setTimeout(r, 10));
    }
  };

  await start();
  writeFileSync(knownHosts, knownHostsLine() + '\n');

  return {
    port,
    dir,
    userKey,
    knownHosts,
    knownHostsLine,
    hostKeyBlob: () => Buffer.from(knownHostsLine().split(' ')[2]!, 'base64'),
    url: (path: string) => `sftp://root@127.0.0.1:${port}/${path}`,
    kill,
    freeze: (frozen: boolean) => signalAll(frozen ? 'SIGSTOP' : 'SIGCONT'),
    start: async () => {
      await waitGone();
      await start();
    },
    newHostKey: async () => {
      kill();
      hostKeyGeneration++;
      keygen(hostKeyFile());
      await waitGone();
      await start();
    },
    stop: async () => {
      kill();
      await rm(dir, { recursive: true, force: true });
    },
    log: () => log,
  };
}
