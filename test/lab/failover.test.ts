import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { measureFailover, startPair, waitForPair } from '../../src/lab/failover.js';
import type { Lab } from '../../src/lab/lab.js';
import { createMirrorLab, DEMO_PORT, DEMO_VIP } from '../../src/lab/mirror-lab.js';
import { controlRequest } from '../../src/daemon/control.js';

// PRIM power-off → the client, in its own namespace, reaches the application on the VIP again, served by the
// other node. Prints the measured time (no bound asserted: timing belongs to bench/failover.ts).
test('PRIM power-off: the client is served on the VIP by the other node again', async () => {
  let lab: Lab | null = null;
  try {
    lab = await createMirrorLab({ pulse: '200ms', timeout: '1s' });
    const l = lab;
    await startPair(l);
    const ms = await measureFailover(l, 'node1', 'node2');
    console.log(`  failover (pulse 200ms, timeout 1s): power-off → first client success on the VIP: ${ms} ms`);
    // the old PRIM came back as SECOND, without stopping the application on node2
    await waitForPair(l, 'node2', 'node1');
    const r = await l.httpGet('client', `http://${DEMO_VIP}:${DEMO_PORT}/`, 2000);
    assert.ok(r.ok && r.body?.includes('"node":"node2"'), `the VIP still answers from node2 after node1 rejoined: ${r.body}`);
  } finally {
    await lab?.down();
  }
});

test.run();
