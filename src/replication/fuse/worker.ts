import fs from 'node:fs';
import type { NotReplicated } from '../../config/types.js';
import { compileFilter } from '../stream/paths.js';
import { parentPort, workerData } from 'node:worker_threads';
import type { WorkerEnd } from './blocking-call.js';
import { Dispatcher, mutates, pinnedFile, Stat } from './dispatch.js';
import { FreezeGate } from './freeze-gate.js';
import { HostCalls } from './host-calls.js';
import { Passthrough, type WriteBehindHook } from './passthrough.js';
import { ActivityLogWriter } from './activity-log.js';
import { FUSE_MIN_READ_BUFFER, OutHeader } from './protocol.js';
import { BridgedSink } from './sink-bridge.js';
import { WriteBehind } from './write-behind.js';
import { readRequest } from './read-request.js';

/**
 * The FUSE worker thread: loops on a blocking read(2) of /dev/fuse, answers each request with one write(2), and
 * owns all filesystem state (inode table, handles). Synchronous fs calls here are on the backing store only, never
 * on the mount. It talks to the main thread only through postMessage (logs, ready, stopped), the shared stats
 * array, and the two blocking channels (ChangeSink, host calls).
 *
 * Loop contract: ENOENT from read (the request was interrupted before we took it), EINTR and EAGAIN are retried;
 * ENODEV (unmounted) and ECONNABORTED (aborted through fusectl) end the loop. A reply write failing with ENOENT
 * (the kernel no longer waits for that request) is ignored. Mutating requests pass the freeze gate
 * (freeze-gate.ts): while it is closed they are held in arrival order and the loop goes on with the others; held
 * requests run, oldest first, as soon as a request (any, or the gate's wake-up) is read with the gate open.
 *
 * One worker serializes every request. Several readers of the same fd would be allowed by the kernel, but measured
 * on 2 vCPUs (a throw-away prototype: one thread reads /dev/fuse, a second does the WRITE payload and its reply)
 * it did not raise sequential throughput and cut 4 KiB+fsync throughput by 25-40 % (one more cross-thread wake-up
 * per write): a single writer has one request in flight in write-through mode, and the two CPUs are already shared
 * by the application's copy, the worker's copies and the kernel's writeback. The state stays in this one thread.
 */
export interface WorkerConfig {
  tandemFuseWorker: true;
  fd: number;
  dirfd: number;
  maxWrite: number;
  initFlags: number;
  maxBackground: number;
  congestionThreshold: number;
  entryTimeout: number;
  attrTimeout: number;
  sink: WorkerEnd | null;
  sinkTimeoutMs: number;
  /** `<notreplicated>` rules of the directory (renames across them fail with EXDEV) */
  notReplicated: NotReplicated[];
  /** the longest path accepted below the mount point, in bytes */
  maxPathBytes: number;
  host: WorkerEnd | null;
  stats: SharedArrayBuffer;
  /** the freeze gate's shared state (freeze-gate.ts) */
  gate: SharedArrayBuffer;
  /** write-behind queue (write-behind.ts) and the byte count that triggers a request; null: none */
  writeBehind: { queue: SharedArrayBuffer; bytes: number } | null;
  /** the activity log's directory (on the node's disk, never the mount) and epoch counter; null: none */
  activity: { dir: string; epoch: SharedArrayBuffer } | null;
}

export type WorkerMessage =
  | { type: 'log'; msg: string }
  | { type: 'ready'; kernelMinor: number; minor: number; flags: number; maxWrite: number; maxPages: number }
  | { type: 'stopped'; reason: string };

function writeBehind(queue: SharedArrayBuffer, bytes: number, stats: Float64Array): WriteBehindHook {
  const q = new WriteBehind(queue);
  return {
    bytes,
    request: (fd) => {
      q.request(fd);
      stats[Stat.writeBehinds]!++;
    },
    cancel: (fd) => q.cancel(fd),
    failed: (fd) => q.failed(fd),
  };
}

