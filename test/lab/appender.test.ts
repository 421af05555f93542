import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  APPENDER_MODULE,
  AppendRecorder,
  appenderRunsOn,
  createAppenderLab,
  recordsDigest,
} from '../../src/lab/appender.js';
import { moduleLogOf } from '../../src/lab/mirror-lab.js';
import type { Lab } from '../../src/lab/lab.js';
import { moduleState, startPair, waitForStates } from '../../src/lab/postgres.js';
import { rng } from '../unit/rng.js';

// The promise of file replication, with the smallest application that makes durable promises: the fsync appender
// (examples/appender) answers "ok <id>" only after the record is fdatasynced in its replicated directory. A client
// appends through the VIP without pause while the PRIM loses power, again and again (ROUNDS, alternating nodes as the
// roles move): every acknowledged id must be in the records file of the node that is PRIM at the end, and once the
// old PRIM is back as SECOND both files must be byte-identical.
//
// Each round: 0.3–2 s of load, power-off of the PRIM, the other node ALONE and acknowledging new appends
// (failover ≈ timeout + VIP move + appender start), then the old PRIM boots (its daemon starts and the module, wanted
// running, comes back) and reintegrates as SECOND. Environment: TANDEM_APPENDER_ROUNDS (default 20), TANDEM_SEED
// (the load durations; printed).

const ROUNDS = Number(process.env.TANDEM_APPENDER_ROUNDS ?? 20);
const SEED = Number(process.env.TANDEM_SEED ?? Date.now() % 1_000_000);
const NODES = ['node1', 'node2'] as const;

const s1 = (ms: number) => (ms / 1000).toFixed(1);

const logOf = (l: Lab, n: string) => moduleLogOf(l, n, APPENDER_MODULE);

async function currentPrim(l: Lab): Promise<{ prim: string; other: string }> {
  for (const n of NODES) {
    if ((await moduleState(l, n, APPENDER_MODULE)) === 'PRIM') return { prim: n, other: NODES.find((x) => x !== n)! };
  }
  throw new Error(`no PRIM: ${(await Promise.all(NODES.map(async (n) => `${n} ${await moduleState(l, n, APPENDER_MODULE)}`))).join(', ')}`);
}

test(`appender: ${ROUNDS} PRIM power-offs under fsync load lose no acknowledged append; copies end identical`, async () => {
  let lab: Lab | null = null;
  let rec: AppendRecorder | null = null;
  let ok = false;
  const t0 = performance.now();
  const random = rng(SEED);
  console.log(`  seed ${SEED} (TANDEM_SEED), ${ROUNDS} rounds (TANDEM_APPENDER_ROUNDS)`);
  try {
    lab = await createAppenderLab({ pulse: '200ms', timeout: '1s' });
    const l = lab;
    await startPair(l, 'node1', 'node2', 60_000, APPENDER_MODULE);
    assert.ok(appenderRunsOn(l, 'node1') && !appenderRunsOn(l, 'node2'), 'the appender runs on the PRIM only');
    console.log(`  node1 PRIM / node2 SECOND after ${s1(performance.now() - t0)} s`);

    rec = new AppendRecorder(l);
    rec.start();
    const r = rec;
    await l.waitFor('appends acknowledged through the VIP', async () => r.acknowledged.length >= 50, 30_000, 50);

    const failovers: number[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      const { prim, other } = await currentPrim(l);
      const loadMs = 300 + Math.floor(random() * 1700);
      await sleep(loadMs);

      const acksBefore = r.acknowledged.length;
      const sentAtCut = r.lastSent;
      const tCut = performance.now();
      await l.poweroff(prim);
      await waitForStates(l, { [other]: 'ALONE' }, 30_000, APPENDER_MODULE);
      const tAlone = performance.now();
      await l.waitFor(`an append acknowledged by ${other}`, async () => r.lastAcked > sentAtCut, 30_000, 20);
      const tAck = performance.now();
      failovers.push(tAck - tCut);
      const v = r.verify(other);

      const tBoot = performance.now();
      await l.boot(prim);
      await waitForStates(l, { [other]: 'PRIM', [prim]: 'SECOND' }, 120_000, APPENDER_MODULE);
      const tPair = performance.now();
      console.log(
        `  round ${String(round).padStart(2)}/${ROUNDS}: ${prim} off after ${s1(loadMs)} s of load; ${other} ALONE in ${s1(tAlone - tCut)} s, ` +
          `acknowledging in ${s1(tAck - tCut)} s; ${prim} booted and SECOND in ${s1(tPair - tBoot)} s; ` +
          `${r.acknowledged.length} acknowledged (+${r.acknowledged.length - acksBefore}), ${v.missing.length} missing on ${other} at takeover`,
      );
    }

    const stats = await rec.stop();
    rec = null;
    const { prim, other } = await currentPrim(l);
    const v = r.verify(prim);

    // Both copies byte-identical once PRIM/SECOND and idle: polled, the SECOND's last writes may still be landing.
    let a = recordsDigest(l, prim);
    let b = recordsDigest(l, other);
    const deadline = performance.now() + 10_000;
    while (a?.sha256 !== b?.sha256 && performance.now() < deadline) {
      await sleep(250);
      a = recordsDigest(l, prim);
      b = recordsDigest(l, other);
    }
    const sorted = [...failovers].sort((x, y) => x - y);
    const copies = a && a.sha256 === b?.sha256 ? `copies identical (${a.size} bytes, sha256 ${a.sha256.slice(0, 16)}…)` : `copies DIFFER (${prim} ${a?.size ?? 'no file'} bytes, ${other} ${b?.size ?? 'no file'} bytes)`;
    console.log(
      `  appender: ${ROUNDS} rounds, ${stats.sent} sent, ${stats.acknowledged.length} acknowledged, ${stats.errors} errors, ` +
        `failover ${s1(sorted[0]!)}/${s1(sorted[Math.floor(sorted.length / 2)]!)}/${s1(sorted[sorted.length - 1]!)} s (min/median/max), ` +
        `${v.missing.length} missing on ${prim} (${v.records} records in its file), ${copies}`,
    );

    assert.is(new Set(stats.acknowledged).size, stats.acknowledged.length, 'no id acknowledged twice');
    const shown = v.missing.slice(0, 20).join(', ') + (v.missing.length > 20 ? ', …' : '');
    assert.is(v.missing.length, 0, `${v.missing.length} of ${v.acknowledged} acknowledged appends are missing on the final PRIM ${prim}: ${shown}`);
    assert.ok(appenderRunsOn(l, prim) && !appenderRunsOn(l, other), `the appender runs on the PRIM (${prim}) only`);
    assert.ok(a, `${prim} has a records file`);
    assert.is(b?.sha256, a!.sha256, `records.log on ${other} (${b?.size ?? 'no file'} bytes) equals the PRIM's (${a!.size} bytes)`);
    ok = true;
  } finally {
    const left = rec ? await rec.stop().catch(() => undefined) : undefined;
    if (left && !ok) console.log(`--- recorder: ${left.sent} sent, ${left.acknowledged.length} acknowledged; last errors:\n${left.lastErrors.join('\n')}`);
    if (!ok && lab) {
      for (const n of NODES) console.log(`--- ${n} ${APPENDER_MODULE}.log (tail)\n${logOf(lab, n).split('\n').slice(-40).join('\n')}`);
    }
    await lab?.down();
    console.log(`  total (with teardown): ${s1(performance.now() - t0)} s`);
  }
});

test.run();
