// Fuzz: the reintegration requests a peer sends to the primary (src/replication/files/ctl.ts, the FileReplicator's
// handlers, source-tree.ts). A FileReplicator primary (FakeMountSystem, ALONE) serves a small tree; a peer with a
// reintegration session sends fuzzed request bodies (ops and fields of every type, paths mutated), and now and then a
// fuzzed raw frame on a fresh channel. Contracts under test: every request is answered, with a result or a CtlError,
// within INPUT_MS; a frame that is not a ctl message closes only its own channel (ReplicationError 'protocol'); no
// unhandled rejection; no single allocation above what a valid request may cause (READ_MAX, or a 16 MiB block of
// `sums`); nothing outside the tree is served. Files: /tmp/tandem-fuzz-ctl-*; removed at the end.
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { generateKey } from '../../../src/daemon/key.js';
import { CtlError, CtlPeer } from '../../../src/replication/files/ctl.js';
import { encode } from '../../../src/replication/stream/codec.js';
import { ReplicationError } from '../../../src/replication/stream/errors.js';
import { channelPair } from '../memory-channel.js';
import { backingOf, testReplicator } from '../replicator-fixture.js';
import { AllocationWatch, failure, FUZZ_N, Fuzzer, INPUT_MS } from './fuzz.js';

const GEN = '2@n1';
const SECRET = 'SECRET-OUTSIDE-THE-TREE';
const PATHS = ['a.txt', 'sub/b.txt', 'sub/link', 'sub', 'big', 'escape/secret', 'sub/up/a.txt', 'missing', '.', '..', '/etc/passwd', '', 'a.txt/x'];
// not `begin` (a new session closes the channel of the one it replaces) nor `done` (hands the channel to the live stream)
const OPS = ['read', 'read', 'read', 'sums', 'sums', 'readlink', 'manifest', 'manifest', 'plan', 'pass', 'nope', undefined];

function value(f: Fuzzer, kind: 'int' | 'path' | 'any'): unknown {
  const r = f.random();
  if (kind === 'int' && r < 0.7) return f.pick([0, 1, 4096, 65536, 1 << 20, (1 << 20) + 1, 16 << 20, (16 << 20) + 1, 2 ** 31, 2 ** 53 - 1, 2 ** 53, -1, 0.5, 1e308, f.int(1 << 21)]);
  if (kind === 'path' && r < 0.7) {
    const p = f.pick(PATHS);
    return f.chance(0.7) ? p : f.mutate(Buffer.from(p), PATHS.map((x) => Buffer.from(x)), 5000).toString('utf8');
  }
  return f.pick<unknown>([null, true, false, '', 'x'.repeat(f.int(5000)), [], [1, 'a'], {}, { path: 'a.txt' }, -0, 7, '0', f.bytes(8).toString('latin1')]);
}

function body(f: Fuzzer): Record<string, unknown> {
  const b: Record<string, unknown> = {};
  const op = f.pick(OPS);
  if (op !== undefined) b.op = f.chance(0.95) ? op : f.pick([null, 7, '', 'READ', 'begin2', ['read']]);
  if (op === 'pass') b.final = false; // a final pass freezes the mounts until `done` hands the channel over
  if (f.chance(0.9)) b.dir = f.chance(0.85) ? 0 : value(f, 'any');
  if (f.chance(0.9)) b.path = value(f, 'path');
  for (const k of ['offset', 'length', 'blockSize', 'first', 'count']) if (f.chance(0.7)) b[k] = value(f, 'int');
  if (f.chance(0.3)) b.after = value(f, 'path');
  // (not `re`: a message with `re` is an answer by definition, and an answer to nothing is dropped)
  if (f.chance(0.1)) b[f.pick(['attach', 'answered', 'ok', 'error', 'code', '__proto__', 'extra'])] = value(f, 'any');
  return b;
}

