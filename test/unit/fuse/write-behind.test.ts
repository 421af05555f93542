// The write-behind queue between the FUSE worker and its helper thread: requests never block, duplicates and
// overflow are dropped, and the helper fdatasyncs what it is given (a closed fd is harmless) until stopped.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { stopWriteBehind, WriteBehind, writeBehindQueue } from '../../../src/replication/fuse/write-behind.js';

const HEAD = 0;
const TAIL = 1;

test('request: queued once per fd until taken; dropped when 16 are waiting; never blocks', () => {
  const sab = writeBehindQueue();
  const q = new Int32Array(sab);
  const wb = new WriteBehind(sab);
  wb.request(7);
  wb.request(7);
  assert.is(Atomics.load(q, HEAD), 1, 'a duplicate of a waiting fd is dropped');
  for (let fd = 100; fd < 120; fd++) wb.request(fd);
  assert.is(Atomics.load(q, HEAD) - Atomics.load(q, TAIL), 16, 'full: the rest is dropped');
  Atomics.store(q, TAIL, 1); // the helper took fd 7
  wb.request(7);
  assert.is(Atomics.load(q, HEAD), 17, 'fd 7 may be queued again once taken');
});

test('cancel: removes a waiting fd and any failure kept for it; failed() reports a kept failure once', () => {
  const sab = writeBehindQueue();
  const q = new Int32Array(sab);
  const wb = new WriteBehind(sab);
  wb.request(5);
  wb.request(6);
  wb.cancel(5);
  assert.equal([q[5], q[6]], [-1, 6], 'ring entries (RING = 5)');
  q[5 + 16] = 6; // the helper kept a failure for fd 6
  assert.ok(wb.failed(6));
  assert.not.ok(wb.failed(6));
  q[4] = 1; // OVERFLOW: too many failures to keep apart
  assert.ok(wb.failed(42));
  assert.not.ok(wb.failed(42));
});

test('the helper thread syncs queued fds, keeps the failure of one it cannot sync, and stops when asked', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-wb-'));
  const sab = writeBehindQueue();
  const q = new Int32Array(sab);
  const worker = new Worker(new URL('../../../src/replication/fuse/write-behind-worker.js', import.meta.url), { workerData: { tandemWriteBehind: sab } });
  const exited = new Promise<number>((resolve) => worker.on('exit', resolve));
  try {
    const fd = fs.openSync(path.join(dir, 'f'), 'w');
    fs.writeSync(fd, Buffer.alloc(1 << 20, 1));
    const pipe = fs.openSync('/proc/self/fd/0', 'r'); // stdin: /dev/null or a pipe; fdatasync fails with EINVAL
    const wb = new WriteBehind(sab);
    wb.request(pipe);
    wb.request(fd);
    const deadline = Date.now() + 10_000;
    while ((Atomics.load(q, TAIL) < 2 || Atomics.load(q, 3) !== -1) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.is(Atomics.load(q, TAIL), 2, 'both taken');
    assert.ok(wb.failed(pipe), 'the failed fdatasync is kept for the worker');
    assert.not.ok(wb.failed(fd));
    wb.cancel(fd);
    fs.closeSync(fd);
    fs.closeSync(pipe);
  } finally {
    stopWriteBehind(sab);
    const timer = setTimeout(() => void worker.terminate(), 5000);
    assert.is(await exited, 0, 'stopped by itself');
    clearTimeout(timer);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
