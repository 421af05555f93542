import { createHmac, randomBytes } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { decode, encode, MAX_DATAGRAM, ReplayGuard, VERSION, type HeartbeatFrame } from '../../../src/daemon/heartbeat-codec.js';
import { deriveKey, generateKey } from '../../../src/daemon/key.js';
import { BugError } from '../../../src/errors.js';

const KEY = deriveKey(generateKey(), 'heartbeat');
const FRAME: HeartbeatFrame = {
  from: 'node1',
  to: 'node2',
  boot: 7,
  seq: 42n,
  echo: 3,
  lan: 'lan0',
  body: { t: 'hb', modules: { web: 'PRIM' }, n: [1, 2.5, null, true], s: 'é✓' },
};

/** Builds a datagram field by field with a valid MAC, to reach the checks that run after authentication. */
function raw(parts: { from?: Buffer; to?: Buffer; boot?: number; seq?: bigint; echo?: number; lan?: Buffer; body?: Buffer; bodyLen?: number }, key = KEY): Buffer {
  const from = parts.from ?? Buffer.from('node1');
  const to = parts.to ?? Buffer.from('node2');
  const lan = parts.lan ?? Buffer.from('lan0');
  const body = parts.body ?? Buffer.from('{}');
  const head = Buffer.alloc(4 + 1 + 1);
  head.write('TDHB', 0, 'ascii');
  head[4] = VERSION;
  head[5] = from.length;
  const mid = Buffer.alloc(4 + 8 + 4 + 1);
  mid.writeUInt32BE(parts.boot ?? 1, 0);
  mid.writeBigUInt64BE(parts.seq ?? 1n, 4);
  mid.writeUInt32BE(parts.echo ?? 0, 12);
  mid[16] = lan.length;
  const len = Buffer.alloc(4);
  len.writeUInt32BE(parts.bodyLen ?? body.length, 0);
  const unsigned = Buffer.concat([head, from, Buffer.from([to.length]), to, mid, lan, len, body]);
  return Buffer.concat([unsigned, createHmac('sha256', key).update(unsigned).digest()]);
}

function remac(buf: Buffer, key = KEY): Buffer {
  const unsigned = buf.subarray(0, buf.length - 32);
  return Buffer.concat([unsigned, createHmac('sha256', key).update(unsigned).digest()]);
}

test('encode/decode round-trips every field', () => {
  const d = decode(KEY, encode(KEY, FRAME));
  assert.equal(d, { ok: true, ...FRAME });
  const big = { ...FRAME, from: 'nœud-ü', to: 'nœud-ö', lan: 'réplication', boot: 0xffffffff, seq: (1n << 64n) - 1n, echo: 0xffffffff, body: null };
  assert.equal(decode(KEY, encode(KEY, big)), { ok: true, ...big });
  const { echo: _, ...noEcho } = FRAME;
  assert.equal(decode(KEY, encode(KEY, noEcho)), { ok: true, ...FRAME, echo: 0 }, 'echo defaults to 0');
});

test('the hand-built layout matches encode (the documented wire format)', () => {
  const built = raw({ from: Buffer.from('node1'), boot: 7, seq: 42n, echo: 9, lan: Buffer.from('lan0'), body: Buffer.from('[1]') });
  assert.ok(built.equals(encode(KEY, { from: 'node1', to: 'node2', boot: 7, seq: 42n, echo: 9, lan: 'lan0', body: [1] })));
});

test('a datagram made with another key is badMac', () => {
  const other = deriveKey(generateKey(), 'heartbeat');
  assert.equal(decode(KEY, encode(other, FRAME)), { ok: false, reason: 'badMac' });
});

test('every single-bit flip is rejected', () => {
  const good = encode(KEY, FRAME);
  for (let i = 0; i < good.length; i++) {
    for (const bit of [0x01, 0x80]) {
      const bad = Buffer.from(good);
      bad[i] ^= bit;
      const d = decode(KEY, bad);
      assert.is(d.ok, false, `flip at byte ${i}`);
    }
  }
});

