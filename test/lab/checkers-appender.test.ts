import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { StatusView } from '../../src/daemon/views.js';
import { controlRequest } from '../../src/daemon/control.js';
import {
  APPENDER_DATA, APPENDER_MODULE, APPENDER_PORT, APPENDER_VIP, AppendRecorder, createAppenderLab, recordsDigest,
} from '../../src/lab/appender.js';
import type { Lab } from '../../src/lab/lab.js';
import { controlSocketOf, installLabModule, mirrorUserconfig, moduleLogOf, type LabModule, type MirrorLabOptions } from '../../src/lab/mirror-lab.js';
import { moduleState, startPair, waitForStates } from '../../src/lab/postgres.js';

// The checkers with the fsync appender as the application (its acknowledged records must all survive): a process that
// keeps dying is restarted until maxloop, then handed over; the PRIM's production link lost while the replication
// LAN stays up moves the module without a split brain. One lab for both cases.

const OPTS: MirrorLabOptions = { pulse: '200ms', timeout: '1s' };
const NODES = ['node1', 'node2'];
const APPENDER_PROC = '<proc name="appender" nameregex="^node$" argregex="appender\\.mjs" action="restart"/>';
let lab: Lab;

function appenderWith(extra: string, serviceAttrs = '', defaultprim?: string): LabModule {
  return {
    name: APPENDER_MODULE,
    userconfig: (o, w) => mirrorUserconfig({ ...o, ...(defaultprim ? { defaultprim } : {}) }, w, {
      vip: APPENDER_VIP, rfsDir: APPENDER_DATA, nicestop: '30s', forcestop: '10s',
      vars: { APPENDER_DIR: APPENDER_DATA, APPENDER_PORT: String(APPENDER_PORT) }, extra, serviceAttrs,
    }),
  };
}

async function view(node: string) {
  const v = (await controlRequest(controlSocketOf(lab, node), 'status', APPENDER_MODULE, undefined, { timeoutMs: 3000 })) as StatusView;
  return v.modules[0]!;
}

function appenderPid(node: string): number {
  return Number(fs.readFileSync(path.join(lab.paths(node).run, 'appender.pid'), 'utf8').trim());
}

const logOf = (n: string) => moduleLogOf(lab, n, APPENDER_MODULE);

async function form(module: LabModule) {
  await installLabModule(lab, { ...OPTS, module });
  for (const n of NODES) await lab.cli(n, ['config', '-m', APPENDER_MODULE]);
  if ((await view('node1')).generation === null) return startPair(lab, 'node1', 'node2', 60_000, APPENDER_MODULE);
  for (const n of NODES) await lab.cli(n, ['start', '-m', APPENDER_MODULE]);
  await lab.waitFor('PRIM and SECOND', async () => (await Promise.all(NODES.map((n) => moduleState(lab, n, APPENDER_MODULE)))).sort().join() === 'PRIM,SECOND', 60_000, 100);
}

function labCase(name: string, fn: () => Promise<void>) {
  test(name, async () => {
    try {
      await fn();
    } catch (e) {
      for (const n of NODES) console.log(`--- ${n} appender.log (tail)\n${logOf(n).split('\n').slice(-50).join('\n')}`);
      throw e;
    } finally {
      await lab.heal();
      for (const n of NODES) await lab.cli(n, ['stop', '-m', APPENDER_MODULE], { reject: false });
      await waitForStates(lab, { node1: 'STOP', node2: 'STOP' }, 60_000, APPENDER_MODULE);
      for (const n of NODES) await lab.cli(n, ['resetloop', '-m', APPENDER_MODULE], { reject: false });
    }
  });
}

test.before(async () => {
  lab = await createAppenderLab(OPTS);
});

test.after(async () => {
  await lab?.down({ keepDir: process.env.TANDEM_LAB_KEEP === '1' });
});

