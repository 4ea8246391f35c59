/**
 * The restore scripts' quoting, on its own: bash quoting checked by bash itself on generated
 * strings; PowerShell quoting and the PowerShell script checked by a reader of PowerShell's
 * single-quoted literals written here, because no PowerShell runs on this machine (Debian has
 * no package for it and npm none that works offline). Windows collectors run against stand-in
 * tools (winget, choco, python, cargo) made by the test.
 */
import { spawnSync } from 'node:child_process';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type SystemCapture, CAPTURE_FORMAT, CAPTURE_VERSION } from '../src/system/capture.js';
import { captureSystem } from '../src/system/collect.js';
import { bashQuote, powershellQuote } from '../src/system/quote.js';
import { restoreScript } from '../src/system/restore-script.js';
import { makeTempDir, removeDir } from './helpers/cli.js';

const HOSTILE = ["it's", '"double"', '$(touch /tmp/pwned)', '`touch /tmp/pwned`', 'new\nline', '-rf', '--help', '\\', "'", "''", '$HOME', '${IFS}', '!!', '*', '\t', '‘curly’', 'a\u201bb', '\u2018; Remove-Item C:\\ -Recurse; \u2019', '$env:PATH', '@(1)'];

let dir: string;

beforeAll(async () => {
  dir = await makeTempDir('bh-system-script-');
});

afterAll(async () => {
  await removeDir(dir);
});

/** What bash makes of each quoted value: printed back NUL-separated by one bash process. */
function throughBash(values: readonly string[]): string[] {
  const script = `printf '%s\\0'${values.map((v) => ` ${bashQuote(v)}`).join('')}\n`;
  const result = spawnSync('bash', ['-c', script], { encoding: 'utf8', cwd: dir });
  expect(result.status, result.stderr).toBe(0);
  return result.stdout.split('\0').slice(0, -1);
}

const PS_QUOTES = "'\u2018\u2019\u201a\u201b";

/**
 * Reads a PowerShell single-quoted string literal starting at `text[start]` (a quote mark), as
 * PowerShell does: two quote marks in a row are one, a lone one ends the literal. Returns the
 * value and the index after the literal.
 */
function readPowershellLiteral(text: string, start: number): { value: string; end: number } {
  if (!PS_QUOTES.includes(text[start]!)) throw new Error(`no literal at ${start}`);
  let value = '';
  let i = start + 1;
  for (;;) {
    if (i >= text.length) throw new Error('unterminated literal');
    const c = text[i]!;
    if (PS_QUOTES.includes(c)) {
      if (i + 1 < text.length && PS_QUOTES.includes(text[i + 1]!)) {
        value += c;
        i += 2;
        continue;
      }
      return { value, end: i + 1 };
    }
    value += c;
    i++;
  }
}

/** The script with every literal replaced by '' and every comment removed: the code that runs. */
function powershellCode(script: string): { code: string; literals: string[] } {
  let code = '';
  const literals: string[] = [];
  let i = 0;
  while (i < script.length) {
    const c = script[i]!;
    if (PS_QUOTES.includes(c)) {
      const { value, end } = readPowershellLiteral(script, i);
      literals.push(value);
      code += "''";
      i = end;
    } else if (c === '#') {
      while (i < script.length && script[i] !== '\n') i++;
    } else {
      code += c;
      i++;
    }
  }
  return { code, literals };
}

const noNul = fc.string({ unit: 'binary', maxLength: 40 }).filter((s) => !s.includes('\0'));

describe('bash quoting', () => {
  it('bash reads every quoted value back as it was: hostile ones and generated ones', () => {
    expect(throughBash(HOSTILE)).toEqual(HOSTILE);
    fc.assert(
      fc.property(fc.array(noNul, { minLength: 1, maxLength: 30 }), (values) => {
        expect(throughBash(values)).toEqual(values);
      }),
      { numRuns: 15 },
    );
  });

  it('refuses NUL, which no command can receive', () => {
    expect(() => bashQuote('a\0b')).toThrow(/NUL/);
    expect(() => powershellQuote('a\0b')).toThrow(/NUL/);
  });
});

describe('PowerShell quoting', () => {
  it('PowerShell reads every quoted value back as it was and the literal ends where the quoting ends', () => {
    for (const value of [...HOSTILE, ...fc.sample(noNul, 500)]) {
      const quoted = powershellQuote(value);
      expect(readPowershellLiteral(quoted + ' rest', 0)).toEqual({ value, end: quoted.length });
    }
  });

  it('doubles the typographic quotes too, which PowerShell also ends literals with (a plain doubling of \' would not)', () => {
    const value = '\u2018; calc; \u2019';
    const naive = `'${value.replaceAll("'", "''")}'`;
    expect(readPowershellLiteral(naive, 0).value).not.toBe(value);
    expect(readPowershellLiteral(powershellQuote(value), 0).value).toBe(value);
  });
});

function windowsCapture(): SystemCapture {
  const item = (name: string): { name: string } => ({ name });
  return {
    format: CAPTURE_FORMAT,
    version: CAPTURE_VERSION,
    time: '2026-12-01T10:00:00.000Z',
    host: 'desk',
    platform: 'windows',
    os: 'Windows',
    user: { name: 'alice', uid: 0, home: 'C:\\Users\\alice' },
    history: false,
    categories: {
      winget: { items: ['Git.Git', 'Microsoft.PowerToys', ...HOSTILE].map(item), files: [] },
      choco: { items: ['7zip', ...HOSTILE].map(item), files: [] },
      pip: { items: ['requests', ...HOSTILE].map(item), files: [] },
      npm: { items: ['typescript', ...HOSTILE].map(item), files: [] },
      cargo: { items: ['ripgrep', ...HOSTILE].map(item), files: [] },
      vscode: {
        items: ['ms-python.python', ...HOSTILE].map(item),
        files: [
          { origin: 'home', path: 'AppData/Roaming/Code/User/settings.json', mode: 0o644, size: 2, sha256: '', stored: 'files/home/settings' },
          { origin: 'home', path: "AppData/Roaming/Code/User/snippets/it's ‘$(calc)’.json", mode: 0o644, size: 2, sha256: '', stored: 'files/home/snippet' },
        ],
      },
      network: { items: HOSTILE.map(item), files: [] },
    },
    skipped: [{ category: 'npm', tool: 'npm', reason: "it's `broken` $(calc)" }],
  };
}

