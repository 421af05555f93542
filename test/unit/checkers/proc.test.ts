import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ProcChecker, type ProcCheckerOptions } from '../../../src/checkers/proc.js';
import { ProcScanner } from '../../../src/checkers/proc-scanner.js';
import { FakeClock } from '../../../src/platform/clock/fake.js';
import { FakeProcTable } from '../../../src/platform/procs/fake.js';
import type { ProcInfo, ProcTable } from '../../../src/platform/procs/types.js';
import { recorder, settle, step } from './helpers.js';

const POLL = 500;

function setup(spec: Partial<ProcCheckerOptions['spec']> = {}, table = new FakeProcTable()) {
  const clock = new FakeClock();
  const scanner = new ProcScanner(table, clock);
  const r = recorder();
  const make = (s: Partial<ProcCheckerOptions['spec']> = spec, rep = r.report) =>
    new ProcChecker({ spec: { name: 'db', nameregex: null, argregex: null, atleast: 1, atmax: -1, ...s }, polltimerMs: POLL, rescanMs: 30_000, scanner, clock, report: rep });
  return { clock, table, scanner, r, c: make(), make };
}

test('init → up → down within one poll of the death → up again; while up, polls read only the tracked pid', async () => {
  const { clock, table, r, c } = setup();
  const a = table.spawn('db', ['db', '-D', '/data']);
  table.spawn('web');
  c.start();
  await step(clock, 0);
  assert.equal(r.seen, ['init not checked yet', 'up 1 running (atleast 1)']);
  assert.equal(c.trackedPids, [a.pid]);
  const lists = table.lists;
  const checks = table.checks;
  await step(clock, POLL, 20);
  assert.is(table.lists, lists, 'no full scan while the tracked process lives');
  assert.is(table.checks, checks + 20, 'one check per poll');
  table.kill(a.pid);
  await step(clock, POLL);
  assert.is(r.last(), 'down 0 running, fewer than atleast 1');
  await step(clock, POLL, 3);
  assert.is(table.lists, lists + 4, 'a scan at every poll while down');
  table.spawn('db');
  await step(clock, POLL);
  assert.equal(r.states(), ['init', 'up', 'down', 'up']);
  assert.is(table.openWatches, 1);
  await c.stop();
});

test('a reused pid is not the process that died', async () => {
  const { clock, table, r, c } = setup();
  const a = table.spawn('db');
  c.start();
  await step(clock, 0);
  table.reuse(a.pid, 'cron');
  await step(clock, POLL);
  assert.is(r.last(), 'down 0 running, fewer than atleast 1');
  const b = table.spawn('db');
  await step(clock, POLL);
  assert.is(r.last(), 'up 1 running (atleast 1)');
  table.reuse(b.pid, 'db');
  await step(clock, POLL);
  assert.equal(r.states(), ['init', 'up', 'down', 'up'], 'a new matching process on the same pid keeps it up');
  assert.equal(c.trackedPids, [b.pid]);
  assert.is(table.openWatches, 1, 'the old watch was closed, a new one opened');
  await c.stop();
});

test('atleast: the oldest are tracked; an untracked death costs nothing, a tracked one rescans', async () => {
  const { clock, table, r, c } = setup({ atleast: 2 });
  const [a, b, n] = [table.spawn('db'), table.spawn('db'), table.spawn('db')];
  c.start();
  await step(clock, 0);
  assert.is(r.last(), 'up 3 running (atleast 2)');
  assert.equal(c.trackedPids, [a.pid, b.pid]);
  const lists = table.lists;
  table.kill(n.pid);
  await step(clock, POLL, 2);
  assert.is(table.lists, lists);
  assert.is(r.last(), 'up 3 running (atleast 2)', 'the count is as of the last scan');
  table.kill(a.pid);
  await step(clock, POLL);
  assert.is(table.lists, lists + 1);
  assert.is(r.last(), 'down 1 running, fewer than atleast 2');
  await c.stop();
});

test('atmax: more processes than atmax are seen at the next periodic rescan, and fewer again at the next poll', async () => {
  const { clock, table, r, c } = setup({ atmax: 2 });
  table.spawn('db');
  c.start();
  await step(clock, 0);
  const [x, y] = [table.spawn('db'), table.spawn('db')];
  await step(clock, POLL, 59);
  assert.is(r.last(), 'up 1 running (atleast 1, atmax 2)', 'not rescanned yet');
  await step(clock, POLL);
  assert.is(clock.mono(), 30_000);
  assert.is(r.last(), 'down 3 running, more than atmax 2');
  table.kill(x.pid);
  await step(clock, POLL);
  assert.is(r.last(), 'up 2 running (atleast 1, atmax 2)');
  table.kill(y.pid);
  await c.stop();
});

