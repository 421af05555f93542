/**
 * Two real Daemons in one process on the fakes: a FakeNetwork for heartbeats (LANs `default` and `replication`), one
 * FakeLan for the virtual IP, FakeScriptRunners, the real clock. Every command goes through the control socket as the
 * CLI sends it (`controlRequest` on $TANDEM_HOME/control.sock).
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
import type { ModuleView, StatusView } from '../../../src/daemon/views.js';
import { UserError } from '../../../src/errors.js';
import { homePaths, resolveHome, type Home } from '../../../src/home.js';
import { realClock } from '../../../src/platform/clock/real.js';
import { FakeScriptRunner } from '../../../src/platform/scripts/fake.js';
import { FakeNetwork } from '../../../src/platform/transport/fake.js';
import { FakeLan, FakeVip } from '../../../src/platform/vip/fake.js';
import type { ProbeResult, VipAdapter } from '../../../src/platform/vip/types.js';
import { FakeWitness } from '../../../src/platform/witness/fake.js';
import { noMonitor } from '../../../src/daemon/monitor.js';
import { NoFilesReplicator } from '../../../src/replication/none.js';
import { waitFor } from '../wait-for.js';

const VIP = '198.51.100.10';
const TIMEOUT_MS = 600;
/** generous bound for anything that should take a few heartbeats */
const SOON = 5000;

type NodeName = 'node1' | 'node2';
const ADDRS: Record<NodeName, { def: string; repl: string }> = {
  node1: { def: '198.51.100.1', repl: '203.0.113.1' },
  node2: { def: '198.51.100.2', repl: '203.0.113.2' },
};

const CLUSTER_XML = `<?xml version="1.0"?>
<cluster>
  <lans>
    <lan name="default">
      <node name="node1" addr="${ADDRS.node1.def}"/>
      <node name="node2" addr="${ADDRS.node2.def}"/>
    </lan>
    <lan name="replication">
      <node name="node1" addr="${ADDRS.node1.repl}"/>
      <node name="node2" addr="${ADDRS.node2.repl}"/>
    </lan>
  </lans>
</cluster>
`;

const USERCONFIG_XML = `<?xml version="1.0"?>
<safe>
  <service mode="mirror">
    <heart pulse="100ms" timeout="600ms">
      <heartbeat name="default"/>
      <heartbeat name="replication"/>
    </heart>
    <vip>
      <interface_list>
        <interface check="on">
          <real_interface>
            <virtual_addr addr="${VIP}" where="one_side_alias"/>
          </real_interface>
        </interface>
      </interface_list>
    </vip>
  </service>
</safe>
`;

/**
 * FakeVip as seen from one node of a partitioned LAN: while `pair.partitioned`, ARP does not cross the cut, so a probe
 * does not see the address held on the other side (the real split-brain condition).
 */
class PartitionedVip implements VipAdapter {
  constructor(private readonly fake: FakeVip, private readonly pair: Pair) {}
  async probe(addr: string): Promise<ProbeResult> {
    const gate = this.pair.probeGate;
    if (gate) {
      gate.entered.push(this.fake.node);
      await gate.open;
    }
    return this.pair.partitioned ? { inUse: false } : this.fake.probe(addr);
  }
  acquire(addr: string) { return this.fake.acquire(addr); }
  release(addr: string) { return this.fake.release(addr); }
  holds(addr: string) { return this.fake.holds(addr); }
}

interface Node {
  name: NodeName;
  env: NodeJS.ProcessEnv;
  home: Home;
  scripts: FakeScriptRunner;
  platform: Platform;
  daemon: Daemon | null;
}

class Pair {
  readonly net = new FakeNetwork();
  readonly lan = new FakeLan();
  partitioned = false;
  /** when set, VIP probes wait for `open` (a slow arping); `entered` lists the nodes whose probe is waiting */
  probeGate: { open: Promise<void>; entered: string[] } | null = null;
  readonly nodes = {} as Record<NodeName, Node>;

