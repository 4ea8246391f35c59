/**
 * What the job commands (run, schedule, status, config check) share: which config file
 * (--config, --profile, or config/config.ini in the working directory), the state directory,
 * and the exit codes of the job layer's errors.
 */
import { Option } from 'clipanion';
import { type Job, loadJob, resolveConfigPath } from '../jobs/config.js';
import { ConfigError } from '../jobs/ini.js';
import { RunLockedError, defaultStateDir } from '../jobs/state.js';
import { BhCommand, ExitCode } from './base.js';

export abstract class JobCommand extends BhCommand {
  config = Option.String('--config', { description: 'The job\'s config file (default config/config.ini in the working directory)' });
  profile = Option.String('--profile', { description: 'Use config/config.NAME.ini' });

  protected configPath(): string {
    return resolveConfigPath({ config: this.config, profile: this.profile, cwd: process.cwd() });
  }

  /** Reads and validates the job; prints its warnings. */
  protected loadJob(): Job {
    const job = loadJob(this.configPath(), this.context.env);
    for (const warning of job.warnings) this.report.warn(`warning: ${warning}`);
    return job;
  }

  protected override fail(error: unknown): number {
    if (error instanceof ConfigError) {
      this.report.warn(`bh: ${error.message}`);
      return ExitCode.fatal;
    }
    if (error instanceof RunLockedError) {
      this.report.warn(`bh: ${error.message}`);
      return ExitCode.lockFailed;
    }
    return super.fail(error);
  }
}

/** Commands that read or write the job's state (run lock, status file). */
export abstract class StatefulJobCommand extends JobCommand {
  stateDir = Option.String('--state-dir', { description: 'Where the run lock and status file live (default $STATE_DIRECTORY, else $XDG_STATE_HOME/bh, else ~/.local/state/bh)' });

  protected resolvedStateDir(): string {
    return this.stateDir ?? defaultStateDir(this.context.env);
  }
}
