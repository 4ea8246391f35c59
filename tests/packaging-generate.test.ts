/**
 * `bh generate` (man pages, bash/zsh/fish completion) and `bh version`, through the real CLI,
 * checked with the real tools: man-db renders every page with groff's warnings on, and bash,
 * zsh (through a pseudo-terminal, zsh/zpty) and fish complete command lines with the scripts.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, bh, describeRun, expectOk, makeTempDir, removeDir } from './helpers/cli.js';

let tmp: string;
let manDir: string;
let bashScript: string;
let zshDir: string;
let fishScript: string;
/** Every command with its options, as the parser's own `bh --help` lists them. */
interface HelpCommand {
  path: string;
  words: string[];
  options: string[];
  description: string;
}
let commands: HelpCommand[];

/** `bh --help`: per command, `  bh key add [--json] [-r,--repo #0] … <operand>` and its description below. */
function parseHelp(help: string): HelpCommand[] {
  const lines = help.split('\n');
  const parsed: HelpCommand[] = [];
  lines.forEach((line, i) => {
    const match = /^  bh ([a-z][a-z-]*(?: [a-z][a-z-]*)*)(?= |$)(.*)$/.exec(line);
    if (!match) return;
    const words = match[1]!.split(' ');
    const options = [...match[2]!.matchAll(/\[(-[^\] ]+)/g)].flatMap((m) => m[1]!.split(','));
    parsed.push({ path: `bh ${words.join(' ')}`, words, options, description: lines[i + 1]!.trim() });
  });
  return parsed;
}

beforeAll(async () => {
  tmp = await makeTempDir('bh-generate-');
  manDir = join(tmp, 'man');
  bashScript = join(tmp, 'bh.bash');
  zshDir = join(tmp, 'zsh');
  fishScript = join(tmp, 'bh.fish');
  expectOk(await bh(['generate', '--man', manDir, '--bash-completion', bashScript, '--zsh-completion', join(tmp, '_bh'), '--fish-completion', fishScript]), 'bh generate');
  execFileSync('mkdir', ['-p', zshDir]);
  execFileSync('cp', [join(tmp, '_bh'), join(zshDir, '_bh')]);
  commands = parseHelp(expectOk(await bh(['--help']), 'bh --help').stdout);
});

afterAll(async () => {
  await removeDir(tmp);
});


/** What bash completes for `line` (the word under the cursor is the last one, '' after a space). */
function bashComplete(lines: string[]): string[][] {
  const script = [
    `source ${bashScript}`,
    ...lines.map((line) => {
      const words = line.split(' ');
      return `COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; COMPREPLY=(); _bh; printf '%s\\n' "\${COMPREPLY[*]}"`;
    }),
  ].join('\n');
  const out = execFileSync('bash', ['-c', script], { encoding: 'utf8', cwd: tmp });
  return out.split('\n').slice(0, lines.length).map((l) => l.split(' ').filter((w) => w !== ''));
}

/**
 * What zsh offers for `line` followed by TAB in an interactive zsh (on a pseudo-terminal:
 * zsh's completion system runs only in the line editor), with `_bh` on its fpath.
 */
function zshComplete(line: string): string[] {
  const capture = join(tmp, 'capture.zsh');
  writeFileSync(
    capture,
    `zmodload zsh/zpty
zpty z zsh -f -i
zpty -w z "fpath=(${zshDir} \\$fpath); autoload -Uz compinit; compinit -u -D"
zpty -w z "bindkey '^I' complete-word"
zpty -w z 'comppostfuncs=( _cap_end ); _cap_end() { compstate[insert]=""; compstate[list]=""; print -r -- "<<END>>" }'
zpty -w z 'compadd () { local -a hits; builtin compadd -O hits "$@"; (( $#hits )) && print -rl -- "<<C>>"\${^hits[@]}"<<E>>"; builtin compadd "$@" }'
zpty -w z "print -r -- '<<READY>''>'"
zpty -r z out '*<<READY>>*'
zpty -w -n z "$1"$'\\t'
zpty -r z out '*<<END>>*'
for l in \${(f)out}; do [[ $l == *'<<C>>'* ]] && { l=\${l##*<<C>>}; print -r -- \${l%%<<E>>*} }; done
zpty -d z
`,
  );
  const out = execFileSync('zsh', ['-f', capture, line], { encoding: 'utf8', timeout: 30_000 });
  return [...new Set(out.split('\n').filter((l) => l !== ''))].sort();
}

function fishComplete(line: string): string[] {
  const out = execFileSync('fish', ['--no-config', '-c', `source ${fishScript}; complete -C '${line}'`], { encoding: 'utf8', cwd: tmp });
  return out.split('\n').filter((l) => l !== '').map((l) => l.split('\t')[0]!).sort();
}

