import net from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { generateKey } from '../../../src/daemon/key.js';
import { BugError, UserError } from '../../../src/errors.js';
import {
  type Channel, connectChannel, type ConnectOptions, type Listener, listenChannels, type ListenOptions, LOG_PER_MINUTE, MAX_FRAME,
  MAX_PENDING_PER_ADDRESS,
} from '../../../src/replication/stream/channel.js';
import { ReplicationError } from '../../../src/replication/stream/errors.js';
import { until } from './helpers.js';
import { startProxy } from './proxy.js';

// Loopback only. n2 (server) listens on 127.0.0.1; n1 (client) connects from 127.0.0.2; 127.0.0.3 is an outsider.
const KEY = generateKey();

interface Server {
  l: Listener;
  channels: Channel[];
  logs: string[];
}

async function server(extra: Partial<ListenOptions> = {}): Promise<Server> {
  const channels: Channel[] = [];
  const logs: string[] = [];
  const l = await listenChannels({
    host: '127.0.0.1',
    port: 0,
    self: 'n2',
    allowedPeers: [{ name: 'n1', addr: '127.0.0.2' }],
    module: 'db',
    key: KEY,
    onChannel: (ch) => channels.push(ch),
    log: (m) => logs.push(m),
    ...extra,
  });
  return { l, channels, logs };
}

function connect(s: Server, extra: Partial<ConnectOptions> = {}): Promise<Channel> {
  return connectChannel({ host: '127.0.0.1', port: s.l.port, localAddress: '127.0.0.2', self: 'n1', peer: 'n2', module: 'db', key: KEY, timeoutMs: 3000, ...extra });
}

function collect(ch: Channel): Buffer[] {
  const got: Buffer[] = [];
  ch.onFrame((f) => got.push(f));
  return got;
}

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a rejection');
}

test('handshake, then frames both ways, in order, with the peer and module known to each side', async () => {
  const s = await server();
  try {
    const c = await connect(s);
    await until('server channel', () => s.channels.length === 1);
    const sc = s.channels[0]!;
    assert.is(c.peer, 'n2');
    assert.is(sc.peer, 'n1');
    assert.is(sc.module, 'db');
    assert.match(sc.remote, /^127\.0\.0\.2:\d+$/);
    const atServer = collect(sc);
    const atClient = collect(c);
    for (let i = 0; i < 100; i++) void c.send(Buffer.from(`c${i}`));
    await sc.send(Buffer.alloc(0));
    await sc.send(Buffer.from('pong'));
    await until('100 frames', () => atServer.length === 100 && atClient.length === 2);
    assert.equal(atServer.map(String), [...Array(100).keys()].map((i) => `c${i}`));
    assert.equal(atClient.map(String), ['', 'pong']);
    assert.is(c.stats().framesSent, 100);
    assert.is(sc.stats().framesReceived, 100);
    assert.equal(s.l.stats().accepted, 1);
    c.close();
    assert.is(await c.closed, null);
    const e = await sc.closed;
    assert.ok(e instanceof ReplicationError && e.reason === 'link-lost', String(e));
    assert.match(e!.message, /n1 closed the replication channel of db/);
    assert.instance(await rejection(c.send(Buffer.from('late'))), ReplicationError);
  } finally {
    await s.l.close();
  }
});

test('the payload never crosses the wire in clear', async () => {
  const s = await server({ allowedPeers: [{ name: 'n1', addr: '127.0.0.1' }] });
  const proxy = await startProxy({ target: { host: '127.0.0.1', port: s.l.port }, localAddress: '127.0.0.1' });
  try {
    const c = await connectChannel({ host: '127.0.0.1', port: proxy.port, self: 'n1', peer: 'n2', module: 'db', key: KEY });
    await until('server channel', () => s.channels.length === 1);
    const got = collect(s.channels[0]!);
    const secret = Buffer.from('SECRET-PAYLOAD-'.repeat(20));
    await c.send(secret);
    await until('delivered', () => got.length === 1);
    assert.ok(got[0]!.equals(secret));
    const wire = Buffer.concat(proxy.seen.c2s);
    assert.is(wire.indexOf('SECRET-PAYLOAD'), -1);
    c.close();
  } finally {
    await proxy.close();
    await s.l.close();
  }
});

