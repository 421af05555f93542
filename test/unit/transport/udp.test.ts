import dgram from 'node:dgram';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { ClusterConfig } from '../../../src/config/types.js';
import { encode } from '../../../src/daemon/heartbeat-codec.js';
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

test('two nodes on 127.0.0.1 / 127.0.0.2 exchange heartbeats on their own addresses', async () => {
  const port = await freePort();
  const a = await node('n1', port);
  const b = await node('n2', port);
  try {
    assert.equal(a.t.bindings(), [{ lan: 'lan0', address: '127.0.0.1', port }]);
    a.t.send('lan0', 'n2', { t: 'hb', state: 'PRIM', n: [1, 2] });
    b.t.send('lan0', 'n1', { t: 'hb', state: 'SECOND' });
    await until('both delivered', () => a.got.length === 1 && b.got.length === 1);
    assert.equal(b.got[0], { lan: 'lan0', from: 'n1', body: { t: 'hb', state: 'PRIM', n: [1, 2] } });
    assert.equal(a.got[0], { lan: 'lan0', from: 'n2', body: { t: 'hb', state: 'SECOND' } });
    for (let i = 0; i < 20; i++) a.t.send('lan0', 'n2', { i });
    await until('20 more', () => b.got.length === 21);
    assert.equal(b.got.slice(1).map((m) => (m.body as { i: number }).i), [...Array(20).keys()]);
    assert.equal(a.t.stats(), { sent: 21, received: 1, dropped: { badMac: 0, replay: 0, badSource: 0, malformed: 0, unknownNode: 0 }, sendErrors: 0 });
    assert.is(b.t.stats().received, 21);
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
    a.t.send('lan1', 'n2', 'on lan1');
    a.t.send('lan0', 'n2', 'on lan0');
    await until('both LANs', () => b.got.length === 2);
    assert.equal(b.got.map((m) => [m.lan, m.body]).sort(), [['lan0', 'on lan0'], ['lan1', 'on lan1']]);
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
  const mk = (self: string, got: HeartbeatMessage[]) =>
    createUdpTransport({ cluster: c, self, lans: ['lan0'], key: KEY, boot: 1, log: () => {}, ports }).then((t) => {
      t.onMessage((m) => got.push(m));
      return t;
    });
  const gotA: HeartbeatMessage[] = [];
  const gotB: HeartbeatMessage[] = [];
  const a = await mk('n1', gotA);
  const b = await mk('n2', gotB);
  try {
    assert.equal(b.bindings(), [{ lan: 'lan0', address: '127.0.0.1', port: p2 }]);
    a.send('lan0', 'n2', 1);
    b.send('lan0', 'n1', 2);
    await until('delivered', () => gotA.length === 1 && gotB.length === 1);
    assert.is(gotB[0]!.from, 'n1');
    assert.is(gotA[0]!.from, 'n2');
  } finally {
    await a.close();
    await b.close();
  }
});

test('a forged datagram (wrong key) from a third address is dropped as badMac, and a flood logs one line', async () => {
  const port = await freePort();
  const b = await node('n2', port);
  const evil = await bound('127.0.0.3', 0);
  try {
    const wrong = deriveKey(generateKey(), 'heartbeat');
    for (let i = 1; i <= 50; i++) {
      const forged = encode(wrong, { from: 'n1', boot: 99, seq: BigInt(i), lan: 'lan0', body: { t: 'hb', state: 'PRIM' } });
      await sendFrom(evil, forged, '127.0.0.2', port);
    }
    await until('50 drops', () => b.t.stats().dropped.badMac === 50);
    assert.equal(b.got, []);
    assert.is(b.t.stats().received, 0);
    assert.is(b.logs.length, 1, b.logs.join('\n'));
    assert.match(b.logs[0]!, /lan0/);
    assert.match(b.logs[0]!, /127\.0\.0\.3/);
    assert.match(b.logs[0]!, /badMac/);
  } finally {
    await closeSock(evil);
    await b.t.close();
  }
});

test('garbage datagrams are dropped as malformed', async () => {
  const port = await freePort();
  const b = await node('n2', port);
  const evil = await bound('127.0.0.3', 0);
  try {
    await sendFrom(evil, Buffer.from('hello'), '127.0.0.2', port);
    await sendFrom(evil, Buffer.alloc(9000, 1), '127.0.0.2', port);
    await sendFrom(evil, Buffer.from('TDHB\u0001\u00ff'), '127.0.0.2', port);
    await until('3 malformed', () => b.t.stats().dropped.malformed === 3);
    assert.equal(b.got, []);
  } finally {
    await closeSock(evil);
    await b.t.close();
  }
});

test('a replayed captured datagram is dropped as replay; a restarted sender (new boot) is accepted', async () => {
  const port = await freePort();
  // capture what n1 sends to n2 with a plain socket sitting on n2's address
  const sniffer = await bound('127.0.0.2', port);
  const captured: Buffer[] = [];
  sniffer.on('message', (m) => captured.push(m));
  let a = await node('n1', port);
  a.t.send('lan0', 'n2', { t: 'hb', state: 'PRIM', when: 'old' });
  await until('captured', () => captured.length === 1);
  await closeSock(sniffer);

  const b = await node('n2', port);
  try {
    a.t.send('lan0', 'n2', { when: 'new' });
    await until('new delivered', () => b.got.length === 1);
    await a.t.close();

    // replay the old datagram from n1's own address and port: only the replay guard can catch it
    const replayer = await bound('127.0.0.1', port);
    await sendFrom(replayer, captured[0]!, '127.0.0.2', port);
    await sendFrom(replayer, captured[0]!, '127.0.0.2', port);
    await until('2 replays', () => b.t.stats().dropped.replay === 2);
    await closeSock(replayer);
    assert.equal(b.got.map((m) => m.body), [{ when: 'new' }]);
    assert.is(b.logs.length, 1);
    assert.match(b.logs[0]!, /replay/);

    // n1 restarts with the next boot number: its seq starts again at 1 and is accepted
    a = await node('n1', port, { boot: 2 });
    a.t.send('lan0', 'n2', { when: 'after restart' });
    await until('after restart', () => b.got.length === 2);
    assert.equal(b.got[1]!.body, { when: 'after restart' });
  } finally {
    await a.t.close();
    await b.t.close();
  }
});

test('a valid datagram from an address or port that is not the sender\'s is dropped as badSource', async () => {
  const port = await freePort();
  const b = await node('n2', port);
  const elsewhere = await bound('127.0.0.3', port); // right port, wrong address
  const otherPort = await bound('127.0.0.1', 0); // right address, wrong port
  try {
    const valid = (seq: bigint) => encode(HB, { from: 'n1', boot: 5, seq, lan: 'lan0', body: { t: 'hb', state: 'PRIM' } });
    await sendFrom(elsewhere, valid(1n), '127.0.0.2', port);
    await sendFrom(otherPort, valid(2n), '127.0.0.2', port);
    await until('2 badSource', () => b.t.stats().dropped.badSource === 2);
    assert.equal(b.got, []);
    assert.is(drops(b.t.stats()), 2);
    assert.match(b.logs.join('\n'), /n1, whose address on this LAN is 127\.0\.0\.1/);

    // the spoofed datagrams did not advance the replay guard: the real n1 (boot 1, seq 1) is still accepted
    const a = await node('n1', port);
    a.t.send('lan0', 'n2', 'real');
    await until('real one', () => b.got.length === 1);
    await a.t.close();
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
    const wrongLan = encode(HB, { from: 'n1', boot: 1, seq: 1n, lan: 'lan1', body: {} });
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
  const s = await bound('127.0.0.3', 0);
  try {
    await sendFrom(s, encode(HB, { from: 'n9', boot: 1, seq: 1n, lan: 'lan0', body: {} }), '127.0.0.2', port);
    await sendFrom(s, encode(HB, { from: 'n2', boot: 1, seq: 1n, lan: 'lan0', body: {} }), '127.0.0.2', port);
    await until('2 unknownNode', () => b.t.stats().dropped.unknownNode === 2);
    assert.equal(b.got, []);
    assert.match(b.logs.join('\n'), /"n9", which is not a node of this LAN/);
  } finally {
    await closeSock(s);
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
