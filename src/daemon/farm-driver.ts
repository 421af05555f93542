/**
 * The driver of one farm module: feeds events to the pure farm engine (src/engine/farm/step.ts) one at a time and
 * applies its actions in order:
 *   - `persist` (whether the module should run here) is on disk before the next action;
 *   - `filter` (the buckets this node accepts) is applied before the next action and before the next beacon, so a
 *     beacon never announces a view the filter does not enforce yet;
 *   - plans run in the background, step after step, and report back as `plan-done`.
 * Beacons go to every other node of the cluster on each of the module's LANs, every pulse and at once on a change.
 *
 * Daemon restart: the application, the VIPs and the filter are left as they are (the kernel keeps them); a daemon
 * that starts and finds the module's filter installed while the module should run reattaches: it empties the
 * filter's buckets (they are recomputed from the peers' beacons within a pulse or two) and the module is UP at once.
 * After a reboot nothing is installed, and the module starts from scratch.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import type { ClusterConfig, FarmModuleConfig } from '../config/types.js';
import type { FarmFilter, FarmFilterSpec } from '../platform/farm/types.js';
import { moduleRules } from '../engine/rules/index.js';
import { beacon, initialState, step } from '../engine/farm/step.js';
import type { FarmAction, FarmBeacon, FarmEngineConfig, FarmEvent, FarmState, FarmStep } from '../engine/farm/types.js';
import type { ScriptRunner } from '../platform/scripts/types.js';
import type { VipAdapter } from '../platform/vip/types.js';
import type { Clock } from '../platform/clock/types.js';
import { CHECK_DEFAULTS } from '../config/checks.js';
import { homePaths, type Home } from '../home.js';
import type { Logger } from './logger.js';
import type { ModuleMonitor } from './monitor.js';
import { tandemEnv, type Reply } from './module-driver.js';
import { writeDurably } from './state-store.js';

export interface FarmDriverDeps {
  home: Home;
  self: string;
  cluster: ClusterConfig;
  config: FarmModuleConfig;
  scripts: ScriptRunner;
  vip: VipAdapter;
  filter: FarmFilter;
  monitor: ModuleMonitor;
  clock: Clock;
  send: (lan: string, to: string, body: FarmBeacon) => void;
  log: Pick<Logger, 'line' | 'info' | 'warn' | 'error'>;
  /** where `run` is kept; default state/<module>.farm.json in the home */
  store?: FarmStore;
}

export interface FarmStore {
  load(): Promise<boolean>;
  save(run: boolean): Promise<void>;
}

export function fileFarmStore(home: Home, module: string): FarmStore {
  const file = homePaths.stateFile(home, module).replace(/\.json$/, '.farm.json');
  return {
    async load() {
      try {
        return (JSON.parse(await fs.readFile(file, 'utf8')) as { run?: unknown }).run === true;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
        throw e;
      }
    },
    save: (run) => writeDurably(file, `${JSON.stringify({ run })}\n`),
  };
}

/** What nodes must agree on to share buckets: the VIPs and the groups (hosts, powers, rules). */
export function farmHash(c: FarmModuleConfig): string {
  const groups = c.groups.map((g) => ({ name: g.name, hosts: g.hosts, rules: g.rules.map(({ line: _l, ...r }) => r) }));
  return createHash('sha256').update(JSON.stringify({ vips: c.vips.map((v) => v.addr), groups })).digest('hex').slice(0, 16);
}

export function farmEngineConfig(c: FarmModuleConfig, monitored: FarmEngineConfig['monitored'] = []): FarmEngineConfig {
  return {
    pulseMs: c.heart.pulseMs, timeoutMs: c.heart.timeoutMs, lans: c.heart.lans,
    groups: c.groups.map((g) => ({ name: g.name, hosts: g.hosts })), hasVip: c.vips.length > 0,
    rules: moduleRules(c, 'userconfig.xml'), handleTimeMs: c.rules?.handleTimeMs ?? CHECK_DEFAULTS.failover.handleTimeMs,
    maxloop: c.maxloop, loopIntervalMs: c.loopIntervalMs, monitored, configHash: farmHash(c),
  };
}

