import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { formatRule } from '../../../src/engine/rules/format.js';
import { parseRules } from '../../../src/engine/rules/parse.js';
import type { Expr, ResourceState, Rule } from '../../../src/engine/rules/types.js';
import { userErrorOf } from './user-error.js';

const F = 'userconfig.xml';
const AT1 = { file: F, line: 1, column: 1 };
const parse = (text: string, at = AT1) => parseRules(text, at);

/** `c('local', 'intf', 'eth0', '==', 'down')`: a comparison built by hand (not by the parser under test). */
function c(side: 'local' | 'remote', cls: string, ident: string, op: '==' | '!=', state: ResourceState): Expr {
  return { kind: 'cmp', ref: { side, cls, ident }, op, state };
}
const E0 = c('local', 'intf', 'eth0', '==', 'down');
const user = (label: string, expr: Expr, action: Rule['action'], line: number, column: number): Rule =>
  ({ label, expr, action, source: 'user', holdMs: null, line, column });

test('empty text, blanks and comments only: no rules', () => {
  for (const text of ['', '   ', '\n\n\t\n', '# nothing here\n  # nor here', '#']) {
    assert.equal(parse(text), { file: F, rules: [], disabled: [] }, JSON.stringify(text));
  }
});

test('one rule: its tree, its action, source user, holdMs null, the position of its label', () => {
  assert.equal(parse('r1: if (intf.eth0 == down) then wait();'), { file: F, rules: [user('r1', E0, 'wait', 1, 1)], disabled: [] });
});

test('positions: the first line starts at `at`, the next lines at column 1', () => {
  const text = '  a: if (intf.eth0 == down) then wait(); b: disabled;\n\tc: if (ip.x == up) then swap();\n\n   d: disabled;';
  const p = parse(text, { file: F, line: 42, column: 17 });
  assert.equal(p.rules.map((r) => [r.label, r.line, r.column]), [['a', 42, 19], ['c', 43, 2]]);
  assert.equal(p.disabled, [{ label: 'b', line: 42, column: 58 }, { label: 'd', line: 45, column: 4 }]);
});

test('every action and every state; == and !=', () => {
  const actions = ['stop', 'stopstart', 'wait', 'restart', 'swap'] as const;
  const states = ['up', 'down', 'init', 'unknown'] as const;
  const text = actions.map((a, i) => `r${i}: if (ping.x ${i % 2 ? '!=' : '=='} ${states[i % 4]}) then ${a}();`).join('\n');
  assert.equal(parse(text).rules.map((r) => [r.action, r.expr]), [
    ['stop', c('local', 'ping', 'x', '==', 'up')],
    ['stopstart', c('local', 'ping', 'x', '!=', 'down')],
    ['wait', c('local', 'ping', 'x', '==', 'init')],
    ['restart', c('local', 'ping', 'x', '!=', 'unknown')],
    ['swap', c('local', 'ping', 'x', '==', 'up')],
  ]);
});

test('references: local./remote. prefix, dotted and dashed idents, * and ?', () => {
  const table: [string, Expr][] = [
    ['intf.eth0', c('local', 'intf', 'eth0', '==', 'down')],
    ['local.intf.eth0', c('local', 'intf', 'eth0', '==', 'down')],
    ['remote.intf.eth0', c('remote', 'intf', 'eth0', '==', 'down')],
    ['ip.198.51.100.10', c('local', 'ip', '198.51.100.10', '==', 'down')],
    ['remote.ip.198.51.100.10', c('remote', 'ip', '198.51.100.10', '==', 'down')],
    ['custom.my-check_2', c('local', 'custom', 'my-check_2', '==', 'down')],
    ['tcp.local', c('local', 'tcp', 'local', '==', 'down')],
    ['ip.*', c('local', 'ip', '*', '==', 'down')],
    ['remote.ip.*', c('remote', 'ip', '*', '==', 'down')],
    ['intf.?', c('local', 'intf', '?', '==', 'down')],
    ['remote.intf.?', c('remote', 'intf', '?', '==', 'down')],
    ['heartbeat.default', c('local', 'heartbeat', 'default', '==', 'down')],
  ];
  for (const [ref, expr] of table) assert.equal(parse(`r: if (${ref} == down) then wait();`).rules[0]!.expr, expr, ref);
});

