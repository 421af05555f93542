// Worker thread used by sink-bridge.test.ts: makes the calls the test asks for through a BridgedSink and reports,
// for each, how long it blocked and whether it threw.
import { parentPort, workerData } from 'node:worker_threads';
import type { WorkerEnd } from '../../../src/replication/fuse/blocking-call.js';
import type { Change } from '../../../src/replication/fuse/sink.js';
import { BridgedSink } from '../../../src/replication/fuse/sink-bridge.js';

export interface BridgeWorkerData {
  end: WorkerEnd;
  timeoutMs: number;
  calls: ({ kind: 'change'; change: Change } | { kind: 'sync'; path: string; datasync: boolean }
    | { kind: 'defer'; path: string; datasync: boolean; unique: number } | { kind: 'local'; unique: number; errno: number } | { kind: 'syncfs' } | { kind: 'deferSyncfs'; unique: number })[];
}
export interface BridgeWorkerResult {
  blockedMs: number;
  error: string | null;
  /** for `defer`: whether the sink took over the reply */
  deferred?: boolean;
}

const d = workerData as BridgeWorkerData;
const sink = new BridgedSink(d.end, d.timeoutMs);
const results: BridgeWorkerResult[] = [];
for (const c of d.calls) {
  const t0 = performance.now();
  let error: string | null = null;
  let deferred: boolean | undefined;
  try {
    if (c.kind === 'change') sink.onChange(c.change);
    else if (c.kind === 'defer') deferred = sink.deferSync(c.path, c.datasync, c.unique);
    else if (c.kind === 'local') sink.syncedLocally(c.unique, c.errno);
    else if (c.kind === 'syncfs') sink.onSyncfs();
    else if (c.kind === 'deferSyncfs') deferred = sink.deferSyncfs(c.unique);
    else sink.onSync(c.path, c.datasync);
  } catch (err) {
    error = (err as Error).message;
  }
  results.push({ blockedMs: performance.now() - t0, error, ...(deferred !== undefined ? { deferred } : {}) });
}
d.end.port.close();
parentPort!.postMessage(results);
