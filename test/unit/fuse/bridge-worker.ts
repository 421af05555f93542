// Worker thread used by sink-bridge.test.ts: makes the calls the test asks for through a BridgedSink and reports,
// for each, whether it threw, and what the test's shared counter read when it returned. It
// posts { returned: i } as each call returns, then the results.
import { parentPort, workerData } from 'node:worker_threads';
import type { WorkerEnd } from '../../../src/replication/fuse/blocking-call.js';
import type { Change } from '../../../src/replication/fuse/sink.js';
import { BridgedSink } from '../../../src/replication/fuse/sink-bridge.js';

export interface BridgeWorkerData {
  end: WorkerEnd;
  timeoutMs: number;
  /** one Int32 the test's sink bumps (Atomics.add) when it answers or releases a call: read at each call's return */
  answers?: SharedArrayBuffer;
  calls: ({ kind: 'change'; change: Change } | { kind: 'sync'; path: string; datasync: boolean }
    | { kind: 'defer'; path: string; datasync: boolean; unique: number } | { kind: 'local'; unique: number; errno: number } | { kind: 'syncfs' } | { kind: 'deferSyncfs'; unique: number })[];
}
export interface BridgeWorkerResult {
  error: string | null;
  /** for `defer`: whether the sink took over the reply */
  deferred?: boolean;
  /** the `answers` counter when the call returned (0 without it): what the call waited for, without timing it */
  answersAtReturn: number;
}

const d = workerData as BridgeWorkerData;
const sink = new BridgedSink(d.end, d.timeoutMs);
const answers = d.answers ? new Int32Array(d.answers) : null;
const results: BridgeWorkerResult[] = [];
for (const [i, c] of d.calls.entries()) {
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
  const answersAtReturn = answers ? Atomics.load(answers, 0) : 0;
  results.push({ error, ...(deferred !== undefined ? { deferred } : {}), answersAtReturn });
  parentPort!.postMessage({ returned: i });
}
d.end.port.close();
parentPort!.postMessage(results);
