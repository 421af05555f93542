import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Worker } from 'node:worker_threads';
import { serveSink } from '../../../src/replication/fuse/sink-bridge.js';
import type { AsyncChangeSink, Change } from '../../../src/replication/fuse/sink.js';
import { RecordingSink } from '../../../src/replication/fuse/sink.js';
import type { BridgeWorkerData, BridgeWorkerResult } from './bridge-worker.js';
import { gate } from '../gate.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function runWorker(
  sink: AsyncChangeSink, calls: BridgeWorkerData['calls'], timeoutMs = 0, onServer?: (close: () => void) => void, stream = false,
  reply?: (unique: number, errno: number) => void, syncBacking?: () => Promise<void>, watch?: Watch,
): Promise<BridgeWorkerResult[]> {
  const server = serveSink(sink, () => {}, reply, syncBacking);
  openServers.push(server);
  server.setFlag(stream);
  onServer?.(() => server.close());
  const data: BridgeWorkerData = { end: server.workerEnd, timeoutMs, calls, ...(watch ? { answers: watch.sab } : {}) };
  const w = new Worker(new URL('./bridge-worker.js', import.meta.url), { workerData: data, transferList: [server.workerEnd.port] });
  return new Promise((resolve, reject) => {
    w.on('message', (m: BridgeWorkerResult[] | { returned: number }) => (Array.isArray(m) ? resolve(m) : watch?.onReturned?.(m.returned)));
    w.once('error', reject);
    // the server stays open after the worker exits: a call it posted just before (a deferred sync) may still be
    // queued on the port; every test's servers are closed after it (after.each)
  });
}
/** Runs the worker's calls against an existing server. */
function runWorkerOn(server: ReturnType<typeof serveSink>, calls: BridgeWorkerData['calls']): Promise<BridgeWorkerResult[]> {
  const data: BridgeWorkerData = { end: server.workerEnd, timeoutMs: 0, calls };
  const w = new Worker(new URL('./bridge-worker.js', import.meta.url), { workerData: data, transferList: [server.workerEnd.port] });
  return new Promise((resolve, reject) => {
    w.on('message', (m: BridgeWorkerResult[] | { returned: number }) => { if (Array.isArray(m)) resolve(m); });
    w.once('error', reject);
  });
}

/**
 * What the worker's calls waited for, without timing them: the test's sink calls `bump()` when it answers (or
 * releases) a call, and each result's `answersAtReturn` is the count the worker read as that call returned.
 * `onReturned(i)` runs on the main thread once call i returned.
 */
interface Watch {
  sab: SharedArrayBuffer;
  bump(): void;
  onReturned?: (i: number) => void;
}
function watch(onReturned?: (i: number) => void): Watch {
  const sab = new SharedArrayBuffer(4);
  const n = new Int32Array(sab);
  return { sab, bump: () => { Atomics.add(n, 0, 1); }, ...(onReturned ? { onReturned } : {}) };
}
const answered = (results: BridgeWorkerResult[]) => results.map((r) => r.answersAtReturn);
const openServers: { close(): void }[] = [];
test.after.each(() => {
  for (const s of openServers.splice(0)) s.close();
});

const write: Change = { op: 'write', path: 'dir/a.txt', offset: 4096, data: new Uint8Array([1, 2, 3]) };
const rename: Change = { op: 'rename', from: 'dir/a.txt', to: 'dir/b.txt', flags: 0 };

test('the worker stays blocked until the main-thread sink answers, and the main thread keeps running meanwhile', async () => {
  const rec = new RecordingSink();
  const wt = watch();
  // each answer comes from a timer callback: only a main thread that keeps running while the worker waits gives it
  const sink: AsyncChangeSink = {
    async onChange(c) {
      await sleep(1);
      rec.onChange(c);
      wt.bump();
    },
    async onSync(path, datasync) {
      await sleep(1);
      rec.onSync(path, datasync);
      wt.bump();
    },
  };
  const results = await runWorker(sink, [
    { kind: 'change', change: write },
    { kind: 'change', change: rename },
    { kind: 'sync', path: 'dir/b.txt', datasync: true },
  ], 0, undefined, false, undefined, undefined, wt);
  assert.equal(results.map((r) => r.error), [null, null, null]);
  assert.equal(answered(results), [1, 2, 3], 'each call returned only after its own answer');
  assert.equal(rec.summary(), ['write dir/a.txt @4096 +3', 'rename dir/a.txt → dir/b.txt', 'fdatasync dir/b.txt']);
  const w = rec.events[0] as Extract<Change, { op: 'write' }>;
  assert.equal([...w.data], [1, 2, 3]);
});

