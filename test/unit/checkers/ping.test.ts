import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PingChecker } from '../../../src/checkers/ping.js';
import { FakeClock } from '../../../src/platform/clock/fake.js';
import { FakeWitness } from '../../../src/platform/witness/fake.js';
import { recorder, step } from './helpers.js';

test('ping: up while any address answers, down when none does, every interval with the timeout', async () => {
  const clock = new FakeClock();
  const witness = new FakeWitness(['192.0.2.1']);
  const r = recorder();
  const c = new PingChecker({ ident: 'router', addrs: ['192.0.2.1', '192.0.2.2'], intervalMs: 10_000, timeoutMs: 2000, witness, clock, report: r.report });
  assert.is(c.resource, 'ping.router');
  c.start();
  await step(clock, 0);
  witness.set('192.0.2.1', false);
  await step(clock, 10_000);
  witness.set('192.0.2.2', true);
  await step(clock, 10_000);
  assert.equal(r.seen, [
    'init not checked yet',
    'up 192.0.2.1, 192.0.2.2: answered',
    'down 192.0.2.1, 192.0.2.2: no answer within 2000 ms',
    'up 192.0.2.1, 192.0.2.2: answered',
  ]);
  assert.equal(witness.calls[0], { addrs: ['192.0.2.1', '192.0.2.2'], timeoutMs: 2000 });
  assert.is(witness.calls.length, 3);
  await c.stop();
});

test('ping: a pinger that fails (ping missing) is unknown', async () => {
  const clock = new FakeClock();
  const r = recorder();
  const witness = { reachable: async () => { throw new Error('command failed (spawn ping ENOENT): ping'); } };
  const c = new PingChecker({ ident: 'gw', addrs: ['192.0.2.1'], witness, clock, report: r.report });
  c.start();
  await step(clock, 0);
  assert.is(r.last(), 'unknown command failed (spawn ping ENOENT): ping');
  await c.stop();
});

test.run();
