import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { initialPrimary, stepPrimary, type PrimaryAction, type PrimaryEvent, type PrimaryState } from '../../../src/replication/core/primary.js';

/** Runs events from the initial state; returns the last state and every action's kind (logs left out). */
function run(...events: PrimaryEvent[]): { state: PrimaryState; kinds: string[]; actions: PrimaryAction[] } {
  let s = initialPrimary();
  const actions: PrimaryAction[] = [];
  for (const e of events) {
    const r = stepPrimary(s, e);
    s = r.state;
    actions.push(...r.actions);
  }
  return { state: s, actions, kinds: actions.filter((a) => a.kind !== 'log').map((a) => (a.kind === 'mode' ? `mode:${a.mode}` : a.kind)) };
}

const enterAlone: PrimaryEvent = { kind: 'enter', gen: '3@n1', awaitPeer: false, recordBase: '2@n1' };

test('ALONE: changes wait until the record is open, then are recorded', () => {
  const a = run(enterAlone);
  assert.is(a.state.mode, 'failing');
  assert.equal(a.actions.find((x) => x.kind === 'open-record'), { kind: 'open-record', base: '2@n1', fresh: false });
  const b = run(enterAlone, { kind: 'record-opened' });
  assert.is(b.state.mode, 'record');
  assert.equal(b.kinds.slice(-2), ['flush-unacked', 'mode:record']);
});

test('a reintegration that hands over makes the stream live and the record is discarded', () => {
  const r = run(enterAlone, { kind: 'record-opened' }, { kind: 'live', gen: '3@n1' });
  assert.is(r.state.mode, 'live');
  assert.is(r.state.replicaGen, '3@n1');
  assert.ok(r.kinds.includes('discard-record'));
});

test('live, the SECOND does not take a change: changes wait, the engine is told once', () => {
  const r = run(enterAlone, { kind: 'record-opened' }, { kind: 'live', gen: '3@n1' },
    { kind: 'send-failed', reason: 'link lost' }, { kind: 'send-failed', reason: 'again' });
  assert.is(r.state.mode, 'failing');
  assert.is(r.actions.filter((a) => a.kind === 'report-failure').length, 1);
  assert.ok(r.kinds.includes('close-sender'));
});

test('failing, then the engine persists a new generation: a fresh record based on what the SECOND held', () => {
  const r = run(enterAlone, { kind: 'record-opened' }, { kind: 'live', gen: '3@n1' }, { kind: 'send-failed', reason: 'x' },
    { kind: 'outdated', gen: '4@n1', peerHolds: '3@n1' });
  assert.equal(r.actions.filter((a) => a.kind === 'open-record').at(-1), { kind: 'open-record', base: '3@n1', fresh: true });
  assert.is(r.state.gen, '4@n1');
  const done = stepPrimary(r.state, { kind: 'record-opened' });
  assert.is(done.state.mode, 'record');
  assert.equal(done.actions.map((a) => a.kind), ['flush-unacked', 'mode']);
});

test('outdated while live (the engine moved first: the peer stopped being a replica): straight to a fresh record', () => {
  const r = run(enterAlone, { kind: 'record-opened' }, { kind: 'live', gen: '3@n1' }, { kind: 'outdated', gen: '4@n1', peerHolds: '3@n1' });
  assert.is(r.state.mode, 'failing');
  assert.ok(r.state.opening);
  assert.not.ok(r.actions.some((a) => a.kind === 'report-failure'), 'nothing to tell the engine: it decided');
});

test('outdated while recording only moves the generation (the record keeps its base)', () => {
  const r = run(enterAlone, { kind: 'record-opened' }, { kind: 'outdated', gen: '4@n1', peerHolds: '2@n1' });
  assert.is(r.state.mode, 'record');
  assert.is(r.state.gen, '4@n1');
  assert.is(r.actions.filter((a) => a.kind === 'open-record').length, 1);
});

test('PRIM after a swap: awaiting with a deadline; expired → failing and reported; attached → live', () => {
  const enter: PrimaryEvent = { kind: 'enter', gen: '3@n1', awaitPeer: true, recordBase: null };
  const a = run(enter);
  assert.is(a.state.mode, 'awaiting');
  assert.ok(a.kinds.includes('arm-await'));
  const b = run(enter, { kind: 'await-expired' });
  assert.is(b.state.mode, 'failing');
  assert.is(b.actions.filter((x) => x.kind === 'report-failure').length, 1);
  const c = run(enter, { kind: 'live', gen: '3@n1' });
  assert.is(c.state.mode, 'live');
  assert.ok(c.kinds.includes('disarm-await'));
});

test('leave: off, the sender closed; events after it change nothing', () => {
  const r = run(enterAlone, { kind: 'record-opened' }, { kind: 'leave' }, { kind: 'live', gen: '3@n1' }, { kind: 'send-failed', reason: 'x' });
  assert.is(r.state.mode, 'off');
  assert.not.ok(r.actions.some((a) => a.kind === 'report-failure'));
});

test('a record that cannot be opened leaves changes blocked, with the reason logged', () => {
  const r = run(enterAlone, { kind: 'record-failed', reason: 'EIO' });
  assert.is(r.state.mode, 'failing');
  assert.ok(r.actions.some((a) => a.kind === 'log' && a.level === 'error' && a.msg.includes('EIO')));
});

test.run();