test(`ctl: ${FUZZ_N} fuzzed reintegration requests are each answered; fuzzed frames close only their channel`, async () => {
  const base = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-fuzz-ctl-')));
  fs.mkdirSync(path.join(base, 'data'));
  fs.mkdirSync(path.join(base, 'outside'));
  fs.writeFileSync(path.join(base, 'outside', 'secret'), SECRET);
  const logs: string[] = [];
  const prim = testReplicator({ base, self: 'n1', peer: 'n2', port: 1, key: generateKey(), logs });
  const unhandled: unknown[] = [];
  const onUnhandled = (e: unknown) => unhandled.push(e);
  process.on('unhandledRejection', onUnhandled);
  const watch = new AllocationWatch();
  const f = new Fuzzer();
  const outcomes = { answered: 0, refused: 0, framesClosed: 0, framesAnswered: 0 };
  const connect = () => {
    const { a, b } = channelPair({ a: 'n1', b: 'n2', module: 'db' });
    prim.accept(a);
    return b;
  };
  const peer = new CtlPeer(connect());
  try {
    await prim.setRole('primary', { gen: GEN, awaitPeer: false, recordBase: '1@n1' });
    const src = backingOf(base, 'n1');
    fs.writeFileSync(path.join(src, 'a.txt'), 'hello');
    fs.mkdirSync(path.join(src, 'sub'));
    fs.writeFileSync(path.join(src, 'sub', 'b.txt'), 'inside');
    fs.symlinkSync('../a.txt', path.join(src, 'sub', 'link'));
    fs.symlinkSync('..', path.join(src, 'sub', 'up'));
    fs.symlinkSync(path.join(base, 'outside'), path.join(src, 'escape'));
    fs.writeFileSync(path.join(src, 'big'), Buffer.alloc(256 << 10, 3));
    const begin = () => peer.request({ op: 'begin', expectGen: GEN, targetGen: null, clean: false, full: false, quarantine: false });
    await begin();
    watch.start();

    const one = async (i: number) => {
      if (i % 50 === 49) {
        // a fuzzed raw frame on a channel of its own, then a well-formed request: answered, or the channel closed
        const raw = connect();
        const got: Buffer[] = [];
        raw.onFrame((fr) => got.push(fr));
        const frame = f.input([encode({ type: 'ctl', body: body(f) }), encode({ type: 'ctl', body: { re: 1, ok: true } }), encode({ type: 'heartbeat' })], 4096);
        await raw.send(frame);
        await raw.send(encode({ type: 'ctl', body: { id: 424242, op: 'read', dir: 0, path: 'a.txt', offset: 0, length: 1 } }));
        let settled = false;
        const r = await within(Promise.race([
          raw.closed.then((e) => ({ closed: e })),
          (async () => {
            while (!settled) {
              if (got.some((g) => g.includes('424242'))) return { answered: true };
              await new Promise((res) => setImmediate(res));
            }
            return { answered: false };
          })(),
        ]), i, frame).finally(() => { settled = true; });
        if ('closed' in r) {
          if (!(r.closed instanceof ReplicationError)) throw failure(`a fuzzed frame closed its channel with ${String(r.closed)}`, i, frame);
          outcomes.framesClosed++;
        } else {
          outcomes.framesAnswered++;
          raw.close();
        }
        return;
      }
      const b = body(f);
      const shown = JSON.stringify(b).slice(0, 300);
      const r = await within(peer.request(b).then((x) => ({ ok: x }), (e: unknown) => ({ err: e })), i, shown);
      if ('err' in r) {
        if (!(r.err instanceof CtlError)) throw failure(`a request failed with ${String(r.err)} instead of a CtlError`, i, shown);
        outcomes.refused++;
      } else {
        outcomes.answered++;
        const served = `${r.ok.data?.toString('latin1') ?? ''}${JSON.stringify(r.ok.body)}`;
        if (served.includes(SECRET)) throw failure('something from outside the tree was served', i, shown);
      }
    };
    const IN_FLIGHT = 8;
    for (let i = 0; i < FUZZ_N; i += IN_FLIGHT) {
      await Promise.all(Array.from({ length: Math.min(IN_FLIGHT, FUZZ_N - i) }, (_, k) => one(i + k)));
      if (await Promise.race([peer.ch.closed.then(() => true), Promise.resolve(false)])) {
        throw new Error(`the session channel closed: ${String(await peer.ch.closed)}`);
      }
    }
    watch.stop();
    assert.equal(unhandled.map(String), [], 'no unhandled rejection');
    assert.ok(watch.largest <= (16 << 20) + 4096, `largest allocation ${watch.largest} B`);
    console.log(`  ${FUZZ_N} inputs: ${JSON.stringify(outcomes)}; largest allocation ${watch.largest} B`);
    assert.ok(outcomes.answered > 0 && outcomes.refused > 0 && outcomes.framesClosed > 0);
  } catch (e) {
    console.log(logs.slice(-10).join('\n'));
    throw e;
  } finally {
    watch.stop();
    process.off('unhandledRejection', onUnhandled);
    peer.close();
    await prim.setRole('off').catch(() => {});
    await fsp.rm(base, { recursive: true, force: true });
  }
});

/** `p`, or a failure naming the input when it has not settled within INPUT_MS (a hang). */
async function within<T>(p: Promise<T>, i: number, input: string | Buffer): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(failure(`no answer within ${INPUT_MS} ms`, i, input)), INPUT_MS);
    })]);
  } finally {
    clearTimeout(timer);
  }
}

test.run();
