// SecondaryStream.traffic() (src/replication/files/secondary.ts), what replication.traffic and the
// tandem_module_replication_* metrics show on a SECOND: counts add up over successive live streams (a reattach
// after a swap or a peer restart opens a new one), the backlog is the running stream's only.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { realClock } from '../../../src/platform/clock/real.js';
import type { CrashMarkers } from '../../../src/replication/files/crash-markers.js';
import { SecondaryStream } from '../../../src/replication/files/secondary.js';
import { createSender } from '../../../src/replication/stream/sender.js';
import { channelPair } from '../memory-channel.js';
import { rmrf, tmpDir, until } from '../stream/helpers.js';

const D = '/srv/app/data';

test('traffic adds up the received changes and bytes of every live stream; nothing before the first', async () => {
  const copy = await tmpDir('copy');
  const markers = { isDirty: async () => true, markDirty: async () => {}, clearDirty: async () => {}, appliedActivity: () => [] } as unknown as CrashMarkers;
  const log = { info: () => {}, warn: () => {}, error: () => {} };
  const s = new SecondaryStream({
    module: 'db', peer: 'node1', dirs: [{ dir: D, mode: 'read_write', notreplicated: [] }],
    rfs: { async: 'none', syncdeltaMs: 0, replicated: [] } as never, clock: realClock, log, markers,
    liveness: { heartbeatMs: 1000, deadMs: 5000 }, connect: () => Promise.reject(new Error('not used')), copyBehind: () => {},
  });
  try {
    assert.equal(s.traffic(), { bytesSent: 0, bytesReceived: 0, changes: 0, backlog: 0, backlogBytes: 0 });
    s.enter([copy]);
    const channels: ReturnType<typeof channelPair>['b'][] = [];
    const wire = () => channels.reduce((w, c) => ({ sent: w.sent + c.stats().bytesSent, received: w.received + c.stats().bytesReceived }), { sent: 0, received: 0 });
    for (const [i, n] of [[1, 2], [2, 3]] as const) {
      const { a, b } = channelPair({ module: 'db' });
      const sender = createSender({ channel: a, module: 'db', generation: `${i}@node1`, mode: 'none', dirs: [D] });
      channels.push(b);
      const started = s.start(b, `${i}@node1`);
      for (let k = 0; k < n; k++) await sender.replicate({ dir: D, op: 'create', path: `f${i}-${k}`, mode: 0o644 });
      await started;
      const t = s.traffic();
      const w = wire();
      assert.is(t.changes, i === 1 ? 2 : 5, `changes after stream ${i}`);
      assert.is(t.bytesReceived, w.received, `bytes received after stream ${i} = the channels' own counts`);
      assert.is(t.bytesSent, w.sent, 'acks');
      assert.ok(t.bytesReceived > 0 && t.bytesSent > 0);
      assert.is(t.backlog, 0, 'every change applied (acknowledged)');
      a.close(new Error('peer lost'));
      await until(`stream ${i} ended`, () => s.liveGen === null);
    }
    await s.leave();
    assert.is(s.traffic().changes, 5, 'counts survive the end of the streams');
    assert.is(s.traffic().bytesReceived, wire().received);
  } finally {
    await rmrf(copy);
  }
});

test.run();