export function serve(cfg: WorkerConfig, post: (m: WorkerMessage) => void): string {
  const log = (msg: string) => post({ type: 'log', msg });
  const stats = new Float64Array(cfg.stats);
  const fs_ = new Passthrough({
    root: `/proc/self/fd/${cfg.dirfd}`,
    hostRoot: `/proc/${process.pid}/fd/${cfg.dirfd}`,
    hostFd: (fd) => `/proc/${process.pid}/fd/${fd}`,
    maxPathBytes: cfg.maxPathBytes,
    sink: cfg.sink ? new BridgedSink(cfg.sink, cfg.sinkTimeoutMs) : null,
    host: cfg.host ? new HostCalls(cfg.host) : null,
    entryTimeout: cfg.entryTimeout,
    attrTimeout: cfg.attrTimeout,
    log,
    writeBehind: cfg.writeBehind ? writeBehind(cfg.writeBehind.queue, cfg.writeBehind.bytes, stats) : null,
    activity: cfg.activity ? new ActivityLogWriter(cfg.activity.dir, cfg.activity.epoch) : null,
    excluded: cfg.notReplicated.length > 0 ? ((f) => (rel: string, isDir: boolean) => f.excluded(rel, isDir))(compileFilter(cfg.notReplicated)) : null,
  });
  const dispatcher = new Dispatcher(fs_, {
    init: { maxWrite: cfg.maxWrite, wantFlags: cfg.initFlags, maxBackground: cfg.maxBackground, congestionThreshold: cfg.congestionThreshold },
    log,
    stats,
    onInit: (out, k) => post({ type: 'ready', kernelMinor: k.minor, minor: out.minor, flags: out.flags, maxWrite: out.maxWrite, maxPages: out.maxPages }),
  });
  const gate = new FreezeGate(cfg.gate, (ms) => {
    stats[Stat.gateWaits]!++;
    stats[Stat.gateWaitMs]! += ms;
    if (ms > stats[Stat.gateWaitMaxMs]!) stats[Stat.gateWaitMaxMs] = ms;
  });
  const req = Buffer.allocUnsafe(Math.max(FUSE_MIN_READ_BUFFER, cfg.maxWrite + 4096));
  const out = Buffer.allocUnsafe(OutHeader.size + cfg.maxWrite + 4096);

  /** Handles one request and writes its reply; a reason to stop, or null. */
  const answer = (r: Buffer, n: number): string | null => {
    const len = dispatcher.handle(r, n, out);
    stats[Stat.inodes] = fs_.table.size;
    if (len > 0) {
      try {
        fs.writeSync(cfg.fd, out, 0, len);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENODEV') return 'unmounted';
        if (code === 'ECONNABORTED') return 'aborted';
        if (code !== 'ENOENT') return `write /dev/fuse failed: ${(err as Error).message}`;
      }
    }
    if (dispatcher.fatal) return dispatcher.fatal;
    if (dispatcher.destroyed) return 'destroyed';
    return null;
  };
  /** Runs held mutating requests, oldest first, until none is left or the gate closes again. */
  const drain = (): string | null => {
    for (let h = gate.next(); h; h = gate.next()) {
      const stop = answer(h.req, h.n);
      gate.leave();
      if (stop) return stop;
    }
    return null;
  };

  for (;;) {
    const n = readRequest(cfg.fd, req);
    if (typeof n === 'string') return n;
    let stop: string | null;
    if (gate.runnable && (stop = drain())) return stop;
    if (!mutates(req, n)) stop = answer(req, n);
    else if (gate.enter()) {
      stop = answer(req, n);
      gate.leave();
    } else {
      gate.hold(req, n, pinnedFile(req));
      stop = gate.runnable ? drain() : null; // thawed since enter(): thaw() may not have seen it held
    }
    if (stop) return stop;
  }
}

const cfg = workerData as WorkerConfig | undefined;
if (parentPort && cfg?.tandemFuseWorker) {
  const port = parentPort;
  let reason: string;
  try {
    reason = serve(cfg, (m) => port.postMessage(m));
  } catch (err) {
    reason = `worker crashed: ${err instanceof Error ? err.stack ?? err.message : String(err)}`;
  }
  cfg.sink?.port.close();
  cfg.host?.port.close();
  port.postMessage({ type: 'stopped', reason } satisfies WorkerMessage);
}
