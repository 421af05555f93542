/**
 * The daemon's Prometheus metrics (README, "Metrics"): a pure function of what `tandem status --json` shows
 * (StatusView) plus the counters only the daemon keeps (takeovers), rendered in the Prometheus text exposition format
 * 0.0.4. Every family always has its HELP and TYPE lines, also when it has no sample now (no resync running, no
 * farm module). A value that does not exist now is left out, never faked: the heartbeat age of a LAN never heard on,
 * the resync gauges while no resync runs.
 *
 * Conventions: names `tandem_*`, units in the name (`_seconds`, `_bytes`), counters end in `_total`; an enumeration
 * (module state, peer state, resource state, replication mode) is one gauge per value with a label, 1 for the current
 * value and 0 for the others, so that `tandem_module_state{state="PRIM"} == 1` selects and alerts read naturally.
 * Labels: `module`, `node` (the node this daemon runs on) on every module metric.
 */
import type { StatusView } from './views.js';

/** What the metrics are made of; `takeovers` by module (missing: 0), `uptimeSeconds` of this daemon. */
export interface MetricsInput {
  status: StatusView;
  takeovers: Readonly<Record<string, number>>;
  uptimeSeconds: number;
}

type Labels = Record<string, string>;
interface Family { name: string; type: 'gauge' | 'counter'; help: string; samples: { labels: Labels; value: number }[] }

export const MIRROR_STATES = ['STOP', 'WAIT', 'ALONE', 'PRIM', 'SECOND'] as const;
export const FARM_STATES = ['STOP', 'WAIT', 'UP'] as const;
export const RESOURCE_STATES = ['init', 'up', 'down', 'unknown'] as const;
/** ReplicationStatus.mode, primary and secondary side */
export const REPLICATION_MODES = ['off', 'live', 'recording', 'reintegrating', 'waiting', 'failing', 'idle'] as const;
const DROP_REASONS = ['badMac', 'replay', 'stale', 'badSource', 'malformed', 'unknownNode', 'misdirected'] as const;

