import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseClusterXml } from '../../../src/config/cluster.js';
import { moduleConflict, parseUserconfig, rfsDefaultPort, validateModuleName } from '../../../src/config/userconfig.js';
import { UserError } from '../../../src/errors.js';
import { throwsUserError } from './assert-user-error.js';

const CLUSTER = parseClusterXml(`<cluster><lans>
  <lan name="default"><node name="node1" addr="198.51.100.1"/><node name="node2" addr="198.51.100.2"/></lan>
  <lan name="replication"><node name="node1" addr="203.0.113.1"/><node name="node2" addr="203.0.113.2"/></lan>
</lans></cluster>`);

const FULL = `<safe>
  <service mode="mirror" defaultprim="node2" failover="off">
    <heart pulse="1s" timeout="10s"><heartbeat name="replication"/><heartbeat name="default"/></heart>
    <vip><interface_list>
      <interface check="off"><real_interface>
        <virtual_addr addr="198.51.100.10" where="one_side_alias"/>
        <virtual_addr addr="198.51.100.11"/>
      </real_interface></interface>
      <interface><real_interface><virtual_addr addr="203.0.113.10"/></real_interface></interface>
    </interface_list></vip>
    <rfs async="none" syncdelta="5m">
      <replicated dir="/srv/demo/data"><notreplicated path="tmp"/><notreplicated regexpath="\\.log$"/><notreplicated regexpath="!^keep/"/></replicated>
      <replicated dir="/srv/demo/conf" mode="read_only"/>
    </rfs>
    <splitbrain ident="witness" exec="ping" arg="198.51.100.254  192.0.2.1"/>
    <user nicestoptimeout="30s" forcestoptimeout="1m"><var name="X" value="y"/><var name="EMPTY" value=""/></user>
  </service>
</safe>`;

/** userconfig.xml with `inner` on line 3 onwards inside <service ${attrs}> (line 2). */
function svc(inner: string, attrs = 'mode="mirror"'): string {
  return `<safe>\n<service ${attrs}>\n${inner}\n</service>\n</safe>`;
}
const parse = (text: string) => parseUserconfig(text, 'demo', CLUSTER);

test('parses the full vocabulary into the exact object', () => {
  assert.equal(parseUserconfig(FULL, 'demo', CLUSTER), {
    name: 'demo',
    mode: 'mirror',
    defaultprim: 'node2',
    failover: false,
    heart: { pulseMs: 1000, timeoutMs: 10_000, lans: ['replication', 'default'] },
    vips: [
      { addr: '198.51.100.10', where: 'one_side_alias', check: false, checkAddr: true },
      { addr: '198.51.100.11', where: 'one_side_alias', check: false, checkAddr: true },
      { addr: '203.0.113.10', where: 'one_side_alias', check: true, checkAddr: true },
    ],
    rfs: {
      async: 'none',
      syncdeltaMs: 300_000,
      port: rfsDefaultPort(4800, 'demo'),
      replicated: [
        { dir: '/srv/demo/data', mode: 'read_write', notreplicated: [{ path: 'tmp' }, { regexpath: '\\.log$' }, { regexpath: '!^keep/' }] },
        { dir: '/srv/demo/conf', mode: 'read_only', notreplicated: [] },
      ],
    },
    splitbrain: { ident: 'witness', exec: 'ping', witnesses: ['198.51.100.254', '192.0.2.1'] },
    user: { nicestoptimeoutMs: 30_000, forcestoptimeoutMs: 60_000, vars: { X: 'y', EMPTY: '' } },
    maxloop: 3, loopIntervalMs: 86_400_000, errd: null, rules: null,
    // created by <interface check> (default on) and <virtual_addr check> (default on)
    checkers: [
      { type: 'ip', ident: '198.51.100.10', when: 'prim', action: 'stopstart', addr: '198.51.100.10', intervalMs: 1000, line: 0 },
      { type: 'ip', ident: '198.51.100.11', when: 'prim', action: 'stopstart', addr: '198.51.100.11', intervalMs: 1000, line: 0 },
      { type: 'intf', ident: '', when: 'pre', action: 'wait', localAddr: null, vip: '203.0.113.10', intervalMs: 1000, line: 0 },
      { type: 'ip', ident: '203.0.113.10', when: 'prim', action: 'stopstart', addr: '203.0.113.10', intervalMs: 1000, line: 0 },
    ],
  });
});