test('a sink that throws or rejects makes the worker-side call throw', async () => {
  const sink: AsyncChangeSink = {
    onChange(c) {
      if (c.op === 'write') throw new Error('peer unreachable');
    },
    async onSync() {
      throw new Error('disk full on peer');
    },
  };
  const results = await runWorker(sink, [
    { kind: 'change', change: write },
    { kind: 'change', change: rename },
    { kind: 'sync', path: 'x', datasync: false },
  ]);
  assert.match(results[0]!.error ?? '', /peer unreachable/);
  assert.is(results[1]!.error, null);
  assert.match(results[2]!.error ?? '', /disk full on peer/);
});

// Calls are handled one after the other: the first handler finishes only when the gate opens, once the first call gave
// up (or after a 20 s fallback, so that a call that ignored its timeout returns answered instead of hanging); the later
// call is answered then, within its own 100 ms timeout that started when the first call gave up.
test('with a timeout, an unanswered call fails and a later call still gets its own answer', async () => {
  const held = gate();
  const fallback = setTimeout(() => held.open(), 20_000);
  const wt = watch((i) => { if (i === 0) held.open(); });
  let first = true;
  const seen: string[] = [];
  const sink: AsyncChangeSink = {
    async onChange(c) {
      seen.push(c.op);
      if (first) {
        first = false;
        await held.pass();
      }
      wt.bump();
    },
    onSync() {},
  };
  try {
    const results = await runWorker(sink, [
      { kind: 'change', change: write },
      { kind: 'change', change: rename },
    ], 100, undefined, false, undefined, undefined, wt);
    assert.match(results[0]!.error ?? '', /did not answer within 100 ms/);
    assert.is(results[0]!.answersAtReturn, 0, 'the first call gave up before its handler finished');
    assert.is(results[1]!.error, null);
    assert.is(results[1]!.answersAtReturn, 2, 'the later call returned with its own answer');
    assert.equal(seen, ['write', 'rename']);
  } finally {
    clearTimeout(fallback);
    held.open();
  }
});

test('closing the server releases a worker blocked on a sink that never answers', async () => {
  let close!: () => void;
  const wt = watch();
  const sink: AsyncChangeSink = {
    onChange() {
      setTimeout(() => { wt.bump(); close(); }); // the worker is blocked on this call now
      return new Promise<void>(() => {});
    },
    onSync() {},
  };
  const results = await runWorker(sink, [{ kind: 'change', change: rename }], 0, (c) => { close = c; }, false, undefined, undefined, wt);
  assert.match(results[0]!.error ?? '', /closed/);
  assert.is(results[0]!.answersAtReturn, 1, 'the worker returned only once the server closed');
});

test('streamed writes: the worker does not wait for them, and the sink still sees every call in order', async () => {
  // the writes' handlers finish only once the worker returned from the third write (or after a 20 s fallback, so that
  // writes that wrongly wait return answered instead of hanging)
  const held = gate();
  const fallback = setTimeout(() => held.open(), 20_000);
  const wt = watch((i) => { if (i === 2) held.open(); });
  const seen: string[] = [];
  const sink: AsyncChangeSink = {
    async onChange(c) {
      if (c.op === 'write') await held.pass();
      seen.push(c.op === 'write' ? `write@${c.offset}` : c.op);
      wt.bump();
    },
    async onSync(p) {
      seen.push(`sync ${p}`);
      wt.bump();
    },
  };
  const w = (offset: number): BridgeWorkerData['calls'][number] => ({ kind: 'change', change: { ...write, offset } });
  try {
    const results = await runWorker(sink, [w(0), w(1), w(2), { kind: 'sync', path: 'dir/a.txt', datasync: true }, w(3), { kind: 'change', change: rename }], 0, undefined, true, undefined, undefined, wt);
    const at = answered(results);
    assert.equal(at.slice(0, 3), [0, 0, 0], 'the writes did not wait for their handlers');
    assert.is(at[3], 4, 'the sync waited for the three writes before it and for itself');
    assert.is(at[5], 6, 'the rename waited for the write before it and for itself');
    assert.equal(seen, ['write@0', 'write@1', 'write@2', 'sync dir/a.txt', 'write@3', 'rename']);
    assert.ok(results.every((r) => r.error === null));
  } finally {
    clearTimeout(fallback);
    held.open();
  }
});