/** The metric families, in output order: name → type and help (the contract README lists). */
const FAMILIES: ReadonlyArray<[string, Family['type'], string]> = [
  ['tandem_daemon_uptime_seconds', 'gauge', 'Seconds since this daemon started.'],
  ['tandem_heartbeat_messages_sent_total', 'counter', 'Heartbeat messages (one module\'s beacon, an inventory) sent since the daemon started.'],
  ['tandem_heartbeat_messages_received_total', 'counter', 'Heartbeat messages received and accepted since the daemon started.'],
  ['tandem_heartbeat_datagrams_sent_total', 'counter', 'UDP datagrams carrying heartbeat messages sent.'],
  ['tandem_heartbeat_datagrams_received_total', 'counter', 'UDP datagrams carrying heartbeat messages received.'],
  ['tandem_heartbeat_dropped_total', 'counter', 'Heartbeat datagrams dropped, by reason (badMac: wrong key or tampered; replay; stale; badSource; malformed; unknownNode; misdirected).'],
  ['tandem_heartbeat_send_errors_total', 'counter', 'Heartbeat datagrams the kernel refused to send.'],
  ['tandem_module_state', 'gauge', 'Module state on this node: 1 for the current state, 0 for the others.'],
  ['tandem_module_ready', 'gauge', '1 when the module\'s state is stable (ready), 0 while transient.'],
  ['tandem_module_takeovers_total', 'counter', 'Times this node took the module over from its peer (SECOND to ALONE or PRIM: a failover or a swap) since the daemon started.'],
  ['tandem_module_alarms', 'gauge', 'Standing alarms of the module (tandem status shows them).'],
  ['tandem_module_consistent', 'gauge', '1 when this node\'s copy of the replicated data is complete (promotable), else 0.'],
  ['tandem_module_peer_reachable', 'gauge', '1 when the peer\'s heartbeats for this module arrive on some LAN, else 0.'],
  ['tandem_module_peer_state', 'gauge', 'The module\'s state on the peer as its heartbeats say: 1 for that state, all 0 when the peer is not heard.'],
  ['tandem_module_heartbeat_up', 'gauge', '1 when the peer\'s heartbeats arrive on this LAN within the timeout, else 0.'],
  ['tandem_module_heartbeat_age_seconds', 'gauge', 'Seconds since the last heartbeat from the peer on this LAN (absent: never heard since the daemon started).'],
  ['tandem_module_vip_held', 'gauge', '1 when this node holds the virtual IP, else 0.'],
  ['tandem_module_resource_state', 'gauge', 'State of each resource this node decides on (checkers, monitored processes, heartbeat.<lan>, rfs.uptodate): 1 for the current state.'],
  ['tandem_module_replication_mode', 'gauge', 'Mode of the module\'s file replication (modules with <rfs>): 1 for the current mode.'],
  ['tandem_module_replication_sent_bytes_total', 'counter', 'Bytes sent on the live replication streams (on the wire: PRIM changes, SECOND acks) since the module\'s replication host started.'],
  ['tandem_module_replication_received_bytes_total', 'counter', 'Bytes received on the live replication streams since the module\'s replication host started.'],
  ['tandem_module_replication_changes_total', 'counter', 'Changes replicated live since the module\'s replication host started: sent (acknowledged by the SECOND) or received.'],
  ['tandem_module_replication_in_flight_changes', 'gauge', 'PRIM: changes sent to the SECOND and not acknowledged yet.'],
  ['tandem_module_replication_queued_changes', 'gauge', 'PRIM: changes waiting for room under the in-flight limit (the application waits).'],
  ['tandem_module_replication_ack_latency_seconds', 'gauge', 'PRIM: seconds from sending a change to the SECOND\'s ack covering it, for the latest ack (the replication lag; absent without a live stream).'],
  ['tandem_module_replication_backlog_changes', 'gauge', 'SECOND: changes received and not applied to the copy yet.'],
  ['tandem_module_replication_backlog_bytes', 'gauge', 'SECOND: bytes of the changes received and not applied yet.'],
  ['tandem_module_resyncing', 'gauge', '1 while this node\'s copy is being reintegrated from the peer, else 0.'],
  ['tandem_module_resync_done_bytes', 'gauge', 'Bytes of the running reintegration copied so far (present only while it runs).'],
  ['tandem_module_resync_size_bytes', 'gauge', 'Bytes the running reintegration has to copy (present only while it runs).'],
  ['tandem_module_resync_rate_bytes_per_second', 'gauge', 'Copy rate of the running reintegration (present only while it runs).'],
  ['tandem_module_last_resync_bytes', 'gauge', 'Bytes copied by the last reintegration this node served or received.'],
  ['tandem_module_last_resync_duration_seconds', 'gauge', 'Duration of the last reintegration this node served or received.'],
  ['tandem_farm_members', 'gauge', 'Nodes serving the farm module as this node sees them (itself included when it serves).'],
  ['tandem_farm_peer_heartbeat_age_seconds', 'gauge', 'Seconds since the last heartbeat from another node of the farm module.'],
  ['tandem_farm_owned_buckets', 'gauge', 'Load-balancing buckets of the group this node accepts now.'],
  ['tandem_farm_buckets', 'gauge', 'Load-balancing buckets of the group in all.'],
  ['tandem_module_pending', 'gauge', '1 for a mirror module installed here that does not run yet (its peer node is not known).'],
  ['tandem_module_config_invalid', 'gauge', '1 for an installed module whose configuration is invalid (not loaded).'],
];

