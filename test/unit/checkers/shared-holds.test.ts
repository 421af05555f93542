import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SharedHolds } from '../../../src/checkers/shared-holds.js';

/** A listing that resolves (or fails) when the test says, counting how many were begun. */
function lister() {
  const pending: { resolve: (a: string[]) => void; reject: (e: Error) => void }[] = [];
  return {
    pending,
    list: () => new Promise<string[]>((resolve, reject) => pending.push({ resolve, reject })),
  };
}

test('calls within maxAgeMs share one listing, in flight or done; a later call begins a new one', async () => {
  let now = 1000;
  const l = lister();
  const h = new SharedHolds(l.list, { mono: () => now }, 100);
  const a = h.holds('198.51.100.10');
  now += 30;
  const b = h.holds('198.51.100.11');
  assert.is(l.pending.length, 1, 'the second call joined the listing in flight');
  l.pending[0]!.resolve(['198.51.100.1', '198.51.100.10']);
  assert.equal([await a, await b], [true, false]);
  now += 70; // 100 ms after the listing began: still shared
  assert.is(await h.holds('198.51.100.10'), true);
  assert.is(l.pending.length, 1);
  now += 1;
  const c = h.holds('198.51.100.10');
  assert.is(l.pending.length, 2, 'older than maxAgeMs: a new listing');
  l.pending[1]!.resolve(['198.51.100.1']);
  assert.is(await c, false, 'the address removed since is seen by the new listing');
  assert.is(h.listings, 2);
});

test('a failed listing rejects the calls that joined it, and the next call lists again', async () => {
  const now = 0;
  const l = lister();
  const h = new SharedHolds(l.list, { mono: () => now }, 100);
  const a = h.holds('198.51.100.10');
  const b = h.holds('198.51.100.10');
  l.pending[0]!.reject(new Error('command failed (exit 1): ip -j -4 addr show'));
  for (const p of [a, b]) {
    try {
      await p;
      assert.unreachable('should reject');
    } catch (e) {
      assert.match((e as Error).message, /ip -j -4 addr show/);
    }
  }
  const c = h.holds('198.51.100.10');
  assert.is(l.pending.length, 2, 'same instant, but the failed listing is not joined');
  l.pending[1]!.resolve(['198.51.100.10']);
  assert.is(await c, true);
});

test.run();
