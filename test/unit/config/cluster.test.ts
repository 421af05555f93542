import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { isIPv4, parseClusterXml } from '../../../src/config/cluster.js';
import { throwsUserError } from './assert-user-error.js';

const VALID = `<cluster>
  <lans port="4900">
    <lan name="default">
      <node name="node1" addr="198.51.100.1"/>
      <node name="node2" addr="198.51.100.2"/>
    </lan>
    <lan name="replication">
      <node name="node2" addr="203.0.113.2"/>
      <node name="node1" addr="203.0.113.1"/>
    </lan>
  </lans>
</cluster>
`;

/** A cluster.xml whose <lans> holds `lans` (line 1 <cluster>, line 2 <lans>, lans from line 3). */
function doc(lans: string, lansAttrs = ''): string {
  return `<cluster>\n<lans${lansAttrs}>\n${lans}\n</lans>\n</cluster>`;
}
const N1 = '<node name="node1" addr="10.0.0.1"/>';
const N2 = '<node name="node2" addr="10.0.0.2"/>';

test('parses a two-LAN cluster into the exact object', () => {
  assert.equal(parseClusterXml(VALID), {
    port: 4900,
    lans: [
      { name: 'default', line: 3, nodes: [{ name: 'node1', addr: '198.51.100.1', line: 4 }, { name: 'node2', addr: '198.51.100.2', line: 5 }] },
      { name: 'replication', line: 7, nodes: [{ name: 'node2', addr: '203.0.113.2', line: 8 }, { name: 'node1', addr: '203.0.113.1', line: 9 }] },
    ],
    nodes: ['node1', 'node2'],
  });
});

test('port defaults to 4800; three nodes are fine; names may use _-.', () => {
  const c = parseClusterXml(doc(`<lan name="lan_a-1.x">\n${N1}\n${N2}\n<node name="n-3.b_c" addr="10.0.0.3"/>\n</lan>`));
  assert.is(c.port, 4800);
  assert.equal(c.nodes, ['node1', 'node2', 'n-3.b_c']);
  assert.is(c.lans[0].name, 'lan_a-1.x');
});

test('accepts bytes', () => {
  assert.equal(parseClusterXml(new TextEncoder().encode(VALID)).nodes, ['node1', 'node2']);
});

test('isIPv4 accepts dotted quads only', () => {
  for (const ok of ['0.0.0.0', '10.0.0.1', '255.255.255.255', '198.51.100.1']) assert.ok(isIPv4(ok), ok);
  for (const bad of ['', '10.0.0', '10.0.0.1.2', '256.0.0.1', '010.0.0.1', '10.0.0.-1', '10.0.0.1 ', 'a.b.c.d', '::1', '1e1.0.0.1']) {
    assert.not.ok(isIPv4(bad), bad);
  }
});

test('root must be <cluster>', () => {
  throwsUserError(() => parseClusterXml('<safe/>'), 'cluster.xml line 1', 'root element is <safe>', 'must start with <cluster>');
});

test('the file name given appears in messages', () => {
  throwsUserError(() => parseClusterXml('<safe/>', '/etc/tandem/cluster.xml'), '/etc/tandem/cluster.xml line 1');
});

test('<lans> is required and unique', () => {
  throwsUserError(() => parseClusterXml('<cluster>\n</cluster>'), 'cluster.xml line 1', 'has no <lans>');
  throwsUserError(() => parseClusterXml(`<cluster>\n<lans><lan name="a">${N1}${N2}</lan></lans>\n<lans/>\n</cluster>`),
    'cluster.xml line 3', 'second <lans>', 'line 2');
});

test('unknown elements and attributes anywhere are errors with their line', () => {
  throwsUserError(() => parseClusterXml('<cluster>\n<nodes/>\n</cluster>'), 'cluster.xml line 2', 'element <nodes>', 'supported: <lans>');
  throwsUserError(() => parseClusterXml('<cluster x="1">\n</cluster>'), 'cluster.xml line 1', 'attribute "x"');
  throwsUserError(() => parseClusterXml(doc(`<lan name="a">${N1}${N2}</lan>`, ' pulse="100"')), 'cluster.xml line 2', 'lans has attribute "pulse"', 'supported: port');
  throwsUserError(() => parseClusterXml(doc(`<lan name="a" command="x">${N1}${N2}</lan>`)), 'cluster.xml line 3', 'lan has attribute "command"');
  throwsUserError(() => parseClusterXml(doc(`<lan name="a">\n${N1}\n<node name="node2" addr="10.0.0.2" laddr="1.2.3.4"/>\n</lan>`)),
    'cluster.xml line 5', 'node has attribute "laddr"', 'supported: name, addr');
  throwsUserError(() => parseClusterXml(doc(`<lan name="a">\n${N1}\n<host/>\n</lan>`)), 'cluster.xml line 5', 'element <host>');
  throwsUserError(() => parseClusterXml(doc(`<lan name="a">${N1}${N2}</lan>\n<extra/>`)), 'cluster.xml line 4', 'element <extra>', 'supported: <lan>');
  throwsUserError(() => parseClusterXml(doc(`<lan name="a">${N1}<node name="node2" addr="10.0.0.2">text</node></lan>`)), 'cluster.xml line 3', 'contains text');
});

