/**
 * Backup Handler's config.ini (schema v3) read as a bh job: which file, ${ENV} secrets, every
 * validation error collected, and the mapping onto repositories (README.md, "Moving from
 * Backup Handler"). Nothing here touches a repository.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import type { BackendOptions } from '../repo/storage.js';
import { patternProblem } from '../snapshot/exclude.js';
import type { BackupMode } from '../snapshot/snapshot.js';
import { type Alerting, readAlerting } from './alerting-config.js';
import { DATABASE_KEYS, type DatabaseJob, POSTGRES_KEYS, type SectionReader, readDatabaseConnections, readDatabaseJob } from './database-config.js';
import { type ConfigIssue, ConfigError, type IniDocument, type IniEntry, type IniSection, parseIni } from './ini.js';

export const SCHEMA_VERSION = 3;

/** Where the old tool looked when neither --config nor --profile was given (relative to the working directory). */
export const DEFAULT_CONFIG_PATH = 'config/config.ini';

export interface ConfigLocation {
  config?: string | undefined;
  profile?: string | undefined;
  cwd: string;
}

/** --config PATH, else --profile NAME → config/config.NAME.ini, else config/config.ini; never a silent fallback. */
export function resolveConfigPath(where: ConfigLocation): string {
  if (where.config !== undefined && where.profile !== undefined) {
    throw new ConfigError([{ file: where.config, problem: '--config and --profile were both given', fix: 'pass one of them' }]);
  }
  if (where.profile !== undefined && !/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(where.profile)) {
    throw new ConfigError([{ file: `config/config.${where.profile}.ini`, problem: `'${where.profile}' is not a profile name`, fix: 'use letters, digits, ".", "_" and "-" only' }]);
  }
  const path = where.config ?? (where.profile === undefined ? DEFAULT_CONFIG_PATH : `config/config.${where.profile}.ini`);
  const absolute = resolve(where.cwd, path);
  if (!existsSync(absolute)) {
    const how = where.config !== undefined ? '--config' : where.profile !== undefined ? `--profile ${where.profile}` : 'the default location (no --config or --profile given)';
    throw new ConfigError([{ file: absolute, problem: `no config file here (from ${how})`, fix: "check the path, or write one with 'bh config example > FILE' and edit it" }]);
  }
  return absolute;
}

export type DestinationKind = 'local' | 'sftp' | 's3';

/** One repository the job writes to. */
export interface Destination {
  kind: DestinationKind;
  /** The repository location as `bh -r` takes it; also its name in reports and the status file. */
  location: string;
  /** Credentials travel in `backend.env` (BH_SSH_PASSWORD, AWS_*), never in the location. */
  backend: BackendOptions;
}

export type JobSecret = { kind: 'passphrase'; passphrase: string } | { kind: 'keyFile'; path: string };

export interface Retention {
  maxAgeDays: number;
  maxCount: number;
  /** Prune after forgetting (bh key [RETENTION] prune, default True: the old tool's retention freed the space). */
  prune: boolean;
}

export interface Job {
  file: string;
  source: string;
  mode: BackupMode;
  excludes: string[];
  destinations: Destination[];
  secret: JobSecret;
  hooks: { pre?: string | undefined; post?: string | undefined; timeoutSeconds: number };
  /** Undefined when [RETENTION] keeps everything. */
  retention?: Retention | undefined;
  /** Daily times, minutes after local midnight, sorted, unique. */
  schedule: number[];
  heartbeat?: { url: string; timeoutSeconds: number; signalStart: boolean; signalFail: boolean } | undefined;
  /** Notification channels, notify_on, [MONITORING], [LOGGING] (alerting-config.ts). */
  alerting: Alerting;
  /** Every secret value the job holds (passwords, tokens, webhook and ping URLs): never printed, logged or sent. */
  secretValues: string[];
  preflight: { expectedMount?: string | undefined; stalenessFactor: number };
  /** Database dumps ([MODES] db = True): [DATABASE] and [POSTGRES]. */
  databases: DatabaseJob;
  /** Environment variables that secrets were read from: kept out of the hooks' environment. */
  secretVariables: string[];
  /** What was read but is not applied, and other things the user should know. */
  warnings: string[];
}

