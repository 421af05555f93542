import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { ReadChunk } from '../../../src/replication/reintegrate/apply-plan.js';
import { ReadAhead } from '../../../src/replication/files/read-ahead.js';

/** A source whose fetches stay pending until `settle`; records every fetch. */
function fakeSource() {
  const fetched: string[] = [];
  const pending = new Map<string, { resolve: (b: Buffer) => void; reject: (e: Error) => void }>();
  return {
    fetched,
    inFlight: () => pending.size,
    fetch: (path: string, offset: number, length: number) => {
      const key = `${path}@${offset}+${length}`;
      fetched.push(key);
      return new Promise<Buffer>((resolve, reject) => pending.set(key, { resolve, reject }));
    },
    settle(key: string, err?: Error) {
      const p = pending.get(key);
      assert.ok(p, `${key} is being fetched`);
      pending.delete(key);
      if (err) p!.reject(err);
      else p!.resolve(Buffer.from(key));
    },
  };
}

function chunks(...files: [string, number][]): ReadChunk[] {
  return files.flatMap(([path, n]) => Array.from({ length: n }, (_, i) => ({ path, offset: i * 10, length: 10 })));
}

test('reads ahead along the announced chunks, across files, in order, within the request and byte limits', async () => {
  const src = fakeSource();
  const ra = new ReadAhead(src.fetch, { requests: 3, bytes: 1000 });
  const seq = chunks(['a', 1], ['b', 1], ['c', 2], ['d', 1]);
  ra.announce(seq[Symbol.iterator]());
  assert.equal(src.fetched, ['a@0+10', 'b@0+10', 'c@0+10'], 'three requests in flight at most');
  const a = ra.read('a', 0, 10);
  assert.equal(src.fetched.length, 4, 'taking one fetch lets the next start');
  src.settle('a@0+10');
  assert.is((await a).toString(), 'a@0+10');
  for (const c of seq.slice(1)) {
    const r = ra.read(c.path, c.offset, c.length);
    src.settle(`${c.path}@${c.offset}+${c.length}`);
    assert.is((await r).toString(), `${c.path}@${c.offset}+${c.length}`);
  }
  assert.equal(src.fetched, seq.map((c) => `${c.path}@${c.offset}+${c.length}`), 'every chunk fetched once, nothing else');

  const bytes = fakeSource();
  const rb = new ReadAhead(bytes.fetch, { requests: 10, bytes: 25 });
  rb.announce(chunks(['x', 6])[Symbol.iterator]());
  assert.is(bytes.inFlight(), 3, 'no further fetch once 25 bytes are asked for (10 + 10 + 10)');
});

test('chunks the applier skips (its file is gone at the source) are dropped, not fetched again; a chunk further on is reached', async () => {
  const src = fakeSource();
  const ra = new ReadAhead(src.fetch, { requests: 2, bytes: 1000 });
  ra.announce(chunks(['gone', 5], ['next', 2])[Symbol.iterator]());
  const g = ra.read('gone', 0, 10);
  src.settle('gone@0+10', Object.assign(new Error('no such file'), { code: 'ENOENT' }));
  await g.then(() => assert.unreachable('the read of a gone file fails'), (e: NodeJS.ErrnoException) => assert.is(e.code, 'ENOENT'));
  // the applier moves on to the next file: gone@20 and beyond were never fetched, the sequence is scanned forward
  const n = ra.read('next', 0, 10);
  assert.equal(src.fetched, ['gone@0+10', 'gone@10+10', 'gone@20+10', 'next@0+10', 'next@10+10']);
  src.settle('next@0+10');
  assert.is((await n).toString(), 'next@0+10');
  src.settle('gone@10+10'); // fetched ahead for nothing: harmless
  src.settle('gone@20+10');
  const n2 = ra.read('next', 10, 10);
  src.settle('next@10+10');
  assert.is((await n2).toString(), 'next@10+10');
  assert.is(src.fetched.length, 5, 'nothing fetched twice');
});

test('a read outside the announced chunks is fetched on its own; then nothing more is read ahead', async () => {
  const src = fakeSource();
  const ra = new ReadAhead(src.fetch, { requests: 2, bytes: 1000 });
  ra.announce(chunks(['a', 3])[Symbol.iterator]());
  const r = ra.read('other', 5, 7);
  assert.equal(src.fetched, ['a@0+10', 'a@10+10', 'other@5+7']);
  src.settle('other@5+7');
  assert.is((await r).toString(), 'other@5+7');
  const a = ra.read('a', 20, 10);
  assert.equal(src.fetched.at(-1), 'a@20+10', 'fetched when asked, not before');
  assert.is(src.fetched.length, 4);
  src.settle('a@20+10');
  await a;
});

test('a failed fetch ahead that nobody reads is no unhandled rejection; a new announcement replaces the old one', async () => {
  const src = fakeSource();
  const ra = new ReadAhead(src.fetch, { requests: 2, bytes: 1000 });
  ra.announce(chunks(['a', 2])[Symbol.iterator]());
  src.settle('a@0+10', new Error('link down'));
  src.settle('a@10+10', new Error('link down'));
  await new Promise((r) => setImmediate(r)); // an unhandled rejection would end this test process
  ra.announce(chunks(['b', 1])[Symbol.iterator]());
  assert.equal(src.fetched.at(-1), 'b@0+10');
  const b = ra.read('b', 0, 10);
  src.settle('b@0+10');
  assert.is((await b).toString(), 'b@0+10');
  const a = ra.read('a', 0, 10); // not announced any more: fetched again, not the failed fetch ahead
  assert.is(src.fetched.at(-1), 'a@0+10');
  src.settle('a@0+10');
  assert.is((await a).toString(), 'a@0+10');
});

test.run();
