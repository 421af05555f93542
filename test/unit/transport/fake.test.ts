import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BugError } from '../../../src/errors.js';
import { FakeNetwork, type FakeTransport } from '../../../src/platform/transport/fake.js';
import type { HeartbeatMessage } from '../../../src/platform/transport/types.js';

function attach(net: FakeNetwork, node: string, lans = ['lan0', 'lan1']): { t: FakeTransport; got: HeartbeatMessage[] } {
  const t = net.transport(node, lans);
  const got: HeartbeatMessage[] = [];
  t.onMessage((m) => got.push(m));
  return { t, got };
}

const tick = () => new Promise((r) => setImmediate(r));

/** Deterministic PRNG (mulberry32) so loss tests are reproducible. */
function seeded(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) >>> 0;
    let t = seed;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test('microtask delivery: never synchronous, delivered before the next macrotask; bodies are copies', async () => {
  const net = new FakeNetwork();
  const a = attach(net, 'n1');
  const b = attach(net, 'n2');
  const body = { state: 'PRIM', list: [1] };
  a.t.send('lan0', 'n2', body);
  assert.equal(b.got, []);
  body.list.push(2);
  await tick();
  assert.equal(b.got, [{ lan: 'lan0', from: 'n1', body: { state: 'PRIM', list: [1] } }]);
  assert.equal(a.t.stats(), { sent: 1, received: 0, datagrams: { sent: 1, received: 0 }, dropped: { badMac: 0, replay: 0, stale: 0, badSource: 0, malformed: 0, unknownNode: 0, misdirected: 0 }, sendErrors: 0 });
  assert.is(b.t.stats().received, 1);
});

test('manual delivery: only flush() delivers; replies sent by handlers wait for the next flush', () => {
  const net = new FakeNetwork({ delivery: 'manual' });
  const a = attach(net, 'n1');
  const b = net.transport('n2', ['lan0']);
  b.onMessage((m) => b.send(m.lan, m.from, { pong: (m.body as { ping: number }).ping }));
  a.t.send('lan0', 'n2', { ping: 1 });
  assert.is(net.pending(), 1);
  assert.is(net.flush(), 1);
  assert.equal(a.got, []);
  assert.is(net.pending(), 1);
  assert.is(net.flush(), 1);
  assert.equal(a.got.map((m) => m.body), [{ pong: 1 }]);
  assert.is(net.flush(), 0);
});

test('cut(lan) stops one LAN, including datagrams already in flight; heal restores it', () => {
  const net = new FakeNetwork({ delivery: 'manual' });
  const a = attach(net, 'n1');
  const b = attach(net, 'n2');
  a.t.send('lan0', 'n2', 'in flight');
  net.cut('lan0');
  a.t.send('lan0', 'n2', 'cut');
  a.t.send('lan1', 'n2', 'other lan');
  net.flush();
  assert.equal(b.got.map((m) => [m.lan, m.body]), [['lan1', 'other lan']]);
  net.heal();
  a.t.send('lan0', 'n2', 'healed');
  net.flush();
  assert.equal(b.got.map((m) => m.body), ['other lan', 'healed']);
  assert.equal(net.networkStats(), { delivered: 2, lost: 2, duplicated: 0 });
});

test('cut(lan, node, dir): both ways, or asymmetric in/out; heal(lan, node) restores that link only', () => {
  const net = new FakeNetwork({ delivery: 'manual' });
  const a = attach(net, 'n1');
  const b = attach(net, 'n2');
  const c = attach(net, 'n3');
  const round = () => {
    for (const [x, name] of [[a, 'n1'], [b, 'n2'], [c, 'n3']] as const) {
      for (const to of ['n1', 'n2', 'n3']) if (to !== name) x.t.send('lan0', to, name);
    }
    net.flush();
  };
  const heard = () => [a, b, c].map((x) => x.got.splice(0).map((m) => m.body).sort());

  net.cut('lan0', 'n1', 'out');
  round();
  assert.equal(heard(), [['n2', 'n3'], ['n3'], ['n2']]);
  net.cut('lan0', 'n1', 'in');
  round();
  assert.equal(heard(), [[], ['n1', 'n3'], ['n1', 'n2']]);
  net.cut('lan0', 'n1');
  net.cut('lan1', 'n2');
  round();
  assert.equal(heard(), [[], ['n3'], ['n2']]);
  net.heal('lan0', 'n1');
  round();
  assert.equal(heard(), [['n2', 'n3'], ['n1', 'n3'], ['n1', 'n2']]);
  // heal(lan) clears the LAN cut and every link cut on it, but not on other LANs
  net.cut('lan0');
  net.cut('lan0', 'n3');
  net.heal('lan0');
  a.t.send('lan1', 'n2', 'lan1 still cut for n2');
  round();
  assert.equal(heard(), [['n2', 'n3'], ['n1', 'n3'], ['n1', 'n2']]);
});

