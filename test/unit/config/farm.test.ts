import fs from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseClusterXml } from '../../../src/config/cluster.js';
import { FARM_DEFAULTS } from '../../../src/config/farm.js';
import type { FarmModuleConfig, ModuleConfig } from '../../../src/config/types.js';
import { moduleConflict, parseModuleUserconfig, parseUserconfig } from '../../../src/config/userconfig.js';
import { UserError } from '../../../src/errors.js';
import { repoRoot } from '../../../src/lab/spec.js';
import { throwsUserError } from './assert-user-error.js';

function clusterOf(n: number) {
  const nodes = (net: string) => Array.from({ length: n }, (_, i) => `<node name="node${i + 1}" addr="${net}.${i + 1}"/>`).join('');
  return parseClusterXml(`<cluster><lans>
  <lan name="default">${nodes('198.51.100')}</lan>
  <lan name="replication">${nodes('203.0.113')}</lan>
</lans></cluster>`);
}
const CLUSTER = clusterOf(3);

const FULL = `<safe>
 <service mode="farm" maxloop="5" loop_interval="1h">
  <farm pulse="100ms" timeout="1s"><lan name="replication"/><lan name="default"/></farm>
  <vip>
   <interface_list>
    <interface check="on">
     <virtual_interface type="vmac_directed">
      <virtual_addr addr="198.51.100.10" where="alias" check="on"/>
      <virtual_addr addr="198.51.100.11" check="off"/>
     </virtual_interface>
    </interface>
    <interface check="off">
     <virtual_interface><virtual_addr addr="203.0.113.10"/></virtual_interface>
    </interface>
   </interface_list>
   <loadbalancing_list>
    <group name="web">
     <cluster><host name="node1" power="1"/><host name="node2" power="1"/><host name="node3" power="2"/></cluster>
     <rule port="8080" proto="tcp" filter="on_addr"/>
     <rule virtual_addr="198.51.100.11" port="443" proto="tcp" filter="on_port"/>
    </group>
    <group name="dns">
     <cluster><host name="node3"/></cluster>
     <rule virtual_addr="*" port="*" proto="udp"/>
    </group>
   </loadbalancing_list>
  </vip>
  <user nicestoptimeout="20s" forcestoptimeout="5s"><var name="APP_PORT" value="8080"/></user>
  <errd polltimer="1s"><proc name="node" atleast="1" action="restart" class="both"/></errd>
  <check><tcp ident="http"><to addr="127.0.0.1" port="8080"/></tcp></check>
  <failover handle_time="2s"><![CDATA[ web_down: if (tcp.http == down) then restart(); ]]></failover>
 </service>
</safe>`;

const parse = (text: string): ModuleConfig => parseModuleUserconfig(text, 'web', CLUSTER);
const parseFarm = (text: string): FarmModuleConfig => {
  const m = parse(text);
  if (m.mode !== 'farm') throw new Error(`expected a farm module, got ${m.mode}`);
  return m;
};

test('a full farm module parses into the exact object', () => {
  const m = parseFarm(FULL);
  assert.equal(m, {
    name: 'web',
    mode: 'farm',
    heart: { pulseMs: 100, timeoutMs: 1000, lans: ['replication', 'default'] },
    vips: [
      { addr: '198.51.100.10', where: 'alias', check: true, checkAddr: true },
      { addr: '198.51.100.11', where: 'alias', check: true, checkAddr: false },
      { addr: '203.0.113.10', where: 'alias', check: false, checkAddr: true },
    ],
    groups: [
      {
        name: 'web',
        hosts: [{ name: 'node1', power: 1 }, { name: 'node2', power: 1 }, { name: 'node3', power: 2 }],
        rules: [
          { vip: null, port: 8080, proto: 'tcp', filter: 'on_addr', line: 19 },
          { vip: '198.51.100.11', port: 443, proto: 'tcp', filter: 'on_port', line: 20 },
        ],
        line: 17,
      },
      { name: 'dns', hosts: [{ name: 'node3', power: 1 }], rules: [{ vip: null, port: null, proto: 'udp', filter: 'on_addr', line: 24 }], line: 22 },
    ],
    user: { nicestoptimeoutMs: 20_000, forcestoptimeoutMs: 5000, vars: { APP_PORT: '8080' } },
    maxloop: 5,
    loopIntervalMs: 3_600_000,
    errd: { polltimerMs: 1000, procs: [{ name: 'node', nameregex: null, argregex: null, atleast: 1, atmax: -1, action: 'restart', class: 'both', line: 29 }] },
    checkers: [
      { type: 'tcp', ident: 'http', when: 'prim', action: 'restart', line: 30, addr: '127.0.0.1', port: 8080, intervalMs: 10_000, timeoutMs: 5000, send: null },
      // created by <interface check> and <virtual_addr check>, as for a mirror module
      { type: 'intf', ident: '', when: 'pre', action: 'wait', localAddr: null, vip: '198.51.100.10', intervalMs: 1000, line: 0 },
      { type: 'ip', ident: '198.51.100.10', when: 'prim', action: 'stopstart', addr: '198.51.100.10', intervalMs: 1000, line: 0 },
      { type: 'intf', ident: '', when: 'pre', action: 'wait', localAddr: null, vip: '198.51.100.11', intervalMs: 1000, line: 0 },
      { type: 'ip', ident: '203.0.113.10', when: 'prim', action: 'stopstart', addr: '203.0.113.10', intervalMs: 1000, line: 0 },
    ],
    rules: { extends: true, periodMs: 1000, handleTimeMs: 2000, text: ' web_down: if (tcp.http == down) then restart(); ', line: 31, column: 39 },
  });
});

