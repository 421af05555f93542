import type { Beacon, ModState } from '../engine/mirror/types.js';
import type { TransportStats } from '../platform/transport/types.js';
import type { ReintegrationProgress, ReplicationStatus } from '../replication/types.js';
import { genId } from '../engine/mirror/generation.js';
import { activeIn, localResources, loopsExhausted, loopsInWindow } from '../engine/mirror/health.js';
import type { Decision, ResourceState } from '../engine/rules/types.js';
import type { CheckWhen } from '../config/types.js';
import { isRunning, type ModuleDriver } from './module-driver.js';
import type { FarmView } from './farm-view.js';

/**
 * What `tandem status --json` prints for one module: a stable, documented contract (README, "status --json").
 * Times are milliseconds; `lastHeardMsAgo` is null when nothing was ever heard on that LAN.
 */
export interface ModuleView {
  module: string;
  node: string;
  state: ModState;
  ready: boolean;
  waitReason: string | null;
  generation: string | null;
  consistent: boolean;
  peer: {
    node: string;
    reachable: boolean;
    state: ModState | null;
    ready: boolean | null;
    lans: { name: string; up: boolean; lastHeardMsAgo: number | null }[];
  };
  vips: { addr: string; holder: string | null }[];
  alarms: { code: string; message: string }[];
  reintegration: ReintegrationProgress | null;
  /** the replicated directories (modules with `<rfs>`), else null */
  replication: ReplicationStatus | null;
  /**
   * Every resource this node decides on: checkers and monitored processes (`active`: watched now), and the derived
   * `heartbeat.<lan>` / `rfs.uptodate`. `since`: ISO time of the last change (null for derived ones).
   */
  resources: ResourceRow[];
  /** the failover rule that decides now (null: none holds), and a wait() in effect */
  rule: { label: string; action: string; because: string[]; waiting: boolean } | null;
  /** automatic restarts within loop_interval (oldest first) against maxloop; `exhausted`: the node no longer runs
   *  the module by itself until `tandem resetloop` */
  loops: { count: number; max: number; intervalMs: number; exhausted: boolean; recent: { at: string; reason: string }[] };
  /** runtime switches: process monitoring, checkers, automatic failover (`tandem errd|checker|failover on|off`) */
  switches: { errd: boolean; checkers: boolean; failover: boolean };
  error?: string;
}

export interface ResourceRow {
  name: string;
  state: ResourceState;
  since: string | null;
  detail: string;
  active: boolean;
  /** `errd`, `checker`, or `derived` (heartbeat, rfs) */
  by: 'errd' | 'checker' | 'derived';
  /** when its checker runs (errd: the proc's class); null for derived ones */
  when: CheckWhen | null;
}

export interface StatusView {
  node: string;
  pid: number;
  heartbeats: TransportStats;
  /** mirror modules */
  modules: ModuleView[];
  /** farm modules (src/daemon/farm-view.ts) */
  farms: FarmView[];
  /** mirror modules installed here that do not run yet: the other node they run with is not known (or not one) */
  pending: { module: string; reason: string }[];
  /** installed modules whose configuration is invalid (not loaded), with why: `status` without -m still answers */
  invalid: { module: string; error: string }[];
}

