// Fuzz: what the replication channel decodes from a peer (src/replication/stream/): the frame splitter (FrameReader,
// the u32 length prefix, checked before anything is buffered for a frame) and the message codec (codec.ts decode,
// the plaintext of each frame, ctl messages included). Contracts under test:
// - decode never throws: { ok: false, error: string }, or a message that encodes back to exactly the same bytes
//   (the format is canonical), except ctl (JSON text) and nack (its text is shortened on encode);
// - FrameReader throws only ReplicationError('protocol'), returns only frames that arrived whole, never keeps more
//   than what was pushed, and never allocates more than that.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { decode, encode, type Message } from '../../../src/replication/stream/codec.js';
import { ReplicationError } from '../../../src/replication/stream/errors.js';
import { FrameReader } from '../../../src/replication/stream/frames.js';
import { failure, fuzzSync } from './fuzz.js';

const D = '/srv/app/data';
const messages: Message[] = [
  { type: 'hello', module: 'db', generation: '3@node1', mode: 'none', dirs: [D, '/srv/other'] },
  { type: 'ack', upTo: 12345 },
  { type: 'nack', seq: 9, errno: 28, code: 'ENOSPC', message: 'no space left on device' },
  { type: 'heartbeat' },
  { type: 'sync', seq: 4, dir: D, path: 'pg_wal/0001', datasync: true },
  { type: 'change', seq: 1, change: { dir: D, op: 'write', path: 'a/b.dat', offset: 4096, data: Buffer.from('hello world') } },
  { type: 'change', seq: 2, change: { dir: D, sync: 'data', op: 'truncate', path: 'f', size: 2 ** 40 } },
  { type: 'change', seq: 3, change: { dir: D, op: 'create', path: 'n', mode: 0o100644 } },
  { type: 'change', seq: 5, change: { dir: D, op: 'mknod', path: 'n', mode: 0o100600, rdev: 0 } },
  { type: 'change', seq: 6, change: { dir: D, op: 'rename', from: 'x', to: 'y/z', flags: 1 } },
  { type: 'change', seq: 7, change: { dir: D, op: 'symlink', target: '../t', path: 'l' } },
  { type: 'change', seq: 8, change: { dir: D, op: 'link', from: 'x', to: 'y' } },
  { type: 'change', seq: 9, change: { dir: D, sync: 'full', op: 'chown', path: 'x', uid: -1, gid: 5 } },
  { type: 'change', seq: 10, change: { dir: D, op: 'utimens', path: 'x', atime: null, mtime: [1_700_000_000, 999_999_999] } },
  { type: 'change', seq: 11, change: { dir: D, op: 'setxattr', path: 'x', name: 'user.a', value: Buffer.from([1, 2, 3]), flags: 0 } },
  { type: 'change', seq: 12, change: { dir: D, op: 'removexattr', path: 'x', name: 'user.a' } },
  { type: 'change', seq: 13, change: { dir: D, op: 'fallocate', path: 'x', mode: 1, offset: 0, length: 65536 } },
  { type: 'change', seq: 14, change: { dir: D, op: 'unlink', path: 'x' } },
  { type: 'ctl', body: { id: 1, op: 'read', dir: 0, path: 'a.txt', offset: 0, length: 1 << 20 } },
  { type: 'ctl', body: { re: 1, ok: true, entries: [['a', { type: 'file', size: 1, mtimeNs: '1' }]], next: null }, data: Buffer.alloc(64, 7) },
];
const corpus = messages.map(encode);

test('codec decode: fuzzed messages never throw; what is accepted is exactly what it encodes to', () => {
  let ok = 0;
  const stats = fuzzSync({ name: 'codec decode', corpus, maxLen: 1 << 16, allocLimit: (b) => b.length + 4096 }, (input, i) => {
    let d: ReturnType<typeof decode>;
    try {
      d = decode(input);
    } catch (e) {
      throw failure(`decode threw ${String(e)}`, i, input);
    }
    if (!d.ok) {
      if (typeof d.error !== 'string' || d.error === '') throw failure('a refusal without a reason', i, input);
      return;
    }
    ok++;
    if (d.msg.type === 'ctl' || d.msg.type === 'nack') return;
    let again: Buffer;
    try {
      again = encode(d.msg);
    } catch (e) {
      throw failure(`a decoded message cannot be encoded again: ${String(e)}`, i, input);
    }
    if (!again.equals(input)) throw failure(`decoded then encoded differs: ${again.toString('hex').slice(0, 200)}`, i, input);
  });
  console.log(`  ${stats.inputs} inputs, ${ok} valid; slowest ${stats.slowestMs.toFixed(2)} ms, largest allocation ${stats.largestAlloc} B`);
  assert.ok(ok > 0);
});

test('FrameReader: fuzzed byte streams in random chunks: only protocol errors, only whole frames, bounded buffering', () => {
  // streams: frames (u32 length + body) of corpus messages back to back, mutated (lengths included)
  const frame = (b: Buffer) => Buffer.concat([Buffer.from([b.length >>> 24, (b.length >>> 16) & 255, (b.length >>> 8) & 255, b.length & 255]), b]);
  const streams = [Buffer.concat(corpus.map(frame)), Buffer.concat(corpus.slice(0, 3).map(frame)), frame(Buffer.alloc(0))];
  let frames = 0;
  let refused = 0;
  const stats = fuzzSync({ name: 'FrameReader', corpus: streams, maxLen: 1 << 16, allocLimit: (b) => b.length + 64 }, (input, i, f) => {
    const max = f.pick([1024, 1 << 16, 16 << 20]);
    const r = new FrameReader(max, f.chance(0.5) ? 16 : 0);
    let got = 0;
    try {
      for (let at = 0; at < input.length;) {
        const n = 1 + f.int(Math.min(4096, input.length - at));
        r.push(input.subarray(at, at + n));
        at += n;
        for (let fr = r.next(); fr !== null; fr = r.next()) {
          if (fr.length > max) throw failure(`a ${fr.length}-byte frame over the ${max}-byte limit`, i, input);
          got += 4 + fr.length;
          frames++;
        }
      }
    } catch (e) {
      if (e instanceof ReplicationError && e.reason === 'protocol') {
        refused++;
        return;
      }
      throw failure(`FrameReader threw ${String(e)}`, i, input);
    }
    const left = r.drain().length;
    if (got + left !== input.length) throw failure(`bytes lost or invented: ${got} in frames + ${left} left of ${input.length}`, i, input);
  });
  console.log(`  ${stats.inputs} streams: ${frames} frames, ${refused} refused; slowest ${stats.slowestMs.toFixed(2)} ms, largest allocation ${stats.largestAlloc} B`);
  assert.ok(frames > 0 && refused > 0);
});

test.run();
