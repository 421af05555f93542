/**
 * Deterministic simulation of two nodes, each the real `ModuleDriver` (src/daemon/module-driver.ts) over fakes
 * (ARCHITECTURE.md, testing layer 2): heartbeats as JSON over a simulated network (per-LAN, per-node cuts decided at
 * delivery; the real transport's codec is left out, it is the third of the time and tested on its own), the
 * VIP on a `FakeLan` (a probe sees only holders it is connected to), scripts, the split-brain witness and the engine's
 * store as simulated parts of the node, and file replication as `SimReplicator` (./sim-replicator.ts), which drives
 * the real pure cores of the replicator. A node that powers off loses its driver with every promise in flight (its
 * fakes never answer again, its timers are dropped), its VIP, its application and its run dir; its disk stays.
 *
 * Time: one virtual clock (`SimClock`) for everything. It moves to the next timer only once every microtask and
 * immediate has run and the network is drained, one timer at a time (ties in creation order): given a seed, a run is
 * deterministic.
 *
 * Invariants, checked at every timer (violations collected in `violations`):
 *   - VIP: two nodes never hold the VIP while they see each other (both daemons alive, a LAN between them) for longer
 *     than `timeout + 2 s`;
 *   - witness: during a stable partition where exactly one node reaches the witness, the other does not run the
 *     application `timeout + 3 s` after it began;
 *   - durability: a node running the application (ALONE/PRIM, ready) holds every acknowledged write of every
 *     generation it claims (its own and its history), or kept it in quarantine — checked when it starts running and at
 *     every acknowledgement by the other node;
 *   - replica: a ready SECOND of a running node on the same generation holds no write its primary does not.
 */
import type { ClusterConfig, MirrorModuleConfig } from '../config/types.js';
import { parseClusterXml } from '../config/cluster.js';
import { parseUserconfig } from '../config/userconfig.js';
import { ModuleDriver, type Reply } from '../daemon/module-driver.js';
import { FakeMonitor } from '../daemon/monitor.js';
import type { ModuleStore } from '../daemon/state-store.js';
import { isBeacon } from '../daemon/views.js';
import { genId } from '../engine/mirror/generation.js';
import { step as realStep } from '../engine/mirror/step.js';
import type { AdminVerb, ModState, Persisted } from '../engine/mirror/types.js';
import type { Cancel, Clock } from '../platform/clock/types.js';
import type { ScriptRequest, ScriptResult, ScriptRunner } from '../platform/scripts/types.js';
import { FakeLan, FakeVip } from '../platform/vip/fake.js';
import type { ProbeResult, VipAdapter } from '../platform/vip/types.js';
import type { WitnessChecker } from '../platform/witness/types.js';
import { noMutations, SimDisk, SimReplicator, type SimMutations } from './sim-replicator.js';

export interface DriverSimConfig {
  pulseMs: number;
  timeoutMs: number;
  witness: boolean;
  async: 'none' | 'second';
  defaultprim: string;
  /** durations of modelled work */
  scriptMs: number;
  resyncMs: number;
  probeMs: number;
  witnessMs: number;
  /** the model application writes (and waits for its acknowledgement) every this many ms */
  writeEveryMs: number;
  mutations: SimMutations;
  /** wraps the engine's step (mutation tests of engine fixes); default: the real step */
  step?: typeof realStep;
}

export const defaultDriverSimConfig = (): DriverSimConfig => ({
  pulseMs: 200, timeoutMs: 1000, witness: false, async: 'none', defaultprim: 'alone',
  scriptMs: 200, resyncMs: 300, probeMs: 100, witnessMs: 100, writeEveryMs: 100, mutations: noMutations(),
});

export const SIM_VIP = '198.51.100.10';
const LANS = ['default', 'replication'];
/** the LAN the replication stream uses (the module's `replication` heartbeat LAN) */
const REPL_LAN = 'replication';
/** a heartbeat arrives this long after it is sent (as a change on the replication stream, STREAM_LATENCY_MS) */
export const HEARTBEAT_LATENCY_MS = 1;

// ───────────────────────────── the clock ─────────────────────────────

interface Timer {
  id: number;
  due: number;
  period: number | null;
  fn: () => void;
  owner: Owner;
}

/** Whoever owns timers: an incarnation of a daemon (dropped when it dies) or the simulation itself. */
export interface Owner {
  alive: boolean;
}

