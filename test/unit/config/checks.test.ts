import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseClusterXml } from '../../../src/config/cluster.js';
import { parseUserconfig } from '../../../src/config/userconfig.js';
import { throwsUserError } from './assert-user-error.js';

const CLUSTER = parseClusterXml(`<cluster><lans>
  <lan name="default"><node name="node1" addr="198.51.100.1"/><node name="node2" addr="198.51.100.2"/></lan>
</lans></cluster>`);

// a module directory with one executable checker and one that is not executable
const moduleDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tdchk-'));
fs.mkdirSync(path.join(moduleDir, 'bin'));
fs.writeFileSync(path.join(moduleDir, 'bin', 'dbcheck'), '#!/bin/sh\n', { mode: 0o755 });
fs.writeFileSync(path.join(moduleDir, 'bin', 'notexec'), '#!/bin/sh\n', { mode: 0o644 });
process.on('exit', () => fs.rmSync(moduleDir, { recursive: true, force: true }));

/** userconfig.xml with `inner` from line 3 on, inside <service ${attrs}> (line 2); no VIP, so no implicit checkers. */
const svc = (inner: string, attrs = 'mode="mirror"') => `<safe>\n<service ${attrs}>\n${inner}\n</service>\n</safe>`;
const parse = (text: string) => parseUserconfig(text, 'demo', CLUSTER, 'userconfig.xml', moduleDir);

test('errd: every attribute, and the defaults', () => {
  const c = parse(svc(`<errd polltimer="250ms">
<proc name="web" nameregex="^nginx$" argregex="-c /etc/web" atleast="2" atmax="8" action="restart" class="both"/>
<proc name="db"/>
</errd>`));
  assert.equal(c.errd, {
    polltimerMs: 250,
    procs: [
      { name: 'web', nameregex: '^nginx$', argregex: '-c /etc/web', atleast: 2, atmax: 8, action: 'restart', class: 'both', line: 4 },
      { name: 'db', nameregex: null, argregex: null, atleast: 1, atmax: -1, action: 'stopstart', class: 'prim', line: 5 },
    ],
  });
  assert.is(parse(svc('<errd><proc name="x"/></errd>')).errd!.polltimerMs, 500);
});

test('errd: bad input names its line and says what to write', () => {
  throwsUserError(() => parse(svc('<errd>\n<proc atleast="1"/>\n</errd>')), 'userconfig.xml line 4', '<proc> has neither name nor nameregex', 'Add name=');
  throwsUserError(() => parse(svc('<errd>\n<proc nameregex="^a"/>\n</errd>')), 'line 4', 'has no name');
  throwsUserError(() => parse(svc('<errd>\n<proc name="a" nameregex="("/>\n</errd>')), 'line 4', 'nameregex="("', 'not a valid regular expression');
  throwsUserError(() => parse(svc('<errd>\n<proc name="a" atleast="two"/>\n</errd>')), 'line 4', 'atleast="two"', 'whole number');
  throwsUserError(() => parse(svc('<errd>\n<proc name="a" atleast="3" atmax="2"/>\n</errd>')), 'line 4', 'atmax="2"', 'below atleast');
  throwsUserError(() => parse(svc('<errd>\n<proc name="a" action="swap"/>\n</errd>')), 'line 4', 'action="swap"', 'restart, stopstart, stop, noaction');
  throwsUserError(() => parse(svc('<errd>\n<proc name="a" class="sec"/>\n</errd>')), 'line 4', 'class="sec"', 'pre, prim, both, second');
  throwsUserError(() => parse(svc('<errd>\n<proc name="a"/>\n<proc name="a"/>\n</errd>')), 'line 5', 'listed twice', 'line 4');
  throwsUserError(() => parse(svc('<errd polltimer="10ms"><proc name="a"/></errd>')), 'line 3', 'shorter than 50ms');
  throwsUserError(() => parse(svc('<errd/>')), 'line 3', '<errd> has no <proc>');
  throwsUserError(() => parse(svc('<errd>\n<proc name="a" service="no"/>\n</errd>')), 'line 4', 'proc has attribute "service"');
});

