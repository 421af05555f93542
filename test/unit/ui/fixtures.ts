import type { ModuleView, StatusView } from '../../../src/daemon/views.js';
import type { FarmView } from '../../../src/daemon/farm-view.js';

type ModState = ModuleView['state'];

/** A mirror module as node `node` sees it, the peer `peer` in `peerState` (reachable unless said). */
export function mirror(node: string, state: ModState, peer: string, peerState: ModState | null, o: Partial<ModuleView> & { reachable?: boolean; ready?: boolean; peerReady?: boolean } = {}): ModuleView {
  const reachable = o.reachable ?? true;
  const holder = state === 'PRIM' || state === 'ALONE' ? node : reachable && (peerState === 'PRIM' || peerState === 'ALONE') ? peer : null;
  return {
    module: 'demo', node, state, ready: o.ready ?? true, waitReason: null, generation: `1@${node}`, consistent: true,
    peer: {
      node: peer, reachable, state: peerState, ready: peerState ? (o.peerReady ?? true) : null,
      lans: [{ name: 'default', up: reachable, lastHeardMsAgo: reachable ? 120 : 5200 }, { name: 'replication', up: reachable, lastHeardMsAgo: reachable ? 130 : 5300 }],
    },
    vips: [{ addr: '198.51.100.10', holder }],
    alarms: [], reintegration: null, replication: null,
    resources: [
      { name: 'heartbeat.default', state: 'up', since: null, detail: '', active: true, by: 'derived', when: null },
      { name: 'proc.web', state: 'up', since: '2026-12-02T08:00:00.000Z', detail: '1 process', active: true, by: 'errd', when: 'prim' },
    ],
    rule: null,
    loops: { count: 0, max: 3, intervalMs: 86_400_000, exhausted: false, recent: [] },
    switches: { errd: true, checkers: true, failover: true },
    ...o,
  };
}

export function farm(node: string, o: Partial<FarmView> = {}): FarmView {
  return {
    mode: 'farm', module: 'farm-web', node, state: 'UP', ready: true, waitReason: null,
    members: ['node1', 'node2', 'node3'], holdBack: null,
    peers: [
      { node: 'node2', state: 'UP', ready: true, lastHeardMsAgo: 48, lans: ['default'] },
      { node: 'node3', state: 'UP', ready: false, lastHeardMsAgo: 51, lans: ['default'] },
    ],
    groups: [{ name: 'web', buckets: 256, owned: 66, shares: { node1: 66, node2: 56, node3: 134 } }],
    vips: [{ addr: '198.51.100.20', held: true }], resources: [],
    ...o,
  };
}

export function status(node: string, modules: ModuleView[], farms: FarmView[] = []): StatusView {
  return {
    node, pid: 1234,
    heartbeats: { sent: 0, received: 0, datagrams: { sent: 0, received: 0 }, sendErrors: 0, dropped: { badMac: 0, replay: 0, stale: 0, badSource: 0, malformed: 0, unknownNode: 0, misdirected: 0 } },
    modules, farms, pending: [], invalid: [],
  } as StatusView;
}