/** The one virtual clock; each daemon incarnation gets a view whose timers die with it. */
export class SimClock {
  now = 0;
  wallNow = 1_800_000_000_000;
  private timers: Timer[] = [];
  private seq = 0;

  view(owner: Owner): Clock {
    return {
      mono: () => this.now,
      wall: () => this.wallNow,
      after: (ms, fn) => this.add(ms, null, fn, owner),
      every: (ms, fn) => this.add(ms, Math.max(1, ms), fn, owner),
    };
  }

  drop(owner: Owner) {
    this.timers = this.timers.filter((t) => t.owner !== owner);
  }

  nextDue(): number | null {
    let best: Timer | null = null;
    for (const t of this.timers) if (!best || t.due < best.due || (t.due === best.due && t.id < best.id)) best = t;
    return best ? best.due : null;
  }

  /** Fires the earliest timer (its due time becomes now). */
  fireNext() {
    let best: Timer | null = null;
    for (const t of this.timers) if (!best || t.due < best.due || (t.due === best.due && t.id < best.id)) best = t;
    if (!best) return;
    this.moveTo(best.due);
    if (best.period === null) this.timers = this.timers.filter((t) => t !== best);
    else {
      best.due += best.period;
      best.id = this.seq++;
    }
    if (best.owner.alive) best.fn();
  }

  moveTo(t: number) {
    if (t <= this.now) return;
    this.wallNow += t - this.now;
    this.now = t;
  }

  private add(ms: number, period: number | null, fn: () => void, owner: Owner): Cancel {
    const t: Timer = { id: this.seq++, due: this.now + Math.max(0, ms), period, fn, owner };
    this.timers.push(t);
    return () => { this.timers = this.timers.filter((x) => x !== t); };
  }
}

const never = <T>(): Promise<T> => new Promise<T>(() => {});

// ───────────────────────────── a node ─────────────────────────────

/** One daemon's life on a node: dropped whole when it dies. */
class Incarnation implements Owner {
  alive = true;
  drv!: ModuleDriver;
  repl!: SimReplicator;
  clock!: Clock;
}

export class SimNode {
  powered = false;
  /** survives power-off: the engine's state file and the replicated data */
  persisted: Persisted | null = null;
  readonly disk = new SimDisk();
  /** the run dir's marker (wiped at power-off) */
  runMarker: string | null = null;
  app = false;
  witnessOk = true;
  /** injected fault: applying a received change fails (disk full) */
  applyFails = false;
  readonly failScripts = new Set<string>();
  inc: Incarnation | null = null;
  readonly log: string[] = [];
  boots = 0;
  /** a write of the application waits for its acknowledgement */
  writing = false;
  constructor(readonly name: string) {}

  get alive(): boolean {
    return this.inc !== null;
  }

  /** the engine's state, or null when the daemon is not running */
  get engine() {
    return this.inc?.drv?.state ?? null;
  }
}

export class DriverSim implements Owner {
  alive = true;
  readonly clock = new SimClock();
  private readonly simClock: Clock = this.clock.view(this);
  /** heartbeats sent and not yet delivered: delivered (or lost to a cut) when the simulation drains */
  private inFlight: { lan: string; from: string; to: string; body: string }[] = [];
  readonly lan = new FakeLan();
  readonly nodes: Map<string, SimNode>;
  readonly cuts = new Set<string>();
  readonly violations: string[] = [];
  /** acknowledged writes: id → the generation the primary acknowledged it in */
  readonly acked = new Map<number, string>();
  /** writes the application issued (acknowledged or not) */
  issued = 0;
  writes = false;
  private readonly cluster: ClusterConfig;
  private readonly module: MirrorModuleConfig;
  private dualSince: number | null = null;
  private dualReported = false;
  private splitKey: string | null = null;
  private splitSince = 0;
  private splitReported = false;
  private seen = new Map<string, string>();
  private reported = new Set<string>();

  constructor(readonly cfg: DriverSimConfig, readonly names: string[] = ['node1', 'node2']) {
    this.nodes = new Map(names.map((n) => [n, new SimNode(n)]));
    this.cluster = parseClusterXml(clusterXml(names));
    this.module = parseUserconfig(userconfigXml(cfg), 'demo', this.cluster);
    this.simClock.every(cfg.writeEveryMs, () => this.writeTick());
  }

