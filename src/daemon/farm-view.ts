/**
 * What `tandem status --json` prints for a farm module (`mode: "farm"`), and the shape check of a farm beacon.
 */
import type { FarmBeacon, FarmModState } from '../engine/farm/types.js';
import { holdBack, members, shareView } from '../engine/farm/step.js';
import { BUCKETS } from '../engine/farm/buckets.js';
import { activeIn } from '../engine/mirror/health.js';
import type { ResourceRow } from './views.js';
import type { FarmDriver } from './farm-driver.js';

export interface FarmView {
  mode: 'farm';
  module: string;
  node: string;
  state: FarmModState;
  ready: boolean;
  waitReason: string | null;
  /** the serving nodes as this node sees them (itself included when it serves) */
  members: string[];
  /** why this node serves but accepts no bucket yet (a peer that does not count it yet, another configuration) */
  holdBack: string | null;
  /** every other node of the cluster this node hears for this module */
  peers: { node: string; state: FarmModState; ready: boolean; lastHeardMsAgo: number; lans: string[] }[];
  /** per group: the buckets this node accepts now, and each host's share among the members (of BUCKETS) */
  groups: { name: string; buckets: number; owned: number; shares: Record<string, number> }[];
  vips: { addr: string; held: boolean }[];
  resources: ResourceRow[];
}

export function farmView(d: FarmDriver, nowMono: number): FarmView {
  const s = d.state;
  const shares = shareView(s);
  return {
    mode: 'farm',
    module: s.module,
    node: s.self,
    state: s.state,
    ready: s.ready,
    waitReason: s.waitReason,
    members: members(s),
    holdBack: s.state === 'UP' && s.ready && !s.pending ? holdBack(s) : null,
    peers: Object.entries(s.peers).sort(([a], [b]) => a.localeCompare(b)).map(([node, p]) => ({
      node, state: p.beacon.state, ready: p.beacon.ready,
      lastHeardMsAgo: Math.round(nowMono - Math.max(...Object.values(p.heard))),
      lans: Object.keys(p.heard).filter((l) => nowMono - p.heard[l]! < s.cfg.timeoutMs).sort(),
    })),
    groups: s.cfg.groups.map((g) => ({ name: g.name, buckets: BUCKETS, owned: s.owned[g.name]?.length ?? 0, shares: shares[g.name] ?? {} })),
    vips: d.d.config.vips.map((v) => ({ addr: v.addr, held: d.vipsHeld.has(v.addr) })),
    resources: s.cfg.monitored.map((m) => {
      const r = s.resources[m.resource];
      const by = d.d.monitor.monitored.find((x) => x.resource === m.resource)?.by ?? 'checker';
      return { name: m.resource, state: r?.state ?? 'init', since: r ? new Date(Date.now() - (nowMono - r.since)).toISOString() : null, detail: r?.detail ?? '', active: activeIn(m.when, s.phase), by, when: m.when };
    }).sort((a, b) => a.name.localeCompare(b.name)),
  };
}

const FARM_STATES: ReadonlySet<string> = new Set(['STOP', 'WAIT', 'UP']);

/** Shape check of a farm beacon (authenticated, but never trusted blindly). */
export function isFarmBeacon(x: unknown): x is FarmBeacon {
  if (typeof x !== 'object' || x === null) return false;
  const b = x as Record<string, unknown>;
  return b.kind === 'farm' && typeof b.module === 'string' && FARM_STATES.has(b.state as string) && typeof b.ready === 'boolean'
    && Array.isArray(b.members) && b.members.length <= 64 && b.members.every((m) => typeof m === 'string' && m.length <= 255)
    && typeof b.configHash === 'string';
}
