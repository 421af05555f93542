// The nftables text of the farm filter (src/platform/farm/ruleset.ts). The lab test (test/lab/farm-filter.test.ts)
// feeds the same text to the real nft; here the text itself is pinned down.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BugError, UserError } from '../../../src/errors.js';
import {
  checkOwned, farmTableName, installScript, moduleOfTable, multicastMacOf, ownedScript, parseTableComment, removeScript,
} from '../../../src/platform/farm/ruleset.js';
import type { FarmFilterRule, FarmFilterSpec } from '../../../src/platform/farm/types.js';

const spec = (rules: FarmFilterRule[], module = 'web'): FarmFilterSpec & { ifname: string } => ({ module, vip: '198.51.100.10', ifname: 'eth0', rules });
/** the lines of the `vip` chain */
const vipChain = (script: string) => {
  const lines = script.split('\n');
  const start = lines.indexOf('\tchain vip {');
  return lines.slice(start + 1, lines.indexOf('\t}', start)).map((l) => l.trim());
};

test('one on_addr rule: the whole script', () => {
  assert.fixture(installScript(spec([{ port: 80, proto: 'tcp', filter: 'on_addr' }]), [7, 3, 3, 0]), `add table netdev tandem_farm_web
delete table netdev tandem_farm_web
add table ip tandem_farm_web
delete table ip tandem_farm_web
table netdev tandem_farm_web {
\tcomment "tandem farm web: vip 198.51.100.10 dev eth0 mac 01:00:5e:33:64:0a"
\tchain ingress {
\t\ttype filter hook ingress device "eth0" priority -500; policy accept;
\t\tether daddr 01:00:5e:33:64:0a ip daddr 198.51.100.10 meta pkttype set host
\t}
\tchain egress {
\t\ttype filter hook egress device "eth0" priority 0; policy accept;
\t\tarp saddr ip 198.51.100.10 arp saddr ether set 01:00:5e:33:64:0a
\t}
}
table ip tandem_farm_web {
\tset owned {
\t\ttypeof meta cpu
\t\telements = { 0, 3, 7 }
\t}
\tchain prerouting {
\t\ttype filter hook prerouting priority -150; policy accept;
\t\tip daddr 198.51.100.10 jump vip
\t}
\tchain vip {
\t\tmeta l4proto tcp ct state established,related accept
\t\ttcp dport 80 tcp flags syn / fin,syn,rst,ack jhash ip saddr mod 256 seed 0x74616e64 @owned accept
\t\ttcp dport 80 counter drop
\t\tmeta l4proto udp ct state established,related accept
\t\tmeta l4proto { tcp, udp } counter drop
\t}
}
`);
});

test('on_port hashes address and source port; UDP has no SYN test and no conntrack rule', () => {
  assert.equal(vipChain(installScript(spec([{ port: 53, proto: 'udp', filter: 'on_port' }]), [1])), [
    'meta l4proto tcp ct state established,related accept',
    'udp dport 53 jhash ip saddr . udp sport mod 256 seed 0x74616e64 @owned accept',
    'udp dport 53 counter drop',
    'meta l4proto udp ct state established,related accept',
    'meta l4proto { tcp, udp } counter drop',
  ]);
});

test('port null covers the whole proto: no catch-all drop for it', () => {
  assert.equal(vipChain(installScript(spec([{ port: null, proto: 'tcp', filter: 'on_port' }]), [])), [
    'meta l4proto tcp ct state established,related accept',
    'meta l4proto tcp tcp flags syn / fin,syn,rst,ack jhash ip saddr . tcp sport mod 256 seed 0x74616e64 @owned accept',
    'meta l4proto tcp counter drop',
    'meta l4proto udp ct state established,related accept',
    'meta l4proto udp counter drop',
  ]);
  const both = installScript(spec([{ port: null, proto: 'tcp', filter: 'on_addr' }, { port: null, proto: 'udp', filter: 'on_addr' }]), []);
  assert.equal(vipChain(both).slice(-2), ['meta l4proto udp jhash ip saddr mod 256 seed 0x74616e64 @owned accept', 'meta l4proto udp counter drop']);
});

