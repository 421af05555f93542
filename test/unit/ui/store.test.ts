/** The dashboard's store: the event log made from consecutive snapshots, errors kept beside the last good status. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { StatusView } from '../../../src/daemon/views.js';
import { UserError } from '../../../src/errors.js';
import { StatusStore, stateChanges } from '../../../src/ui/store.js';
import { farm, mirror, status } from './fixtures.js';

test('a failover seen from node2: node1 becomes unreachable, node2 ALONE, the VIP moves, the alarm is raised and cleared', () => {
  const before = status('node2', [mirror('node2', 'SECOND', 'node1', 'PRIM')]);
  const after = status('node2', [mirror('node2', 'ALONE', 'node1', 'PRIM', { reachable: false, alarms: [{ code: 'peer-lost', message: 'node1 lost' }] })]);
  assert.equal(stateChanges(before, after), [
    'demo node2: SECOND → ALONE',
    'demo node1: PRIM → unreachable',
    'demo: virtual IP 198.51.100.10 now on node2',
    'demo: alarm peer-lost: node1 lost',
  ]);
  const back = status('node2', [mirror('node2', 'ALONE', 'node1', 'SECOND', { peerReady: false })]);
  assert.equal(stateChanges(after, back), ['demo node1: unreachable → SECOND…', 'demo: alarm peer-lost cleared']);
  assert.equal(stateChanges(back, back), []);
});

test('modules appearing and going, farm peers', () => {
  const a = status('node1', [], [farm('node1')]);
  assert.equal(stateChanges(null, a), ['farm-web: node1 UP, node2 UP, node3 UP…']);
  const b = status('node1', [], [farm('node1', { peers: [{ node: 'node2', state: 'UP', ready: true, lastHeardMsAgo: 1, lans: ['default'] }] })]);
  assert.equal(stateChanges(a, b), ['farm-web node3: UP… → gone']);
  assert.equal(stateChanges(b, status('node1', [])), ['farm-web: no longer loaded on node1']);
});

test('the store logs changes with the time, keeps the last status on an error (with its hint) and says when it recovers', async () => {
  const views: (StatusView | Error)[] = [
    status('node2', [mirror('node2', 'SECOND', 'node1', 'PRIM')]),
    status('node2', [mirror('node2', 'SECOND', 'node1', 'PRIM')]),
    new UserError('no tandem daemon is running', 'start it with `tandem daemon`'),
    new UserError('no tandem daemon is running', 'start it with `tandem daemon`'),
    status('node2', [mirror('node2', 'ALONE', 'node1', null, { reachable: false })]),
  ];
  let i = 0;
  const store = new StatusStore(async () => { const v = views[i++]!; if (v instanceof Error) throw v; return v; }, () => new Date(2026, 11, 4, 12, 0, 0));
  let emitted = 0;
  store.subscribe(() => emitted++);
  await store.poll();
  assert.is(emitted, 1);
  await store.poll();
  assert.is(emitted, 1, 'an unchanged status does not re-render');
  const failed = await store.poll();
  assert.is(failed.error, 'no tandem daemon is running → start it with `tandem daemon`');
  assert.ok(failed.status, 'the last good status stays');
  assert.ok(store.lastFailure instanceof UserError);
  await store.poll();
  const ok = await store.poll();
  assert.is(ok.error, null);
  assert.is(store.lastFailure, null);
  assert.equal(ok.events, [
    '12:00:00 demo: node2 SECOND, node1 PRIM',
    '12:00:00 no tandem daemon is running → start it with `tandem daemon`',
    '12:00:00 the daemon answers again',
    '12:00:00 demo node2: SECOND → ALONE',
    '12:00:00 demo node1: PRIM → unreachable',
    '12:00:00 demo: virtual IP 198.51.100.10 now on node2',
  ]);
  assert.is(ok.eventCount, 6);
  store.note('swap demo: done');
  assert.is(store.snapshot.events.at(-1), '12:00:00 swap demo: done');
});

test('the event log keeps the newest maxEvents lines and counts them all', async () => {
  let n = 0;
  const store = new StatusStore(async () => status('node1', [mirror('node1', n++ % 2 ? 'PRIM' : 'ALONE', 'node2', 'SECOND')]), () => new Date(2026, 11, 4, 12, 0, 0), 5);
  for (let i = 0; i < 10; i++) await store.poll();
  assert.is(store.snapshot.events.length, 5);
  assert.is(store.snapshot.eventCount, 10);
  assert.match(store.snapshot.events.at(-1)!, /demo node1: ALONE → PRIM/);
});

test.run();