test('a 16 MiB frame passes; a larger one is refused to the sender', async () => {
  const s = await server();
  try {
    const c = await connect(s);
    await until('server channel', () => s.channels.length === 1);
    const got = collect(s.channels[0]!);
    const big = Buffer.alloc(MAX_FRAME, 0xab);
    await c.send(big);
    await until('big frame', () => got.length === 1, 10_000);
    assert.ok(got[0]!.equals(big));
    assert.instance(await rejection(c.send(Buffer.alloc(MAX_FRAME + 1))), BugError);
    c.close();
  } finally {
    await s.l.close();
  }
});

test('a frame given as parts arrives as one frame, joined; parts past 16 MiB in all or not Buffers are refused', async () => {
  const s = await server();
  try {
    const c = await connect(s);
    await until('server channel', () => s.channels.length === 1);
    const got = collect(s.channels[0]!);
    const head = Buffer.from('head:');
    const data = Buffer.alloc(3 * 1024 * 1024 + 7, 0x5c);
    await c.send([head, data, Buffer.alloc(0), Buffer.from(':tail')]);
    await c.send([Buffer.from('second')]);
    await until('two frames', () => got.length === 2, 10_000);
    assert.ok(got[0]!.equals(Buffer.concat([head, data, Buffer.from(':tail')])));
    assert.is(got[1]!.toString(), 'second', 'frames stay in order and apart');
    assert.instance(await rejection(c.send([Buffer.alloc(MAX_FRAME), Buffer.alloc(1)])), BugError);
    assert.instance(await rejection(c.send([Buffer.alloc(1), 'text' as unknown as Buffer])), BugError);
    await c.send([Buffer.from('still open')]);
    await until('third frame', () => got.length === 3, 10_000);
    assert.is(got[2]!.toString(), 'still open', 'a refused frame sends nothing and leaves the channel working');
    c.close();
  } finally {
    await s.l.close();
  }
});

test('send is backpressure-aware: it resolves only once the socket drained', async () => {
  const s = await server();
  try {
    const c = await connect(s);
    await until('server channel', () => s.channels.length === 1);
    const got = collect(s.channels[0]!);
    let resolved = false;
    const p = c.send(Buffer.alloc(4 * 1024 * 1024)).then(() => (resolved = true));
    await Promise.resolve();
    assert.not.ok(resolved, 'a 4 MiB write cannot go into the socket at once');
    const rest = Array.from({ length: 20 }, (_, i) => c.send(Buffer.alloc(1024 * 1024, i)));
    await Promise.all([p, ...rest]);
    await until('21 frames', () => got.length === 21, 10_000);
    assert.equal(got.slice(1).map((f) => f[0]), [...Array(20).keys()]);
    c.close();
  } finally {
    await s.l.close();
  }
});

test('frames that arrive before onFrame is set are kept for it; a throwing callback closes the channel', async () => {
  const s = await server();
  try {
    const c = await connect(s);
    await until('server channel', () => s.channels.length === 1);
    const sc = s.channels[0]!;
    await c.send(Buffer.from('early1'));
    await c.send(Buffer.from('early2'));
    await until('received', () => sc.stats().framesReceived === 2);
    const got: string[] = [];
    sc.onFrame((f) => {
      got.push(String(f));
      if (String(f) === 'boom') throw new Error('handler bug');
    });
    assert.equal(got, ['early1', 'early2']);
    await c.send(Buffer.from('boom'));
    const e = await sc.closed;
    assert.match(e!.message, /handler bug/);
    await c.closed;
  } finally {
    await s.l.close();
  }
});

test('wrong cluster key: refused on both sides with a clear error, and counted', async () => {
  const s = await server();
  try {
    const e = await rejection(connect(s, { key: generateKey() }));
    assert.instance(e, UserError);
    assert.match(e.message, /cluster key differs/);
    await until('server counted it', () => s.l.stats().refused.badKey === 1);
    assert.match(s.logs.join('\n'), /n1 failed authentication: wrong cluster key/);
    assert.is(s.channels.length, 0);
  } finally {
    await s.l.close();
  }
});

