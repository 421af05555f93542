/**
 * The driver of one mirror module: feeds events to the pure engine one at a time and applies its actions in the
 * order they come (see `Action` in src/engine/mirror/types.ts):
 *   - a `persist` is on disk before the next action is applied;
 *   - heartbeats announce only the state published after its actions were applied (never an unpersisted state);
 *   - plans run in the background, step after step, and report back as `plan-done` events;
 *   - the VIP is released by a stop plan before the engine can report STOP.
 * Concurrency: `post` may be called from any callback; events are processed strictly in arrival order.
 */
import { BugError } from '../errors.js';
import { beacon, initialState, nextDeadline, step } from '../engine/mirror/step.js';
import type { Action, AdminVerb, Beacon, EngineConfig, MirrorEvent, MirrorState, ModState, Step } from '../engine/mirror/types.js';
import type { ClusterConfig, MirrorModuleConfig } from '../config/types.js';
import type { Home } from '../home.js';
import type { Cancel, Clock } from '../platform/clock/types.js';
import type { ScriptRunner } from '../platform/scripts/types.js';
import type { VipAdapter } from '../platform/vip/types.js';
import type { WitnessChecker } from '../platform/witness/types.js';
import { moduleRules } from '../engine/rules/index.js';
import type { ModuleMonitor } from './monitor.js';
import type { FilesRole, ReattachedFiles, Replicator, ReintegrationProgress } from '../replication/types.js';
import { genId } from '../engine/mirror/generation.js';
import { fileModuleStore, type ModuleStore } from './state-store.js';
import type { Logger } from './logger.js';
import { configHash } from './config-hash.js';
import { CHECK_DEFAULTS } from '../config/checks.js';
import { tandemExecutable } from '../platform/self.js';

/** how often a failed state write is retried (module-driver `durably`) */
export const RETRY_WRITE_MS = 1000;

export interface DriverDeps {
  home: Home;
  self: string;
  cluster: ClusterConfig;
  config: MirrorModuleConfig;
  scripts: ScriptRunner;
  vip: VipAdapter;
  witness: WitnessChecker;
  replicator: Replicator;
  /** the module's checkers and process monitoring; reports come back through `post({ kind: 'resource' })` */
  monitor: ModuleMonitor;
  clock: Clock;
  /** the other node of the module (default: the other node of a two-node cluster) */
  peer?: string;
  /** best-effort datagram to the peer on one LAN */
  send: (lan: string, to: string, body: Beacon) => void;
  /** the module's log (engine decisions; scripts write there too) */
  log: Pick<Logger, 'line' | 'info' | 'warn' | 'error'>;
  /** where the engine's state and the run marker live; default: the files of `home` (state-store.ts) */
  store?: ModuleStore;
  /** the engine's step; default the real one (the simulator's mutation tests wrap it) */
  step?: typeof step;
}

export interface Reply {
  ok: boolean;
  message: string;
}

/**
 * How long before the heartbeat timeout a SECOND probes its VIPs (EngineConfig.probeAheadMs): about what one
 * LinuxVip probe takes (its 300 ms listening window plus arping's start and two `ip` listings, ≈ 400 ms), with some
 * margin for a loaded host. At most half the timeout.
 */
export const VIP_PROBE_AHEAD_MS = 500;

export function engineConfig(c: MirrorModuleConfig, monitored: EngineConfig['monitored'] = []): EngineConfig {
  return {
    pulseMs: c.heart.pulseMs, timeoutMs: c.heart.timeoutMs, failover: c.failover, syncdeltaMs: c.rfs?.syncdeltaMs ?? 0,
    lans: c.heart.lans, hasVip: c.vips.length > 0, witness: c.splitbrain !== null, defaultprim: c.defaultprim,
    configHash: configHash(c), hasRfs: c.rfs !== null, rules: moduleRules(c, 'userconfig.xml'),
    handleTimeMs: c.rules?.handleTimeMs ?? CHECK_DEFAULTS.failover.handleTimeMs, maxloop: c.maxloop, loopIntervalMs: c.loopIntervalMs,
    monitored, probeAheadMs: Math.min(VIP_PROBE_AHEAD_MS, c.heart.timeoutMs / 2),
  };
}