/** The packet filter of a farm module (one VIP, one group: `farmLimits` in src/config/farm.ts). */
export function farmFilterSpec(c: FarmModuleConfig): FarmFilterSpec {
  const g = c.groups[0]!;
  return { module: c.name, vip: c.vips[0]!.addr, rules: g.rules.map((r) => ({ port: r.port, proto: r.proto, filter: r.filter })) };
}

export class FarmDriver {
  private s: FarmState;
  private published: FarmBeacon;
  private queue: FarmEvent[] = [];
  private pumping = false;
  private replies = new Map<number, (r: Reply) => void>();
  private plans = new Map<number, AbortController>();
  private reqSeq = 1;
  private lastPulse = -Infinity;
  private idle: Array<() => void> = [];
  private detached = false;
  readonly vipsHeld = new Set<string>();
  private readonly store: FarmStore;

  private constructor(readonly d: FarmDriverDeps) {
    this.s = initialState({ module: d.config.name, self: d.self, cfg: farmEngineConfig(d.config, d.monitor.monitored) });
    this.published = beacon(this.s);
    this.store = d.store ?? fileFarmStore(d.home, d.config.name);
  }

  static create(d: FarmDriverDeps): FarmDriver {
    return new FarmDriver(d);
  }

  get name() { return this.d.config.name; }
  get state(): FarmState { return this.s; }

  async boot(): Promise<void> {
    const run = await this.store.load();
    const installed = (await this.d.filter.list().catch(() => [] as string[])).includes(this.name);
    let reattach = false;
    if (installed && run) {
      await this.d.filter.setOwned(this.name, []);
      for (const v of this.d.config.vips) if (await this.d.vip.holds(v.addr)) this.vipsHeld.add(v.addr);
      reattach = true;
      this.d.log.info(`${this.name}: the daemon restarted while the module ran here: reattached (application, VIPs and filter kept; buckets recomputed from the peers)`);
    } else if (installed) {
      await this.d.filter.remove(this.name);
    }
    this.post({ kind: 'boot', mono: this.d.clock.mono(), run, reattach });
  }

  post(e: FarmEvent) {
    if (this.detached) return;
    this.queue.push(e);
    void this.pump();
  }

  settled(): Promise<void> {
    if (!this.pumping && this.queue.length === 0) return Promise.resolve();
    return new Promise((r) => this.idle.push(r));
  }

  admin(verb: string): Promise<Reply> {
    const reqId = this.reqSeq++;
    return new Promise((resolve) => {
      this.replies.set(reqId, resolve);
      this.post({ kind: 'admin', reqId, verb });
    });
  }

  onHeartbeat(lan: string, from: string, b: FarmBeacon) {
    this.post({ kind: 'heartbeat', mono: this.d.clock.mono(), lan, from, beacon: b });
  }

  tick() {
    const mono = this.d.clock.mono();
    this.post({ kind: 'tick', mono });
    if (mono - this.lastPulse >= this.d.config.heart.pulseMs) this.sendHeartbeats();
  }

  detach() {
    this.detached = true;
    this.queue.length = 0;
    for (const ac of this.plans.values()) ac.abort();
  }

  private sendHeartbeats() {
    this.lastPulse = this.d.clock.mono();
    for (const lan of this.d.config.heart.lans) {
      for (const n of this.d.cluster.nodes) if (n !== this.d.self) this.d.send(lan, n, this.published);
    }
  }