export function moduleView(d: ModuleDriver, nowMono: number): ModuleView {
  const s = d.state;
  const pb: Beacon | null = s.peerBeacon;
  const lans = s.cfg.lans.map((name) => {
    const heard = s.lanHeard[name] ?? null;
    return { name, up: heard !== null && nowMono - heard < s.cfg.timeoutMs, lastHeardMsAgo: heard === null ? null : Math.round(nowMono - heard) };
  });
  const vips = d.d.config.vips.map((v) => ({
    addr: v.addr,
    holder: d.vipsHeld.has(v.addr) ? s.self : s.peerUp && isRunning(pb?.state) ? s.peer : null,
  }));
  return {
    module: s.module,
    node: s.self,
    state: s.state,
    ready: s.ready,
    waitReason: s.waitReason,
    generation: s.p.gen ? genId(s.p.gen) : null,
    consistent: s.p.consistent,
    peer: {
      node: s.peer,
      reachable: s.peerUp,
      state: pb?.state ?? null,
      ready: pb?.ready ?? null,
      lans,
    },
    vips,
    alarms: [
      ...s.alarms.map((a) => ({ code: a.code, message: a.message })),
      ...(d.d.replicator.alarm() ? [{ code: 'replication', message: d.d.replicator.alarm()! }] : []),
    ],
    reintegration: s.state === 'SECOND' && !s.ready ? d.reintegration() : null,
    replication: d.d.replicator.status(),
    resources: resourceRows(s),
    rule: s.ruleWait ? { ...pickRule(s.ruleWait), waiting: true } : s.decision ? { ...pickRule(s.decision), waiting: false } : null,
    loops: {
      count: loopsInWindow(s), max: s.cfg.maxloop, intervalMs: s.cfg.loopIntervalMs, exhausted: loopsExhausted(s),
      recent: s.p.loops.filter((l) => s.wall - l.at < s.cfg.loopIntervalMs).map((l) => ({ at: new Date(l.at).toISOString(), reason: l.reason })),
    },
    switches: { errd: s.p.errd, checkers: s.p.checkers, failover: s.p.failover ?? s.cfg.failover },
  };
}

const pickRule = (d: Decision) => ({ label: d.label, action: d.action, because: d.because });

function resourceRows(s: ModuleDriver['state']): ResourceRow[] {
  const rows: ResourceRow[] = [];
  for (const [name, state] of localResources(s)) {
    const m = s.cfg.monitored.find((x) => x.resource === name);
    const r = s.resources[name];
    const active = m ? activeIn(m.when, s.phase) && (m.by === 'errd' ? s.p.errd : s.p.checkers) : true;
    rows.push({ name, state, since: r ? new Date(r.since).toISOString() : null, detail: r?.detail ?? '', active, by: m?.by ?? 'derived', when: m?.when ?? null });
  }
  return rows.sort((a, b) => a.name.localeCompare(b.name));
}

const STATES: ReadonlySet<string> = new Set(['STOP', 'WAIT', 'ALONE', 'PRIM', 'SECOND']);

/** Shape check of a beacon received from the peer (authenticated, but still never trusted blindly). */
export function isBeacon(x: unknown): x is Beacon {
  if (typeof x !== 'object' || x === null) return false;
  const b = x as Record<string, unknown>;
  const gen = b.gen as Record<string, unknown> | null;
  return b.v === 1 && typeof b.module === 'string' && STATES.has(b.state as string) && typeof b.ready === 'boolean'
    && (gen === null || (typeof gen === 'object' && Number.isInteger(gen.n) && typeof gen.node === 'string' && STATES.has(gen.from as string)))
    && Array.isArray(b.history) && b.history.length <= 64 && b.history.every((h) => typeof h === 'string')
    && typeof b.consistent === 'boolean' && STATES.has(b.lastState as string) && (b.intent === 'none' || b.intent === 'second')
    && typeof b.swapRequest === 'boolean' && typeof b.yielding === 'boolean' && typeof b.configHash === 'string'
    && (b.resyncFrom === null || typeof b.resyncFrom === 'string')
    && (b.canRun === undefined || typeof b.canRun === 'boolean')
    && (b.resources === undefined || isResourceMap(b.resources));
}

const RESOURCE_STATES: ReadonlySet<string> = new Set(['init', 'up', 'down', 'unknown']);

function isResourceMap(x: unknown): boolean {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) return false;
  const entries = Object.entries(x);
  return entries.length <= 512 && entries.every(([k, v]) => k.length <= 128 && typeof v === 'string' && RESOURCE_STATES.has(v));
}
