import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { hold, type HoldState } from '../../../src/engine/rules/hold.js';
import type { Decision, RuleAction } from '../../../src/engine/rules/types.js';

const HANDLE = 15_000;
const d = (label: string, action: RuleAction = 'wait', holdMs: number | null = null, because = ['ip.a=down']): Decision =>
  ({ label, action, because, holdMs });

/** Feeds (now, decision) steps through hold and returns, per step, the label that fired or '-'. */
function fires(steps: [number, Decision | null][], handleTimeMs = HANDLE): string[] {
  let state: HoldState | null = null;
  return steps.map(([now, decision]) => {
    const r = hold(state, decision, now, handleTimeMs);
    state = r.hold;
    return r.fire ? r.fire.label : '-';
  });
}

test('no decision: no state, nothing fires', () => {
  assert.equal(hold(null, null, 0, HANDLE), { hold: null, fire: null });
  assert.equal(hold({ label: 'a', action: 'wait', since: 0, fired: false }, null, 20_000, HANDLE), { hold: null, fire: null });
});

test('a decision fires once it has held for handle_time, and records since and fired', () => {
  const a = d('a');
  const r0 = hold(null, a, 1_000, HANDLE);
  assert.equal(r0, { hold: { label: 'a', action: 'wait', since: 1_000, fired: false }, fire: null });
  const r1 = hold(r0.hold, a, 15_999, HANDLE);
  assert.equal(r1, { hold: { label: 'a', action: 'wait', since: 1_000, fired: false }, fire: null });
  const r2 = hold(r1.hold, a, 16_000, HANDLE);
  assert.equal(r2, { hold: { label: 'a', action: 'wait', since: 1_000, fired: true }, fire: a });
  assert.equal(hold(r2.hold, a, 16_001, HANDLE), { hold: { label: 'a', action: 'wait', since: 1_000, fired: true }, fire: null });
});

test('timelines: once per continuous period; any change of decision restarts the wait', () => {
  const table: [string, [number, Decision | null][], string[]][] = [
    ['holds, fires, keeps holding, stops, holds again',
      [[0, d('a')], [5_000, d('a')], [15_000, d('a')], [20_000, d('a')], [60_000, d('a')], [65_000, null], [70_000, d('a')], [80_000, d('a')], [85_000, d('a')]],
      ['-', '-', 'a', '-', '-', '-', '-', '-', 'a']],
    ['a gap of one evaluation restarts the wait',
      [[0, d('a')], [10_000, null], [15_000, d('a')], [25_000, d('a')], [30_000, d('a')]],
      ['-', '-', '-', '-', 'a']],
    ['another label restarts the wait, and the first one again restarts it too',
      [[0, d('a')], [10_000, d('b')], [15_000, d('b')], [20_000, d('a')], [30_000, d('a')], [35_000, d('a')]],
      ['-', '-', '-', '-', '-', 'a']],
    ['the same label with another action is another decision',
      [[0, d('a', 'wait')], [10_000, d('a', 'stop')], [24_999, d('a', 'stop')], [25_000, d('a', 'stop')]],
      ['-', '-', '-', 'a']],
    ['after firing, a change and back fires again once it has held again',
      [[0, d('a')], [15_000, d('a')], [16_000, d('b')], [17_000, d('a')], [31_000, d('a')], [32_000, d('a')]],
      ['-', 'a', '-', '-', '-', 'a']],
    ['holdMs 0 fires at the first evaluation, once',
      [[0, d('p', 'restart', 0)], [1_000, d('p', 'restart', 0)], [2_000, null], [3_000, d('p', 'restart', 0)]],
      ['p', '-', '-', 'p']],
    ['holdMs overrides handle_time',
      [[0, d('p', 'restart', 5_000)], [4_999, d('p', 'restart', 5_000)], [5_000, d('p', 'restart', 5_000)]],
      ['-', '-', 'p']],
  ];
  for (const [what, steps, want] of table) assert.equal(fires(steps), want, what);
  assert.equal(fires([[0, d('a')], [0, d('a')], [1, d('a')]], 0), ['a', '-', '-'], 'handle_time 0');
});

test('a new `because` is the same decision; fire carries the current one', () => {
  const first = hold(null, d('a', 'wait', null, ['ip.a=down']), 0, HANDLE);
  const later = d('a', 'wait', null, ['ip.a=down', 'ip.b=down']);
  assert.equal(hold(first.hold, later, HANDLE, HANDLE).fire, later);
});

test.run();