test('checkers: tcp, ping, intf, ip, custom and module with their defaults', () => {
  const c = parseUserconfig(`<safe>
<service mode="mirror">
<vip><interface_list><interface check="off"><real_interface><virtual_addr addr="198.51.100.10" check="off"/></real_interface></interface></interface_list></vip>
<check>
<tcp ident="http" when="both" action="stopstart"><to addr="198.51.100.10" port="8080" interval="2s" timeout="1s" send="GET / HTTP/1.0\\r\\n\\r\\n"/></tcp>
<ping ident="router"><to addr="198.51.100.254"/><to addr="192.0.2.254"/></ping>
<intf ident="prod"><to local_addr="198.51.100.1"/></intf>
<ip><to addr="198.51.100.10"/></ip>
<custom ident="db" exec="dbcheck" arg="-q 5" action="wait"/>
<module name="backend"><to addr="198.51.100.2"/></module>
</check>
</service>
</safe>`, 'demo', CLUSTER, 'userconfig.xml', moduleDir);
  assert.equal(c.checkers, [
    { type: 'tcp', ident: 'http', when: 'both', action: 'stopstart', line: 5, addr: '198.51.100.10', port: 8080, intervalMs: 2000, timeoutMs: 1000, send: 'GET / HTTP/1.0\r\n\r\n' },
    { type: 'ping', ident: 'router', when: 'pre', action: 'wait', line: 6, addrs: ['198.51.100.254', '192.0.2.254'], intervalMs: 10_000, timeoutMs: 5000 },
    { type: 'intf', ident: 'prod', when: 'pre', action: 'wait', line: 7, localAddr: '198.51.100.1', vip: null, intervalMs: 1000 },
    { type: 'ip', ident: '198.51.100.10', when: 'prim', action: 'stopstart', line: 8, addr: '198.51.100.10', intervalMs: 1000 },
    { type: 'custom', ident: 'db', when: 'prim', action: 'wait', line: 9, exec: path.join(moduleDir, 'bin', 'dbcheck'), args: ['-q', '5'] },
    { type: 'module', ident: 'backend', when: 'pre', action: 'wait', line: 10, module: 'backend', node: 'node2', intervalMs: 1000 },
  ]);
});

test('checkers: <interface check> and <virtual_addr check> (both on by default) create intf and ip checkers', () => {
  const c = parse(svc('<vip><interface_list><interface><real_interface><virtual_addr addr="198.51.100.10"/></real_interface></interface></interface_list></vip>'));
  assert.equal(c.checkers.map((k) => `${k.type}:${k.type === 'intf' ? k.vip : k.ident}:${k.when}:${k.action}`), ['intf:198.51.100.10:pre:wait', 'ip:198.51.100.10:prim:stopstart']);
  const off = parse(svc('<vip><interface_list><interface check="off"><real_interface><virtual_addr addr="198.51.100.10" check="off"/></real_interface></interface></interface_list></vip>'));
  assert.equal(off.checkers, []);
});

test('checkers: bad input names its line and says what to do', () => {
  const check = (inner: string) => parse(svc(`<check>\n${inner}\n</check>`));
  throwsUserError(() => check('<tcp><to addr="198.51.100.10" port="80"/></tcp>'), 'line 4', '<tcp> has no ident');
  throwsUserError(() => check('<tcp ident="a b"><to addr="198.51.100.10" port="80"/></tcp>'), 'line 4', 'ident="a b"', 'not valid');
  throwsUserError(() => check('<tcp ident="w"/>'), 'line 4', '<tcp> has no <to>', 'addr=');
  throwsUserError(() => check('<tcp ident="w"><to addr="example.com" port="80"/></tcp>'), 'line 4', 'not an IPv4 address');
  throwsUserError(() => check('<tcp ident="w"><to addr="198.51.100.10" port="70000"/></tcp>'), 'line 4', 'port="70000"', '1 to 65535');
  throwsUserError(() => check('<tcp ident="w"><to addr="198.51.100.10"/></tcp>'), 'line 4', 'has no port');
  throwsUserError(() => check('<tcp ident="w"><to addr="198.51.100.10" port="80" interval="1s" timeout="2s"/></tcp>'), 'line 4', 'at most the interval');
  throwsUserError(() => check('<tcp ident="w" when="always"><to addr="198.51.100.10" port="80"/></tcp>'), 'line 4', 'when="always"', 'pre, prim, both, second');
  throwsUserError(() => check('<tcp ident="w" action="reboot"><to addr="198.51.100.10" port="80"/></tcp>'), 'line 4', 'action="reboot"');
  throwsUserError(() => check('<tcp ident="w"><to addr="198.51.100.10" port="80"/></tcp>\n<tcp ident="w"><to addr="198.51.100.10" port="81"/></tcp>'), 'line 5', 'second tcp checker with ident "w"', 'line 4');
  throwsUserError(() => check('<ip><to addr="198.51.100.99"/></ip>'), 'line 4', 'not a virtual_addr of this module');
  throwsUserError(() => check('<custom ident="x"/>'), 'line 4', '<custom> has no exec');
  throwsUserError(() => check('<custom ident="x" exec="missing"/>'), 'line 4', 'does not exist', 'module bin/');
  throwsUserError(() => check('<custom ident="x" exec="notexec"/>'), 'line 4', 'is not executable', 'chmod +x');
  throwsUserError(() => check('<module><to addr="198.51.100.2"/></module>'), 'line 4', '<module> has no name');
  throwsUserError(() => check('<module name="b"><to addr="192.0.2.9"/></module>'), 'line 4', 'not the address of a node in cluster.xml');
  throwsUserError(() => check('<intf ident="e"/>'), 'line 4', '<intf> has no <to>', 'local_addr=');
});