/** The one-line <vip> of a valid farm module (VIP 198.51.100.10, group "web" of node1 on tcp port 80). */
const VIP = '<vip><interface_list><interface><virtual_interface><virtual_addr addr="198.51.100.10"/></virtual_interface></interface></interface_list>' +
  '<loadbalancing_list><group name="web"><cluster><host name="node1"/></cluster><rule port="80"/></group></loadbalancing_list></vip>';

/** A farm userconfig.xml: <service ${attrs}> on line 2, `inner` from line 3. */
function svc(inner: string, attrs = 'mode="farm"'): string {
  return `<safe>\n<service ${attrs}>\n${inner}\n</service>\n</safe>`;
}

test('a minimal farm module gets every default', () => {
  assert.equal(parseFarm(svc(VIP)), {
    name: 'web',
    mode: 'farm',
    heart: { pulseMs: 200, timeoutMs: 2000, lans: ['default', 'replication'] },
    vips: [{ addr: '198.51.100.10', where: 'alias', check: true, checkAddr: true }],
    groups: [{ name: 'web', hosts: [{ name: 'node1', power: 1 }], rules: [{ vip: null, port: 80, proto: 'tcp', filter: 'on_addr', line: 3 }], line: 3 }],
    user: { nicestoptimeoutMs: 300_000, forcestoptimeoutMs: 300_000, vars: {} },
    maxloop: 3,
    loopIntervalMs: 86_400_000,
    errd: null,
    checkers: [
      { type: 'intf', ident: '', when: 'pre', action: 'wait', localAddr: null, vip: '198.51.100.10', intervalMs: 1000, line: 0 },
      { type: 'ip', ident: '198.51.100.10', when: 'prim', action: 'stopstart', addr: '198.51.100.10', intervalMs: 1000, line: 0 },
    ],
    rules: null,
  });
  assert.equal(FARM_DEFAULTS, { pulseMs: 200, timeoutMs: 2000, power: 1, proto: 'tcp', filter: 'on_addr', maxNodes: 8 });
});

test('parseModuleUserconfig parses a mirror module as parseUserconfig does; parseUserconfig refuses a farm module', () => {
  const two = clusterOf(2);
  const mirror = '<safe><service mode="mirror" defaultprim="node2"><heart pulse="1s" timeout="3s"/><rfs><replicated dir="/d"/></rfs></service></safe>';
  assert.equal(parseModuleUserconfig(mirror, 'demo', two), parseUserconfig(mirror, 'demo', two));
  assert.is(parseModuleUserconfig(mirror, 'demo', two).mode, 'mirror');
  throwsUserError(() => parseUserconfig(FULL, 'web', CLUSTER), 'userconfig.xml line 2: module web is a farm module (<service mode="farm">)', 'only mirror modules');
  throwsUserError(() => parseModuleUserconfig(svc(VIP, 'mode="cluster"'), 'web', CLUSTER), 'userconfig.xml line 2', '<service mode="cluster"> is not a module mode', 'Use mode="mirror" or mode="farm".');
  throwsUserError(() => parseModuleUserconfig(FULL, '9web', CLUSTER), 'module name "9web" is not valid');
});

