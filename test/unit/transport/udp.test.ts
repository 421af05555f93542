import dgram from 'node:dgram';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { ClusterConfig } from '../../../src/config/types.js';
import { bodyJson, encode, frameOverhead, MAX_DATAGRAM } from '../../../src/daemon/heartbeat-codec.js';
import { deriveKey, generateKey } from '../../../src/daemon/key.js';
import { BugError, UserError } from '../../../src/errors.js';
import type { HeartbeatMessage, TransportStats } from '../../../src/platform/transport/types.js';
import { createUdpTransport, DropLog, type UdpTransport, type UdpTransportOptions } from '../../../src/platform/transport/udp.js';

// Loopback only: 127.0.0.1 / .2 are the nodes, .3 an outsider.
const KEY = generateKey();
const HB = deriveKey(KEY, 'heartbeat');

function cluster(port: number): ClusterConfig {
  return {
    port,
    nodes: ['n1', 'n2'],
    lans: [
      { name: 'lan0', line: 2, nodes: [{ name: 'n1', addr: '127.0.0.1', line: 3 }, { name: 'n2', addr: '127.0.0.2', line: 4 }] },
      { name: 'lan1', line: 5, nodes: [{ name: 'n1', addr: '127.0.0.3', line: 6 }, { name: 'n2', addr: '127.0.0.4', line: 7 }] },
    ],
  };
}

/** A UDP port free on every address we use (bound then released). */
async function freePort(): Promise<number> {
  for (;;) {
    const s = await bound('127.0.0.1', 0);
    const port = s.address().port;
    await closeSock(s);
    const others: dgram.Socket[] = [];
    try {
      for (const a of ['127.0.0.2', '127.0.0.3', '127.0.0.4']) others.push(await bound(a, port));
      return port;
    } catch {
      // taken on another address: try another
    } finally {
      for (const o of others) await closeSock(o);
    }
  }
}

function bound(address: string, port: number): Promise<dgram.Socket> {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4');
    s.once('error', reject);
    s.bind({ address, port, exclusive: true }, () => {
      s.off('error', reject);
      resolve(s);
    });
  });
}

function closeSock(s: dgram.Socket): Promise<void> {
  return new Promise((resolve) => s.close(() => resolve()));
}

function sendFrom(s: dgram.Socket, buf: Buffer, address: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => s.send(buf, port, address, (e) => (e ? reject(e) : resolve())));
}

