import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { controlRequest } from '../../src/daemon/control.js';
import type { StatusView } from '../../src/daemon/views.js';
import { APPENDER_MODULE, AppendRecorder, createAppenderLab, recordsDigest } from '../../src/lab/appender.js';
import type { Lab } from '../../src/lab/lab.js';
import { controlSocketOf, moduleLogOf, waitForDaemon } from '../../src/lab/mirror-lab.js';
import { moduleState, startPair, waitForStates } from '../../src/lab/postgres.js';

// The replicated directories are served by a per-module replication host that outlives the daemon (issue 8), on one
// appender lab (examples/appender: "ok <id>" only after the record is fdatasynced in its replicated directory), under
// the fsync appender's load through the VIP:
// 1. kill -9 of the PRIM's daemon: the application keeps running (same pid) and keeps acknowledging while no daemon
//    runs; the restarted daemon reattaches to the same host; PRIM/SECOND again without a failover (neither node's
//    generation moves: the peer never went ALONE); 0 acknowledged records lost, copies identical.
// 2. kill -9 of the PRIM's replication host: the application is on a dead mount, a local failure: the PRIM stops it
//    (forced), the SECOND takes over, the old PRIM comes back as SECOND; 0 acknowledged records lost.

const M = APPENDER_MODULE;
const NODES = ['node1', 'node2'] as const;
const logOf = (l: Lab, n: string) => moduleLogOf(l, n, M);
const status = async (l: Lab, n: string) =>
  ((await controlRequest(controlSocketOf(l, n), 'status', M, undefined, { timeoutMs: 3000 })) as StatusView).modules[0]!;
const readPid = (l: Lab, n: string, file: string) => {
  try {
    return Number(fs.readFileSync(path.join(l.paths(n).run, file), 'utf8').trim()) || null;
  } catch {
    return null;
  }
};
const appenderPid = (l: Lab, n: string) => readPid(l, n, 'appender.pid');
const hostPid = (l: Lab, n: string) => readPid(l, n, `${M}.host.pid`);
const alive = (pid: number | null, what: string) => {
  try {
    return pid !== null && fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(what);
  } catch {
    return false;
  }
};
const s1 = (ms: number) => (ms / 1000).toFixed(1);

/** Waits until both copies of records.log are byte-identical (the SECOND's last writes may still be landing). */
async function identical(l: Lab, prim: string, other: string): Promise<{ size: number }> {
  return l.waitFor(`records.log identical on ${prim} and ${other}`, async () => {
    const a = recordsDigest(l, prim);
    const b = recordsDigest(l, other);
    return a && a.sha256 === b?.sha256 ? a : false;
  }, 15_000, 250);
}

