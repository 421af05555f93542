/**
 * The pure renderer of the daemon's Prometheus metrics (src/daemon/metrics.ts): a StatusView in, exposition text out.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { escapeLabelValue, METRIC_NAMES, renderMetrics, type MetricsInput } from '../../../src/daemon/metrics.js';
import type { ModuleView, StatusView } from '../../../src/daemon/views.js';
import type { FarmView } from '../../../src/daemon/farm-view.js';

function moduleView(over: Partial<ModuleView> = {}): ModuleView {
  return {
    module: 'demo', node: 'node1', state: 'PRIM', ready: true, waitReason: null, generation: 'g1', consistent: true,
    peer: {
      node: 'node2', reachable: true, state: 'SECOND', ready: true,
      lans: [{ name: 'default', up: true, lastHeardMsAgo: 150 }, { name: 'replication', up: false, lastHeardMsAgo: null }],
    },
    vips: [{ addr: '198.51.100.10', holder: 'node1' }],
    alarms: [],
    reintegration: null,
    replication: { role: 'primary', mode: 'live', dirs: ['/srv/demo/data'], quarantines: [], lastReintegration: { mode: 'full', bytes: 4096, ms: 1500, passes: 1, freezeMs: 3, at: '2026-01-01T00:00:00.000Z' },
      traffic: { bytesSent: 9000, bytesReceived: 300, changesSent: 12, changesReceived: 0, inFlight: 2, queued: 1, ackRttMs: 4, backlog: 0, backlogBytes: 0 } },
    resources: [
      { name: 'heartbeat.default', state: 'up', since: null, detail: '', active: true, by: 'derived', when: null },
      { name: 'custom.db', state: 'down', since: '2026-01-01T00:00:00.000Z', detail: 'x', active: true, by: 'checker', when: 'prim' },
    ],
    rule: null,
    loops: { count: 0, max: 3, intervalMs: 86400000, exhausted: false, recent: [] },
    switches: { errd: true, checkers: true, failover: true },
    ...over,
  };
}

function farmView(): FarmView {
  return {
    mode: 'farm', module: 'web', node: 'node1', state: 'UP', ready: true, waitReason: null, members: ['node1', 'node2'], holdBack: null,
    peers: [{ node: 'node2', state: 'UP', ready: true, lastHeardMsAgo: 250, lans: ['default'] }],
    groups: [{ name: 'http', buckets: 256, owned: 128, shares: { node1: 128, node2: 128 } }],
    vips: [{ addr: '198.51.100.20', held: true }],
    resources: [],
  };
}

function input(modules: ModuleView[] = [moduleView()], farms: FarmView[] = []): MetricsInput {
  const status: StatusView = {
    node: 'node1', pid: 42,
    heartbeats: { sent: 10, received: 9, datagrams: { sent: 5, received: 4 }, dropped: { badMac: 2, replay: 0, stale: 1, badSource: 0, malformed: 0, unknownNode: 0, misdirected: 0 }, sendErrors: 0 },
    modules, farms, pending: [{ module: 'later', reason: 'peer unknown' }], invalid: [{ module: 'broken', error: 'bad xml' }],
  };
  return { status, takeovers: { demo: 2 }, uptimeSeconds: 12.5 };
}

/** name{labels} value lines → map "name{labels}" → value (the label text as rendered) */
function samples(text: string): Map<string, number> {
  const m = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    m.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return m;
}

