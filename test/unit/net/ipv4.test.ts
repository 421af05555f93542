import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { inNet, ipv4ToInt, parseCidr, prefixMask } from '../../../src/net/ipv4.js';

test('ipv4ToInt parses dotted quads and refuses anything else', () => {
  assert.is(ipv4ToInt('198.51.100.10'), (198 << 24 | 51 << 16 | 100 << 8 | 10) >>> 0);
  assert.is(ipv4ToInt('255.255.255.255'), 0xffffffff);
  for (const bad of ['256.1.1.1', '1.2.3', '1.2.3.4.5', 'a.b.c.d', '', ' 1.2.3.4']) assert.is(ipv4ToInt(bad), null, bad);
});

test('parseCidr and inNet: membership at every prefix length edge', () => {
  const net = parseCidr('198.51.100.0/24')!;
  assert.ok(inNet(ipv4ToInt('198.51.100.254')!, net));
  assert.not.ok(inNet(ipv4ToInt('198.51.101.1')!, net));
  assert.ok(inNet(ipv4ToInt('10.0.0.1')!, parseCidr('0.0.0.0/0')!));
  assert.ok(inNet(ipv4ToInt('203.0.113.7')!, parseCidr('203.0.113.7/32')!));
  assert.not.ok(inNet(ipv4ToInt('203.0.113.8')!, parseCidr('203.0.113.7/32')!));
  assert.is(prefixMask(24), 0xffffff00);
  assert.is(prefixMask(32), 0xffffffff);
  assert.is(prefixMask(0), 0);
  assert.is(parseCidr('198.51.100.0/33'), undefined);
  assert.is(parseCidr('198.51.100.0'), undefined);
});

test.run();
