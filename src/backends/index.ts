/** The repository storage backends and the function that picks one for a location string. */

import type { Backend } from './backend.js';
import { LocalBackend } from './local.js';
import type { BackendOptions } from './options.js';
import { retryOptionsFromEnv, withRetry } from './retry.js';
import { openS3Backend } from './s3.js';
import { openSftpBackend } from './sftp.js';
import { withThrottle } from './throttle.js';

export * from './backend.js';
export * from './local.js';
export type { BackendOptions } from './options.js';

/**
 * The backend for a repository location: `sftp:user@host:/path` or `sftp://user@host:port/path`,
 * `s3:bucket/prefix`, else a local directory. Remote backends are wrapped in the retry
 * decorator; any backend with a bandwidth limit in the throttle decorator.
 */
export async function openBackend(location: string, options: BackendOptions): Promise<Backend> {
  if (location === '') throw new Error('empty repository location');
  let backend: Backend;
  const retry = retryOptionsFromEnv(options.env);
  if (location.startsWith('sftp:')) backend = withRetry(await openSftpBackend(location, options), retry);
  else if (location.startsWith('s3:')) backend = withRetry(await openS3Backend(location, options), retry);
  else backend = new LocalBackend(location);
  if (options.limitUpload || options.limitDownload) backend = withThrottle(backend, { uploadKiBs: options.limitUpload ?? 0, downloadKiBs: options.limitDownload ?? 0 });
  return backend;
}
