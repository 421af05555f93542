import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { IntfChecker } from '../../../src/checkers/intf.js';
import { FakeClock } from '../../../src/platform/clock/fake.js';
import { FakeNet } from '../../../src/platform/net/fake.js';
import { recorder, step } from './helpers.js';

test('intf by name: up, carrier lost, interface removed, back', async () => {
  const clock = new FakeClock();
  const net = new FakeNet(clock);
  const r = recorder();
  net.setLink('eth0', 'up');
  const c = new IntfChecker({ ident: 'eth0', target: { ifname: 'eth0' }, intervalMs: 1000, net, clock, report: r.report });
  assert.is(c.resource, 'intf.eth0');
  c.start();
  await step(clock, 0);
  net.setLink('eth0', 'down');
  await step(clock, 1000);
  net.setLink('eth0', 'missing');
  await step(clock, 1000);
  net.setLink('eth0', 'up');
  await step(clock, 1000);
  assert.equal(r.seen, [
    'init not checked yet',
    'up eth0: carrier 1, operstate up',
    'down eth0: no carrier (operstate down)',
    'down eth0: no interface eth0',
    'up eth0: carrier 1, operstate up',
  ]);
  await c.stop();
});

test('intf by address: down while no interface holds it, then looked up once and kept until the next start', async () => {
  const clock = new FakeClock();
  const net = new FakeNet(clock);
  const r = recorder();
  net.setLink('eth1', 'up');
  const c = new IntfChecker({ ident: 'lan', target: { addr: '192.0.2.2' }, intervalMs: 1000, net, clock, report: r.report });
  c.start();
  await step(clock, 0);
  assert.is(r.last(), 'down no local interface holds or routes 192.0.2.2');
  net.addrs = [{ ifname: 'eth1', local: '192.0.2.2', prefixlen: 24 }];
  await step(clock, 1000, 3);
  assert.is(r.last(), 'up eth1: carrier 1, operstate up');
  assert.equal(net.calls.filter((x) => x.startsWith('interfaceFor')).length, 2);
  await c.stop();
  c.start();
  await step(clock, 0);
  assert.equal(net.calls.filter((x) => x.startsWith('interfaceFor')).length, 3, 'looked up again after a restart');
  await c.stop();
});

test.run();