test('every family has one HELP and one TYPE line, before its samples; every sample belongs to a declared family', () => {
  const text = renderMetrics(input([moduleView(), moduleView({ module: 'other', reintegration: { bytesDone: 1, bytesTotal: 2, rateBytesPerS: 3 }, state: 'SECOND', ready: false })], [farmView()]));
  const lines = text.split('\n');
  assert.is(lines.at(-1), '', 'ends with a line feed');
  for (const name of METRIC_NAMES) {
    assert.is(lines.filter((l) => l.startsWith(`# HELP ${name} `)).length, 1, `HELP of ${name}`);
    assert.is(lines.filter((l) => l === `# TYPE ${name} gauge` || l === `# TYPE ${name} counter`).length, 1, `TYPE of ${name}`);
    assert.ok(name.startsWith('tandem_'), name);
  }
  let current = '';
  for (const l of lines) {
    if (l.startsWith('# TYPE ')) {
      current = l.split(' ')[2]!;
      if (l.endsWith(' counter')) assert.ok(current.endsWith('_total'), `counter ${current} ends in _total`);
      else assert.not.ok(current.endsWith('_total'), `gauge ${current} does not end in _total`);
      continue;
    }
    if (!l || l.startsWith('#')) continue;
    const name = l.split(/[{ ]/)[0]!;
    assert.is(name, current, `sample ${l} under its own TYPE line`);
    assert.ok(METRIC_NAMES.includes(name));
  }
});

test('module state: one gauge per state, 1 for the current one; ready, takeovers, peer state and VIP', () => {
  const s = samples(renderMetrics(input()));
  assert.is(s.get('tandem_module_state{module="demo",node="node1",state="PRIM"}'), 1);
  for (const st of ['STOP', 'WAIT', 'ALONE', 'SECOND']) assert.is(s.get(`tandem_module_state{module="demo",node="node1",state="${st}"}`), 0, st);
  assert.is(s.get('tandem_module_ready{module="demo",node="node1"}'), 1);
  assert.is(s.get('tandem_module_takeovers_total{module="demo",node="node1"}'), 2);
  assert.is(s.get('tandem_module_peer_reachable{module="demo",node="node1",peer="node2"}'), 1);
  assert.is(s.get('tandem_module_peer_state{module="demo",node="node1",peer="node2",state="SECOND"}'), 1);
  assert.is(s.get('tandem_module_vip_held{module="demo",node="node1",addr="198.51.100.10"}'), 1);
  assert.is(s.get('tandem_daemon_uptime_seconds{node="node1"}'), 12.5);
});

test('an unreachable peer: every peer state 0 (its last beacon is not its state now)', () => {
  const v = moduleView();
  v.peer = { ...v.peer, reachable: false, state: 'PRIM' };
  const s = samples(renderMetrics(input([v])));
  assert.is(s.get('tandem_module_peer_reachable{module="demo",node="node1",peer="node2"}'), 0);
  for (const st of ['STOP', 'WAIT', 'ALONE', 'PRIM', 'SECOND']) assert.is(s.get(`tandem_module_peer_state{module="demo",node="node1",peer="node2",state="${st}"}`), 0, st);
});

test('heartbeat age in seconds per LAN; a LAN never heard on has no age sample (not a fake 0)', () => {
  const s = samples(renderMetrics(input()));
  assert.is(s.get('tandem_module_heartbeat_age_seconds{module="demo",node="node1",peer="node2",lan="default"}'), 0.15);
  assert.is(s.get('tandem_module_heartbeat_up{module="demo",node="node1",peer="node2",lan="default"}'), 1);
  assert.is(s.get('tandem_module_heartbeat_up{module="demo",node="node1",peer="node2",lan="replication"}'), 0);
  assert.not.ok(s.has('tandem_module_heartbeat_age_seconds{module="demo",node="node1",peer="node2",lan="replication"}'));
});

test('resync gauges only while a reintegration runs; the last one\'s bytes and duration', () => {
  const idle = samples(renderMetrics(input()));
  assert.is(idle.get('tandem_module_resyncing{module="demo",node="node1"}'), 0);
  assert.not.ok([...idle.keys()].some((k) => k.startsWith('tandem_module_resync_done_bytes')));
  assert.is(idle.get('tandem_module_last_resync_bytes{module="demo",node="node1"}'), 4096);
  assert.is(idle.get('tandem_module_last_resync_duration_seconds{module="demo",node="node1"}'), 1.5);
  assert.is(idle.get('tandem_module_replication_mode{module="demo",node="node1",mode="live"}'), 1);
  assert.is(idle.get('tandem_module_replication_mode{module="demo",node="node1",mode="recording"}'), 0);
  const busy = samples(renderMetrics(input([moduleView({ state: 'SECOND', ready: false, reintegration: { bytesDone: 1000, bytesTotal: 8000, rateBytesPerS: 500 } })])));
  assert.is(busy.get('tandem_module_resyncing{module="demo",node="node1"}'), 1);
  assert.is(busy.get('tandem_module_resync_done_bytes{module="demo",node="node1"}'), 1000);
  assert.is(busy.get('tandem_module_resync_size_bytes{module="demo",node="node1"}'), 8000);
  assert.is(busy.get('tandem_module_resync_rate_bytes_per_second{module="demo",node="node1"}'), 500);
});

test('replication traffic: byte and change counters, in flight, ack latency (absent without an ack)', () => {
  const s = samples(renderMetrics(input()));
  assert.is(s.get('tandem_module_replication_sent_bytes_total{module="demo",node="node1"}'), 9000);
  assert.is(s.get('tandem_module_replication_received_bytes_total{module="demo",node="node1"}'), 300);
  assert.is(s.get('tandem_module_replication_changes_total{module="demo",node="node1",direction="sent"}'), 12);
  assert.is(s.get('tandem_module_replication_changes_total{module="demo",node="node1",direction="received"}'), 0);
  assert.is(s.get('tandem_module_replication_in_flight_changes{module="demo",node="node1"}'), 2);
  assert.is(s.get('tandem_module_replication_queued_changes{module="demo",node="node1"}'), 1);
  assert.is(s.get('tandem_module_replication_ack_latency_seconds{module="demo",node="node1"}'), 0.004);
  assert.is(s.get('tandem_module_replication_backlog_bytes{module="demo",node="node1"}'), 0);
  const v = moduleView();
  v.replication = { ...v.replication!, traffic: { ...v.replication!.traffic!, ackRttMs: null } };
  assert.not.ok([...samples(renderMetrics(input([v]))).keys()].some((k) => k.startsWith('tandem_module_replication_ack_latency_seconds')));
  const none = moduleView();
  none.replication = { ...none.replication!, traffic: undefined };
  assert.not.ok([...samples(renderMetrics(input([none]))).keys()].some((k) => k.startsWith('tandem_module_replication_sent_bytes_total')), 'traffic not known: absent');
});

test('resources: one gauge per state; a module without <rfs> has no replication mode', () => {
  const s = samples(renderMetrics(input([moduleView({ replication: null })])));
  assert.is(s.get('tandem_module_resource_state{module="demo",node="node1",resource="custom.db",state="down"}'), 1);
  assert.is(s.get('tandem_module_resource_state{module="demo",node="node1",resource="custom.db",state="up"}'), 0);
  assert.is(s.get('tandem_module_resource_state{module="demo",node="node1",resource="heartbeat.default",state="up"}'), 1);
  assert.not.ok([...s.keys()].some((k) => k.startsWith('tandem_module_replication_mode')));
});

test('daemon heartbeats: counters, drops by reason; pending and invalid modules', () => {
  const s = samples(renderMetrics(input()));
  assert.is(s.get('tandem_heartbeat_messages_sent_total{node="node1"}'), 10);
  assert.is(s.get('tandem_heartbeat_messages_received_total{node="node1"}'), 9);
  assert.is(s.get('tandem_heartbeat_datagrams_sent_total{node="node1"}'), 5);
  assert.is(s.get('tandem_heartbeat_dropped_total{node="node1",reason="badMac"}'), 2);
  assert.is(s.get('tandem_heartbeat_dropped_total{node="node1",reason="stale"}'), 1);
  assert.is(s.get('tandem_heartbeat_dropped_total{node="node1",reason="misdirected"}'), 0);
  assert.is(s.get('tandem_module_pending{module="later",node="node1"}'), 1);
  assert.is(s.get('tandem_module_config_invalid{module="broken",node="node1"}'), 1);
});

test('farm: state, owned buckets per group, peer heartbeat age, members', () => {
  const s = samples(renderMetrics(input([], [farmView()])));
  assert.is(s.get('tandem_module_state{module="web",node="node1",state="UP"}'), 1);
  assert.is(s.get('tandem_module_state{module="web",node="node1",state="STOP"}'), 0);
  assert.not.ok(s.has('tandem_module_state{module="web",node="node1",state="PRIM"}'), 'farm states only');
  assert.is(s.get('tandem_farm_owned_buckets{module="web",node="node1",group="http"}'), 128);
  assert.is(s.get('tandem_farm_buckets{module="web",group="http"}'), 256);
  assert.is(s.get('tandem_farm_peer_heartbeat_age_seconds{module="web",node="node1",peer="node2"}'), 0.25);
  assert.is(s.get('tandem_farm_members{module="web",node="node1"}'), 2);
  assert.is(s.get('tandem_module_vip_held{module="web",node="node1",addr="198.51.100.20"}'), 1);
});

test('label values escape backslash, double quote and line feed', () => {
  assert.is(escapeLabelValue('a\\b"c\nd'), 'a\\\\b\\"c\\nd');
  const text = renderMetrics(input([moduleView({ module: 'we"ird\\na\nme' })]));
  assert.ok(text.includes('tandem_module_ready{module="we\\"ird\\\\na\\nme",node="node1"} 1'), text);
  for (const l of text.split('\n')) assert.not.match(l, /^[^#a-z]/, `no line starts with a broken-off label value: ${l}`);
});

test('a state not in the known list is still shown (1), never dropped', () => {
  const s = samples(renderMetrics(input([moduleView({ state: 'LIMBO' as ModuleView['state'] })])));
  assert.is(s.get('tandem_module_state{module="demo",node="node1",state="LIMBO"}'), 1);
  assert.is(s.get('tandem_module_state{module="demo",node="node1",state="PRIM"}'), 0);
});

test.run();
