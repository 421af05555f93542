import fs from 'node:fs';

/**
 * Write-behind for the backing store: the FUSE worker asks a helper thread to fdatasync a backing file it has
 * written a lot to, so the backing store's disk writeback overlaps with the rest of a large write instead of
 * waiting for the application's fsync. Without it ext4 starts writeback only at vm.dirty_background_* or after 30 s,
 * so an fsync after a large sequential write first pushes everything through the FUSE server and only then to disk.
 *
 * Contract:
 * - It changes durability only upwards (an fdatasync nobody asked for) and never reports anything to the ChangeSink.
 * - `request(fd)` never blocks: it drops the request when the fd is already waiting or the queue is full.
 * - The helper only ever syncs an fd the worker still has open: the worker calls `cancel(fd)` before it closes a
 *   backing fd, which removes it from the queue and waits for an fdatasync of it already under way. So the helper
 *   never touches a reused fd number, and never the FUSE mount (only backing-store fds).
 * - Errors are not lost: Linux reports a writeback error once per open file description, and the helper syncs the
 *   worker's own description, so an fdatasync error is kept here and `failed(fd)` makes the next fsync of that fd
 *   fail (EIO) in the worker. If more than SLOTS fds failed at once, every fd counts as failed until the worker
 *   has reported it once.
 * - The queue is a SharedArrayBuffer of Int32: [HEAD, TAIL, STOP, CURRENT, OVERFLOW, ring of SLOTS fds, SLOTS failed
 *   fds]; -1 is an empty or cancelled entry, and "none" in CURRENT. One producer (the FUSE worker), one consumer
 *   (the helper).
 */
const SLOTS = 16;
const HEAD = 0;
const TAIL = 1;
const STOP = 2;
const CURRENT = 3;
const OVERFLOW = 4;
const RING = 5;
const FAILED = RING + SLOTS;
const NONE = -1;

/** A new, empty queue, shared by FuseServer (stop), the FUSE worker (WriteBehind) and the helper (runWriteBehind). */
export function writeBehindQueue(): SharedArrayBuffer {
  const sab = new SharedArrayBuffer((FAILED + SLOTS) * 4);
  const q = new Int32Array(sab);
  q[CURRENT] = NONE;
  q.fill(NONE, FAILED);
  return sab;
}

/** FUSE worker side. */
export class WriteBehind {
  private readonly q: Int32Array;
  constructor(sab: SharedArrayBuffer) {
    this.q = new Int32Array(sab);
  }

  request(fd: number): void {
    const q = this.q;
    const head = Atomics.load(q, HEAD);
    const tail = Atomics.load(q, TAIL);
    if (head - tail >= SLOTS) return;
    for (let i = tail; i < head; i++) if (Atomics.load(q, RING + (i % SLOTS)) === fd) return;
    Atomics.store(q, RING + (head % SLOTS), fd);
    Atomics.store(q, HEAD, head + 1);
    Atomics.notify(q, HEAD);
  }

  /** `fd` is about to be closed: forget it (and any error kept for it), and wait until the helper is not syncing it. */
  cancel(fd: number): void {
    const q = this.q;
    const head = Atomics.load(q, HEAD);
    for (let i = Atomics.load(q, TAIL); i < head; i++) Atomics.compareExchange(q, RING + (i % SLOTS), fd, NONE);
    while (Atomics.load(q, CURRENT) === fd) Atomics.wait(q, CURRENT, fd, 1000);
    this.failed(fd);
  }

  /** Did an fdatasync of `fd` fail since the last call? (Then the caller's fsync must fail.) Clears the record. */
  failed(fd: number): boolean {
    const q = this.q;
    let failed = Atomics.compareExchange(q, OVERFLOW, 1, 0) === 1;
    for (let i = FAILED; i < FAILED + SLOTS; i++) if (Atomics.compareExchange(q, i, fd, NONE) === fd) failed = true;
    return failed;
  }
}

/**
 * Helper thread side (write-behind-worker.ts): fdatasync queued fds until `stopWriteBehind`. An fd is published in
 * CURRENT before it is taken off the ring and checked again after, so a `cancel` either removes it first or waits.
 */
export function runWriteBehind(sab: SharedArrayBuffer): void {
  const q = new Int32Array(sab);
  for (;;) {
    if (Atomics.load(q, STOP) === 1) return;
    const tail = Atomics.load(q, TAIL);
    const head = Atomics.load(q, HEAD);
    if (tail === head) {
      Atomics.wait(q, HEAD, head);
      continue;
    }
    const slot = RING + (tail % SLOTS);
    const fd = Atomics.load(q, slot);
    Atomics.store(q, CURRENT, fd);
    const still = Atomics.load(q, slot) === fd && fd !== NONE;
    Atomics.store(q, TAIL, tail + 1);
    if (still) {
      try {
        fs.fdatasyncSync(fd);
      } catch {
        keepFailure(q, fd);
      }
    }
    Atomics.store(q, CURRENT, NONE);
    Atomics.notify(q, CURRENT);
  }
}

function keepFailure(q: Int32Array, fd: number): void {
  for (let i = FAILED; i < FAILED + SLOTS; i++) {
    const v = Atomics.compareExchange(q, i, NONE, fd);
    if (v === NONE || v === fd) return;
  }
  Atomics.store(q, OVERFLOW, 1);
}

/** Main thread: ask the helper to stop after its current fdatasync. */
export function stopWriteBehind(sab: SharedArrayBuffer): void {
  const q = new Int32Array(sab);
  Atomics.store(q, STOP, 1);
  Atomics.notify(q, HEAD);
}

/** Main thread: the helper thread has exited (even abnormally): a worker waiting in `cancel` must not wait for it. */
export function writeBehindGone(sab: SharedArrayBuffer): void {
  const q = new Int32Array(sab);
  Atomics.store(q, STOP, 1);
  Atomics.store(q, CURRENT, NONE);
  Atomics.notify(q, CURRENT);
}
