import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { CheckerConfig, ErrdConfig, FailureAction, ProcSpec } from '../../../src/config/types.js';
import { defaultRules, mergeRules, moduleRules } from '../../../src/engine/rules/defaults.js';
import { formatRule } from '../../../src/engine/rules/format.js';
import { parseRules } from '../../../src/engine/rules/parse.js';
import type { Rule } from '../../../src/engine/rules/types.js';
import { BugError } from '../../../src/errors.js';
import { userErrorOf } from './user-error.js';

const F = 'userconfig.xml';
const base = { when: 'prim' as const, line: 3 };
const tcp = (ident: string, action: FailureAction): CheckerConfig =>
  ({ ...base, type: 'tcp', ident, action, addr: '198.51.100.5', port: 80, intervalMs: 10_000, timeoutMs: 5_000, send: null });
const ping = (ident: string, action: FailureAction): CheckerConfig =>
  ({ ...base, type: 'ping', ident, action, addrs: ['198.51.100.254'], intervalMs: 10_000, timeoutMs: 5_000 });
const intf = (ident: string, action: FailureAction): CheckerConfig =>
  ({ ...base, type: 'intf', ident, action, localAddr: null, vip: '198.51.100.10', intervalMs: 10_000 });
const ip = (ident: string, action: FailureAction): CheckerConfig =>
  ({ ...base, type: 'ip', ident, action, addr: ident, intervalMs: 10_000 });
const custom = (ident: string, action: FailureAction): CheckerConfig =>
  ({ ...base, type: 'custom', ident, action, exec: '/bin/check', args: [] });
const mod = (ident: string, action: FailureAction): CheckerConfig =>
  ({ ...base, type: 'module', ident, action, module: 'backend', node: 'node2', intervalMs: 10_000 });
const proc = (name: string, action: ProcSpec['action']): ProcSpec =>
  ({ name, nameregex: null, argregex: null, atleast: 1, atmax: -1, action, class: 'prim', line: 9 });
const errd = (...procs: ProcSpec[]): ErrdConfig => ({ polltimerMs: 30_000, procs });

const texts = (rs: Rule[]): string[] => rs.map(formatRule);
const user = (text: string) => parseRules(text, { file: F, line: 20, column: 5 });

test('no checkers and no errd: no default rules', () => {
  assert.equal(defaultRules({ checkers: [], errd: null }), []);
  assert.equal(defaultRules({ checkers: [], errd: errd() }), []);
});

test('SafeKit\'s defaults: shared rules first, then per-checker rules in checker order, then errd procs', () => {
  const rules = defaultRules({
    checkers: [
      tcp('http', 'restart'), intf('eth0', 'wait'), ping('router', 'wait'), ip('198.51.100.10', 'stopstart'),
      custom('db', 'stopstart'), custom('quiet', 'noaction'), intf('eth1', 'wait'), mod('backend', 'wait'),
      ip('198.51.100.11', 'stopstart'), tcp('api', 'swap'), ping('gw', 'noaction'),
    ],
    errd: errd(proc('web', 'restart'), proc('worker', 'noaction'), proc('db', 'stop')),
  });
  assert.equal(texts(rules), [
    'interface_failure: if (intf.* == down) then wait();',
    'ip_failure: if (ip.* == down) then stopstart();',
    'module_failure: if (module.* == down) then wait();',
    't_http: if (tcp.http == down) then restart();',
    'p_router: if (ping.router == down) then wait();',
    'c_db: if (custom.db == down) then stopstart();',
    't_api: if (tcp.api == down) then swap();',
    'proc_web: if (proc.web == down) then restart();',
    'proc_db: if (proc.db == down) then stop();',
  ]);
  assert.equal(rules.map((r) => [r.source, r.holdMs, r.line, r.column]), [
    ...Array.from({ length: 7 }, () => ['default', null, 0, 0]),
    ['default', 0, 0, 0],
    ['default', 0, 0, 0],
  ]);
  assert.equal(rules[3], {
    label: 't_http', action: 'restart', source: 'default', holdMs: null, line: 0, column: 0,
    expr: { kind: 'cmp', ref: { side: 'local', cls: 'tcp', ident: 'http' }, op: '==', state: 'down' },
  });
});

test('a noaction checker never triggers its shared rule; all noaction: no shared rule', () => {
  assert.equal(texts(defaultRules({ checkers: [intf('eth0', 'wait'), intf('eth1', 'noaction'), intf('eth2', 'wait')], errd: null })),
    ['interface_failure: if (intf.eth0 == down || intf.eth2 == down) then wait();']);
  assert.equal(texts(defaultRules({ checkers: [ip('198.51.100.10', 'noaction'), ip('198.51.100.11', 'stopstart')], errd: null })),
    ['ip_failure: if (ip.198.51.100.11 == down) then stopstart();']);
  assert.equal(defaultRules({ checkers: [intf('eth0', 'noaction'), mod('b', 'noaction'), custom('c', 'noaction')], errd: null }), []);
});