test('a process that dies while the scan reads it is counted once, then found dead at the next poll', async () => {
  const { clock, table, r, c } = setup();
  const a = table.spawn('db');
  table.afterListing(() => table.kill(a.pid));
  c.start();
  await step(clock, 0);
  assert.is(r.last(), 'up 1 running (atleast 1)');
  await step(clock, POLL);
  assert.is(r.last(), 'down 0 running, fewer than atleast 1');
  await c.stop();
});

test('a zombie is dead', async () => {
  const { clock, table, r, c } = setup();
  const a = table.spawn('db');
  c.start();
  await step(clock, 0);
  table.zombie(a.pid);
  await step(clock, POLL);
  assert.is(r.last(), 'down 0 running, fewer than atleast 1');
  await c.stop();
});

test('a process that exec\'d into something else is noticed at the periodic rescan', async () => {
  const { clock, table, r, c } = setup();
  const a = table.spawn('db');
  c.start();
  await step(clock, 0);
  table.exec(a.pid, 'sh');
  await step(clock, POLL, 60);
  assert.is(r.last(), 'down 0 running, fewer than atleast 1');
  await c.stop();
});

test('the table failing is unknown, and the checker recovers', async () => {
  const { clock, table, r, c } = setup();
  table.spawn('db');
  table.failNextList(new Error('EMFILE: too many open files'));
  c.start();
  await step(clock, 0);
  assert.is(r.last(), 'unknown EMFILE: too many open files');
  await step(clock, POLL);
  assert.is(r.last(), 'up 1 running (atleast 1)');
  await c.stop();
});

/** a table whose lists wait until the test releases them */
class SlowTable implements ProcTable {
  readonly inner = new FakeProcTable();
  private waiting: (() => void)[] = [];
  async list(wants?: (comm: string) => boolean): Promise<ProcInfo[]> {
    await new Promise<void>((r) => this.waiting.push(r));
    return this.inner.list(wants);
  }
  watch(p: ProcInfo) {
    return this.inner.watch(p);
  }
  release() {
    for (const r of this.waiting.splice(0)) r();
  }
}

test('stop silences a scan in flight, closes every watch and leaves no timer', async () => {
  const table = new SlowTable();
  const { clock, r, c } = setup({}, table as unknown as FakeProcTable);
  table.inner.spawn('db');
  c.start();
  await step(clock, 0);
  table.release();
  await settle();
  assert.is(r.last(), 'up 1 running (atleast 1)');
  const [a] = await table.inner.list((x) => x === 'db');
  table.inner.kill(a!.pid);
  await step(clock, POLL); // the poll finds it dead and starts a scan, which waits
  let stopped = false;
  const s = c.stop().then(() => { stopped = true; });
  assert.is(table.inner.openWatches, 0);
  assert.is(clock.pending, 0);
  await settle();
  assert.is(stopped, false, 'the scan is still in flight');
  table.release();
  await s;
  assert.equal(r.states(), ['init', 'up'], 'the down it would have found is not reported');
  assert.is(table.inner.openWatches, 0);
});

test('checkers share scans: one for all at start, one per periodic rescan; a death scans for that checker alone', async () => {
  const { clock, table, scanner, make } = setup();
  const recs = ['db', 'web', 'cache'].map((name) => {
    table.spawn(name);
    const seen: string[] = [];
    const c = make({ name }, (s) => { seen.push(s); });
    return { c, seen };
  });
  for (const { c } of recs) c.start();
  await step(clock, 0);
  assert.is(scanner.scans, 1);
  assert.equal(recs.map((x) => x.seen), [['init', 'up'], ['init', 'up'], ['init', 'up']]);
  await step(clock, POLL, 60);
  assert.is(scanner.scans, 2, 'one shared periodic rescan');
  const [web] = await table.list((x) => x === 'web');
  table.kill(web!.pid);
  await step(clock, POLL);
  assert.is(scanner.scans, 3);
  assert.equal(recs.map((x) => x.seen.at(-1)), ['up', 'down', 'up']);
  for (const { c } of recs) await c.stop();
  assert.is(table.openWatches, 0);
});

test('a shared scan begun in the same instant as a death does not bring the dead process back', async () => {
  const { clock, table, make } = setup();
  const a = table.spawn('db');
  const seenC: string[] = [];
  const c = make({ name: 'db', atleast: 2 }, (st, d) => { seenC.push(`${st} ${d}`); }); // down: scans at every poll
  const seenA: string[] = [];
  const checker = make({ name: 'db' }, (st) => { seenA.push(st); });
  c.start(); // ticks before the other at each poll
  checker.start();
  await step(clock, 0);
  assert.equal(seenA, ['init', 'up']);
  table.afterListing(() => table.kill(a.pid)); // c's next scan reads the process, which then dies
  await step(clock, POLL);
  assert.equal(seenA, ['init', 'up', 'down'], 'the tracked death wins over the scan that still lists it');
  assert.is(seenC.at(-1), 'down 1 running, fewer than atleast 2');
  await c.stop();
  await checker.stop();
});

test.run();
