import fs from 'node:fs';
import type { NotReplicated } from '../../config/types.js';
import { Worker } from 'node:worker_threads';
import { run } from '../../platform/exec.js';
import type { BlockingServer } from './blocking-call.js';
import { Stat, STAT_SLOTS } from './dispatch.js';
import { FreezeControl, freezeGateBuffer } from './freeze-gate.js';
import { serveHostCalls } from './host-calls.js';
import { encodeNotifyRetrieve, NotifyRetrieveOut, OutHeader, writeOutHeader } from './protocol.js';
import type { AsyncChangeSink } from './sink.js';
import { noopSink } from './sink.js';
import { serveSink } from './sink-bridge.js';
import type { WorkerConfig, WorkerMessage } from './worker.js';
import { stopWriteBehind, writeBehindGone, writeBehindQueue } from './write-behind.js';
import type { WriteBehindWorkerData } from './write-behind-worker.js';

/**
 * Main-thread control of the FUSE worker: starts it on an already mounted /dev/fuse fd, relays its log lines,
 * serves the ChangeSink and host-call channels it blocks on, and reads its counters.
 *
 * Contract:
 * - `ready` resolves when the kernel's INIT has been answered (with the negotiated protocol), and rejects if the
 *   worker stops first.
 * - `stopped` resolves with the worker's reason ("unmounted", "aborted", an error) once the worker has exited. The
 *   worker stops by itself when the mount goes away; `release()` frees a worker blocked in a sink or host call
 *   (that call then fails with EIO), and `terminate()` is the last resort.
 * - The main thread must never do synchronous I/O on the mount (the worker could be waiting for it).
 * - `freeze()` / `thaw()` close and open the freeze gate (freeze-gate.ts) for mutating requests; the gate opens for
 *   good (`closeGate()`, and by itself when the worker exits), so a stopping server never keeps requests held.
 * - With `writeBehindBytes`, a second thread (write-behind-worker.ts) fdatasyncs the backing files the worker hands
 *   it; it is asked to stop when the worker exits, and `terminate()` ends it too.
 */
export interface FuseServerOptions {
  fd: number;
  dirfd: number;
  maxWrite: number;
  initFlags: number;
  maxBackground?: number;
  congestionThreshold?: number;
  /** kernel cache timeouts in seconds (default 1) */
  entryTimeout?: number;
  attrTimeout?: number;
  /** a main-thread sink; absent or noopSink: no sink at all (nothing crosses threads) */
  sink?: AsyncChangeSink;
  /** give up waiting for the sink after this long and fail the operation with EIO; 0 = wait forever */
  sinkTimeoutMs?: number;
  /** write-behind threshold in bytes (write-behind.ts); 0 or absent: none */
  writeBehindBytes?: number;
  /** the activity log (activity-log.ts): its directory and epoch counter; absent: none */
  activity?: { dir: string; epoch: SharedArrayBuffer };
  /** `<notreplicated>` rules: renames across them fail with EXDEV */
  notReplicated?: NotReplicated[];
  /** where the mount is: a thaw may statfs it from a child process to wake the worker (`wake`) */
  mountpoint?: string;
  log: (msg: string) => void;
}

export interface FuseReady {
  kernelMinor: number;
  minor: number;
  flags: number;
  maxWrite: number;
  maxPages: number;
}

export interface FuseStats {
  requests: number;
  errors: number;
  reads: number;
  writes: number;
  bytesRead: number;
  bytesWritten: number;
  fsyncs: number;
  inodes: number;
  openFiles: number;
  openDirs: number;
  writeBehinds: number;
  /** freeze() calls that closed the freeze gate */
  freezes: number;
  /** mutating requests waiting at the freeze gate now */
  gateHeld: number;
  /** mutating requests that have waited at the freeze gate, their total and longest wait (ms) */
  gateWaits: number;
  gateWaitMs: number;
  gateWaitMaxMs: number;
}

