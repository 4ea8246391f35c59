/** The repository storage backends and the function that picks one for a location string. */

import type { Backend } from './backend.js';
import { LocalBackend } from './local.js';

export * from './backend.js';
export * from './local.js';

/**
 * The backend for a repository location: a plain path is a local directory. `sftp:` and `s3:`
 * locations are recognised but not implemented yet.
 */
export function openBackend(location: string): Backend {
  if (location === '') throw new Error('empty repository location');
  if (location.startsWith('sftp:') || location.startsWith('s3:')) {
    throw new Error(`unsupported repository location '${location}': sftp: and s3: backends are not available yet`);
  }
  return new LocalBackend(location);
}
