/**
 * The database dumps of a run ([MODES] db = True): one snapshot per engine (`/mysql`, tagged
 * mysql; `/postgres`, tagged postgres) in the run's primary destination, copied into the others
 * as the files' snapshot is (runner.ts, fanOut). A dump that fails (login refused, server down,
 * tool missing or killed, trailer missing) fails that dump in every destination, and the run is
 * partial (exit 3): the files' snapshot is kept. A failed dump is not tried again in the next
 * destination — the server, not the repository, was the trouble — while a repository failure
 * moves the dump on to the next destination, as for files.
 */
import type { Repository } from '../repo/repository.js';
import { runBackup } from '../snapshot/backup.js';
import { compilePatterns } from '../snapshot/exclude.js';
import type { StreamSource } from '../snapshot/streams.js';
import { mysqlSource } from '../sources/mysql.js';
import { postgresSource } from '../sources/postgres.js';
import { DumpFailedError } from '../sources/source.js';
import type { Job } from './config.js';
import type { DestinationOutcome } from './state.js';

export interface DumpTask {
  engine: 'mysql' | 'postgres';
  /** The snapshot's paths, which [RETENTION] groups by. */
  paths: string[];
  /** Dumps into `repo`, recording the result in `outcome`. */
  backup(repo: Repository, outcome: DestinationOutcome, run: DumpRunOptions): Promise<void>;
}

export interface DumpRunOptions {
  tags: string[];
  dryRun: boolean;
  env: Readonly<Record<string, string | undefined>>;
  signal?: AbortSignal | undefined;
  warn(message: string): void;
  step(message: string): void;
}

/** The dumps `job` asks for, MySQL/MariaDB first. */
export function dumpTasks(job: Job): DumpTask[] {
  const tasks: DumpTask[] = [];
  const { mysql, postgres } = job.databases;
  if (mysql) tasks.push(dumpTask('mysql', `MySQL database(s) ${mysql.databases.join(', ')}`, (env) => mysqlSource(mysql, { env })));
  if (postgres) tasks.push(dumpTask('postgres', `PostgreSQL database(s) ${postgres.databases.join(', ')}`, (env) => postgresSource(postgres, { env })));
  return tasks;
}

function dumpTask(engine: DumpTask['engine'], what: string, source: (env: Readonly<Record<string, string | undefined>>) => StreamSource): DumpTask {
  let failure: string | undefined;
  return {
    engine,
    paths: [`/${engine}`],
    async backup(repo, outcome, run) {
      if (failure !== undefined) throw new DumpFailedError(`not dumped: ${failure}`);
      run.step(`${run.dryRun ? 'dry run: ' : ''}dumping ${what} into ${repo.location}`);
      try {
        const result = await runBackup(repo, {
          paths: [],
          mode: 'full',
          exclude: compilePatterns([]),
          excludePatterns: [],
          tags: [...run.tags, engine],
          dryRun: run.dryRun,
          source: source(run.env),
          signal: run.signal,
          onDamagedSnapshot: (id, error) => run.warn(`${repo.location}: snapshots/${id} cannot be read and is left out: ${error.message}`),
          onWarning: (message) => run.warn(`${repo.location}: ${message}`),
        });
        outcome.snapshotId = result.snapshotId;
        outcome.bytesAdded = result.counters.bytes_added;
        outcome.unreadable = 0;
        outcome.ok = true;
      } catch (error) {
        if (error instanceof DumpFailedError) failure = error.message;
        throw error;
      }
    },
  };
}
