import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { IpChecker } from '../../../src/checkers/ip.js';
import { FakeClock } from '../../../src/platform/clock/fake.js';
import { FakeLan, FakeVip } from '../../../src/platform/vip/fake.js';
import { recorder, step } from './helpers.js';

const VIP = '198.51.100.10';

test('ip: up while this node holds the address, down when it is removed, unknown when the adapter fails', async () => {
  const clock = new FakeClock();
  const vip = new FakeVip(new FakeLan(), 'node1');
  await vip.acquire(VIP);
  const r = recorder();
  const c = new IpChecker({ addr: VIP, intervalMs: 1000, vip, clock, report: r.report });
  assert.is(c.resource, `ip.${VIP}`);
  c.start();
  await step(clock, 0);
  await vip.release(VIP);
  await step(clock, 1000);
  vip.failNext('holds', new Error('command failed (exit 1): ip -j -4 addr show'));
  await step(clock, 1000);
  await vip.acquire(VIP);
  await step(clock, 1000);
  assert.equal(r.seen, [
    'init not checked yet',
    `up ${VIP} is configured here`,
    `down ${VIP} is not configured on any local interface`,
    'unknown command failed (exit 1): ip -j -4 addr show',
    `up ${VIP} is configured here`,
  ]);
  await c.stop();
});

test.run();
