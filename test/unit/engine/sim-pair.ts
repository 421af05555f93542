import * as assert from 'uvu/assert';
import { Sim, defaultSimConfig, type SimConfig } from '../../../src/sim/sim.js';

/** A simulated pair brought up as an administrator would: both started, node1 PRIM, node2 SECOND (asserted). */
export function simPair(cfg: Partial<SimConfig> = {}): Sim {
  const sim = new Sim({ ...defaultSimConfig(), pulseMs: 200, timeoutMs: 1000, ...cfg });
  sim.boot('node1'); sim.boot('node2');
  sim.admin('node1', 'start'); sim.admin('node2', 'start'); sim.run(2000);
  sim.admin('node1', 'prim'); sim.run(1000);
  sim.admin('node2', 'second'); sim.run(1500);
  assert.is(sim.describe('node1'), 'PRIM');
  assert.is(sim.describe('node2'), 'SECOND');
  return sim;
}
