import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseClusterXml } from '../../../src/config/cluster.js';
import { localIPv4Addrs, whoami } from '../../../src/config/whoami.js';
import { throwsUserError } from './assert-user-error.js';

const CLUSTER = parseClusterXml(`<cluster><lans>
  <lan name="default"><node name="node1" addr="198.51.100.1"/><node name="node2" addr="198.51.100.2"/></lan>
  <lan name="replication"><node name="node1" addr="203.0.113.1"/><node name="node2" addr="203.0.113.2"/></lan>
</lans></cluster>`);

test('finds the node by an address on any LAN', () => {
  assert.is(whoami(CLUSTER, ['127.0.0.1', '198.51.100.2']), 'node2');
  assert.is(whoami(CLUSTER, ['203.0.113.1']), 'node1');
  assert.is(whoami(CLUSTER, ['198.51.100.1', '203.0.113.1']), 'node1');
});

test('the override wins and must be a node name', () => {
  assert.is(whoami(CLUSTER, ['198.51.100.1'], 'node2'), 'node2');
  assert.is(whoami(CLUSTER, [], 'node1'), 'node1');
  throwsUserError(() => whoami(CLUSTER, ['198.51.100.1'], 'node3'), 'TANDEM_NODE="node3" is not a node of cluster.xml', 'node1, node2');
});

test('an empty override counts as unset', () => {
  assert.is(whoami(CLUSTER, ['198.51.100.2'], ''), 'node2');
});

test('no match names the addresses tried and the node addresses', () => {
  throwsUserError(() => whoami(CLUSTER, ['127.0.0.1', '192.0.2.7']),
    '127.0.0.1, 192.0.2.7', 'node1=198.51.100.1', 'node2=203.0.113.2', 'Set TANDEM_NODE', 'fix the addresses in cluster.xml');
  throwsUserError(() => whoami(CLUSTER, []), '(none)', 'TANDEM_NODE');
});

test('addresses of two nodes is an error naming both', () => {
  throwsUserError(() => whoami(CLUSTER, ['198.51.100.1', '203.0.113.2']), 'several nodes', 'node1 (198.51.100.1)', 'node2 (203.0.113.2)', 'TANDEM_NODE');
});

test('localIPv4Addrs lists dotted quads including loopback', () => {
  const addrs = localIPv4Addrs();
  assert.ok(addrs.every((a) => /^\d+\.\d+\.\d+\.\d+$/.test(a)), addrs.join(','));
  assert.ok(addrs.includes('127.0.0.1'), addrs.join(','));
});

test.run();
