import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { inParallel } from '../../src/parallel.js';
import { expectReject } from './expect-reject.js';


test('inParallel: runs at most `limit` at once, every item once; the first error rejects after the calls in flight ended', async () => {
  let running = 0;
  let peak = 0;
  const seen: number[] = [];
  await inParallel([1, 2, 3, 4, 5, 6, 7], 3, async (x) => {
    running++;
    peak = Math.max(peak, running);
    await new Promise((r) => setTimeout(r, 1));
    seen.push(x);
    running--;
  });
  assert.is(peak, 3);
  assert.equal(seen.sort(), [1, 2, 3, 4, 5, 6, 7]);
  let ended = 0;
  const err = await expectReject(inParallel([1, 2, 3, 4], 2, async (x) => {
    await new Promise((r) => setTimeout(r, x === 1 ? 0 : 5));
    ended++;
    if (x === 1) throw new Error('fsync failed: EIO');
  }), (e) => (e as Error).message === 'fsync failed: EIO', 'failing item');
  assert.ok(err);
  assert.is(ended, 2, 'no new item starts after the failure; the one in flight ended before the rejection');
});

test('inParallel: no items, no call', async () => {
  let calls = 0;
  await inParallel([], 4, async () => { calls++; });
  assert.is(calls, 0);
});

test.run();