export function renderMetrics(m: MetricsInput): string {
  const fam = new Map<string, Family>(FAMILIES.map(([name, type, help]) => [name, { name, type, help, samples: [] }]));
  const put = (name: string, labels: Labels, value: number) => {
    const f = fam.get(name);
    if (!f) throw new Error(`metric ${name} is not declared in FAMILIES`);
    f.samples.push({ labels, value });
  };
  const oneOf = (name: string, labels: Labels, key: string, values: readonly string[], current: string | null) => {
    for (const v of values) put(name, { ...labels, [key]: v }, v === current ? 1 : 0);
    if (current !== null && !values.includes(current)) put(name, { ...labels, [key]: current }, 1);
  };
  const s = m.status;
  const hb = s.heartbeats;
  const node = { node: s.node };
  put('tandem_daemon_uptime_seconds', node, m.uptimeSeconds);
  put('tandem_heartbeat_messages_sent_total', node, hb.sent);
  put('tandem_heartbeat_messages_received_total', node, hb.received);
  put('tandem_heartbeat_datagrams_sent_total', node, hb.datagrams.sent);
  put('tandem_heartbeat_datagrams_received_total', node, hb.datagrams.received);
  for (const r of DROP_REASONS) put('tandem_heartbeat_dropped_total', { ...node, reason: r }, hb.dropped[r] ?? 0);
  put('tandem_heartbeat_send_errors_total', node, hb.sendErrors);

  for (const v of s.modules) {
    const l = { module: v.module, node: v.node };
    oneOf('tandem_module_state', l, 'state', MIRROR_STATES, v.state);
    put('tandem_module_ready', l, v.ready ? 1 : 0);
    put('tandem_module_takeovers_total', l, m.takeovers[v.module] ?? 0);
    put('tandem_module_alarms', l, v.alarms.length);
    put('tandem_module_consistent', l, v.consistent ? 1 : 0);
    const pl = { ...l, peer: v.peer.node };
    put('tandem_module_peer_reachable', pl, v.peer.reachable ? 1 : 0);
    oneOf('tandem_module_peer_state', pl, 'state', MIRROR_STATES, v.peer.reachable ? v.peer.state : null);
    for (const lan of v.peer.lans) {
      put('tandem_module_heartbeat_up', { ...pl, lan: lan.name }, lan.up ? 1 : 0);
      if (lan.lastHeardMsAgo !== null) put('tandem_module_heartbeat_age_seconds', { ...pl, lan: lan.name }, lan.lastHeardMsAgo / 1000);
    }
    for (const vip of v.vips) put('tandem_module_vip_held', { ...l, addr: vip.addr }, vip.holder === v.node ? 1 : 0);
    for (const r of v.resources) oneOf('tandem_module_resource_state', { ...l, resource: r.name }, 'state', RESOURCE_STATES, r.state);
    if (v.replication) {
      oneOf('tandem_module_replication_mode', l, 'mode', REPLICATION_MODES, v.replication.mode);
      const t = v.replication.traffic;
      if (t) {
        put('tandem_module_replication_sent_bytes_total', l, t.bytesSent);
        put('tandem_module_replication_received_bytes_total', l, t.bytesReceived);
        put('tandem_module_replication_changes_total', { ...l, direction: 'sent' }, t.changesSent);
        put('tandem_module_replication_changes_total', { ...l, direction: 'received' }, t.changesReceived);
        put('tandem_module_replication_in_flight_changes', l, t.inFlight);
        put('tandem_module_replication_queued_changes', l, t.queued);
        if (t.ackRttMs !== null) put('tandem_module_replication_ack_latency_seconds', l, t.ackRttMs / 1000);
        put('tandem_module_replication_backlog_changes', l, t.backlog);
        put('tandem_module_replication_backlog_bytes', l, t.backlogBytes);
      }
      const last = v.replication.lastReintegration;
      if (last) {
        put('tandem_module_last_resync_bytes', l, last.bytes);
        put('tandem_module_last_resync_duration_seconds', l, last.ms / 1000);
      }
    }
    put('tandem_module_resyncing', l, v.reintegration ? 1 : 0);
    if (v.reintegration) {
      put('tandem_module_resync_done_bytes', l, v.reintegration.bytesDone);
      put('tandem_module_resync_size_bytes', l, v.reintegration.bytesTotal);
      put('tandem_module_resync_rate_bytes_per_second', l, v.reintegration.rateBytesPerS);
    }
  }

  for (const f of s.farms) {
    const l = { module: f.module, node: f.node };
    oneOf('tandem_module_state', l, 'state', FARM_STATES, f.state);
    put('tandem_module_ready', l, f.ready ? 1 : 0);
    put('tandem_farm_members', l, f.members.length);
    for (const p of f.peers) put('tandem_farm_peer_heartbeat_age_seconds', { ...l, peer: p.node }, p.lastHeardMsAgo / 1000);
    for (const g of f.groups) {
      put('tandem_farm_owned_buckets', { ...l, group: g.name }, g.owned);
      put('tandem_farm_buckets', { module: f.module, group: g.name }, g.buckets);
    }
    for (const vip of f.vips) put('tandem_module_vip_held', { ...l, addr: vip.addr }, vip.held ? 1 : 0);
    for (const r of f.resources) oneOf('tandem_module_resource_state', { ...l, resource: r.name }, 'state', RESOURCE_STATES, r.state);
  }
  for (const p of s.pending) put('tandem_module_pending', { module: p.module, node: s.node }, 1);
  for (const i of s.invalid) put('tandem_module_config_invalid', { module: i.module, node: s.node }, 1);

  const out: string[] = [];
  for (const f of fam.values()) {
    out.push(`# HELP ${f.name} ${escapeHelp(f.help)}`, `# TYPE ${f.name} ${f.type}`);
    for (const x of f.samples) out.push(`${f.name}${labelText(x.labels)} ${numberText(x.value)}`);
  }
  return out.join('\n') + '\n';
}

/** The metric names of every family (README's list; tests check each has HELP and TYPE). */
export const METRIC_NAMES: readonly string[] = FAMILIES.map(([n]) => n);

/** Label value escaping of the text format: backslash, double quote and line feed. */
export function escapeLabelValue(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function labelText(l: Labels): string {
  const e = Object.entries(l);
  return e.length ? `{${e.map(([k, v]) => `${k}="${escapeLabelValue(v)}"`).join(',')}}` : '';
}

function numberText(n: number): string {
  if (Number.isNaN(n)) return 'NaN';
  if (n === Infinity) return '+Inf';
  if (n === -Infinity) return '-Inf';
  return String(n);
}
