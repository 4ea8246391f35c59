/**
 * What a backend needs besides its location: credentials sources, host-key policy, S3 endpoint,
 * bandwidth limits. Filled from command-line flags and the environment by src/commands/base.ts
 * (and from config.ini by the job layer). Never holds a secret itself: secrets are read from
 * `env` (BH_SSH_PASSWORD, AWS_*) or files at the moment they are needed, so they never sit on
 * argv or in a message.
 */
export interface BackendOptions {
  /** The environment to read credentials and BH_S3_* defaults from. */
  env: Readonly<Record<string, string | undefined>>;
  /** SFTP: private key file (else ssh-agent via SSH_AUTH_SOCK, else BH_SSH_PASSWORD). */
  sshKey?: string;
  /** SFTP: known_hosts file (default ~/.ssh/known_hosts). */
  knownHosts?: string;
  /** SFTP: trust and record an unknown host key (a changed one is still refused). */
  sshAcceptNew?: boolean;
  /** S3: endpoint URL of an S3-compatible server (or BH_S3_ENDPOINT). */
  s3Endpoint?: string;
  /** S3: region (or BH_S3_REGION; default us-east-1). */
  s3Region?: string;
  /** S3: path-style addressing (or BH_S3_PATH_STYLE=1). */
  s3PathStyle?: boolean;
  /** Upload limit in KiB/s (0 or undefined: none). */
  limitUpload?: number;
  /** Download limit in KiB/s (0 or undefined: none). */
  limitDownload?: number;
  /** Parallel connections / requests to a remote backend. */
  connections?: number;
  /** Where a remote backend's retry warnings go ("bh: retrying …"; default: a line on stderr). */
  onRetry?: (line: string) => void;
}