test('a farm module runs on 2 to 8 nodes', () => {
  assert.is(parseModuleUserconfig(svc(VIP), 'web', clusterOf(2)).mode, 'farm');
  assert.is(parseModuleUserconfig(svc(VIP), 'web', clusterOf(8)).mode, 'farm');
  throwsUserError(() => parseModuleUserconfig(svc(VIP), 'web', clusterOf(9)), 'userconfig.xml line 2', 'at most 8 nodes', 'has 9 (node1, node2', 'Use a cluster.xml with 2 to 8 nodes');
});

// ───────────────────────────── <farm> ─────────────────────────────

/** <farm ${attrs}>${lans}</farm> on line 3. */
const farm = (attrs: string, lans = '') => parse(svc(`<farm ${attrs}>${lans}</farm>\n${VIP}`));

test('farm: pulse and timeout as <heart>, timeout ≥ 3 × pulse', () => {
  assert.equal((farm('pulse="500ms" timeout="1500ms"') as FarmModuleConfig).heart, { pulseMs: 500, timeoutMs: 1500, lans: ['default', 'replication'] });
  assert.equal((farm('timeout="600ms"') as FarmModuleConfig).heart.pulseMs, 200, 'default pulse');
  assert.equal((farm('') as FarmModuleConfig).heart, { pulseMs: 200, timeoutMs: 2000, lans: ['default', 'replication'] }, '<farm> without attributes: defaults');
  throwsUserError(() => farm('pulse="1s"'), 'userconfig.xml line 3', 'farm timeout 2s is less than 3 × pulse 1s', 'Set timeout to at least 3s or lower pulse.');
  throwsUserError(() => farm('pulse="0ms"'), 'userconfig.xml line 3', '<farm pulse="0ms"> must be more than 0', 'Use e.g. pulse="200ms".');
  throwsUserError(() => farm('timeout="2"'), 'userconfig.xml line 3: <farm timeout="2">', 'has no unit');
  throwsUserError(() => farm('period="1s"'), 'userconfig.xml line 3', 'farm has attribute "period"', 'supported: pulse, timeout, mlost_count');
});

test('farm: mlost_count sets timeout = pulse × mlost_count, and not together with timeout', () => {
  assert.equal((farm('pulse="100ms" mlost_count="20"') as FarmModuleConfig).heart.timeoutMs, 2000);
  assert.equal((farm('mlost_count="3"') as FarmModuleConfig).heart.timeoutMs, 600, 'with the default pulse');
  throwsUserError(() => farm('timeout="2s" mlost_count="10"'), 'userconfig.xml line 3', 'both timeout and mlost_count', 'Keep one of them.');
  for (const bad of ['2', '0', '-5', '2.5', 'ten']) {
    throwsUserError(() => farm(`mlost_count="${bad}"`), `userconfig.xml line 3: <farm mlost_count="${bad}"> must be a whole number of at least 3`);
  }
});

test('farm: slost_count and port are refused, saying why and what to write', () => {
  throwsUserError(() => farm('slost_count="10"'), 'userconfig.xml line 3', '<farm slost_count="10">', 'has no leader', 'Remove slost_count; set timeout (or mlost_count).');
  throwsUserError(() => farm('port="4803"'), 'userconfig.xml line 3', '<farm port="4803">', "cluster.xml's <lans port> (4800)", 'Remove port');
});

test('farm: <lan> names distinct LANs of cluster.xml; none means every LAN', () => {
  assert.equal((farm('', '<lan name="replication"/>') as FarmModuleConfig).heart.lans, ['replication']);
  throwsUserError(() => farm('', '\n<lan name="wan"/>'), 'userconfig.xml line 4', 'lan "wan" is not a lan of cluster.xml', 'Use one of: default, replication.');
  throwsUserError(() => farm('', '\n<lan/>'), 'userconfig.xml line 4', '<lan> has no name', 'Add name="<lan>" with one of: default, replication.');
  throwsUserError(() => farm('', '\n<lan name="default"/>\n<lan name="default"/>'), 'userconfig.xml line 5', 'lan "default" is listed twice', 'Remove one.');
  throwsUserError(() => farm('', '\n<heartbeat name="default"/>'), 'userconfig.xml line 4', 'element <heartbeat>', 'supported: <lan>');
});

// ───────────────────────────── <vip> ─────────────────────────────