test('operators: ! binds tightest, then &&, then ||; && and || associate to the left; parentheses group', () => {
  const a = c('local', 'ip', 'a', '==', 'up');
  const b = c('local', 'ip', 'b', '==', 'up');
  const d = c('local', 'ip', 'd', '==', 'up');
  const table: [string, Expr][] = [
    ['ip.a == up || ip.b == up && ip.d == up', { kind: 'or', a, b: { kind: 'and', a: b, b: d } }],
    ['ip.a == up && ip.b == up || ip.d == up', { kind: 'or', a: { kind: 'and', a, b }, b: d }],
    ['ip.a == up || ip.b == up || ip.d == up', { kind: 'or', a: { kind: 'or', a, b }, b: d }],
    ['ip.a == up && ip.b == up && ip.d == up', { kind: 'and', a: { kind: 'and', a, b }, b: d }],
    ['(ip.a == up || ip.b == up) && ip.d == up', { kind: 'and', a: { kind: 'or', a, b }, b: d }],
    ['!ip.a == up && ip.b == up', { kind: 'and', a: { kind: 'not', e: a }, b }],
    ['!(ip.a == up && ip.b == up)', { kind: 'not', e: { kind: 'and', a, b } }],
    ['!!ip.a == up', { kind: 'not', e: { kind: 'not', e: a } }],
    ['((ip.a == up))', a],
  ];
  for (const [text, expr] of table) assert.equal(parse(`r: if (${text}) then wait();`).rules[0]!.expr, expr, text);
});

test('whitespace is free: no spaces, newlines and comments anywhere between tokens', () => {
  const tight = parse('r1:if(intf.eth0==down)then wait();r2:disabled;');
  const loose = parse('r1 :\n if # why\n ( intf.eth0\n==\ndown # comment\n )\n then\n wait ( ) ;\n r2 : disabled ;');
  assert.equal(tight.rules.map((r) => r.expr), [E0]);
  assert.equal(loose.rules.map((r) => r.expr), [E0]);
  assert.equal(tight.disabled.map((d) => d.label), ['r2']);
  assert.equal(loose.disabled.map((d) => [d.label, d.line, d.column]), [['r2', 9, 2]]);
});

test('labels: letters, digits, _, . and -, starting with a letter or _; keywords are fine as labels', () => {
  const text = 'a.b-c_1: disabled; _x: disabled; if: disabled; then: if (ip.x == up) then wait();';
  const p = parse(text);
  assert.equal(p.disabled.map((d) => d.label), ['a.b-c_1', '_x', 'if']);
  assert.equal(p.rules.map((r) => r.label), ['then']);
});

test('formatRule writes what parses back to the same rule', () => {
  const table = [
    'r: if (intf.eth0 == down) then wait();',
    'r: if (remote.intf.? == up && intf.? == down) then swap();',
    'r: if (ip.a == up || ip.b == up && ip.d != init) then stop();',
    'r: if ((ip.a == up || ip.b == up) && !(ip.d == up)) then restart();',
    'r: if (ip.a == up && (ip.b == up && ip.d == up)) then stopstart();',
    'r: if (ip.a == up || (ip.b == up || ip.d == up)) then stopstart();',
    'r: if (!!(ip.* == unknown)) then wait();',
  ];
  for (const text of table) {
    const [rule] = parse(text).rules;
    assert.is(formatRule(rule!), text);
  }
  assert.is(formatRule(parse('r:if(local.ip.a==up&&!ip.b==up)then wait();').rules[0]!), 'r: if (ip.a == up && !(ip.b == up)) then wait();');
});