/** Keys whose values are never printed. */
const SECRET_KEYS = new Set(['SSH.password', 'S3.access_key', 'S3.secret_key', 'ENCRYPTION.passphrase', 'DATABASE.password', 'POSTGRES.password', 'SMTP.password', 'WEBHOOK.auth_header', 'WEBHOOK.url', 'TELEGRAM.api_token', 'TAILSCALE.auth_key']);
/** URLs whose path is their credential (anyone holding them can post or ping): shown with scheme and host only. */
const SECRET_URL_KEYS = new Set(['HEARTBEAT.url', 'WEBHOOK.url']);

/** Every key of schema v3, plus the few bh adds (marked in the README). */
const KNOWN_KEYS: Record<string, readonly string[]> = {
  META: ['schema_version'],
  DEFAULT: ['source_dir', 'mode', 'compress_type', 'exclude_patterns', 'parallel_copies'],
  BACKUPS: ['backup_dirs'],
  SSH: ['ssh_servers', 'username', 'password', 'bandwidth_limit', 'remote_dir', 'ssh_key', 'known_hosts'],
  S3: ['bucket', 'prefix', 'region', 'access_key', 'secret_key', 'max_bandwidth', 'multipart_threshold', 'max_concurrency', 'endpoint', 'path_style'],
  ENCRYPTION: ['enabled', 'key_file', 'passphrase', 'workers'],
  DATABASE: DATABASE_KEYS,
  POSTGRES: POSTGRES_KEYS,
  SMTP: ['host', 'port', 'user', 'password', 'from_addr', 'to_addrs', 'use_tls', 'ca_file'],
  WEBHOOK: ['url', 'auth_header', 'format', 'timeout'],
  HEARTBEAT: ['url', 'timeout', 'signal_start', 'signal_fail'],
  TELEGRAM: ['api_token', 'api_base'],
  USERS: ['interacted_users'],
  MONITORING: ['textfile'],
  LOGGING: ['file', 'max_size', 'keep', 'level'],
  DEDUP: ['enabled'],
  TAILSCALE: ['enabled', 'auth_key', 'hostname', 'advertise_tags', 'accept_routes', 'disconnect_after'],
  SCHEDULE: ['times', 'interval_minutes'],
  MODES: ['local', 'ssh', 's3', 'db'],
  HOOKS: ['pre_backup', 'post_backup', 'timeout_seconds'],
  RETENTION: ['max_age_days', 'max_count', 'prune'],
  NOTIFICATIONS: ['bot', 'receiver_emails', 'notify_on', 'local_mail_to'],
  PREFLIGHT: ['enabled', 'expected_mount', 'expected_label', 'expected_uuid', 'expected_fs_type', 'expected_owner', 'auto_mount', 'auto_fix_ownership', 'ensure_fstab', 'staleness_factor', 'local_mail_to'],
};

/** Sections whose settings belong to features that come with later issues: read, reported, not applied. */
const NOT_APPLIED: Record<string, string> = {
  TAILSCALE: 'bh does not bring Tailscale up: make the SSH servers reachable before the run (a pre_backup hook can)',
};

export const DEFAULT_HOOK_TIMEOUT_SECONDS = 3600;
const DEFAULT_HEARTBEAT_TIMEOUT_SECONDS = 10;
const DEFAULT_STALENESS_FACTOR = 2;

/** Reads typed values out of the document, collecting every problem instead of stopping at the first. */
export class Reader implements SectionReader {
  readonly issues: ConfigIssue[] = [];
  readonly warnings: string[] = [];
  readonly secretVariables = new Set<string>();
  readonly secretValues = new Set<string>();

  constructor(readonly doc: IniDocument, readonly env: Readonly<Record<string, string | undefined>>) {}

  section(name: string): IniSection | undefined {
    return this.doc.sections.get(name);
  }

