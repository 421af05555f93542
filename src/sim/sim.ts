/**
 * Deterministic simulator: two mirror engines wired through a fake network and a fake clock (ARCHITECTURE.md,
 * testing layer 2). The platform is modelled just enough to check the invariants: scripts start and stop an
 * "application", the VIP is a flag per node, a power-off loses everything but the disk, and a LAN can be cut per node.
 *
 * Invariant checked continuously: two nodes never hold the VIP while they see each other (both daemons alive, a LAN
 * connecting them) for longer than the time one of them needs to notice and yield (`timeout + 2 s`).
 */
import { activeIn } from '../engine/mirror/health.js';
import { beacon, initialState, step } from '../engine/mirror/step.js';
import type { Action, AdminVerb, EngineConfig, MirrorEvent, MirrorState, ModState, Persisted, Step } from '../engine/mirror/types.js';

export interface SimConfig {
  pulseMs: number;
  timeoutMs: number;
  syncdeltaMs: number;
  failover: boolean;
  witness: boolean;
  defaultprim: string;
  lans: string[];
  /** durations of modelled work */
  scriptMs: number;
  resyncMs: number;
  probeMs: number;
  /** EngineConfig.probeAheadMs (default 0: the VIPs are probed at the claim) */
  probeAheadMs: number;
  witnessMs: number;
  /** checkers of every node, their failover rules, and the restart loop limits */
  monitored: EngineConfig['monitored'];
  rules: EngineConfig['rules'];
  handleTimeMs: number;
  maxloop: number;
  loopIntervalMs: number;
}

export const defaultSimConfig = (): SimConfig => ({
  pulseMs: 500, timeoutMs: 5000, syncdeltaMs: 0, failover: true, witness: false, defaultprim: 'alone',
  lans: ['default', 'replication'], scriptMs: 200, resyncMs: 300, probeMs: 100, probeAheadMs: 0, witnessMs: 100,
  monitored: [], rules: [], handleTimeMs: 5000, maxloop: 3, loopIntervalMs: 86_400_000,
});

/**
 * The resource of the modelled application's process: when it is monitored, each node's errd reports it up while
 * the application runs and down once it died (`killApp`), whenever the monitoring phase watches it.
 */
export const SIM_APP_PROC = 'proc.app';

interface Work {
  id: number;
  steps: Step[];
  bestEffort: boolean;
  index: number;
  dueAt: number;
  error?: string;
  /** the engine abandoned this plan's reintegration (`abandon-resync`) */
  abandoned?: boolean;
}

interface Query {
  id: number;
  kind: 'witness' | 'probe';
  dueAt: number;
}

export class SimNode {
  engine: MirrorState | null = null;
  /** power on: links up (a node whose daemon died still answers for its VIP) */
  powered = false;
  disk: Persisted | null = null;
  /** the run marker: the module's state, in a directory wiped at reboot */
  runMarker: ModState | null = null;
  vip = false;
  app = false;
  witnessOk = true;
  failScripts = new Set<string>();
  work: Work | null = null;
  queries: Query[] = [];
  log: string[] = [];
  /** the replicated data (on disk: survives power-off): ids of the writes it holds */
  data = new Set<number>();
  /** writes set aside by a split-brain resync */
  quarantine = new Set<number>();
  replies: { reqId: number; ok: boolean; message: string }[] = [];
  /** the plan whose reintegration the engine allowed to change the copy (`copy-may-begin`) */
  copyAllowed: number | null = null;
  /** what the engine asked to monitor (`monitor` action) */
  monitoring: Extract<Action, { kind: 'monitor' }> | null = null;
  constructor(readonly name: string) {}
  get alive() {
    return this.engine !== null;
  }
}

export class Sim {
  mono = 0;
  wall = 1_800_000_000_000;
  readonly nodes: Map<string, SimNode>;
  /** cut links, as `lan:node` */
  readonly cut = new Set<string>();
  violations: string[] = [];
  /** writes acknowledged to the application (with the generation they were written in) */
  readonly acked = new Map<number, string>();
  /** the application writes every 100 ms on the node that runs it (ALONE/PRIM ready) */
  writes = false;
  private writeSeq = 0;
  private dualSince: number | null = null;
  private reqSeq = 1;
  private lastPulse = -Infinity;
  private lastTick = -Infinity;

  constructor(readonly cfg: SimConfig, readonly names: string[] = ['node1', 'node2']) {
    this.nodes = new Map(names.map((n) => [n, new SimNode(n)]));
  }

  node(name: string): SimNode {
    const n = this.nodes.get(name);
    if (!n) throw new Error(`unknown node ${name}`);
    return n;
  }

