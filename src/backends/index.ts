/** The repository storage backends and the function that picks one for a location string. */

import type { Backend } from './backend.js';
import { LocalBackend } from './local.js';
import type { BackendOptions } from './options.js';
import { retryOptionsFromEnv, withRetry } from './retry.js';
import { withThrottle } from './throttle.js';

export * from './backend.js';
export * from './local.js';
export type { BackendOptions } from './options.js';

/**
 * The backend for a repository location: `sftp:user@host:/path` or `sftp://user@host:port/path`,
 * `s3:bucket/prefix`, else a local directory. Remote backends are wrapped in the retry
 * decorator; any backend with a bandwidth limit in the throttle decorator. The remote backends
 * are loaded on first use: the AWS SDK and ssh2 take ~0.3 s to load, which every command on a
 * local repository would otherwise pay.
 */
export async function openBackend(location: string, options: BackendOptions): Promise<Backend> {
  if (location === '') throw new Error('empty repository location');
  let backend: Backend;
  const retry = { ...retryOptionsFromEnv(options.env), ...(options.onRetry ? { log: options.onRetry } : {}) };
  if (location.startsWith('sftp:')) backend = withRetry(await (await import('./sftp.js')).openSftpBackend(location, options), retry);
  else if (location.startsWith('s3:')) backend = withRetry(await (await import('./s3.js')).openS3Backend(location, options), retry);
  else backend = new LocalBackend(location);
  if (options.limitUpload || options.limitDownload) backend = withThrottle(backend, { uploadKiBs: options.limitUpload ?? 0, downloadKiBs: options.limitDownload ?? 0 });
  return backend;
}
