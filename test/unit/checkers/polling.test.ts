import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PollingChecker } from '../../../src/checkers/polling.js';
import type { Observation, Report } from '../../../src/checkers/types.js';
import { FakeClock } from '../../../src/platform/clock/fake.js';
import { recorder, settle, step } from './helpers.js';

/** A checker whose checks the test answers: `next` is what the next check returns (a value, an error, or pending). */
class Scripted extends PollingChecker {
  calls = 0;
  next: Observation | Error | 'pending' = { state: 'up', detail: 'ok' };
  resolvers: ((o: Observation) => void)[] = [];
  stops = 0;
  constructor(clock: FakeClock, report: Report, opts: { stallMs?: number } = {}) {
    super('test.x', { clock, report, intervalMs: 1000, ...opts });
  }
  protected async check(): Promise<Observation> {
    this.calls++;
    const n = this.next;
    if (n === 'pending') return new Promise((r) => this.resolvers.push(r));
    if (n instanceof Error) throw n;
    return n;
  }
  protected override onStop(): void {
    this.stops++;
  }
}

test('init before start returns, the first check at once, then every interval; unchanged results are not repeated', async () => {
  const clock = new FakeClock();
  const r = recorder();
  const c = new Scripted(clock, r.report);
  assert.is(c.resource, 'test.x');
  c.start();
  assert.equal(r.seen, ['init not checked yet']);
  assert.is(c.calls, 0, 'the first check runs on the event loop, not inside start');
  clock.advance(0);
  await settle();
  assert.equal(r.seen, ['init not checked yet', 'up ok']);
  await step(clock, 1000, 3);
  assert.is(c.calls, 4);
  assert.equal(r.seen.length, 2, 'up ok three more times is not reported again');
  c.next = { state: 'down', detail: 'gone' };
  clock.advance(1000);
  await settle();
  c.next = { state: 'up', detail: 'ok' };
  clock.advance(1000);
  await settle();
  assert.equal(r.states(), ['init', 'up', 'down', 'up']);
  c.start();
  assert.is(r.seen.length, 4, 'start on a started checker does nothing');
});

test('a check that throws is unknown with its message, and the checker goes on', async () => {
  const clock = new FakeClock();
  const r = recorder();
  const c = new Scripted(clock, r.report);
  c.next = new Error('EACCES reading /proc');
  c.start();
  clock.advance(0);
  await settle();
  assert.is(r.last(), 'unknown EACCES reading /proc');
  c.next = { state: 'up', detail: 'ok' };
  clock.advance(1000);
  await settle();
  assert.is(r.last(), 'up ok');
});

test('stop silences a check in flight and resolves only after it settled; no timer is left', async () => {
  const clock = new FakeClock();
  const r = recorder();
  const c = new Scripted(clock, r.report);
  c.next = 'pending';
  c.start();
  clock.advance(0);
  await settle();
  let stopped = false;
  const s = c.stop().then(() => { stopped = true; });
  assert.is(clock.pending, 0);
  assert.is(c.stops, 1);
  await settle();
  assert.is(stopped, false, 'the check is still running');
  c.resolvers[0]!({ state: 'down', detail: 'late' });
  await s;
  assert.equal(r.seen, ['init not checked yet'], 'the late result is dropped');
  await c.stop();
  assert.is(c.stops, 1, 'stop on a stopped checker does not stop again');
});

test('checks never overlap; a stalled one reports unknown once, then its result when it comes', async () => {
  const clock = new FakeClock();
  const r = recorder();
  const c = new Scripted(clock, r.report, { stallMs: 2500 });
  c.next = 'pending';
  c.start();
  clock.advance(0);
  await settle();
  clock.advance(2000);
  await settle();
  assert.is(c.calls, 1);
  assert.equal(r.states(), ['init']);
  clock.advance(1000);
  await settle();
  assert.is(r.last(), 'unknown no result within 2500 ms');
  clock.advance(1000);
  await settle();
  assert.is(r.seen.length, 2, 'reported once');
  c.next = { state: 'up', detail: 'ok' };
  c.resolvers[0]!({ state: 'up', detail: 'slow but fine' });
  await settle();
  assert.is(r.last(), 'up slow but fine');
  clock.advance(1000);
  await settle();
  assert.is(c.calls, 2, 'the next tick checks again');
  assert.is(r.last(), 'up ok');
});

test('a restart begins with init again; the old run\'s check neither reports nor holds back the new one', async () => {
  const clock = new FakeClock();
  const r = recorder();
  const c = new Scripted(clock, r.report);
  c.next = 'pending';
  c.start();
  clock.advance(0);
  await settle();
  void c.stop();
  c.next = { state: 'up', detail: 'ok' };
  c.start();
  clock.advance(0);
  await settle();
  assert.is(c.calls, 2);
  c.resolvers[0]!({ state: 'down', detail: 'from the old run' });
  await settle();
  assert.equal(r.seen, ['init not checked yet', 'init not checked yet', 'up ok']);
});

test('a report may stop the checker, even the init report; a throwing report does not kill it', async () => {
  const clock = new FakeClock();
  let c: Scripted;
  c = new Scripted(clock, () => { void c.stop(); });
  c.start();
  assert.is(clock.pending, 0, 'stopped inside start: no timer left');
  const seen: string[] = [];
  const d = new Scripted(clock, (s) => {
    seen.push(s);
    throw new Error('a buggy report');
  });
  d.start();
  clock.advance(0);
  await settle();
  d.next = { state: 'down', detail: 'x' };
  clock.advance(1000);
  await settle();
  assert.equal(seen, ['init', 'up', 'down']);
});

/** records the mono time of every check */
class Timed extends PollingChecker {
  at: number[] = [];
  constructor(private readonly c: FakeClock, intervalMs: number) {
    super('test.t', { clock: c, report: () => {}, intervalMs });
  }
  protected async check(): Promise<Observation> {
    this.at.push(this.c.mono());
    return { state: 'up', detail: '' };
  }
}

test('checks after the first fall on the multiples of the interval, so checkers started apart tick together', async () => {
  const clock = new FakeClock(0);
  const a = new Timed(clock, 500);
  a.start();
  await step(clock, 180);
  const b = new Timed(clock, 500);
  b.start(); // at 180
  await step(clock, 0);
  await step(clock, 330); // 510
  const c = new Timed(clock, 500);
  c.start(); // at 510: the next grid point is 1000, at least half an interval away
  await step(clock, 0);
  await step(clock, 10, 150); // to 2010
  assert.equal(a.at, [0, 500, 1000, 1500, 2000]);
  assert.equal(b.at, [180, 500, 1000, 1500, 2000]);
  assert.equal(c.at, [510, 1000, 1500, 2000]);
  for (const x of [a, b, c]) await x.stop();
  assert.is(clock.pending, 0);
});

test.run();