  private constructor(readonly dir: string) {}

  /** Two homes with the same cluster.xml, cluster.key and module `demo`; no daemon started yet. */
  static async create(): Promise<Pair> {
    const p = new Pair(fs.mkdtempSync(path.join(os.tmpdir(), 'td2d-')));
    const key = generateKey();
    for (const name of ['node1', 'node2'] as const) {
      const env = { TANDEM_HOME: path.join(p.dir, name), TANDEM_RUN_DIR: path.join(p.dir, `${name}-run`), TANDEM_NODE: name };
      const home = resolveHome(env);
      fs.mkdirSync(homePaths.moduleDir(home, 'demo'), { recursive: true });
      fs.writeFileSync(homePaths.clusterXml(home), CLUSTER_XML);
      fs.writeFileSync(homePaths.userconfig(home, 'demo'), USERCONFIG_XML);
      await writeKeyFile(homePaths.clusterKey(home), key);
      const scripts = new FakeScriptRunner();
      const platform: Platform = {
        clock: realClock,
        transport: async (cluster, self, _key, boot) => p.net.transport(self, cluster.lans.map((l) => l.name), { boot }),
        vip: () => new PartitionedVip(new FakeVip(p.lan, name), p),
        scripts: () => scripts,
        witness: () => new FakeWitness(),
        replicator: () => new NoFilesReplicator(),
        monitor: async () => noMonitor(),
        localAddrs: () => [ADDRS[name].def, ADDRS[name].repl],
        farmFilter: () => new FakeFarmFilter(name),
      };
      p.nodes[name] = { name, env, home, scripts, platform, daemon: null };
    }
    return p;
  }

  async start(name: NodeName): Promise<Daemon> {
    const n = this.nodes[name];
    n.daemon = await Daemon.start(n.home, n.env, n.platform, false);
    return n.daemon;
  }

  async shutdown(name: NodeName): Promise<void> {
    const d = this.nodes[name].daemon;
    this.nodes[name].daemon = null;
    await d?.shutdown();
  }

  /** What `tandem <verb> -m demo` sends. */
  admin(name: NodeName, verb: string): Promise<{ ok: boolean; message: string }> {
    const h = this.nodes[name].home;
    return controlRequest(homePaths.controlSocket(h), 'admin', 'demo', { verb, fullsync: false }, { home: h.root }) as Promise<{ ok: boolean; message: string }>;
  }

  /** What `tandem status --json` prints. */
  status(name: NodeName, module?: string): Promise<StatusView> {
    const h = this.nodes[name].home;
    return controlRequest(homePaths.controlSocket(h), 'status', module, undefined, { home: h.root }) as Promise<StatusView>;
  }

  async mod(name: NodeName): Promise<ModuleView> {
    return (await this.status(name, 'demo')).modules[0]!;
  }

  /** Waits until `name` is settled (ready) in `state`, with `reason` when it is WAIT. */
  settled(name: NodeName, state: string, reason?: string, ms = SOON): Promise<ModuleView> {
    return waitFor(async () => {
      const m = await this.mod(name);
      return m.state === state && m.ready && (reason === undefined || m.waitReason === reason) ? m : null;
    }, ms, `${name} settled in ${state}${reason ? ` (${reason})` : ''}`);
  }

  /** Waits until node1 is settled in `s1` and node2 in `s2`, and each has heard the other's settled state. */
  converged(s1: string, s2: string, ms = SOON): Promise<[ModuleView, ModuleView]> {
    return waitFor(async () => {
      const a = await this.mod('node1');
      const b = await this.mod('node2');
      const ok = a.state === s1 && a.ready && b.state === s2 && b.ready
        && a.peer.reachable && a.peer.state === s2 && a.peer.ready === true
        && b.peer.reachable && b.peer.state === s1 && b.peer.ready === true;
      return ok ? ([a, b] as [ModuleView, ModuleView]) : null;
    }, ms, `node1 ${s1} and node2 ${s2}, each seen by the other`);
  }