  entry(section: string, key: string): IniEntry | undefined {
    return this.doc.sections.get(section)?.entries.get(key);
  }

  problem(section: string, key: string | undefined, problem: string, fix: string): void {
    const line = key === undefined ? this.section(section)?.line : this.entry(section, key)?.line ?? this.section(section)?.line;
    this.issues.push({ file: this.doc.file, line, section, key, problem, fix });
  }

  /** The value with ${VAR} replaced; undefined when the key is absent or empty. */
  string(section: string, key: string, required?: string): string | undefined {
    const entry = this.entry(section, key);
    if (entry === undefined || entry.value === '') {
      if (required !== undefined) this.problem(section, key, 'is not set', required);
      return undefined;
    }
    let failed = false;
    const value = entry.value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, name: string) => {
      const found = this.env[name];
      if (SECRET_KEYS.has(`${section}.${key}`)) this.secretVariables.add(name);
      if (found === undefined) {
        failed = true;
        this.problem(section, key, `environment variable ${name} is not set`, `export ${name} before running bh, or write the value in the file`);
        return '';
      }
      return found;
    });
    if (failed) return undefined;
    if (value === '') {
      this.problem(section, key, 'is empty once its ${…} variables are replaced', 'give the environment variable a value, or remove the line');
      return undefined;
    }
    if (SECRET_KEYS.has(`${section}.${key}`) || SECRET_URL_KEYS.has(`${section}.${key}`)) this.secretValues.add(value);
    return value;
  }

  bool(section: string, key: string, fallback: boolean, required?: string): boolean {
    const text = this.string(section, key, required);
    if (text === undefined) return fallback;
    const lower = text.toLowerCase();
    if (['true', 'yes', 'on', '1'].includes(lower)) return true;
    if (['false', 'no', 'off', '0'].includes(lower)) return false;
    this.problem(section, key, `'${text}' is not a boolean`, 'write True or False (yes/no, on/off and 1/0 work too)');
    return fallback;
  }

  number(section: string, key: string, fallback: number, kind: 'integer' | 'decimal', min: number): number {
    const text = this.string(section, key);
    if (text === undefined) return fallback;
    const pattern = kind === 'integer' ? /^\d+$/ : /^\d+(\.\d+)?$/;
    const value = Number(text);
    if (!pattern.test(text) || value < min) {
      this.problem(section, key, `'${text}' is not ${kind === 'integer' ? 'a whole number' : 'a number'} of at least ${min}`, `write a number such as ${Math.max(min, 1)}`);
      return fallback;
    }
    return value;
  }

  list(section: string, key: string, required?: string): string[] {
    const text = this.string(section, key, required);
    return text === undefined ? [] : text.split(/[,\n]/).map((s) => s.trim()).filter((s) => s !== '');
  }

  absolutePath(section: string, key: string, path: string): string | undefined {
    if (isAbsolute(path)) return resolve(path);
    this.problem(section, key, `'${path}' is not an absolute path`, 'write the full path (starting with /): a relative one would depend on the directory bh is started from');
    return undefined;
  }
}

/** Reads and validates a config file; throws ConfigError listing every problem. */
export function loadJob(file: string, env: Readonly<Record<string, string | undefined>>): Job {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError([{ file, problem: `cannot be read: ${(error as Error).message}`, fix: 'check the path and its permissions' }]);
  }
  return validateJob(parseIni(text, file), env);
}

