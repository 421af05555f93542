import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Sim, defaultSimConfig } from '../../../src/sim/sim.js';

// An ALONE node without its peer keeps the application only while it reaches the split-brain witness
// (randomized schedule seed 34766, witness on). Driven tick by tick so an administrator's verb lands exactly while
// the re-check is outstanding.

function aloneBesideReadySecond() {
  const sim = new Sim({ ...defaultSimConfig(), witness: true, pulseMs: 200, timeoutMs: 1000 });
  sim.boot('node1'); sim.boot('node2');
  sim.admin('node1', 'start'); sim.admin('node2', 'start'); sim.run(2000);
  sim.admin('node1', 'prim'); sim.run(1000);
  sim.admin('node2', 'second'); sim.run(1500);
  sim.writes = true; sim.run(2000);
  assert.is(sim.describe('node1'), 'PRIM');
  assert.is(sim.describe('node2'), 'SECOND');
  // node1 loses the witness, then node2 (a ready SECOND) is isolated: node1's replication fails while node2 is still
  // heard, so node1 goes ALONE in a new generation without asking the witness
  sim.node('node1').witnessOk = false;
  for (const l of sim.cfg.lans) sim.cut.add(`${l}:node2`);
  return sim;
}

test('the peer lost while ALONE: the witness is asked at once, not a retry interval later', () => {
  const sim = aloneBesideReadySecond();
  const cutAt = sim.mono;
  let askedAt: number | null = null;
  while (sim.mono - cutAt < 5000 && askedAt === null) {
    sim.run(1);
    if (sim.node('node1').engine!.pending?.kind === 'witness') askedAt = sim.mono;
  }
  assert.ok(askedAt !== null, 'node1 asked the witness');
  assert.ok(askedAt! - cutAt <= sim.cfg.timeoutMs + sim.cfg.pulseMs, `asked ${askedAt! - cutAt} ms after the cut`);
  sim.run(1000);
  assert.is(sim.node('node1').app, false);
  assert.is(sim.node('node1').engine!.waitReason, 'witness');
  assert.is(sim.describe('node2'), 'ALONE');
  assert.equal(sim.violations, []);
});

test('an administrator\'s restart during the witness re-check waits for its answer; the answer still stops the application', () => {
  const sim = aloneBesideReadySecond();
  while (sim.node('node1').engine!.pending?.kind !== 'witness') sim.run(1);
  sim.admin('node1', 'restart');
  assert.ok(sim.node('node1').log.some((l) => /restart: queued until the running witness check finishes/.test(l)), sim.node('node1').log.slice(-5).join('\n'));
  sim.run(1500);
  assert.is(sim.node('node1').app, false, 'node1 stopped the application');
  assert.is(sim.node('node1').engine!.waitReason, 'witness');
  sim.run(5000);
  assert.is(sim.node('node1').app, false, 'the queued restart did not start the application without the witness');
  assert.equal(sim.violations, []);
});

test.run();