test('every truncation and every extension of a valid datagram is rejected without throwing', () => {
  const good = encode(KEY, FRAME);
  for (let n = 0; n < good.length; n++) assert.is(decode(KEY, good.subarray(0, n)).ok, false, `truncated to ${n}`);
  assert.is(decode(KEY, Buffer.concat([good, Buffer.from([0])])).ok, false);
  assert.is(decode(KEY, Buffer.concat([good, good])).ok, false);
});

test('fuzz: 2000 random buffers and 2000 random corruptions never throw and are never accepted', () => {
  const good = encode(KEY, FRAME);
  for (let i = 0; i < 2000; i++) {
    const len = Math.floor(Math.random() * (i % 10 === 0 ? MAX_DATAGRAM + 200 : 200));
    const buf = randomBytes(len);
    if (i % 2 === 0 && len >= 5) {
      buf.write('TDHB', 0, 'ascii'); // get past the magic to reach the length checks
      buf[4] = VERSION;
    }
    assert.is(decode(KEY, buf).ok, false);
  }
  for (let i = 0; i < 2000; i++) {
    const cut = Math.floor(Math.random() * good.length);
    const bad = Buffer.from(good.subarray(0, cut + 1));
    const flips = 1 + Math.floor(Math.random() * 4);
    for (let f = 0; f < flips; f++) bad[Math.floor(Math.random() * bad.length)] ^= 1 + Math.floor(Math.random() * 255);
    if (bad.equals(good)) continue;
    assert.is(decode(KEY, bad).ok, false);
  }
});

test('length fields larger than the payload are malformed, even with a valid MAC', () => {
  assert.equal(decode(KEY, raw({ bodyLen: 0xffffffff })), { ok: false, reason: 'malformed' });
  assert.equal(decode(KEY, raw({ bodyLen: 3 })), { ok: false, reason: 'malformed' });
  const bigFrom = raw({});
  bigFrom[5] = 255;
  assert.equal(decode(KEY, remac(bigFrom)), { ok: false, reason: 'malformed' });
  const bigTo = raw({});
  bigTo[6 + 5] = 255; // recipient length byte
  assert.equal(decode(KEY, remac(bigTo)), { ok: false, reason: 'malformed' });
  const bigLan = raw({});
  bigLan[6 + 5 + 1 + 5 + 16] = 200; // LAN length byte
  assert.equal(decode(KEY, remac(bigLan)), { ok: false, reason: 'malformed' });
});

test('empty names, wrong magic and unknown version are malformed', () => {
  assert.equal(decode(KEY, raw({ from: Buffer.alloc(0) })), { ok: false, reason: 'malformed' });
  assert.equal(decode(KEY, raw({ to: Buffer.alloc(0) })), { ok: false, reason: 'malformed' });
  assert.equal(decode(KEY, raw({ lan: Buffer.alloc(0) })), { ok: false, reason: 'malformed' });
  const magic = raw({});
  magic.write('XDHB', 0, 'ascii');
  assert.equal(decode(KEY, remac(magic)), { ok: false, reason: 'malformed' });
  for (const v of [1, 2, 3, 5]) {
    const version = raw({});
    version[4] = v; // 1: the format before `echo`, 2: before the recipient, 3: one message per datagram
    assert.equal(decode(KEY, remac(version)), { ok: false, reason: 'malformed' }, `version ${v}`);
  }
});

test('authenticated but invalid UTF-8 or JSON is malformed', () => {
  const badUtf8 = Buffer.from([0x6e, 0xc3, 0x28]);
  assert.equal(decode(KEY, raw({ from: badUtf8 })), { ok: false, reason: 'malformed' });
  assert.equal(decode(KEY, raw({ to: badUtf8 })), { ok: false, reason: 'malformed' });
  assert.equal(decode(KEY, raw({ lan: badUtf8 })), { ok: false, reason: 'malformed' });
  assert.equal(decode(KEY, raw({ body: Buffer.from([0x22, 0xff, 0x22]) })), { ok: false, reason: 'malformed' });
  for (const body of ['', '{', '{"a":}', 'undefined', '[1,]', '{}{}']) {
    assert.equal(decode(KEY, raw({ body: Buffer.from(body) })), { ok: false, reason: 'malformed' }, body);
  }
  assert.equal(decode(KEY, raw({ body: Buffer.from('{"a":1}') })).ok, true);
});

