/**
 * Failover time, power-off of the PRIM → first successful client request on the VIP, median of N runs, at the
 * default heartbeat (pulse 500 ms, timeout 5 s) and at pulse 200 ms / timeout 1 s. The baseline is the detection
 * timeout itself: the ratio says how much the VIP move and the application start add to it.
 *   node dist/bench/failover.js [runs=5]
 */
import { controlRequest } from '../src/daemon/control.js';
import { measureFailover, median, waitForPair } from '../src/lab/failover.js';
import type { Lab } from '../src/lab/lab.js';
import { createMirrorLab } from '../src/lab/mirror-lab.js';

const runs = Number(process.argv[2] ?? 5);

async function bench(pulse: string, timeout: string, timeoutMs: number) {
  let lab: Lab | null = null;
  try {
    lab = await createMirrorLab({ pulse, timeout });
    const l = lab;
    for (const n of ['node1', 'node2']) await l.cli(n, ['start', '-m', 'demo']);
    await l.waitFor('both WAIT', async () => {
      const s = await Promise.all(['node1', 'node2'].map((n) => controlRequest(`${l.paths(n).home}/control.sock`, 'status', 'demo') as Promise<{ modules: { state: string; ready: boolean }[] }>));
      return s.every((v) => v.modules[0]!.state === 'WAIT' && v.modules[0]!.ready);
    }, 60_000);
    await l.cli('node1', ['prim', '-m', 'demo']);
    await new Promise((r) => setTimeout(r, 500));
    await l.cli('node2', ['second', '-m', 'demo']);
    const times: number[] = [];
    let [prim, second] = ['node1', 'node2'];
    for (let i = 0; i < runs; i++) {
      await waitForPair(l, prim, second);
      times.push(await measureFailover(l, prim, second));
      [prim, second] = [second, prim];
    }
    const m = median(times);
    console.log(`pulse ${pulse} timeout ${timeout}: runs ${times.join(', ')} ms; median ${m} ms; ratio to detection timeout ${(m / timeoutMs).toFixed(2)}`);
  } finally {
    await lab?.down();
  }
}

await bench('500ms', '5s', 5000);
await bench('200ms', '1s', 1000);
