/**
 * Tries a delivery a few times. Only failures that a later try can cure are retried (a
 * connection refused, a timeout, a 5xx, a 429 with its Retry-After); a refused password or a 4xx
 * would fail the same way again and is reported at once.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { ChannelLog } from './channel.js';

/** Thrown by a try that should be repeated; `afterMs` overrides the backoff (Retry-After). */
export class TransientError extends Error {
  constructor(message: string, readonly afterMs?: number) {
    super(message);
    this.name = 'TransientError';
  }
}

export interface RetryPolicy {
  tries: number;
  /** Wait before try n+1 (n from 1): backoffMs * 2^(n-1). */
  backoffMs: number;
  /** A server's Retry-After is honoured up to this. */
  maxWaitMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { tries: 3, backoffMs: 1000, maxWaitMs: 60_000 };

export async function withRetries<T>(what: string, policy: RetryPolicy, log: ChannelLog, attempt: (tryNumber: number) => Promise<T>): Promise<T> {
  for (let n = 1; ; n++) {
    try {
      return await attempt(n);
    } catch (error) {
      if (!(error instanceof TransientError) || n >= policy.tries) {
        const message = error instanceof Error ? error.message : String(error);
        throw new Error(n > 1 ? `${message} (after ${n} tries)` : message);
      }
      const waitMs = Math.min(error.afterMs ?? policy.backoffMs * 2 ** (n - 1), policy.maxWaitMs);
      log.warn({ what, try: n, of: policy.tries, waitMs, error: error.message }, `${what}: try ${n} of ${policy.tries} failed (${error.message}); retrying in ${waitMs} ms`);
      await sleep(waitMs);
    }
  }
}

/** Why a fetch() threw, in words: a timeout, or the system error code (ECONNREFUSED, ENOTFOUND…). */
export function fetchFailure(error: unknown, timeoutSeconds: number): string {
  const e = error as Error & { cause?: { code?: string; message?: string } };
  if (e.name === 'TimeoutError' || e.name === 'AbortError') return `no answer within ${timeoutSeconds} s`;
  return e.cause?.code ?? e.cause?.message ?? e.message;
}
