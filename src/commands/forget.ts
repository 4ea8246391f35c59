import { Command, Option } from 'clipanion';
import {
  type Decision,
  EmptyGroupError,
  type ForgetGroup,
  type ForgetPolicy,
  GROUP_FIELDS,
  type GroupField,
  describeGroupKey,
  executeForget,
  isEmptyPolicy,
  parseDuration,
  planForget,
  planForgetNamed,
} from '../snapshot/forget.js';
import { matchesFilter, selectSnapshots } from '../snapshot/snapshot.js';
import { DEFAULT_PRUNE_OPTIONS } from '../snapshot/prune.js';
import { RepositoryCommand, UserError } from './base.js';
import { hostFilter, pathFilter, snapshotFilter, tagFilter } from './snapshot-filter.js';
import { reportedPrune } from './prune.js';

export class ForgetCommand extends RepositoryCommand {
  static override paths = [['forget']];
  static override usage = Command.Usage({
    description: 'remove snapshots by a retention policy, or by id',
    details: `
      Removes snapshot records, and nothing else: the data they alone reference stays until
      \`bh prune\`. Snapshots (those matching --host, --tag, --path) are grouped by --group-by
      (default host,paths) and the policy is applied to each group on its own. As in restic:

      - \`--keep-last N\`: the N newest snapshots.
      - \`--keep-hourly/daily/weekly/monthly/yearly N\`: the newest snapshot of each of the N most recent hours, days, ISO weeks (Monday to Sunday), months or years that have a snapshot, in local time (TZ). If there are fewer such buckets than N, the oldest snapshot of the group is kept as well (restic ≥ 0.16). N may be \`unlimited\`.
      - \`--keep-within 1y2m3d4h\`: every snapshot newer than the group's newest snapshot minus the duration (as restic: measured from the newest snapshot, not from now). Snapshots dated in the future are kept.
      - \`--keep-tag T\` (repeatable): snapshots with all the tags of T ("a,b"; '' means untagged).

      A snapshot is kept if any rule keeps it. The old Backup Handler's [RETENTION] knobs then
      cap what the rules keep (alone, they cap "keep everything"); 0 turns them off:

      - \`--max-count N\`: at most the N newest of the kept snapshots stay.
      - \`--max-age-days N\`: kept snapshots older than N × 24 hours before now go, except the newest of them: when backups stop, retention does not delete the last good one.

      Without any rule nothing is removed. A plan that would remove every snapshot of a group
      is refused (exit 1, nothing removed) unless you pass --allow-empty-group, which also
      lets --max-age-days remove a group's newest snapshot. Snapshot ids remove exactly those
      snapshots, with the same refusal for the last one of a group.

      forget takes a shared lock, like backup: it only deletes snapshot files, which no other
      command rewrites, so backups of other hosts go on while it runs (a running backup whose
      parent is forgotten still finds the parent's data, which only prune removes).
      With --prune, \`bh prune\` runs afterwards with its defaults (then forget takes a prune
      lock, which still lets backups run).
    `,
    examples: [
      ['What a policy would do', 'bh forget -r /srv/backup --keep-daily 7 --keep-weekly 5 --keep-monthly 12 --dry-run'],
      ['The old tool\'s retention', 'bh forget -r /srv/backup --max-age-days 30 --max-count 5'],
      ['One host, as JSON', 'bh forget -r /srv/backup --host web1 --keep-within 14d --json'],
      ['Remove two snapshots', 'bh forget -r /srv/backup 1a2b3c4d 5e6f7a8b'],
    ],
  });

  snapshotRefs = Option.Rest({ name: 'snapshot' });
  keepLast = Option.String('--keep-last', { description: 'Keep the N newest snapshots' });
  keepHourly = Option.String('--keep-hourly', { description: 'Keep the newest snapshot of each of the last N hours that have one' });
  keepDaily = Option.String('--keep-daily', { description: 'Keep the newest snapshot of each of the last N days that have one' });
  keepWeekly = Option.String('--keep-weekly', { description: 'Keep the newest snapshot of each of the last N ISO weeks that have one' });
  keepMonthly = Option.String('--keep-monthly', { description: 'Keep the newest snapshot of each of the last N months that have one' });
  keepYearly = Option.String('--keep-yearly', { description: 'Keep the newest snapshot of each of the last N years that have one' });
  keepWithin = Option.String('--keep-within', { description: 'Keep snapshots newer than the newest one minus this duration (e.g. 1y2m3d4h)' });
  keepTags = Option.Array('--keep-tag', [], { description: 'Keep snapshots with all these tags ("a,b"; repeatable)' });
  maxAgeDays = Option.String('--max-age-days', { description: 'Remove kept snapshots older than N days, except the newest (0: off)' });
  maxCount = Option.String('--max-count', { description: 'Keep at most the N newest of the kept snapshots (0: off)' });
  groupBy = Option.String('--group-by', 'host,paths', { description: 'Group snapshots by these fields: host, paths, tags ("" for one group)' });
  hosts = hostFilter('snapshots');
  tags = tagFilter('snapshots');
  filterPaths = pathFilter('snapshots');
  dryRun = Option.Boolean('--dry-run', false, { description: 'Print what would be removed, remove nothing' });
  allowEmptyGroup = Option.Boolean('--allow-empty-group', false, { description: 'Allow removing every snapshot of a group' });
  prune = Option.Boolean('--prune', false, { description: 'Run bh prune (default settings) after removing the snapshots' });

