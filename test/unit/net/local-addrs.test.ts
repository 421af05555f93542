import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { interfaceFor, subnetInterface, type LocalAddr } from '../../../src/net/local-addrs.js';

const VIP = '198.51.100.10';

test('the longest matching prefix wins and the VIP itself is not taken as the subnet', () => {
  const addrs: LocalAddr[] = [
    { ifname: 'eth0', local: '198.51.100.1', prefixlen: 16 },
    { ifname: 'eth1', local: '198.51.100.2', prefixlen: 25 },
    { ifname: 'eth2', local: '198.51.100.10', prefixlen: 28 },
    { ifname: 'eth3', local: '198.51.100.200', prefixlen: 25 },
    { ifname: 'eth4', local: '198.51.100.9', prefixlen: 32 },
  ];
  assert.is(subnetInterface(VIP, addrs)?.ifname, 'eth1');
  assert.is(subnetInterface('192.0.2.1', addrs), undefined);
  assert.is(subnetInterface('198.51.100.100', addrs)?.ifname, 'eth1');
  assert.is(subnetInterface('198.51.100.11', [{ ifname: 'eth4', local: '198.51.100.9', prefixlen: 32 }]), undefined, 'a /32 contains no other address');
  assert.is(subnetInterface('198.51.100.11', [{ ifname: 'eth4', local: '198.51.100.9', prefixlen: 31 }]), undefined);
  assert.is(subnetInterface('198.51.100.9', [{ ifname: 'eth4', local: '198.51.100.8', prefixlen: 31 }])?.ifname, 'eth4');
});

test('interfaceFor: the interface holding the address first, else the most specific subnet, else none', () => {
  const addrs: LocalAddr[] = [
    { ifname: 'lo', local: '127.0.0.1', prefixlen: 8 },
    { ifname: 'eth0', local: '198.51.100.1', prefixlen: 24 },
    { ifname: 'eth1', local: '203.0.113.1', prefixlen: 24 },
    { ifname: 'eth1', local: VIP, prefixlen: 32 },
  ];
  assert.is(interfaceFor(VIP, addrs)?.ifname, 'eth1', 'held on eth1 although eth0 has its subnet');
  assert.is(interfaceFor('198.51.100.20', addrs)?.ifname, 'eth0');
  assert.is(interfaceFor('127.0.0.1', addrs)?.ifname, 'lo');
  assert.is(interfaceFor('192.0.2.1', addrs), undefined);
  assert.is(interfaceFor('not-an-address', addrs), undefined);
});

test.run();
