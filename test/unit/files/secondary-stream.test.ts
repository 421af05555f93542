// SecondaryStream (src/replication/files/secondary.ts) over an in-memory channel, with the crash markers observed:
// a live stream that ends by itself (the peer lost) marks the copy clean; `leave()` (the node changes layout, e.g.
// SECOND → ALONE) must wait for that, or the clean mark lands on the tree the next layout has just marked dirty.
import { promises as fsp } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { realClock } from '../../../src/platform/clock/real.js';
import type { CrashMarkers } from '../../../src/replication/files/crash-markers.js';
import { SecondaryStream } from '../../../src/replication/files/secondary.js';
import { createSender } from '../../../src/replication/stream/sender.js';
import { channelPair } from '../memory-channel.js';
import { rmrf, tmpDir, until } from '../stream/helpers.js';

const D = '/srv/app/data';

test('a stream that ended by itself: leave() returns only after the copy was marked clean, and a failing clean-up is logged, not thrown', async () => {
  for (const failing of [false, true]) {
    const copy = await tmpDir('copy');
    const state = await tmpDir('state');
    const events: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const markers = {
      isDirty: async () => true,
      markDirty: async () => void events.push('dirty'),
      clearDirty: async () => {
        events.push('clearing');
        await gate;
        if (failing) throw new Error('state disk gone');
        events.push('clean');
      },
      appliedActivity: () => [],
    } as unknown as CrashMarkers;
    const logs: string[] = [];
    const log = { info: (m: string) => logs.push(m), warn: (m: string) => logs.push(m), error: (m: string) => logs.push(m) };
    const s = new SecondaryStream({
      module: 'db', peer: 'node1', dirs: [{ dir: D, mode: 'read_write', notreplicated: [] }],
      rfs: { async: 'none', syncdeltaMs: 0, replicated: [] } as never, clock: realClock, log, markers,
      liveness: { heartbeatMs: 1000, deadMs: 5000 }, connect: () => Promise.reject(new Error('not used')), copyBehind: () => {},
    });
    try {
      s.enter([copy]);
      const { a, b } = channelPair({ module: 'db' });
      const sender = createSender({ channel: a, module: 'db', generation: '3@node1', mode: 'none', dirs: [D] });
      const started = s.start(b, '3@node1');
      await sender.replicate({ dir: D, op: 'create', path: 'f', mode: 0o644 });
      await started;
      a.close(new Error('peer lost'));
      await until('the end of the stream reached the markers', () => events.includes('clearing'));
      const leaving = s.leave().then(() => void events.push('left'));
      for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
      release();
      await leaving;
      assert.equal(events, failing ? ['clearing', 'left'] : ['clearing', 'clean', 'left'], 'leave() waited for the ended stream\'s clean-up');
      if (failing) assert.ok(logs.some((l) => /state disk gone; the copy stays marked dirty/.test(l)), logs.join('\n'));
      assert.ok(await fsp.stat(`${copy}/f`), 'the change was applied');
    } finally {
      await rmrf(copy);
      await rmrf(state);
    }
  }
});

test.run();
