import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { evaluate, holding } from '../../../src/engine/rules/evaluate.js';
import { parseRules } from '../../../src/engine/rules/parse.js';
import type { ResourceState, ResourceView, Rule } from '../../../src/engine/rules/types.js';

type States = Record<string, ResourceState>;
const view = (local: States, remote: States | null = {}): ResourceView =>
  ({ local: new Map(Object.entries(local)), remote: remote && new Map(Object.entries(remote)) });
const rules = (text: string): Rule[] => parseRules(text, { file: 'userconfig.xml', line: 1, column: 1 }).rules;

/** The `because` of a one-rule text over `v`, or null when it does not hold. */
function because(cond: string, v: ResourceView): string[] | null {
  const [d] = holding(rules(`r: if (${cond}) then wait();`), v);
  return d ? d.because : null;
}

// [condition, local, remote (null: peer not heard), expected because (null: does not hold)]
type Case = [string, States, States | null, string[] | null];

function run(cases: Case[]): void {
  for (const [cond, local, remote, want] of cases) {
    assert.equal(because(cond, view(local, remote)), want, `${cond} over ${JSON.stringify({ local, remote })}`);
  }
}

test('named resources: their state; missing reads unknown; remote reads unknown while the peer is not heard', () => {
  run([
    ['intf.eth0 == down', { 'intf.eth0': 'down' }, {}, ['intf.eth0=down']],
    ['intf.eth0 == down', { 'intf.eth0': 'up' }, {}, null],
    ['local.intf.eth0 == down', { 'intf.eth0': 'down' }, {}, ['intf.eth0=down']],
    ['intf.eth0 != up', { 'intf.eth0': 'init' }, {}, ['intf.eth0=init']],
    ['intf.eth0 != up', { 'intf.eth0': 'up' }, {}, null],
    ['intf.eth9 == unknown', { 'intf.eth0': 'down' }, {}, ['intf.eth9=unknown']],
    ['intf.eth9 == down', {}, {}, null],
    ['intf.eth9 != up', {}, {}, ['intf.eth9=unknown']],
    ['ip.198.51.100.10 == down', { 'ip.198.51.100.10': 'down' }, {}, ['ip.198.51.100.10=down']],
    ['remote.intf.eth0 == down', { 'intf.eth0': 'up' }, { 'intf.eth0': 'down' }, ['remote.intf.eth0=down']],
    ['intf.eth0 == down', { 'intf.eth0': 'up' }, { 'intf.eth0': 'down' }, null],
    ['remote.intf.eth0 == up', { 'intf.eth0': 'up' }, null, null],
    ['remote.intf.eth0 == unknown', { 'intf.eth0': 'up' }, null, ['remote.intf.eth0=unknown']],
    ['remote.intf.eth0 == unknown', {}, { 'intf.eth0': 'init' }, null],
  ]);
});

test('class.*: true if any resource of the class on that side satisfies it; with none it compares unknown', () => {
  const ips: States = { 'ip.a': 'up', 'ip.c': 'down', 'ip.b': 'down', 'ping.r': 'down' };
  run([
    ['ip.* == down', ips, {}, ['ip.b=down', 'ip.c=down']],
    ['ip.* == up', ips, {}, ['ip.a=up']],
    ['ip.* == init', ips, {}, null],
    ['ip.* != up', ips, {}, ['ip.b=down', 'ip.c=down']],
    // "!(ip.* == up)" is "no ip is up", not "some ip is not up"
    ['!(ip.* == up)', ips, {}, null],
    ['!(ip.* == up)', { 'ip.a': 'down', 'ip.b': 'init' }, {}, ['ip.a=down', 'ip.b=init']],
    ['ip.* == down', { 'ping.r': 'down', 'ipx.a': 'down' }, {}, null],
    ['ip.* == unknown', { 'ping.r': 'down' }, {}, ['ip.*=unknown']],
    ['ip.* != up', {}, {}, ['ip.*=unknown']],
    ['remote.ip.* == down', ips, { 'ip.z': 'down' }, ['remote.ip.z=down']],
    ['remote.ip.* == down', ips, null, null],
    ['remote.ip.* == unknown', ips, null, ['remote.ip.*=unknown']],
    ['ip.* == down', {}, { 'ip.z': 'down' }, null],
  ]);
});