test('port must be 1..65535', () => {
  for (const bad of ['0', '65536', 'abc', '', '-1', '48.5', '999999']) {
    throwsUserError(() => parseClusterXml(doc(`<lan name="a">${N1}${N2}</lan>`, ` port="${bad}"`)), 'cluster.xml line 2', `port="${bad}"`, '1 to 65535');
  }
  assert.is(parseClusterXml(doc(`<lan name="a">${N1}${N2}</lan>`, ' port="65535"')).port, 65535);
  assert.is(parseClusterXml(doc(`<lan name="a">${N1}${N2}</lan>`, ' port="1"')).port, 1);
});

test('at least one lan', () => {
  throwsUserError(() => parseClusterXml(doc('')), 'cluster.xml line 2', '<lans> has no <lan>');
});

test('lan names are required, valid and unique', () => {
  throwsUserError(() => parseClusterXml(doc(`<lan>${N1}${N2}</lan>`)), 'cluster.xml line 3', '<lan> has no name');
  throwsUserError(() => parseClusterXml(doc(`<lan name="">${N1}${N2}</lan>`)), 'cluster.xml line 3', '<lan> has no name');
  throwsUserError(() => parseClusterXml(doc(`<lan name="my lan">${N1}${N2}</lan>`)), 'cluster.xml line 3', 'lan name "my lan" is not valid', 'letters, digits');
  throwsUserError(() => parseClusterXml(doc(`<lan name="a">${N1}${N2}</lan>\n<lan name="a"><node name="node1" addr="10.0.1.1"/><node name="node2" addr="10.0.1.2"/></lan>`)),
    'cluster.xml line 4', 'lan "a" is defined twice', 'line 3');
});

test('a lan needs nodes', () => {
  throwsUserError(() => parseClusterXml(doc('<lan name="a">\n</lan>')), 'cluster.xml line 3', 'lan "a" has no node');
});

test('nodes need a valid name and an IPv4 addr', () => {
  throwsUserError(() => parseClusterXml(doc(`<lan name="a">\n${N1}\n<node addr="10.0.0.2"/>\n</lan>`)), 'cluster.xml line 5', '<node> has no name');
  throwsUserError(() => parseClusterXml(doc(`<lan name="a">\n${N1}\n<node name="no/de" addr="10.0.0.2"/>\n</lan>`)), 'cluster.xml line 5', 'node name "no/de" is not valid');
  throwsUserError(() => parseClusterXml(doc(`<lan name="a">\n${N1}\n${N2}\n<node name="node3"/>\n</lan>`)),
    'cluster.xml line 6: node "node3" has no addr. Add addr="<ip>" or remove the node.');
  throwsUserError(() => parseClusterXml(doc(`<lan name="a">\n${N1}\n<node name="node2" addr=""/>\n</lan>`)), 'cluster.xml line 5', 'node "node2" has no addr');
  throwsUserError(() => parseClusterXml(doc(`<lan name="a">\n${N1}\n<node name="node2" addr="node2.example"/>\n</lan>`)),
    'cluster.xml line 5', 'node "node2"', '"node2.example" which is not an IPv4 address');
});

test('a node may appear only once per lan', () => {
  throwsUserError(() => parseClusterXml(doc(`<lan name="a">\n${N1}\n${N2}\n<node name="node1" addr="10.0.0.3"/>\n</lan>`)),
    'cluster.xml line 6', 'node "node1" appears twice in lan "a"', 'line 4');
});

test('an addr may appear only once in the whole file', () => {
  throwsUserError(() => parseClusterXml(doc(`<lan name="a">\n${N1}\n<node name="node2" addr="10.0.0.1"/>\n</lan>`)),
    'cluster.xml line 5', 'addr 10.0.0.1 of node "node2" in lan "a"', 'node "node1" in lan "a" (line 4)');
  throwsUserError(() => parseClusterXml(doc(`<lan name="a">\n${N1}\n${N2}\n</lan>\n<lan name="b">\n<node name="node1" addr="10.0.0.2"/>\n<node name="node2" addr="10.0.1.2"/>\n</lan>`)),
    'cluster.xml line 8', 'addr 10.0.0.2 of node "node1" in lan "b"', 'node "node2" in lan "a" (line 5)');
});

test('every lan lists the same nodes', () => {
  throwsUserError(() => parseClusterXml(doc(`<lan name="a">\n${N1}\n${N2}\n</lan>\n<lan name="b">\n<node name="node1" addr="10.0.1.1"/>\n</lan>`)),
    'cluster.xml line 7', 'lan "b" has no node "node2"', 'lan "a" has it', 'add <node name="node2" addr="<ip>"/> to lan "b"');
  throwsUserError(() => parseClusterXml(doc(`<lan name="a">\n${N1}\n${N2}\n</lan>\n<lan name="b">\n<node name="node1" addr="10.0.1.1"/>\n<node name="node2" addr="10.0.1.2"/>\n<node name="node3" addr="10.0.1.3"/>\n</lan>`)),
    'cluster.xml line 3', 'lan "a" has no node "node3"', 'lan "b" has it');
});

test('at least two nodes', () => {
  throwsUserError(() => parseClusterXml(doc(`<lan name="a">${N1}</lan>`)), 'cluster.xml line 2', '1 node (node1)', 'at least 2');
});

test.run();
