/**
 * Two modules with one `<rfs port>` (both replication hosts would bind it): the daemon loads the first, refuses the
 * second with what to do, keeps answering, and `tandem status` without -m still shows the loaded module and lists the
 * refused one apart. One Daemon on the fakes, driven through its control socket. Files: /tmp/tdport-*; removed in
 * `finally`.
 */
import { FakeFarmFilter } from '../../../src/platform/farm/fake.js';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { controlRequest } from '../../../src/daemon/control.js';
import { Daemon, type Platform } from '../../../src/daemon/daemon.js';
import { generateKey, writeKeyFile } from '../../../src/daemon/key.js';
import { noMonitor } from '../../../src/daemon/monitor.js';
import type { StatusView } from '../../../src/daemon/views.js';
import { homePaths, resolveHome } from '../../../src/home.js';
import { FakeClock } from '../../../src/platform/clock/fake.js';
import { FakeScriptRunner } from '../../../src/platform/scripts/fake.js';
import { FakeNetwork } from '../../../src/platform/transport/fake.js';
import { FakeLan, FakeVip } from '../../../src/platform/vip/fake.js';
import { FakeWitness } from '../../../src/platform/witness/fake.js';
import { NoFilesReplicator } from '../../../src/replication/none.js';
import { formatStatus } from '../../../src/services/status.js';

const CLUSTER_XML = `<cluster><lans><lan name="default">
  <node name="node1" addr="198.51.100.1"/><node name="node2" addr="198.51.100.2"/>
</lan></lans></cluster>
`;
const userconfig = (dir: string) => `<safe><service mode="mirror"><heart pulse="100ms" timeout="600ms"><heartbeat name="default"/></heart>
<rfs port="4999"><replicated dir="${dir}"/></rfs></service></safe>
`;

test('a second module on the same <rfs port> is refused at load with what to do; status still shows the first and lists it apart', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tdport-'));
  const env = { TANDEM_HOME: path.join(dir, 'home'), TANDEM_RUN_DIR: path.join(dir, 'run'), TANDEM_NODE: 'node1' };
  const home = resolveHome(env);
  fs.mkdirSync(path.dirname(homePaths.clusterXml(home)), { recursive: true });
  fs.writeFileSync(homePaths.clusterXml(home), CLUSTER_XML);
  for (const m of ['alpha', 'beta']) {
    fs.mkdirSync(homePaths.moduleDir(home, m), { recursive: true });
    fs.writeFileSync(homePaths.userconfig(home, m), userconfig(`/srv/${m}`));
  }
  await writeKeyFile(homePaths.clusterKey(home), generateKey());
  const net = new FakeNetwork();
  const platform: Platform = {
    clock: new FakeClock(),
    transport: async (cluster, self, _key, boot) => net.transport(self, cluster.lans.map((l) => l.name), { boot }),
    vip: () => new FakeVip(new FakeLan(), 'node1'),
    scripts: () => new FakeScriptRunner(),
    witness: () => new FakeWitness(),
    replicator: () => new NoFilesReplicator(),
    monitor: async () => noMonitor(),
    localAddrs: () => ['198.51.100.1'],
    farmFilter: () => new FakeFarmFilter('node1'),
  };
  const sock = homePaths.controlSocket(home);
  const daemon = await Daemon.start(home, env, platform, false);
  try {
    const all = (await controlRequest(sock, 'status', undefined, undefined, { home: home.root })) as StatusView;
    assert.equal(all.modules.map((m) => m.module), ['alpha']);
    assert.is(all.invalid.length, 1);
    assert.is(all.invalid[0]!.module, 'beta');
    assert.match(all.invalid[0]!.error, /module beta: its replication port 4999 is also module alpha's\. Set <rfs port="…"> in the userconfig\.xml of one of them/);
    assert.match(formatStatus(all), /beta: not loaded, its configuration is invalid: module beta: its replication port 4999/);
    const one = await controlRequest(sock, 'status', 'beta', undefined, { home: home.root }).then(() => null, (e: Error) => e);
    assert.ok(one, 'status -m beta fails');
    assert.match(one!.message, /module beta is installed but its configuration is invalid: .*replication port 4999/);
    const cfg = await controlRequest(sock, 'config', 'beta', undefined, { home: home.root }).then(() => null, (e: Error) => e);
    assert.match(cfg?.message ?? '', /replication port 4999 is also module alpha's/, '`tandem config -m beta` refuses it too');
    assert.match(fs.readFileSync(homePaths.daemonLog(home), 'utf8'), / module beta: its replication port 4999 is also module alpha's/);
  } finally {
    await daemon.shutdown();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