describe('bh generate --man', () => {
  it('writes bh(1) and one page per registered command, each with all its options', () => {
    const pages = readdirSync(manDir).sort();
    expect(pages).toEqual(['bh.1', ...commands.map((c) => `bh-${c.words.join('-')}.1`)].sort());
    expect(commands.map((c) => c.path)).toEqual(expect.arrayContaining(['bh backup', 'bh key add', 'bh generate', 'bh version']));
    for (const command of commands) {
      const page = readFileSync(join(manDir, `bh-${command.words.join('-')}.1`), 'utf8');
      for (const name of command.options) expect(page, `${command.path} ${name}`).toContain(`\\fB${name.replace(/-/g, '\\-')}\\fR`);
      expect(page).toContain(`bh-${command.words.join('-')} \\- ${command.description.split(' ').slice(0, 3).join(' ')}`);
    }
    const overview = readFileSync(join(manDir, 'bh.1'), 'utf8');
    for (const command of commands) expect(overview).toContain(`.BR bh-${command.words.join('-')} (1)`);
    expect(overview).toMatch(/\.B 12\nwrong password or key/);
  });

  it('every page renders with man-db without a groff warning', () => {
    for (const page of readdirSync(manDir)) {
      // What lintian runs on the man pages of a package.
      const render = execFileSync('sh', ['-c', `man --warnings -E UTF-8 -l -Tutf8 -Z "$1" 2>&1 >/dev/null`, 'sh', join(manDir, page)], {
        encoding: 'utf8',
        env: { ...process.env, LC_ALL: 'C.UTF-8', MANWIDTH: '80' },
      });
      expect(render, page).toBe('');
    }
    const text = execFileSync('man', ['-l', join(manDir, 'bh-restore.1')], { encoding: 'utf8', env: { ...process.env, MANWIDTH: '100', MAN_KEEP_FORMATTING: '' } });
    expect(text).toMatch(/NAME\s+bh-restore - /);
    expect(text).toMatch(/--target, -t value|-t, --target value/);
    expect(text).toContain('EXAMPLES');
  });
});

describe('completion scripts', () => {
  it('bash completes command words, options of each command, and files after options that take one', () => {
    const [top, key, keyA, backupEx, repoFirst, afterPasswordFile, repair] = bashComplete([
      'bh ba',
      'bh key ',
      'bh key a',
      'bh backup --ex',
      'bh -r /srv/repo sn',
      `bh backup --password-file ${tmp}/bh.b`,
      'bh repair ',
    ]);
    expect(top).toEqual(['backup']);
    expect(key).toEqual(['add', 'list', 'passwd', 'remove']);
    expect(keyA).toEqual(['add']);
    expect(backupEx).toEqual(['--exclude', '--exclude-file']);
    expect(repoFirst).toEqual(['snapshots']);
    expect(afterPasswordFile).toEqual([bashScript]);
    expect(repair).toEqual(['index', 'snapshots']);
  });

  it('bash offers every option of every registered command', () => {
    const results = bashComplete(commands.map((c) => `${c.path} -`));
    commands.forEach((command, i) => {
      expect(results[i], command.path).toEqual(expect.arrayContaining([...command.options, '--help']));
    });
    const topLevel = new Set(commands.map((c) => c.words[0]!));
    expect(bashComplete(['bh '])[0]!.sort()).toEqual([...topLevel].sort());
  });

  it('zsh completes command words and options', () => {
    expect(zshComplete('bh ba')).toEqual(['backup']);
    expect(zshComplete('bh key ')).toEqual(['add', 'list', 'passwd', 'remove']);
    expect(zshComplete('bh -r /srv/repo key ')).toEqual(['add', 'list', 'passwd', 'remove']);
    expect(zshComplete('bh backup --exclude')).toEqual(['--exclude', '--exclude-file']);
    expect(zshComplete('bh restore --ta')).toEqual(['--tag', '--target']);
  });

  it('fish completes command words and options', () => {
    expect(fishComplete('bh ba')).toEqual(['backup']);
    expect(fishComplete('bh key ')).toEqual(['add', 'list', 'passwd', 'remove']);
    expect(fishComplete('bh -r /srv/repo key a')).toEqual(['add']);
    expect(fishComplete('bh backup --ex')).toEqual(['--exclude', '--exclude-file']);
  });

  it('`-` writes a script to stdout; nothing asked for is a usage error', async () => {
    const out = expectOk(await bh(['generate', '--bash-completion', '-']), 'generate to stdout');
    expect(out.stdout).toBe(readFileSync(bashScript, 'utf8'));
    const none = await bh(['generate']);
    expect(none.code, describeRun('bh generate', none)).toBe(1);
    expect(none.stderr).toContain('nothing to generate: give --man DIR');
  });
});

describe('bh version', () => {
  it('--json names bh, the build commit, node, OpenSSL, zstd, the addon and libfuse', async () => {
    const r = expectOk(await bh(['version', '--json']), 'bh version --json');
    const info = JSON.parse(r.stdout) as Record<string, unknown>;
    const head = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
    expect(info['bh']).toBe(JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version);
    expect(info['commit']).toBe(head);
    expect(info['node']).toBe(process.versions.node);
    expect(info['openssl']).toBe(process.versions.openssl);
    expect(info['zstd']).toMatch(/^\d+\.\d+\.\d+$/);
    expect(info['nativeAddon']).toEqual({ path: join(ROOT, 'native/build/Release/bhfs.node'), loaded: true });
    expect(info['problems']).toEqual([]);
    // libfuse: the version mapped into the process once the addon is loaded, when it links it.
    const linksFuse = execFileSync('ldd', [join(ROOT, 'native/build/Release/bhfs.node')], { encoding: 'utf8' }).includes('libfuse');
    if (linksFuse) expect(info['libfuse']).toMatch(/^\d+(\.\d+)+$/);
    else expect(info['libfuse']).toBeNull();

    // BH_DEBUG's stack trace, for bug reports, starts with the same provenance.
    const failed = await bh(['snapshots'], { env: { BH_DEBUG: '1', BH_REPO: join(ROOT, 'no-such-repository'), BH_PASSWORD: 'x' } });
    expect(failed.code, describeRun('bh snapshots', failed)).toBe(10);
    expect(failed.stderr).toContain(`bh ${info['bh'] as string} (commit ${head.slice(0, 12)}`);
    expect(failed.stderr).toMatch(/\n\w*Error: /);

    const text = expectOk(await bh(['version']), 'bh version');
    expect(text.stdout).toContain(`commit       ${head}`);
    expect(text.stdout).toContain(`node         ${process.versions.node} (OpenSSL ${process.versions.openssl})`);
  });
});