test('service maxloop and loop_interval', () => {
  const c = parse(svc('', 'mode="mirror" maxloop="5" loop_interval="1h"'));
  assert.is(c.maxloop, 5);
  assert.is(c.loopIntervalMs, 3_600_000);
  throwsUserError(() => parse(svc('', 'mode="mirror" maxloop="-1"')), 'line 2', 'maxloop="-1"', 'whole number');
  throwsUserError(() => parse(svc('', 'mode="mirror" loop_interval="1 day"')), 'line 2', 'loop_interval="1 day"');
});

test('failover: attributes, and where the rules text starts (inside CDATA and as plain text)', () => {
  const c = parse(svc(`<failover extends="no" period="2s" handle_time="10s"><![CDATA[
  r1: if (tcp.http == down) then stopstart();
]]></failover>`));
  assert.equal(c.rules, { extends: false, periodMs: 2000, handleTimeMs: 10_000, text: '\n  r1: if (tcp.http == down) then stopstart();\n', line: 3, column: 63 });
  const plain = parse(svc('<failover>\nr: if (tcp.b == down &amp;&amp; tcp.c == up) then wait();\n</failover>'));
  assert.is(plain.rules!.text, '\nr: if (tcp.b == down && tcp.c == up) then wait();\n');
  assert.is(plain.rules!.line, 3);
  assert.is(plain.rules!.column, 11);
  assert.is(plain.rules!.handleTimeMs, 5000);
  assert.ok(plain.rules!.extends);
  throwsUserError(() => parse(svc('<failover extends="maybe"/>')), 'line 3', 'extends="maybe"', '"yes" or "no"');
  throwsUserError(() => parse(svc('<failover lua="on"/>')), 'line 3', 'failover has attribute "lua"');
  throwsUserError(() => parse(svc('<failover>\n<rule/>\n</failover>')), 'line 4', 'holds rules as text', 'CDATA');
});

test('failover: a rule that does not parse is an error naming its line and column in userconfig.xml', () => {
  throwsUserError(() => parse(svc('<check><tcp ident="web"><to addr="198.51.100.10" port="80"/></tcp></check>\n<failover><![CDATA[\nmine: if (tcp.web == down then stopstart();\n]]></failover>')),
    'userconfig.xml line 5, column 27', 'expected ")"');
  throwsUserError(() => parse(svc('<failover><![CDATA[\n  t_web: disabled;\n]]></failover>')), 'userconfig.xml line 4, column 3', 'names no default rule');
  // a valid user rule extends the defaults
  const c = parse(svc('<check><tcp ident="web"><to addr="198.51.100.10" port="80"/></tcp></check>\n<failover><![CDATA[\nt_web: if (tcp.web == down) then stopstart();\n]]></failover>'));
  assert.is(c.rules!.text.trim(), 't_web: if (tcp.web == down) then stopstart();');
});

test.run();