const LB = '<loadbalancing_list><group name="web"><cluster><host name="node1"/></cluster><rule port="80"/></group></loadbalancing_list>';

/** A farm <vip> whose <interface> is line 4, <virtual_interface> line 5 and first virtual_addr line 6. */
function vip(vas: string, { intf = '', vi = ' type="vmac_directed"', lb = LB } = {}): string {
  return svc(`<vip><interface_list>\n<interface${intf}>\n<virtual_interface${vi}>\n${vas}\n</virtual_interface>\n</interface>\n</interface_list>\n${lb}\n</vip>`);
}

test('vip: addresses are IPv4, not a node address, unique (as in a mirror module)', () => {
  throwsUserError(() => parse(vip('<virtual_addr/>')), 'userconfig.xml line 6', '<virtual_addr> has no addr', 'Add addr="<virtual IPv4 address>"');
  throwsUserError(() => parse(vip('<virtual_addr addr="fe80::1"/>')), 'userconfig.xml line 6', 'virtual_addr "fe80::1" is not an IPv4 address', 'Write a dotted quad');
  throwsUserError(() => parse(vip('<virtual_addr addr="198.51.100.3"/>')), 'userconfig.xml line 6', 'virtual_addr 198.51.100.3 is the address of node "node3" on lan "default"', 'Choose a free address');
  throwsUserError(() => parse(vip('<virtual_addr addr="198.51.100.10"/>\n<virtual_addr addr="198.51.100.10"/>')), 'userconfig.xml line 7', 'virtual_addr 198.51.100.10 is listed twice (also line 6)', 'Remove one.');
});

test('vip: where is alias; check on/off decides the intf and ip checkers', () => {
  throwsUserError(() => parse(vip('<virtual_addr addr="198.51.100.10" where="one_side_alias"/>')), 'userconfig.xml line 6', 'where="one_side_alias"', 'on every UP node', 'Use where="alias" (the default)');
  throwsUserError(() => parse(vip('<virtual_addr addr="198.51.100.10" check="yes"/>')), 'userconfig.xml line 6', 'check="yes"', '"on" or "off"');
  const m = parseFarm(vip('<virtual_addr addr="198.51.100.10" check="off"/>', { intf: ' check="off"' }));
  assert.equal(m.vips, [{ addr: '198.51.100.10', where: 'alias', check: false, checkAddr: false }]);
  assert.equal(m.checkers, []);
});

test('vip: vmac_invisible, other types and <real_interface> are refused', () => {
  throwsUserError(() => parse(vip('<virtual_addr addr="198.51.100.10"/>', { vi: ' type="vmac_invisible"' })), 'userconfig.xml line 5', 'type="vmac_invisible"', 'not supported', 'Use type="vmac_directed".');
  throwsUserError(() => parse(vip('<virtual_addr addr="198.51.100.10"/>', { vi: ' type="vlan"' })), 'userconfig.xml line 5', 'type="vlan"', 'Use type="vmac_directed" (the default).');
  throwsUserError(() => parse(vip('<virtual_addr addr="198.51.100.10"/>', { vi: ' addr="5A:FE:C6:33:64:0A"' })), 'userconfig.xml line 5', 'virtual_interface has attribute "addr"', 'supported: type');
  throwsUserError(() => parse(svc(`<vip><interface_list>\n<interface>\n<real_interface><virtual_addr addr="198.51.100.10"/></real_interface>\n</interface>\n</interface_list>\n${LB}</vip>`)),
    'userconfig.xml line 5', '<real_interface> is the mirror form', 'write <virtual_interface type="vmac_directed"><virtual_addr addr="…" where="alias"/></virtual_interface>');
  throwsUserError(() => parse(vip('')), 'userconfig.xml line 5', '<virtual_interface> has no <virtual_addr>');
});

test('vip: a farm module needs a <virtual_addr> and a <loadbalancing_list>', () => {
  throwsUserError(() => parse(svc('<user/>')), 'userconfig.xml line 2', 'a farm module has no <virtual_addr>', 'Add <vip><interface_list><interface><virtual_interface type="vmac_directed"><virtual_addr addr="…" where="alias"/>');
  throwsUserError(() => parse(svc(`<vip>\n${LB}\n</vip>`)), 'userconfig.xml line 3', 'a farm module has no <virtual_addr>', 'Add <vip><interface_list>');
  throwsUserError(() => parse(vip('<virtual_addr addr="198.51.100.10"/>', { lb: '' })), 'userconfig.xml line 3', 'a farm module has no <loadbalancing_list>', 'Add <loadbalancing_list><group name="…"><cluster><host name="<node>" power="1"/>…</cluster><rule port="…" proto="tcp"/></group></loadbalancing_list> inside <vip>.');
  throwsUserError(() => parse(svc('<vip tcpreset="on"/>')), 'userconfig.xml line 3', 'vip has attribute "tcpreset"');
});