  get mono() {
    return this.clock.now;
  }

  node(name: string): SimNode {
    const n = this.nodes.get(name);
    if (!n) throw new Error(`unknown node ${name}`);
    return n;
  }

  peerOf(name: string): string {
    return this.names.find((x) => x !== name)!;
  }

  connected(a: string, b: string, lan: string): boolean {
    return this.node(a).powered && this.node(b).powered && !this.cuts.has(`${lan}:${a}`) && !this.cuts.has(`${lan}:${b}`);
  }

  private logLine(n: SimNode, level: string, msg: string) {
    n.log.push(`${(this.clock.now / 1000).toFixed(3)}s ${level} ${msg}`);
  }

  // ───────────────────────────── faults and commands ─────────────────────────────

  /** Power on (if off) and start the daemon. */
  async boot(name: string): Promise<void> {
    const n = this.node(name);
    if (n.alive) throw new Error(`${name}'s daemon is already running`);
    n.powered = true;
    n.boots++;
    const inc = new Incarnation();
    const clock = (inc.clock = this.clock.view(inc));
    const peer = this.peerOf(name);
    const log = (level: 'info' | 'warn' | 'error', msg: string) => { if (inc.alive) this.logLine(n, level, msg); };
    let drvRef: ModuleDriver | null = null;
    inc.repl = new SimReplicator({
      node: name, peer, disk: n.disk, clock, async: this.cfg.async, timeoutMs: this.cfg.timeoutMs, resyncMs: this.cfg.resyncMs,
      mutations: this.cfg.mutations,
      reach: () => {
        const p = this.node(peer);
        return p.inc && this.connected(name, peer, REPL_LAN) ? p.inc.repl : null;
      },
      linkUp: () => this.connected(name, peer, REPL_LAN),
      applyFails: () => n.applyFails,
      log: (level, msg) => log(level, `[files] ${msg}`),
      replicationFailed: (reason) => drvRef?.post({ kind: 'replication-failed', reason }),
      copyBehind: (reason) => drvRef?.post({ kind: 'copy-behind', reason }),
    });
    const store: ModuleStore = {
      load: async () => (inc.alive ? structuredClone(n.persisted) : never()),
      save: async (p) => { if (!inc.alive) return never(); n.persisted = structuredClone(p); },
      readMarker: async () => (inc.alive ? n.runMarker : never()),
      writeMarker: async (s) => { if (!inc.alive) return never(); n.runMarker = s ? `${s} ${n.boots}` : null; },
    };
    n.inc = inc;
    const drv = await ModuleDriver.create({
      home: { root: `/sim/${name}`, runDir: `/sim/${name}/run` }, self: name, cluster: this.cluster, config: this.module,
      scripts: new SimScripts(this, n, inc), vip: new SimVip(this, n, inc), witness: new SimWitness(this, n, inc),
      replicator: inc.repl, monitor: new FakeMonitor([]), clock,
      send: (lan, to, body) => { if (inc.alive) this.send({ lan, from: name, to, body: JSON.stringify(body) }); },
      log: { line: (l, m) => log(l, m), info: (m) => log('info', m), warn: (m) => log('warn', m), error: (m) => log('error', m) },
      store, ...(this.cfg.step ? { step: this.cfg.step } : {}),
    });
    if (!inc.alive) return;
    inc.drv = drv;
    drvRef = drv;
    clock.every(100, () => drv.tick());
    void drv.boot(); // it may run scripts (stop_prim force after a daemon restart): they take virtual time
  }

  /** Pull the plug: the daemon and everything in flight, the VIP, the application and the run dir are gone. */
  powerOff(name: string) {
    const n = this.node(name);
    if (n.inc) this.kill(n, false);
    n.powered = false;
    n.app = false;
    n.runMarker = null;
    n.writing = false;
    this.lan.remove(SIM_VIP, name);
  }

  /** Only the daemon dies (SIGKILL): application, VIP and run marker stay; the kernel closes its sockets. */
  killDaemon(name: string) {
    const n = this.node(name);
    if (n.inc) this.kill(n, true);
  }

  private kill(n: SimNode, closed: boolean) {
    const inc = n.inc!;
    inc.alive = false;
    inc.repl.die(closed);
    n.inc = null;
    this.clock.drop(inc);
    this.logLine(n, 'warn', closed ? '--- daemon killed' : '--- power off');
  }