test('the shared rules keep SafeKit\'s action whatever the checker says (only noaction counts)', () => {
  assert.equal(texts(defaultRules({ checkers: [intf('eth0', 'stopstart'), ip('198.51.100.10', 'restart')], errd: null })), [
    'interface_failure: if (intf.* == down) then wait();',
    'ip_failure: if (ip.* == down) then stopstart();',
  ]);
});

test('two checkers with one label is a BugError (the config guarantees unique idents)', () => {
  try {
    defaultRules({ checkers: [tcp('http', 'restart'), tcp('http', 'stop')], errd: null });
    assert.unreachable('no error');
  } catch (e) {
    assert.instance(e, BugError);
    assert.match((e as Error).message, 'default rule label "t_http" twice');
  }
});

const DEFAULTS = defaultRules({ checkers: [intf('eth0', 'wait'), ip('198.51.100.10', 'stopstart'), tcp('http', 'restart')], errd: null });

test('merge with extends: defaults kept, disabled ones removed, a same label replaced, the user\'s rules after', () => {
  const u = user('ip_failure: if (ip.* == down && remote.ip.* == up) then swap();\ninterface_failure: disabled;\nmine: if (ping.gw == down) then stop();');
  const merged = mergeRules(DEFAULTS, u, { extends: true });
  assert.equal(texts(merged), [
    't_http: if (tcp.http == down) then restart();',
    'ip_failure: if (ip.* == down && remote.ip.* == up) then swap();',
    'mine: if (ping.gw == down) then stop();',
  ]);
  assert.equal(merged.map((r) => [r.label, r.source, r.line, r.column]), [['t_http', 'default', 0, 0], ['ip_failure', 'user', 20, 5], ['mine', 'user', 22, 1]]);
  assert.equal(mergeRules(DEFAULTS, user(''), { extends: true }), DEFAULTS);
});

test('merge without extends: only the user\'s rules, even with a default\'s label', () => {
  const u = user('ip_failure: if (ip.* == down) then swap(); mine: if (ping.gw == down) then stop();');
  assert.equal(mergeRules(DEFAULTS, u, { extends: false }), u.rules);
  assert.equal(mergeRules(DEFAULTS, user('# none'), { extends: false }), []);
});

test('a disable that removes nothing is a UserError at its position', () => {
  assert.is(userErrorOf(() => mergeRules(DEFAULTS, user('ip_failure: disabled;'), { extends: false })),
    'userconfig.xml line 20, column 5: "ip_failure: disabled;" has no effect: with extends="no" only the rules written in <failover> run. Remove it, or set extends="yes".');
  assert.is(userErrorOf(() => mergeRules(DEFAULTS, user('ip_failure: disabled;\n  ip_failur: disabled;'), { extends: true })),
    'userconfig.xml line 21, column 3: "ip_failur: disabled;" names no default rule. The default rules are interface_failure, ip_failure, t_http. Correct the label or remove the line.');
  assert.is(userErrorOf(() => mergeRules([], user('t_x: disabled;'), { extends: true })),
    'userconfig.xml line 20, column 5: "t_x: disabled;" names no default rule. This module has no default rules. Correct the label or remove the line.');
});

test('moduleRules: no <failover> gives the defaults; a <failover> text is parsed at its position and merged', () => {
  const checkers = [intf('eth0', 'wait'), tcp('http', 'restart')];
  assert.equal(moduleRules({ checkers, errd: errd(proc('web', 'stopstart')), rules: null }, F), defaultRules({ checkers, errd: errd(proc('web', 'stopstart')) }));
  const failover = (text: string, ext: boolean) => ({ extends: ext, periodMs: 5_000, handleTimeMs: 15_000, text, line: 40, column: 12 });
  assert.equal(texts(moduleRules({ checkers, errd: null, rules: failover('t_http: disabled; x: if (ip.* == down) then stop();', true) }, F)), [
    'interface_failure: if (intf.* == down) then wait();',
    'x: if (ip.* == down) then stop();',
  ]);
  assert.equal(texts(moduleRules({ checkers, errd: null, rules: failover('x: if (ip.* == down) then stop();', false) }, F)), ['x: if (ip.* == down) then stop();']);
  assert.is(userErrorOf(() => moduleRules({ checkers, errd: null, rules: failover('x: if (ip.* = down) then stop();', true) }, F)),
    'userconfig.xml line 40, column 24: expected "==" or "!=" after "ip.*", found "=". Write "==" to compare.');
});

test.run();