test('a minimal service gets every default', () => {
  assert.equal(parse('<safe><service mode="mirror"/></safe>'), {
    name: 'demo',
    mode: 'mirror',
    defaultprim: 'alone',
    failover: true,
    heart: { pulseMs: 500, timeoutMs: 5000, lans: ['default', 'replication'] },
    vips: [],
    rfs: null,
    splitbrain: null,
    user: { nicestoptimeoutMs: 300_000, forcestoptimeoutMs: 300_000, vars: {} },
    maxloop: 3, loopIntervalMs: 86_400_000, errd: null, checkers: [], rules: null,
  });
});

test('section defaults: empty <heart>, <rfs> defaults, <splitbrain> in <check>, empty <user>', () => {
  const m = parse(svc(`<heart/>
<rfs><replicated dir="/data"/></rfs>
<check><splitbrain arg="192.0.2.1"/></check>
<user/>`, 'mode="mirror" defaultprim="alone" failover="on"'));
  assert.equal(m.heart, { pulseMs: 500, timeoutMs: 5000, lans: ['default', 'replication'] });
  assert.equal(m.rfs, { async: 'none', syncdeltaMs: 0, port: rfsDefaultPort(4800, 'demo'), replicated: [{ dir: '/data', mode: 'read_write', notreplicated: [] }] });
  assert.equal(m.splitbrain, { ident: 'splitbrain', exec: 'ping', witnesses: ['192.0.2.1'] });
  assert.equal(m.user, { nicestoptimeoutMs: 300_000, forcestoptimeoutMs: 300_000, vars: {} });
  assert.is(m.defaultprim, 'alone');
  assert.is(m.failover, true);
});

test('timeout of exactly 3 × pulse is accepted', () => {
  assert.equal(parse(svc('<heart pulse="1s" timeout="3s"/>')).heart.timeoutMs, 3000);
});

test('validateModuleName', () => {
  for (const ok of ['a', 'demo', 'Web_app-2', `a${'b'.repeat(30)}`]) validateModuleName(ok);
  for (const bad of ['', '1abc', '_x', 'a.b', 'a b', `a${'b'.repeat(31)}`, 'été']) {
    throwsUserError(() => validateModuleName(bad), `module name "${bad}" is not valid`, 'a letter followed by up to 30');
  }
  throwsUserError(() => parseUserconfig(FULL, '9lives', CLUSTER), 'module name "9lives"');
});

test('root must be <safe> with exactly one <service>', () => {
  throwsUserError(() => parse('<cluster/>'), 'userconfig.xml line 1', 'root element is <cluster>', '<safe>');
  throwsUserError(() => parse('<safe>\n</safe>'), 'userconfig.xml line 1', 'no <service>');
  throwsUserError(() => parse('<safe>\n<service mode="mirror"/>\n<service mode="mirror"/>\n</safe>'), 'userconfig.xml line 3', 'second <service>');
  throwsUserError(() => parse('<safe>\n<macro name="A" value="b"/>\n<service mode="mirror"/></safe>'), 'userconfig.xml line 2', 'element <macro>', 'supported: <service>');
});

test('the file name given appears in messages', () => {
  throwsUserError(() => parseUserconfig('<cluster/>', 'demo', CLUSTER, '/h/modules/demo/userconfig.xml'), '/h/modules/demo/userconfig.xml line 1');
});

