// The worker thread of tree-walk.ts (workerLister): lists one manifest page per message, with blocking I/O off the
// caller's event loop, and hands the encoded page back (its buffer transferred, not copied).
import { parentPort } from 'node:worker_threads';
import { walkPageSync, type PageRequest } from './tree-walk.js';

parentPort!.on('message', ({ id, r }: { id: number; r: PageRequest }) => {
  try {
    const p = walkPageSync(r);
    const data = new Uint8Array(p.data.buffer, p.data.byteOffset, p.data.byteLength);
    parentPort!.postMessage({ id, ok: true, data, count: p.count, next: p.next }, p.data.byteOffset === 0 && p.data.byteLength === p.data.buffer.byteLength ? [p.data.buffer as ArrayBuffer] : []);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    parentPort!.postMessage({ id, ok: false, message: err.message, ...(typeof err.code === 'string' ? { code: err.code } : {}) });
  }
});