  cutAll(): void {
    this.partitioned = true;
    this.net.cut('default');
    this.net.cut('replication');
  }

  healAll(): void {
    this.partitioned = false;
    this.net.heal();
  }

  moduleLog(name: NodeName): string {
    return fs.readFileSync(homePaths.moduleLog(this.nodes[name].home, 'demo'), 'utf8');
  }

  stateFile(name: NodeName): Record<string, unknown> {
    return JSON.parse(fs.readFileSync(homePaths.stateFile(this.nodes[name].home, 'demo'), 'utf8')) as Record<string, unknown>;
  }

  async close(): Promise<void> {
    try {
      for (const name of ['node1', 'node2'] as const) await this.shutdown(name).catch(() => {});
    } finally {
      fs.rmSync(this.dir, { recursive: true, force: true });
    }
  }
}

async function rejects(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a rejection');
}

const startPrims = (s: FakeScriptRunner) => s.requests.filter((r) => r.script === 'start_prim');

// ───────────────────────── one pair, driven through its whole life (tests run in order) ─────────────────────────

let pair: Pair;

test.before(async () => {
  pair = await Pair.create();
  await pair.start('node1');
  await pair.start('node2');
});

test.after(async () => {
  await pair.close();
});

test('installed but never started: both STOP, nothing run, no VIP', async () => {
  for (const n of ['node1', 'node2'] as const) {
    const m = await pair.settled(n, 'STOP');
    assert.is(m.generation, null);
    assert.equal(pair.nodes[n].scripts.requests, []);
  }
  assert.equal(pair.lan.holders(VIP), []);
});

test('first start: both WAIT with waitReason first-start', async () => {
  for (const n of ['node1', 'node2'] as const) {
    const r = await pair.admin(n, 'start');
    assert.ok(r.ok);
    assert.match(r.message, /starting demo/);
  }
  for (const n of ['node1', 'node2'] as const) {
    const m = await pair.settled(n, 'WAIT', 'first-start');
    assert.is(m.peer.reachable, true);
    assert.is(m.peer.state, 'WAIT');
    assert.equal(pair.nodes[n].scripts.scripts, ['prestart']);
  }
  assert.equal(pair.lan.holders(VIP), []);
});

test('prim on node1: ALONE, VIP on node1, start_prim WAIT ALONE start with the module environment', async () => {
  const r = await pair.admin('node1', 'prim');
  assert.ok(r.ok);
  const m = await pair.settled('node1', 'ALONE');
  assert.equal(pair.lan.holders(VIP), ['node1']);
  assert.is(m.vips[0]!.holder, 'node1');
  const sp = startPrims(pair.nodes.node1.scripts);
  assert.is(sp.length, 1);
  assert.equal(sp[0]!.args, ['WAIT', 'ALONE', 'start']);
  assert.is(sp[0]!.module, 'demo');
  assert.is(sp[0]!.env.TANDEM_MODULE, 'demo');
  assert.is(sp[0]!.env.TANDEM_NODE, 'node1');
  assert.is(sp[0]!.env.TANDEM_HOME, pair.nodes.node1.home.root);
  // node2 never had data: it does not copy silently, it waits for `tandem second`
  await pair.settled('node2', 'WAIT', 'first-start');
  assert.equal(startPrims(pair.nodes.node2.scripts), []);
});