test('mode is required and is mirror or farm; parseUserconfig takes mirror modules only', () => {
  throwsUserError(() => parse(svc('', '')), 'userconfig.xml line 2', 'no mode', 'Add mode="mirror" or mode="farm".');
  throwsUserError(() => parse(svc('<farm/>', 'mode="farm"')), 'userconfig.xml line 2: module demo is a farm module (<service mode="farm">)', 'only mirror modules');
  throwsUserError(() => parse(svc('', 'mode="light"')), 'userconfig.xml line 2', 'light modules are not supported yet', 'Use mode="mirror" or mode="farm".');
  throwsUserError(() => parse(svc('', 'mode="Mirror"')), 'userconfig.xml line 2', 'mode="Mirror"', 'Use mode="mirror" or mode="farm".');
});

test('a mirror module parses on a cluster of more than 2 nodes (it runs on the two where it is installed)', () => {
  const three = parseClusterXml('<cluster><lans><lan name="a"><node name="n1" addr="10.0.0.1"/><node name="n2" addr="10.0.0.2"/><node name="n3" addr="10.0.0.3"/></lan></lans></cluster>');
  assert.is(parseUserconfig(svc(''), 'demo', three).mode, 'mirror');
});

test('unknown <service> attributes and children are errors', () => {
  throwsUserError(() => parse(svc('', 'mode="mirror" boot="on"')), 'userconfig.xml line 2', 'service has attribute "boot"', 'supported: mode, defaultprim, failover, maxloop, loop_interval');
  throwsUserError(() => parse(svc('<vhost/>')), 'userconfig.xml line 3', 'element <vhost>', '<heart>, <vip>, <rfs>, <splitbrain>, <check>, <errd>, <failover>, <user>');
  throwsUserError(() => parse(svc('<user/>\n<user/>')), 'userconfig.xml line 4', 'second <user>', 'line 3');
});

test('defaultprim must be alone or a node name', () => {
  throwsUserError(() => parse(svc('', 'mode="mirror" defaultprim="node9"')), 'userconfig.xml line 2', 'defaultprim="node9"', 'alone or one of: node1, node2');
  throwsUserError(() => parse(svc('', 'mode="mirror" defaultprim="lastprim"')), 'userconfig.xml line 2', 'defaultprim="lastprim"');
});

test('failover must be on or off', () => {
  throwsUserError(() => parse(svc('', 'mode="mirror" failover="yes"')), 'userconfig.xml line 2', 'failover="yes"', '"on" or "off"');
});

test('heart: durations, pulse > 0, timeout ≥ 3 × pulse', () => {
  throwsUserError(() => parse(svc('<heart pulse="700"/>')), 'userconfig.xml line 3: <heart pulse="700">', 'has no unit');
  throwsUserError(() => parse(svc('<heart timeout="5x"/>')), 'userconfig.xml line 3: <heart timeout="5x">', 'us, ms, s, m, h, d');
  throwsUserError(() => parse(svc('<heart pulse="0ms"/>')), 'userconfig.xml line 3', 'pulse="0ms"', 'more than 0');
  throwsUserError(() => parse(svc('<heart pulse="2s" timeout="5s"/>')), 'userconfig.xml line 3', 'timeout 5s is less than 3 × pulse 2s', 'at least 6s');
  throwsUserError(() => parse(svc('<heart timeout="1s"/>')), 'userconfig.xml line 3', 'timeout 1s', 'pulse 500ms', 'at least 1500ms');
});

test('heart: heartbeats must name distinct LANs of cluster.xml', () => {
  throwsUserError(() => parse(svc('<heart>\n<heartbeat name="wan"/>\n</heart>')), 'userconfig.xml line 4', 'heartbeat "wan" is not a lan', 'default, replication');
  throwsUserError(() => parse(svc('<heart>\n<heartbeat/>\n</heart>')), 'userconfig.xml line 4', '<heartbeat> has no name', 'default, replication');
  throwsUserError(() => parse(svc('<heart>\n<heartbeat name="default"/>\n<heartbeat name="default"/>\n</heart>')), 'userconfig.xml line 5', 'heartbeat "default" is listed twice');
  throwsUserError(() => parse(svc('<heart port="8888"/>')), 'userconfig.xml line 3', 'heart has attribute "port"', 'supported: pulse, timeout');
  throwsUserError(() => parse(svc('<heart>\n<heartbeat name="default" ident="flow"/>\n</heart>')), 'userconfig.xml line 4', 'heartbeat has attribute "ident"', 'supported: name');
  throwsUserError(() => parse(svc('<heart>\n<beat/>\n</heart>')), 'userconfig.xml line 4', 'element <beat>', 'supported: <heartbeat>');
});

