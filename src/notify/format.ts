/**
 * The words of a message, in the two forms the channels need: a short one for chat (Telegram,
 * Slack, Discord, Teams) and a full one for mail (plain text and HTML). Each channel escapes
 * for its own markup; these functions return plain lines.
 */
import { EVENT_KINDS, MAX_ERRORS_IN_MESSAGE, type EventTarget, type NotifyEvent } from './event.js';

/** Byte counts as people read them (binary units, as `bh` prints them everywhere). */
export function humanBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let value = n;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(value < 10 ? 2 : value < 100 ? 1 : 0)} ${units[unit]}`;
}

export function humanDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

/** "[bh] host: backup FAILED (nightly.ini)". */
export function subjectOf(event: NotifyEvent): string {
  const name = event.job.split(/[\\/]/).pop() ?? event.job;
  return `[bh] ${event.host}: ${EVENT_KINDS[event.kind].title} (${name})`;
}

function targetLine(target: EventTarget): string {
  const parts = [target.result];
  if (target.snapshotId) parts.push(`snapshot ${target.snapshotId.slice(0, 8)}`);
  if (target.bytesAdded !== undefined) parts.push(`+${humanBytes(target.bytesAdded)}`);
  return `${target.ok ? '✓' : '✗'} ${target.name}: ${parts.join(', ')}`;
}

function errorLines(event: NotifyEvent): string[] {
  const shown = event.errors.slice(0, MAX_ERRORS_IN_MESSAGE).map((e) => `- ${e}`);
  const more = event.errors.length - shown.length;
  return more > 0 ? [...shown, `- … and ${more} more (see the log and \`bh status\`)`] : shown;
}

export interface ShortMessage {
  /** The first line: what happened, where. */
  title: string;
  /** The rest, line by line. */
  lines: string[];
}

/** For chat: what happened, each destination on a line, the first errors. */
export function shortMessage(event: NotifyEvent): ShortMessage {
  const kind = EVENT_KINDS[event.kind];
  const mark = kind.severity === 'ok' ? '✅' : kind.severity === 'warning' ? '⚠️' : '❌';
  const lines = [`job ${event.job}`, ...event.targets.map(targetLine)];
  if (event.durationMs !== undefined) lines.push(`duration ${humanDuration(event.durationMs)}${event.exitCode !== undefined ? `, exit ${event.exitCode}` : ''}`);
  lines.push(...event.facts);
  if (event.errors.length > 0) lines.push('errors:', ...errorLines(event));
  return { title: `${mark} bh on ${event.host}: ${kind.title}`, lines };
}

/** Short message as plain text. */
export function shortText(event: NotifyEvent): string {
  const { title, lines } = shortMessage(event);
  return [title, ...lines].join('\n');
}

/** For mail: every field, labelled. */
export function fullText(event: NotifyEvent): string {
  const kind = EVENT_KINDS[event.kind];
  const lines = [
    `${kind.title} on ${event.host}`,
    '',
    `event:       ${event.kind}`,
    `host:        ${event.host}`,
    `job:         ${event.job}`,
    `time:        ${event.time}`,
  ];
  if (event.runId) lines.push(`run:         ${event.runId}`);
  if (event.durationMs !== undefined) lines.push(`duration:    ${humanDuration(event.durationMs)}`);
  if (event.exitCode !== undefined) lines.push(`exit code:   ${event.exitCode}`);
  if (event.targets.length > 0) lines.push('', 'destinations:', ...event.targets.map((t) => `  ${targetLine(t)}`));
  if (event.facts.length > 0) lines.push('', ...event.facts);
  if (event.errors.length > 0) lines.push('', 'errors:', ...errorLines(event));
  lines.push('', `-- bh on ${event.host}; \`bh status --config ${event.job}\` shows the recent runs.`);
  return lines.join('\n') + '\n';
}

export function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

/** The full form as an HTML mail body; every value escaped. */
export function fullHtml(event: NotifyEvent): string {
  const kind = EVENT_KINDS[event.kind];
  const colour = kind.severity === 'ok' ? '#1a7f37' : kind.severity === 'warning' ? '#9a6700' : '#cf222e';
  const row = (label: string, value: string): string => `<tr><th align="left">${escapeHtml(label)}</th><td>${escapeHtml(value)}</td></tr>`;
  const rows = [row('event', event.kind), row('host', event.host), row('job', event.job), row('time', event.time)];
  if (event.runId) rows.push(row('run', event.runId));
  if (event.durationMs !== undefined) rows.push(row('duration', humanDuration(event.durationMs)));
  if (event.exitCode !== undefined) rows.push(row('exit code', String(event.exitCode)));
  const parts = [`<h2 style="color:${colour}">${escapeHtml(`${kind.title} on ${event.host}`)}</h2>`, `<table>${rows.join('')}</table>`];
  if (event.targets.length > 0) {
    const cells = event.targets.map(
      (t) =>
        `<tr><td>${escapeHtml(t.name)}</td><td style="color:${t.ok ? '#1a7f37' : '#cf222e'}">${escapeHtml(t.result)}</td><td>${escapeHtml(t.snapshotId?.slice(0, 8) ?? '-')}</td><td>${escapeHtml(t.bytesAdded === undefined ? '-' : humanBytes(t.bytesAdded))}</td></tr>`,
    );
    parts.push(`<h3>Destinations</h3><table border="1" cellpadding="4" cellspacing="0"><tr><th>destination</th><th>result</th><th>snapshot</th><th>added</th></tr>${cells.join('')}</table>`);
  }
  if (event.facts.length > 0) parts.push(`<p>${event.facts.map(escapeHtml).join('<br>')}</p>`);
  if (event.errors.length > 0) parts.push(`<h3>Errors</h3><ul>${errorLines(event).map((e) => `<li>${escapeHtml(e.slice(2))}</li>`).join('')}</ul>`);
  return `<!doctype html><html><body>${parts.join('\n')}</body></html>\n`;
}