  async run(): Promise<number> {
    const policy = this.policy();
    const groupBy = parseGroupBy(this.groupBy);
    const named = this.snapshotRefs.length > 0;
    if (named && !isEmptyPolicy(policy)) throw new UserError('give snapshot ids or a policy (--keep-*, --max-age-days, --max-count), not both');
    if (!named && isEmptyPolicy(policy)) {
      this.report.jsonLine({ dry_run: this.dryRun, groups: [], removed: [], message: 'no policy given: nothing removed' });
      this.report.line('no policy given (--keep-*, --max-age-days, --max-count) and no snapshot ids: nothing removed');
      return 0;
    }

    const repo = await this.openRepository(this.prune && !this.dryRun ? 'prune' : 'shared');
    const all = await this.loadSnapshots(repo);
    const filter = snapshotFilter(this);
    const options = { groupBy, now: new Date(), allowEmptyGroup: this.allowEmptyGroup };
    let groups: ForgetGroup[];
    try {
      groups = named ? planForgetNamed(all, selectSnapshots(all, this.snapshotRefs, filter), options) : planForget(all.filter((s) => matchesFilter(s.record, filter)), policy, options);
    } catch (error) {
      if (!(error instanceof EmptyGroupError)) throw error;
      throw new UserError(`${error.message}; nothing was removed. Keep something (e.g. --keep-last 1), or pass --allow-empty-group if that is what you want`);
    }
    for (const group of groups) this.printGroup(group, !named);

    const removed = this.dryRun ? [] : await executeForget(repo, groups);
    this.report.jsonLine({ dry_run: this.dryRun, groups: groups.map(groupJson), removed });
    this.report.line(this.dryRun ? `dry run: would remove ${groups.reduce((n, g) => n + g.remove.length, 0)} snapshots; nothing changed` : `removed ${removed.length} snapshots`);
    if (this.prune && this.dryRun) this.report.line('dry run: prune skipped (its plan depends on the removal); run bh prune --dry-run after forget');
    if (this.prune && !this.dryRun) await reportedPrune(this.report, repo, { ...DEFAULT_PRUNE_OPTIONS, ownLock: this.heldLock }, false);
    return 0;
  }

  private policy(): ForgetPolicy {
    let within;
    if (this.keepWithin !== undefined) {
      try {
        within = parseDuration(this.keepWithin);
      } catch (error) {
        throw new UserError(`--keep-within: ${(error as Error).message}`);
      }
    }
    return {
      last: parseCount('--keep-last', this.keepLast, true),
      hourly: parseCount('--keep-hourly', this.keepHourly, true),
      daily: parseCount('--keep-daily', this.keepDaily, true),
      weekly: parseCount('--keep-weekly', this.keepWeekly, true),
      monthly: parseCount('--keep-monthly', this.keepMonthly, true),
      yearly: parseCount('--keep-yearly', this.keepYearly, true),
      within,
      tags: this.keepTags,
      maxAgeDays: parseCount('--max-age-days', this.maxAgeDays, false),
      maxCount: parseCount('--max-count', this.maxCount, false),
    };
  }

  private printGroup(group: ForgetGroup, showKept: boolean): void {
    this.report.line(`snapshots of ${describeGroupKey(group.key)}:`);
    const rows = (decisions: Decision[]): string[][] =>
      decisions.map(({ snapshot: { id, record }, reasons }) => [id.slice(0, 8), new Date(record.time).toLocaleString('sv-SE'), record.host, record.tags.join(','), reasons.join(', '), record.paths.join(', ')]);
    if (showKept) {
      this.report.line(`keep ${group.keep.length} snapshots:`);
      this.report.table(['ID', 'Time', 'Host', 'Tags', 'Reasons', 'Paths'], rows(group.keep));
      this.report.line();
    }
    this.report.line(`${this.dryRun ? 'would remove' : 'remove'} ${group.remove.length} snapshots:`);
    this.report.table(['ID', 'Time', 'Host', 'Tags', 'Reasons', 'Paths'], rows(group.remove));
    this.report.line();
  }
}

/** A count flag: a whole number ≥ 0, or `unlimited` (Infinity) where the rule allows it. */
function parseCount(flag: string, text: string | undefined, unlimited: boolean): number | undefined {
  if (text === undefined) return undefined;
  if (unlimited && text === 'unlimited') return Infinity;
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(Number(text))) throw new UserError(`${flag} '${text}' is not a count: give a whole number ≥ 0${unlimited ? " or 'unlimited'" : ''}`);
  return Number(text);
}

function parseGroupBy(text: string): GroupField[] {
  const fields = text.split(',').map((f) => f.trim()).filter((f) => f !== '');
  for (const field of fields) {
    if (!(GROUP_FIELDS as readonly string[]).includes(field)) throw new UserError(`--group-by: unknown field '${field}'; use host, paths and/or tags, comma-separated, or '' for one group`);
  }
  return fields as GroupField[];
}

function decisionJson({ snapshot: { id, record }, reasons }: Decision): Record<string, unknown> {
  return { id, short_id: id.slice(0, 8), time: record.time, host: record.host, paths: record.paths, tags: record.tags, reasons };
}

function groupJson(group: ForgetGroup): Record<string, unknown> {
  return { key: group.key, keep: group.keep.map(decisionJson), remove: group.remove.map(decisionJson) };
}