test('without the flag, writes wait as any change', async () => {
  const wt = watch();
  const sink: AsyncChangeSink = { async onChange() { await sleep(1); wt.bump(); }, onSync() {} };
  const results = await runWorker(sink, [{ kind: 'change', change: write }], 0, undefined, false, undefined, undefined, wt);
  assert.is(results[0]!.answersAtReturn, 1, 'the write returned after its handler');
});

test('deferred fsync: the worker goes on at once; later changes are handled while it waits; the reply comes when durable', async () => {
  const seen: string[] = [];
  const replies: [number, number][] = [];
  let release!: () => void;
  const durable = new Promise<void>((r) => (release = r));
  let replied!: () => void;
  const reply = new Promise<void>((r) => (replied = r));
  const sink: AsyncChangeSink = {
    async onChange(c) { seen.push(c.op); },
    onSync() { throw new Error('not used'); },
    async syncInOrder(p) {
      seen.push(`sync ${p}`);
      return { done: durable }; // durable only when the test says so, after the worker finished both calls
    },
  };
  const results = await runWorker(sink, [
    { kind: 'defer', path: 'wal', datasync: true, unique: 42 },
    { kind: 'local', unique: 42, errno: 0 },
    { kind: 'change', change: rename },
  ], 0, undefined, true, (u, e) => { replies.push([u, e]); replied(); });
  // the worker returned from every call while the sync was not durable: it did not wait, and the rename was handled
  assert.is(results[0]!.deferred, true);
  assert.equal(seen, ['sync wal', 'rename']);
  assert.equal(replies, [], 'no reply before the sync is durable');
  release();
  await reply;
  assert.equal(replies, [[42, 0]], 'replied once durable');
});

test('deferred fsync whose sync fails is answered EIO; without the stream flag it is not deferred', async () => {
  const replies: [number, number][] = [];
  let replied!: () => void;
  const reply = new Promise<void>((r) => (replied = r));
  const sink: AsyncChangeSink = {
    async onChange() {},
    onSync() {},
    async syncInOrder() { return { done: Promise.reject(new Error('peer gone')) }; },
  };
  const r1 = await runWorker(sink, [{ kind: 'defer', path: 'wal', datasync: true, unique: 7 }, { kind: 'local', unique: 7, errno: 0 }], 0, undefined, true,
    (u, e) => { replies.push([u, e]); replied(); });
  assert.is(r1[0]!.deferred, true);
  await reply;
  assert.equal(replies, [[7, -5]]);
  const r2 = await runWorker(sink, [{ kind: 'defer', path: 'wal', datasync: true, unique: 8 }], 0, undefined, false, (u, e) => replies.push([u, e]));
  assert.is(r2[0]!.deferred, false, 'not streaming: the caller syncs itself');
  assert.is(replies.length, 1);
});

test('deferred fsync: the peer\'s sync starts before the local fsync ends; the reply waits for the local result and carries its errno', async () => {
  const replies: [number, number][] = [];
  const seen: string[] = [];
  const sink: AsyncChangeSink = {
    async onChange(c) { seen.push(c.op); },
    onSync() { throw new Error('not used'); },
    async syncInOrder(p) {
      seen.push(`sync ${p}`);
      return { done: Promise.resolve() }; // durable on the peer at once
    },
  };
  let replied!: () => void;
  const reply = new Promise<void>((r) => (replied = r));
  // the worker posts the sync, then (as after a slow local fsync) a write, and only then the local result
  await runWorker(sink, [
    { kind: 'defer', path: 'wal', datasync: true, unique: 11 },
    { kind: 'change', change: write },
    { kind: 'local', unique: 11, errno: 5 },
  ], 0, undefined, true, (u, e) => { replies.push([u, e]); replied(); });
  await reply;
  assert.equal(seen, ['sync wal', 'write'], 'the sync reached the sink before the local result');
  assert.equal(replies, [[11, -5]], 'a failed local fsync is the reply, though the peer has it');
});