  /** An administrator's command; the promise resolves with the reply (or never, if the daemon dies first). */
  admin(name: string, verb: AdminVerb, fullsync = false): Promise<Reply> {
    const inc = this.node(name).inc;
    if (!inc?.drv) throw new Error(`${name}'s daemon is not running`);
    return inc.drv.admin(verb, fullsync);
  }

  cut(lan: string, node?: string) {
    for (const l of lan === 'all' ? LANS : [lan]) {
      for (const x of node ? [node] : this.names) {
        this.cuts.add(`${l}:${x}`);
      }
    }
  }

  heal() {
    this.cuts.clear();
  }

  get lans(): string[] {
    return LANS;
  }

  // ───────────────────────────── time ─────────────────────────────

  /** Let `ms` of virtual time pass, timer by timer, draining all asynchronous work before each. */
  async run(ms: number): Promise<void> {
    const end = this.clock.now + ms;
    for (;;) {
      await this.drain();
      const due = this.clock.nextDue();
      if (due === null || due > end) break;
      this.clock.fireNext();
      await this.drain();
      this.check();
    }
    this.clock.moveTo(end);
    this.check();
  }

  /** Runs until `cond` holds (checked after every timer), at most `ms`; returns whether it held. */
  async runUntil(cond: () => boolean, ms: number): Promise<boolean> {
    const end = this.clock.now + ms;
    for (;;) {
      await this.drain();
      if (cond()) return true;
      const due = this.clock.nextDue();
      if (due === null || due > end) break;
      this.clock.fireNext();
      await this.drain();
      this.check();
    }
    this.clock.moveTo(end);
    this.check();
    return cond();
  }

  /** Every microtask and immediate queued so far has run (nothing here uses real timers or I/O). */
  private async drain() {
    await new Promise<void>((r) => setImmediate(r));
  }

  private send(d: { lan: string; from: string; to: string; body: string }) {
    this.inFlight.push(d);
    if (this.inFlight.length === 1) this.simClock.after(HEARTBEAT_LATENCY_MS, () => this.deliver());
  }

  /**
   * Delivers the heartbeats sent so far, HEARTBEAT_LATENCY_MS after the first of them, as the wire would: a copy of
   * the JSON, dropped when the LAN does not connect the two nodes now or the receiver's daemon is not running.
   */
  private deliver() {
    const batch = this.inFlight;
    this.inFlight = [];
    for (const d of batch) {
      const to = this.node(d.to).inc;
      if (!to?.drv || !this.connected(d.from, d.to, d.lan)) continue;
      const body: unknown = JSON.parse(d.body);
      if (isBeacon(body)) to.drv.onHeartbeat(d.lan, body);
    }
  }

  // ───────────────────────────── the application ─────────────────────────────

  private writeTick() {
    if (!this.writes) return;
    for (const n of this.nodes.values()) {
      if (!n.app || n.writing) continue;
      const repl = n.inc?.repl;
      if (!repl) continue; // the mount died with the daemon: every write fails
      const id = ++this.issued;
      n.writing = true;
      void repl.appWrite(id).then((gen) => {
        if (repl.dead) return;
        n.writing = false;
        if (gen === null) return;
        this.acked.set(id, gen);
        this.checkAck(n, id, gen);
      });
    }
  }

  // ───────────────────────────── invariants ─────────────────────────────

  private violation(key: string, msg: string) {
    if (this.reported.has(key)) return;
    this.reported.add(key);
    this.violations.push(`${(this.clock.now / 1000).toFixed(3)}s: ${msg}`);
  }

  /** the generations a node's copy claims: its own and its history */
  private lineage(n: SimNode): Set<string> | null {
    const e = n.engine;
    if (!e?.p.gen) return null;
    return new Set([genId(e.p.gen), ...e.p.history]);
  }

  private running(n: SimNode): boolean {
    const e = n.engine;
    return !!e && e.ready && (e.state === 'ALONE' || e.state === 'PRIM');
  }

  /** Acknowledged writes of the generations `n` claims that are neither in its copy nor in its quarantine. */
  missingOn(n: SimNode): number[] {
    const lin = this.lineage(n);
    if (!lin) return [];
    const out: number[] = [];
    for (const [id, gen] of this.acked) if (lin.has(gen) && !n.disk.data.has(id) && !n.disk.quarantine.has(id)) out.push(id);
    return out;
  }

