/**
 * [MONITORING] textfile: the job's state in Prometheus' text exposition format
 * (https://prometheus.io/docs/instrumenting/exposition_formats/), for node_exporter's textfile
 * collector. Rendered here from plain data; the job layer writes it atomically after each run
 * (the collector must never read half a file).
 */

export interface RunMetrics {
  startedSeconds: number;
  endedSeconds: number;
  exitCode: number;
  bytesAdded: number;
  filesNew: number;
  filesChanged: number;
}

export interface DestinationMetrics {
  name: string;
  lastSuccessSeconds?: number | undefined;
  /** 1 when the last run's backup or copy into it succeeded. */
  lastRunOk?: boolean | undefined;
  snapshots?: number | undefined;
  /** Undefined without a schedule to be late against. */
  stale?: boolean | undefined;
}

export interface JobMetrics {
  job: string;
  lastRun?: RunMetrics | undefined;
  destinations: DestinationMetrics[];
}

function labelValue(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function labels(pairs: Record<string, string>): string {
  return `{${Object.entries(pairs).map(([k, v]) => `${k}="${labelValue(v)}"`).join(',')}}`;
}

class Exposition {
  private readonly out: string[] = [];

  family(name: string, help: string, samples: [Record<string, string>, number][]): void {
    if (samples.length === 0) return;
    this.out.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`);
    for (const [pairs, value] of samples) this.out.push(`${name}${labels(pairs)} ${Number.isInteger(value) ? String(value) : value.toFixed(3)}`);
  }

  text(): string {
    return this.out.join('\n') + '\n';
  }
}

export function renderMetrics(m: JobMetrics): string {
  const job = { job: m.job };
  const e = new Exposition();
  const run = m.lastRun;
  if (run) {
    e.family('bh_last_run_start_timestamp_seconds', 'When the last run of the job started (Unix time).', [[job, run.startedSeconds]]);
    e.family('bh_last_run_end_timestamp_seconds', 'When the last run of the job ended (Unix time).', [[job, run.endedSeconds]]);
    e.family('bh_last_run_duration_seconds', 'How long the last run took.', [[job, run.endedSeconds - run.startedSeconds]]);
    e.family('bh_last_run_exit_code', 'Exit code of the last run: 0 ok, 1 config, 2 pre-flight, 3 incomplete, 130 interrupted.', [[job, run.exitCode]]);
    e.family('bh_last_run_success', '1 when the last run fully succeeded.', [[job, run.exitCode === 0 ? 1 : 0]]);
    e.family('bh_last_run_added_bytes', 'Bytes the last run added to its repositories.', [[job, run.bytesAdded]]);
    e.family('bh_last_run_files_new', 'Files the last backup found new.', [[job, run.filesNew]]);
    e.family('bh_last_run_files_changed', 'Files the last backup found changed.', [[job, run.filesChanged]]);
  }
  const each = (pick: (d: DestinationMetrics) => number | undefined): [Record<string, string>, number][] =>
    m.destinations.flatMap((d) => {
      const value = pick(d);
      return value === undefined ? [] : [[{ job: m.job, destination: d.name }, value] as [Record<string, string>, number]];
    });
  e.family('bh_destination_last_success_timestamp_seconds', 'Last successful backup into the destination (Unix time).', each((d) => d.lastSuccessSeconds));
  e.family('bh_destination_last_run_ok', '1 when the last run succeeded for the destination.', each((d) => (d.lastRunOk === undefined ? undefined : d.lastRunOk ? 1 : 0)));
  e.family('bh_destination_snapshots', 'Snapshots in the destination repository after the last run.', each((d) => d.snapshots));
  e.family('bh_destination_stale', '1 when the last success is older than staleness_factor times the schedule interval.', each((d) => (d.stale === undefined ? undefined : d.stale ? 1 : 0)));
  return e.text();
}