describe('the PowerShell restore script', () => {
  it('holds every value only inside literals, in statements of a few fixed shapes, and installs only valid names', async () => {
    const script = await restoreScript({ capture: windowsCapture(), snapshotId: 'ab'.repeat(32), read: async () => Buffer.from('{}') }, { version: 'test' });
    const { code, literals } = powershellCode(script);
    // Nothing of a hostile value is left outside a literal.
    for (const marker of ['calc', 'pwned', 'Remove-Item', '`', '$(', '$HOME)', '$env:PATH']) expect(code, marker).not.toContain(marker);
    const body = code.slice(code.indexOf("Write-Phase ''"));
    const shapes = new Set(body.split('\n').map((line) => line.trim()).filter((line) => line !== ''));
    expect([...shapes].sort()).toEqual(
      [
        "Write-Phase ''",
        "Write-Note ''",
        "Write-Note '' ''",
        "if (-not (Invoke-Step '' @('', ''))) { Write-Warn '' }",
        "if (-not (Invoke-Step '' @('', '', ''))) { Write-Warn '' }",
        "if (-not (Invoke-Step '' @('', '', '', ''))) { Write-Warn '' }",
        "if (-not (Invoke-Step '' @('', '', '', '', '', ''))) { Write-Warn '' }",
        "if (-not (Write-HomeFile '' '')) { Write-Warn '' }",
        'if ($script:Warnings -gt 0) {',
        "Write-Output ''",
        "Write-Output ([string]$script:Warnings + '')",
        'exit 3',
        '}',
      ].sort(),
    );
    // Valid names are installed; hostile ones only reach the review list.
    const steps = script.split('\n').filter((l) => l.startsWith('if (-not (Invoke-Step'));
    expect(steps).toContain("if (-not (Invoke-Step 'winget' @('install', '--exact', '--id', 'Git.Git', '--accept-package-agreements', '--accept-source-agreements'))) { Write-Warn 'winget: Git.Git was not installed' }");
    expect(steps).toContain("if (-not (Invoke-Step 'code' @('--install-extension', 'ms-python.python'))) { Write-Warn 'VS Code: ms-python.python was not installed' }");
    expect(steps).toHaveLength(7);
    for (const value of HOSTILE) expect(literals).toContain(value);
    expect(literals).toContain("AppData/Roaming/Code/User/snippets/it's ‘$(calc)’.json");
  });
});

describe('Windows collectors', () => {
  it('read winget, choco, pip and cargo from their tools, and name npm and code (batch files run by cmd.exe) as skipped here', async () => {
    const tools = join(dir, 'win-tools');
    const home = join(dir, 'win-home');
    await mkdir(tools, { recursive: true });
    await mkdir(join(home, 'AppData/Roaming/Code/User'), { recursive: true });
    await writeFile(join(home, 'AppData/Roaming/Code/User/settings.json'), '{"editor.tabSize": 2}\n');
    const tool = async (name: string, output: string): Promise<void> => {
      await writeFile(join(tools, `${name}.out`), output);
      await writeFile(join(tools, name), `#!/bin/sh\nwhile IFS= read -r line || [ -n "$line" ]; do printf '%s\\n' "$line"; done < '${join(tools, `${name}.out`)}'\n`);
      await chmod(join(tools, name), 0o755);
    };
    await tool('winget', 'Name                 Id                    Version     Available  Source\r\n---------------------------------------------------------------------------\r\nGit                  Git.Git               2.43.0                 winget\r\nPowerToys (Preview)  Microsoft.PowerToys   0.77.0      0.78.0     winget\r\n');
    await tool('choco', '7zip|23.1.0\nchocolatey|2.2.2\n');
    await tool('python', JSON.stringify([{ name: 'black', version: '24.1.0' }]));
    await tool('cargo', 'bat v0.24.0:\n    bat\n');
    const { capture, contents } = await captureSystem({ platform: 'windows', host: 'desk', user: { name: 'alice', uid: 0 }, home, root: '/', env: { PATH: tools }, toolTimeoutMs: 5000, history: false, time: new Date() });
    const names = (category: keyof SystemCapture['categories']): string[] => capture.categories[category]?.items.map((i) => i.name) ?? [];
    expect(names('winget')).toEqual(['Git.Git', 'Microsoft.PowerToys']);
    expect(capture.categories.winget!.items[1]!.detail).toEqual({ version: '0.77.0' });
    expect(names('choco')).toEqual(['7zip', 'chocolatey']);
    expect(names('pip')).toEqual(['black']);
    expect(names('cargo')).toEqual(['bat']);
    expect(capture.categories.vscode!.files.map((f) => f.path)).toEqual(['AppData/Roaming/Code/User/settings.json']);
    expect(contents.get(capture.categories.vscode!.files[0]!.stored)!.toString()).toBe('{"editor.tabSize": 2}\n');
    expect(capture.skipped.map((s) => `${s.category}:${s.tool}:${s.reason}`).sort()).toEqual(['npm:npm:not installed', 'vscode:code:not installed']);
    // No Linux collector ran.
    expect(capture.categories.apt).toBeUndefined();
  });
});