// ───────────────────────────── <loadbalancing_list> ─────────────────────────────

/** A farm module whose <loadbalancing_list> is on line 4 and `inner` from line 5 (VIPs 198.51.100.10 and .11). */
function lb(inner: string): string {
  return svc('<vip><interface_list><interface><virtual_interface><virtual_addr addr="198.51.100.10"/><virtual_addr addr="198.51.100.11"/>' +
    `</virtual_interface></interface></interface_list>\n<loadbalancing_list>\n${inner}\n</loadbalancing_list></vip>`);
}
/** A group "g" whose <host> is line 6 and <rule> line 8 (with lb). */
const group = (host: string, rule = '<rule port="80"/>') => lb(`<group name="g"><cluster>\n${host}\n</cluster>\n${rule}\n</group>`);
const rule = (attrs: string) => group('<host name="node1"/>', `<rule ${attrs}/>`);
const rules = (m: FarmModuleConfig) => m.groups.flatMap((g) => g.rules.map(({ line: _, ...r }) => r));

test('hosts: nodes of cluster.xml, once per group', () => {
  throwsUserError(() => parse(group('<host name="node9"/>')), 'userconfig.xml line 6', 'host "node9" is not a node of cluster.xml', 'Use one of: node1, node2, node3.');
  throwsUserError(() => parse(group('<host/>')), 'userconfig.xml line 6', '<host> has no name', 'Add name="<node>" with one of: node1, node2, node3.');
  throwsUserError(() => parse(group('<host name="node1"/>\n<host name="node1"/>')), 'userconfig.xml line 7', 'host "node1" is listed twice in group "g" (also line 6)', 'Remove one.');
  throwsUserError(() => parse(group('<host name="node1" weight="2"/>')), 'userconfig.xml line 6', 'host has attribute "weight"', 'supported: name, power');
  throwsUserError(() => parse(group('<node name="node1"/>')), 'userconfig.xml line 6', 'element <node>', 'supported: <host>');
  const m = parseFarm(lb('<group name="a"><cluster><host name="node1"/><host name="node2"/></cluster><rule port="80"/></group>\n<group name="b"><cluster><host name="node2"/></cluster><rule port="81"/></group>'));
  assert.equal(m.groups.map((g) => g.hosts), [[{ name: 'node1', power: 1 }, { name: 'node2', power: 1 }], [{ name: 'node2', power: 1 }]], 'a node may be in several groups');
});

test('hosts: power is a whole number ≥ 1, default 1', () => {
  assert.equal(parseFarm(group('<host name="node1"/>')).groups[0]!.hosts, [{ name: 'node1', power: 1 }]);
  assert.equal(parseFarm(group('<host name="node1" power="64"/>')).groups[0]!.hosts, [{ name: 'node1', power: 64 }]);
  for (const bad of ['0', '-1', '1.5', 'two', '', ' 1', '1e2']) {
    throwsUserError(() => parse(group(`<host name="node1" power="${bad}"/>`)),
      `userconfig.xml line 6: <host name="node1" power="${bad}"> must be a whole number of at least 1`, 'Write e.g. power="1", or remove the host');
  }
});

test('rules: port required, 1..65535 or *', () => {
  throwsUserError(() => parse(rule('proto="tcp"')), 'userconfig.xml line 8', 'a rule without port', 'Add port="<1-65535>", or port="*" for every port of its proto.');
  for (const bad of ['0', '65536', 'http', '', '-80', '8O']) {
    throwsUserError(() => parse(rule(`port="${bad}"`)), `userconfig.xml line 8: <rule port="${bad}"> is not a port`, 'Use a number from 1 to 65535, or "*" for every port.');
  }
  assert.equal(rules(parseFarm(rule('port="*"'))), [{ vip: null, port: null, proto: 'tcp', filter: 'on_addr' }]);
  assert.equal(rules(parseFarm(rule('port="65535" proto="udp" filter="on_port"'))), [{ vip: null, port: 65535, proto: 'udp', filter: 'on_port' }]);
});