/** notify_unique of the freeze gate's wake-up; any value but 0 (the kernel's own uniques are even). */
const WAKE_UNIQUE = 0x5741_4b45;

export class FuseServer {
  readonly ready: Promise<FuseReady>;
  readonly stopped: Promise<string>;
  private readonly worker: Worker;
  private readonly flusher: Worker | null = null;
  private readonly channels: BlockingServer[] = [];
  private readonly sinkServer: BlockingServer | null;
  private readonly counters: Float64Array;
  private readonly gate: FreezeControl;
  private readonly wakeMsg = Buffer.alloc(OutHeader.size + NotifyRetrieveOut.size);
  private exited = false;

  constructor(private readonly o: FuseServerOptions) {
    const statsSab = new SharedArrayBuffer(STAT_SLOTS * 8);
    this.counters = new Float64Array(statsSab);
    const backing = `/proc/${process.pid}/fd/${o.dirfd}`;
    const sink = o.sink && o.sink !== noopSink
      ? serveSink(o.sink, (e) => o.log(`change sink failed on a streamed change: ${e instanceof Error ? e.message : String(e)}`),
        (unique, error) => this.replyLater(unique, error),
        () => run('sync', ['-f', '--', backing], { timeoutMs: 600_000 }).then(() => {})) : null;
    this.sinkServer = sink;
    const host = serveHostCalls();
    if (sink) this.channels.push(sink);
    this.channels.push(host);
    const gateSab = freezeGateBuffer();
    this.gate = new FreezeControl(gateSab, (nodeid) => this.wake(nodeid));
    const cfg: WorkerConfig = {
      tandemFuseWorker: true,
      fd: o.fd,
      dirfd: o.dirfd,
      maxWrite: o.maxWrite,
      initFlags: o.initFlags,
      maxBackground: o.maxBackground ?? 0,
      congestionThreshold: o.congestionThreshold ?? 0,
      entryTimeout: o.entryTimeout ?? 1,
      attrTimeout: o.attrTimeout ?? 1,
      sink: sink?.workerEnd ?? null,
      sinkTimeoutMs: o.sinkTimeoutMs ?? 0,
      notReplicated: o.notReplicated ?? [],
      // every file keeps an absolute path on the mount within PATH_MAX (PATH_MAX - 1 bytes, NUL aside)
      maxPathBytes: o.mountpoint ? 4094 - Buffer.byteLength(o.mountpoint) : 4095,
      host: host.workerEnd,
      stats: statsSab,
      gate: gateSab,
      writeBehind: null,
      activity: o.activity ?? null,
    };
    const wbQueue = o.writeBehindBytes ? writeBehindQueue() : null;
    if (wbQueue) {
      cfg.writeBehind = { queue: wbQueue, bytes: o.writeBehindBytes! };
      const workerData: WriteBehindWorkerData = { tandemWriteBehind: wbQueue };
      this.flusher = new Worker(new URL('./write-behind-worker.js', import.meta.url), { workerData });
      this.flusher.on('error', (err) => o.log(`write-behind thread failed: ${err.message}`));
      this.flusher.on('exit', () => writeBehindGone(wbQueue));
    }
    this.worker = new Worker(new URL('./worker.js', import.meta.url), {
      workerData: cfg,
      transferList: [...(sink ? [sink.workerEnd.port] : []), host.workerEnd.port],
    });
    let readyResolve!: (r: FuseReady) => void;
    let readyReject!: (e: Error) => void;
    this.ready = new Promise((res, rej) => { readyResolve = res; readyReject = rej; });
    this.ready.catch(() => {});
    let reason = 'worker exited';
    this.stopped = new Promise((resolve) => {
      this.worker.on('message', (m: WorkerMessage) => {
        if (m.type === 'log') o.log(m.msg);
        else if (m.type === 'ready') readyResolve(m);
        else if (m.type === 'stopped') reason = m.reason;
      });
      this.worker.on('error', (err) => { reason = `worker error: ${err.stack ?? err.message}`; });
      this.worker.on('exit', () => {
        this.exited = true;
        this.gate.close();
        if (wbQueue) stopWriteBehind(wbQueue);
        this.release();
        readyReject(new Error(`FUSE worker stopped before INIT: ${reason}`));
        resolve(reason);
      });
    });
  }