/** A <vip> whose virtual_addr line is line 5. */
function vip(va: string, intfAttrs = ''): string {
  return svc(`<vip><interface_list>\n<interface${intfAttrs}><real_interface>\n${va}\n</real_interface></interface>\n</interface_list></vip>`);
}

test('vip: addresses are IPv4, not a node addr, unique', () => {
  throwsUserError(() => parse(vip('<virtual_addr/>')), 'userconfig.xml line 5', '<virtual_addr> has no addr');
  throwsUserError(() => parse(vip('<virtual_addr addr="vip.example"/>')), 'userconfig.xml line 5', 'virtual_addr "vip.example" is not an IPv4');
  throwsUserError(() => parse(vip('<virtual_addr addr="203.0.113.2"/>')), 'userconfig.xml line 5', 'virtual_addr 203.0.113.2', 'node "node2" on lan "replication"');
  throwsUserError(() => parse(vip('<virtual_addr addr="198.51.100.10"/>\n<virtual_addr addr="198.51.100.10"/>')), 'userconfig.xml line 6', '198.51.100.10 is listed twice', 'line 5');
});

test('vip: where is only one_side_alias, check is on/off', () => {
  throwsUserError(() => parse(vip('<virtual_addr addr="198.51.100.10" where="alias"/>')), 'userconfig.xml line 5', 'where="alias"', 'one_side_alias');
  throwsUserError(() => parse(vip('<virtual_addr addr="198.51.100.10"/>', ' check="maybe"')), 'userconfig.xml line 4', 'check="maybe"', '"on" or "off"');
});

test('vip: unsupported SafeKit attributes and elements are errors', () => {
  throwsUserError(() => parse(svc('<vip tcpreset="on"/>')), 'userconfig.xml line 3', 'vip has attribute "tcpreset"');
  throwsUserError(() => parse(vip('<virtual_addr addr="198.51.100.10" connections="off"/>')), 'userconfig.xml line 5', 'virtual_addr has attribute "connections"', 'supported: addr, where');
  throwsUserError(() => parse(vip('<virtual_addr addr="198.51.100.10"/>', ' arpreroute="on"')), 'userconfig.xml line 4', 'interface has attribute "arpreroute"', 'supported: check');
  throwsUserError(() => parse(svc('<vip><interface_list>\n<interface>\n<virtual_interface type="vmac_directed"/>\n</interface>\n</interface_list></vip>')),
    'userconfig.xml line 5', 'element <virtual_interface>', 'supported: <real_interface>');
  throwsUserError(() => parse(svc('<vip>\n<loadbalancing_list/>\n</vip>')), 'userconfig.xml line 4', 'element <loadbalancing_list>');
  throwsUserError(() => parse(svc('<vip><interface_list>\n<other/>\n</interface_list></vip>')), 'userconfig.xml line 4', 'element <other>', 'supported: <interface>');
  throwsUserError(() => parse(vip('<host/>')), 'userconfig.xml line 5', 'element <host>', 'supported: <virtual_addr>');
});

test('vip: empty containers are errors', () => {
  throwsUserError(() => parse(svc('<vip/>')), 'userconfig.xml line 3', '<vip> has no <interface_list>');
  throwsUserError(() => parse(svc('<vip>\n<interface_list/>\n</vip>')), 'userconfig.xml line 4', '<interface_list> has no <interface>');
  throwsUserError(() => parse(svc('<vip><interface_list>\n<interface/>\n</interface_list></vip>')), 'userconfig.xml line 4', '<interface> has no <real_interface>');
  throwsUserError(() => parse(vip('')), 'userconfig.xml line 4', '<real_interface> has no <virtual_addr>');
});