export class ModuleDriver {
  private s: MirrorState;
  private published: Beacon;
  private queue: MirrorEvent[] = [];
  private pumping = false;
  private replies = new Map<number, (r: Reply) => void>();
  private plans = new Map<number, AbortController>();
  /** reintegrations waiting for the engine's `copy-may-begin`, by plan id */
  private copyWaiters = new Map<number, () => void>();
  /** the reintegration running now, and its plan */
  private resyncRun: { planId: number; ac: AbortController } | null = null;
  /** plans whose reintegration the engine abandoned (`abandon-resync`): it fails at once when reached */
  private abandoned = new Set<number>();
  private reqSeq = 1;
  private lastPulse = -Infinity;
  /** the tick armed at the engine's next deadline (`armDeadline`) */
  private deadlineAt: number | null = null;
  private cancelDeadline: Cancel | null = null;
  /** VIPs this driver configured and has not released */
  readonly vipsHeld = new Set<string>();
  /** times the engine took the module over from the peer here (SECOND → ALONE or PRIM: a failover or a swap) */
  private takeoverCount = 0;
  private idle: Array<() => void> = [];
  /** set by `detach`: the driver takes no more events and starts no more plans */
  private detached = false;

  private readonly store: ModuleStore;
  private readonly step: typeof step;

  private constructor(readonly d: DriverDeps, s: MirrorState) {
    this.s = s;
    this.published = beacon(s);
    this.store = d.store ?? fileModuleStore(d.home, d.config.name);
    this.step = d.step ?? step;
  }

  static async create(d: DriverDeps): Promise<ModuleDriver> {
    const peer = d.peer ?? (d.cluster.nodes.length === 2 ? d.cluster.nodes.find((n) => n !== d.self) : undefined);
    if (!peer) throw new BugError(`module ${d.config.name}: no peer given for ${d.self} in a cluster of ${d.cluster.nodes.length} nodes`);
    const nodes = d.cluster.nodes.filter((n) => n === d.self || n === peer);
    const persisted = await (d.store ?? fileModuleStore(d.home, d.config.name)).load();
    const s = initialState({ module: d.config.name, self: d.self, peer, nodeOrder: nodes, cfg: engineConfig(d.config, d.monitor.monitored), persisted });
    return new ModuleDriver(d, s);
  }

  get name() { return this.d.config.name; }
  /** takeovers since this driver was created (tandem_module_takeovers_total) */
  get takeovers(): number { return this.takeoverCount; }
  get state(): MirrorState { return this.s; }
  get peer() { return this.s.peer; }

  /**
   * Start the engine. A run marker that survived (it lives in the run dir, wiped at reboot) means the daemon restarted
   * without a reboot: it names the state to reattach to.
   */
  async boot(): Promise<void> {
    const marker = await this.store.readMarker();
    const recorded = marker?.trim().split(/\s+/)[0];
    let reattach = recorded && ['WAIT', 'ALONE', 'PRIM', 'SECOND'].includes(recorded) ? (recorded as ModState) : null;
    let held: ReattachedFiles | null = null;
    if (this.d.config.rfs) {
      held = await this.d.replicator.reattach().catch((e: Error) => {
        this.d.log.error(`reattaching the replication host of ${this.name}: ${e.message}`);
        return null;
      });
      const expected: FilesRole = reattach && isRunning(reattach) ? 'primary' : reattach === 'SECOND' ? 'secondary' : 'off';
      if (held && held.role !== expected) {
        if (held.role !== 'off') this.d.log.warn(`the replication host of ${this.name} serves the ${held.role} layout while the module was ${reattach ?? 'not running'}: that layout is left`);
        held = null;
      }
      if (!held && reattach && isRunning(reattach)) {
        // Nothing serves the replicated directories any more (their host died with or after the daemon): the
        // application works on a dead mount. Stop it as after a crash, and decide afresh (the peer takes over).
        this.d.log.error(`the daemon restarted while ${this.name} was ${reattach} and its replicated directories are no longer served ` +
          '(the replication host is gone): the application is stopped (stop_prim force) and the module starts again as after a crash');
        await this.d.scripts.run({
          module: this.name, script: 'stop_prim', args: ['force', reattach, 'STOP', 'stop'], timeoutMs: this.d.config.user.forcestoptimeoutMs,
          env: this.scriptEnv(),
        }).catch((e: Error) => this.d.log.error(`stop_prim force: ${e.message}`));
        for (const v of this.d.config.vips) await this.d.vip.release(v.addr).catch((e: Error) => this.d.log.error(`releasing ${v.addr}: ${e.message}`));
        await this.store.writeMarker(null);
        reattach = null;
      }
      // leftovers of a dead server (a dead FUSE mount answers ENOTCONN even to prestart's mkdir): removed first
      if (!held) await this.d.replicator.setRole('off').catch((e: Error) => this.d.log.error(`cleaning up the replicated directories: ${e.message}`));
      else this.d.log.info(`reattached to the replication host of ${this.name} (pid ${held.pid}, ${held.role} layout): the application keeps its mount`);
    }
    if (reattach) {
      for (const v of this.d.config.vips) if (await this.d.vip.holds(v.addr)) this.vipsHeld.add(v.addr);
    }
    this.post({ kind: 'boot', mono: this.d.clock.mono(), wall: this.d.clock.wall(), reattach });
    // what the host held while no daemon was attached: after `boot`, so that the engine is in the reattached state
    if (held?.failed) this.post({ kind: 'replication-failed', reason: held.failed });
    if (held?.behind) this.post({ kind: 'copy-behind', reason: held.behind });
  }