export function validateJob(doc: IniDocument, env: Readonly<Record<string, string | undefined>>): Job {
  const r = new Reader(doc, env);
  checkKnownKeys(r);

  const version = r.string('META', 'schema_version');
  if (version === undefined) r.warnings.push(`[META] schema_version is not set; this file is read as schema v${SCHEMA_VERSION}`);
  else if (version !== String(SCHEMA_VERSION)) r.warnings.push(`config schema version mismatch: file has v${version}, bh reads v${SCHEMA_VERSION}; review 'bh config example' and set schema_version = ${SCHEMA_VERSION}`);

  const sourceText = r.string('DEFAULT', 'source_dir', 'set source_dir to the directory to back up');
  const source = sourceText === undefined ? undefined : r.absolutePath('DEFAULT', 'source_dir', sourceText);
  const modeText = r.string('DEFAULT', 'mode', 'set mode to full, incremental or differential')?.toLowerCase();
  let mode: BackupMode = 'incremental';
  if (modeText === 'full' || modeText === 'incremental' || modeText === 'differential') mode = modeText;
  else if (modeText !== undefined) r.problem('DEFAULT', 'mode', `'${modeText}' is not a backup mode`, 'write full, incremental or differential');
  const compress = r.string('DEFAULT', 'compress_type')?.toLowerCase();
  if (compress !== undefined && !['none', 'zip', 'zip_pw'].includes(compress)) r.problem('DEFAULT', 'compress_type', `'${compress}' is not none, zip or zip_pw`, 'remove it: bh compresses every chunk with zstd');
  else if (compress === 'zip' || compress === 'zip_pw') r.warnings.push(`[DEFAULT] compress_type = ${compress} is not applied: bh compresses every chunk with zstd and encrypts it; ZIP export is not part of bh run`);
  r.number('DEFAULT', 'parallel_copies', 1, 'integer', 1);
  const excludes = r.list('DEFAULT', 'exclude_patterns');
  for (const pattern of excludes) {
    const problem = patternProblem(pattern);
    if (problem) r.problem('DEFAULT', 'exclude_patterns', `'${pattern}' is not a valid pattern: ${problem}`, 'fix the pattern; patterns are separated by commas, so write {a,b} alternatives as separate patterns (*.tmp, *.log)');
  }

  const destinations = readDestinations(r);
  const databases = readDatabaseJob(r);
  const secret = readSecret(r);

  const pre = r.string('HOOKS', 'pre_backup');
  const post = r.string('HOOKS', 'post_backup');
  const timeoutSeconds = r.number('HOOKS', 'timeout_seconds', DEFAULT_HOOK_TIMEOUT_SECONDS, 'integer', 1);

  const maxAgeDays = r.number('RETENTION', 'max_age_days', 0, 'integer', 0);
  const maxCount = r.number('RETENTION', 'max_count', 0, 'integer', 0);
  const prune = r.bool('RETENTION', 'prune', true);
  const retention = maxAgeDays > 0 || maxCount > 0 ? { maxAgeDays, maxCount, prune } : undefined;

  const schedule = readSchedule(r);
  r.number('SCHEDULE', 'interval_minutes', 60, 'integer', 1);
  const heartbeat = readHeartbeat(r);
  const alerting = readAlerting(r, readBotConfig(doc.file, env));

  if (!r.bool('DEDUP', 'enabled', true)) r.warnings.push('[DEDUP] enabled = False is ignored: bh deduplicates every repository (chunks are stored once)');
  const preflightEnabled = r.bool('PREFLIGHT', 'enabled', false);
  const mountText = r.string('PREFLIGHT', 'expected_mount');
  const expectedMount = preflightEnabled && mountText !== undefined ? r.absolutePath('PREFLIGHT', 'expected_mount', mountText) : undefined;
  const stalenessFactor = r.number('PREFLIGHT', 'staleness_factor', DEFAULT_STALENESS_FACTOR, 'decimal', 1);
  if (preflightEnabled) {
    for (const key of ['expected_label', 'expected_uuid', 'expected_fs_type', 'expected_owner']) {
      if (r.entry('PREFLIGHT', key)) r.warnings.push(`[PREFLIGHT] ${key} is not checked by bh yet (only expected_mount is)`);
    }
    for (const key of ['auto_mount', 'auto_fix_ownership', 'ensure_fstab']) {
      if (r.bool('PREFLIGHT', key, false)) r.warnings.push(`[PREFLIGHT] ${key} is not done by bh: bh never mounts, chowns or edits /etc/fstab; an unmounted ${mountText ?? 'destination'} stops the run (exit 2)`);
    }
  }
  for (const [section, why] of Object.entries(NOT_APPLIED)) {
    if (r.section(section) && r.section(section)!.entries.size > 0 && (section !== 'TAILSCALE' || r.bool('TAILSCALE', 'enabled', false))) r.warnings.push(`[${section}] is not applied: ${why}`);
  }

  if (r.issues.length > 0) throw new ConfigError(r.issues);
  return {
    file: doc.file,
    source: source!,
    mode,
    excludes,
    destinations,
    secret: secret!,
    hooks: { pre, post, timeoutSeconds },
    retention,
    schedule,
    heartbeat,
    alerting,
    preflight: { expectedMount, stalenessFactor },
    databases,
    secretVariables: [...r.secretVariables],
    secretValues: [...r.secretValues],
    warnings: r.warnings,
  };
}

