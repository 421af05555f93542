import { spawnSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { waitForPair } from '../../src/lab/failover.js';
import type { Lab } from '../../src/lab/lab.js';
import { createMirrorLab, DEMO_PORT, DEMO_VIP } from '../../src/lab/mirror-lab.js';
import { controlRequest } from '../../src/daemon/control.js';

// The daemon's Prometheus endpoint (TANDEM_METRICS) on real daemons in a mirror lab: scraped with curl from inside
// each node's namespace (its own loopback), checked by `promtool check metrics`, values followed through a power-off
// of node2. A wildcard address is refused at the daemon's start (exit 10, what to do).

const ADDR = '127.0.0.1:9464';
const TIMEOUT_S = 1;

/** name{labels} → value of one scrape */
function samples(text: string): Map<string, number> {
  const m = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    m.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return m;
}

async function scrape(l: Lab, node: string): Promise<string> {
  const r = await l.exec(node, ['curl', '-sS', '--fail', '--max-time', '5', `http://${ADDR}/metrics`], { reject: false });
  if (r.code !== 0) throw new Error(`curl on ${node} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

function promtool(text: string): void {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  assert.is(r.error, undefined, 'promtool runs (scripts/setup.sh installs the prometheus package)');
  assert.is(r.status, 0, `promtool check metrics: ${r.stdout}${r.stderr}`);
}

const m1 = 'module="demo",node="node1"';
const p1 = `${m1},peer="node2"`;

test('metrics: PRIM on node1 scraped with curl and promtool-clean; node2 powered off: peer lost, heartbeat age grows; a wildcard address refused', async () => {
  let lab: Lab | null = null;
  const t0 = performance.now();
  try {
    lab = await createMirrorLab({
      pulse: '200ms', timeout: `${TIMEOUT_S}s`, replicate: true,
      spec: { daemonEnv: { TANDEM_ERRD_OWN_NETNS: '1', TANDEM_METRICS: ADDR } },
    });
    const l = lab;
    const sock = (n: string) => `${l.paths(n).home}/control.sock`;
    for (const n of ['node1', 'node2']) await l.cli(n, ['start', '-m', 'demo']);
    await l.waitFor('both WAIT', async () => {
      const s = await Promise.all(['node1', 'node2'].map((n) => controlRequest(sock(n), 'status', 'demo') as Promise<{ modules: { state: string; ready: boolean }[] }>));
      return s.every((v) => v.modules[0]!.state === 'WAIT' && v.modules[0]!.ready);
    }, 20_000);
    await l.cli('node1', ['prim', '-m', 'demo']);
    await l.waitFor('node1 ALONE', async () => samples(await scrape(l, 'node1')).get(`tandem_module_state{${m1},state="ALONE"}`) === 1, 20_000);
    await l.cli('node2', ['second', '-m', 'demo']);
    await waitForPair(l, 'node1', 'node2');

    // ── PRIM/SECOND, both heard ──
    const text1 = await l.waitFor('node1 scraped PRIM with its peer SECOND', async () => {
      const t = await scrape(l, 'node1');
      const s = samples(t);
      return s.get(`tandem_module_state{${m1},state="PRIM"}`) === 1 && s.get(`tandem_module_peer_state{${p1},state="SECOND"}`) === 1 ? t : false;
    }, 20_000);
    promtool(text1);
    const s1 = samples(text1);
    for (const st of ['STOP', 'WAIT', 'ALONE', 'SECOND']) assert.is(s1.get(`tandem_module_state{${m1},state="${st}"}`), 0, st);
    assert.is(s1.get(`tandem_module_ready{${m1}}`), 1);
    assert.is(s1.get(`tandem_module_peer_reachable{${p1}}`), 1);
    for (const lan of ['default', 'replication']) {
      const age = s1.get(`tandem_module_heartbeat_age_seconds{${p1},lan="${lan}"}`);
      assert.ok(age !== undefined && age >= 0 && age < TIMEOUT_S, `heartbeat age on ${lan} (${age} s) below the ${TIMEOUT_S} s timeout`);
      assert.is(s1.get(`tandem_module_heartbeat_up{${p1},lan="${lan}"}`), 1);
    }
    assert.is(s1.get(`tandem_module_replication_mode{${m1},mode="live"}`), 1, 'the demo data directory replicates live');
    assert.is(s1.get(`tandem_module_vip_held{${m1},addr="198.51.100.10"}`), 1);
    assert.ok(s1.get('tandem_heartbeat_messages_received_total{node="node1"}')! > 0);
    assert.is(s1.get(`tandem_module_takeovers_total{${m1}}`), 0, 'node1 took nothing over: it went WAIT → ALONE → PRIM');

    // ── live replication: a request through the VIP writes the demo's counter, replicated to node2 ──
    const sent0 = s1.get(`tandem_module_replication_changes_total{${m1},direction="sent"}`)!;
    assert.ok(sent0 !== undefined, 'replication traffic is shown');
    const served = await l.httpGet('client', `http://${DEMO_VIP}:${DEMO_PORT}/`, 2000);
    assert.ok(served.ok, `the demo answers on the VIP (${served.error ?? served.status})`);
    const live = await l.waitFor('node1 counts the replicated change', async () => {
      const s = samples(await scrape(l, 'node1'));
      return s.get(`tandem_module_replication_changes_total{${m1},direction="sent"}`)! > sent0 ? s : false;
    }, 10_000);
    assert.ok(live.get(`tandem_module_replication_sent_bytes_total{${m1}}`)! > 0);
    assert.ok(live.get(`tandem_module_replication_received_bytes_total{${m1}}`)! > 0, 'the SECOND\'s acks');
    const rtt = live.get(`tandem_module_replication_ack_latency_seconds{${m1}}`);
    assert.ok(rtt !== undefined && rtt >= 0, `ack latency shown (${rtt} s)`);
    console.log(`  node1 → node2 live: ${live.get(`tandem_module_replication_changes_total{${m1},direction="sent"}`)} changes, ${live.get(`tandem_module_replication_sent_bytes_total{${m1}}`)} bytes sent, latest ack ${(rtt! * 1000).toFixed(1)} ms`);

    const text2 = await scrape(l, 'node2');
    promtool(text2);
    const s2 = samples(text2);
    assert.is(s2.get('tandem_module_state{module="demo",node="node2",state="SECOND"}'), 1);
    assert.is(s2.get('tandem_module_peer_state{module="demo",node="node2",peer="node1",state="PRIM"}'), 1);
    assert.is(s2.get('tandem_module_replication_mode{module="demo",node="node2",mode="live"}'), 1);
    assert.ok(s2.get('tandem_module_replication_changes_total{module="demo",node="node2",direction="received"}')! > 0, 'node2 received changes');
    assert.ok(s2.get('tandem_module_replication_received_bytes_total{module="demo",node="node2"}')! > 0);

    // ── node2 loses power ──
    await l.poweroff('node2');
    // ALONE is transient a moment (its replication still failing, then recording): wait for it settled
    const after = await l.waitFor('node1 scraped ALONE (ready, recording) with node2 unreachable', async () => {
      const t = await scrape(l, 'node1');
      const s = samples(t);
      return s.get(`tandem_module_state{${m1},state="ALONE"}`) === 1 && s.get(`tandem_module_ready{${m1}}`) === 1
        && s.get(`tandem_module_replication_mode{${m1},mode="recording"}`) === 1 && s.get(`tandem_module_peer_reachable{${p1}}`) === 0 ? t : false;
    }, 20_000);
    promtool(after);
    const s3 = samples(after);
    for (const st of ['STOP', 'WAIT', 'ALONE', 'PRIM', 'SECOND']) assert.is(s3.get(`tandem_module_peer_state{${p1},state="${st}"}`), 0, `peer state ${st} 0 once node2 is lost`);
    for (const lan of ['default', 'replication']) {
      const age = s3.get(`tandem_module_heartbeat_age_seconds{${p1},lan="${lan}"}`);
      assert.ok(age !== undefined && age >= TIMEOUT_S, `heartbeat age on ${lan} (${age} s) past the ${TIMEOUT_S} s timeout`);
      assert.is(s3.get(`tandem_module_heartbeat_up{${p1},lan="${lan}"}`), 0);
    }
    const later = await l.waitFor('the age keeps growing', async () => {
      const a = samples(await scrape(l, 'node1')).get(`tandem_module_heartbeat_age_seconds{${p1},lan="default"}`)!;
      return a > s3.get(`tandem_module_heartbeat_age_seconds{${p1},lan="default"}`)! ? a : false;
    }, 10_000);
    assert.ok(later > TIMEOUT_S);

    // ── a wildcard address: the daemon does not start (checked before anything is bound, so node1's daemon runs on) ──
    const r = await l.cli('node1', ['daemon'], { env: { TANDEM_METRICS: '0.0.0.0:9464' }, reject: false, timeoutMs: 20_000 });
    assert.is(r.code, 10, `exit code (stderr: ${r.stderr})`);
    assert.match(r.stderr, /0\.0\.0\.0 is the wildcard address/);
    assert.match(r.stderr, /TANDEM_METRICS_ALLOW_REMOTE=1/);
    assert.ok(l.daemonPid('node1') !== undefined, 'the running daemon of node1 is untouched');
    console.log(`  metrics lab: ${((performance.now() - t0) / 1000).toFixed(1)} s; scrape of node1 after the power-off: ${after.length} bytes, ${s3.size} samples`);
  } finally {
    await lab?.down();
  }
});

test.run();