  post(e: MirrorEvent) {
    if (this.detached) return;
    this.queue.push(e);
    void this.pump();
  }

  /** Resolves when every event posted so far has been processed (tests, orderly shutdown). */
  settled(): Promise<void> {
    if (!this.pumping && this.queue.length === 0) return Promise.resolve();
    return new Promise((r) => this.idle.push(r));
  }

  admin(verb: AdminVerb, fullsync = false): Promise<Reply> {
    const reqId = this.reqSeq++;
    return new Promise((resolve) => {
      this.replies.set(reqId, resolve);
      this.post({ kind: 'admin', reqId, verb, fullsync });
    });
  }

  onHeartbeat(lan: string, b: Beacon) {
    this.post({ kind: 'heartbeat', mono: this.d.clock.mono(), lan, beacon: b });
  }

  /** Called by the daemon's timer (every 100 ms): time passes, heartbeats go out every pulse. */
  tick() {
    const mono = this.d.clock.mono();
    this.post({ kind: 'tick', mono, wall: this.d.clock.wall() });
    if (mono - this.lastPulse >= this.d.config.heart.pulseMs) this.sendHeartbeats();
  }

  reintegration(): ReintegrationProgress | null {
    return this.d.replicator.progress();
  }

  /**
   * Daemon shutdown: abort running plans and drop every later event (heartbeats, probe and witness results), so that
   * once `settled()` resolves nothing more is decided or done. The application and VIP stay as they are: a restart
   * reattaches.
   */
  detach() {
    this.detached = true;
    this.queue.length = 0;
    this.cancelDeadline?.();
    this.cancelDeadline = null;
    for (const ac of this.plans.values()) ac.abort();
    this.resyncRun?.ac.abort();
  }

  private sendHeartbeats() {
    this.lastPulse = this.d.clock.mono();
    for (const lan of this.d.config.heart.lans) this.d.send(lan, this.s.peer, this.published);
  }

