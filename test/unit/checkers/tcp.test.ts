import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { TcpChecker } from '../../../src/checkers/tcp.js';
import { FakeClock } from '../../../src/platform/clock/fake.js';
import { FakeNet } from '../../../src/platform/net/fake.js';
import { recorder, step } from './helpers.js';

const UP = { state: 'up', reason: 'connected' } as const;

test('tcp: init → up → down (refused) → up, one connect per interval', async () => {
  const clock = new FakeClock();
  const net = new FakeNet(clock);
  const r = recorder();
  net.setTcp('127.0.0.1', 8080, UP);
  const c = new TcpChecker({ ident: 'http', addr: '127.0.0.1', port: 8080, intervalMs: 2000, net, clock, report: r.report });
  assert.is(c.resource, 'tcp.http');
  c.start();
  await step(clock, 0);
  net.setTcp('127.0.0.1', 8080, { state: 'down', reason: 'ECONNREFUSED' });
  await step(clock, 2000);
  net.setTcp('127.0.0.1', 8080, UP);
  await step(clock, 2000);
  assert.equal(r.seen, ['init not checked yet', 'up 127.0.0.1:8080 connected', 'down 127.0.0.1:8080 ECONNREFUSED', 'up 127.0.0.1:8080 connected']);
  assert.is(net.calls.length, 3);
  await c.stop();
});

test('tcp: a silent server is down after the timeout; a late tick does not stack connects', async () => {
  const clock = new FakeClock();
  const net = new FakeNet(clock);
  const r = recorder();
  net.setTcp('127.0.0.1', 5432, 'silent');
  const c = new TcpChecker({ ident: 'db', addr: '127.0.0.1', port: 5432, intervalMs: 1000, timeoutMs: 3000, net, clock, report: r.report });
  c.start();
  await step(clock, 0);
  await step(clock, 1000, 2);
  assert.equal(r.states(), ['init']);
  assert.is(net.calls.length, 1, 'ticks during the connect are skipped');
  await step(clock, 1000);
  assert.is(r.last(), 'down 127.0.0.1:5432 timed out after 3000 ms');
  await c.stop();
  assert.is(clock.pending, 0);
});

test('tcp: stop silences a connect in flight', async () => {
  const clock = new FakeClock();
  const net = new FakeNet(clock);
  const r = recorder();
  net.setTcp('127.0.0.1', 1, 'silent');
  const c = new TcpChecker({ ident: 'x', addr: '127.0.0.1', port: 1, net, clock, report: r.report });
  c.start();
  await step(clock, 0);
  const stopped = c.stop();
  await step(clock, 5000);
  await stopped;
  assert.equal(r.states(), ['init']);
});

test.run();
