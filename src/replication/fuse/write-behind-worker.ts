import { parentPort, workerData } from 'node:worker_threads';
import { runWriteBehind } from './write-behind.js';

/** Entry of the write-behind helper thread (write-behind.ts); started by FuseServer with the queue as workerData. */
export interface WriteBehindWorkerData {
  tandemWriteBehind: SharedArrayBuffer;
}

const data = workerData as Partial<WriteBehindWorkerData> | undefined;
if (parentPort && data?.tandemWriteBehind) runWriteBehind(data.tandemWriteBehind);
