/**
 * `bh copy` and `bh init --copy-chunker-params` through the real CLI, from a local source into
 * each destination in DESTINATIONS: a local directory, an SFTP server (OpenSSH sshd) and an S3
 * server (s3rver behind the test guard), each started on loopback when first needed. A kind makes
 * an empty destination location, the env that reaches it, and counts the bytes its server stores
 * under data/ (read from the server's own disk).
 */
import { randomBytes } from 'node:crypto';
import { cp, mkdir, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunResult, type TestRepo, bh, initRepo, makeTempDir, removeDir, startBh } from './helpers/cli.js';
import { type S3TestServer, startS3Server } from './helpers/s3-server.js';
import { type Sshd, startSshd } from './helpers/sshd.js';
import { compareTrees } from './helpers/tree-compare.js';

export interface CopyDestination {
  /** Repository location for -r. */
  url: string;
  /** Extra environment that reaches it (credentials, endpoint); no password. */
  env: Record<string, string>;
  /** Bytes stored under the repository's data/ on the server, read from the server's side. */
  dataBytes(): Promise<number>;
}

export interface DestinationKind {
  name: string;
  /** A location where no repository exists yet; `label` keeps several apart. */
  make(dir: string, label: string): Promise<CopyDestination>;
}

async function treeBytes(path: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(path, { withFileTypes: true }).catch(() => [])) {
    const full = join(path, entry.name);
    total += entry.isDirectory() ? await treeBytes(full) : (await stat(full)).size;
  }
  return total;
}

const LOCAL: DestinationKind = {
  name: 'local',
  make: async (dir, label) => {
    const url = join(dir, label);
    return { url, env: {}, dataBytes: () => treeBytes(join(url, 'data')) };
  },
};

/** Servers started by the kinds below, stopped after the file. */
const servers: { stop(): Promise<void> | void }[] = [];

let sshd: Promise<Sshd> | undefined;
const SFTP: DestinationKind = {
  name: 'SFTP',
  make: async (dir, label) => {
    sshd ??= startSshd().then((server) => (servers.push(server), server));
    const server = await sshd;
    const path = join(dir, `${label}-sftp`);
    return { url: server.url(path), env: { BH_SSH_KEY: server.userKey, BH_SSH_KNOWN_HOSTS: server.knownHosts }, dataBytes: () => treeBytes(join(path, 'data')) };
  },
};

let s3: Promise<S3TestServer> | undefined;
const S3: DestinationKind = {
  name: 'S3',
  make: async (_dir, label) => {
    s3 ??= startS3Server().then((server) => (servers.push(server), server));
    const server = await s3;
    const objects = join(server.dataDir, server.bucket, label, 'data');
    const objectBytes = async (path: string): Promise<number> => {
      let total = 0;
      for (const entry of await readdir(path, { withFileTypes: true }).catch(() => [])) {
        const full = join(path, entry.name);
        if (entry.isDirectory()) total += await objectBytes(full);
        else if (entry.name.endsWith('._S3rver_object')) total += (await stat(full)).size;
      }
      return total;
    };
    return { url: `s3:${server.bucket}/${label}`, env: server.env, dataBytes: () => objectBytes(objects) };
  },
};

const DESTINATIONS: DestinationKind[] = [LOCAL, SFTP, S3];

const SOURCE_PASSWORD = 'source secret';
const DEST_PASSWORD = 'destination secret';

let dir: string;
let source: TestRepo;
let data: string;

beforeAll(async () => {
  dir = await makeTempDir('bh-copy-');
});

/** A fresh source repository with one snapshot (tag "first") of a small tree, for one destination kind. */
async function makeSource(label: string): Promise<void> {
  const home = join(dir, `source-${label}`);
  await mkdir(home);
  source = await initRepo(home, SOURCE_PASSWORD);
  data = join(home, 'data');
  await mkdir(join(data, 'sub', 'deeper'), { recursive: true });
  await writeFile(join(data, 'big.bin'), randomBytes(1536 * 1024));
  await writeFile(join(data, 'sub', 'medium.bin'), randomBytes(700 * 1024));
  await writeFile(join(data, 'sub', 'deeper', 'note.txt'), 'hello from the source\n');
  await writeFile(join(data, 'empty'), '');
  await symlink('sub/deeper/note.txt', join(data, 'link'));
  const r = await source.run(['backup', '--tag', 'first', data]);
  expect(r.code, r.stderr).toBe(0);
}