/** An <rfs> whose first <replicated> is on line 4. */
function rfs(replicated: string, rfsAttrs = ''): string {
  return svc(`<rfs${rfsAttrs}>\n${replicated}\n</rfs>`);
}

test('rfs: attributes', () => {
  throwsUserError(() => parse(rfs('<replicated dir="/d"/>', ' async="yes"')), 'userconfig.xml line 3', 'async="yes"', 'second', 'none');
  throwsUserError(() => parse(rfs('<replicated dir="/d"/>', ' syncdelta="10"')), 'userconfig.xml line 3: <rfs syncdelta="10">', 'has no unit');
  throwsUserError(() => parse(rfs('<replicated dir="/d"/>', ' acl="on"')), 'userconfig.xml line 3', 'rfs has attribute "acl"', 'supported: async, syncdelta, port');
  for (const bad of ['0', '65536', '-1', '48x', '', '1e3']) {
    throwsUserError(() => parse(rfs('<replicated dir="/d"/>', ` port="${bad}"`)), `userconfig.xml line 3: <rfs port="${bad}"> is not a TCP port`, 'from 1 to 65535', `default ${rfsDefaultPort(4800, 'demo')}`);
  }
  assert.is(parse(rfs('<replicated dir="/d"/>', ' port="6001"')).rfs!.port, 6001);
  throwsUserError(() => parse(svc('<rfs/>')), 'userconfig.xml line 3', '<rfs> has no <replicated>');
  throwsUserError(() => parse(rfs('<replicated dir="/d">\n<tocheck path="x"/>\n</replicated>')), 'userconfig.xml line 5', 'element <tocheck>', 'supported: <notreplicated>');
});

test('rfs: replicated dir is absolute, normalized, not / and has a valid mode', () => {
  throwsUserError(() => parse(rfs('<replicated/>')), 'userconfig.xml line 4', '<replicated> has no dir');
  throwsUserError(() => parse(rfs('<replicated dir="srv/data"/>')), 'userconfig.xml line 4', '"srv/data" is not absolute');
  throwsUserError(() => parse(rfs('<replicated dir="/srv/../etc"/>')), 'userconfig.xml line 4', '"/srv/../etc" contains ".."');
  throwsUserError(() => parse(rfs('<replicated dir="/"/>')), 'userconfig.xml line 4', 'root directory');
  throwsUserError(() => parse(rfs('<replicated dir="//"/>')), 'userconfig.xml line 4', 'root directory');
  throwsUserError(() => parse(rfs('<replicated dir="/srv//data"/>')), 'userconfig.xml line 4', '"/srv//data" is not a normalized path', 'Write "/srv/data"');
  throwsUserError(() => parse(rfs('<replicated dir="/srv/data/"/>')), 'userconfig.xml line 4', 'Write "/srv/data"');
  throwsUserError(() => parse(rfs('<replicated dir="/srv/./data"/>')), 'userconfig.xml line 4', 'Write "/srv/data"');
  throwsUserError(() => parse(rfs('<replicated dir="/d" mode="rw"/>')), 'userconfig.xml line 4', 'mode="rw"', 'read_write', 'read_only');
});

test('rfs: replicated dirs must not be nested or repeated', () => {
  throwsUserError(() => parse(rfs('<replicated dir="/srv"/>\n<replicated dir="/srv/data"/>')), 'userconfig.xml line 5', '"/srv/data" overlaps "/srv" (line 4)');
  throwsUserError(() => parse(rfs('<replicated dir="/srv/data"/>\n<replicated dir="/srv"/>')), 'userconfig.xml line 5', '"/srv" overlaps "/srv/data" (line 4)');
  throwsUserError(() => parse(rfs('<replicated dir="/srv"/>\n<replicated dir="/srv"/>')), 'userconfig.xml line 5', 'overlaps');
  assert.is(parse(rfs('<replicated dir="/srv/a"/>\n<replicated dir="/srv/ab"/>')).rfs!.replicated.length, 2);
});

