// Worker thread for replicator-large-tree.test.ts: an ALONE primary (FileReplicator, recording) with its replication
// listener on 127.0.0.1, in a thread of its own because the layout module allows one holder of a replicated dir per
// module instance (the SECOND runs in the test's thread with the same dir). Messages: → {port} once serving;
// ← 'stop' → leaves the primary role, closes the listener, → {stopped, logs}.
import { parentPort, workerData } from 'node:worker_threads';
import { listenChannels } from '../../src/replication/stream/channel.js';
import { testReplicator } from './replicator-fixture.js';

const d = workerData as { base: string; key: Uint8Array; gen: string };
const key = Buffer.from(d.key);
const logs: string[] = [];
const prim = testReplicator({ base: d.base, self: 'n1', peer: 'n2', port: 1, key, logs });
const listener = await listenChannels({
  host: '127.0.0.1', port: 0, self: 'n1', allowedPeers: [{ name: 'n2', addr: '127.0.0.1' }], modules: ['db'], key,
  onChannel: (ch) => prim.accept(ch),
});
await prim.setRole('primary', { gen: d.gen, awaitPeer: false, recordBase: '1@n1' });
parentPort!.postMessage({ port: listener.port });
parentPort!.on('message', async (m) => {
  if (m !== 'stop') return;
  await prim.setRole('off').catch((e: Error) => logs.push(`leaving: ${e.message}`));
  await listener.close();
  parentPort!.postMessage({ stopped: true, logs });
  parentPort!.close();
});
