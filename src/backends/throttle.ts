/** Bandwidth-limit decorator. Not written yet: the remote-backends issue builds it. */
import type { Backend } from './backend.js';

export interface ThrottleLimits {
  uploadKiBs: number;
  downloadKiBs: number;
}

export function withThrottle(_backend: Backend, _limits: ThrottleLimits): Backend {
  throw new Error('--limit-upload and --limit-download are not available yet');
}
