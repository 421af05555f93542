import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { measureFailover, waitForPair } from '../../src/lab/failover.js';
import type { Lab } from '../../src/lab/lab.js';
import { createMirrorLab } from '../../src/lab/mirror-lab.js';
import { controlRequest } from '../../src/daemon/control.js';

// PRIM power-off → the client, in its own namespace, reaches the application on the VIP again, served by the
// other node. Prints the measured time (no bound asserted: timing belongs to bench/failover.ts).
test('PRIM power-off: the client is served on the VIP by the other node again', async () => {
  let lab: Lab | null = null;
  try {
    lab = await createMirrorLab({ pulse: '200ms', timeout: '1s' });
    const l = lab;
    const sock = (n: string) => `${l.paths(n).home}/control.sock`;
    for (const n of ['node1', 'node2']) await l.cli(n, ['start', '-m', 'demo']);
    await l.waitFor('both WAIT', async () => {
      const s = await Promise.all(['node1', 'node2'].map((n) => controlRequest(sock(n), 'status', 'demo') as Promise<{ modules: { state: string; ready: boolean }[] }>));
      return s.every((v) => v.modules[0]!.state === 'WAIT' && v.modules[0]!.ready);
    }, 20_000);
    await l.cli('node1', ['prim', '-m', 'demo']);
    await l.waitFor('node1 ALONE', async () => ((await controlRequest(sock('node1'), 'status', 'demo')) as { modules: { state: string }[] }).modules[0]!.state === 'ALONE', 10_000);
    await l.cli('node2', ['second', '-m', 'demo']);
    await waitForPair(l, 'node1', 'node2');
    const ms = await measureFailover(l, 'node1', 'node2');
    console.log(`  failover (pulse 200ms, timeout 1s): power-off → first client success on the VIP: ${ms} ms`);
    assert.ok(ms > 0);
    // the old PRIM came back as SECOND, without stopping the application on node2
    await waitForPair(l, 'node2', 'node1');
  } finally {
    await lab?.down();
  }
});

test.run();