/** Polls a condition (no fixed sleeps): resolves as soon as it holds, fails after `ms`. */
async function until(what: string, cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

interface Node {
  t: UdpTransport;
  got: HeartbeatMessage[];
  logs: string[];
}

async function node(self: string, port: number, extra: Partial<UdpTransportOptions> = {}): Promise<Node> {
  const got: HeartbeatMessage[] = [];
  const logs: string[] = [];
  const t = await createUdpTransport({ cluster: cluster(port), self, lans: ['lan0'], key: KEY, boot: 1, log: (m) => logs.push(m), ...extra });
  t.onMessage((m) => got.push(m));
  return { t, got, logs };
}

const drops = (s: TransportStats) => Object.values(s.dropped).reduce((a, b) => a + b, 0);

/**
 * Until each side has heard the other, its heartbeats echo no boot of the receiver and are dropped as stale: both
 * send until each delivered one, then the test starts from empty `got` lists.
 */
async function meet(a: Node, b: Node, lan = 'lan0'): Promise<void> {
  const end = Date.now() + 3000;
  while (!a.got.some((m) => m.lan === lan) || !b.got.some((m) => m.lan === lan)) {
    if (Date.now() > end) throw new Error('timed out waiting for the two nodes to hear each other');
    a.t.send(lan, 'n2', 'meet');
    b.t.send(lan, 'n1', 'meet');
    await new Promise((r) => setTimeout(r, 5));
  }
  a.got.length = 0;
  b.got.length = 0;
}

test('two nodes on 127.0.0.1 / 127.0.0.2 exchange heartbeats on their own addresses, once each heard the other', async () => {
  const port = await freePort();
  const a = await node('n1', port);
  const b = await node('n2', port, { boot: 5 });
  try {
    assert.equal(a.t.bindings(), [{ lan: 'lan0', address: '127.0.0.1', port }]);
    // n1 has not heard n2 yet: its first heartbeat echoes no boot of n2 and is dropped (stale), not logged
    a.t.send('lan0', 'n2', { t: 'hb', first: true });
    await until('stale', () => b.t.stats().dropped.stale === 1);
    assert.equal(b.got, []);
    assert.equal(b.logs, [], 'the normal start-up drop is counted, not logged');
    await meet(a, b);
    const before = { a: a.t.stats(), b: b.t.stats() };
    a.t.send('lan0', 'n2', { t: 'hb', state: 'PRIM', n: [1, 2] });
    b.t.send('lan0', 'n1', { t: 'hb', state: 'SECOND' });
    await until('both delivered', () => a.got.length === 1 && b.got.length === 1);
    assert.equal(b.got[0], { lan: 'lan0', from: 'n1', body: { t: 'hb', state: 'PRIM', n: [1, 2] } });
    assert.equal(a.got[0], { lan: 'lan0', from: 'n2', body: { t: 'hb', state: 'SECOND' } });
    for (let i = 0; i < 20; i++) a.t.send('lan0', 'n2', { i });
    await until('20 more', () => b.got.length === 21);
    assert.equal(b.got.slice(1).map((m) => (m.body as { i: number }).i), [...Array(20).keys()]);
    const after = a.t.stats();
    assert.equal([after.sent - before.a.sent, after.received - before.a.received, drops(after) - drops(before.a), after.sendErrors], [21, 1, 0, 0]);
    assert.is(b.t.stats().received - before.b.received, 21);
    assert.equal(a.logs, []);
  } finally {
    await a.t.close();
    await b.t.close();
  }
});

test('one socket per LAN: each message arrives tagged with the LAN it crossed', async () => {
  const port = await freePort();
  const a = await node('n1', port, { lans: ['lan0', 'lan1'] });
  const b = await node('n2', port, { lans: ['lan0', 'lan1'] });
  try {
    assert.equal(b.t.bindings().map((x) => x.address), ['127.0.0.2', '127.0.0.4']);
    await meet(a, b, 'lan0');
    a.t.send('lan1', 'n2', 'on lan1');
    a.t.send('lan0', 'n2', 'on lan0');
    await until('both LANs', () => b.got.length === 2);
    assert.equal(b.got.map((m) => [m.lan, m.body]).sort(), [['lan0', 'on lan0'], ['lan1', 'on lan1']], 'the boot heard on one LAN is echoed on every LAN');
  } finally {
    await a.t.close();
    await b.t.close();
  }
});

test('ports option: two nodes on the same address with different ports', async () => {
  const p1 = await freePort();
  const p2 = await freePort();
  const c = cluster(4800);
  c.lans[0]!.nodes[1]!.addr = '127.0.0.1';
  const ports = { n1: p1, n2: p2 };
  const mk = async (self: string): Promise<Node> => {
    const n: Node = { t: await createUdpTransport({ cluster: c, self, lans: ['lan0'], key: KEY, boot: 1, log: () => {}, ports }), got: [], logs: [] };
    n.t.onMessage((m) => n.got.push(m));
    return n;
  };
  const a = await mk('n1');
  const b = await mk('n2');
  try {
    assert.equal(b.t.bindings(), [{ lan: 'lan0', address: '127.0.0.1', port: p2 }]);
    await meet(a, b);
    a.t.send('lan0', 'n2', 1);
    b.t.send('lan0', 'n1', 2);
    await until('delivered', () => a.got.length === 1 && b.got.length === 1);
    assert.is(b.got[0]!.from, 'n1');
    assert.is(a.got[0]!.from, 'n2');
  } finally {
    await a.t.close();
    await b.t.close();
  }
});

test('a datagram from an address that is no node of the LAN is dropped as badSource before its MAC is even checked', async () => {
  // a host without the key floods from its own address: each datagram costs a set lookup, never an HMAC, and a
  // flood logs one line
  const port = await freePort();
  const b = await node('n2', port);
  const evil = await bound('127.0.0.3', 0);
  try {
    const wrong = deriveKey(generateKey(), 'heartbeat');
    for (let i = 1; i <= 50; i++) {
      const forged = encode(wrong, { from: 'n1', to: 'n2', boot: 99, seq: BigInt(i), lan: 'lan0', body: [{ t: 'hb', state: 'PRIM' }] });
      await sendFrom(evil, i % 2 ? forged : Buffer.from('garbage'), '127.0.0.2', port);
    }
    await until('50 drops', () => b.t.stats().dropped.badSource === 50);
    assert.is(b.t.stats().dropped.badMac, 0, 'no MAC computed');
    assert.is(b.t.stats().dropped.malformed, 0, 'not even parsed');
    assert.equal(b.got, []);
    assert.is(b.logs.length, 1, b.logs.join('\n'));
    assert.match(b.logs[0]!, /lan0/);
    assert.match(b.logs[0]!, /127\.0\.0\.3/);
    assert.match(b.logs[0]!, /badSource.*not the address and port of a node of this LAN/);
  } finally {
    await closeSock(evil);
    await b.t.close();
  }
});

test("a forged datagram (wrong key) from the peer's own address and port is dropped as badMac", async () => {
  const port = await freePort();
  const b = await node('n2', port);
  const spoof = await bound('127.0.0.1', port);
  try {
    const wrong = deriveKey(generateKey(), 'heartbeat');
    for (let i = 1; i <= 20; i++) {
      await sendFrom(spoof, encode(wrong, { from: 'n1', to: 'n2', boot: 99, seq: BigInt(i), echo: 1, lan: 'lan0', body: [{}] }), '127.0.0.2', port);
    }
    await until('20 badMac', () => b.t.stats().dropped.badMac === 20);
    assert.equal(b.got, []);
    assert.is(b.logs.length, 1);
    assert.match(b.logs[0]!, /badMac/);
  } finally {
    await closeSock(spoof);
    await b.t.close();
  }
});

test('garbage datagrams from a node\'s address are dropped as malformed', async () => {
  const port = await freePort();
  const b = await node('n2', port);
  const asN1 = await bound('127.0.0.1', port);
  try {
    await sendFrom(asN1, Buffer.from('hello'), '127.0.0.2', port);
    await sendFrom(asN1, Buffer.alloc(9000, 1), '127.0.0.2', port);
    await sendFrom(asN1, Buffer.from('TDHB\u0002\u00ff'), '127.0.0.2', port);
    await until('3 malformed', () => b.t.stats().dropped.malformed === 3);
    assert.equal(b.got, []);
  } finally {
    await closeSock(asN1);
    await b.t.close();
  }
});

test('replayed datagrams are dropped as replay; a restarted sender (new boot) is accepted once it heard the receiver', async () => {
  const port = await freePort();
  const b = await node('n2', port, { boot: 7 });
  const asN1 = await bound('127.0.0.1', port);
  try {
    // what n1 sent after hearing n2 (echo 7), recorded and sent again from n1's own address and port
    const rec = (seq: bigint, boot = 1) => encode(HB, { from: 'n1', to: 'n2', boot, seq, echo: 7, lan: 'lan0', body: [{ seq: Number(seq) }] });
    await sendFrom(asN1, rec(5n), '127.0.0.2', port);
    await until('seq 5', () => b.got.length === 1);
    await sendFrom(asN1, rec(5n), '127.0.0.2', port);
    await sendFrom(asN1, rec(3n), '127.0.0.2', port);
    await until('2 replays', () => b.t.stats().dropped.replay === 2);
    await sendFrom(asN1, rec(6n), '127.0.0.2', port);
    await until('seq 6', () => b.got.length === 2);
    assert.equal(b.got.map((m) => m.body), [{ seq: 5 }, { seq: 6 }]);
    assert.is(b.logs.length, 1);
    assert.match(b.logs[0]!, /replay/);
    await closeSock(asN1);

    // n1 restarts with the next boot number: its seq starts again at 1; delivered once it heard n2 (its first
    // heartbeats, sent before, are stale: counted, not logged)
    const a = await node('n1', port, { boot: 2 });
    try {
      b.got.length = 0;
      await meet(a, b);
      assert.ok(b.t.stats().dropped.stale >= 1);
      assert.is(b.logs.length, 1, `no line for the normal restart: ${b.logs.join('\n')}`);
      a.t.send('lan0', 'n2', { when: 'after restart' });
      await until('after restart', () => b.got.length === 1);
      assert.equal(b.got[0]!.body, { when: 'after restart' });
    } finally {
      await a.t.close();
    }
    // a heartbeat of n1's previous boot that does not echo n2's boot (recorded before n2 started): stale, logged
    const again = await bound('127.0.0.1', port);
    try {
      await sendFrom(again, encode(HB, { from: 'n1', to: 'n2', boot: 1, seq: 99n, echo: 6, lan: 'lan0', body: [{}] }), '127.0.0.2', port);
      await until('logged', () => b.logs.some((x) => /stale.*boot 1\) echoes boot 6 of this daemon, whose boot is 7/.test(x)));
    } finally {
      await closeSock(again);
    }
  } finally {
    await closeSock(asN1).catch(() => {});
    await b.t.close();
  }
});

