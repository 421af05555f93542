/**
 * ModuleDriver arms a tick at the engine's next deadline (`nextDeadline`): the peer is declared lost when the
 * heartbeat timeout expires, with no periodic tick (the daemon's 100 ms timer is not running here). One driver on
 * fakes and a FakeClock moved by the test; files in /tmp/tddl-*, removed in `finally`.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseClusterXml } from '../../../src/config/cluster.js';
import { parseUserconfig } from '../../../src/config/userconfig.js';
import { Logger } from '../../../src/daemon/logger.js';
import { engineConfig, ModuleDriver } from '../../../src/daemon/module-driver.js';
import { noMonitor } from '../../../src/daemon/monitor.js';
import { beacon, initialState, nextDeadline } from '../../../src/engine/mirror/step.js';
import type { Home } from '../../../src/home.js';
import { FakeClock } from '../../../src/platform/clock/fake.js';
import { FakeScriptRunner } from '../../../src/platform/scripts/fake.js';
import { FakeLan, FakeVip } from '../../../src/platform/vip/fake.js';
import { FakeWitness } from '../../../src/platform/witness/fake.js';
import { NoFilesReplicator } from '../../../src/replication/none.js';

const CLUSTER = parseClusterXml(`<cluster><lans><lan name="default">
  <node name="node1" addr="198.51.100.1"/><node name="node2" addr="198.51.100.2"/>
</lan></lans></cluster>`);
const CFG = parseUserconfig(`<safe><service mode="mirror"><heart pulse="100ms" timeout="600ms"/>
<vip><interface_list><interface><real_interface><virtual_addr addr="198.51.100.10"/></real_interface></interface></interface_list></vip>
</service></safe>`, 'm', CLUSTER);

const peerBeacon = () => beacon(initialState({ module: 'm', self: 'node2', peer: 'node1', nodeOrder: ['node1', 'node2'], cfg: engineConfig(CFG), persisted: null }));

test('nextDeadline: the probe ahead, then the timeout, after the last heartbeat; none once the peer is lost', () => {
  let s = initialState({ module: 'm', self: 'node1', peer: 'node2', nodeOrder: ['node1', 'node2'], cfg: engineConfig(CFG), persisted: null });
  assert.is(nextDeadline(s), null, 'peer never heard');
  s = { ...s, mono: 1000, lanHeard: { default: 1000 }, peerUp: true };
  assert.is(nextDeadline(s), 1300, 'timeout 600 − probeAheadMs 300');
  assert.is(nextDeadline({ ...s, mono: 1300 }), 1600);
  assert.is(nextDeadline({ ...s, mono: 1600, peerUp: false }), null);
});

test('the peer is lost exactly when the timeout expires, without a periodic tick', async () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tddl-'));
  const home: Home = { root, runDir: path.join(root, 'run') };
  fs.mkdirSync(home.runDir);
  fs.mkdirSync(path.join(root, 'state'));
  const clock = new FakeClock();
  const log = new Logger(path.join(root, 'm.log'), false);
  const drv = await ModuleDriver.create({
    home, self: 'node1', cluster: CLUSTER, config: CFG, scripts: new FakeScriptRunner(), vip: new FakeVip(new FakeLan(), 'node1'),
    witness: new FakeWitness(), replicator: new NoFilesReplicator(), monitor: noMonitor(), clock, send: () => {}, log,
  });
  try {
    await drv.boot();
    await drv.settled();
    drv.onHeartbeat('default', peerBeacon());
    await drv.settled();
    assert.is(drv.state.peerUp, true);
    for (const ms of [300, 299]) {
      clock.advance(ms);
      await drv.settled();
    }
    assert.is(drv.state.peerUp, true, '1 ms before the timeout');
    clock.advance(1);
    await drv.settled();
    assert.is(drv.state.peerUp, false, 'at the timeout');
    assert.is(drv.state.mono, 600);
    assert.is(clock.pending, 0, 'nothing left armed once the peer is lost');
  } finally {
    drv.detach();
    await log.close();
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test.run();
