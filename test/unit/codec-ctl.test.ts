// The `ctl` message of the replication codec (src/replication/stream/codec.ts): u32 JSON length | JSON body (an
// object) | u32 data length | data. Round trips, the limits, and hostile bytes (decode never throws).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BugError } from '../../src/errors.js';
import { CODEC_VERSION, decode, encode, MAX_CTL_JSON, MAX_WRITE } from '../../src/replication/stream/codec.js';

const CTL = 7;

/** a ctl message built by hand: body bytes and data bytes as given, lengths as claimed (default: the real ones) */
function raw(body: Buffer | string, data: Buffer = Buffer.alloc(0), claim: { body?: number; data?: number } = {}): Buffer {
  const b = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  const n = Buffer.alloc(4);
  n.writeUInt32BE(claim.body ?? b.length);
  const d = Buffer.alloc(4);
  d.writeUInt32BE(claim.data ?? data.length);
  return Buffer.concat([Buffer.from([CODEC_VERSION, CTL]), n, b, d, data]);
}

function refused(buf: Buffer, re: RegExp): void {
  let r;
  try {
    r = decode(buf);
  } catch (e) {
    assert.unreachable(`decode threw: ${(e as Error).message}`);
    return;
  }
  assert.not.ok(r.ok, `decoded as ${JSON.stringify(r.ok && r.msg)}`);
  if (!r.ok) assert.match(r.error, re);
}

test('ctl round-trips without data: no `data` key after decoding', () => {
  const m = { type: 'ctl' as const, body: { id: 1, op: 'begin', expectGen: '7@n1', targetGen: null, clean: true, nested: { a: [1, 'é', false] } } };
  const d = decode(encode(m));
  assert.ok(d.ok);
  if (d.ok) assert.equal(d.msg, m);
  // an empty data buffer is the same as no data on the wire
  const e = decode(encode({ type: 'ctl', body: { re: 3, ok: true }, data: Buffer.alloc(0) }));
  assert.ok(e.ok);
  if (e.ok) assert.equal(e.msg, { type: 'ctl', body: { re: 3, ok: true } });
});

test('ctl round-trips with data (binary, and exactly MAX_WRITE bytes)', () => {
  const small = { type: 'ctl' as const, body: { re: 9, ok: true, n: 2 }, data: Buffer.from([0, 255, 10, 13, 0]) };
  const d = decode(encode(small));
  assert.ok(d.ok);
  if (d.ok) assert.equal(d.msg, small);
  const big = { type: 'ctl' as const, body: {}, data: Buffer.alloc(MAX_WRITE, 0xab) };
  const b = decode(encode(big));
  assert.ok(b.ok && b.msg.type === 'ctl' && b.msg.data?.equals(big.data));
});

test('ctl: a body of exactly MAX_CTL_JSON bytes fits; one byte more does not encode (BugError)', () => {
  const overhead = JSON.stringify({ s: '' }).length;
  const fits = { type: 'ctl' as const, body: { s: 'x'.repeat(MAX_CTL_JSON - overhead) } };
  const d = decode(encode(fits));
  assert.ok(d.ok && d.msg.type === 'ctl' && (d.msg.body.s as string).length === MAX_CTL_JSON - overhead);
  assert.throws(() => encode({ type: 'ctl', body: { s: 'x'.repeat(MAX_CTL_JSON - overhead + 1) } }), (e: Error) => e instanceof BugError && /ctl body/.test(e.message));
  // multi-byte characters count as bytes, not as characters
  assert.throws(() => encode({ type: 'ctl', body: { s: 'é'.repeat(MAX_CTL_JSON / 2) } }), (e: Error) => e instanceof BugError);
});

test('ctl: data over MAX_WRITE does not encode (BugError)', () => {
  assert.throws(() => encode({ type: 'ctl', body: {}, data: Buffer.alloc(MAX_WRITE + 1) }), (e: Error) => e instanceof BugError && /ctl data/.test(e.message));
});

test('decode refuses a ctl body that is not JSON', () => {
  for (const body of ['', 'not json', '{"a":1', '{a:1}', "{'a':1}", '{"a":1}x']) refused(raw(body), /ctl: body is not JSON/);
  // bytes that are not UTF-8 at all
  refused(raw(Buffer.from([0xff, 0xfe, 0x7b])), /ctl: body is not JSON/);
});

test('decode refuses a ctl body that is JSON but not an object: array, null, number, string, boolean', () => {
  for (const body of ['[]', '[{"id":1}]', 'null', '42', '-0.5', '"id"', 'true']) refused(raw(body), /ctl: body is not an object/);
});

test('decode refuses a claimed JSON length over MAX_CTL_JSON before reading it (nothing else sent)', () => {
  refused(raw('', Buffer.alloc(0), { body: MAX_CTL_JSON + 1 }).subarray(0, 6), /ctl: body of \d+ bytes \(max \d+\)/);
  refused(raw('', Buffer.alloc(0), { body: 0xffffffff }).subarray(0, 6), /max/);
});

test('decode refuses a claimed data length over MAX_WRITE before reading it', () => {
  refused(raw('{}', Buffer.alloc(0), { data: MAX_WRITE + 1 }), /ctl: data of \d+ bytes \(max \d+\)/);
  refused(raw('{}', Buffer.alloc(0), { data: 0xffffffff }), /max/);
});

test('decode refuses every truncation of a ctl message, and a trailing byte', () => {
  const full = encode({ type: 'ctl', body: { re: 1, ok: true, entries: [['a', { size: 1 }]] }, data: Buffer.from('0123456789') });
  assert.ok(decode(full).ok);
  for (let n = 0; n < full.length; n++) refused(full.subarray(0, n), n === 0 ? /truncated|version/ : /truncated|not JSON/);
  refused(Buffer.concat([full, Buffer.from([0])]), /1 trailing bytes/);
  // the body length claims more than the message holds
  refused(raw('{}', Buffer.alloc(0), { body: 100 }), /truncated/);
  // the data length claims more than the message holds
  refused(raw('{}', Buffer.from('abc'), { data: 4 }), /truncated/);
});

test('decode gives a copy of the data: changing the frame afterwards does not change it', () => {
  const frame = encode({ type: 'ctl', body: {}, data: Buffer.from('abc') });
  const d = decode(frame);
  frame.fill(0);
  assert.ok(d.ok && d.msg.type === 'ctl' && d.msg.data?.toString() === 'abc');
});

test.run();