  private engineConfig(): EngineConfig {
    const c = this.cfg;
    return {
      pulseMs: c.pulseMs, timeoutMs: c.timeoutMs, failover: c.failover, syncdeltaMs: c.syncdeltaMs, lans: c.lans,
      hasVip: true, witness: c.witness, defaultprim: c.defaultprim, configHash: 'sim', hasRfs: true, rules: c.rules,
      handleTimeMs: c.handleTimeMs, maxloop: c.maxloop, loopIntervalMs: c.loopIntervalMs, monitored: c.monitored,
      probeAheadMs: c.probeAheadMs,
    };
  }

  /** Start the daemon on a node (power on, or daemon restart when `reattach`). */
  boot(name: string) {
    const n = this.node(name);
    if (n.alive) throw new Error(`${name} is already up`);
    const peer = this.names.find((x) => x !== name)!;
    n.powered = true;
    n.engine = initialState({ module: 'demo', self: name, peer, nodeOrder: this.names, cfg: this.engineConfig(), persisted: n.disk });
    this.feed(n, { kind: 'boot', mono: this.mono, wall: this.wall, reattach: n.runMarker });
  }

  /** The application's process dies on `name` (its scripts did not stop it). */
  killApp(name: string) {
    this.node(name).app = false;
  }

  /** A checker's report on `name` (as the daemon posts it). */
  report(name: string, resource: string, state: 'init' | 'up' | 'down' | 'unknown', detail = 'sim') {
    this.feed(this.node(name), { kind: 'resource', name: resource, state, detail });
  }

  powerOff(name: string) {
    const n = this.node(name);
    n.monitoring = null;
    n.engine = null;
    n.powered = false;
    n.runMarker = null;
    n.vip = false;
    n.app = false;
    n.work = null;
    n.queries = [];
  }

  /** Kill only the daemon: application, VIP and run marker stay. */
  killDaemon(name: string) {
    const n = this.node(name);
    n.engine = null;
    n.work = null;
    n.queries = [];
  }

  admin(name: string, verb: AdminVerb, fullsync = false): number {
    const n = this.node(name);
    if (!n.engine) throw new Error(`${name} is powered off`);
    const reqId = this.reqSeq++;
    this.feed(n, { kind: 'admin', reqId, verb, fullsync });
    return reqId;
  }

  connected(a: string, b: string, lan: string): boolean {
    return this.node(a).powered && this.node(b).powered && !this.cut.has(`${lan}:${a}`) && !this.cut.has(`${lan}:${b}`);
  }

  feed(n: SimNode, e: MirrorEvent) {
    if (!n.engine) return;
    const r = step(n.engine, e);
    n.engine = r.state;
    for (const a of r.actions) this.apply(n, a);
  }

  private apply(n: SimNode, a: Action) {
    switch (a.kind) {
      case 'persist': n.disk = a.p; break;
      case 'run-marker': n.runMarker = a.state; break;
      case 'log': n.log.push(`${(this.mono / 1000).toFixed(1)}s ${a.level} ${a.msg}`); break;
      case 'alarm': n.log.push(`${(this.mono / 1000).toFixed(1)}s alarm ${a.on ? 'on' : 'off'} ${a.code} ${a.msg}`); break;
      case 'execute': n.work = { id: a.id, steps: a.steps, bestEffort: a.bestEffort, index: 0, dueAt: this.mono + this.cost(a.steps[0]) }; break;
      case 'abort': if (n.work?.id === a.id) n.work = null; break;
      case 'copy-may-begin': n.copyAllowed = a.id; break;
      case 'monitor': n.monitoring = a; break;
      case 'abandon-resync':
        if (n.work?.id === a.id) {
          n.work.abandoned = true;
          if (n.work.steps[n.work.index]?.kind === 'resync') n.work.dueAt = this.mono;
        }
        break;
      case 'check-witness': n.queries.push({ id: a.id, kind: 'witness', dueAt: this.mono + this.cfg.witnessMs }); break;
      case 'probe-vips': n.queries.push({ id: a.id, kind: 'probe', dueAt: this.mono + this.cfg.probeMs }); break;
      case 'reply': n.replies.push({ reqId: a.reqId, ok: a.ok, message: a.message }); break;
    }
  }

  private cost(s: Step | undefined): number {
    if (!s) return 0;
    if (s.kind === 'script') return this.cfg.scriptMs;
    if (s.kind === 'resync') return this.cfg.resyncMs;
    return 20;
  }