/**
 * The old tool's Telegram settings, `bot_config.ini` beside the job's config file ([TELEGRAM]
 * api_token, [USERS] interacted_users), read as they are; undefined when there is none.
 */
export function readBotConfig(jobFile: string, env: Readonly<Record<string, string | undefined>>): Reader | undefined {
  const file = resolve(jobFile, '..', 'bot_config.ini');
  return existsSync(file) ? readerOf(file, env) : undefined;
}

/** The database connections of a config file alone (`bh db restore --config`): the rest of the job is not needed. */
export function loadDatabaseConnections(file: string, env: Readonly<Record<string, string | undefined>>): DatabaseJob {
  const r = readerOf(file, env);
  const connections = readDatabaseConnections(r);
  if (r.issues.length > 0) throw new ConfigError(r.issues);
  return connections;
}

/** An INI file, parsed, to read settings from; one that cannot be read is a ConfigError. */
function readerOf(file: string, env: Readonly<Record<string, string | undefined>>): Reader {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError([{ file, problem: `cannot be read: ${(error as Error).message}`, fix: 'check the path and its permissions' }]);
  }
  return new Reader(parseIni(text, file), env);
}

function checkKnownKeys(r: Reader): void {
  for (const section of r.doc.sections.values()) {
    const known = KNOWN_KEYS[section.name];
    if (!known) {
      r.warnings.push(`${r.doc.file}:${section.line}: unknown section [${section.name}] is ignored`);
      continue;
    }
    for (const entry of section.entries.values()) {
      if (!known.includes(entry.key)) r.warnings.push(`${r.doc.file}:${entry.line}: unknown key [${section.name}] ${entry.key} is ignored`);
    }
  }
}