test('rules: proto tcp or udp (arp refused), filter on_addr or on_port (on_ipid refused)', () => {
  throwsUserError(() => parse(rule('port="*" proto="arp"')), 'userconfig.xml line 8', '<rule proto="arp"> is not needed', 'Remove this rule; balance tcp or udp.');
  throwsUserError(() => parse(rule('port="80" proto="icmp"')), 'userconfig.xml line 8', '<rule proto="icmp"> is not valid', 'Use proto="tcp" (the default) or proto="udp".');
  throwsUserError(() => parse(rule('port="80" filter="on_ipid"')), 'userconfig.xml line 8', '<rule filter="on_ipid">', 'not supported', 'Use filter="on_addr"', 'filter="on_port"');
  throwsUserError(() => parse(rule('port="80" filter="round_robin"')), 'userconfig.xml line 8', '<rule filter="round_robin"> is not valid', 'Use filter="on_addr" (the default) or filter="on_port".');
  throwsUserError(() => parse(rule('port="80" weight="1"')), 'userconfig.xml line 8', 'rule has attribute "weight"', 'supported: virtual_addr, port, proto, filter');
});

test('rules: virtual_addr is * or one of the module\'s VIPs, and is kept', () => {
  assert.equal(rules(parseFarm(rule('virtual_addr="198.51.100.11" port="80"'))), [{ vip: '198.51.100.11', port: 80, proto: 'tcp', filter: 'on_addr' }]);
  assert.equal(rules(parseFarm(rule('virtual_addr="*" port="80"'))), [{ vip: null, port: 80, proto: 'tcp', filter: 'on_addr' }]);
  throwsUserError(() => parse(rule('virtual_addr="198.51.100.99" port="80"')), 'userconfig.xml line 8', '<rule virtual_addr="198.51.100.99"> is not a virtual_addr of this module', 'Use "*" (every VIP) or one of: 198.51.100.10, 198.51.100.11.');
});

test('rules: no two rules of the module may match the same packet', () => {
  const two = (a: string, b: string) => lb(`<group name="a"><cluster><host name="node1"/></cluster><rule ${a}/></group>\n<group name="b"><cluster><host name="node2"/></cluster><rule ${b}/></group>`);
  throwsUserError(() => parse(two('port="80"', 'port="80"')), 'userconfig.xml line 6', 'rule tcp port 80 on every VIP of group "b" overlaps rule tcp port 80 on every VIP of group "a" (line 5)',
    'a packet would match both', 'Change the port, proto or virtual_addr of one of them, or remove one.');
  throwsUserError(() => parse(two('port="*"', 'port="443"')), 'userconfig.xml line 6', 'rule tcp port 443 on every VIP of group "b" overlaps rule tcp port * on every VIP of group "a" (line 5)');
  throwsUserError(() => parse(two('virtual_addr="198.51.100.10" port="80"', 'port="80"')), 'userconfig.xml line 6', 'overlaps rule tcp port 80 on 198.51.100.10 of group "a"');
  throwsUserError(() => parse(two('virtual_addr="198.51.100.10" port="80" filter="on_port"', 'virtual_addr="198.51.100.10" port="80"')), 'userconfig.xml line 6', 'overlaps', 'group "a"');
  throwsUserError(() => parse(rule('port="80"/>\n<rule port="80" filter="on_port"')), 'userconfig.xml line 9', 'overlaps rule tcp port 80 on every VIP in the same group "g" (line 8)');
  // disjoint: another proto, another port, another VIP
  assert.is(parseFarm(two('port="53" proto="udp"', 'port="53" proto="tcp"')).groups.length, 2);
  assert.is(parseFarm(two('port="80"', 'port="8080"')).groups.length, 2);
  assert.is(parseFarm(two('virtual_addr="198.51.100.10" port="80"', 'virtual_addr="198.51.100.11" port="80"')).groups.length, 2);
});