/** A <notreplicated …> on line 5. */
function notrep(attrs: string): string {
  return rfs(`<replicated dir="/d">\n<notreplicated ${attrs}/>\n</replicated>`);
}

test('rfs: notreplicated needs exactly one valid path or regexpath', () => {
  assert.equal(parse(notrep('path="a/b.txt"')).rfs!.replicated[0].notreplicated, [{ path: 'a/b.txt' }]);
  throwsUserError(() => parse(notrep('')), 'userconfig.xml line 5', 'exactly one of path', 'regexpath');
  throwsUserError(() => parse(notrep('path="a" regexpath="b"')), 'userconfig.xml line 5', 'exactly one of path');
  throwsUserError(() => parse(notrep('path="/abs"')), 'userconfig.xml line 5', 'path "/abs" must be relative');
  throwsUserError(() => parse(notrep('path=""')), 'userconfig.xml line 5', 'path "" must be relative');
  throwsUserError(() => parse(notrep('path="../x"')), 'userconfig.xml line 5', 'path "../x" contains ".."');
  throwsUserError(() => parse(notrep('path="."')), 'userconfig.xml line 5', 'whole replicated dir');
  throwsUserError(() => parse(notrep('path="a//b"')), 'userconfig.xml line 5', '"a//b" is not a normalized path', 'Write "a/b"');
  throwsUserError(() => parse(notrep('regexpath="(unclosed"')), 'userconfig.xml line 5', 'regexpath "(unclosed" is not a valid regular expression');
  throwsUserError(() => parse(notrep('regexpath="!["')), 'userconfig.xml line 5', 'regexpath "![" is not a valid');
  throwsUserError(() => parse(notrep('regexpath="!"')), 'userconfig.xml line 5', 'regexpath is empty');
  throwsUserError(() => parse(notrep('regexpath=""')), 'userconfig.xml line 5', 'regexpath is empty');
  throwsUserError(() => parse(notrep('path="x" extra="1"')), 'userconfig.xml line 5', 'notreplicated has attribute "extra"');
});

test('splitbrain: exec ping, IPv4 witnesses that are not nodes', () => {
  throwsUserError(() => parse(svc('<splitbrain exec="custom" arg="192.0.2.1"/>')), 'userconfig.xml line 3', 'exec="custom"', 'exec="ping"');
  throwsUserError(() => parse(svc('<splitbrain/>')), 'userconfig.xml line 3', 'no witness');
  throwsUserError(() => parse(svc('<splitbrain arg="  "/>')), 'userconfig.xml line 3', 'no witness');
  throwsUserError(() => parse(svc('<splitbrain arg="192.0.2.1 gw.example"/>')), 'userconfig.xml line 3', 'witness "gw.example" is not an IPv4');
  throwsUserError(() => parse(svc('<splitbrain arg="203.0.113.1"/>')), 'userconfig.xml line 3', 'witness 203.0.113.1 is node "node1" (lan "replication")');
  throwsUserError(() => parse(svc('<splitbrain arg="192.0.2.1 192.0.2.1"/>')), 'userconfig.xml line 3', '192.0.2.1 is listed twice');
  throwsUserError(() => parse(svc('<splitbrain ident="a b" arg="192.0.2.1"/>')), 'userconfig.xml line 3', 'ident "a b" is not valid');
  throwsUserError(() => parse(svc('<splitbrain arg="192.0.2.1" when="pre"/>')), 'userconfig.xml line 3', 'splitbrain has attribute "when"');
});

test('splitbrain: at most one, directly or inside <check>', () => {
  throwsUserError(() => parse(svc('<splitbrain arg="192.0.2.1"/>\n<check>\n<splitbrain arg="192.0.2.2"/>\n</check>')), 'userconfig.xml line 5', 'second <splitbrain>', 'line 3');
  throwsUserError(() => parse(svc('<check>\n<splitbrain arg="192.0.2.1"/>\n<splitbrain arg="192.0.2.2"/>\n</check>')), 'userconfig.xml line 5', 'second <splitbrain>');
  throwsUserError(() => parse(svc('<splitbrain arg="192.0.2.1"/>\n<splitbrain arg="192.0.2.2"/>')), 'userconfig.xml line 4', 'second <splitbrain>');
  assert.is(parse(svc('<check/>')).splitbrain, null);
});

