/**
 * The freeze gate: lets the main thread stop every mutating FUSE operation (dispatch.ts `mutates`) for a moment, so
 * the backing directory is quiescent (online reintegration copies the last delta, then switches the sink's mode),
 * while read-only operations go on being served.
 *
 * Contract:
 * - `FreezeControl.freeze()` (main thread) resolves once no mutating operation is between "started its change to
 *   the backing store" and "its reply was written to /dev/fuse" — an operation blocked in the sink or a host call
 *   counts, and is waited for — and from then on none starts until `thaw()`. It never blocks the main thread (the
 *   sink runs there): it waits with Atomics.waitAsync. Idempotent; it also resolves, without that guarantee, when
 *   `thaw()` or `close()` comes first.
 * - A mutating request that arrives while frozen is neither failed nor blocks the worker: the worker copies it into
 *   a FIFO and goes on reading /dev/fuse, so reads, lookups, getattr, readdir… are still answered. After `thaw()`
 *   the FIFO runs first, in arrival order, before any newer mutating request. Waiting requests are not interrupted
 *   (the application cannot be told EINTR while we hold them; a fatal signal waits for the thaw).
 * - The worker sleeps in a blocking read(2) of /dev/fuse, which no Atomics call can wake. When requests are waiting,
 *   `thaw()` calls `wake(nodeid)`, which must make some request reach the worker (FuseServer: a FUSE_NOTIFY_RETRIEVE
 *   of 0 bytes of that regular file, which the kernel answers with a NOTIFY_REPLY request; else a statfs of the
 *   mount from a child process). `nodeid` is a regular file the kernel cannot drop while a held request is on it
 *   (the target of a held WRITE, FSYNC, FALLOCATE or OPEN: `hold`'s `pinnedFile`), or 0 when no held request has one.
 * - The shared state is an Int32Array over a SharedArrayBuffer: [FROZEN, BUSY, WAITING, WAKE_NODE]. Both sides use the
 *   Dekker pattern (store own flag, then load the other's; JS atomics are sequentially consistent):
 *   worker: BUSY=1, load FROZEN (back out if set) / main: FROZEN=1, load BUSY (wait while set), so an operation
 *   either sees the freeze or is waited for; worker: WAITING=n, load FROZEN (run them if clear) / main: FROZEN=0,
 *   load WAITING (wake if set), so a waiting request is never forgotten.
 * - Not gated: the write-behind helper (write-behind.ts). It only fdatasyncs backing fds the worker has open, which
 *   changes durability, not content, and reports nothing to the sink; an fdatasync failure surfaces at the next
 *   FSYNC of that file, which is held like any other.
 * - Cost on the hot path, per mutating request: two atomic stores and two atomic loads (about 80 ns measured, with
 *   `mutates`); Atomics.notify only while a freeze is asked for.
 */
const FROZEN = 0;
const BUSY = 1;
const WAITING = 2;
const WAKE_NODE = 3;
const SLOTS = 4;

/** Atomics.waitAsync (Node ≥ 16; typed in TypeScript's es2024 lib, which this project does not load) */
type WaitAsync = (a: Int32Array, index: number, value: number, timeoutMs?: number) =>
  { async: false; value: 'not-equal' | 'timed-out' } | { async: true; value: Promise<'ok' | 'timed-out'> };
const waitAsync = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync;

/** A new, open gate, shared by FreezeControl (main thread) and FreezeGate (FUSE worker). */
export function freezeGateBuffer(): SharedArrayBuffer {
  return new SharedArrayBuffer(SLOTS * 4);
}

/** Main-thread side. `wake` makes the worker return from its read of /dev/fuse (see the contract); it must not block. */
export class FreezeControl {
  private readonly g: Int32Array;
  private frozen = false;
  private closed = false;
  private quiet: Promise<void> = Promise.resolve();
  private closings = 0;

  constructor(sab: SharedArrayBuffer, private readonly wake: (nodeid: number) => void) {
    this.g = new Int32Array(sab);
  }

  get isFrozen(): boolean {
    return this.frozen;
  }

  /** freeze() calls that closed the gate (repeats while frozen do not count) */
  get freezes(): number {
    return this.closings;
  }

