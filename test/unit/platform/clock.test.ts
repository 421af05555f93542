import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FakeClock } from '../../../src/platform/clock/fake.js';
import { realClock } from '../../../src/platform/clock/real.js';

test('fake timers fire in due order inside advance, each seeing its own due time', () => {
  const c = new FakeClock(0);
  const seen: string[] = [];
  c.after(300, () => seen.push(`b@${c.mono()}`));
  c.after(100, () => seen.push(`a@${c.mono()}`));
  c.advance(250);
  assert.equal(seen, ['a@100']);
  c.advance(50);
  assert.equal(seen, ['a@100', 'b@300']);
  assert.is(c.pending, 0);
});

test('every repeats until cancelled; a cancelled timer never fires', () => {
  const c = new FakeClock(0);
  let n = 0;
  const stop = c.every(100, () => { n++; });
  const never = c.after(50, () => { n += 1000; });
  never();
  c.advance(350);
  assert.is(n, 3);
  stop();
  c.advance(1000);
  assert.is(n, 3);
  assert.is(c.pending, 0);
});

test('a timer set by a callback fires in the same advance when it falls due within it', () => {
  const c = new FakeClock(0);
  const seen: number[] = [];
  c.after(100, () => c.after(100, () => seen.push(c.mono())));
  c.advance(250);
  assert.equal(seen, [200]);
  assert.is(c.mono(), 250);
});

test('wall time moves with advance, and jumpWall moves it alone', () => {
  const c = new FakeClock(0, 1000);
  c.advance(10);
  c.jumpWall(-500);
  assert.is(c.mono(), 10);
  assert.is(c.wall(), 510);
});

test('real timers: after never fires before its time on the monotonic clock', async () => {
  for (let i = 0; i < 20; i++) {
    const t0 = realClock.mono();
    const at = await new Promise<number>((resolve) => realClock.after(3, () => resolve(realClock.mono())));
    assert.ok(at - t0 >= 3, `fired after ${at - t0} ms`);
  }
});

test('real timers: after fires once, cancel prevents it', async () => {
  let fired = 0;
  await new Promise<void>((resolve) => realClock.after(5, () => { fired++; resolve(); }));
  const cancel = realClock.after(5, () => { fired += 100; });
  cancel();
  const stop = realClock.every(1, () => { fired++; if (fired >= 3) { stop(); done(); } });
  let done!: () => void;
  await new Promise<void>((r) => { done = r; });
  assert.is(fired, 3);
});

test.run();