test('unknown node name, wrong source address, wrong module: refused with a clear error, counted, logged', async () => {
  const s = await server({ allowedPeers: [{ name: 'n1', addr: '127.0.0.2' }, { name: 'n3', addr: '127.0.0.3' }] });
  try {
    let e = await rejection(connect(s, { self: 'n9' }));
    assert.instance(e, UserError);
    assert.match(e.message, /does not know node "n9"/);
    e = await rejection(connect(s, { localAddress: '127.0.0.3' })); // n1 impersonated from n3's address
    assert.instance(e, UserError);
    assert.match(e.message, /does not come from n1's address/);
    e = await rejection(connect(s, { module: 'other' }));
    assert.instance(e, UserError);
    assert.match(e.message, /module "other" is not replicated there/);
    e = await rejection(connect(s, { self: 'n2' })); // a node claiming to be the server itself
    assert.match(e.message, /does not know node "n2"/);
    const st = s.l.stats();
    assert.equal([st.refused.unknownNode, st.refused.badAddress, st.refused.unknownModule, st.accepted], [2, 1, 1, 0]);
    assert.match(s.logs.join('\n'), /127\.0\.0\.3.*badAddress.*claims to be n1, whose address in cluster.xml is 127\.0\.0\.2/);
    assert.is(s.channels.length, 0);
  } finally {
    await s.l.close();
  }
});

test('the client refuses a server that is not the node it expects', async () => {
  const s = await server();
  try {
    const e = await rejection(connect(s, { peer: 'n7' }));
    assert.instance(e, UserError);
    assert.match(e.message, /the node there is "n2", not "n7"/);
  } finally {
    await s.l.close();
  }
});

test('handshake timeout on the server: a silent connection is dropped and counted', async () => {
  const s = await server({ handshakeTimeoutMs: 150 });
  try {
    const raw = net.connect({ host: '127.0.0.1', port: s.l.port, localAddress: '127.0.0.2' });
    const closed = new Promise((r) => raw.on('close', r));
    raw.on('error', () => {});
    await closed;
    assert.is(s.l.stats().refused.timeout, 1);
  } finally {
    await s.l.close();
  }
});

test('handshake timeout on the client: a server that never answers', async () => {
  const silent = net.createServer(() => {});
  await new Promise<void>((r) => silent.listen({ host: '127.0.0.1', port: 0 }, r));
  const conns: net.Socket[] = [];
  silent.on('connection', (c) => conns.push(c));
  try {
    const port = (silent.address() as net.AddressInfo).port;
    // the server hangs up after 20 s: a client that ignored its timeout fails with link-lost, not 'timeout', and does not hang
    const hangUp = setTimeout(() => { for (const c of conns) c.destroy(); }, 20_000);
    const e = await rejection(connectChannel({ host: '127.0.0.1', port, self: 'n1', peer: 'n2', module: 'db', key: KEY, timeoutMs: 200 }));
    clearTimeout(hangUp);
    assert.ok(e instanceof ReplicationError && e.reason === 'timeout', String(e));
    assert.match(e.message, /within 200 ms/);
  } finally {
    for (const c of conns) c.destroy();
    await new Promise((r) => silent.close(r));
  }
});

test('connection refused: link-lost', async () => {
  const s = await server();
  const port = s.l.port;
  await s.l.close();
  const e = await rejection(connectChannel({ host: '127.0.0.1', port, self: 'n1', peer: 'n2', module: 'db', key: KEY }));
  assert.ok(e instanceof ReplicationError && e.reason === 'link-lost', String(e));
  assert.match(e.message, /ECONNREFUSED/);
});

function rawExchange(port: number, bytes: Buffer): Promise<Buffer> {
  return new Promise((resolve) => {
    const got: Buffer[] = [];
    const c = net.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.2' }, () => c.write(bytes));
    c.on('data', (d) => got.push(d));
    c.on('error', () => {});
    c.on('close', () => resolve(Buffer.concat(got)));
  });
}

test('garbage, an oversized handshake length and another protocol version are refused before any authentication', async () => {
  const s = await server();
  try {
    assert.is((await rawExchange(s.l.port, Buffer.from('\x00\x00\x00\x05hello'))).length, 0);
    assert.is((await rawExchange(s.l.port, Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2, 3]))).length, 0);
    const v2 = Buffer.concat([Buffer.from('TDRP'), Buffer.from([2, 1, 0]), Buffer.alloc(32), Buffer.from([2]), Buffer.from('n1'), Buffer.from([2]), Buffer.from('db')]);
    const hdr = Buffer.alloc(4);
    hdr.writeUInt32BE(v2.length);
    const answer = await rawExchange(s.l.port, Buffer.concat([hdr, v2]));
    assert.is(answer.subarray(4, 8).toString(), 'TDRP');
    assert.is(answer[10], 1, 'status: unsupported version');
    const st = s.l.stats().refused;
    assert.equal([st.malformed, st.version], [2, 1]);
    assert.is(s.channels.length, 0);
  } finally {
    await s.l.close();
  }
});

