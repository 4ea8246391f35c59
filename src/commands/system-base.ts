/**
 * What the `bh system` commands share: the repository comes from -r/BH_REPO as everywhere, or
 * from a job's config file (--config JOB.ini: its first destination and its secret), so a
 * machine that runs `bh run` can capture itself into the same repository.
 */
import { Option } from 'clipanion';
import { type Job, loadJob } from '../jobs/config.js';
import { loadSecret } from '../jobs/runner.js';
import type { Secret } from '../repo/keyfile.js';
import type { BackendOptions } from '../repo/storage.js';
import { RepositoryCommand, UserError } from './base.js';

export abstract class SystemRepositoryCommand extends RepositoryCommand {
  jobConfig = Option.String('--config', { description: 'Use the repository and secret of this job config file (its first destination) instead of -r' });

  private job: Job | undefined;

  /** The job of --config, read once (its warnings printed). */
  protected configuredJob(): Job | undefined {
    if (this.jobConfig === undefined) return undefined;
    if (!this.job) {
      const job = loadJob(this.jobConfig, this.context.env);
      for (const warning of job.warnings) this.report.warn(`warning: ${warning}`);
      if (job.destinations.length === 0) throw new UserError(`${this.jobConfig} names no destination to store the capture in`);
      this.job = job;
    }
    return this.job;
  }

  /** Whether a repository was named (-r, BH_REPO or --config). */
  protected hasRepository(): boolean {
    return this.jobConfig !== undefined || Boolean(this.repo ?? this.context.env['BH_REPO']);
  }

  protected override repoLocation(): string {
    if (this.jobConfig !== undefined && this.repo !== undefined) throw new UserError('give either -r/--repo or --config, not both');
    return this.configuredJob()?.destinations[0]!.location ?? super.repoLocation();
  }

  protected override secret(): Promise<Secret> {
    const job = this.configuredJob();
    return job ? loadSecret(job.secret) : super.secret();
  }

  protected override backendOptions(): BackendOptions {
    return this.configuredJob()?.destinations[0]!.backend ?? super.backendOptions();
  }
}