labCase('errd: the appender dies again and again → after maxloop restarts it moves to node2 with every acknowledged record; node1 does not take it back', async () => {
  await form(appenderWith(`<errd polltimer="200ms">${APPENDER_PROC}</errd>`, 'maxloop="2"', 'node1'));
  const rec = new AppendRecorder(lab);
  rec.start();
  try {
    for (let kill = 1; kill <= 3; kill++) {
      await lab.waitFor('appends acknowledged', async () => rec.acknowledged.length >= kill * 30, 30_000, 20);
      const pid = appenderPid('node1');
      const sent = rec.lastSent;
      process.kill(pid, 'SIGKILL');
      if (kill < 3) {
        await lab.waitFor(`restart ${kill} on node1`, async () => rec.lastAcked > sent, 30_000, 20);
        await waitForStates(lab, { node1: 'PRIM', node2: 'SECOND' }, 30_000, APPENDER_MODULE);
      }
    }
    // the third death is one more than maxloop: node1 hands over to node2 and rejoins as SECOND
    await waitForStates(lab, { node2: 'PRIM', node1: 'SECOND' }, 60_000, APPENDER_MODULE);
    const sentAtMove = rec.lastSent;
    await lab.waitFor('node2 acknowledging', async () => rec.lastAcked > sentAtMove, 30_000, 20);
    const v1 = await view('node1');
    assert.ok(v1.loops.exhausted, 'node1 is out of restarts');
    assert.ok(v1.alarms.some((a) => a.code === 'maxloop'));
    // defaultprim is node1, but node1 may not run the application: node2 says so instead of giving it back
    await lab.waitFor('node2 keeping the primary role', async () => /not giving the primary role back to node1/.test(logOf('node2')), 20_000, 100);
    assert.is(await moduleState(lab, 'node2', APPENDER_MODULE), 'PRIM');
  } finally {
    await rec.stop();
  }
  const v = rec.verify('node2');
  console.log(`  ${rec.acknowledged.length} appends acknowledged across 2 restarts and a handover; lost on node2: ${v.missing.length}`);
  assert.is(v.missing.length, 0, `lost: ${v.missing.slice(0, 10)}`);
  await lab.waitFor('copies identical', async () => recordsDigest(lab, 'node1')?.sha256 === recordsDigest(lab, 'node2')?.sha256, 30_000, 200);
  // the administrator lets node1 run it again
  const r = await lab.cli('node1', ['resetloop', '-m', APPENDER_MODULE]);
  assert.match(r.stdout, /reset/);
  assert.not.ok((await view('node1')).loops.exhausted);
});

labCase('intf: the PRIM\'s production link goes down (replication up) → the module moves with every record, no split brain; link back → SECOND', async () => {
  await form(appenderWith('<failover handle_time="1s"/>'));
  if ((await moduleState(lab, 'node1', APPENDER_MODULE)) !== 'PRIM') {
    await lab.cli('node1', ['swap', '-m', APPENDER_MODULE]);
    await waitForStates(lab, { node1: 'PRIM', node2: 'SECOND' }, 60_000, APPENDER_MODULE);
  }
  const rec = new AppendRecorder(lab);
  rec.start();
  let ms = 0;
  try {
    await lab.waitFor('appends acknowledged', async () => rec.acknowledged.length >= 50, 30_000, 20);
    const t0 = performance.now();
    await lab.unplug('default', 'node1');
    // served by node2: an append sent once node2 runs the appender is acknowledged
    await lab.waitFor('node2 running the appender', async () => /^(ALONE|PRIM)$/.test(await moduleState(lab, 'node2', APPENDER_MODULE)), 60_000, 20);
    const sent = rec.lastSent;
    await lab.waitFor('node2 acknowledging', async () => rec.lastAcked > sent, 60_000, 20);
    ms = Math.round(performance.now() - t0);
    await waitForStates(lab, { node1: 'WAIT', node2: 'ALONE' }, 30_000, APPENDER_MODULE);
    const v1 = await view('node1');
    assert.is(v1.waitReason, 'checker');
    assert.ok(v1.peer.reachable, 'node1 still hears node2 on the replication LAN');
    await lab.plug('default', 'node1');
    await waitForStates(lab, { node1: 'SECOND', node2: 'PRIM' }, 60_000, APPENDER_MODULE);
    for (const n of NODES) assert.not.ok((await view(n)).alarms.some((a) => a.code === 'split-brain'), `no split brain on ${n}`);
  } finally {
    await rec.stop();
  }
  console.log(`  production link of the PRIM down → appends acknowledged by node2 after ${ms} ms (handle_time 1s)`);
  const v = rec.verify('node2');
  assert.is(v.missing.length, 0, `lost: ${v.missing.slice(0, 10)}`);
  await lab.waitFor('copies identical', async () => recordsDigest(lab, 'node1')?.sha256 === recordsDigest(lab, 'node2')?.sha256, 30_000, 200);
});

test.run();
