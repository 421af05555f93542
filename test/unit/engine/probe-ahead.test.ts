import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Sim, SimConfig } from '../../../src/sim/sim.js';
import { simPair } from './sim-pair.js';

// The VIP probe ahead of the heartbeat timeout (EngineConfig.probeAheadMs): a SECOND probes while its peer is
// silent, before the timeout, and takes over at the timeout on that answer, but only when it found the VIP free,
// ran entirely in the peer's silence and is recent; the VIP is never added without such an answer. Simulated time.


const pair = (cfg: Partial<SimConfig> = {}) => simPair({ probeMs: 100, probeAheadMs: 500, ...cfg });

/** Runs `ms` in 10 ms steps, recording when node2 asks a probe (a new query) and when it reaches each state. */
function watch(sim: Sim, ms: number) {
  const probes: { id: number; at: number }[] = [];
  const seen = new Set<number>();
  let lostAt: number | null = null;
  let claimedAt: number | null = null;
  let vipAt: number | null = null;
  const n = sim.node('node2');
  for (const end = sim.mono + ms; sim.mono < end;) {
    sim.run(10);
    for (const q of n.queries) {
      if (q.kind === 'probe' && !seen.has(q.id)) {
        seen.add(q.id);
        probes.push({ id: q.id, at: sim.mono });
      }
    }
    if (lostAt === null && n.engine && !n.engine.peerUp) lostAt = sim.mono;
    if (claimedAt === null && n.engine?.state === 'ALONE') claimedAt = sim.mono;
    if (vipAt === null && n.vip) vipAt = sim.mono;
  }
  return { probes, lostAt, claimedAt, vipAt };
}

test('a healthy pair never probes: heartbeats keep the silence under the threshold', () => {
  const sim = pair();
  const w = watch(sim, 10_000);
  assert.equal(w.probes, []);
  assert.is(sim.describe('node2'), 'SECOND');
});

test('PRIM powered off: the SECOND probes before the timeout and takes over at it, with no second probe', () => {
  const sim = pair();
  const off = sim.mono;
  sim.powerOff('node1');
  const w = watch(sim, 3000);
  assert.is(w.probes.length, 1, JSON.stringify(w.probes));
  assert.ok(w.lostAt !== null && w.claimedAt !== null && w.vipAt !== null);
  assert.ok(w.probes[0]!.at < w.lostAt!, `probe at ${w.probes[0]!.at - off} ms, peer lost at ${w.lostAt! - off} ms`);
  assert.ok(w.probes[0]!.at - off >= sim.cfg.timeoutMs - 500 - sim.cfg.pulseMs, 'not before timeout − probeAheadMs of silence');
  assert.is(w.claimedAt, w.lostAt, 'the claim is committed at detection');
  assert.ok(sim.node('node2').log.some((l) => /virtual IP probe made \d+ ms ago, in node1's silence: no other host answers/.test(l)));
  assert.is(sim.describe('node2'), 'ALONE');
  assert.equal(sim.violations, []);
});

test('the probe ahead still runs at the timeout: the claim waits for its answer instead of asking another', () => {
  const sim = pair({ probeMs: 800 });
  sim.powerOff('node1');
  const w = watch(sim, 4000);
  assert.is(w.probes.length, 1, JSON.stringify(w.probes));
  assert.ok(w.vipAt! >= w.probes[0]!.at + 800, 'the VIP is added only after the probe completed');
  assert.ok(w.vipAt! > w.lostAt!);
  assert.is(sim.describe('node2'), 'ALONE');
  assert.equal(sim.violations, []);
});

test('the peer\'s daemon dies but its node still holds the VIP: the answer ahead is checked again, the VIP is not taken', () => {
  const sim = pair();
  sim.killDaemon('node1');
  const w = watch(sim, 3000);
  assert.ok(w.probes.length >= 2, `the probe ahead, then one at the claim: ${JSON.stringify(w.probes)}`);
  assert.ok(w.probes[0]!.at < w.lostAt! && w.probes[1]!.at >= w.lostAt!);
  assert.is(w.vipAt, null);
  assert.is(sim.node('node2').engine!.waitReason, 'vip-conflict');
  assert.equal(sim.violations, []);
});

test('a heartbeat after the probe ahead voids it: the next silence is probed again', () => {
  const sim = pair();
  const lans = sim.cfg.lans;
  for (const l of lans) sim.cut.add(`${l}:node1`);
  const first = watch(sim, 700); // past timeout − probeAheadMs, short of the timeout
  assert.is(first.probes.length, 1);
  assert.is(first.lostAt, null);
  for (const l of lans) sim.cut.delete(`${l}:node1`);
  watch(sim, 1000);
  assert.is(sim.describe('node2'), 'SECOND');
  sim.powerOff('node1');
  const w = watch(sim, 3000);
  assert.is(w.probes.length, 1, 'one new probe in the new silence');
  assert.ok(w.probes[0]!.at < w.lostAt!);
  assert.is(w.claimedAt, w.lostAt);
  assert.is(sim.describe('node2'), 'ALONE');
  assert.equal(sim.violations, []);
});

test('with a split-brain witness the VIP is probed after the witness answered, never ahead', () => {
  const sim = pair({ witness: true });
  sim.powerOff('node1');
  const w = watch(sim, 3000);
  assert.is(w.probes.length, 1);
  assert.ok(w.probes[0]!.at > w.lostAt!);
  assert.is(sim.describe('node2'), 'ALONE');
});

test('a pulse too long for the lead (2 pulses ≥ the timeout) never probes ahead', () => {
  const sim = pair({ pulseMs: 500 });
  sim.powerOff('node1');
  const w = watch(sim, 3000);
  assert.is(w.probes.length, 1);
  assert.ok(w.probes[0]!.at >= w.lostAt!);
  assert.is(sim.describe('node2'), 'ALONE');
});

test('probeAheadMs 0: the VIP is probed at the claim, as before', () => {
  const sim = pair({ probeAheadMs: 0 });
  sim.powerOff('node1');
  const w = watch(sim, 3000);
  assert.is(w.probes.length, 1);
  assert.ok(w.probes[0]!.at >= w.lostAt!);
  assert.ok(w.claimedAt! > w.lostAt!);
  assert.is(sim.describe('node2'), 'ALONE');
});

test.run();
