import os from 'node:os';
import { BlockingCaller, type BlockingServer, serveBlockingCalls, type WorkerEnd } from './blocking-call.js';
import type { AsyncChangeSink, Change, ChangeSink } from './sink.js';

/**
 * Lets a ChangeSink that lives on the main thread (the replication layer: sockets, timers, promises) block the FUSE
 * worker synchronously, as the ChangeSink contract requires: the worker's onChange/onSync return only when the
 * main-thread sink's promise has settled, and throw if it rejected (the operation then fails with EIO).
 *
 * Write data is copied once into a fresh buffer that is transferred, not cloned, to the main thread; the main-thread
 * sink may keep it.
 */
type SinkCall =
  | { kind: 'change'; change: Change }
  /** with `unique`: deferred, the main thread replies once the sink's sync and the worker's local one (`local`) are done */
  | { kind: 'sync'; path: string; datasync: boolean; unique?: number }
  /** the worker's local fsync of deferred sync `unique` ended: 0 or a positive errno */
  | { kind: 'local'; unique: number; errno: number }
  /** with `unique`: deferred, the main thread also syncs the backing filesystem and replies */
  | { kind: 'syncfs'; unique?: number };

const EIO = os.constants.errno.EIO;

/** writes posted and not yet handled above which the worker waits again (bounds memory) */
export const MAX_POSTED_WRITES = 1024;

/**
 * Main thread: serve `sink` to a worker. Pass `workerEnd` to the worker; `close()` when the mount is gone.
 * `setFlag(true)` lets the worker POST writes (not wait for them): see BridgedSink. `syncBacking` makes the backing
 * filesystem durable (syncfs) for a deferred syncfs; it starts when the syncfs is handled (so after every change
 * made before it) and runs while the sink's onSyncfs does; the reply waits for both, later calls only for onSyncfs.
 */
export function serveSink(
  sink: AsyncChangeSink, onPostError: (e: unknown) => void = () => {},
  reply: (unique: number, errno: number) => void = () => {},
  syncBacking: () => Promise<void> = async () => {},
): BlockingServer {
  /** deferred syncs whose local fsync result has not come yet */
  const localWaits = new Map<number, (errno: number) => void>();
  return serveBlockingCalls<SinkCall, null>(async (call) => {
    if (call.kind === 'local') {
      // posts are handled in order, so the deferred sync that waits for this one was handled (and registered) first
      localWaits.get(call.unique)?.(call.errno);
      localWaits.delete(call.unique);
    } else if (call.kind === 'change') {
      await sink.onChange(call.change);
    } else if (call.kind === 'syncfs') {
      if (call.unique === undefined) {
        await sink.onSyncfs?.();
        return null;
      }
      // the backing syncfs runs meanwhile; later changes wait only for the sink's part
      const local = syncBacking();
      local.catch(() => {});
      let errno = 0;
      await Promise.resolve().then(() => sink.onSyncfs?.()).catch((e: unknown) => {
        onPostError(e);
        errno = -EIO;
      });
      const unique = call.unique;
      local.then(() => reply(unique, errno), (e: unknown) => {
        onPostError(e);
        reply(unique, -EIO);
      });
    } else if (call.unique !== undefined) {
      // a deferred fsync: placed in order now, while the worker's local fsync runs; the reply goes to the kernel
      // when both are done (the local errno first, then EIO if the sink's sync failed)
      const unique = call.unique;
      const local = new Promise<number>((resolve) => localWaits.set(unique, resolve));
      const placed = await Promise.resolve().then(() => sink.syncInOrder
        ? sink.syncInOrder(call.path, call.datasync)
        : { done: Promise.resolve(sink.onSync(call.path, call.datasync)) }).catch((e: unknown) => ({ done: Promise.reject(e) }));
      const remote = placed.done.then(() => 0, (e: unknown) => {
        onPostError(e);
        return EIO;
      });
      void Promise.all([local, remote]).then(([l, r]) => reply(unique, -(l || r)));
    } else {
      await sink.onSync(call.path, call.datasync);
    }
    return null;
  }, onPostError);
}

/**
 * Worker thread: a ChangeSink that forwards to the main thread and waits. `timeoutMs` 0 waits forever.
 * Streamed writes: while the main thread set the flag (its sink queues writes in order without waiting, the
 * replication layer's live mode), a data write is posted and the worker goes on at once, unless
 * MAX_POSTED_WRITES are still unhandled. The main thread handles posts and calls strictly in order, so a later
 * sync or change still comes after them. A deferred fsync is posted before the worker's local fsync, which then runs
 * while the main thread sends the sync to the peer; `syncedLocally` posts its result, and the reply waits for both. `startSync`/`finishSync` split onSync so that the local fsync runs while the
 * main thread works on the sync.
 */
export class BridgedSink implements ChangeSink {
  private readonly caller: BlockingCaller<SinkCall, null>;
  constructor(end: WorkerEnd, timeoutMs = 0) {
    this.caller = new BlockingCaller(end, timeoutMs);
  }
  onChange(change: Change): void {
    if (change.op === 'write' || change.op === 'setxattr') {
      const src = change.op === 'write' ? change.data : change.value;
      const copy = new Uint8Array(src.byteLength);
      copy.set(src);
      const c = change.op === 'write' ? { ...change, data: copy } : { ...change, value: copy };
      if (change.op === 'write' && this.caller.flag() && this.caller.posted() < MAX_POSTED_WRITES) {
        this.caller.post({ kind: 'change', change: c }, [copy.buffer]);
        return;
      }
      this.caller.call({ kind: 'change', change: c }, [copy.buffer]);
      return;
    }
    this.caller.call({ kind: 'change', change });
  }
  onSync(path: string, datasync: boolean): void {
    this.caller.call({ kind: 'sync', path, datasync });
  }
  deferSync(path: string, datasync: boolean, unique: number): boolean {
    if (!this.caller.flag() || this.caller.posted() >= MAX_POSTED_WRITES) return false;
    this.caller.post({ kind: 'sync', path, datasync, unique });
    return true;
  }
  syncedLocally(unique: number, errno: number): void {
    this.caller.post({ kind: 'local', unique, errno });
  }
  onSyncfs(): void {
    this.caller.call({ kind: 'syncfs' });
  }
  /** Always deferred: the main thread syncs the backing filesystem itself and replies (the worker has no syncfs). */
  deferSyncfs(unique: number): boolean {
    this.caller.post({ kind: 'syncfs', unique });
    return true;
  }
  startSync(path: string, datasync: boolean): number {
    return this.caller.begin({ kind: 'sync', path, datasync });
  }
  finishSync(token: unknown): void {
    this.caller.wait(token as number);
  }
}