test('daemon restart on the PRIM keeps the application and its mount; a dead replication host is a local failure', async () => {
  let lab: Lab | null = null;
  let rec: AppendRecorder | null = null;
  let ok = false;
  const t0 = performance.now();
  try {
    // The peer must not lose the PRIM's heartbeats for longer than `timeout` while its daemon restarts (as under
    // systemd's Restart=always): a daemon start takes about a second here, so the defaults (500 ms / 5 s).
    lab = await createAppenderLab({ pulse: '500ms', timeout: '5s' });
    const l = lab;
    await startPair(l, 'node1', 'node2', 60_000, M);
    const app = appenderPid(l, 'node1');
    const host = hostPid(l, 'node1');
    assert.ok(alive(app, 'appender.mjs'), `the appender runs on node1 (pid ${app})`);
    assert.ok(alive(host, '__replication-host'), `node1's replication host runs (pid ${host})`);
    const gens = { node1: (await status(l, 'node1')).generation, node2: (await status(l, 'node2')).generation };

    rec = new AppendRecorder(l);
    rec.start();
    const r = rec;
    await l.waitFor('appends acknowledged through the VIP', async () => r.acknowledged.length >= 50, 30_000, 50);

    // ── 1. kill -9 of the PRIM's daemon under load ──
    const daemon = l.daemonPid('node1');
    const logAtKill = logOf(l, 'node1').length;
    assert.ok(l.killDaemon('node1', 'SIGKILL'), 'the daemon of node1 was killed');
    await l.waitFor('node1 daemon gone', async () => !alive(daemon ?? null, 'daemon'), 10_000, 20);
    const tKill = performance.now();
    const atKill = r.lastSent;
    await l.waitFor('appends acknowledged while node1 has no daemon', async () => r.lastAcked > atKill + 20, 3_000, 20);
    const ackedWithoutDaemon = r.acknowledged.filter((id) => id > atKill).length;
    assert.ok(alive(host, '__replication-host'), 'the replication host outlived the daemon');

    l.spawnDaemon('node1');
    await waitForDaemon(l, 'node1');
    await waitForStates(l, { node1: 'PRIM', node2: 'SECOND' }, 60_000, M);
    await l.waitFor('node1 PRIM ready', async () => (await status(l, 'node1')).ready, 30_000, 100);
    const tBack = performance.now();
    const atBack = r.lastSent;
    await l.waitFor('appends acknowledged after the restart', async () => r.lastAcked > atBack + 20, 30_000, 20);

    assert.is(appenderPid(l, 'node1'), app, 'the same appender process (never restarted)');
    assert.ok(alive(app, 'appender.mjs'), 'and it still runs');
    assert.is(hostPid(l, 'node1'), host, 'the same replication host');
    const after = { node1: (await status(l, 'node1')).generation, node2: (await status(l, 'node2')).generation };
    assert.equal(after, gens, 'no new generation on either node: nobody went ALONE, no failover');
    const log1 = logOf(l, 'node1');
    assert.match(log1, /reattached to the replication host of appender \(pid \d+, primary layout\)/);
    assert.not.match(log1.slice(logAtKill), /stop_prim force|appender stopped|then starting it again/, 'nothing was stopped');
    const v1 = r.verify('node1');
    assert.is(v1.missing.length, 0, `${v1.missing.length} acknowledged appends missing on node1: ${v1.missing.slice(0, 20).join(', ')}`);
    console.log(`  daemon of node1 killed: ${ackedWithoutDaemon} appends acknowledged while it was dead; PRIM/SECOND again ${s1(tBack - tKill)} s after the kill; same appender pid ${app}, same host pid ${host}, generations unchanged (${gens.node1})`);

    // ── 2. kill -9 of the PRIM's replication host ──
    process.kill(host!, 'SIGKILL');
    const tHost = performance.now();
    // node2 takes over: ALONE, or already PRIM when node1 rejoined before node2's start_prim ended (ALONE is then
    // ready for no time at all, too briefly for a poll to see)
    await l.waitFor('node2 ALONE or PRIM', async () => ['ALONE', 'PRIM'].includes(await moduleState(l, 'node2', M)), 30_000, 100);
    const atTakeover = r.lastSent;
    await l.waitFor('an append acknowledged by node2', async () => r.lastAcked > atTakeover, 30_000, 20);
    await waitForStates(l, { node2: 'PRIM', node1: 'SECOND' }, 120_000, M);
    const tPair = performance.now();
    assert.not.ok(alive(app, 'appender.mjs'), 'the appender on the dead mount was stopped');
    assert.match(logOf(l, 'node1'), /replication host of appender \(pid \d+\) died while serving the primary layout/);

    const stats = await rec.stop();
    rec = null;
    const v2 = r.verify('node2');
    const copy = await identical(l, 'node2', 'node1');
    console.log(`  host of node1 killed: node2 took over; PRIM/SECOND (node2/node1) after ${s1(tPair - tHost)} s; ` +
      `${stats.sent} sent, ${stats.acknowledged.length} acknowledged, ${v2.missing.length} missing on node2, copies identical (${copy.size} bytes)`);
    assert.is(new Set(stats.acknowledged).size, stats.acknowledged.length, 'no id acknowledged twice');
    assert.is(v2.missing.length, 0, `${v2.missing.length} acknowledged appends missing on node2: ${v2.missing.slice(0, 20).join(', ')}`);
    assert.is(await moduleState(l, 'node1', M), 'SECOND');
    ok = true;
  } finally {
    const left = rec ? await rec.stop().catch(() => undefined) : undefined;
    if (left && !ok) console.log(`--- recorder: ${left.sent} sent, ${left.acknowledged.length} acknowledged; last errors:\n${left.lastErrors.join('\n')}`);
    if (!ok && lab) for (const n of NODES) console.log(`--- ${n} ${M}.log (tail)\n${logOf(lab, n).split('\n').slice(-60).join('\n')}`);
    await lab?.down();
    console.log(`  total (with teardown): ${s1(performance.now() - t0)} s`);
  }
});

test.run();
