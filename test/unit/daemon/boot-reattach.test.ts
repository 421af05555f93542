/**
 * ModuleDriver.boot for a module with <rfs> after a daemon restart (run marker present): reattaching to the live
 * replication host instead of stopping the application, and each way that can go wrong. One driver on fakes (scripts,
 * VIP, a replicator whose `reattach` answers what the test says). Files: /tmp/tdboot-*; removed in `finally`.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseClusterXml } from '../../../src/config/cluster.js';
import { parseUserconfig } from '../../../src/config/userconfig.js';
import { Logger } from '../../../src/daemon/logger.js';
import { ModuleDriver } from '../../../src/daemon/module-driver.js';
import { noMonitor } from '../../../src/daemon/monitor.js';
import { homePaths, type Home } from '../../../src/home.js';
import { FakeClock } from '../../../src/platform/clock/fake.js';
import { FakeScriptRunner } from '../../../src/platform/scripts/fake.js';
import { FakeLan, FakeVip } from '../../../src/platform/vip/fake.js';
import { FakeWitness } from '../../../src/platform/witness/fake.js';
import { NoFilesReplicator } from '../../../src/replication/none.js';
import type { FilesRole, ReattachedFiles } from '../../../src/replication/types.js';

const CLUSTER = parseClusterXml(`<cluster><lans><lan name="default">
  <node name="node1" addr="198.51.100.1"/><node name="node2" addr="198.51.100.2"/>
</lan></lans></cluster>`);
const CFG = parseUserconfig(`<safe><service mode="mirror"><heart pulse="100ms" timeout="600ms"/>
<vip><interface_list><interface><real_interface><virtual_addr addr="198.51.100.10"/></real_interface></interface></interface_list></vip>
<rfs><replicated dir="/srv/x"/></rfs></service></safe>`, 'm', CLUSTER);

class ScriptedReplicator extends NoFilesReplicator {
  roles: FilesRole[] = [];
  constructor(private readonly answer: () => Promise<ReattachedFiles | null>) { super(); }
  override reattach() { return this.answer() as Promise<null>; }
  override async setRole(role: FilesRole) { this.roles.push(role); }
}

async function boot(marker: string | null, answer: () => Promise<ReattachedFiles | null>) {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tdboot-'));
  const home: Home = { root, runDir: path.join(root, 'run') };
  fs.mkdirSync(home.runDir);
  fs.mkdirSync(path.join(root, 'state'));
  if (marker) fs.writeFileSync(homePaths.runMarker(home, 'm'), `${marker} 1\n`);
  // the module was started before (wanted: run), on generation 1@node1
  fs.writeFileSync(homePaths.stateFile(home, 'm'), JSON.stringify({ wanted: 'run', gen: { n: 1, node: 'node1', from: 'WAIT' }, lastState: marker ?? 'STOP' }));
  const lan = new FakeLan();
  const vip = new FakeVip(lan, 'node1');
  if (marker) await vip.acquire('198.51.100.10');
  const scripts = new FakeScriptRunner();
  const replicator = new ScriptedReplicator(answer);
  const log = new Logger(path.join(root, 'm.log'), false);
  const drv = await ModuleDriver.create({
    home, self: 'node1', cluster: CLUSTER, config: CFG, scripts, vip, witness: new FakeWitness(), replicator,
    monitor: noMonitor(), clock: new FakeClock(), send: () => {}, log,
  });
  try {
    await drv.boot();
    await drv.settled();
    await log.close();
    return { drv, scripts, replicator, lan, log: fs.readFileSync(path.join(root, 'm.log'), 'utf8'), marker: fs.existsSync(homePaths.runMarker(home, 'm')) ? fs.readFileSync(homePaths.runMarker(home, 'm'), 'utf8').split(' ')[0] : null };
  } finally {
    drv.detach();
    fs.rmSync(root, { recursive: true, force: true });
  }
}

const PRIMARY_HOST: ReattachedFiles = { role: 'primary', pid: 77, failed: null, behind: null };

test('PRIM with its host serving the primary layout: reattached, nothing stopped, VIP kept', async () => {
  const r = await boot('PRIM', async () => PRIMARY_HOST);
  assert.equal(r.scripts.requests, [], 'no script ran (no stop_prim force)');
  assert.equal(r.replicator.roles, [], 'the layout was not touched');
  assert.ok(r.drv.vipsHeld.has("198.51.100.10"), `the VIP is counted as held: ${r.drv.state.state} ${r.log}`);
  assert.is(r.drv.state.state, 'PRIM');
  assert.ok(r.drv.state.reattach, 'the engine reattaches');
  assert.match(r.log, /reattached to the replication host of m \(pid 77, primary layout\): the application keeps its mount/);
});

test('a failure the host held while no daemon was attached is posted after boot: the engine keeps it to act on', async () => {
  const r = await boot('PRIM', async () => ({ ...PRIMARY_HOST, failed: 'node2 closed the channel' }));
  assert.is(r.drv.state.state, 'PRIM');
  assert.is(r.drv.state.replicationFailed, 'node2 closed the channel');
});

test('PRIM but no host any more: stop_prim force, VIP released, marker removed, leftovers cleaned; boots as after a crash', async () => {
  const r = await boot('PRIM', async () => null);
  const stop = r.scripts.requests.find((q) => q.script === 'stop_prim');
  assert.ok(stop, 'stop_prim ran');
  assert.equal(stop!.args, ['force', 'PRIM', 'STOP', 'stop']);
  assert.equal(r.lan.holders('198.51.100.10'), [], 'VIP released');
  assert.is.not(r.marker, 'PRIM', 'the PRIM marker is gone (the module starts again: WAIT)');
  assert.is(r.drv.state.reattach, false, 'not reattached');
  assert.ok(r.replicator.roles.includes('off'), 'dead mounts removed (setRole off)');
  assert.match(r.log, /no longer served \(the replication host is gone\): the application is stopped \(stop_prim force\)/);
});

test('a host in another layout than the marker implies is left (setRole off), and the module recovers as after a crash', async () => {
  const r = await boot('PRIM', async () => ({ ...PRIMARY_HOST, role: 'secondary' }));
  assert.match(r.log, /serves the secondary layout while the module was PRIM: that layout is left/);
  assert.ok(r.scripts.requests.some((q) => q.script === 'stop_prim'));
  assert.ok(r.replicator.roles.includes('off'));
});

test('a host serving a layout while the module was not running (no marker) is left', async () => {
  const r = await boot(null, async () => PRIMARY_HOST);
  assert.match(r.log, /serves the primary layout while the module was not running: that layout is left/);
  assert.ok(r.replicator.roles.includes('off'));
  assert.equal(r.scripts.requests.filter((q) => q.script === 'stop_prim'), []);
});

test('reattach failing is logged and treated as no host', async () => {
  const r = await boot('SECOND', async () => { throw new Error('EACCES on the socket'); });
  assert.match(r.log, /reattaching the replication host of m: EACCES on the socket/);
  assert.ok(r.replicator.roles.includes('off'));
});

test.run();