test('two rules, the port-null one first: a rule with a port still goes before it', () => {
  const chain = vipChain(installScript(spec([{ port: null, proto: 'tcp', filter: 'on_port' }, { port: 8080, proto: 'tcp', filter: 'on_addr' }]), []));
  assert.equal(chain.slice(1, 5), [
    'tcp dport 8080 tcp flags syn / fin,syn,rst,ack jhash ip saddr mod 256 seed 0x74616e64 @owned accept',
    'tcp dport 8080 counter drop',
    'meta l4proto tcp tcp flags syn / fin,syn,rst,ack jhash ip saddr . tcp sport mod 256 seed 0x74616e64 @owned accept',
    'meta l4proto tcp counter drop',
  ]);
});

test('an empty owned set has no elements line (nft refuses `elements = { }`)', () => {
  const s = installScript(spec([{ port: 80, proto: 'tcp', filter: 'on_addr' }]), []);
  assert.ok(s.includes('\tset owned {\n\t\ttypeof meta cpu\n\t}'));
});

test('setOwned and remove scripts: one transaction each', () => {
  assert.is(ownedScript('web', [9, 2, 2]), 'flush set ip tandem_farm_web owned\nadd element ip tandem_farm_web owned { 2, 9 }\n');
  assert.is(ownedScript('web', []), 'flush set ip tandem_farm_web owned\n');
  assert.is(removeScript('web'), 'add table netdev tandem_farm_web\ndelete table netdev tandem_farm_web\nadd table ip tandem_farm_web\ndelete table ip tandem_farm_web\n');
});

test('table names: the module name as is (hyphens are valid unquoted in nft), and back', () => {
  assert.is(farmTableName('web-1_a'), 'tandem_farm_web-1_a');
  assert.is(moduleOfTable('tandem_farm_web-1_a'), 'web-1_a');
  assert.is(moduleOfTable('filter'), null);
  assert.is(moduleOfTable('tandem_farm_'), null);
  for (const bad of ['1web', 'web 1', 'web"', 'a'.repeat(32), '']) assert.throws(() => farmTableName(bad), (e: unknown) => e instanceof UserError);
});

test('shared MAC: 01:00:5e and the low 23 bits of the VIP', () => {
  assert.is(multicastMacOf('198.51.100.10'), '01:00:5e:33:64:0a');
  assert.is(multicastMacOf('192.0.2.100'), '01:00:5e:00:02:64');
  assert.is(multicastMacOf('203.255.255.255'), '01:00:5e:7f:ff:ff', 'bit 23 dropped');
  assert.throws(() => multicastMacOf('198.51.100.300'), (e: unknown) => e instanceof UserError);
});

test('spec checks: UserError naming what to fix', () => {
  const bad: [Partial<FarmFilterSpec>, RegExp][] = [
    [{ rules: [] }, /has no <rule>/],
    [{ rules: [{ port: 80, proto: 'tcp', filter: 'on_addr' }, { port: 80, proto: 'tcp', filter: 'on_port' }] }, /two rules for tcp port 80/],
    [{ rules: [{ port: null, proto: 'udp', filter: 'on_addr' }, { port: null, proto: 'udp', filter: 'on_addr' }] }, /two rules for udp port \*/],
    [{ rules: [{ port: 0, proto: 'tcp', filter: 'on_addr' }] }, /port 0 is not 1-65535/],
    [{ rules: [{ port: 80, proto: 'sctp' as 'tcp', filter: 'on_addr' }] }, /proto "sctp"/],
    [{ vip: '198.51.100' }, /not an IPv4 address/],
    [{ ifname: 'eth0"; drop' }, /interface name/],
  ];
  for (const [patch, re] of bad) {
    try {
      installScript({ ...spec([{ port: 80, proto: 'tcp', filter: 'on_addr' }]), ...patch }, []);
      assert.unreachable(`accepted ${JSON.stringify(patch)}`);
    } catch (e) {
      assert.instance(e, UserError);
      assert.match((e as Error).message, re);
    }
  }
});

test('owned buckets: BugError outside [0, 256) or not whole; duplicates dropped, sorted', () => {
  assert.equal(checkOwned([5, 0, 255, 5]), [0, 5, 255]);
  for (const b of [-1, 256, 1.5, NaN]) assert.throws(() => checkOwned([b]), (e: unknown) => e instanceof BugError);
});

test('the netdev table comment gives back the interface and MAC (remove after a restart)', () => {
  const listing = 'table netdev tandem_farm_web {\n\tcomment "tandem farm web: vip 198.51.100.10 dev eth0.12 mac 01:00:5e:33:64:0a"\n';
  assert.equal(parseTableComment(listing), { ifname: 'eth0.12', mac: '01:00:5e:33:64:0a' });
  assert.is(parseTableComment('table netdev x {\n}'), undefined);
});

test.run();
