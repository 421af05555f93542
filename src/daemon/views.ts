import type { Beacon, ModState } from '../engine/mirror/types.js';
import type { TransportStats } from '../platform/transport/types.js';
import type { ReintegrationProgress, ReplicationStatus } from '../replication/types.js';
import { genId } from '../engine/mirror/generation.js';
import { isRunning, type ModuleDriver } from './module-driver.js';

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
  error?: string;
}

export interface StatusView {
  node: string;
  pid: number;
  heartbeats: TransportStats;
  modules: ModuleView[];
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
  };
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
    && (b.resyncFrom === null || typeof b.resyncFrom === 'string');
}