afterAll(async () => {
  for (const server of servers) await server.stop();
  await removeDir(dir);
});

interface SnapshotJson {
  id: string;
  tree: string;
  time: string;
  original?: string;
}

function json<T>(r: RunResult): T {
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as T;
}

/** The source's packs that hold data blobs only (trees stay: a copy reads trees to map ids). */
async function sourceDataPacks(): Promise<string[]> {
  const out: string[] = [];
  for (const name of await readdir(join(source.path, 'index'))) {
    const file = json<{ packs: { id: string; blobs: { type: string }[] }[] }>(await source.run(['cat', 'index', name]));
    for (const pack of file.packs) if (pack.blobs.every((blob) => blob.type === 'data')) out.push(pack.id);
  }
  return out;
}

/** Every (type, blob id) the repository's index files list. */
async function indexedBlobs(run: (args: string[]) => Promise<RunResult>, path: string): Promise<Set<string>> {
  const out = new Set<string>();
  for (const name of await readdir(join(path, 'index'))) {
    const file = json<{ packs: { blobs: { type: string; id: string }[] }[] }>(await run(['cat', 'index', name]));
    for (const pack of file.packs) for (const blob of pack.blobs) out.add(`${blob.type}:${blob.id}`);
  }
  return out;
}

describe.each(DESTINATIONS)('bh copy into a $name repository', (kind) => {
  let dest: CopyDestination;
  const asDest = (args: string[], env: Record<string, string> = {}): Promise<RunResult> => bh(args, { env: { ...dest.env, BH_REPO: dest.url, BH_PASSWORD: DEST_PASSWORD, ...env } });
  const copy = (args: string[] = [], env: Record<string, string> = {}): Promise<RunResult> => asDest(['copy', '--from-repo', source.path, ...args], { BH_FROM_PASSWORD: SOURCE_PASSWORD, ...env });

  beforeAll(async () => {
    await makeSource(kind.name);
    dest = await kind.make(dir, `dest-${kind.name}`);
    const r = await asDest(['init']);
    expect(r.code, r.stderr).toBe(0);
  });

  it('copies a snapshot that restores byte for byte and checks clean, and records where it came from', async () => {
    const r = await copy();
    expect(r.code, r.stderr).toBe(0);
    const [sourceSnap] = json<SnapshotJson[]>(await source.run(['snapshots', '--json']));
    const copies = json<SnapshotJson[]>(await asDest(['snapshots', '--json']));
    expect(copies).toHaveLength(1);
    const record = json<SnapshotJson & { tags: string[]; paths: string[] }>(await asDest(['cat', 'snapshot', copies[0]!.id]));
    expect(record.original).toBe(sourceSnap!.id);
    expect(record.time).toBe(sourceSnap!.time);
    expect(record.tags).toEqual(['first']);
    expect(record.paths).toEqual([data]);
    // Blob ids are keyed per repository: the copy's trees were rewritten.
    expect(record.tree).not.toBe(sourceSnap!.tree);

    const target = join(dir, `restored-${kind.name}-1`);
    const restore = await asDest(['restore', 'latest', '--target', target]);
    expect(restore.code, restore.stderr).toBe(0);
    expect(await compareTrees(data, join(target, data), { ignoreRootMtime: true })).toEqual([]);
    const check = await asDest(['check', '--read-data']);
    expect(check.code, check.stdout + check.stderr).toBe(0);
  });

  it('a second copy transfers nothing and skips the snapshot', async () => {
    const before = await dest.dataBytes();
    const r = await copy();
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/already in the destination as [0-9a-f]{8}: skipped/);
    expect(await dest.dataBytes()).toBe(before);
    expect(json<SnapshotJson[]>(await asDest(['snapshots', '--json']))).toHaveLength(1);
  });

  it('after a new source backup, copies only the new blobs', async () => {
    const newFile = join(data, 'sub', `new-${kind.name}.bin`);
    const added = randomBytes(600 * 1024);
    await writeFile(newFile, added);
    const packsBefore = await sourceDataPacks();
    const b = await source.run(['backup', data]);
    expect(b.code, b.stderr).toBe(0);
    // Copy from a clone of the source that lacks the data packs of the first backup: the copy
    // must learn the ids of the unchanged blobs from the first copy instead of reading them again.
    const clone = join(dir, `source-clone-${kind.name}`);
    await cp(source.path, clone, { recursive: true });
    expect(packsBefore.length).toBeGreaterThan(0);
    for (const pack of packsBefore) await rm(join(clone, 'data', pack.slice(0, 2), pack));
    const before = await dest.dataBytes();
    const r = await asDest(['copy', '--from-repo', clone], { BH_FROM_PASSWORD: SOURCE_PASSWORD });
    expect(r.code, r.stderr).toBe(0);
    const grown = (await dest.dataBytes()) - before;
    // The new file (random, so stored at its size plus envelopes), two rewritten trees and pack
    // headers; nowhere near the 2.2 MiB the rest of the snapshot holds.
    expect(grown).toBeGreaterThanOrEqual(added.length);
    expect(grown).toBeLessThan(added.length + 64 * 1024);
    expect(json<SnapshotJson[]>(await asDest(['snapshots', '--json']))).toHaveLength(2);
    const target = join(dir, `restored-${kind.name}-2`);
    const restore = await asDest(['restore', 'latest', '--target', target]);
    expect(restore.code, restore.stderr).toBe(0);
    expect(await compareTrees(data, join(target, data), { ignoreRootMtime: true })).toEqual([]);
  });

  // Filters and Ctrl-C are handled above the backend: the local destination covers them.
  if (kind === LOCAL) {
    it('copies only the snapshots the filters or ids pick', async () => {
      const other = await kind.make(dir, `filtered-${kind.name}`);
      const env = { ...other.env, BH_REPO: other.url, BH_PASSWORD: DEST_PASSWORD };
      expect((await bh(['init'], { env })).code).toBe(0);
      const r = await bh(['copy', '--from-repo', source.path, '--tag', 'first'], { env: { ...env, BH_FROM_PASSWORD: SOURCE_PASSWORD } });
      expect(r.code, r.stderr).toBe(0);
      const copied = json<SnapshotJson[]>(await bh(['snapshots', '--json'], { env }));
      const first = json<SnapshotJson[]>(await source.run(['snapshots', '--json', '--tag', 'first']));
      expect(copied.map((s) => s.time)).toEqual(first.map((s) => s.time));
    });
  }

  it('with --copy-chunker-params, blob ids and trees equal the source’s, and a direct backup of the same data adds almost nothing', async () => {
    const shared = await kind.make(dir, `shared-${kind.name}`);
    const env = { ...shared.env, BH_REPO: shared.url, BH_PASSWORD: DEST_PASSWORD, BH_FROM_PASSWORD: SOURCE_PASSWORD };
    const init = await bh(['init', '--from-repo', source.path, '--copy-chunker-params'], { env });
    expect(init.code, init.stderr).toBe(0);
    // A key added later seals the shared keys too: everything below runs under it.
    const add = await bh(['key', 'add'], { env: { ...env, BH_NEW_PASSWORD: 'second destination secret' } });
    expect(add.code, add.stderr).toBe(0);
    env.BH_PASSWORD = 'second destination secret';
    const r = await bh(['copy', '--from-repo', source.path], { env });
    expect(r.code, r.stderr).toBe(0);

    const sourceSnaps = json<SnapshotJson[]>(await source.run(['snapshots', '--json']));
    const copies = json<SnapshotJson[]>(await bh(['snapshots', '--json'], { env }));
    expect(copies.map((s) => s.tree).sort()).toEqual(sourceSnaps.map((s) => s.tree).sort());
    if (shared.url.startsWith('/')) {
      const run = (args: string[]): Promise<RunResult> => bh(args, { env });
      expect(await indexedBlobs(run, shared.url)).toEqual(await indexedBlobs(source.run, source.path));
    }
    const before = await shared.dataBytes();
    const b = await bh(['backup', '--mode', 'full', data], { env });
    expect(b.code, b.stderr).toBe(0);
    // A full backup re-reads and re-chunks every file: under the shared seed and id key each
    // chunk and tree is one the copy brought, so at most a small tree pack is new.
    expect((await shared.dataBytes()) - before).toBeLessThan(8 * 1024);
    const check = await bh(['check', '--read-data'], { env });
    expect(check.code, check.stdout + check.stderr).toBe(0);
  });

  if (kind === LOCAL) {
    it('Ctrl-C during a copy exits 130 with no snapshot written and a clean repository; the rerun completes', async () => {
      const other = await kind.make(dir, `interrupted-${kind.name}`);
      const env = { ...other.env, BH_REPO: other.url, BH_PASSWORD: DEST_PASSWORD, BH_FROM_PASSWORD: SOURCE_PASSWORD };
      expect((await bh(['init'], { env })).code).toBe(0);
      // Reads from the source paced to 256 KiB/s: the ~2.8 MiB take seconds, so the signal lands mid-copy.
      const child = startBh(['copy', '--from-repo', source.path, '--limit-download', '256'], { env });
      let stdout = '';
      let stderr = '';
      child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      const started = new Promise<void>((resolve) => child.stdout!.on('data', (d: Buffer) => ((stdout += d.toString()), stdout.includes('copying snapshot') && resolve())));
      const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
      child.stdin!.end();
      await started;
      await new Promise((resolve) => setTimeout(resolve, 1000));
      child.kill('SIGINT');
      expect(await exited, stdout + stderr).toBe(130);
      expect(json<SnapshotJson[]>(await bh(['snapshots', '--json'], { env }))).toEqual([]);
      const check = await bh(['check', '--read-data'], { env });
      expect(check.code, check.stdout + check.stderr).toBe(0);

      const rerun = await bh(['copy', '--from-repo', source.path], { env });
      expect(rerun.code, rerun.stderr).toBe(0);
      const target = join(dir, `restored-${kind.name}-interrupted`);
      const restore = await bh(['restore', 'latest', '--target', target], { env });
      expect(restore.code, restore.stderr).toBe(0);
      expect(await compareTrees(data, join(target, data), { ignoreRootMtime: true })).toEqual([]);
    });
  }

  it('refuses a wrong source password (exit 12), a missing source (exit 10) and a missing source password (exit 1)', async () => {
    const wrong = await copy([], { BH_FROM_PASSWORD: 'not it' });
    expect(wrong.code).toBe(12);
    expect(wrong.stderr).toContain(source.path);
    const missing = await asDest(['copy', '--from-repo', join(dir, 'nowhere')], { BH_FROM_PASSWORD: SOURCE_PASSWORD });
    expect(missing.code).toBe(10);
    expect(missing.stderr).toMatch(/source repository: there is no bh repository at .*nowhere/);
    const noPassword = await asDest(['copy', '--from-repo', source.path]);
    expect(noPassword.code).toBe(1);
    expect(noPassword.stderr).toContain('BH_FROM_PASSWORD');
    // Nothing was written by the refused runs.
    expect(json<SnapshotJson[]>(await asDest(['snapshots', '--json']))).toHaveLength(2);
  });
});