  private checkAck(writer: SimNode, id: number, gen: string) {
    for (const n of this.nodes.values()) {
      if (n === writer || !this.running(n)) continue;
      if (this.lineage(n)?.has(gen) && !n.disk.data.has(id) && !n.disk.quarantine.has(id)) {
        this.violation(`ack:${n.name}:${id}`, `${writer.name} acknowledged write ${id} in ${gen}, which ${n.name} claims while it runs the application without it`);
      }
    }
  }

  private check() {
    this.checkVip();
    this.checkWitness();
    for (const n of this.nodes.values()) {
      const e = n.engine;
      const key = e ? `${e.state}/${e.ready}/${e.p.gen ? genId(e.p.gen) : '-'}` : 'OFF';
      if (this.seen.get(n.name) === key) continue;
      this.seen.set(n.name, key);
      if (this.running(n)) {
        const missing = this.missingOn(n);
        if (missing.length) {
          this.violation(`run:${n.name}:${key}`, `${n.name} runs the application (${key}) without ${missing.length} acknowledged write(s) of generations it claims: ${missing.slice(0, 5).join(', ')} (in ${missing.slice(0, 3).map((w) => this.acked.get(w)).join(', ')})`);
        }
      }
      this.checkReplica(n);
    }
  }

  /** A ready SECOND of a running primary on its generation holds nothing the primary does not. */
  checkReplica(n: SimNode): void {
    const e = n.engine;
    if (!e || e.state !== 'SECOND' || !e.ready || !e.p.gen) return;
    const p = this.node(this.peerOf(n.name));
    const pe = p.engine;
    if (!pe || !this.running(p) || !pe.p.gen || genId(pe.p.gen) !== genId(e.p.gen)) return;
    const extra = [...n.disk.data].filter((id) => !p.disk.data.has(id));
    if (extra.length) {
      this.violation(`replica:${n.name}:${genId(e.p.gen)}`, `${n.name} is a ready SECOND of ${p.name} on ${genId(e.p.gen)} but holds ${extra.length} write(s) ${p.name} does not: ${extra.slice(0, 5).join(', ')}`);
    }
  }

  vipHolders(): string[] {
    return this.lan.holders(SIM_VIP);
  }

  private checkVip() {
    const holders = this.vipHolders().map((h) => this.node(h));
    const seeing = holders.length >= 2 && holders.every((h) => h.alive) && LANS.some((l) => this.connected(holders[0]!.name, holders[1]!.name, l));
    if (!seeing) {
      this.dualSince = null;
      this.dualReported = false;
      return;
    }
    this.dualSince ??= this.clock.now;
    if (!this.dualReported && this.clock.now - this.dualSince >= this.cfg.timeoutMs + 2000) {
      this.dualReported = true;
      this.violations.push(`${(this.clock.now / 1000).toFixed(3)}s: VIP held by ${holders.map((h) => h.name).join(' and ')} while they see each other`);
    }
  }

  private checkWitness() {
    if (!this.cfg.witness) return;
    const [a, b] = this.names.map((x) => this.node(x)) as [SimNode, SimNode];
    const split = a.alive && b.alive && !LANS.some((l) => this.connected(a.name, b.name, l));
    const key = split ? `${a.witnessOk}/${b.witnessOk}` : null;
    if (key !== this.splitKey) {
      this.splitKey = key;
      this.splitSince = this.clock.now;
      this.splitReported = false;
      return;
    }
    if (!split || a.witnessOk === b.witnessOk || this.splitReported) return;
    const loser = a.witnessOk ? b : a;
    if (this.clock.now - this.splitSince >= this.cfg.timeoutMs + 3000 && loser.app) {
      this.splitReported = true;
      this.violations.push(`${(this.clock.now / 1000).toFixed(3)}s: ${loser.name} runs the application without reaching the witness during a partition`);
    }
  }

  /** Acknowledged writes found neither in `node`'s data nor in any quarantine. */
  lostWrites(node: string): number[] {
    const keep = new Set([...this.node(node).disk.data, ...[...this.nodes.values()].flatMap((n) => [...n.disk.quarantine])]);
    return [...this.acked.keys()].filter((w) => !keep.has(w));
  }