test('check: an unknown checker type or attribute is an error naming its line', () => {
  throwsUserError(() => parse(svc('<check>\n<http ident="web"/>\n</check>')), 'userconfig.xml line 4', 'element <http>', '<tcp>, <ping>, <intf>, <ip>, <custom>, <module>, <splitbrain>');
  throwsUserError(() => parse(svc('<check period="1s"/>')), 'userconfig.xml line 3', 'check has attribute "period"');
});

test('user: timeouts and vars', () => {
  throwsUserError(() => parse(svc('<user nicestoptimeout="300"/>')), 'userconfig.xml line 3: <user nicestoptimeout="300">', 'has no unit');
  throwsUserError(() => parse(svc('<user forcestoptimeout="-1s"/>')), 'userconfig.xml line 3: <user forcestoptimeout="-1s">', 'negative');
  throwsUserError(() => parse(svc('<user logging="userlog"/>')), 'userconfig.xml line 3', 'user has attribute "logging"', 'supported: nicestoptimeout, forcestoptimeout');
  throwsUserError(() => parse(svc('<user>\n<var value="x"/>\n</user>')), 'userconfig.xml line 4', '<var> has no name');
  throwsUserError(() => parse(svc('<user>\n<var name="1X" value="x"/>\n</user>')), 'userconfig.xml line 4', 'var name "1X" is not a valid environment variable name');
  throwsUserError(() => parse(svc('<user>\n<var name="X"/>\n</user>')), 'userconfig.xml line 4', 'var "X" has no value');
  throwsUserError(() => parse(svc('<user>\n<var name="X" value="1"/>\n<var name="X" value="2"/>\n</user>')), 'userconfig.xml line 5', 'var "X" is defined twice', 'line 4');
  throwsUserError(() => parse(svc('<user>\n<var name="X" value="1" export="yes"/>\n</user>')), 'userconfig.xml line 4', 'var has attribute "export"');
  throwsUserError(() => parse(svc('<user>\n<macro/>\n</user>')), 'userconfig.xml line 4', 'element <macro>', 'supported: <var>');
});

test.run();

test('rfs port: the default is derived from <lans port> and the module name, the same on every node', () => {
  const d = rfsDefaultPort(4800, 'demo');
  assert.ok(d > 4800 && d <= 5800, `${d} within <lans port> + 1 … + 1000`);
  assert.is(rfsDefaultPort(4800, 'demo'), d, 'deterministic');
  assert.is.not(rfsDefaultPort(4800, 'appender'), rfsDefaultPort(4800, 'postgres'), 'two example modules differ');
  const high = rfsDefaultPort(65000, 'demo');
  assert.ok(high >= 64000 && high < 65000, `below <lans port> when above would pass 65535 (${high})`);
});

test('rfs port: two loaded modules on the same port are a UserError naming both and what to do', () => {
  const a = parse(rfs('<replicated dir="/a"/>', ' port="6001"'));
  const b = { ...parseUserconfig(rfs('<replicated dir="/b"/>', ' port="6001"'), 'other', CLUSTER) };
  const c = parseUserconfig(rfs('<replicated dir="/c"/>', ' port="6002"'), 'third', CLUSTER);
  const noRfs = parseUserconfig(svc(''), 'plain', CLUSTER);
  const e = moduleConflict(b, [a, c, noRfs]);
  assert.instance(e, UserError);
  assert.match(e!.message, /module other: its replication port 6001 is also module demo's/);
  assert.match(e!.message, /Set <rfs port="…"> in the userconfig.xml of one of them to a free port \(the same on both nodes\), then run `tandem config -m other`\./);
  assert.is(moduleConflict(c, [a, b, noRfs]), null);
  assert.is(moduleConflict(a, [a]), null, 'a module does not conflict with itself (reload)');
  assert.is(moduleConflict(noRfs, [a, b]), null);
});
