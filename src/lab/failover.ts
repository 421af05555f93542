/**
 * Failover time as a client sees it: from pulling the plug of the PRIM to the first successful HTTP request on the
 * virtual IP answered by the other node.
 *   expected ≈ timeout (detection) + what is left of the VIP probe (none without a witness: it runs ahead of the
 *   timeout) + VIP add + start_prim (the demo app's start; the gratuitous ARP goes out meanwhile)
 */
import { performance } from 'node:perf_hooks';
import { controlRequest } from '../daemon/control.js';
import type { StatusView } from '../daemon/views.js';
import type { Lab } from './lab.js';
import { controlSocketOf, DEMO_MODULE, DEMO_PORT, DEMO_VIP, waitForDaemon } from './mirror-lab.js';

async function stateOf(lab: Lab, node: string): Promise<string> {
  try {
    const v = (await controlRequest(controlSocketOf(lab, node), 'status', DEMO_MODULE, undefined, { timeoutMs: 2000 })) as StatusView;
    const m = v.modules[0]!;
    return `${m.state}${m.ready ? '' : '?'}`;
  } catch {
    return 'OFF';
  }
}

/** Resolves once `node` is PRIM and `other` SECOND, both ready, and the client gets an answer from `node` on the VIP. */
export async function waitForPair(lab: Lab, node: string, other: string, timeoutMs = 60_000): Promise<void> {
  await lab.waitFor(`${node} PRIM and ${other} SECOND`, async () =>
    (await stateOf(lab, node)) === 'PRIM' && (await stateOf(lab, other)) === 'SECOND', timeoutMs, 100);
  await lab.waitFor(`client served by ${node} on the VIP`, async () => {
    const r = await lab.httpGet('client', `http://${DEMO_VIP}:${DEMO_PORT}/`, 1000);
    return r.ok && r.body?.includes(`"node":"${node}"`);
  }, timeoutMs, 100);
}

/**
 * Brings the demo module of a fresh lab to `prim` PRIM and `second` SECOND as an operator would: `start` on both
 * (unless `started`: the caller did it), both WAIT and ready, `prim` on `prim` (ALONE), `second` on `second`, then
 * waitForPair.
 */
export async function startPair(lab: Lab, prim = 'node1', second = 'node2', o: { started?: boolean } = {}): Promise<void> {
  if (!o.started) for (const n of [prim, second]) await lab.cli(n, ['start', '-m', DEMO_MODULE]);
  await lab.waitFor('both WAIT', async () => (await Promise.all([prim, second].map((n) => stateOf(lab, n)))).every((s) => s === 'WAIT'), 20_000, 100);
  await lab.cli(prim, ['prim', '-m', DEMO_MODULE]);
  await lab.waitFor(`${prim} ALONE`, async () => (await stateOf(lab, prim)).replace('?', '') === 'ALONE', 10_000, 100);
  await lab.cli(second, ['second', '-m', DEMO_MODULE]);
  await waitForPair(lab, prim, second);
}

/**
 * Power off `prim`, measure until the client is served by `second` on the VIP; then boot `prim` back. `before`, when
 * given, is awaited between the pair being ready and the power-off (e.g. to choose the instant).
 */
export async function measureFailover(
  lab: Lab, prim: string, second: string, opts: { timeoutMs?: number; before?: () => Promise<void> } = {},
): Promise<number> {
  const timeoutMs = opts.timeoutMs ?? 120_000;
  await waitForPair(lab, prim, second);
  await opts.before?.();
  const t0 = performance.now();
  await lab.poweroff(prim);
  const ms = await msUntilServedBy(lab, `http://${DEMO_VIP}:${DEMO_PORT}/`, second, t0, `after ${prim} power-off`, timeoutMs);
  await lab.boot(prim);
  await waitForDaemon(lab, prim);
  return ms;
}

/**
 * Polls `url` from the lab's client every 20 ms (300 ms per request) until the answer names `node` (`"node":"NAME"`,
 * as the demo app answers), and resolves with the milliseconds since `t0` (a `performance.now()`).
 */
export async function msUntilServedBy(lab: Lab, url: string, node: string, t0: number, why: string, timeoutMs = 120_000): Promise<number> {
  let ms = -1;
  await lab.waitFor(`client served by ${node} on ${url} ${why}`, async () => {
    const r = await lab.httpGet('client', url, 300);
    if (r.ok && r.body?.includes(`"node":"${node}"`)) {
      ms = Math.round(performance.now() - t0);
      return true;
    }
    return false;
  }, timeoutMs, 20);
  return ms;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : Math.round((s[mid - 1]! + s[mid]!) / 2);
}
