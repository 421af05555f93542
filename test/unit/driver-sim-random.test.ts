import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { AdminVerb } from '../../src/engine/mirror/types.js';
import { DriverSim, defaultDriverSimConfig } from '../../src/sim/driver-sim.js';
import { rng } from './rng.js';

// Random fault schedules over two real ModuleDrivers and the simulated replicator (src/sim/driver-sim.ts): power-offs,
// daemon kills, LAN cuts, witness loss, administrators' verbs and a SECOND whose disk refuses changes, with the model
// application writing on whichever node runs it; async="none" and "second" alternate by seed. Invariants are checked
// at every timer (see driver-sim.ts); after each schedule every fault is repaired, then: no violation, the pair
// converges to PRIM/SECOND, no acknowledged write is lost (each is on the final primary or in a quarantine), and the
// SECOND's copy equals the primary's.
//
// CI runs DSIM_SCHEDULES (default 150) per suite; outside CI run more (DSIM_SCHEDULES=5000, DSIM_FIRST to split the
// range between processes). DSIM_SEED=N replays one schedule and prints the nodes' whole logs on failure.

const SCHEDULES = Number(process.env.DSIM_SCHEDULES ?? 150);
const FIRST = Number(process.env.DSIM_FIRST ?? 1);
const ONLY_SEED = process.env.DSIM_SEED ? Number(process.env.DSIM_SEED) : null;
const STEPS = 25;

export async function runSchedule(seed: number, witness: boolean): Promise<{ sim: DriverSim; trace: string[]; failure: string | null }> {
  const r = rng(seed * (witness ? 7919 : 104729));
  const pick = <T>(xs: T[]) => xs[Math.floor(r() * xs.length)]!;
  const sim = new DriverSim({ ...defaultDriverSimConfig(), witness, async: seed % 2 === 0 ? 'none' : 'second' });
  const trace: string[] = [`async=${sim.cfg.async}`];
  const act = async (what: string, f: () => unknown) => { trace.push(`${(sim.mono / 1000).toFixed(3)}s ${what}`); await f(); };
  await sim.boot('node1'); await sim.boot('node2');
  void sim.admin('node1', 'start'); void sim.admin('node2', 'start');
  await sim.run(2000);
  void sim.admin('node1', 'prim'); await sim.run(1000);
  void sim.admin('node2', 'second'); await sim.run(1500);
  sim.writes = true;
  for (let i = 0; i < STEPS; i++) {
    const n = pick(['node1', 'node2']);
    const node = sim.node(n);
    const roll = r();
    if (roll < 0.15) { if (node.powered) await act(`power-off ${n}`, () => sim.powerOff(n)); else await act(`boot ${n}`, () => sim.boot(n)); }
    else if (roll < 0.22) { if (node.alive) await act(`kill-daemon ${n}`, () => sim.killDaemon(n)); else if (node.powered) await act(`restart daemon ${n}`, () => sim.boot(n)); }
    else if (roll < 0.40) { const lan = pick([...sim.lans, 'all']); const who = pick([n, undefined]); await act(`cut ${lan} ${who ?? 'everyone'}`, () => sim.cut(lan, who)); }
    else if (roll < 0.55) await act('heal', () => sim.heal());
    else if (roll < 0.62 && witness) await act(`witness ${n} ${node.witnessOk ? 'down' : 'up'}`, () => { node.witnessOk = !node.witnessOk; });
    else if (roll < 0.66) await act(`apply ${n} ${node.applyFails ? 'repaired' : 'fails'}`, () => { node.applyFails = !node.applyFails; });
    else if (roll < 0.76 && node.engine) { const v: AdminVerb = pick(['stop', 'start', 'swap', 'restart']); await act(`${v} ${n}`, () => { void sim.admin(n, v); }); }
    await sim.run(Math.floor(200 + r() * 6000));
  }
  await act('repair all', async () => {
    sim.heal();
    for (const n of sim.names) {
      const x = sim.node(n);
      x.witnessOk = true;
      x.applyFails = false;
      if (!x.alive) await sim.boot(n);
    }
  });
  await sim.run(3000);
  for (const n of sim.names) if (sim.node(n).engine!.state === 'STOP') await act(`start ${n}`, () => { void sim.admin(n, 'start'); });
  await sim.run(20_000);
  sim.writes = false;
  await sim.run(3000);
  const full = ONLY_SEED !== null;
  const where = () => `seed ${seed} (witness ${witness ? 'on' : 'off'}): ${sim.names.map((n) => sim.detail(n)).join('; ')}\n${trace.join('\n')}\n` +
    sim.names.map((n) => `--- ${n}\n${sim.node(n).log.slice(full ? 0 : -30).join('\n')}`).join('\n');
  if (sim.violations.length) return { sim, trace, failure: `violations: ${sim.violations.join('; ')} — ${where()}` };
  const states = sim.names.map((n) => sim.describe(n)).sort().join(' ');
  if (states !== 'PRIM SECOND') return { sim, trace, failure: `no convergence (${states}) — ${where()}` };
  const prim = sim.names.find((n) => sim.node(n).engine!.state === 'PRIM')!;
  const second = sim.names.find((n) => n !== prim)!;
  const lost = sim.lostWrites(prim);
  if (lost.length) return { sim, trace, failure: `acknowledged writes lost (${lost.length}, first ${lost.slice(0, 5)} in ${lost.slice(0, 5).map((w) => sim.acked.get(w))}) — ${where()}` };
  const a = [...sim.node(prim).disk.data].sort((x, y) => x - y).join(',');
  const b = [...sim.node(second).disk.data].sort((x, y) => x - y).join(',');
  if (a !== b) return { sim, trace, failure: `copies differ (${sim.node(prim).disk.data.size} vs ${sim.node(second).disk.data.size}) — ${where()}` };
  return { sim, trace, failure: null };
}

for (const witness of [false, true]) {
  test(`driver simulation, random faults, witness ${witness ? 'on' : 'off'}: invariants hold, convergence, no acknowledged write lost`, async () => {
    let acked = 0;
    const first = ONLY_SEED ?? FIRST;
    const last = ONLY_SEED ?? FIRST + SCHEDULES - 1;
    for (let seed = first; seed <= last; seed++) {
      const { sim, failure } = await runSchedule(seed, witness);
      if (failure) assert.unreachable(failure);
      acked += sim.acked.size;
      if (process.env.DSIM_PROGRESS && (seed - first + 1) % 100 === 0) console.log(`witness ${witness ? 'on' : 'off'}: ${seed - first + 1} schedules, 0 failures`);
    }
    // the schedules exercised writes at all
    assert.ok(acked > (ONLY_SEED ? 0 : 50 * (last - first + 1)), `the schedules wrote (${acked} acknowledged writes)`);
  });
}

test.run();