  private async pump() {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.queue.length > 0) {
        const e = this.queue.shift()!;
        const r = this.step(this.s, e);
        if (this.s.state === 'SECOND' && isRunning(r.state.state)) this.takeoverCount++;
        this.s = r.state;
        for (const a of r.actions) {
          if (this.detached) return; // shut down while a write was retried: nothing more is done or announced
          await this.apply(a);
        }
        if (this.detached) return;
        this.publish();
      }
      this.armDeadline();
    } finally {
      this.pumping = false;
      for (const r of this.idle.splice(0)) r();
    }
  }

  /**
   * Posts a tick at the engine's next deadline (`nextDeadline`: the heartbeat timeout, the probe ahead), on top of the
   * daemon's periodic tick, so that the peer is declared lost when the timeout expires rather than up to a tick later.
   */
  private armDeadline() {
    const at = nextDeadline(this.s);
    if (at === this.deadlineAt) return;
    this.cancelDeadline?.();
    this.cancelDeadline = null;
    this.deadlineAt = at;
    if (at === null) return;
    this.cancelDeadline = this.d.clock.after(Math.max(0, at - this.d.clock.mono()), () => {
      this.cancelDeadline = null;
      this.deadlineAt = null;
      this.post({ kind: 'tick', mono: this.d.clock.mono(), wall: this.d.clock.wall() });
    });
  }

  /** Make the new state visible to the peer; send at once when something it decides on changed. */
  private publish() {
    const next = beacon(this.s);
    const prev = this.published;
    this.published = next;
    const changed = prev.state !== next.state || prev.ready !== next.ready || prev.yielding !== next.yielding
      || prev.swapRequest !== next.swapRequest || prev.consistent !== next.consistent
      || JSON.stringify(prev.gen) !== JSON.stringify(next.gen);
    if (changed) this.sendHeartbeats();
  }

  private async apply(a: Action): Promise<void> {
    const { log } = this.d;
    switch (a.kind) {
      case 'persist':
        await this.durably(`the state file of ${this.name}`, () => this.store.save(a.p));
        return;
      case 'run-marker':
        await this.durably(`the run marker of ${this.name}`, () => this.store.writeMarker(a.state));
        return;
      case 'log':
        log.line(a.level, a.msg);
        return;
      case 'alarm':
        if (a.on) log.warn(`ALARM ${a.code}: ${a.msg}`);
        else log.info(`alarm cleared: ${a.code}`);
        return;
      case 'execute':
        if (!this.detached) void this.runPlan(a.id, a.steps, a.bestEffort);
        return;
      case 'abort':
        this.plans.get(a.id)?.abort();
        return;
      case 'abandon-resync':
        if (this.plans.has(a.id)) this.abandoned.add(a.id);
        if (this.resyncRun?.planId === a.id) this.resyncRun.ac.abort();
        return;
      case 'replication':
        this.d.replicator.direct(a.directive);
        return;
      case 'monitor':
        this.d.monitor.apply({ phase: a.phase, errd: a.errd, checkers: a.checkers });
        return;
      case 'copy-may-begin':
        this.copyWaiters.get(a.id)?.();
        return;
      case 'check-witness':
        void this.checkWitness(a.id);
        return;
      case 'probe-vips':
        void this.probeVips(a.id);
        return;
      case 'reply': {
        const r = this.replies.get(a.reqId);
        this.replies.delete(a.reqId);
        r?.({ ok: a.ok, message: a.message });
        return;
      }
    }
  }

  /**
   * A write the next actions depend on (persist before you announce): an I/O error of this node (disk full,
   * read-only remount, EIO) must not end the daemon, and what follows must not run before the write succeeded. So it
   * is retried every RETRY_WRITE_MS, this module's events waiting meanwhile (heartbeats keep going out with the state
   * before it, and the peer sees a node that is alive but does not move); logged when it fails and when it clears.
   * Gives up (returns) only when the driver is detached (daemon shutdown), which ends the pump.
   */
  private async durably(what: string, write: () => Promise<void>): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await write();
        if (attempt > 1) this.d.log.info(`${what} written after ${attempt} attempts`);
        return;
      } catch (e) {
        if (attempt === 1) {
          this.d.log.error(`cannot write ${what}: ${(e as Error).message}; ${this.name} waits, retrying every ${RETRY_WRITE_MS / 1000} s (free space or fix the disk)`);
        }
        if (this.detached) return;
        await new Promise<void>((r) => this.d.clock.after(RETRY_WRITE_MS, r));
        if (this.detached) return;
      }
    }
  }

  private async runPlan(id: number, steps: Step[], bestEffort: boolean) {
    const ac = new AbortController();
    this.plans.set(id, ac);
    let error: string | undefined;
    for (const st of steps) {
      if (ac.signal.aborted) break;
      try {
        await this.runStep(id, st, ac.signal);
      } catch (e) {
        const msg = `${describeStep(st)}: ${(e as Error).message}`;
        this.d.log.error(msg);
        error ??= msg;
        if (!bestEffort) break;
      }
    }
    this.plans.delete(id);
    this.abandoned.delete(id);
    if (ac.signal.aborted) return; // the engine stopped waiting for this plan
    this.post({ kind: 'plan-done', id, ok: error === undefined, ...(error !== undefined ? { error } : {}) });
  }

  private async runStep(planId: number, st: Step, signal: AbortSignal): Promise<void> {
    const { config, vip } = this.d;
    switch (st.kind) {
      case 'script': {
        const stop = st.script.startsWith('stop') || st.script === 'poststop';
        const force = st.args[0] === 'force';
        const timeoutMs = force ? config.user.forcestoptimeoutMs : config.user.nicestoptimeoutMs;
        const r = await this.d.scripts.run({
          module: this.name, script: st.script, args: st.args, timeoutMs,
          env: this.scriptEnv(),
        });
        if (!r.ok) throw new Error(r.timedOut ? `timed out after ${timeoutMs} ms and was killed` : `exited with ${r.code ?? 'a signal'}${stop ? '' : ` (see \`tandem log -m ${this.name}\`)`}`);
        return;
      }
      case 'acquire-vips':
        for (const v of config.vips) {
          const t0 = this.d.clock.mono();
          await vip.acquire(v.addr);
          this.vipsHeld.add(v.addr);
          this.d.log.info(`virtual IP ${v.addr} configured in ${Math.round(this.d.clock.mono() - t0)} ms (announced in the background)`);
        }
        return;
      case 'release-vips':
        for (const v of config.vips) {
          await vip.release(v.addr);
          if (this.vipsHeld.delete(v.addr)) this.d.log.info(`virtual IP ${v.addr} released`);
        }
        return;
      case 'resync': {
        if (this.abandoned.has(planId)) throw new Error('reintegration abandoned');
        const ac = new AbortController();
        this.resyncRun = { planId, ac };
        const onAbort = () => ac.abort();
        signal.addEventListener('abort', onAbort);
        try {
          this.d.log.info(`reintegration from ${st.from} (${st.full ? 'full compare' : 'changes only'}${st.quarantine ? ', divergent files to quarantine' : ''})`);
          await this.d.replicator.reintegrate({
            module: this.name, from: st.from, full: st.full, quarantine: st.quarantine, sourceGen: st.sourceGen, signal: ac.signal,
            targetGen: this.s.p.gen ? genId(this.s.p.gen) : null,
            beginCopy: () => this.beginCopy(planId, ac.signal),
          });
        } finally {
          signal.removeEventListener('abort', onAbort);
          this.resyncRun = null;
        }
        return;
      }
      case 'cancel-resync':
        this.resyncRun?.ac.abort();
        return;
      case 'files':
        await this.d.replicator.setRole(st.role, st.primary);
        return;
    }
  }

  /** Asks the engine to persist that plan `planId`'s copy is incomplete; resolves on its `copy-may-begin`. */
  private beginCopy(planId: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const done = () => {
        this.copyWaiters.delete(planId);
        signal.removeEventListener('abort', abandoned);
      };
      const abandoned = () => {
        done();
        reject(new Error('reintegration abandoned'));
      };
      if (signal.aborted) return abandoned();
      this.copyWaiters.set(planId, () => { done(); resolve(); });
      signal.addEventListener('abort', abandoned);
      this.post({ kind: 'copy-begins', id: planId });
    });
  }

  /** What every script of the module gets in its environment: the user's <var>s and tandem's own. */
  private scriptEnv(): Record<string, string> {
    const { config, self, home } = this.d;
    return { ...config.user.vars, ...tandemEnv(this.name, self, home) };
  }

  private async checkWitness(id: number) {
    const sb = this.d.config.splitbrain;
    let reachable = false;
    try {
      reachable = sb ? await this.d.witness.reachable(sb.witnesses, Math.min(2000, this.d.config.heart.timeoutMs)) : true;
    } catch (e) {
      this.d.log.error(`split-brain witness check failed: ${(e as Error).message}`);
    }
    this.d.log.info(`split-brain witness ${sb?.witnesses.join(' ')}: ${reachable ? 'reachable' : 'unreachable'}`);
    this.post({ kind: 'witness-result', id, reachable });
  }

  private async probeVips(id: number) {
    const inUse: { addr: string; by?: string }[] = [];
    for (const v of this.d.config.vips) {
      try {
        const r = await this.d.vip.probe(v.addr);
        if (r.inUse) inUse.push({ addr: v.addr, ...(r.by ? { by: r.by } : {}) });
      } catch (e) {
        // A probe that cannot run is not proof the address is free: refuse, the engine retries.
        inUse.push({ addr: v.addr, by: `unknown (probe failed: ${(e as Error).message})` });
      }
    }
    this.post({ kind: 'probe-result', id, inUse });
  }
}

function describeStep(st: Step): string {
  switch (st.kind) {
    case 'script': return `script ${st.script} ${st.args.join(' ')}`;
    case 'resync': return `reintegration from ${st.from}`;
    case 'files': return `replicated directories (${st.role} layout)`;
    default: return st.kind;
  }
}

export const isRunning = (st: ModState | undefined) => st === 'ALONE' || st === 'PRIM';

/**
 * What tandem puts in the environment of a module's scripts and checker programs: the module, the node, the home and
 * run dir, and TANDEM_BIN, the tandem command itself (for `"$TANDEM_BIN" set …` when tandem is not on PATH).
 */
export function tandemEnv(module: string, self: string, home: Home): Record<string, string> {
  return {
    TANDEM_MODULE: module, TANDEM_NODE: self, TANDEM_HOME: home.root, TANDEM_RUN_DIR: home.runDir,
    TANDEM_BIN: process.env.TANDEM_BIN ?? tandemExecutable(),
  };
}