  get running(): boolean {
    return !this.exited;
  }

  stats(): FuseStats {
    const c = this.counters;
    return {
      requests: c[Stat.requests]!, errors: c[Stat.errors]!, reads: c[Stat.reads]!, writes: c[Stat.writes]!,
      bytesRead: c[Stat.bytesRead]!, bytesWritten: c[Stat.bytesWritten]!, fsyncs: c[Stat.fsyncs]!,
      inodes: c[Stat.inodes]!, openFiles: c[Stat.openFiles]!, openDirs: c[Stat.openDirs]!,
      writeBehinds: c[Stat.writeBehinds]!, freezes: this.gate.freezes, gateHeld: this.gate.held,
      gateWaits: c[Stat.gateWaits]!, gateWaitMs: c[Stat.gateWaitMs]!, gateWaitMaxMs: c[Stat.gateWaitMaxMs]!,
    };
  }

  /** Closes the freeze gate; see FreezeControl.freeze. */
  freeze(): Promise<void> {
    return this.gate.freeze();
  }

  thaw(): void {
    this.gate.thaw();
  }

  get frozen(): boolean {
    return this.gate.isFrozen;
  }

  /** Opens the freeze gate for good (the mount is going): held requests run, freeze() resolves at once. */
  closeGate(): void {
    this.gate.close();
  }

  /**
   * Makes a request reach the worker blocked in read(2) of /dev/fuse, without blocking this thread: a
   * FUSE_NOTIFY_RETRIEVE of 0 bytes of `nodeid` (a notification the kernel handles at once, answered by a
   * NOTIFY_REPLY request; recent kernels accept it for regular files only), else, when there is no such file or the
   * kernel refused, a statfs of the mount in a child process (STATFS always reaches the server).
   */
  private wake(nodeid: number): void {
    if (this.exited) return;
    if (nodeid > 0) {
      encodeNotifyRetrieve(this.wakeMsg, { notifyUnique: WAKE_UNIQUE, nodeid, offset: 0, size: 0 });
      try {
        fs.writeSync(this.o.fd, this.wakeMsg);
        return;
      } catch {
        // the inode is gone already (its request ran): fall back
      }
    }
    const mnt = this.o.mountpoint;
    if (!mnt) {
      this.o.log('cannot wake the FUSE worker after a thaw: no mount point known');
      return;
    }
    void run('stat', ['-f', '--', mnt], { reject: false, timeoutMs: 60_000 }).then(
      (r) => { if (r.code !== 0 && !this.exited) this.o.log(`waking the FUSE worker with stat -f ${mnt} failed: ${r.stderr.trim()}`); },
      (err: Error) => this.o.log(`waking the FUSE worker with stat -f ${mnt} failed: ${err.message}`),
    );
  }

  /** The reply of a deferred fsync or syncfs, written to /dev/fuse from this thread (a closed connection is ignored). */
  private replyLater(unique: number, error: number): void {
    const b = Buffer.alloc(OutHeader.size);
    writeOutHeader(b, unique, error, OutHeader.size);
    fs.write(this.o.fd, b, 0, b.length, null, () => {});
  }

  /** Lets the worker post data writes to the sink without waiting (see sink-bridge.ts). */
  streamWrites(on: boolean): void {
    this.sinkServer?.setFlag(on);
  }

  /** Resolves once every write posted so far has been handled by the sink. */
  sinkDrained(): Promise<void> {
    return this.sinkServer?.drained() ?? Promise.resolve();
  }

  /** Closes the sink and host-call channels: a worker blocked in one is released (the call fails). */
  release(): void {
    for (const c of this.channels) c.close();
  }

  async terminate(): Promise<void> {
    await this.flusher?.terminate();
    await this.worker.terminate();
  }
}
