import fs from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { Dispatcher, Stat, STAT_SLOTS } from '../../replication/fuse/dispatch.js';
import { DEFAULT_INIT_FLAGS, FUSE_MIN_READ_BUFFER, OutHeader } from '../../replication/fuse/protocol.js';
import { LossyFs } from './handler.js';
import { LossyModel } from './model.js';
import { DiskStore } from './store-disk.js';
import { readRequest } from '../../replication/fuse/read-request.js';

/**
 * The lossy disk's FUSE thread: a blocking read(2) of /dev/fuse, one reply per request, the model and its store in
 * this thread only. Synchronous fs calls on the host's backing and staging directories only, never on the mount.
 *
 * It shares two arrays with the main thread: `stats` (LossyStat slots, refreshed after every request) and `control`
 * (Int32: [SYNC_WANTED]). When SYNC_WANTED has grown, a sync of everything runs before the next request, then
 * `synced` is posted; the main thread sends a STATFS through the mount to make that request come. Loop: ENOENT, EINTR and
 * EAGAIN from read are retried; ENODEV (unmounted) and ECONNABORTED (aborted) end it.
 */
export interface LossyWorkerConfig {
  tandemLossyWorker: true;
  fd: number;
  backing: string;
  staging: string;
  maxWrite: number;
  pendingLimitBytes: number;
  entryTimeout: number;
  attrTimeout: number;
  stats: SharedArrayBuffer;
  control: SharedArrayBuffer;
}

export type LossyWorkerMessage =
  | { type: 'log'; msg: string }
  | { type: 'ready'; minor: number; maxWrite: number }
  /** a sync of everything asked for through `control` is done, up to request number `seq` */
  | { type: 'synced'; seq: number }
  | { type: 'stopped'; reason: string };

/** Slots of the shared stats array (Float64). */
export const LossyStat = {
  pendingBytes: 0,
  pendingFiles: 1,
  writebacks: 2,
  writebackBytes: 3,
  fsyncs: 4,
  fdatasyncs: 5,
  dirSyncs: 6,
  syncAlls: 7,
  inodes: 8,
  requests: 9,
  errors: 10,
} as const;
export const LOSSY_STAT_SLOTS = 11;

export const SYNC_WANTED = 0;

export function serveLossy(cfg: LossyWorkerConfig, post: (m: LossyWorkerMessage) => void): string {
  const log = (msg: string) => post({ type: 'log', msg });
  const stats = new Float64Array(cfg.stats);
  const control = new Int32Array(cfg.control);
  const store = new DiskStore(cfg.backing, cfg.staging, log);
  const model = new LossyModel({ store, pendingLimitBytes: cfg.pendingLimitBytes });
  const lossy = new LossyFs({ model, store, entryTimeout: cfg.entryTimeout, attrTimeout: cfg.attrTimeout });
  const dstats = new Float64Array(STAT_SLOTS);
  const dispatcher = new Dispatcher(lossy, {
    init: { maxWrite: cfg.maxWrite, wantFlags: DEFAULT_INIT_FLAGS },
    log,
    stats: dstats,
    onInit: (out) => post({ type: 'ready', minor: out.minor, maxWrite: out.maxWrite }),
  });
  const req = Buffer.allocUnsafe(Math.max(FUSE_MIN_READ_BUFFER, cfg.maxWrite + 4096));
  const out = Buffer.allocUnsafe(OutHeader.size + cfg.maxWrite + 4096);
  let synced = 0;
  const publish = () => {
    const s = model.stats();
    stats[LossyStat.pendingBytes] = s.pendingBytes;
    stats[LossyStat.pendingFiles] = s.pendingFiles;
    stats[LossyStat.writebacks] = s.writebacks;
    stats[LossyStat.writebackBytes] = s.writebackBytes;
    stats[LossyStat.fsyncs] = s.fsyncs;
    stats[LossyStat.fdatasyncs] = s.fdatasyncs;
    stats[LossyStat.dirSyncs] = s.dirSyncs;
    stats[LossyStat.syncAlls] = s.syncAlls;
    stats[LossyStat.inodes] = s.inodes;
    stats[LossyStat.requests] = dstats[Stat.requests]!;
    stats[LossyStat.errors] = dstats[Stat.errors]!;
  };
  publish();
  try {
    for (;;) {
      const n = readRequest(cfg.fd, req);
      if (typeof n === 'string') return n;
      const wanted = Atomics.load(control, SYNC_WANTED);
      if (wanted !== synced) {
        try {
          model.syncAll();
        } catch (err) {
          log(`lossy disk: sync of everything failed: ${(err as Error).message}`);
        }
        publish();
        synced = wanted;
        post({ type: 'synced', seq: wanted });
      }
      const len = dispatcher.handle(req, n, out);
      publish();
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
    }
  } finally {
    store.close();
  }
}

const cfg = workerData as LossyWorkerConfig | undefined;
if (parentPort && cfg?.tandemLossyWorker) {
  const port = parentPort;
  let reason: string;
  try {
    reason = serveLossy(cfg, (m) => port.postMessage(m));
  } catch (err) {
    reason = `worker crashed: ${err instanceof Error ? err.stack ?? err.message : String(err)}`;
  }
  port.postMessage({ type: 'stopped', reason } satisfies LossyWorkerMessage);
}