test('groups: named once, with hosts and rules', () => {
  throwsUserError(() => parse(lb('<group name="g"><rule port="80"/></group>')), 'userconfig.xml line 5', 'group "g" has no host', 'Add <cluster><host name="<node>" power="1"/>…</cluster> with nodes of cluster.xml: node1, node2, node3.');
  throwsUserError(() => parse(lb('<group name="g">\n<cluster/><rule port="80"/></group>')), 'userconfig.xml line 6', 'group "g" has no host');
  throwsUserError(() => parse(lb('<group name="g"><cluster><host name="node1"/></cluster></group>')), 'userconfig.xml line 5', 'group "g" has no <rule>', 'Add <rule port="…" proto="tcp"/> (port="*" for every port).');
  throwsUserError(() => parse(lb('<group name="g"><cluster><host name="node1"/></cluster><rule port="80"/></group>\n<group name="g"><cluster><host name="node2"/></cluster><rule port="81"/></group>')),
    'userconfig.xml line 6', 'group "g" is defined twice (also line 5)', 'Give each group its own name, or merge them.');
  throwsUserError(() => parse(lb('<group><cluster><host name="node1"/></cluster><rule port="80"/></group>')), 'userconfig.xml line 5', '<group> has no name', 'Add name="…"');
  throwsUserError(() => parse(lb('<group name="a b"><cluster><host name="node1"/></cluster><rule port="80"/></group>')), 'userconfig.xml line 5', 'group name "a b" is not valid');
  throwsUserError(() => parse(lb('<group name="g"><cluster><host name="node1"/></cluster>\n<cluster><host name="node2"/></cluster><rule port="80"/></group>')), 'userconfig.xml line 6', 'second <cluster>');
  throwsUserError(() => parse(lb('')), 'userconfig.xml line 4', '<loadbalancing_list> has no <group>', 'Add <loadbalancing_list><group name="…">');
});

// ───────────────────────────── mirror-only parts ─────────────────────────────

test('mirror-only elements and attributes are refused, each saying why and what to do', () => {
  throwsUserError(() => parse(svc(`<heart pulse="500ms"/>\n${VIP}`)), 'userconfig.xml line 3', '<heart> sets the heartbeats of a mirror module', 'Replace <heart> by <farm>.');
  throwsUserError(() => parse(svc(`<rfs><replicated dir="/d"/></rfs>\n${VIP}`)), 'userconfig.xml line 3', '<rfs> replicates files between the two nodes of a mirror module; a farm module has none', 'Remove <rfs>, or use mode="mirror"');
  throwsUserError(() => parse(svc(`<splitbrain arg="192.0.2.1"/>\n${VIP}`)), 'userconfig.xml line 3', 'a farm has no split brain', 'Remove <splitbrain>.');
  throwsUserError(() => parse(svc(`${VIP}\n<check>\n<splitbrain arg="192.0.2.1"/>\n</check>`)), 'userconfig.xml line 5', 'a farm has no split brain', 'Remove <splitbrain>.');
  throwsUserError(() => parse(svc(VIP, 'mode="farm" defaultprim="node1"')), 'userconfig.xml line 2', '<service defaultprim="node1">', 'a farm module has no primary', 'Remove defaultprim.');
  throwsUserError(() => parse(svc(VIP, 'mode="farm" failover="off"')), 'userconfig.xml line 2', '<service failover="off">', 'a farm has no takeover', 'Remove the failover attribute');
  throwsUserError(() => parse(svc(VIP, 'mode="farm" boot="on"')), 'userconfig.xml line 2', 'service has attribute "boot"', 'supported: mode, maxloop, loop_interval');
  throwsUserError(() => parse(svc(`${VIP}\n<vhost/>`)), 'userconfig.xml line 4', 'element <vhost>', 'supported: <farm>, <vip>, <check>, <errd>, <failover>, <user>');
  assert.ok(parseFarm(svc(`${VIP}\n<failover><![CDATA[ x: if (ip.* == down) then stopstart(); ]]></failover>`)).rules, 'the <failover> element is allowed');
});

test('checkers and processes cannot be watched "when second" in a farm module', () => {
  throwsUserError(() => parse(svc(`${VIP}\n<check>\n<ping ident="gw" when="second"><to addr="192.0.2.1"/></ping>\n</check>`)),
    'userconfig.xml line 5', 'ping when="second": a farm module has no SECOND', 'Use "prim" or "both" (while the node is UP) or "pre"');
  throwsUserError(() => parse(svc(`${VIP}\n<errd>\n<proc name="app" class="second"/>\n</errd>`)), 'userconfig.xml line 5', 'proc class="second"', 'Use "prim" or "both"');
});

