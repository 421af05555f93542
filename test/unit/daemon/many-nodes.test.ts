/**
 * Three and four real Daemons in one process on the fakes (FakeNetwork heartbeats on one LAN, FakeLan VIPs,
 * FakeScriptRunners, FakeFarmFilters, the real clock): mirror modules on two nodes of a larger cluster (the peer is
 * learnt from the other nodes' inventories), a mirror module installed on three nodes (refused), and a farm module
 * on every node (its buckets partitioned among the UP nodes). Commands go through the control socket as the CLI's.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { controlRequest } from '../../../src/daemon/control.js';
import { Daemon, type Platform } from '../../../src/daemon/daemon.js';
import { generateKey, writeKeyFile } from '../../../src/daemon/key.js';
import { peerFile } from '../../../src/daemon/mirror-peer.js';
import type { StatusView } from '../../../src/daemon/views.js';
import { bucketOwners, BUCKETS } from '../../../src/engine/farm/buckets.js';
import { homePaths, resolveHome, type Home } from '../../../src/home.js';
import { realClock } from '../../../src/platform/clock/real.js';
import { FakeFarmFilter } from '../../../src/platform/farm/fake.js';
import { FakeScriptRunner } from '../../../src/platform/scripts/fake.js';
import { FakeNetwork } from '../../../src/platform/transport/fake.js';
import { FakeLan, FakeVip } from '../../../src/platform/vip/fake.js';
import { FakeWitness } from '../../../src/platform/witness/fake.js';
import { noMonitor } from '../../../src/daemon/monitor.js';
import { NoFilesReplicator } from '../../../src/replication/none.js';
import { waitFor } from '../wait-for.js';

const SOON = 8000;
const addr = (i: number) => `198.51.100.${i}`;

function clusterXml(n: number): string {
  const nodes = Array.from({ length: n }, (_, i) => `<node name="node${i + 1}" addr="${addr(i + 1)}"/>`).join('');
  return `<cluster><lans><lan name="default">${nodes}</lan></lans></cluster>`;
}

const mirrorXml = (vip: string, defaultprim = 'alone') => `<safe><service mode="mirror" defaultprim="${defaultprim}">
  <heart pulse="100ms" timeout="600ms"><heartbeat name="default"/></heart>
  <vip><interface_list><interface><real_interface><virtual_addr addr="${vip}" where="one_side_alias"/></real_interface></interface></interface_list></vip>
</service></safe>`;

const farmXml = (powers: number[]) => `<safe><service mode="farm">
  <farm pulse="100ms" timeout="600ms"><lan name="default"/></farm>
  <vip><interface_list><interface><virtual_interface type="vmac_directed"><virtual_addr addr="198.51.100.20" where="alias"/></virtual_interface></interface></interface_list>
  <loadbalancing_list><group name="web"><cluster>${powers.map((p, i) => `<host name="node${i + 1}" power="${p}"/>`).join('')}</cluster>
  <rule port="8080" proto="tcp" filter="on_addr"/></group></loadbalancing_list></vip>
</service></safe>`;

interface Node {
  name: string;
  env: NodeJS.ProcessEnv;
  home: Home;
  filter: FakeFarmFilter;
  daemon: Daemon | null;
}

class Cluster {
  readonly net = new FakeNetwork();
  readonly lan = new FakeLan();
  readonly nodes: Node[] = [];
  private constructor(readonly dir: string) {}

  /** `modules[i]`: module name → userconfig.xml installed on node i+1 */
  static async create(modules: Record<string, string>[]): Promise<Cluster> {
    const c = new Cluster(fs.mkdtempSync(path.join(os.tmpdir(), 'tdmany-')));
    const key = generateKey();
    for (let i = 0; i < modules.length; i++) {
      const name = `node${i + 1}`;
      const env = { TANDEM_HOME: path.join(c.dir, name), TANDEM_RUN_DIR: path.join(c.dir, `${name}-run`), TANDEM_NODE: name };
      const home = resolveHome(env);
      fs.mkdirSync(home.root, { recursive: true });
      fs.writeFileSync(homePaths.clusterXml(home), clusterXml(modules.length));
      await writeKeyFile(homePaths.clusterKey(home), key);
      for (const [m, xml] of Object.entries(modules[i]!)) {
        fs.mkdirSync(homePaths.moduleDir(home, m), { recursive: true });
        fs.writeFileSync(homePaths.userconfig(home, m), xml);
      }
      c.nodes.push({ name, env, home, filter: new FakeFarmFilter(name), daemon: null });
    }
    for (const n of c.nodes) {
      const platform: Platform = {
        clock: realClock,
        transport: async (cluster, self, _key, boot) => c.net.transport(self, cluster.lans.map((l) => l.name), { boot }),
        vip: () => new FakeVip(c.lan, n.name),
        scripts: () => new FakeScriptRunner(),
        witness: () => new FakeWitness(),
        replicator: () => new NoFilesReplicator(),
        monitor: async () => noMonitor(),
        localAddrs: () => [addr(Number(n.name.slice(4)))],
        farmFilter: () => n.filter,
      };
      n.daemon = await Daemon.start(n.home, n.env, platform, false);
    }
    return c;
  }

  node(name: string): Node { return this.nodes.find((n) => n.name === name)!; }

  admin(name: string, module: string, verb: string): Promise<{ ok: boolean; message: string }> {
    const h = this.node(name).home;
    return controlRequest(homePaths.controlSocket(h), 'admin', module, { verb, fullsync: false }, { home: h.root }) as Promise<{ ok: boolean; message: string }>;
  }

  status(name: string): Promise<StatusView> {
    const h = this.node(name).home;
    return controlRequest(homePaths.controlSocket(h), 'status', undefined, undefined, { home: h.root }) as Promise<StatusView>;
  }

  async close() {
    for (const n of this.nodes) await n.daemon?.shutdown();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

test('a mirror module on two nodes of a three-node cluster: the peer is learnt, recorded, and the pair runs it', async () => {
  const c = await Cluster.create([{ db: mirrorXml('198.51.100.30') }, {}, { db: mirrorXml('198.51.100.30') }]);
  try {
    for (const [self, peer] of [['node1', 'node3'], ['node3', 'node1']] as const) {
      await waitFor(async () => (await c.status(self)).modules.find((m) => m.module === 'db')?.peer.node === peer, SOON, `${self} runs db with ${peer}`);
      assert.is(fs.readFileSync(peerFile(c.node(self).home, 'db'), 'utf8').trim(), peer, 'the peer is recorded');
    }
    assert.equal((await c.status('node2')).modules, [], 'node2 has nothing of db');
    // what `tandem install` asks before installing a third copy
    const h2 = c.node('node2').home;
    await waitFor(async () => {
      const r = await controlRequest(homePaths.controlSocket(h2), 'holders', 'db', undefined, { home: h2.root }) as { holders: string[] };
      return r.holders.join() === 'node1,node3';
    }, SOON, 'node2 hears db held by node1 and node3');
    assert.is((await c.admin('node1', 'db', 'prim')).ok, true);
    await waitFor(async () => (await c.status('node1')).modules[0]?.state === 'ALONE', SOON, 'node1 ALONE');
    assert.is((await c.admin('node3', 'db', 'second')).ok, true);
    await waitFor(async () => {
      const [a, b] = [(await c.status('node1')).modules[0], (await c.status('node3')).modules[0]];
      return a?.state === 'PRIM' && a.ready && b?.state === 'SECOND' && b.ready;
    }, SOON, 'node1 PRIM, node3 SECOND');
  } finally {
    await c.close();
  }
});

test('a mirror module installed on three nodes: a clear error on each, nothing started; uninstalled from one, the other two run it', async () => {
  const db = mirrorXml('198.51.100.30');
  const c = await Cluster.create([{ db }, { db }, { db }]);
  try {
    for (const n of ['node1', 'node2', 'node3']) {
      const p = await waitFor(async () => (await c.status(n)).pending.find((x) => /installed on node1, node2, node3/.test(x.reason)), SOON, `${n} refuses db`);
      assert.match(p.reason, /a mirror module runs on exactly two nodes\. Uninstall it from all but two/);
      assert.equal((await c.status(n)).modules, []);
    }
    const e = await c.admin('node1', 'db', 'prim').then(() => null, (x: Error) => x);
    assert.match(e?.message ?? '', /installed but not running on node1: mirror module db is installed on node1, node2, node3/);
    const h = c.node('node2').home;
    await controlRequest(homePaths.controlSocket(h), 'unload', 'db', undefined, { home: h.root });
    fs.rmSync(homePaths.moduleDir(h, 'db'), { recursive: true });
    for (const [self, peer] of [['node1', 'node3'], ['node3', 'node1']] as const) {
      await waitFor(async () => (await c.status(self)).modules.find((m) => m.module === 'db')?.peer.node === peer, SOON, `${self} runs db with ${peer}`);
    }
  } finally {
    await c.close();
  }
});

test('a mirror module whose defaultprim names the third node: a clear error on both of its pair, nothing started', async () => {
  const db = mirrorXml('198.51.100.30', 'node2');
  const c = await Cluster.create([{ db }, {}, { db }]);
  try {
    for (const n of ['node1', 'node3']) {
      const bad = await waitFor(async () => (await c.status(n)).invalid.find((x) => x.module === 'db'), SOON, `${n} refuses db`);
      assert.match(bad.error, /defaultprim="node2"> names node2, which does not run it: it runs on node1 and node3\. Set defaultprim to node1, node3 or "alone"/);
      assert.equal((await c.status(n)).modules, [], 'nothing started');
    }
    const e = await c.admin('node1', 'db', 'prim').then(() => null, (x: Error) => x);
    assert.match(e?.message ?? '', /defaultprim="node2"/);
  } finally {
    await c.close();
  }
});

test('a farm module on three nodes: every bucket accepted by the node bucketOwners names; a stopped node\'s buckets go to the others', async () => {
  const web = farmXml([1, 1, 2]);
  const c = await Cluster.create([{ web }, { web }, { web }]);
  const hosts = [{ name: 'node1', power: 1 }, { name: 'node2', power: 1 }, { name: 'node3', power: 2 }];
  const accepted = () => Array.from({ length: BUCKETS }, (_, b) => c.nodes.filter((n) => n.filter.table('web')?.owned.includes(b)).map((n) => n.name).join('+') || null);
  try {
    for (const n of c.nodes) assert.is((await c.admin(n.name, 'web', 'start')).ok, true);
    await waitFor(() => JSON.stringify(accepted()) === JSON.stringify(bucketOwners(hosts)), SOON, 'the buckets partitioned 1/1/2');
    const st = await c.status('node3');
    assert.equal(st.farms[0]!.members, ['node1', 'node2', 'node3']);
    assert.equal(st.farms[0]!.groups[0]!.owned, bucketOwners(hosts).filter((o) => o === 'node3').length);
    const before = bucketOwners(hosts);
    assert.is((await c.admin('node2', 'web', 'stop')).ok, true);
    const after = bucketOwners(hosts.filter((h) => h.name !== 'node2'));
    await waitFor(() => JSON.stringify(accepted()) === JSON.stringify(after), SOON, 'node2\'s buckets taken by node1 and node3');
    for (let b = 0; b < BUCKETS; b++) if (before[b] !== 'node2') assert.is(after[b], before[b], `bucket ${b} moved`);
    assert.is(c.node('node2').filter.table('web'), undefined, 'a stopped node has no filter');
    const e = await c.admin('node1', 'web', 'swap').catch((x: Error) => x);
    assert.match((e as Error).message, /farm module: every node runs it, there is no primary/);
  } finally {
    await c.close();
  }
});

test('active/active on three nodes: a farm and two mirrors side by side; a VIP shared by a farm and a mirror is refused', async () => {
  const web = farmXml([1, 1, 1]);
  const a = mirrorXml('198.51.100.31', 'node1');
  const b = mirrorXml('198.51.100.32', 'node2');
  const clash = mirrorXml('198.51.100.20');
  const c = await Cluster.create([{ web, a, clash }, { web, a, b }, { web, b }]);
  try {
    await waitFor(async () => (await c.status('node1')).invalid.some((x) => x.module === 'clash' && /198\.51\.100\.20/.test(x.error)), SOON, 'clash refused on node1');
    for (const [self, m, peer] of [['node1', 'a', 'node2'], ['node2', 'a', 'node1'], ['node2', 'b', 'node3'], ['node3', 'b', 'node2']] as const) {
      await waitFor(async () => (await c.status(self)).modules.find((x) => x.module === m)?.peer.node === peer, SOON, `${self} runs ${m} with ${peer}`);
    }
  } finally {
    await c.close();
  }
});

test.run();