test('class.?: one ident for the whole rule, taken from both sides; the first ident (in order) that works explains it', () => {
  run([
    // the interface that is down here and up on the peer
    ['intf.? == down && remote.intf.? == up', { 'intf.eth0': 'down', 'intf.eth1': 'down' }, { 'intf.eth0': 'down', 'intf.eth1': 'up' },
      ['intf.eth1=down', 'remote.intf.eth1=up']],
    // no single interface is down here and up there, although some is down here and another up there
    ['intf.? == down && remote.intf.? == up', { 'intf.eth0': 'down', 'intf.eth1': 'up' }, { 'intf.eth0': 'down', 'intf.eth1': 'up' }, null],
    ['intf.* == down && remote.intf.* == up', { 'intf.eth0': 'down', 'intf.eth1': 'up' }, { 'intf.eth0': 'down', 'intf.eth1': 'up' },
      ['intf.eth0=down', 'remote.intf.eth1=up']],
    // idents known only on the peer still bind; the local side reads them unknown
    ['intf.? == unknown && remote.intf.? == up', {}, { 'intf.eth0': 'up' }, ['intf.eth0=unknown', 'remote.intf.eth0=up']],
    // peer not heard: remote ? refs read unknown
    ['intf.? == down && remote.intf.? == unknown', { 'intf.eth0': 'down' }, null, ['intf.eth0=down', 'remote.intf.eth0=unknown']],
    ['intf.? == down && remote.intf.? == up', { 'intf.eth0': 'down' }, null, null],
    ['ip.? == down', { 'ip.b': 'down', 'ip.a': 'down' }, {}, ['ip.a=down']],
    ['ip.? == down', { 'ip.a': 'up', 'ip.b': 'down' }, {}, ['ip.b=down']],
    // one ident across classes
    ['tcp.? == down && ping.? == up', { 'tcp.gw': 'up', 'tcp.web': 'down', 'ping.gw': 'up', 'ping.web': 'up' }, {},
      ['tcp.web=down', 'ping.web=up']],
    ['tcp.? == down && ping.? == up', { 'tcp.web': 'down', 'ping.gw': 'up' }, {}, null],
    // no resource of the classes at all: every ? ref reads unknown
    ['intf.? == unknown', { 'ip.a': 'down' }, {}, ['intf.?=unknown']],
    ['intf.? == down', {}, null, null],
    // ? and * and named refs mix
    ['intf.? == down && ip.* == up && ping.gw == up', { 'intf.eth0': 'down', 'ip.a': 'up', 'ping.gw': 'up' }, {},
      ['intf.eth0=down', 'ip.a=up', 'ping.gw=up']],
  ]);
});

test('because: the sides that decide, in the order the condition reads them, without repeats', () => {
  const v: States = { 'ip.a': 'down', 'ip.b': 'down', 'ip.c': 'up' };
  run([
    ['ip.a == down || ip.b == down', v, {}, ['ip.a=down', 'ip.b=down']],
    ['ip.a == down || ip.c == down', v, {}, ['ip.a=down']],
    ['ip.c == down || ip.b == down', v, {}, ['ip.b=down']],
    ['ip.b == down && ip.a == down', v, {}, ['ip.b=down', 'ip.a=down']],
    ['ip.a == down && ip.a != up', v, {}, ['ip.a=down']],
    ['!(ip.a == up || ip.b == up)', v, {}, ['ip.a=down', 'ip.b=down']],
    ['!(ip.a == down && ip.c == down)', v, {}, ['ip.c=up']],
    ['!!(ip.c == up)', v, {}, ['ip.c=up']],
    ['remote.intf.eth0 == up && intf.eth0 == down', { 'intf.eth0': 'down' }, { 'intf.eth0': 'up' }, ['remote.intf.eth0=up', 'intf.eth0=down']],
  ]);
});

test('holding: every rule whose condition is true, in text order, with its holdMs', () => {
  const rs = rules('a: if (ip.a == up) then swap(); b: if (ip.a == down) then stop(); c: if (ip.* == up) then wait();');
  rs[2] = { ...rs[2]!, holdMs: 0 };
  assert.equal(holding(rs, view({ 'ip.a': 'up' })), [
    { label: 'a', action: 'swap', because: ['ip.a=up'], holdMs: null },
    { label: 'c', action: 'wait', because: ['ip.a=up'], holdMs: 0 },
  ]);
  assert.equal(holding(rs, view({ 'ip.a': 'init' })), []);
  assert.equal(holding([], view({ 'ip.a': 'up' })), []);
});

test('evaluate: stop > stopstart > wait > restart > swap, the earliest rule on a tie, null when none holds', () => {
  const all = ['swap', 'restart', 'wait', 'stopstart', 'stop'];
  // with the actions from `all[0..k]` holding, the decision is the last of them
  for (let k = 1; k <= all.length; k++) {
    const text = all.slice(0, k).map((a) => `r_${a}: if (ip.a == down) then ${a}();`).join('\n');
    assert.equal(evaluate(rules(text), view({ 'ip.a': 'down' })), { label: `r_${all[k - 1]}`, action: all[k - 1], because: ['ip.a=down'], holdMs: null });
  }
  const reversed = rules('x: if (ip.a == down) then stop(); y: if (ip.a == down) then swap();');
  assert.is(evaluate(reversed, view({ 'ip.a': 'down' }))!.label, 'x');
  const tie = rules('w1: if (ip.b == down) then wait(); w2: if (ip.a == down) then wait(); s: if (ip.a == down) then swap();');
  assert.equal(evaluate(tie, view({ 'ip.a': 'down', 'ip.b': 'down' })), { label: 'w1', action: 'wait', because: ['ip.b=down'], holdMs: null });
  assert.equal(evaluate(tie, view({ 'ip.a': 'down' })), { label: 'w2', action: 'wait', because: ['ip.a=down'], holdMs: null });
  assert.is(evaluate(tie, view({ 'ip.a': 'up' })), null);
  assert.is(evaluate([], view({})), null);
});

test.run();