test('a heartbeat recorded before the RECEIVER restarted is refused after its restart (stale), whatever its seq', async () => {
  // The replay guard lives in memory: a restarted receiver has forgotten the last (boot, seq) it accepted. What a
  // recorded datagram cannot carry is the receiver's new boot counter: it echoes the old one.
  const port = await freePort();
  const a = await node('n1', port);
  let b = await node('n2', port, { boot: 40 });
  const recorded: Buffer[] = [];
  try {
    await meet(a, b);
    // an attacker on the LAN records what n1 sends to n2 (here: the same datagrams, re-encoded with the key)
    for (let seq = 100n; seq < 105n; seq++) recorded.push(encode(HB, { from: 'n1', to: 'n2', boot: 1, seq, echo: 40, lan: 'lan0', body: [{ t: 'hb', state: 'PRIM', old: true }] }));
    await b.t.close();
    await a.t.close(); // n1 is gone (powered off): only the attacker speaks from its address now
    b = await node('n2', port, { boot: 41 });
    const attacker = await bound('127.0.0.1', port);
    try {
      for (const d of recorded) await sendFrom(attacker, d, '127.0.0.2', port);
      await until('5 refused', () => drops(b.t.stats()) === 5);
      assert.equal(b.got, [], 'nothing delivered');
      assert.is(b.t.stats().dropped.stale, 5);
    } finally {
      await closeSock(attacker);
    }
  } finally {
    await a.t.close();
    await b.t.close();
  }
});