test('loss: 1 drops everything, 0 nothing, a seeded rate is reproducible; per-LAN overrides the default', () => {
  const run = (seed: number) => {
    const net = new FakeNetwork({ delivery: 'manual', random: seeded(seed) });
    const a = attach(net, 'n1');
    const b = attach(net, 'n2');
    net.setLoss(0.3);
    net.setLoss(0, 'lan1');
    for (let i = 0; i < 1000; i++) {
      a.t.send('lan0', 'n2', i);
      a.t.send('lan1', 'n2', i);
    }
    net.flush();
    return { lan0: b.got.filter((m) => m.lan === 'lan0').length, lan1: b.got.filter((m) => m.lan === 'lan1').length };
  };
  const r = run(42);
  assert.equal(run(42), r);
  assert.is(r.lan1, 1000);
  assert.ok(r.lan0 > 600 && r.lan0 < 800, String(r.lan0));

  const net = new FakeNetwork({ delivery: 'manual' });
  const a = attach(net, 'n1');
  const b = attach(net, 'n2');
  net.setLoss(1);
  a.t.send('lan0', 'n2', 1);
  net.flush();
  assert.equal(b.got, []);
  assert.is(a.t.stats().sent, 1);
});

test('duplicates are dropped by the receiver\'s replay guard and counted', () => {
  const net = new FakeNetwork({ delivery: 'manual' });
  const a = attach(net, 'n1');
  const b = attach(net, 'n2');
  net.setDuplicate(1, 'lan0');
  a.t.send('lan0', 'n2', 'once');
  a.t.send('lan0', 'n2', 'twice');
  net.flush();
  assert.equal(b.got.map((m) => m.body), ['once', 'twice']);
  assert.is(b.t.stats().dropped.replay, 2); // each copy arrives right after its original
  assert.is(b.t.stats().received, 2);
});

test('a closed transport receives nothing; the node can attach again with a new boot', async () => {
  const net = new FakeNetwork({ delivery: 'manual' });
  const a = attach(net, 'n1');
  const b = attach(net, 'n2');
  a.t.send('lan0', 'n2', 'before');
  await b.t.close();
  net.flush();
  assert.equal(b.got, []);
  b.t.send('lan0', 'n1', 'after close'); // no-op
  assert.is(net.pending(), 0);
  const b2 = net.transport('n2', ['lan0'], { boot: 2 });
  const got: unknown[] = [];
  b2.onMessage((m) => got.push(m.body));
  a.t.send('lan0', 'n2', 'hello again');
  net.flush();
  assert.equal(got, ['hello again']);
  // n1 restarts with a later boot: n2 accepts its seq from 1 again
  await a.t.close();
  const a2 = net.transport('n1', ['lan0'], { boot: 5 });
  a2.send('lan0', 'n2', 'new boot');
  net.flush();
  assert.equal(got, ['hello again', 'new boot']);
});

test('caller mistakes are BugErrors, as with the real transport', () => {
  const net = new FakeNetwork({ delivery: 'manual' });
  const a = attach(net, 'n1', ['lan0']);
  const isBug = (e: unknown) => e instanceof BugError;
  assert.throws(() => net.transport('n1', ['lan0']), isBug);
  assert.throws(() => a.t.send('lan1', 'n2', {}), isBug);
  assert.throws(() => a.t.send('lan0', 'n1', {}), isBug);
  assert.throws(() => a.t.send('lan0', 'n2', { big: 1n }), isBug);
  assert.throws(() => a.t.send('lan0', 'n2', 'x'.repeat(9000)), isBug);
  assert.throws(() => net.setLoss(1.5), isBug);
  assert.throws(() => net.setDuplicate(-0.1), isBug);
  assert.throws(() => net.setLoss(Number.NaN), isBug);
  // sending to a node that is not attached is silent loss, like UDP to a powered-off host
  a.t.send('lan0', 'ghost', {});
  assert.is(net.flush(), 0);
  assert.is(net.networkStats().lost, 1);
});

test.run();