test('second on node2: node1 PRIM, node2 SECOND; status --json shape', async () => {
  const r = await pair.admin('node2', 'second');
  assert.ok(r.ok);
  const [m1, m2] = await pair.converged('PRIM', 'SECOND');
  assert.ok(pair.nodes.node2.scripts.scripts.includes('start_second'));

  const v1 = await pair.status('node1');
  assert.is(v1.node, 'node1');
  assert.is(v1.pid, process.pid);
  assert.ok(v1.heartbeats.sent > 0 && v1.heartbeats.received > 0, 'heartbeats counted');
  assert.is(v1.modules.length, 1);
  for (const [m, self, peer, peerState] of [[m1, 'node1', 'node2', 'SECOND'], [m2, 'node2', 'node1', 'PRIM']] as const) {
    assert.is(m.module, 'demo');
    assert.is(m.node, self);
    assert.is(m.waitReason, null);
    assert.is(m.consistent, true);
    assert.is(m.reintegration, null);
    assert.equal(m.alarms, []);
    assert.is(m.peer.node, peer);
    assert.is(m.peer.reachable, true);
    assert.is(m.peer.state, peerState);
    assert.is(m.peer.ready, true);
    assert.equal(m.peer.lans.map((l) => [l.name, l.up]), [['default', true], ['replication', true]]);
    for (const l of m.peer.lans) assert.ok(typeof l.lastHeardMsAgo === 'number' && l.lastHeardMsAgo < TIMEOUT_MS, `${self} heard ${l.name} recently`);
    assert.equal(m.vips, [{ addr: VIP, holder: 'node1' }]);
  }
  assert.match(m1.generation ?? '', /^\d+@node1$/);
  assert.is(m2.generation, m1.generation);
  assert.equal(pair.lan.holders(VIP), ['node1']);
});

test('state/demo.json holds the generation on both nodes', async () => {
  const gen = (await pair.mod('node1')).generation!;
  const [n, node] = gen.split('@');
  for (const name of ['node1', 'node2'] as const) {
    const want = name === 'node1' ? 'PRIM' : 'SECOND';
    const p = await waitFor(() => {
      const s = pair.stateFile(name);
      return s.lastState === want ? s : null;
    }, SOON, `${name} persisted lastState ${want}`);
    assert.equal(p.gen, { n: Number(n), node, from: 'WAIT' });
    assert.is(p.wanted, 'run');
    assert.is(p.consistent, true);
  }
});

test('every LAN cut: node2 goes ALONE after the timeout; the VIP is on both nodes (split brain)', async () => {
  pair.cutAll();
  assert.is((await pair.mod('node2')).state, 'SECOND', 'nothing happens before the timeout');
  const m2alone = await pair.settled('node2', 'ALONE');
  // judged by the daemon's own clock: it took over only once every LAN had been silent for the whole timeout
  for (const l of m2alone.peer.lans) {
    assert.ok(typeof l.lastHeardMsAgo === 'number' && l.lastHeardMsAgo >= TIMEOUT_MS,
      `node2 went ALONE with ${l.name} last heard ${l.lastHeardMsAgo} ms ago, not after the ${TIMEOUT_MS} ms timeout`);
  }
  const m1 = await pair.settled('node1', 'ALONE');
  assert.is(m1.peer.reachable, false);
  assert.equal(m1.peer.lans.map((l) => l.up), [false, false]);
  assert.equal(m1.alarms.map((a) => a.code), ['peer-lost']);
  assert.equal(pair.lan.holders(VIP).sort(), ['node1', 'node2']);
  const m2 = await pair.mod('node2');
  assert.equal(m2.vips, [{ addr: VIP, holder: 'node2' }]);
  assert.ok(m2.generation !== m1.generation, 'both wrote: diverged generations');
  assert.equal(startPrims(pair.nodes.node2.scripts).at(-1)!.args, ['SECOND', 'ALONE', 'start']);
});

test('admin error: swap without a reachable peer is refused, naming both states', async () => {
  const e = await rejects(pair.admin('node2', 'swap'));
  assert.instance(e, UserError);
  assert.match(e.message, /swap needs PRIM and SECOND both ready/);
  assert.match(e.message, /node2 is ALONE/);
  assert.match(e.message, /node1 is unreachable/);
  assert.is((await pair.mod('node2')).state, 'ALONE');
});