// Each error: [what, text (starting at line 1, column 1), the whole message].
const ERRORS: [string, string, string][] = [
  ['unclosed condition', 'r1: if (intf.eth0 == down then wait();',
    'line 1, column 27: expected ")" after "intf.eth0 == down", found "then". Close the parenthesis of the condition.'],
  ['unclosed inner parenthesis', 'r1: if (ip.a == up && (ip.b == down then wait();',
    'line 1, column 37: expected ")" after "ip.b == down", found "then". Close the parenthesis opened at line 1, column 23.'],
  ['a single &', 'r1: if (intf.eth0 == down & ip.x == down) then wait();',
    'line 1, column 27: expected "&&", "||" or ")" after "intf.eth0 == down", found "&". Write "&&" for and, "||" for or.'],
  ['a single |', 'r1: if (ip.a == up | ip.b == up) then wait();',
    'line 1, column 20: expected "&&", "||" or ")" after "ip.a == up", found "|". Write "&&" for and, "||" for or.'],
  ['unknown action', 'r1: if (intf.eth0 == down) then restat();',
    'line 1, column 33: unknown action "restat". An action is stop(), stopstart(), wait(), restart() or swap().'],
  ['no action', 'r1: if (intf.eth0 == down) then ;',
    'line 1, column 33: expected an action after "then", found ";". An action is stop(), stopstart(), wait(), restart() or swap().'],
  ['action without ()', 'r1: if (intf.eth0 == down) then wait;',
    'line 1, column 37: expected "(" after "wait", found ";". Write "wait()".'],
  ['action without )', 'r1: if (intf.eth0 == down) then wait(;',
    'line 1, column 38: expected ")" after "wait(", found ";". Write "wait()".'],
  ['unknown state', 'r1: if (intf.eth0 == dwn) then wait();',
    'line 1, column 22: unknown state "dwn" in "intf.eth0 == dwn". A state is up, down, init or unknown.'],
  ['states are lower case', 'r1: if (intf.eth0 != UP) then wait();',
    'line 1, column 22: unknown state "UP" in "intf.eth0 != UP". A state is up, down, init or unknown.'],
  ['no state', 'r1: if (intf.eth0 == ) then wait();',
    'line 1, column 22: expected a state after "intf.eth0 ==", found ")". A state is up, down, init or unknown.'],
  ['a single =', 'r1: if (intf.eth0 = down) then wait();',
    'line 1, column 19: expected "==" or "!=" after "intf.eth0", found "=". Write "==" to compare.'],
  ['a resource without comparison', 'r1: if (intf.eth0) then wait();',
    'line 1, column 18: expected "==" or "!=" after "intf.eth0", found ")". Compare the resource with a state, e.g. "intf.eth0 == down".'],
  ['empty condition', 'r1: if () then wait();',
    'line 1, column 9: expected a comparison such as "intf.eth0 == down" after "(", found ")". Compare a resource with a state: "[local.|remote.]class.ident == state".'],
  ['! with nothing after', 'r1: if (!) then wait();',
    'line 1, column 10: expected a comparison such as "intf.eth0 == down" after "!", found ")". Compare a resource with a state: "[local.|remote.]class.ident == state".'],
  ['&& with nothing after', 'r1: if (ip.a == up &&) then wait();',
    'line 1, column 22: expected a comparison such as "intf.eth0 == down" after "&&", found ")". Compare a resource with a state: "[local.|remote.]class.ident == state".'],
  ['state before resource', 'r1: if (down == intf.eth0) then wait();',
    'line 1, column 9: "down" is not a resource. Write [local.|remote.]class.ident, e.g. "intf.eth0", "remote.ping.router" or "ip.*".'],
  ['side and class without ident', 'r1: if (remote.intf == down) then wait();',
    'line 1, column 9: "remote.intf" is not a resource. Write [local.|remote.]class.ident, e.g. "intf.eth0", "remote.ping.router" or "ip.*".'],
  ['unknown class (column of the class)', 'r1: if (remote.inft.eth0 == down) then wait();',
    'line 1, column 16: unknown resource class "inft" in "remote.inft.eth0". A class is one of proc, tcp, ping, intf, ip, custom, module, splitbrain, rfs, heartbeat.'],
  ['invalid ident (column of the ident)', 'r1: if (intf.eth* == down) then wait();',
    'line 1, column 14: "intf.eth*" has an invalid ident "eth*". An ident is "*", "?" or a name of letters, digits, "_", "-" and single dots.'],
  ['empty ident segment', 'r1: if (local.ip.10..1 == down) then wait();',
    'line 1, column 18: "local.ip.10..1" has an invalid ident "10..1". An ident is "*", "?" or a name of letters, digits, "_", "-" and single dots.'],
  ['* followed by more', 'r1: if (ip.*.x == down) then wait();',
    'line 1, column 12: "ip.*.x" has an invalid ident "*.x". An ident is "*", "?" or a name of letters, digits, "_", "-" and single dots.'],
  ['a character outside the language inside a ref', 'r1: if (intf.é == down) then wait();',
    'line 1, column 14: "intf." has an invalid ident "". An ident is "*", "?" or a name of letters, digits, "_", "-" and single dots.'],
  ['missing ; between rules', 'r1: if (intf.eth0 == down) then wait()\nr2: if (ip.* == down) then stop();',
    'line 2, column 1: expected ";" after "wait()", found "r2". End each rule with ";".'],
  ['missing ; at the end', 'r1: if (intf.eth0 == down) then wait()',
    'line 1, column 39: expected ";" after "wait()", found the end of the rules. End each rule with ";".'],
  ['end of text after a comment counts code points', 'r1: if (ip.x == down) then wait() # é😀',
    'line 1, column 39: expected ";" after "wait()", found the end of the rules. End each rule with ";".'],
  ['disabled without ;', 'ip_failure: disabled',
    'line 1, column 21: expected ";" after "disabled", found the end of the rules. End each rule with ";".'],
  ['missing then', 'r1: if (intf.eth0 == down) wait();',
    'line 1, column 28: expected "then" after "if (intf.eth0 == down)", found "wait". Write "then" and the action, e.g. "then wait();".'],
  ['a ) too many', 'r1: if (intf.eth0 == down)) then wait();',
    'line 1, column 27: expected "then" after "if (intf.eth0 == down)", found ")". Write "then" and the action, e.g. "then wait();".'],
  ['condition without parentheses', 'r1: if intf.eth0 == down then wait();',
    'line 1, column 8: expected "(" after "if", found "intf.eth0". Put the condition in parentheses, e.g. "if (intf.eth0 == down)".'],
  ['neither if nor disabled', 'r1: when (intf.eth0 == down) then wait();',
    'line 1, column 5: expected "if" or "disabled" after "r1:", found "when". Write "label: if (condition) then action();" or "label: disabled;".'],
  ['missing colon', 'r1 if (intf.eth0 == down) then wait();',
    'line 1, column 4: expected ":" after "r1", found "if". Write the label, a colon, then the rule: "label: if (condition) then action();".'],
  ['no label', 'if (intf.eth0 == down) then wait();',
    'line 1, column 1: this rule has no label. Write one before "if", e.g. "my_rule: if (intf.eth0 == down) then wait();".'],
  ['label starting with a digit', '1r: disabled;',
    'line 1, column 1: expected a rule label, found "1r". A rule is "label: if (condition) then action();"; a label is letters, digits, "_", "." and "-", starting with a letter or "_".'],
  ['stray character between rules', 'r1: if (intf.eth0 == down) then wait(); @',
    'line 1, column 41: expected a rule label, found "@". A rule is "label: if (condition) then action();"; a label is letters, digits, "_", "." and "-", starting with a letter or "_".'],
  ['duplicate label (rule after disable)', 'a: disabled;\na: if (ip.x == up) then swap();',
    'line 2, column 1: label "a" is used twice (first at line 1, column 1). Give each rule its own label.'],
  ['duplicate label (two rules)', 'a: if (ip.x == up) then swap();  a: if (ip.y == up) then swap();',
    'line 1, column 34: label "a" is used twice (first at line 1, column 1). Give each rule its own label.'],
  ['Lua rules', '--Lua Rules\nRules = Rules + {x=if_then("res","down",Action.wait)}',
    'line 1, column 1: tandem does not support Lua rules ("--Lua Rules"). Write them in the rule language: "label: if (condition) then action();" or "label: disabled;".'],
];

test('every error is a UserError naming the file, line and column of the offending token', () => {
  for (const [what, text, message] of ERRORS) {
    assert.is(userErrorOf(() => parse(text)), `${F} ${message}`, what);
  }
});

test('error positions start at `at` on the first line only', () => {
  const bad = 'r1: if (intf.eth0 == down then wait();';
  assert.is(userErrorOf(() => parse(bad, { file: 'u.xml', line: 42, column: 17 })),
    'u.xml line 42, column 43: expected ")" after "intf.eth0 == down", found "then". Close the parenthesis of the condition.');
  assert.is(userErrorOf(() => parse(`\n  ${bad}`, { file: 'u.xml', line: 42, column: 17 })),
    'u.xml line 43, column 29: expected ")" after "intf.eth0 == down", found "then". Close the parenthesis of the condition.');
  assert.is(userErrorOf(() => parse('r1: disabled', { file: 'u.xml', line: 7, column: 30 })),
    'u.xml line 7, column 42: expected ";" after "disabled", found the end of the rules. End each rule with ";".');
});

test.run();
