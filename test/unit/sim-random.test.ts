import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { AdminVerb } from '../../src/engine/mirror/types.js';
import { Sim, defaultSimConfig } from '../../src/sim/sim.js';

// Random fault schedules over the pure engine (testing layer 2). After each schedule every fault is repaired;
// then: no acknowledged write is lost (each is on the final primary or in a split-brain quarantine), the pair
// converges to PRIM/SECOND with identical data, and the VIP was never held by two nodes that could see each other.

function rng(seed: number) {
  let x = seed >>> 0 || 1;
  return () => ((x = Math.imul(x ^ (x >>> 15), 0x2c1b3c6d) + 0x6d2b79f5 >>> 0), (x >>> 8) / 16777216);
}

// CI runs 2,000 schedules per suite; outside CI run more (SIM_SCHEDULES=100000, and SIM_FIRST to split the range
// between processes). SIM_SEED=N replays one schedule with the nodes' whole logs.
const SCHEDULES = Number(process.env.SIM_SCHEDULES ?? 2000);
const FIRST = Number(process.env.SIM_FIRST ?? 1);
const ONLY_SEED = process.env.SIM_SEED ? Number(process.env.SIM_SEED) : null;
const STEPS = 25;

for (const witness of [false, true]) {
  test(`random faults, witness ${witness ? 'on' : 'off'}: no acknowledged write lost, convergence, single VIP`, () => {
    let totalWrites = 0;
    for (let seed = ONLY_SEED ?? FIRST; seed <= (ONLY_SEED ?? FIRST + SCHEDULES - 1); seed++) {
      const r = rng(seed * (witness ? 7919 : 104729));
      const pick = <T>(xs: T[]) => xs[Math.floor(r() * xs.length)]!;
      const cfg = { ...defaultSimConfig(), witness, pulseMs: 200, timeoutMs: 1000 };
      const sim = new Sim(cfg);
      const trace: string[] = [];
      const act = (what: string, f: () => void) => { trace.push(`${(sim.mono / 1000).toFixed(1)}s ${what}`); f(); };
      sim.boot('node1'); sim.boot('node2');
      sim.admin('node1', 'start'); sim.admin('node2', 'start');
      sim.run(2000);
      sim.admin('node1', 'prim'); sim.run(1000);
      sim.admin('node2', 'second'); sim.run(1500);
      sim.writes = true;
      for (let i = 0; i < STEPS; i++) {
        const n = pick(['node1', 'node2']);
        const node = sim.node(n);
        const roll = r();
        if (roll < 0.15) { if (node.powered) act(`power-off ${n}`, () => sim.powerOff(n)); else act(`boot ${n}`, () => sim.boot(n)); }
        else if (roll < 0.22) { if (node.alive) act(`kill-daemon ${n}`, () => sim.killDaemon(n)); else if (node.powered) act(`restart daemon ${n}`, () => sim.boot(n)); }
        else if (roll < 0.40) { const lan = pick([...cfg.lans, 'all']); const who = pick([n, undefined]); act(`cut ${lan} ${who ?? 'everyone'}`, () => { for (const l of lan === 'all' ? cfg.lans : [lan]) for (const x of who ? [who] : sim.names) sim.cut.add(`${l}:${x}`); }); }
        else if (roll < 0.55) act('heal', () => sim.cut.clear());
        else if (roll < 0.62 && witness) act(`witness ${n} ${node.witnessOk ? 'down' : 'up'}`, () => { node.witnessOk = !node.witnessOk; });
        else if (roll < 0.72 && node.alive) { const v: AdminVerb = pick(['stop', 'start', 'swap', 'restart']); act(`${v} ${n}`, () => sim.admin(n, v)); }
        sim.run(Math.floor(200 + r() * 6000));
      }
      // repair everything
      act('repair all', () => {
        sim.cut.clear();
        for (const n of sim.names) { sim.node(n).witnessOk = true; if (!sim.node(n).alive) sim.boot(n); }
      });
      sim.run(3000);
      for (const n of sim.names) if (sim.node(n).engine!.state === 'STOP') act(`start ${n}`, () => sim.admin(n, 'start'));
      sim.run(20_000);
      const states = sim.names.map((n) => sim.describe(n)).sort().join(' ');
      const where = () => `seed ${seed}: ${sim.names.map((n) => `${n} ${sim.describe(n)}`).join(', ')}\n${trace.join('\n')}\n--- node1\n${sim.node('node1').log.slice(process.env.SIM_SEED ? 0 : -25).join('\n')}\n--- node2\n${sim.node('node2').log.slice(process.env.SIM_SEED ? 0 : -25).join('\n')}`;
      assert.equal(sim.violations, [], `VIP held twice — ${where()}`);
      assert.is(states, 'PRIM SECOND', `no convergence — ${where()}`);
      const prim = sim.names.find((n) => sim.node(n).engine!.state === 'PRIM')!;
      const second = sim.names.find((n) => n !== prim)!;
      const lost = sim.lostWrites(prim);
      assert.equal(lost, [], `acknowledged writes lost (${lost.length}, first ${lost.slice(0, 5)} in gens ${lost.slice(0, 5).map((w) => sim.acked.get(w))}) — ${where()}`);
      assert.equal([...sim.node(second).data].sort(), [...sim.node(prim).data].sort(), `copies differ — ${where()}`);
      totalWrites += sim.acked.size;
    }
    // the schedules exercised writes at all (a replay of one seed writes a few hundred)
    assert.ok(totalWrites > (ONLY_SEED ? 0 : Math.min(1000, SCHEDULES)), `the schedules wrote (${totalWrites} acknowledged writes)`);
  });
}

test.run();
