import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Worker } from 'node:worker_threads';
import { serveSink } from '../../../src/replication/fuse/sink-bridge.js';
import type { AsyncChangeSink, Change } from '../../../src/replication/fuse/sink.js';
import { RecordingSink } from '../../../src/replication/fuse/sink.js';
import type { BridgeWorkerData, BridgeWorkerResult } from './bridge-worker.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function runWorker(
  sink: AsyncChangeSink, calls: BridgeWorkerData['calls'], timeoutMs = 0, onServer?: (close: () => void) => void, stream = false,
  reply?: (unique: number, errno: number) => void, syncBacking?: () => Promise<void>,
): Promise<BridgeWorkerResult[]> {
  const server = serveSink(sink, () => {}, reply, syncBacking);
  openServers.push(server);
  server.setFlag(stream);
  onServer?.(() => server.close());
  const data: BridgeWorkerData = { end: server.workerEnd, timeoutMs, calls };
  const w = new Worker(new URL('./bridge-worker.js', import.meta.url), { workerData: data, transferList: [server.workerEnd.port] });
  return new Promise((resolve, reject) => {
    w.once('message', (r: BridgeWorkerResult[]) => resolve(r));
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
    w.once('message', (r: BridgeWorkerResult[]) => resolve(r));
    w.once('error', reject);
  });
}
const openServers: { close(): void }[] = [];
test.after.each(() => {
  for (const s of openServers.splice(0)) s.close();
});

const write: Change = { op: 'write', path: 'dir/a.txt', offset: 4096, data: new Uint8Array([1, 2, 3]) };
const rename: Change = { op: 'rename', from: 'dir/a.txt', to: 'dir/b.txt', flags: 0 };

test('the worker stays blocked until the main-thread sink answers, and the main thread keeps running meanwhile', async () => {
  const rec = new RecordingSink();
  let ticks = 0;
  const timer = setInterval(() => ticks++, 10);
  const sink: AsyncChangeSink = {
    async onChange(c) {
      await sleep(150);
      rec.onChange(c);
    },
    async onSync(path, datasync) {
      await sleep(100);
      rec.onSync(path, datasync);
    },
  };
  const results = await runWorker(sink, [
    { kind: 'change', change: write },
    { kind: 'change', change: rename },
    { kind: 'sync', path: 'dir/b.txt', datasync: true },
  ]);
  clearInterval(timer);
  assert.equal(results.map((r) => r.error), [null, null, null]);
  assert.ok(results[0]!.blockedMs >= 140, `write blocked ${results[0]!.blockedMs} ms`);
  assert.ok(results[1]!.blockedMs >= 140, `rename blocked ${results[1]!.blockedMs} ms`);
  assert.ok(results[2]!.blockedMs >= 90, `sync blocked ${results[2]!.blockedMs} ms`);
  assert.ok(ticks >= 20, `main thread ticked ${ticks} times while the worker waited`);
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

// Calls are handled one after the other: the later call is answered once the slow handler finished (150 ms), within
// its own 100 ms timeout that started when the first call gave up.
test('with a timeout, an unanswered call fails and a later call still gets its own answer', async () => {
  let first = true;
  const seen: string[] = [];
  const sink: AsyncChangeSink = {
    async onChange(c) {
      seen.push(c.op);
      if (first) {
        first = false;
        await sleep(150);
      }
    },
    onSync() {},
  };
  const results = await runWorker(sink, [
    { kind: 'change', change: write },
    { kind: 'change', change: rename },
  ], 100);
  assert.match(results[0]!.error ?? '', /did not answer within 100 ms/);
  assert.ok(results[0]!.blockedMs >= 95 && results[0]!.blockedMs < 350, `${results[0]!.blockedMs}`);
  assert.is(results[1]!.error, null);
  assert.equal(seen, ['write', 'rename']);
});

test('closing the server releases a worker blocked on a sink that never answers', async () => {
  let close!: () => void;
  const sink: AsyncChangeSink = {
    onChange() {
      setTimeout(close, 100); // the worker is blocked on this call now
      return new Promise<void>(() => {});
    },
    onSync() {},
  };
  const results = await runWorker(sink, [{ kind: 'change', change: rename }], 0, (c) => { close = c; });
  assert.match(results[0]!.error ?? '', /closed/);
  assert.ok(results[0]!.blockedMs >= 90, `${results[0]!.blockedMs}`);
});

test('streamed writes: the worker does not wait for them, and the sink still sees every call in order', async () => {
  const seen: string[] = [];
  const sink: AsyncChangeSink = {
    async onChange(c) {
      await sleep(c.op === 'write' ? 30 : 0);
      seen.push(c.op === 'write' ? `write@${c.offset}` : c.op);
    },
    async onSync(p) {
      seen.push(`sync ${p}`);
    },
  };
  const w = (offset: number): BridgeWorkerData['calls'][number] => ({ kind: 'change', change: { ...write, offset } });
  const results = await runWorker(sink, [w(0), w(1), w(2), { kind: 'sync', path: 'dir/a.txt', datasync: true }, w(3), { kind: 'change', change: rename }], 0, undefined, true);
  assert.ok(results[0]!.blockedMs < 25 && results[1]!.blockedMs < 25, `writes did not wait: ${results.map((r) => r.blockedMs.toFixed(1)).join(' ')}`);
  assert.ok(results[3]!.blockedMs >= 60, 'the sync waited for the three writes before it');
  assert.equal(seen, ['write@0', 'write@1', 'write@2', 'sync dir/a.txt', 'write@3', 'rename']);
  assert.ok(results.every((r) => r.error === null));
});

test('without the flag, writes wait as any change', async () => {
  const sink: AsyncChangeSink = { async onChange() { await sleep(30); }, onSync() {} };
  const results = await runWorker(sink, [{ kind: 'change', change: write }], 0, undefined, false);
  assert.ok(results[0]!.blockedMs >= 25);
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
  const sink: AsyncChangeSink = {
    async onChange(c) { seen.push(c.op); },
    onSync() {},
    async onSyncfs() {
      seen.push('syncfs');
      setTimeout(release, 80);
      await peerDurable;
      seen.push('syncfs durable');
    },
  };
  const blocking = await runWorker(sink, [{ kind: 'change', change: rename }, { kind: 'syncfs' }]);
  assert.ok(blocking[1]!.blockedMs >= 60, `onSyncfs blocked the worker until durable: ${blocking[1]!.blockedMs} ms`);
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