test('a datagram from a node\'s address whose port is not that node\'s is dropped as badSource', async () => {
  const port = await freePort();
  const b = await node('n2', port);
  const elsewhere = await bound('127.0.0.3', port); // right port, wrong address
  const otherPort = await bound('127.0.0.1', 0); // right address, wrong port
  try {
    const valid = (seq: bigint) => encode(HB, { from: 'n1', to: 'n2', boot: 5, seq, echo: 1, lan: 'lan0', body: [{ t: 'hb', state: 'PRIM' }] });
    await sendFrom(elsewhere, valid(1n), '127.0.0.2', port);
    await sendFrom(otherPort, valid(2n), '127.0.0.2', port);
    await until('2 badSource', () => b.t.stats().dropped.badSource === 2);
    assert.equal(b.got, []);
    assert.is(drops(b.t.stats()), 2);
    assert.match(b.logs.join('\n'), /not the address and port of a node of this LAN/);

    // the spoofed datagrams did not advance the replay guard: the real n1 (boot 1) is still accepted
    const a = await node('n1', port);
    try {
      await meet(a, b);
    } finally {
      await a.t.close();
    }
  } finally {
    await closeSock(elsewhere);
    await closeSock(otherPort);
    await b.t.close();
  }
});

test('a datagram sent for another LAN is dropped as badSource', async () => {
  const port = await freePort();
  const b = await node('n2', port);
  const asN1 = await bound('127.0.0.1', port);
  try {
    const wrongLan = encode(HB, { from: 'n1', to: 'n2', boot: 1, seq: 1n, echo: 1, lan: 'lan1', body: [{}] });
    await sendFrom(asN1, wrongLan, '127.0.0.2', port);
    await until('badSource', () => b.t.stats().dropped.badSource === 1);
    assert.equal(b.got, []);
    assert.match(b.logs[0]!, /sent for LAN lan1/);
  } finally {
    await closeSock(asN1);
    await b.t.close();
  }
});

