import { Worker } from 'node:worker_threads';
import type { BlockingServer } from './blocking-call.js';
import { Stat, STAT_SLOTS } from './dispatch.js';
import { serveHostCalls } from './host-calls.js';
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
}

export class FuseServer {
  readonly ready: Promise<FuseReady>;
  readonly stopped: Promise<string>;
  private readonly worker: Worker;
  private readonly flusher: Worker | null = null;
  private readonly channels: BlockingServer[] = [];
  private readonly counters: Float64Array;
  private exited = false;

  constructor(o: FuseServerOptions) {
    const statsSab = new SharedArrayBuffer(STAT_SLOTS * 8);
    this.counters = new Float64Array(statsSab);
    const sink = o.sink && o.sink !== noopSink ? serveSink(o.sink) : null;
    const host = serveHostCalls();
    if (sink) this.channels.push(sink);
    this.channels.push(host);
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
      host: host.workerEnd,
      stats: statsSab,
      writeBehind: null,
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
      writeBehinds: c[Stat.writeBehinds]!,
    };
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