test('heal: node2 yields to node1 (which kept the application) and only node1 holds the VIP', async () => {
  pair.healAll();
  const [m1, m2] = await pair.converged('PRIM', 'SECOND');
  assert.equal(pair.lan.holders(VIP), ['node1']);
  assert.is(m2.generation, m1.generation);
  assert.ok(pair.nodes.node2.scripts.requests.some((r) => r.script === 'stop_prim' && r.args.join(' ') === 'ALONE SECOND stop'));
  // node2 (the loser) raised the split-brain alarm and cleared it once resynced; node1 raises it only if it saw node2
  // still running before node2 yielded, and then clears it too.
  await waitFor(() => /alarm cleared: split-brain/.test(pair.moduleLog('node2')), SOON, 'node2 log: split-brain cleared');
  for (const n of ['node1', 'node2'] as const) {
    const log = pair.moduleLog(n);
    const raised = log.indexOf('ALARM split-brain');
    if (n === 'node2') assert.ok(raised >= 0, 'node2 raised split-brain');
    if (raised >= 0) {
      await waitFor(() => pair.moduleLog(n).indexOf('alarm cleared: split-brain', raised) > raised, SOON, `${n} log: split-brain cleared after raised`);
    }
    assert.not.ok((await pair.mod(n)).alarms.some((a) => a.code === 'split-brain'), `${n} status has no split-brain alarm`);
  }
});

test('swap: node2 becomes PRIM with the VIP, node1 SECOND', async () => {
  const before = startPrims(pair.nodes.node2.scripts).length;
  const r = await pair.admin('node2', 'swap');
  assert.ok(r.ok);
  assert.match(r.message, /node2 takes the primary role from node1/);
  await pair.converged('SECOND', 'PRIM');
  assert.equal(pair.lan.holders(VIP), ['node2']);
  const sp = startPrims(pair.nodes.node2.scripts);
  assert.is(sp.length, before + 1);
  assert.equal(sp.at(-1)!.args, ['SECOND', 'PRIM', 'start']);
  assert.ok(pair.nodes.node1.scripts.requests.some((x) => x.script === 'stop_prim' && x.args.join(' ') === 'PRIM SECOND stop'));
  assert.is((await pair.mod('node1')).vips[0]!.holder, 'node2');
});

test('daemon restart with the same home reattaches: PRIM again, start_prim not run again', async () => {
  const runner = pair.nodes.node2.scripts;
  const before = runner.requests.length;
  const gen = (await pair.mod('node2')).generation;
  await pair.shutdown('node2');
  assert.not.ok(fs.existsSync(homePaths.controlSocket(pair.nodes.node2.home)), 'control socket removed');
  assert.ok(fs.existsSync(homePaths.runMarker(pair.nodes.node2.home, 'demo')), 'run marker kept');
  assert.equal(pair.lan.holders(VIP), ['node2'], 'the VIP stays while the daemon is down');
  await pair.start('node2');
  const [, m] = await pair.converged('SECOND', 'PRIM');
  assert.is(m.generation, gen);
  assert.equal(m.vips, [{ addr: VIP, holder: 'node2' }]);
  assert.equal(runner.requests.slice(before), [], 'no script ran on reattach');
  assert.equal(pair.lan.holders(VIP), ['node2']);
  assert.match(pair.moduleLog('node2'), /reattaching as PRIM/);
});

// ───────────────────────── fresh pairs ─────────────────────────

/** A new pair brought to node1 PRIM / node2 SECOND through the control sockets. */
async function formedPair(): Promise<Pair> {
  const p = await Pair.create();
  try {
    await p.start('node1');
    await p.start('node2');
    await p.admin('node1', 'start');
    await p.admin('node2', 'start');
    await p.settled('node1', 'WAIT', 'first-start');
    await p.admin('node1', 'prim');
    await p.settled('node1', 'ALONE');
    await p.admin('node2', 'second');
    await p.converged('PRIM', 'SECOND');
    return p;
  } catch (e) {
    await p.close();
    throw e;
  }
}

