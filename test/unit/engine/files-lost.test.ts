import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Sim, defaultSimConfig } from '../../../src/sim/sim.js';
import { simPair as pair } from './sim-pair.js';

// `files-lost`: the process serving a module's replicated directories (its replication host) died. On the PRIM the
// application works on a dead mount: the engine stops the module here with the forced stop scripts, cleans up its
// layout and VIP, and starts it again; the ready SECOND takes over meanwhile.


test('files-lost on the PRIM: stop_prim force, layout off, VIP released; the SECOND takes over, the PRIM rejoins as SECOND', () => {
  const sim = pair();
  const n1 = sim.node('node1');
  sim.feed(n1, { kind: 'files-lost', reason: 'the replication host of m (pid 7) died while serving the primary layout' });
  const steps = n1.work?.steps ?? [];
  assert.ok(steps.some((s) => s.kind === 'script' && s.script === 'stop_prim' && s.args[0] === 'force'), JSON.stringify(steps));
  assert.ok(steps.some((s) => s.kind === 'files' && s.role === 'off'), 'the layout is left (dead mounts removed)');
  assert.ok(steps.some((s) => s.kind === 'release-vips'), 'the VIP is released');
  assert.ok(n1.log.some((l) => /replication host of m .* died .*stopped here \(forced\) and started again/.test(l)), n1.log.slice(-3).join('\n'));
  sim.run(8000);
  assert.is(sim.describe('node2'), 'PRIM');
  assert.is(sim.describe('node1'), 'SECOND');
  assert.equal(sim.violations, []);
});

test('files-lost on a SECOND: stop_second force and layout off, then it reintegrates as SECOND again; the PRIM keeps running', () => {
  const sim = pair();
  const n2 = sim.node('node2');
  sim.feed(n2, { kind: 'files-lost', reason: 'host died' });
  const steps = n2.work?.steps ?? [];
  assert.ok(steps.some((s) => s.kind === 'script' && s.script === 'stop_second' && s.args[0] === 'force'), JSON.stringify(steps));
  sim.run(8000);
  assert.ok(sim.node('node1').app, 'the application kept running on node1');
  assert.is(sim.describe('node2'), 'SECOND');
  assert.equal(sim.violations, []);
});

test('files-lost while stopped or WAIT is ignored (no layout to lose)', () => {
  const sim = new Sim({ ...defaultSimConfig(), pulseMs: 200, timeoutMs: 1000 });
  sim.boot('node1');
  const n1 = sim.node('node1');
  sim.feed(n1, { kind: 'files-lost', reason: 'host died' });
  assert.not.ok((n1.work?.steps ?? []).some((s) => s.kind === 'script'), 'no stop script');
  assert.is(n1.engine!.filesLost, null);
});

test('files-lost during a plan is kept and acted on when the plan ends', () => {
  const sim = pair();
  const n1 = sim.node('node1');
  sim.admin('node1', 'swap');
  sim.run(1);
  const during = n1.engine!.pending;
  sim.feed(n1, { kind: 'files-lost', reason: 'host died' });
  if (during) assert.is(n1.engine!.filesLost, 'host died', 'kept while the plan runs');
  sim.run(10_000);
  assert.is(n1.engine!.filesLost, null, 'acted on');
  assert.ok(n1.log.some((l) => /host died: stopping .* here, then starting it again/.test(l)), n1.log.slice(-8).join('\n'));
  assert.equal(sim.violations, []);
});

test.run();
