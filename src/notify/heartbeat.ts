/**
 * [HEARTBEAT]: healthchecks.io's ping protocol. The plain URL after a fully successful run, so
 * that a missed ping (host down, timer disabled, run failing) is what pages someone; with
 * signal_start, URL/start when a run begins (the monitor then also sees runs that hang); with
 * signal_fail, URL/fail when a run did not fully succeed (alerting at once instead of after the
 * grace time). Only http and https (validated with the config). The URL is its own credential
 * and never appears in a message.
 */

export type HeartbeatSignal = 'success' | 'start' | 'fail';

export interface HeartbeatOutcome {
  signal: HeartbeatSignal;
  ok: boolean;
  status?: number | undefined;
  error?: string | undefined;
}

/** The URL of a signal: `/start` and `/fail` are appended to the ping URL's path, its query kept. */
export function heartbeatUrl(url: string, signal: HeartbeatSignal): string {
  if (signal === 'success') return url;
  const u = new URL(url);
  u.pathname = `${u.pathname.replace(/\/+$/, '')}/${signal}`;
  return u.toString();
}

export async function sendHeartbeat(url: string, timeoutSeconds: number, signal: HeartbeatSignal = 'success'): Promise<HeartbeatOutcome> {
  try {
    const response = await fetch(heartbeatUrl(url, signal), { method: 'GET', redirect: 'follow', signal: AbortSignal.timeout(timeoutSeconds * 1000) });
    await response.body?.cancel();
    return response.ok ? { signal, ok: true, status: response.status } : { signal, ok: false, status: response.status, error: `the monitor answered HTTP ${response.status}` };
  } catch (error) {
    const e = error as Error & { cause?: { code?: string } };
    const why = e.name === 'TimeoutError' ? `no answer within ${timeoutSeconds} s` : e.cause?.code ?? e.name;
    return { signal, ok: false, error: `the ping did not reach the monitor (${why})` };
  }
}
