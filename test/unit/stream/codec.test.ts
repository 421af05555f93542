import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BugError } from '../../../src/errors.js';
import { decode, encode, encodeParts, MAX_WRITE, type Message, XATTR_SIZE_MAX } from '../../../src/replication/stream/codec.js';
import { rng } from './helpers.js';

const D = '/srv/app/data';

/** One of every message and every op, with edge values. */
const SAMPLES: Message[] = [
  { type: 'hello', module: 'db', generation: '7@node1', mode: 'none', dirs: [D, '/srv/app/logs'] },
  { type: 'hello', module: 'm', generation: '', mode: 'second', dirs: [] },
  { type: 'change', seq: 1, change: { dir: D, op: 'write', path: 'a/b.db', offset: 4096, data: Buffer.from('hello') } },
  { type: 'change', seq: 2, change: { dir: D, op: 'write', path: 'é/日本', offset: Number.MAX_SAFE_INTEGER, data: Buffer.alloc(0), sync: 'data' } },
  { type: 'change', seq: 3, change: { dir: D, op: 'truncate', path: 'f', size: 0, sync: 'full' } },
  { type: 'change', seq: 4, change: { dir: D, op: 'create', path: 'new', mode: 0o640 } },
  { type: 'change', seq: 5, change: { dir: D, op: 'mknod', path: 'n', mode: 0o100644, rdev: 0 } },
  { type: 'change', seq: 6, change: { dir: D, op: 'mkdir', path: 'd', mode: 0o755 } },
  { type: 'change', seq: 7, change: { dir: D, op: 'unlink', path: 'with\nnewline' } },
  { type: 'change', seq: 8, change: { dir: D, op: 'rmdir', path: 'd' } },
  { type: 'change', seq: 9, change: { dir: D, op: 'rename', from: 'a', to: 'b', flags: 1 } },
  { type: 'change', seq: 10, change: { dir: D, op: 'symlink', target: '../../etc/passwd', path: 'l' } },
  { type: 'change', seq: 11, change: { dir: D, op: 'link', from: 'a', to: 'h' } },
  { type: 'change', seq: 12, change: { dir: D, op: 'chmod', path: '.', mode: 0o4755 } },
  { type: 'change', seq: 13, change: { dir: D, op: 'chown', path: 'a', uid: -1, gid: 1000 } },
  { type: 'change', seq: 14, change: { dir: D, op: 'utimens', path: 'a', atime: null, mtime: [1700000000, 999999999] } },
  { type: 'change', seq: 15, change: { dir: D, op: 'utimens', path: 'a', atime: [-5, 0], mtime: null } },
  { type: 'change', seq: 16, change: { dir: D, op: 'setxattr', path: 'a', name: 'user.x', value: Buffer.from([0, 1, 2]), flags: 2 } },
  { type: 'change', seq: 17, change: { dir: D, op: 'removexattr', path: 'a', name: 'user.x' } },
  { type: 'change', seq: 18, change: { dir: D, op: 'fallocate', path: 'a', mode: 3, offset: 0, length: 1 << 20 } },
  { type: 'sync', seq: 19, dir: D, path: 'a', datasync: true },
  { type: 'sync', seq: 20, dir: D, path: '.', datasync: false },
  { type: 'sync', seq: 21, dir: D, path: '.', datasync: false, syncfs: true },
  { type: 'ack', upTo: 0 },
  { type: 'ack', upTo: 123456789 },
  { type: 'nack', seq: 4, errno: 28, code: 'ENOSPC', message: 'no space left on device' },
  { type: 'heartbeat' },
];

test('every message and op round-trips exactly', () => {
  for (const m of SAMPLES) {
    const b = encode(m);
    const d = decode(b);
    assert.ok(d.ok, `${m.type}: ${!d.ok && d.error}`);
    if (d.ok) assert.equal(d.msg, m);
  }
});

