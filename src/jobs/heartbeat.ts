/**
 * [HEARTBEAT]: one HTTP GET to the watchdog's ping URL after a fully successful run, so that a
 * missed ping (host down, timer disabled, run failing) is what pages someone. Only http and
 * https (validated with the config). The URL is its own credential and never appears in a message.
 */

export interface HeartbeatOutcome {
  ok: boolean;
  status?: number | undefined;
  error?: string | undefined;
}

export async function sendHeartbeat(url: string, timeoutSeconds: number): Promise<HeartbeatOutcome> {
  try {
    const response = await fetch(url, { method: 'GET', redirect: 'follow', signal: AbortSignal.timeout(timeoutSeconds * 1000) });
    await response.body?.cancel();
    return response.ok ? { ok: true, status: response.status } : { ok: false, status: response.status, error: `the monitor answered HTTP ${response.status}` };
  } catch (error) {
    const e = error as Error & { cause?: { code?: string } };
    const why = e.name === 'TimeoutError' ? `no answer within ${timeoutSeconds} s` : e.cause?.code ?? e.name;
    return { ok: false, error: `the ping did not reach the monitor (${why})` };
  }
}