test('authenticated datagrams claiming an unknown node or the receiver itself are dropped as unknownNode', async () => {
  const port = await freePort();
  const b = await node('n2', port);
  const s = await bound('127.0.0.1', port);
  try {
    await sendFrom(s, encode(HB, { from: 'n9', to: 'n2', boot: 1, seq: 1n, echo: 1, lan: 'lan0', body: [{}] }), '127.0.0.2', port);
    await sendFrom(s, encode(HB, { from: 'n2', to: 'n2', boot: 1, seq: 1n, echo: 1, lan: 'lan0', body: [{}] }), '127.0.0.2', port);
    await until('2 unknownNode', () => b.t.stats().dropped.unknownNode === 2);
    assert.equal(b.got, []);
    assert.match(b.logs.join('\n'), /"n9", which is not a node of this LAN/);
  } finally {
    await closeSock(s);
    await b.t.close();
  }
});

test('an authenticated datagram from a peer but addressed to another node is dropped as misdirected and logged', async () => {
  // in a cluster of more than two nodes, what n1 sent to n3, replayed to n2 from n1's address: n2 must refuse it even
  // when it echoes n2's own boot (boot counters of different nodes can be equal)
  const port = await freePort();
  const b = await node('n2', port, { boot: 4 });
  const s = await bound('127.0.0.1', port);
  try {
    await sendFrom(s, encode(HB, { from: 'n1', to: 'n3', boot: 1, seq: 1n, echo: 4, lan: 'lan0', body: [{ t: 'hb' }] }), '127.0.0.2', port);
    await until('1 misdirected', () => b.t.stats().dropped.misdirected === 1);
    assert.equal(b.got, []);
    assert.match(b.logs.join('\n'), /misdirected.*sent to n3, not to this node \(n2\)/);
    await sendFrom(s, encode(HB, { from: 'n1', to: 'n2', boot: 1, seq: 2n, echo: 4, lan: 'lan0', body: [{ t: 'hb' }] }), '127.0.0.2', port);
    await until('delivered', () => b.got.length === 1);
  } finally {
    await closeSock(s);
    await b.t.close();
  }
});

test('what is sent to one peer in one turn leaves as one datagram, delivered in order', async () => {
  const port = await freePort();
  const a = await node('n1', port);
  const b = await node('n2', port);
  try {
    await meet(a, b);
    const before = a.t.stats();
    const receivedBefore = b.t.stats().datagrams.received;
    for (let i = 0; i < 5; i++) a.t.send('lan0', 'n2', { module: `m${i}` });
    await until('5 delivered', () => b.got.length === 5);
    assert.equal(b.got.map((m) => m.body), [0, 1, 2, 3, 4].map((i) => ({ module: `m${i}` })));
    const after = a.t.stats();
    assert.is(after.sent - before.sent, 5);
    assert.is(after.datagrams.sent - before.datagrams.sent, 1);
    assert.is(b.t.stats().datagrams.received - receivedBefore, 1);
  } finally {
    await a.t.close();
    await b.t.close();
  }
});