test('encodeParts: the parts joined are the encoding; a large payload is its own part, not copied; small fields are joined', () => {
  const data = Buffer.alloc(1 << 20, 7);
  const m: Message = { type: 'ctl', body: { re: 3, ok: true }, data };
  const parts = encodeParts(m);
  assert.ok(Buffer.concat(parts).equals(encode(m)));
  assert.is(parts.length, 2, 'the header fields in one part, the data in another');
  assert.ok(parts[1] === data, 'the data buffer itself, not a copy');
  const small: Message = { type: 'ctl', body: { op: 'read' }, data: Buffer.from('abc') };
  assert.is(encodeParts(small).length, 1);
  assert.ok(encodeParts(small)[0]!.equals(encode(small)));
  assert.is(encodeParts({ type: 'heartbeat' }).length, 1);
});

test('a write of MAX_WRITE bytes and an xattr of XATTR_SIZE_MAX bytes fit; one more byte does not encode', () => {
  const big = Buffer.alloc(MAX_WRITE, 7);
  const d = decode(encode({ type: 'change', seq: 1, change: { dir: D, op: 'write', path: 'f', offset: 0, data: big } }));
  assert.ok(d.ok && d.msg.type === 'change' && d.msg.change.op === 'write' && d.msg.change.data.equals(big));
  assert.throws(() => encode({ type: 'change', seq: 1, change: { dir: D, op: 'write', path: 'f', offset: 0, data: Buffer.alloc(MAX_WRITE + 1) } }),
    (e: Error) => e instanceof BugError);
  assert.throws(() => encode({ type: 'change', seq: 1, change: { dir: D, op: 'setxattr', path: 'f', name: 'user.a', value: Buffer.alloc(XATTR_SIZE_MAX + 1), flags: 0 } }),
    (e: Error) => e instanceof BugError);
});

test('encode refuses what a caller must never build (BugError)', () => {
  const bad: unknown[] = [
    { type: 'ack', upTo: -1 },
    { type: 'ack', upTo: 1.5 },
    { type: 'ack', upTo: 2 ** 53 },
    { type: 'change', seq: 1, change: { dir: D, op: 'unlink', path: 'x'.repeat(65536) } },
    { type: 'change', seq: 1, change: { dir: D, op: 'unlink', path: 'lone \ud800 surrogate' } },
    { type: 'change', seq: 1, change: { dir: D, op: 'chmod', path: 'a', mode: 2 ** 32 } },
    { type: 'change', seq: 1, change: { dir: D, op: 'utimens', path: 'a', atime: [0, 1e9], mtime: null } },
    { type: 'change', seq: 1, change: { dir: D, op: 'write', path: 'a', offset: 0, data: 'not a buffer' } },
    { type: 'change', seq: 1, change: { dir: D, op: 'bogus', path: 'a' } },
    { type: 'change', seq: 1, change: { dir: D, op: 'unlink', path: 'a', sync: 'sometimes' } },
    { type: 'hello', module: 'm', generation: 'g', mode: 'async', dirs: [] },
    { type: 'hello', module: 'm', generation: 'g', mode: 'none', dirs: Array(256).fill('/d') },
    { type: 'hello', module: 'm'.repeat(256), generation: 'g', mode: 'none', dirs: [] },
  ];
  for (const m of bad) assert.throws(() => encode(m as Message), (e: Error) => e instanceof BugError, JSON.stringify(m).slice(0, 100));
});

test('a nack message longer than 1 KiB is shortened, not refused', () => {
  const d = decode(encode({ type: 'nack', seq: 1, errno: 5, code: 'EIO', message: 'é'.repeat(2000) }));
  assert.ok(d.ok && d.msg.type === 'nack' && Buffer.byteLength(d.msg.message) <= 1024 && d.msg.message.endsWith('…'));
});

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

