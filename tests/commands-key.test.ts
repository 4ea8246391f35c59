/**
 * `bh key …` and `bh unlock` through the real CLI, on one repository whose keys change as the
 * tests go (they run in order).
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunResult, type TestRepo, bh, initRepo, makeTempDir, removeDir, startBh } from './helpers/cli.js';

let dir: string;
let repo: TestRepo;
let keyFile: string;

interface KeyInfo {
  id: string;
  current: boolean;
  kdf: string;
}

/** Runs bh on the repository with exactly this secret (a password, or a key file path). */
function as(secret: { password: string } | { keyFile: string }, args: string[], env: Record<string, string> = {}): Promise<RunResult> {
  const secretEnv = 'password' in secret ? { BH_PASSWORD: secret.password } : { BH_PASSWORD: undefined };
  const extra = 'keyFile' in secret ? ['--key-file', secret.keyFile] : [];
  return bh([...args, ...extra], { env: { BH_REPO: repo.path, ...secretEnv, ...env } });
}

async function listKeys(secret: { password: string } | { keyFile: string }): Promise<KeyInfo[]> {
  const r = await as(secret, ['key', 'list', '--json']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as KeyInfo[];
}

beforeAll(async () => {
  dir = await makeTempDir('bh-keys-');
  repo = await initRepo(dir, 'pw-one');
  const data = join(dir, 'data');
  await mkdir(data);
  await writeFile(join(data, 'f.txt'), 'some data\n');
  const r = await as({ password: 'pw-one' }, ['backup', data]);
  expect(r.code, r.stderr).toBe(0);
  keyFile = join(dir, 'raw.key');
  await writeFile(keyFile, randomBytes(32));
});

afterAll(async () => {
  await removeDir(dir);
});

describe('bh key', () => {
  it('adds a password that opens the repository; list shows both, the one in use starred', async () => {
    const add = await as({ password: 'pw-one' }, ['key', 'add'], { BH_NEW_PASSWORD: 'pw-two' });
    expect(add.code, add.stderr).toBe(0);
    expect(add.stdout).toMatch(/saved new key [0-9a-f]{8}/);
    const snaps = await as({ password: 'pw-two' }, ['snapshots', '--json']);
    expect(snaps.code, snaps.stderr).toBe(0);
    expect(JSON.parse(snaps.stdout)).toHaveLength(1);

    const [byOne, byTwo] = await Promise.all([listKeys({ password: 'pw-one' }), listKeys({ password: 'pw-two' })]);
    expect(byOne).toHaveLength(2);
    expect(byOne.filter((k) => k.current)).toHaveLength(1);
    expect(byOne.every((k) => k.kdf === 'scrypt')).toBe(true);
    expect(byTwo.find((k) => k.current)!.id).not.toBe(byOne.find((k) => k.current)!.id);

    const human = await as({ password: 'pw-one' }, ['key', 'list']);
    const current = byOne.find((k) => k.current)!.id.slice(0, 8);
    expect(human.stdout.split('\n').find((l) => l.includes(current))).toMatch(/^\*\s+[0-9a-f]{8}/);
  });

  it('removes another key; its password then no longer opens the repository', async () => {
    const other = (await listKeys({ password: 'pw-two' })).find((k) => k.current)!;
    const r = await as({ password: 'pw-one' }, ['key', 'remove', other.id.slice(0, 8)]);
    expect(r.code, r.stderr).toBe(0);
    const [denied, keys] = await Promise.all([as({ password: 'pw-two' }, ['snapshots']), listKeys({ password: 'pw-one' })]);
    expect(denied.code).toBe(12);
    expect(keys).toHaveLength(1);
  });

  it('adds a 32-byte key file as a key, and refuses a key file of another size', async () => {
    const r = await as({ password: 'pw-one' }, ['key', 'add', '--new-key-file', keyFile]);
    expect(r.code, r.stderr).toBe(0);
    const snaps = await as({ keyFile }, ['snapshots', '--json']);
    expect(snaps.code, snaps.stderr).toBe(0);
    const keys = await listKeys({ keyFile });
    expect(keys.find((k) => k.current)!.kdf).toBe('raw');

    const short = join(dir, 'short.key');
    await writeFile(short, randomBytes(31));
    const bad = await as({ password: 'pw-one' }, ['key', 'add', '--new-key-file', short]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('exactly 32 bytes');
    expect(await listKeys({ password: 'pw-one' })).toHaveLength(2);
  });

  it('passwd replaces the key in use: the old password exits 12, the new one works', async () => {
    const file = join(dir, 'new-pass');
    await writeFile(file, 'pw-three\n');
    const r = await as({ password: 'pw-one' }, ['key', 'passwd', '--new-password-file', file]);
    expect(r.code, r.stderr).toBe(0);
    const [old, fresh] = await Promise.all([as({ password: 'pw-one' }, ['snapshots']), as({ password: 'pw-three' }, ['snapshots', '--json'])]);
    expect(old.code).toBe(12);
    expect(fresh.code, fresh.stderr).toBe(0);
    // The key file's key was not touched.
    const keys = await listKeys({ password: 'pw-three' });
    expect(keys.map((k) => k.kdf).sort()).toEqual(['raw', 'scrypt']);
  });

  it('refuses to remove the key in use, and the only key', async () => {
    const keys = await listKeys({ password: 'pw-three' });
    const mine = keys.find((k) => k.current)!;
    const inUse = await as({ password: 'pw-three' }, ['key', 'remove', mine.id]);
    expect(inUse.code).toBe(1);
    expect(inUse.stderr).toContain('key in use');

    const raw = keys.find((k) => !k.current)!;
    expect((await as({ password: 'pw-three' }, ['key', 'remove', raw.id])).code).toBe(0);
    const only = await as({ password: 'pw-three' }, ['key', 'remove', mine.id.slice(0, 6)]);
    expect(only.code).toBe(1);
    expect(only.stderr).toContain('only key');
    expect(await listKeys({ password: 'pw-three' })).toHaveLength(1);
  });

  it('needs a new password from a file or the environment, never argv', async () => {
    const r = await as({ password: 'pw-three' }, ['key', 'add']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('BH_NEW_PASSWORD');
  });
});

describe('bh unlock', () => {
  const env = (): Record<string, string> => ({ BH_REPO: repo.path, BH_PASSWORD: 'pw-three' });
  const lockFiles = async (): Promise<string[]> => (await readdir(join(repo.path, 'locks'))).filter((name) => /^[0-9a-f]{64}$/.test(name));

  /** Starts `bh backup --stdin` with an input that never ends, and waits until its lock is written. */
  async function startHungBackup(): Promise<ReturnType<typeof startBh>> {
    const child = startBh(['backup', '--stdin', '--stdin-filename', 'endless'], { env: env() });
    child.stdin!.write('still coming…\n');
    // Wait for the lock under its final name (the backend writes a .tmp-… file first, then renames it).
    for (let i = 0; i < 600 && (await lockFiles()).length === 0; i++) await new Promise((r) => setTimeout(r, 50));
    expect(await lockFiles()).toHaveLength(1);
    return child;
  }

  it('removes the lock of a killed backup', async () => {
    const proc = await startHungBackup();
    const exited = new Promise((resolve) => proc.on('close', resolve));
    proc.kill('SIGKILL');
    await exited;
    expect(await lockFiles()).toHaveLength(1);

    const r = await bh(['unlock'], { env: env() });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('1 lock removed');
    expect(await lockFiles()).toEqual([]);
  });

  it('keeps the lock of a running process unless --remove-all', async () => {
    const proc = await startHungBackup();
    const finished = new Promise<number | null>((resolve) => proc.on('close', (code) => resolve(code)));
    try {
      const keep = await bh(['unlock', '--json'], { env: env() });
      expect(keep.code, keep.stderr).toBe(0);
      expect(JSON.parse(keep.stdout)).toEqual({ message_type: 'summary', removed: 0, kept: 1 });
      expect(await lockFiles()).toHaveLength(1);

      const all = await bh(['unlock', '--remove-all', '--json'], { env: env() });
      expect(JSON.parse(all.stdout)).toMatchObject({ removed: 1 });
      expect(await lockFiles()).toEqual([]);
    } finally {
      proc.stdin!.end('the end\n');
    }
    // The backup still completes; releasing its (already removed) lock is not an error.
    expect(await finished).toBe(0);
    expect(existsSync(join(repo.path, 'locks'))).toBe(true);
    const snaps = await bh(['snapshots', '--json'], { env: env() });
    expect((JSON.parse(snaps.stdout) as unknown[]).length).toBe(2);
  });
});
