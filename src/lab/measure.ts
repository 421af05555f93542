import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Lab } from './lab.js';

/** `waitFor` gave up: the message names what was awaited and the last error `fn` threw, if any. */
export class WaitTimeoutError extends Error {
  override readonly name = 'WaitTimeoutError';
}

/**
 * Calls `fn` every `intervalMs` (measured from the start of one call to the start of the next) until it returns a
 * value other than undefined/false, and resolves with that value. Errors thrown by `fn` count as "not yet". After
 * `timeoutMs` it rejects with WaitTimeoutError naming `what`. `fn` is always called at least once.
 */
export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined | false>,
  timeoutMs: number,
  intervalMs = 100,
): Promise<T> {
  const start = performance.now();
  let lastError: unknown;
  for (;;) {
    const round = performance.now();
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
      lastError = undefined;
    } catch (e) {
      lastError = e;
    }
    const now = performance.now();
    if (now - start >= timeoutMs) {
      const last = lastError === undefined ? '' : `; last error: ${(lastError as Error).message ?? String(lastError)}`;
      throw new WaitTimeoutError(`timed out after ${timeoutMs} ms waiting for ${what}${last}`);
    }
    await sleep(Math.max(0, Math.min(intervalMs - (now - round), timeoutMs - (now - start))));
  }
}

export interface PollOptions {
  /** Time between the starts of two requests. Default 50 ms. */
  intervalMs?: number;
  timeoutMs: number;
  /** Per-request timeout given to curl. Default 500 ms. */
  requestTimeoutMs?: number;
  /** `performance.now()` of the fault; elapsed time is counted from it. Default: when the call starts. */
  since?: number;
}

/**
 * Polls `url` from `fromHost` until one request returns 2xx, and resolves with the milliseconds from `since` to the
 * end of that request: the failover time as a client sees it (RTO). Resolution is about `intervalMs` plus the cost of
 * starting curl in the host (~10-20 ms). Rejects with WaitTimeoutError after `timeoutMs`.
 */
export async function pollUntilHttpOk(lab: Lab, fromHost: string, url: string, opts: PollOptions): Promise<number> {
  const since = opts.since ?? performance.now();
  const requestTimeoutMs = opts.requestTimeoutMs ?? 500;
  await waitFor(
    `HTTP 2xx from ${url} as seen from ${fromHost}`,
    async () => {
      const r = await lab.httpGet(fromHost, url, requestTimeoutMs);
      if (!r.ok) throw new Error(r.error ?? `HTTP ${r.status}`);
      return true;
    },
    opts.timeoutMs,
    opts.intervalMs ?? 50,
  );
  return Math.round(performance.now() - since);
}