function readDestinations(r: Reader): Destination[] {
  const local = r.bool('MODES', 'local', false, 'set local = True or False');
  const ssh = r.bool('MODES', 'ssh', false, 'set ssh = True or False');
  const s3 = r.bool('MODES', 's3', false);
  const destinations: Destination[] = [];
  const base = (): BackendOptions => ({ env: r.env });

  if (local) {
    for (const dir of r.list('BACKUPS', 'backup_dirs', 'list the backup directories (comma-separated), or set local = False in [MODES]')) {
      const path = r.absolutePath('BACKUPS', 'backup_dirs', dir);
      if (path !== undefined) destinations.push({ kind: 'local', location: path, backend: base() });
    }
  }
  if (ssh) {
    const servers = r.list('SSH', 'ssh_servers', 'list the SSH servers, or set ssh = False in [MODES]');
    const username = r.string('SSH', 'username', 'set the SSH user name');
    const password = r.string('SSH', 'password');
    const remoteDir = r.string('SSH', 'remote_dir') ?? 'bh-backups';
    const limit = r.number('SSH', 'bandwidth_limit', 0, 'integer', 0);
    const sshKey = r.string('SSH', 'ssh_key');
    const knownHosts = r.string('SSH', 'known_hosts');
    if (password === undefined && sshKey === undefined) r.warnings.push('[SSH] neither password nor ssh_key is set: bh uses ssh-agent (SSH_AUTH_SOCK)');
    for (const server of servers) {
      const m = /^([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::(\d{1,5}))?$/.exec(server);
      if (!m || username === undefined) {
        if (!m) r.problem('SSH', 'ssh_servers', `'${server}' is not a host name (or host:port)`, 'write host names or IP addresses, comma-separated');
        continue;
      }
      // sftp://…:PORT/ + an absolute path gives "//path" (absolute), as restic writes it.
      const location = m[2] === undefined ? `sftp:${username}@${m[1]}:${remoteDir}` : `sftp://${username}@${m[1]}:${m[2]}/${remoteDir}`;
      const env = password === undefined ? r.env : { ...r.env, BH_SSH_PASSWORD: password };
      destinations.push({ kind: 'sftp', location, backend: { env, sshKey, knownHosts, limitUpload: limit || undefined } });
    }
  }
  if (s3) {
    const bucket = r.string('S3', 'bucket', 'set the bucket name, or set s3 = False in [MODES]');
    const region = r.string('S3', 'region', 'set the AWS region (us-east-1 for most S3-compatible servers)');
    const prefix = (r.string('S3', 'prefix') ?? '').replace(/^\/+|\/+$/g, '');
    const accessKey = r.string('S3', 'access_key');
    const secretKey = r.string('S3', 'secret_key');
    const limit = r.number('S3', 'max_bandwidth', 0, 'integer', 0);
    const connections = r.number('S3', 'max_concurrency', 10, 'integer', 1);
    r.number('S3', 'multipart_threshold', 8, 'integer', 1);
    if ((accessKey === undefined) !== (secretKey === undefined)) r.problem('S3', accessKey === undefined ? 'access_key' : 'secret_key', 'is not set while its partner is', 'set both access_key and secret_key, or neither (then the usual AWS variables and files apply)');
    if (bucket !== undefined && region !== undefined) {
      const env = accessKey !== undefined && secretKey !== undefined ? { ...r.env, AWS_ACCESS_KEY_ID: accessKey, AWS_SECRET_ACCESS_KEY: secretKey } : r.env;
      destinations.push({
        kind: 's3',
        location: `s3:${bucket}${prefix === '' ? '' : `/${prefix}`}`,
        backend: { env, s3Region: region, s3Endpoint: r.string('S3', 'endpoint'), s3PathStyle: r.bool('S3', 'path_style', false) || undefined, limitUpload: limit || undefined, connections },
      });
    }
  }
  if (!local && !ssh && !s3 && r.section('MODES')?.entries.has('local') && r.section('MODES')?.entries.has('ssh')) {
    r.problem('MODES', undefined, 'no destination is enabled', 'set local, ssh or s3 = True');
  }
  const seen = new Set<string>();
  for (const d of destinations) {
    if (seen.has(d.location)) r.problem(d.kind === 'local' ? 'BACKUPS' : d.kind === 'sftp' ? 'SSH' : 'S3', undefined, `destination ${d.location} is listed twice`, 'list each destination once');
    seen.add(d.location);
  }
  return destinations;
}

function readSecret(r: Reader): JobSecret | undefined {
  const enabled = r.bool('ENCRYPTION', 'enabled', true);
  const keyFileText = r.string('ENCRYPTION', 'key_file');
  const passphrase = r.string('ENCRYPTION', 'passphrase');
  r.number('ENCRYPTION', 'workers', 1, 'integer', 1);
  if (keyFileText !== undefined) {
    const path = r.absolutePath('ENCRYPTION', 'key_file', keyFileText);
    if (path === undefined) return undefined;
    let size: number;
    try {
      size = statSync(path).size;
    } catch (error) {
      r.problem('ENCRYPTION', 'key_file', `cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, "check the path, or create a key with 'bh config init-key PATH'");
      return undefined;
    }
    if (size !== 32) {
      r.problem('ENCRYPTION', 'key_file', `${path} holds ${size} bytes, a key file holds exactly 32`, "create one with 'bh config init-key PATH'");
      return undefined;
    }
    if (!enabled) r.warnings.push('[ENCRYPTION] enabled = False is ignored: bh encrypts every repository; the key file unlocks them');
    if (passphrase !== undefined) r.warnings.push('[ENCRYPTION] both key_file and passphrase are set: key_file is used (as the old tool did)');
    return { kind: 'keyFile', path };
  }
  if (passphrase !== undefined) {
    if (!enabled) r.warnings.push('[ENCRYPTION] enabled = False is ignored: bh encrypts every repository; the passphrase unlocks them');
    return { kind: 'passphrase', passphrase };
  }
  if (r.entry('ENCRYPTION', 'passphrase')?.value || r.entry('ENCRYPTION', 'key_file')?.value) return undefined; // an unset ${VAR}, already reported
  r.problem(
    'ENCRYPTION',
    undefined,
    enabled ? 'neither key_file nor passphrase is set' : 'encryption is disabled and no secret is set, but bh encrypts every repository',
    "add 'passphrase = ${BH_PASSPHRASE}' (and export BH_PASSPHRASE), or create a key file with 'bh config init-key /etc/bh/backup.key' and add 'key_file = /etc/bh/backup.key'",
  );
  return undefined;
}

/** "HH:MM" as minutes after midnight. */
export function parseTimeOfDay(text: string): number | undefined {
  const m = /^([01]?\d|2[0-3]):([0-5]\d)$/.exec(text);
  return m ? Number(m[1]) * 60 + Number(m[2]) : undefined;
}

export function formatTimeOfDay(minutes: number): string {
  return `${String(Math.floor(minutes / 60)).padStart(2, '0')}:${String(minutes % 60).padStart(2, '0')}`;
}

function readSchedule(r: Reader): number[] {
  const slots = new Set<number>();
  for (const text of r.list('SCHEDULE', 'times')) {
    const minutes = parseTimeOfDay(text);
    if (minutes === undefined) r.problem('SCHEDULE', 'times', `'${text}' is not a time of day`, 'use HH:MM in 24-hour form, comma-separated (03:00, 14:30)');
    else slots.add(minutes);
  }
  return [...slots].sort((a, b) => a - b);
}

function readHeartbeat(r: Reader): Job['heartbeat'] {
  const url = r.string('HEARTBEAT', 'url');
  const timeoutSeconds = r.number('HEARTBEAT', 'timeout', DEFAULT_HEARTBEAT_TIMEOUT_SECONDS, 'decimal', 1);
  if (url === undefined) return undefined;
  let parsed: URL | undefined;
  try {
    parsed = new URL(url);
  } catch {
    parsed = undefined;
  }
  if (!parsed || (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')) {
    r.problem('HEARTBEAT', 'url', 'is not an http:// or https:// URL', 'write the ping URL your monitor gives you (https://hc-ping.com/UUID)');
    return undefined;
  }
  return { url, timeoutSeconds, signalStart: r.bool('HEARTBEAT', 'signal_start', false), signalFail: r.bool('HEARTBEAT', 'signal_fail', false) };
}

/** What `bh config check` prints: the file's values with every secret masked. */
export function maskedSettings(doc: IniDocument): { section: string; key: string; value: string }[] {
  const out: { section: string; key: string; value: string }[] = [];
  for (const section of doc.sections.values()) {
    for (const entry of section.entries.values()) {
      out.push({ section: section.name, key: entry.key, value: maskValue(section.name, entry.key, entry.value) });
    }
  }
  return out;
}

function maskValue(section: string, key: string, value: string): string {
  if (value === '') return '';
  const fromEnvironment = /^\$\{[A-Za-z_][A-Za-z0-9_]*\}$/.test(value);
  if (SECRET_URL_KEYS.has(`${section}.${key}`)) return fromEnvironment ? `${value} (from the environment, masked)` : maskUrl(value);
  if (SECRET_KEYS.has(`${section}.${key}`)) return fromEnvironment ? `${value} (from the environment, masked)` : '******** (masked)';
  return value;
}

/** A ping URL's path is its credential (anyone holding it can ping): keep scheme and host only. */
export function maskUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}/******** (masked)`;
  } catch {
    return '******** (masked)';
  }
}