describe('bh init --copy-chunker-params', () => {
  it('needs --from-repo, and --from-repo needs it', async () => {
    const env = { BH_REPO: join(dir, 'init-misuse'), BH_PASSWORD: DEST_PASSWORD, BH_FROM_PASSWORD: SOURCE_PASSWORD };
    const a = await bh(['init', '--copy-chunker-params'], { env });
    expect(a.code).toBe(1);
    expect(a.stderr).toContain('--from-repo');
    const b = await bh(['init', '--from-repo', source.path], { env });
    expect(b.code).toBe(1);
    expect(b.stderr).toContain('--copy-chunker-params');
    await expect(stat(join(dir, 'init-misuse', 'config'))).rejects.toThrow();
  });

  it('a source key file opens the source; a wrong one exits 12 and creates nothing', async () => {
    const keyFile = join(dir, 'wrong.key');
    await writeFile(keyFile, randomBytes(32));
    const env = { BH_REPO: join(dir, 'init-wrong'), BH_PASSWORD: DEST_PASSWORD };
    const r = await bh(['init', '--from-repo', source.path, '--from-key-file', keyFile, '--copy-chunker-params'], { env });
    expect(r.code).toBe(12);
    await expect(stat(join(dir, 'init-wrong', 'config'))).rejects.toThrow();
  });
});