test('deferred fsync: no reply while the local fsync runs, even when the peer has it', async () => {
  const replies: [number, number][] = [];
  let placed!: () => void;
  const wasPlaced = new Promise<void>((r) => (placed = r));
  const sink: AsyncChangeSink = {
    async onChange() {},
    onSync() { throw new Error('not used'); },
    async syncInOrder() {
      placed();
      return { done: Promise.resolve() };
    },
  };
  const server = serveSink(sink, () => {}, (u, e) => replies.push([u, e]));
  openServers.push(server);
  server.setFlag(true);
  // the worker only defers (its local fsync "never ends"): the peer's part alone must not reply
  await runWorkerOn(server, [{ kind: 'defer', path: 'wal', datasync: true, unique: 12 }]);
  await wasPlaced;
  await server.drained();
  await new Promise((r) => setImmediate(r));
  assert.equal(replies, []);
});

test('syncfs: the worker waits for the sink\'s onSyncfs; deferred, the reply waits for onSyncfs and the backing syncfs', async () => {
  const seen: string[] = [];
  let release!: () => void;
  const peerDurable = new Promise<void>((r) => (release = r));
  const wt = watch();
  const sink: AsyncChangeSink = {
    async onChange(c) { seen.push(c.op); },
    onSync() {},
    async onSyncfs() {
      seen.push('syncfs');
      setTimeout(release);
      await peerDurable;
      seen.push('syncfs durable');
      wt.bump();
    },
  };
  const blocking = await runWorker(sink, [{ kind: 'change', change: rename }, { kind: 'syncfs' }], 0, undefined, false, undefined, undefined, wt);
  assert.is(blocking[1]!.answersAtReturn, 1, 'onSyncfs blocked the worker until durable');
  assert.equal(seen, ['rename', 'syncfs', 'syncfs durable']);

  // deferred: the worker goes on; the next change waits for the sink's part only; the reply for both parts. The
  // backing syncfs ends only once the rename was handled: the rename did not wait for it.
  const events: string[] = [];
  let renamed!: () => void;
  const afterRename = new Promise<void>((r) => (renamed = r));
  const sink2: AsyncChangeSink = {
    async onChange(c) {
      events.push(c.op);
      if (c.op === 'rename') renamed();
    },
    onSync() {},
    async onSyncfs() {
      events.push('peer syncfs');
      await Promise.resolve();
      events.push('peer durable');
    },
  };
  let replied!: () => void;
  const reply = new Promise<void>((r) => (replied = r));
  const results = await runWorker(sink2, [{ kind: 'change', change: write }, { kind: 'deferSyncfs', unique: 9 }, { kind: 'change', change: rename }],
    0, undefined, false, (u, e) => { events.push(`reply ${u} ${e}`); replied(); },
    async () => {
      events.push('backing syncfs');
      await afterRename;
      events.push('backing durable');
    });
  assert.is(results[1]!.deferred, true);
  await reply;
  assert.equal(events, ['write', 'backing syncfs', 'peer syncfs', 'peer durable', 'rename', 'backing durable', 'reply 9 0']);
});

test('deferred syncfs: a failing sink or backing syncfs is answered EIO', async () => {
  const replies: [number, number][] = [];
  let both!: () => void;
  const answered = new Promise<void>((r) => (both = r));
  // the deferred replies come after runWorker returns: wait for both (the test's timeout bounds it)
  const onReply = (u: number, e: number) => {
    replies.push([u, e]);
    if (replies.length === 2) both();
  };
  const bad: AsyncChangeSink = { onChange() {}, onSync() {}, async onSyncfs() { throw new Error('peer gone'); } };
  await runWorker(bad, [{ kind: 'deferSyncfs', unique: 3 }], 0, undefined, false, onReply);
  const good: AsyncChangeSink = { onChange() {}, onSync() {}, async onSyncfs() {} };
  await runWorker(good, [{ kind: 'deferSyncfs', unique: 4 }], 0, undefined, false, onReply,
    () => Promise.reject(new Error('sync -f failed')));
  await answered;
  assert.equal(replies.sort((a, b) => a[0] - b[0]), [[3, -5], [4, -5]]);
});

test.run();