test('maxloop, loop_interval, <user>, <errd>, <check>, <failover> are parsed as for a mirror module', () => {
  const m = parseFarm(svc(`${VIP}\n<user><var name="A" value="1"/></user>\n<check><ping ident="gw"><to addr="192.0.2.1"/></ping></check>`, 'mode="farm" maxloop="0" loop_interval="10m"'));
  assert.equal([m.maxloop, m.loopIntervalMs, m.user.vars], [0, 600_000, { A: '1' }]);
  assert.equal(m.checkers[0], { type: 'ping', ident: 'gw', when: 'pre', action: 'wait', line: 5, addrs: ['192.0.2.1'], intervalMs: 10_000, timeoutMs: 5000 });
  throwsUserError(() => parse(svc(VIP, 'mode="farm" maxloop="x"')), 'userconfig.xml line 2', '<service maxloop="x"> must be a whole number of 0 or more');
  throwsUserError(() => parse(svc(VIP, 'mode="farm" loop_interval="1"')), 'userconfig.xml line 2: <service loop_interval="1">', 'has no unit');
  throwsUserError(() => parse(svc(`${VIP}\n<user>\n<var name="1A" value="x"/>\n</user>`)), 'userconfig.xml line 5', 'var name "1A" is not a valid environment variable name');
  throwsUserError(() => parse(svc(`${VIP}\n<errd/>`)), 'userconfig.xml line 4', '<errd> has no <proc>');
  throwsUserError(() => parse(svc(`${VIP}\n<check>\n<ip><to addr="192.0.2.50"/></ip>\n</check>`)), 'userconfig.xml line 5', 'is not a virtual_addr of this module', '198.51.100.10');
  throwsUserError(() => parse(svc(`${VIP}\n<failover><![CDATA[\nx: disabled;\n]]></failover>`)), 'userconfig.xml line 5, column 1', '"x: disabled;" names no default rule', 'interface_failure, ip_failure');
});

test('examples/farm-web/userconfig.xml is a valid farm module', () => {
  const m = parseFarm(fs.readFileSync(path.join(repoRoot(), 'examples', 'farm-web', 'userconfig.xml'), 'utf8'));
  assert.equal(m.groups.map((g) => [g.name, g.hosts, g.rules.map(({ line: _, ...r }) => r)]), [
    ['web', [{ name: 'node1', power: 1 }, { name: 'node2', power: 1 }, { name: 'node3', power: 2 }], [{ vip: null, port: 8080, proto: 'tcp', filter: 'on_addr' }]],
  ]);
  assert.equal(m.vips.map((v) => v.addr), ['198.51.100.20']);
  for (const script of ['start_both', 'stop_both']) {
    assert.ok(fs.statSync(path.join(repoRoot(), 'examples', 'farm-web', 'bin', script)).mode & 0o100, `${script} is executable`);
  }
});

// ───────────────────────────── cross-module conflicts ─────────────────────────────

test('moduleConflict: a VIP held by two modules, farm or mirror, names the holder and the fix', () => {
  const two = clusterOf(2);
  const farmOf = (name: string, addr: string) => parseModuleUserconfig(svc(VIP.replace('198.51.100.10', addr)), name, two);
  const mirror = parseModuleUserconfig('<safe><service mode="mirror"><vip><interface_list><interface><real_interface><virtual_addr addr="198.51.100.20"/></real_interface></interface></interface_list></vip></service></safe>', 'db', two);
  const web = farmOf('web', '198.51.100.20');
  const e = moduleConflict(web, [mirror]);
  assert.instance(e, UserError);
  assert.is(e!.message, 'module web: its virtual IP 198.51.100.20 is also module db\'s (a mirror module). A virtual IP belongs to one module: ' +
    'change <virtual_addr addr="…"> in the userconfig.xml of one of them to a free address, then run `tandem config -m web`.');
  assert.match(moduleConflict(mirror, [web])!.message, /^module db: its virtual IP 198\.51\.100\.20 is also module web's \(a farm module\)\./);
  assert.match(moduleConflict(farmOf('api', '198.51.100.20'), [farmOf('other', '198.51.100.21'), web])!.message, /^module api: its virtual IP 198\.51\.100\.20 is also module web's \(a farm module\)/);
  assert.is(moduleConflict(farmOf('api', '198.51.100.21'), [web, mirror]), null);
  assert.is(moduleConflict(web, [web]), null, 'a module does not conflict with itself (reload)');
});

test.run();