test('messages that do not fit one datagram leave in several, every one delivered in order; an oversize one is a bug', async () => {
  const port = await freePort();
  const a = await node('n1', port);
  const b = await node('n2', port);
  try {
    await meet(a, b);
    const before = a.t.stats().datagrams.sent;
    const pad = 'x'.repeat(1000);
    for (let i = 0; i < 40; i++) a.t.send('lan0', 'n2', { i, pad });
    await until('40 delivered', () => b.got.length === 40);
    assert.equal(b.got.map((m) => (m.body as { i: number }).i), [...Array(40).keys()]);
    // all 40 were sent in one turn of the event loop, so no timer decides the count: each datagram takes messages until
    // the next would not fit its room (MAX_DATAGRAM less the frame and the list's brackets and commas)
    const room = MAX_DATAGRAM - frameOverhead('n1', 'n2', 'lan0') - 2;
    let expected = 0;
    let used = room;
    for (let i = 0; i < 40; i++) {
      const bytes = Buffer.byteLength(bodyJson({ i, pad }));
      if (used + 1 + bytes > room) { expected++; used = -1; }
      used += 1 + bytes;
    }
    assert.is(a.t.stats().datagrams.sent - before, expected, `40 messages of ~1 KiB packed into ${expected} datagrams`);
    assert.is(b.t.stats().dropped.malformed, 0);
    assert.throws(() => a.t.send('lan0', 'n2', { pad: 'y'.repeat(MAX_DATAGRAM) }), (e: unknown) => e instanceof BugError && /exceeds the \d+ bytes a datagram to n2/.test((e as Error).message));
  } finally {
    await a.t.close();
    await b.t.close();
  }
});

test('an authenticated datagram whose body is not a list of messages (another version) is malformed, logged, not delivered', async () => {
  const port = await freePort();
  const b = await node('n2', port, { boot: 3 });
  const s = await bound('127.0.0.1', port);
  try {
    await sendFrom(s, encode(HB, { from: 'n1', to: 'n2', boot: 1, seq: 1n, echo: 3, lan: 'lan0', body: { t: 'hb' } }), '127.0.0.2', port);
    await sendFrom(s, encode(HB, { from: 'n1', to: 'n2', boot: 1, seq: 2n, echo: 3, lan: 'lan0', body: [] }), '127.0.0.2', port);
    await until('2 malformed', () => b.t.stats().dropped.malformed === 2);
    assert.equal(b.got, []);
    assert.match(b.logs.join('\n'), /does not carry a list of messages \(another tandem version\?\)/);
    await sendFrom(s, encode(HB, { from: 'n1', to: 'n2', boot: 1, seq: 3n, echo: 3, lan: 'lan0', body: [{ t: 'hb' }, 'two'] }), '127.0.0.2', port);
    await until('delivered', () => b.got.length === 2);
    assert.equal(b.got.map((m) => m.body), [{ t: 'hb' }, 'two']);
  } finally {
    await closeSock(s);
    await b.t.close();
  }
});

test('close sends what was queued before it', async () => {
  const port = await freePort();
  const a = await node('n1', port);
  const b = await node('n2', port);
  try {
    await meet(a, b);
    a.t.send('lan0', 'n2', { last: 'stopping' });
    await a.t.close();
    await until('delivered', () => b.got.length === 1);
    assert.equal(b.got[0]!.body, { last: 'stopping' });
  } finally {
    await a.t.close();
    await b.t.close();
  }
});