test('decode refuses, with a reason, each kind of malformed input', () => {
  const cases: Array<[string, Buffer, RegExp]> = [
    ['empty', Buffer.alloc(0), /truncated/],
    ['other version', hex('02 06'), /version 2/],
    ['unknown type', hex('01 09'), /unknown message type 9/],
    ['trailing byte', hex('01 06 00'), /1 trailing bytes/],
    ['truncated ack', hex('01 04 0000'), /truncated/],
    ['u64 over 2^53', hex('01 04 0020000000000000'), /larger than 2\^53/],
    ['unknown op', Buffer.concat([hex('01 02 0000000000000001 0001 41 00 63')]), /unknown op 99/],
    ['unknown sync flag', Buffer.concat([hex('01 02 0000000000000001 0001 41 07 06 0001 61')]), /sync flag 7/],
    ['invalid UTF-8 path', hex('01 02 0000000000000001 0001 41 00 06 0002 c328'), /not valid UTF-8/],
    ['UTF-8-encoded surrogate', hex('01 02 0000000000000001 0001 41 00 06 0003 eda080'), /not valid UTF-8/],
    // announces 4 GiB of write data in a 30-byte message: refused from the header, nothing allocated
    ['write length over MAX_WRITE', hex('01 02 0000000000000001 0001 41 00 01 0001 61 0000000000000000 ffffffff'), /max 4194304/],
    ['write length over the bytes present', hex('01 02 0000000000000001 0001 41 00 01 0001 61 0000000000000000 00000010 00'), /truncated/],
    ['nanoseconds ≥ 1e9', hex('01 02 0000000000000001 0001 41 00 0d 0001 61 000000000000000 0 3b9aca00 0000000000000000 00000000'), /nanoseconds/],
    ['omitted time with seconds', hex('01 02 0000000000000001 0001 41 00 0d 0001 61 0000000000000001 ffffffff 0000000000000000 00000000'), /omitted time/],
    ['hello mode 2', hex('01 01 01 6d 00 02 00'), /unknown mode 2/],
    ['sync kind 3', hex('01 03 0000000000000001 0001 41 03 0001 61'), /kind must be 0, 1 or 2/],
    ['xattr value over the limit', hex('01 02 0000000000000001 0001 41 00 0e 0001 61 01 61 00010001'), /max 65536/],
  ];
  for (const [name, buf, re] of cases) {
    const d = decode(buf);
    assert.not.ok(d.ok, `${name} was accepted`);
    if (!d.ok) assert.match(d.error, re, `${name}: ${d.error}`);
  }
  assert.not.ok(decode('not a buffer' as unknown as Buffer).ok);
});

test('every strict prefix of every valid message is refused', () => {
  for (const m of SAMPLES) {
    const b = encode(m);
    for (let n = 0; n < b.length; n++) assert.not.ok(decode(b.subarray(0, n)).ok, `${m.type} cut at ${n}`);
  }
});

test('fuzz: 5000 random, truncated and mutated buffers never throw, and what is accepted is canonical', () => {
  const r = rng(0x7a3d);
  const valid = SAMPLES.map(encode);
  let accepted = 0;
  for (let i = 0; i < 5000; i++) {
    let b: Buffer;
    const kind = i % 4;
    if (kind === 0) {
      b = Buffer.from(Array.from({ length: Math.floor(r() * 64) }, () => Math.floor(r() * 256)));
      if (r() < 0.5 && b.length > 1) b[0] = 1; // get past the version byte more often
    } else {
      const base = valid[Math.floor(r() * valid.length)]!;
      b = Buffer.from(base);
      if (kind === 1) {
        b = b.subarray(0, Math.floor(r() * b.length));
      } else if (kind === 2) {
        const flips = 1 + Math.floor(r() * 4);
        for (let f = 0; f < flips; f++) b[Math.floor(r() * b.length)] = Math.floor(r() * 256);
      } else {
        // splice random bytes into the middle, or append
        const at = Math.floor(r() * (b.length + 1));
        const extra = Buffer.from(Array.from({ length: 1 + Math.floor(r() * 8) }, () => Math.floor(r() * 256)));
        b = Buffer.concat([b.subarray(0, at), extra, b.subarray(at)]);
      }
    }
    let d: ReturnType<typeof decode>;
    try {
      d = decode(b);
    } catch (e) {
      throw new Error(`decode threw on ${b.toString('hex')}: ${(e as Error).message}`);
    }
    assert.type(d.ok, 'boolean');
    if (d.ok) {
      accepted++;
      assert.equal(encode(d.msg).toString('hex'), b.toString('hex'), 'an accepted buffer must be the canonical encoding');
    } else {
      assert.type(d.error, 'string');
    }
  }
  assert.ok(accepted > 0 && accepted < 5000, `accepted ${accepted}`);
});

test.run();