test('oversized datagrams are refused on decode (even with a valid MAC) and on encode', () => {
  const huge = raw({ body: Buffer.from(JSON.stringify('x'.repeat(MAX_DATAGRAM))) });
  assert.ok(huge.length > MAX_DATAGRAM);
  assert.equal(decode(KEY, huge), { ok: false, reason: 'malformed' });
  assert.throws(() => encode(KEY, { ...FRAME, body: 'x'.repeat(MAX_DATAGRAM) }), (e: unknown) => e instanceof BugError);
  // the largest body that fits is accepted
  const overhead = encode(KEY, { ...FRAME, body: '' }).length;
  const fits = { ...FRAME, body: 'y'.repeat(MAX_DATAGRAM - overhead) };
  assert.is(encode(KEY, fits).length, MAX_DATAGRAM);
  assert.is(decode(KEY, encode(KEY, fits)).ok, true);
});

test('decode does not throw on non-Buffer input', () => {
  assert.is(decode(KEY, undefined as unknown as Buffer).ok, false);
  assert.is(decode(KEY, 'TDHB' as unknown as Buffer).ok, false);
});

test('encode refuses caller mistakes with a BugError', () => {
  const bad: Array<Partial<HeartbeatFrame>> = [
    { from: '' },
    { from: 'x'.repeat(256) },
    { to: '' },
    { to: 'x'.repeat(256) },
    { lan: '' },
    { boot: -1 },
    { boot: 2 ** 32 },
    { boot: 1.5 },
    { seq: -1n },
    { seq: 1n << 64n },
    { seq: 3 as unknown as bigint },
    { echo: -1 },
    { echo: 2 ** 32 },
    { body: undefined },
    { body: () => 1 },
    { body: { n: 1n } },
  ];
  for (const patch of bad) {
    assert.throws(() => encode(KEY, { ...FRAME, ...patch }), (e: unknown) => e instanceof BugError, JSON.stringify(Object.keys(patch)));
  }
});

test('ReplayGuard accepts only strictly newer (boot, seq) per sender and LAN', () => {
  const g = new ReplayGuard();
  assert.ok(g.accept('n1', 'lan0', 5, 10n));
  assert.not.ok(g.accept('n1', 'lan0', 5, 10n), 'duplicate');
  assert.not.ok(g.accept('n1', 'lan0', 5, 9n), 'older seq (replayed)');
  assert.ok(g.accept('n1', 'lan0', 5, 11n));
  assert.not.ok(g.accept('n1', 'lan0', 4, 1000n), 'older boot, even with a higher seq');
  assert.ok(g.accept('n1', 'lan0', 6, 1n), 'new boot restarts seq');
  assert.not.ok(g.accept('n1', 'lan0', 5, 12n), 'the previous boot is now old');
  assert.equal(g.lastAccepted('n1', 'lan0'), { boot: 6, seq: 1n });
  // independent per LAN and per sender
  assert.ok(g.accept('n1', 'lan1', 5, 10n));
  assert.ok(g.accept('n2', 'lan0', 1, 1n));
  assert.ok(g.accept('n1', 'lan0', 6, 2n));
});

test('ReplayGuard.forget lets a sender whose state was wiped back in', () => {
  const g = new ReplayGuard();
  assert.ok(g.accept('n1', 'lan0', 9, 1n));
  assert.ok(g.accept('n1', 'lan1', 9, 1n));
  assert.ok(g.accept('n10', 'lan0', 9, 1n));
  assert.not.ok(g.accept('n1', 'lan0', 1, 1n));
  g.forget('n1');
  assert.ok(g.accept('n1', 'lan0', 1, 1n));
  assert.ok(g.accept('n1', 'lan1', 1, 1n));
  assert.not.ok(g.accept('n10', 'lan0', 1, 1n), 'forget(n1) must not touch n10');
});

test.run();
