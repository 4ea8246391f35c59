/**
 * The config.ini dialect (src/jobs/ini.ts): configparser's syntax as Backup Handler used it,
 * without interpolation and with inline comments; every problem reported with its line, and
 * nothing but a ConfigError ever thrown, whatever the input (fast-check).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ConfigError, parseIni } from '../src/jobs/ini.js';

function value(text: string, section: string, key: string): string | undefined {
  return parseIni(text, 'test.ini').sections.get(section)?.entries.get(key)?.value;
}

function issuesOf(text: string): { line?: number | undefined; problem: string }[] {
  try {
    parseIni(text, 'test.ini');
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return [...(error as ConfigError).issues];
  }
  throw new Error('expected a ConfigError');
}

describe('config.ini syntax', () => {
  it('reads key = value and key: value, with case-insensitive keys and section names', () => {
    const text = '[SSH]\nUserName = backup\nssh_servers: a.example, b.example\n[modes]\nLocal=True\n';
    expect(value(text, 'SSH', 'username')).toBe('backup');
    expect(value(text, 'SSH', 'ssh_servers')).toBe('a.example, b.example');
    expect(value(text, 'MODES', 'local')).toBe('True');
  });

  it('splits at the first = or :, so values keep later ones', () => {
    expect(value('[HEARTBEAT]\nurl = https://hc-ping.com/x?a=b\n', 'HEARTBEAT', 'url')).toBe('https://hc-ping.com/x?a=b');
    expect(value('[SCHEDULE]\ntimes: 03:00, 14:30\n', 'SCHEDULE', 'times')).toBe('03:00, 14:30');
  });

  it('keeps % literally (no interpolation) and ${VAR} untouched for the validator', () => {
    expect(value('[ENCRYPTION]\npassphrase = 100%%sure%(x)s\n', 'ENCRYPTION', 'passphrase')).toBe('100%%sure%(x)s');
    expect(value('[SSH]\npassword = ${SSH_PASSWORD}\n', 'SSH', 'password')).toBe('${SSH_PASSWORD}');
  });

  it('skips # and ; comment lines, also indented, and strips inline comments after whitespace', () => {
    const text = '# top\n; also\n[ENCRYPTION]\n   # indented comment\nworkers = 4 # Parallel encryption threads\nkey_file = /k;not-a-comment\nother = a ; comment\n';
    expect(value(text, 'ENCRYPTION', 'workers')).toBe('4');
    expect(value(text, 'ENCRYPTION', 'key_file')).toBe('/k;not-a-comment');
    expect(value(text, 'ENCRYPTION', 'other')).toBe('a');
  });

  it('joins indented continuation lines with newlines; a blank line ends the value', () => {
    const text = '[BACKUPS]\nbackup_dirs = /a,\n    /b,\n    /c\n\n[MODES]\nlocal = True\n';
    expect(value(text, 'BACKUPS', 'backup_dirs')).toBe('/a,\n/b,\n/c');
    expect(value(text, 'MODES', 'local')).toBe('True');
  });

  it('treats [DEFAULT] as an ordinary section: its keys do not appear in other sections', () => {
    const doc = parseIni('[DEFAULT]\nsource_dir = /data\n[SSH]\nusername = u\n', 'test.ini');
    expect(doc.sections.get('DEFAULT')?.entries.get('source_dir')?.value).toBe('/data');
    expect(doc.sections.get('SSH')?.entries.has('source_dir')).toBe(false);
  });

  it('accepts a BOM and CRLF line ends', () => {
    expect(value('\uFEFF[MODES]\r\nlocal = True\r\nssh = False\r\n', 'MODES', 'ssh')).toBe('False');
  });

  it('reports every syntax problem at once, each with its line', () => {
    const issues = issuesOf('orphan = 1\n[MODES]\nlocal = True\nlocal = False\njust words\n[MODES]\n[broken\n');
    expect(issues.map((i) => i.line)).toEqual([1, 4, 5, 6, 7]);
    expect(issues[0]!.problem).toMatch(/before any \[SECTION\]/);
    expect(issues[1]!.problem).toMatch(/set twice \(first on line 3\)/);
    expect(issues[2]!.problem).toMatch(/not of the form key = value/);
    expect(issues[3]!.problem).toMatch(/section appears twice/);
    expect(issues[4]!.problem).toMatch(/not a section header/);
  });

  it('throws nothing but a ConfigError with line numbers, whatever the input', () => {
    const iniish = fc.array(
      fc.oneof(
        fc.string(),
        fc.constantFrom('[', ']', '=', ':', '#', ';', ' ', '\t', '\n', '\r\n', '[DEFAULT]', '[SSH]', 'key = v', '  cont', '${X}', '%', '\uFEFF', '\0'),
      ),
      { maxLength: 40 },
    );
    fc.assert(
      fc.property(iniish, (parts) => {
        const text = parts.join('');
        const lineCount = text.split(/\r\n|\n|\r/).length;
        try {
          parseIni(text, 'garbage.ini');
        } catch (error) {
          if (!(error instanceof ConfigError)) throw error;
          expect(error.issues.length).toBeGreaterThan(0);
          for (const issue of error.issues) {
            expect(issue.line).toBeGreaterThanOrEqual(1);
            expect(issue.line).toBeLessThanOrEqual(lineCount);
            expect(error.message).toContain(`garbage.ini:${issue.line}`);
          }
        }
      }),
      { numRuns: 2000 },
    );
  });
});