/** Resolves after `name` sent `pulses` more heartbeats (about pulses × 100 ms): time passes, measured, not slept. */
async function pulsesPass(p: Pair, name: NodeName, pulses: number): Promise<void> {
  const lans = 2;
  const sent = (await p.status(name)).heartbeats.sent;
  await waitFor(async () => (await p.status(name)).heartbeats.sent >= sent + pulses * lans, SOON, `${name} sends ${pulses} more pulses`);
}

test('start_prim fails: WAIT start-failed with the alarm, VIP released, retried only after a delay', async () => {
  const p = await Pair.create();
  try {
    await p.start('node1');
    await p.start('node2');
    p.nodes.node1.scripts.setResult('start_prim', { ok: false, code: 3 });
    await p.admin('node1', 'start');
    await p.admin('node2', 'start');
    await p.settled('node1', 'WAIT', 'first-start');
    await p.settled('node2', 'WAIT', 'first-start');
    assert.ok((await p.admin('node1', 'prim')).ok);
    const m = await p.settled('node1', 'WAIT', 'start-failed');
    const failedAt = Date.now();
    assert.ok(m.alarms.some((a) => a.code === 'start-failed' && /start_prim/.test(a.message)), JSON.stringify(m.alarms));
    assert.equal(m.vips, [{ addr: VIP, holder: null }]);
    assert.equal(p.lan.holders(VIP), []);
    const runner = p.nodes.node1.scripts;
    assert.ok(runner.requests.some((r) => r.script === 'stop_prim' && r.args.join(' ') === 'ALONE WAIT stop'), 'stop_prim cleaned up');
    assert.is(startPrims(runner).length, 1);
    // No tight retry loop while node2 (WAIT, no data) is in sight: nothing for ~1 s ...
    await pulsesPass(p, 'node1', 10);
    const after = await p.mod('node1');
    assert.is(after.state, 'WAIT');
    assert.is(after.waitReason, 'start-failed');
    assert.is(startPrims(runner).length, 1, 'start_prim is not retried at once');
    assert.equal(p.lan.holders(VIP), []);
    assert.is((await p.mod('node2')).state, 'WAIT');
    // ... then one retry, no sooner than max(timeout, 2 s) after the failure, which fails the same way.
    await waitFor(() => startPrims(runner).length >= 2, SOON, 'start_prim retried');
    const delay = Date.now() - failedAt;
    assert.ok(delay >= 1800, `retried ${delay} ms after the failure`);
    await p.settled('node1', 'WAIT', 'start-failed');
    assert.equal(p.lan.holders(VIP), []);
  } finally {
    await p.close();
  }
});

test('a daemon shut down during a failover decision takes no action afterwards', async () => {
  const p = await formedPair();
  try {
    let open!: () => void;
    p.probeGate = { open: new Promise<void>((r) => { open = r; }), entered: [] };
    const gate = p.probeGate;
    const runner = p.nodes.node2.scripts;
    const ran = runner.requests.length;
    p.cutAll();
    // node2 (SECOND) loses node1 and, before taking the VIP, probes it: the probe is slow (gated).
    await waitFor(() => gate.entered.includes('node2'), SOON, 'node2 probing the VIP');
    const persisted = fs.readFileSync(homePaths.stateFile(p.nodes.node2.home, 'demo'), 'utf8');
    await p.shutdown('node2');
    open();
    p.probeGate = null;
    await pulsesPass(p, 'node1', 5);
    assert.equal(runner.requests.slice(ran), [], 'no script after shutdown');
    assert.equal(p.lan.holders(VIP), ['node1'], 'no VIP taken after shutdown');
    assert.is(fs.readFileSync(homePaths.stateFile(p.nodes.node2.home, 'demo'), 'utf8'), persisted, 'state file unchanged after shutdown');
  } finally {
    await p.close();
  }
});

test.run();
