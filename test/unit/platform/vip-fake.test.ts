import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FakeLan, FakeVip } from '../../../src/platform/vip/fake.js';

const VIP = '198.51.100.10';

test('two nodes on one FakeLan see each other in probe, never themselves', async () => {
  const lan = new FakeLan();
  const a = new FakeVip(lan, 'node1');
  const b = new FakeVip(lan, 'node2');
  assert.equal(await b.probe(VIP), { inUse: false });
  await a.acquire(VIP);
  assert.equal(await b.probe(VIP), { inUse: true, by: 'fake:node1' });
  assert.equal(await a.probe(VIP), { inUse: false }, 'the holder does not see itself');
  assert.is(await a.holds(VIP), true);
  assert.is(await b.holds(VIP), false);
  assert.is(lan.arpOwner(VIP), 'node1');
});

test('split brain: both acquire, each probe reports the other', async () => {
  const lan = new FakeLan();
  const a = new FakeVip(lan, 'node1');
  const b = new FakeVip(lan, 'node2');
  await a.acquire(VIP);
  await b.acquire(VIP);
  assert.equal(lan.holders(VIP), ['node1', 'node2']);
  assert.equal(await a.probe(VIP), { inUse: true, by: 'fake:node2' });
  assert.equal(await b.probe(VIP), { inUse: true, by: 'fake:node1' });
  assert.is(lan.arpOwner(VIP), 'node2', 'the last announcer wins the clients');
});

test('release frees the address; release is idempotent; the client entry stays stale until the next announcement', async () => {
  const lan = new FakeLan();
  const a = new FakeVip(lan, 'node1');
  const b = new FakeVip(lan, 'node2');
  await a.acquire(VIP);
  await a.release(VIP);
  await a.release(VIP);
  assert.equal(lan.holders(VIP), []);
  assert.is(await a.holds(VIP), false);
  assert.equal(await b.probe(VIP), { inUse: false });
  assert.is(lan.arpOwner(VIP), 'node1');
  await b.acquire(VIP);
  assert.is(lan.arpOwner(VIP), 'node2');
});

test('calls are recorded in order; failNext fails only the next call of that op and leaves the LAN alone', async () => {
  const lan = new FakeLan();
  const a = new FakeVip(lan, 'node1');
  const boom = new Error('boom');
  a.failNext('acquire', boom);
  try {
    await a.acquire(VIP);
    assert.unreachable('acquire should have failed');
  } catch (e) {
    assert.is(e, boom);
  }
  assert.equal(lan.holders(VIP), []);
  await a.acquire(VIP);
  await a.holds(VIP);
  await a.probe(VIP);
  await a.release(VIP);
  assert.equal(a.calls, [`acquire ${VIP}`, `acquire ${VIP}`, `holds ${VIP}`, `probe ${VIP}`, `release ${VIP}`]);
});

test('failNext works for every op', async () => {
  const lan = new FakeLan();
  const a = new FakeVip(lan, 'node1');
  for (const op of ['probe', 'release', 'holds'] as const) {
    a.failNext(op, new Error(op));
    try {
      await a[op](VIP);
      assert.unreachable(`${op} should have failed`);
    } catch (e) {
      assert.is((e as Error).message, op);
    }
  }
});

test.run();