test('bind failure names the LAN, address and port, and closes the sockets already opened', async () => {
  const port = await freePort();
  const squatter = await bound('127.0.0.3', port); // n1's lan1 address
  try {
    const e = await createUdpTransport({ cluster: cluster(port), self: 'n1', lans: ['lan0', 'lan1'], key: KEY, boot: 1, log: () => {} })
      .then(() => undefined, (err: unknown) => err);
    assert.instance(e, UserError);
    const msg = (e as Error).message;
    assert.ok(msg.includes(`LAN "lan1" on 127.0.0.3:${port}`), msg);
    assert.match(msg, /EADDRINUSE/);
    assert.match(msg, /ss -ulpn/);
    // lan0's socket was released
    await closeSock(await bound('127.0.0.1', port));
  } finally {
    await closeSock(squatter);
  }
});

test('configuration mistakes are UserErrors; send mistakes are BugErrors', async () => {
  const port = await freePort();
  const base = { cluster: cluster(port), key: KEY, boot: 1, log: () => {} };
  const e1 = await createUdpTransport({ ...base, self: 'n1', lans: ['lan9'] }).then(() => undefined, (e: unknown) => e);
  assert.instance(e1, UserError);
  assert.match((e1 as Error).message, /LAN "lan9" is not defined in cluster\.xml \(defined: lan0, lan1\)/);
  const e2 = await createUdpTransport({ ...base, self: 'n7', lans: ['lan0'] }).then(() => undefined, (e: unknown) => e);
  assert.instance(e2, UserError);
  assert.match((e2 as Error).message, /"n7" is not listed in LAN "lan0"/);
  const e3 = await createUdpTransport({ ...base, self: 'n1', lans: ['lan0'], boot: -1 }).then(() => undefined, (e: unknown) => e);
  assert.instance(e3, BugError);

  const a = await node('n1', port);
  try {
    assert.throws(() => a.t.send('lan1', 'n2', {}), (e: unknown) => e instanceof BugError);
    assert.throws(() => a.t.send('lan0', 'n9', {}), (e: unknown) => e instanceof BugError);
    assert.throws(() => a.t.send('lan0', 'n1', {}), (e: unknown) => e instanceof BugError);
    assert.throws(() => a.t.send('lan0', 'n2', 'x'.repeat(9000)), (e: unknown) => e instanceof BugError);
  } finally {
    await a.t.close();
  }
  a.t.send('lan0', 'n2', {}); // after close: a no-op, never a throw
  await a.t.close(); // idempotent
});

test('DropLog: first drop per (reason, LAN, source) logged, then once a minute; global cap with a summary', () => {
  let now = 1000;
  const lines: string[] = [];
  const log = new DropLog((m) => lines.push(m), () => now);
  for (let i = 0; i < 100; i++) log.note('badMac', 'lan0', '127.0.0.3:5000', 'x');
  assert.is(lines.length, 1);
  log.note('replay', 'lan0', '127.0.0.3:5000', 'x'); // another reason: logged
  log.note('badMac', 'lan1', '127.0.0.3:5000', 'x'); // another LAN: logged
  log.note('badMac', 'lan0', '127.0.0.3:6000', 'x'); // same address, other port: same source
  assert.is(lines.length, 3);
  now += 59_999;
  log.note('badMac', 'lan0', '127.0.0.3:5000', 'x');
  assert.is(lines.length, 3);
  now += 1;
  log.note('badMac', 'lan0', '127.0.0.3:5000', 'x');
  assert.is(lines.length, 4);

  // a flood from many spoofed sources is capped per minute
  now += 60_000;
  lines.length = 0;
  for (let i = 0; i < 100; i++) log.note('malformed', 'lan0', `127.1.${i}.1:1`, 'x');
  log.noteSendError('lan0', '127.0.0.2:4800', 'EPERM');
  assert.is(lines.length, DropLog.MAX_LINES_PER_MINUTE);
  now += 60_000;
  log.note('malformed', 'lan0', '127.0.0.9:1', 'x');
  assert.match(lines[lines.length - 2]!, /^81 more heartbeat drop or send-error lines were not logged/);
  assert.match(lines[lines.length - 1]!, /127\.0\.0\.9/);
});

test.run();