  describe(name: string): string {
    const e = this.node(name).engine;
    if (!e) return 'OFF';
    return `${e.state}${e.ready ? '' : '(transient)'}`;
  }

  /** a node's state for traces: engine state, generation, replicator modes, data size */
  detail(name: string): string {
    const n = this.node(name);
    const e = n.engine;
    const r = n.inc?.repl;
    return `${name} ${this.describe(name)} gen=${e?.p.gen ? genId(e.p.gen) : '-'} consistent=${e?.p.consistent} files=${r?.role ?? '-'}/${r?.prim.mode ?? '-'}${r?.sec.live ? ` live=${r.sec.live}` : ''} app=${n.app} data=${n.disk.data.size} q=${n.disk.quarantine.size} dirty=${n.disk.dirty}`;
  }
}

// ───────────────────────────── the node's fakes ─────────────────────────────

/** Scripts take `scriptMs`; start_prim starts the model application, stop_prim stops it. */
class SimScripts implements ScriptRunner {
  constructor(private readonly sim: DriverSim, private readonly n: SimNode, private readonly inc: Incarnation) {}
  async run(req: ScriptRequest): Promise<ScriptResult> {
    await new Promise<void>((r) => this.inc.clock.after(this.sim.cfg.scriptMs, r));
    if (!this.inc.alive) return never();
    const ok = !this.n.failScripts.has(req.script);
    if (ok && req.script === 'start_prim') this.n.app = true;
    if (req.script === 'stop_prim') this.n.app = false;
    return { ok, missing: false, timedOut: false, code: ok ? 0 : 1, durationMs: this.sim.cfg.scriptMs };
  }
}

/** FakeVip on the shared FakeLan; a probe takes `probeMs` and sees only holders connected on the first LAN. */
class SimVip implements VipAdapter {
  private readonly fake: FakeVip;
  constructor(private readonly sim: DriverSim, private readonly n: SimNode, private readonly inc: Incarnation) {
    this.fake = new FakeVip(sim.lan, n.name);
  }
  async probe(addr: string): Promise<ProbeResult> {
    await new Promise<void>((r) => this.inc.clock.after(this.sim.cfg.probeMs, r));
    if (!this.inc.alive) return never();
    const other = this.sim.lan.holders(addr).find((h) => h !== this.n.name && this.sim.connected(this.n.name, h, LANS[0]!));
    return other ? { inUse: true, by: FakeVip.macOf(other) } : { inUse: false };
  }
  acquire(addr: string) { return this.inc.alive ? this.fake.acquire(addr) : never<void>(); }
  release(addr: string) { return this.inc.alive ? this.fake.release(addr) : never<void>(); }
  holds(addr: string) { return this.inc.alive ? this.fake.holds(addr) : never<boolean>(); }
}

class SimWitness implements WitnessChecker {
  constructor(private readonly sim: DriverSim, private readonly n: SimNode, private readonly inc: Incarnation) {}
  async reachable(): Promise<boolean> {
    await new Promise<void>((r) => this.inc.clock.after(this.sim.cfg.witnessMs, r));
    if (!this.inc.alive) return never();
    return this.n.witnessOk;
  }
}

// ───────────────────────────── configuration ─────────────────────────────

function clusterXml(names: string[]): string {
  const lan = (name: string, net: string) => `<lan name="${name}">${names.map((n, i) => `<node name="${n}" addr="${net}.${i + 1}"/>`).join('')}</lan>`;
  return `<cluster><lans>${lan('default', '198.51.100')}${lan('replication', '203.0.113')}</lans></cluster>`;
}

function userconfigXml(c: DriverSimConfig): string {
  return `<safe><service mode="mirror" defaultprim="${c.defaultprim}">
    <heart pulse="${c.pulseMs}ms" timeout="${c.timeoutMs}ms"><heartbeat name="default"/><heartbeat name="replication"/></heart>
    <vip><interface_list><interface check="on"><real_interface><virtual_addr addr="${SIM_VIP}" where="one_side_alias"/></real_interface></interface></interface_list></vip>
    <rfs async="${c.async}"><replicated dir="/srv/sim/data"/></rfs>
    ${c.witness ? '<splitbrain ident="witness" exec="ping" arg="192.0.2.254"/>' : ''}
  </service></safe>`;
}

export type { ModState };