test('too many connections in handshake from one address: the extra ones are dropped', async () => {
  const s = await server({ handshakeTimeoutMs: 5000 });
  const socks: net.Socket[] = [];
  try {
    for (let i = 0; i < MAX_PENDING_PER_ADDRESS + 3; i++) {
      const c = net.connect({ host: '127.0.0.1', port: s.l.port, localAddress: '127.0.0.2' });
      c.on('error', () => {});
      socks.push(c);
    }
    await until('3 dropped', () => s.l.stats().refused.busy === 3);
  } finally {
    for (const c of socks) c.destroy();
    await s.l.close();
  }
});

test('a host without the key cannot lock the SECOND out: connections from addresses not in cluster.xml are closed at once', async () => {
  // Before: 32 silent connections from anywhere held every handshake slot for the handshake timeout, and the SECOND's
  // own connection was dropped as busy for as long as the flood went on.
  const s = await server({ handshakeTimeoutMs: 10_000 });
  const flood: net.Socket[] = [];
  let answered = 0;
  try {
    for (let i = 0; i < 64; i++) {
      const c = net.connect({ host: '127.0.0.1', port: s.l.port, localAddress: '127.0.0.9' });
      c.on('error', () => {});
      c.on('data', () => answered++);
      flood.push(c);
    }
    await until('64 refused', () => s.l.stats().refused.badAddress === 64);
    const ch = await connect(s); // n1, from its own address
    await until('accepted', () => s.channels.length === 1);
    ch.close();
    assert.is(answered, 0, 'not a byte sent to them (no hello, no nonce)');
    assert.is(s.l.stats().refused.busy, 0);
    assert.ok(s.logs.filter((l) => /127\.0\.0\.9/.test(l)).length <= LOG_PER_MINUTE, 'logging is rate-limited');
    assert.match(s.logs.join('\n'), /dropped a connection from 127\.0\.0\.9: not the address of a node of this LAN/);
  } finally {
    for (const c of flood) c.destroy();
    await s.l.close();
  }
});

// ── a man in the middle ─────────────────────────────────────────────────────────────────────────────────────────

async function throughProxy(tamper: Parameters<typeof startProxy>[0]['tamper']) {
  const s = await server({ allowedPeers: [{ name: 'n1', addr: '127.0.0.1' }] });
  const proxy = await startProxy({ target: { host: '127.0.0.1', port: s.l.port }, localAddress: '127.0.0.1', tamper });
  const c = await connectChannel({ host: '127.0.0.1', port: proxy.port, self: 'n1', peer: 'n2', module: 'db', key: KEY });
  await until('server channel', () => s.channels.length === 1);
  const sc = s.channels[0]!;
  const frames = collect(sc);
  for (let i = 0; i < 6; i++) await c.send(Buffer.from(`frame-${i}`));
  const reason = await Promise.race([sc.closed, new Promise<null>((r) => setTimeout(() => r(null), 3000))]);
  const cleanup = async () => {
    c.close();
    await proxy.close();
    await s.l.close();
  };
  return { reason, got: frames.map(String), cleanup };
}