  private runStep(n: SimNode, s: Step, w: Work): string | null {
    switch (s.kind) {
      case 'script':
        if (n.failScripts.has(s.script)) return `${s.script} exited 1`;
        if (s.script === 'start_prim') n.app = true;
        if (s.script === 'stop_prim') n.app = false;
        return null;
      case 'resync': {
        const src = this.node(s.from);
        if (w.abandoned) return 'reintegration abandoned';
        const refused = this.sourceRefuses(n, s);
        if (refused) return refused;
        if (n.copyAllowed !== w.id) return 'reintegration abandoned';
        // The copy equals the source at completion; with quarantine, local writes the source lacks are kept aside.
        if (s.quarantine) for (const w of n.data) if (!src.data.has(w)) n.quarantine.add(w);
        n.data = new Set(src.data);
        return null;
      }
      case 'acquire-vips': n.vip = true; return null;
      case 'release-vips': n.vip = false; return null;
      default: return null;
    }
  }

  /**
   * Why the source of a reintegration does not answer: unreachable, or (the real replicator's ENOTPRIM / EGEN) it
   * does not run the module on the generation the plan was made for. null: it answers.
   */
  private sourceRefuses(n: SimNode, s: Extract<Step, { kind: 'resync' }>): string | null {
    const src = this.node(s.from);
    if (!src.engine || !this.cfg.lans.some((l) => this.connected(n.name, s.from, l))) return `${s.from} unreachable`;
    const se = src.engine;
    if (se.state !== 'ALONE' && se.state !== 'PRIM') return `${s.from} does not run the module`;
    if (s.sourceGen && se.p.gen && `${se.p.gen.n}@${se.p.gen.node}` !== s.sourceGen) return `${s.from} is no longer on ${s.sourceGen}`;
    return null;
  }

  /**
   * A plan step begins. A reintegration begins by reaching its source; the engine then records that the copy is
   * incomplete before it changes it (`copy-begins`), and the copy takes `resyncMs` (it is made whole at the end).
   * Returns an error when the step fails at once.
   */
  private beginStep(n: SimNode, w: Work): string | null {
    const st = w.steps[w.index];
    if (st?.kind !== 'resync') return null;
    if (w.abandoned) return 'reintegration abandoned';
    const refused = this.sourceRefuses(n, st);
    if (refused) return refused;
    this.feed(n, { kind: 'copy-begins', id: w.id });
    return null;
  }

  private progress(n: SimNode) {
    for (const q of [...n.queries]) {
      if (q.dueAt > this.mono) continue;
      n.queries = n.queries.filter((x) => x !== q);
      if (q.kind === 'witness') this.feed(n, { kind: 'witness-result', id: q.id, reachable: n.witnessOk });
      else {
        const holders = this.names.filter((o) => o !== n.name && this.node(o).vip && this.connected(n.name, o, this.cfg.lans[0]!));
        this.feed(n, { kind: 'probe-result', id: q.id, inUse: holders.map((h) => ({ addr: 'vip', by: h })) });
      }
    }
    while (n.work && n.work.dueAt <= this.mono) {
      const w = n.work;
      const err = this.runStep(n, w.steps[w.index]!, w);
      if (n.work !== w) continue; // the step's own event ended or replaced the plan
      if (err) w.error = w.error ?? err;
      w.index++;
      let failed = !!err && !w.bestEffort;
      if (!failed && w.index < w.steps.length) {
        w.dueAt = this.mono + this.cost(w.steps[w.index]);
        const early = this.beginStep(n, w);
        if (n.work !== w) continue;
        if (early) {
          w.error = w.error ?? early;
          failed = !w.bestEffort;
        }
      }
      if (failed || w.index >= w.steps.length) {
        n.work = null;
        this.feed(n, { kind: 'plan-done', id: w.id, ok: !w.error, ...(w.error ? { error: w.error } : {}) });
      }
    }
  }

  /** Advance the clock by `ms`, in 10 ms quanta. */
  run(ms: number) {
    const end = this.mono + ms;
    while (this.mono < end) {
      this.mono += 10;
      this.wall += 10;
      for (const n of this.nodes.values()) if (n.alive) this.progress(n);
      if (this.mono - this.lastPulse >= this.cfg.pulseMs) {
        this.lastPulse = this.mono;
        for (const from of this.nodes.values()) {
          if (!from.engine) continue;
          const b = beacon(from.engine);
          for (const to of this.nodes.values()) {
            if (to === from) continue;
            for (const lan of this.cfg.lans) {
              if (to.alive && this.connected(from.name, to.name, lan)) this.feed(to, { kind: 'heartbeat', mono: this.mono, lan, beacon: b });
            }
          }
        }
      }
      if (this.mono - this.lastTick >= 100) {
        this.lastTick = this.mono;
        for (const n of this.nodes.values()) this.watchApp(n);
        for (const n of this.nodes.values()) this.feed(n, { kind: 'tick', mono: this.mono, wall: this.wall });
        if (this.writes) for (const n of this.nodes.values()) this.write(n);
      }
      this.checkInvariant();
    }
  }

