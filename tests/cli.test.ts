import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { bh, ROOT } from './helpers/cli.js';

/**
 * The command paths commandsFor() registers for each argument list, and every command's paths,
 * from the built dist/cli.js in a child process (vitest's resolver picks clipanion's ESM build,
 * which Node itself cannot load).
 */
function registered(argLists: string[][]): { all: string[][]; picked: string[][] } {
  const script = `
    import { commandsFor } from './dist/cli.js';
    const paths = (commands) => commands.flatMap((c) => c.paths.map((p) => p.join(' ')));
    const all = await commandsFor([]);
    const picked = await Promise.all(JSON.parse(process.argv[1]).map(async (args) => paths(await commandsFor(args))));
    let reachable = true;
    for (const c of all) for (const p of c.paths) reachable &&= (await commandsFor(p)).includes(c);
    process.stdout.write(JSON.stringify({ all: paths(all), picked, reachable }));`;
  const out = JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script, JSON.stringify(argLists)], { cwd: ROOT, encoding: 'utf8' }));
  expect(out.reachable).toBe(true);
  return { all: out.all, picked: out.picked };
}

describe('the command line', () => {
  it('registers only the commands of the first word, or all of them when it names none, and every command is reachable', () => {
    const { all, picked } = registered([['backup', '/srv', '--host', 'a'], ['key', 'list'], [], ['--help'], ['--version'], ['bakup']]);
    expect(all.length).toBeGreaterThan(20);
    expect(picked[0]).toEqual(['backup']);
    expect([...picked[1]!].sort()).toEqual(['key add', 'key list', 'key passwd', 'key remove']);
    for (const list of picked.slice(2)) expect(list).toEqual(all);
  });

  it('prints every command in the general help, one command in its own help, and suggestions for a typo', async () => {
    const { all } = registered([]);
    const help = await bh(['--help']);
    expect(help.code).toBe(0);
    for (const path of all) expect(help.stdout).toContain(`bh ${path}`);
    const backupHelp = await bh(['backup', '--help']);
    expect(backupHelp.code).toBe(0);
    expect(backupHelp.stdout).toContain('bh backup');
    expect(backupHelp.stdout).not.toContain('bh restore');
    const typo = await bh(['bakup']);
    expect(typo.code).not.toBe(0);
    expect(typo.stdout + typo.stderr).toContain('bh backup');
  });
});