  private async pump() {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.queue.length > 0) {
        const e = this.queue.shift()!;
        const r = step(this.s, e);
        this.s = r.state;
        for (const a of r.actions) {
          if (this.detached) return;
          await this.apply(a);
        }
        if (this.detached) return;
        this.publish();
      }
    } finally {
      this.pumping = false;
      for (const r of this.idle.splice(0)) r();
    }
  }

  private publish() {
    const next = beacon(this.s);
    const prev = this.published;
    this.published = next;
    if (prev.state !== next.state || prev.ready !== next.ready || prev.members.join() !== next.members.join()) this.sendHeartbeats();
  }

  private async apply(a: FarmAction): Promise<void> {
    const { log } = this.d;
    switch (a.kind) {
      case 'persist':
        await this.durably(() => this.store.save(a.run));
        return;
      case 'filter':
        try {
          await this.d.filter.setOwned(this.name, a.owned[this.d.config.groups[0]!.name] ?? []);
        } catch (e) {
          // the buckets could not be set: the engine's view and the kernel's differ until the next change
          log.error(`${this.name}: setting the buckets this node accepts failed: ${(e as Error).message}`);
        }
        return;
      case 'execute':
        if (!this.detached) void this.runPlan(a.id, a.steps, a.bestEffort);
        return;
      case 'monitor':
        this.d.monitor.apply({ phase: a.phase, errd: true, checkers: true });
        return;
      case 'log':
        log.line(a.level, a.msg);
        return;
      case 'reply': {
        const r = this.replies.get(a.reqId);
        this.replies.delete(a.reqId);
        r?.({ ok: a.ok, message: a.message });
      }
    }
  }

  private async durably(write: () => Promise<void>): Promise<void> {
    for (let attempt = 1; !this.detached; attempt++) {
      try {
        await write();
        return;
      } catch (e) {
        if (attempt === 1) this.d.log.error(`cannot write the state file of ${this.name}: ${(e as Error).message}; retrying every second (free space or fix the disk)`);
        await new Promise<void>((r) => this.d.clock.after(1000, r));
      }
    }
  }

  private async runPlan(id: number, steps: FarmStep[], bestEffort: boolean) {
    const ac = new AbortController();
    this.plans.set(id, ac);
    let error: string | undefined;
    for (const st of steps) {
      if (ac.signal.aborted) break;
      try {
        await this.runStep(st);
      } catch (e) {
        const msg = `${st.kind === 'script' ? `script ${st.script} ${st.args.join(' ')}` : st.kind}: ${(e as Error).message}`;
        this.d.log.error(msg);
        error ??= msg;
        if (!bestEffort) break;
      }
    }
    this.plans.delete(id);
    if (ac.signal.aborted) return;
    this.post({ kind: 'plan-done', id, ok: error === undefined, ...(error !== undefined ? { error } : {}) });
  }

  private async runStep(st: FarmStep): Promise<void> {
    const { config, vip, filter } = this.d;
    switch (st.kind) {
      case 'script': {
        const stop = st.script.startsWith('stop') || st.script === 'poststop';
        const timeoutMs = stop ? config.user.forcestoptimeoutMs : config.user.nicestoptimeoutMs;
        const r = await this.d.scripts.run({
          module: this.name, script: st.script, args: st.args, timeoutMs,
          env: { ...config.user.vars, ...tandemEnv(this.name, this.d.self, this.d.home) },
        });
        if (!r.ok) throw new Error(r.timedOut ? `timed out after ${timeoutMs} ms and was killed` : `exited with ${r.code ?? 'a signal'}${stop ? '' : ` (see \`tandem log -m ${this.name}\`)`}`);
        return;
      }
      case 'filter-install':
        await filter.install(farmFilterSpec(config), []);
        return;
      case 'filter-remove':
        await filter.remove(this.name);
        return;
      case 'acquire-vips':
        for (const v of config.vips) {
          await vip.acquire(v.addr);
          this.vipsHeld.add(v.addr);
        }
        return;
      case 'release-vips':
        for (const v of config.vips) {
          await vip.release(v.addr);
          this.vipsHeld.delete(v.addr);
        }
    }
  }
}