  /** mutating requests the worker holds now */
  get held(): number {
    return Atomics.load(this.g, WAITING);
  }

  freeze(): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (!this.frozen) {
      this.frozen = true;
      this.closings++;
      Atomics.store(this.g, FROZEN, 1);
      this.quiet = this.untilQuiet();
    }
    return this.quiet;
  }

  thaw(): void {
    if (!this.frozen) return;
    this.frozen = false;
    Atomics.store(this.g, FROZEN, 0);
    Atomics.notify(this.g, BUSY); // a pending freeze() stops waiting
    if (Atomics.load(this.g, WAITING) > 0) this.wake(Atomics.load(this.g, WAKE_NODE));
  }

  /** The mount is going or the worker is gone: open the gate for good; freeze() resolves at once from now on. */
  close(): void {
    this.thaw();
    this.closed = true;
    Atomics.notify(this.g, BUSY);
  }

  private async untilQuiet(): Promise<void> {
    for (;;) {
      if (!this.frozen || this.closed) return;
      if (Atomics.load(this.g, BUSY) === 0) return;
      // The timeout only bounds how long a worker that died mid-operation is waited for before `closed` is seen.
      const w = waitAsync(this.g, BUSY, 1, 1000);
      if (w.async) await w.value;
    }
  }
}

export interface WaitingRequest {
  req: Buffer;
  n: number;
}

/**
 * Worker side (one thread). For each mutating request: `enter()`; when true, do it, write the reply, then `leave()`;
 * when false, `hold()` it, then check `runnable`. Whenever `runnable` is true, take held requests with `next()`
 * (which enters for them) and `leave()` after each reply. `waited(ms)` is told how long each held request waited.
 */
export class FreezeGate {
  private readonly g: Int32Array;
  private readonly held: { req: Buffer; n: number; since: number; pinnedFile: number }[] = [];

  constructor(sab: SharedArrayBuffer, private readonly waited: (ms: number) => void = () => {}) {
    this.g = new Int32Array(sab);
  }

  /** Held requests may run now (the gate is open). */
  get runnable(): boolean {
    return this.held.length > 0 && Atomics.load(this.g, FROZEN) === 0;
  }

  /** May a new mutating request start now? Not while frozen, nor while older ones are held (FIFO). */
  enter(): boolean {
    if (this.held.length > 0) return false;
    return this.tryEnter();
  }

  /** The mutating operation's reply was written (or it gave up): a waiting freeze() may resolve. */
  leave(): void {
    Atomics.store(this.g, BUSY, 0);
    if (Atomics.load(this.g, FROZEN) !== 0) Atomics.notify(this.g, BUSY);
  }

  /**
   * Keeps a copy of req[0, n) until the gate opens. `pinnedFile`: the nodeid of the regular file the request is on
   * when the kernel keeps that inode while the request waits (dispatch.ts `pinnedFile`), else 0.
   */
  hold(req: Buffer, n: number, pinnedFile: number): void {
    this.held.push({ req: Buffer.from(req.subarray(0, n)), n, since: performance.now(), pinnedFile });
    this.publish();
  }

  /** The oldest held request, entered (call `leave()` after its reply), or null if none or frozen. */
  next(): WaitingRequest | null {
    if (this.held.length === 0 || !this.tryEnter()) return null;
    const h = this.held.shift()!;
    this.publish();
    this.waited(performance.now() - h.since);
    return h;
  }

  /** WAKE_NODE before WAITING: thaw() reads WAITING, then WAKE_NODE. */
  private publish(): void {
    const pinned = this.held.find((h) => h.pinnedFile > 0 && h.pinnedFile <= 0x7fff_ffff)?.pinnedFile ?? 0;
    Atomics.store(this.g, WAKE_NODE, pinned);
    Atomics.store(this.g, WAITING, this.held.length);
  }

  private tryEnter(): boolean {
    if (Atomics.load(this.g, FROZEN) !== 0) return false;
    Atomics.store(this.g, BUSY, 1);
    if (Atomics.load(this.g, FROZEN) === 0) return true;
    this.leave();
    return false;
  }
}