  /**
   * One application write on `n` if it runs the application. On PRIM the write is acknowledged only once it is on
   * the SECOND too (synchronous replication); when the SECOND cannot take it, the engine is told first
   * (replication-failed) and the write waits until the node is ALONE on a new generation.
   */
  private write(n: SimNode) {
    const e = n.engine;
    if (!e || !e.ready || e.pending || !n.app || !(e.state === 'ALONE' || e.state === 'PRIM')) return;
    const peer = this.node(e.peer);
    const pe = peer.engine;
    const reachable = !!pe && this.cfg.lans.some((l) => this.connected(n.name, peer.name, l));
    const gen = `${e.p.gen?.n}@${e.p.gen?.node}`;
    // A SECOND holding our generation must take every write synchronously (PRIM, or ALONE just before PRIM). Whether
    // one is attached is this node's view (its replication stream), i.e. the peer's last beacon, even a stale one.
    const pb = e.peerBeacon;
    // A SECOND reintegrating from us receives the live writes too: failing to deliver one outdates it as well.
    const mine = `${e.p.gen?.n}@${e.p.gen?.node}`;
    const attached = pb?.state === 'SECOND' && (pb.ready ? `${pb.gen?.n}@${pb.gen?.node}` === mine : pb.resyncFrom === mine);
    if (e.state === 'PRIM' || attached) {
      if (!attached || !reachable) {
        this.feed(n, { kind: 'replication-failed', reason: `${peer.name} cannot take the write` });
        return;
      }
    }
    const id = ++this.writeSeq;
    n.data.add(id);
    // Live writes also reach a SECOND that is reintegrating (ordered after the copy; modelled by the copy at its end).
    if (reachable && pe?.state === 'SECOND') peer.data.add(id);
    this.acked.set(id, gen);
  }

  /** errd's model: report proc.app when it is watched and its state differs from what the engine holds. */
  private watchApp(n: SimNode) {
    const e = n.engine;
    const m = this.cfg.monitored.find((x) => x.resource === SIM_APP_PROC);
    if (!e || !m || !n.monitoring?.errd || !e.resources[SIM_APP_PROC]) return;
    const { phase } = n.monitoring;
    const active = activeIn(m.when, phase);
    const want = n.app ? 'up' : 'down';
    if (active && e.resources[SIM_APP_PROC]!.state !== want) this.report(n.name, SIM_APP_PROC, want, n.app ? 'running' : 'no process');
  }

  /** Acknowledged writes found neither in `node`'s data nor in any quarantine. */
  lostWrites(node: string): number[] {
    const keep = new Set([...this.node(node).data, ...[...this.nodes.values()].flatMap((n) => [...n.quarantine])]);
    return [...this.acked.keys()].filter((w) => !keep.has(w));
  }

  private splitKey: string | null = null;
  private splitSince = 0;

  /**
   * With a witness: during a stable partition (both daemons up, no LAN between them, witness reachability unchanged)
   * where exactly one node reaches the witness, the other must not run the application after `timeout + 3 s`.
   */
  private checkWitnessInvariant() {
    if (!this.cfg.witness) return;
    const [a, b] = this.names.map((n) => this.node(n)) as [SimNode, SimNode];
    const split = a.alive && b.alive && !this.cfg.lans.some((l) => this.connected(a.name, b.name, l));
    const key = split ? `${a.witnessOk}/${b.witnessOk}` : null;
    if (key !== this.splitKey) {
      this.splitKey = key;
      this.splitSince = this.mono;
      return;
    }
    if (!split || a.witnessOk === b.witnessOk) return;
    const loser = a.witnessOk ? b : a;
    if (this.mono - this.splitSince === this.cfg.timeoutMs + 3000 && loser.app) {
      this.violations.push(`${(this.mono / 1000).toFixed(1)}s: ${loser.name} runs the application without reaching the witness during a partition`);
    }
  }

  private checkInvariant() {
    this.checkWitnessInvariant();
    // "See each other": both daemons alive and heartbeating over a connected LAN. A node whose daemon is dead
    // cannot release anything; that fault is the daemon-restart scenario's business, not this invariant's.
    const holders = [...this.nodes.values()].filter((n) => n.vip);
    const seeing = holders.length >= 2 && holders.every((h) => h.alive)
      && this.cfg.lans.some((l) => this.connected(holders[0]!.name, holders[1]!.name, l));
    if (!seeing) {
      this.dualSince = null;
      return;
    }
    this.dualSince ??= this.mono;
    if (this.mono - this.dualSince === this.cfg.timeoutMs + 2000) {
      this.violations.push(`${(this.mono / 1000).toFixed(1)}s: VIP held by ${holders.map((h) => h.name).join(' and ')} while they see each other`);
    }
  }

  describe(name: string): string {
    const n = this.node(name);
    if (!n.engine) return 'OFF';
    return `${n.engine.state}${n.engine.ready ? '' : '(transient)'}`;
  }
}
