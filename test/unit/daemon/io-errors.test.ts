/**
 * The daemon survives its own I/O errors: a state file that cannot be written (here: a directory squats the
 * temporary file's name, so every write fails with EISDIR, as a full or read-only disk would fail it) holds the
 * module, retried, without ending the daemon; once the write succeeds the module goes on. One Daemon on the fakes
 * (FakeNetwork, FakeScriptRunner, FakeVip, a FakeClock the test moves), driven through its control socket like the CLI.
 * Files: /tmp/tdio-*; removed in `finally`.
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
import type { StatusView } from '../../../src/daemon/views.js';
import { homePaths, resolveHome } from '../../../src/home.js';
import { FakeClock } from '../../../src/platform/clock/fake.js';
import { RETRY_WRITE_MS } from '../../../src/daemon/module-driver.js';
import { FakeScriptRunner } from '../../../src/platform/scripts/fake.js';
import { FakeNetwork } from '../../../src/platform/transport/fake.js';
import { FakeLan, FakeVip } from '../../../src/platform/vip/fake.js';
import { FakeWitness } from '../../../src/platform/witness/fake.js';
import { noMonitor } from '../../../src/daemon/monitor.js';
import { NoFilesReplicator } from '../../../src/replication/none.js';
import { waitFor } from '../wait-for.js';

const CLUSTER_XML = `<cluster><lans><lan name="default">
  <node name="node1" addr="198.51.100.1"/><node name="node2" addr="198.51.100.2"/>
</lan></lans></cluster>
`;
const USERCONFIG_XML = `<safe><service mode="mirror"><heart pulse="100ms" timeout="600ms"><heartbeat name="default"/></heart></service></safe>
`;

test('a state file that cannot be written holds the module and is retried; the daemon keeps answering; the module then goes on', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tdio-'));
  const env = { TANDEM_HOME: path.join(dir, 'home'), TANDEM_RUN_DIR: path.join(dir, 'run'), TANDEM_NODE: 'node1' };
  const home = resolveHome(env);
  fs.mkdirSync(homePaths.moduleDir(home, 'demo'), { recursive: true });
  fs.writeFileSync(homePaths.clusterXml(home), CLUSTER_XML);
  fs.writeFileSync(homePaths.userconfig(home, 'demo'), USERCONFIG_XML);
  await writeKeyFile(homePaths.clusterKey(home), generateKey());
  const net = new FakeNetwork();
  const scripts = new FakeScriptRunner();
  const clock = new FakeClock(); // moved by the test: the retries happen when it says so
  const platform: Platform = {
    clock,
    transport: async (cluster, self, _key, boot) => net.transport(self, cluster.lans.map((l) => l.name), { boot }),
    vip: () => new FakeVip(new FakeLan(), 'node1'),
    scripts: () => scripts,
    witness: () => new FakeWitness(),
    replicator: () => new NoFilesReplicator(),
    monitor: async () => noMonitor(),
    localAddrs: () => ['198.51.100.1'],
    farmFilter: () => new FakeFarmFilter('node1'),
  };
  const sock = homePaths.controlSocket(home);
  const state = async () => ((await controlRequest(sock, 'status', 'demo', undefined, { home: home.root })) as StatusView).modules[0]!;
  const admin = (verb: string) => controlRequest(sock, 'admin', 'demo', { verb, fullsync: false }, { home: home.root, timeoutMs: 20_000 });
  const log = () => fs.readFileSync(homePaths.moduleLog(home, 'demo'), 'utf8');
  const daemon = await Daemon.start(home, env, platform, false);
  try {
    await admin('start');
    await waitFor(async () => (await state()).state === 'WAIT', 5000, 'WAIT');

    const squat = `${homePaths.stateFile(home, 'demo')}.tmp`;
    fs.mkdirSync(squat); // from now on every state write fails (EISDIR)
    const prim = admin('prim'); // needs a new generation, persisted before anything else
    prim.catch(() => {}); // awaited below; a failure before that must not end the test process
    await waitFor(() => /cannot write the state file of demo: EISDIR.*retrying every 1 s/.test(log()), 5000, 'the failure logged');
    for (let retry = 0; retry < 3; retry++) {
      await waitFor(() => clock.pending === 1, 5000, 'the retry waiting on the clock'); // the write failed, nothing else happens
      await state(); // the daemon is alive and answers
      assert.equal(scripts.scripts.filter((x) => x === 'start_prim'), [], 'nothing done before the state is on disk');
      clock.advance(RETRY_WRITE_MS);
    }
    await waitFor(() => clock.pending === 1, 5000, 'still retrying');
    fs.rmdirSync(squat); // the disk works again
    clock.advance(RETRY_WRITE_MS);
    const r = (await prim) as { ok: boolean };
    assert.ok(r.ok);
    await waitFor(async () => (await state()).state === 'ALONE' && scripts.scripts.includes('start_prim'), 5000, 'ALONE once the state is written');
    assert.match(log(), /the state file of demo written after \d+ attempts/);
    const persisted = JSON.parse(fs.readFileSync(homePaths.stateFile(home, 'demo'), 'utf8')) as { gen: unknown };
    assert.ok(persisted.gen, 'the new generation is on disk');
  } finally {
    await daemon.shutdown();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