// c2s frame index 2 is the first data frame, so `frame-i` is index i + 2
const tamperCases: Array<[string, (dir: string, i: number, f: Buffer, seen: Buffer[]) => Buffer[], RegExp, string[]]> = [
  ['a flipped ciphertext byte', (d, i, f) => {
    if (d === 'c2s' && i === 4) f[8]! ^= 0x01;
    return [f];
  }, /frame 2 failed authentication/, ['frame-0', 'frame-1']],
  ['a flipped tag byte', (d, i, f) => {
    if (d === 'c2s' && i === 4) f[f.length - 1]! ^= 0x80;
    return [f];
  }, /frame 2 failed authentication/, ['frame-0', 'frame-1']],
  ['a dropped frame', (d, i, f) => (d === 'c2s' && i === 3 ? [] : [f]), /frame 1 failed authentication/, ['frame-0']],
  ['a duplicated frame', (d, i, f) => (d === 'c2s' && i === 3 ? [f, f] : [f]), /frame 2 failed authentication/, ['frame-0', 'frame-1']],
  ['a replayed earlier frame', (d, i, f, seen) => (d === 'c2s' && i === 5 ? [seen[2]!, f] : [f]), /frame 3 failed authentication/,
    ['frame-0', 'frame-1', 'frame-2']],
  ['two frames swapped', (() => {
    let held: Buffer | null = null;
    return (d: string, i: number, f: Buffer) => {
      if (d !== 'c2s') return [f];
      if (i === 3) {
        held = f;
        return [];
      }
      if (i === 4) return [f, held!];
      return [f];
    };
  })(), /frame 1 failed authentication/, ['frame-0']],
  ['a changed length header', (d, i, f) => {
    if (d === 'c2s' && i === 3) {
      const g = Buffer.concat([f, Buffer.from([0])]);
      g.writeUInt32BE(f.length - 4 + 1);
      return [g];
    }
    return [f];
  }, /frame 1 failed authentication/, ['frame-0']],
  ['an oversized length header', (d, i, f) => {
    if (d === 'c2s' && i === 3) {
      const g = Buffer.alloc(4);
      g.writeUInt32BE(0x7fffffff);
      return [g];
    }
    return [f];
  }, /2147483647-byte frame announced/, ['frame-0']],
];

for (const [name, tamper, re, expected] of tamperCases) {
  test(`man in the middle: ${name} closes the channel with a clear error; nothing after it is delivered`, async () => {
    const r = await throughProxy(tamper);
    try {
      assert.ok(r.reason instanceof ReplicationError, `closed with ${String(r.reason)}`);
      assert.match(r.reason!.message, re);
      assert.ok(['tampered', 'protocol'].includes((r.reason as ReplicationError).reason));
      assert.equal(r.got, expected);
    } finally {
      await r.cleanup();
    }
  });
}

test('man in the middle: a replayed handshake (old hello + proof to a new connection) fails authentication', async () => {
  const s = await server({ allowedPeers: [{ name: 'n1', addr: '127.0.0.1' }] });
  const proxy = await startProxy({ target: { host: '127.0.0.1', port: s.l.port }, localAddress: '127.0.0.1' });
  try {
    const c = await connectChannel({ host: '127.0.0.1', port: proxy.port, self: 'n1', peer: 'n2', module: 'db', key: KEY });
    await c.send(Buffer.from('recorded'));
    await until('recorded', () => proxy.seen.c2s.length === 3);
    c.close();
    // replay the recorded client stream (hello, proof, data) on a fresh connection from the allowed address
    const answer = await new Promise<Buffer>((resolve) => {
      const got: Buffer[] = [];
      const raw = net.connect({ host: '127.0.0.1', port: s.l.port, localAddress: '127.0.0.1' }, () => raw.write(Buffer.concat(proxy.seen.c2s)));
      raw.on('data', (d) => got.push(d));
      raw.on('error', () => {});
      raw.on('close', () => resolve(Buffer.concat(got)));
    });
    assert.ok(answer.length > 0, 'the server answered the hello with a fresh nonce');
    await until('refused', () => s.l.stats().refused.badKey === 1);
    assert.is(s.l.stats().accepted, 1, 'only the genuine connection');
  } finally {
    await proxy.close();
    await s.l.close();
  }
});

test('listen: a busy port is a UserError; close() stops pending handshakes', async () => {
  const s = await server({ handshakeTimeoutMs: 10_000 });
  try {
    const e = await rejection(listenChannels({ host: '127.0.0.1', port: s.l.port, self: 'n2', allowedPeers: [], module: 'db', key: KEY, onChannel: () => {} }));
    assert.instance(e, UserError);
    assert.match(e.message, /EADDRINUSE/);
    const raw = net.connect({ host: '127.0.0.1', port: s.l.port, localAddress: '127.0.0.2' });
    raw.on('error', () => {});
    const closed = new Promise((r) => raw.on('close', r));
    await new Promise((r) => raw.on('connect', r));
    await s.l.close();
    await closed;
  } finally {
    await s.l.close().catch(() => {});
  }
});

test.run();
