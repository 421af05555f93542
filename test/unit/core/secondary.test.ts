import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ATTACH_RETRY_MS, initialSecondary, stepSecondary, type SecondaryAction, type SecondaryEvent } from '../../../src/replication/core/secondary.js';

function run(...events: SecondaryEvent[]) {
  let s = initialSecondary();
  const actions: SecondaryAction[] = [];
  for (const e of events) {
    const r = stepSecondary(s, e);
    s = r.state;
    actions.push(...r.actions);
  }
  return { state: s, actions };
}

test('follow: attach at once; a refused attach is retried after ATTACH_RETRY_MS, not before', () => {
  const a = run({ kind: 'follow', gen: '3@n1', now: 1000 });
  assert.equal(a.actions, [{ kind: 'attach', gen: '3@n1' }]);
  const b = run({ kind: 'follow', gen: '3@n1', now: 1000 }, { kind: 'attach-result', ok: false, now: 1100 }, { kind: 'tick', now: 1100 + ATTACH_RETRY_MS - 1 });
  assert.equal(b.actions.filter((x) => x.kind === 'attach').length, 1);
  assert.ok(b.actions.some((x) => x.kind === 'retry-at' && x.at === 1100 + ATTACH_RETRY_MS));
  assert.ok(b.actions.at(-1)?.kind === 'retry-at', 'a tick that comes early waits for the rest');
  const c = stepSecondary(b.state, { kind: 'tick', now: 1100 + ATTACH_RETRY_MS });
  assert.equal(c.actions, [{ kind: 'attach', gen: '3@n1' }]);
});

test('no attach while a stream runs, a reintegration copies, or the copy is dirty', () => {
  assert.equal(run({ kind: 'stream-started', gen: '3@n1' }, { kind: 'follow', gen: '3@n1', now: 0 }).actions, []);
  assert.equal(run({ kind: 'copy', on: true }, { kind: 'follow', gen: '3@n1', now: 0 }).actions, []);
  const dirty = run({ kind: 'follow', gen: '3@n1', now: 0 }, { kind: 'attach-result', ok: false, dirty: true, now: 1 }, { kind: 'tick', now: 99_999 });
  assert.equal(dirty.actions.filter((a) => a.kind === 'attach').length, 1);
  assert.ok(dirty.state.dirty);
});

test('a failed change acknowledged on receipt is reported at once; one not acknowledged only outdates the copy', () => {
  const acked = run({ kind: 'stream-started', gen: '3@n1' }, { kind: 'apply-failed', reason: 'ENOSPC', acknowledged: true });
  assert.equal(acked.actions, [{ kind: 'report-behind', reason: 'ENOSPC' }]);
  assert.is(acked.state.failed, 'ENOSPC');
  const unacked = run({ kind: 'stream-started', gen: '3@n1' }, { kind: 'apply-failed', reason: 'EIO', acknowledged: false });
  assert.equal(unacked.actions, []);
  assert.is(unacked.state.failed, 'EIO');
});

test('a failed change ends the live stream of the copy at once, before the stream itself has ended', () => {
  // a reintegration asked between the two (the engine answers copy-behind at once) must not find the copy live
  const r = run({ kind: 'stream-started', gen: '3@n1' }, { kind: 'apply-failed', reason: 'ENOSPC', acknowledged: true });
  assert.is(r.state.live, null);
});

test('an outdated copy is not reattached; a new stream (after its reintegration) clears it', () => {
  const r = run({ kind: 'stream-started', gen: '3@n1' }, { kind: 'apply-failed', reason: 'EIO', acknowledged: false },
    { kind: 'stream-ended', failed: 'EIO' }, { kind: 'follow', gen: '3@n1', now: 0 });
  assert.equal(r.actions.filter((a) => a.kind === 'attach'), []);
  const after = stepSecondary(r.state, { kind: 'stream-started', gen: '4@n1' });
  assert.is(after.state.failed, null);
});

test('unfollow stops attaching; leave forgets everything', () => {
  const r = run({ kind: 'follow', gen: '3@n1', now: 0 }, { kind: 'attach-result', ok: false, now: 0 }, { kind: 'unfollow' }, { kind: 'tick', now: 10_000 });
  assert.equal(r.actions.filter((a) => a.kind === 'attach').length, 1);
  assert.equal(stepSecondary(r.state, { kind: 'leave' }).state, initialSecondary());
});

test.run();
