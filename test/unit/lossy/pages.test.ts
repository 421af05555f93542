import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PAGE, PendingData } from '../../../src/lab/lossy/pages.js';

/** A durable copy in memory; counts reads. */
function durable(content: string) {
  const buf = Buffer.from(content, 'latin1');
  const r = {
    reads: 0,
    read: (out: Buffer, outOff: number, len: number, off: number) => {
      r.reads++;
      if (off >= buf.length) return 0;
      return buf.copy(out, outOff, off, Math.min(off + len, buf.length));
    },
  };
  return r;
}

function readAll(d: PendingData, src: ReturnType<typeof durable>): string {
  const out = Buffer.alloc(d.size);
  assert.is(d.read(0, d.size + 10, out, 0, src.read), d.size);
  return out.toString('latin1');
}

/** What the durable copy becomes when the plan is applied (the store's job, done here by hand). */
function apply(d: PendingData, before: string): string {
  const p = d.plan();
  const b = Buffer.alloc(Math.max(p.size, p.keep));
  Buffer.from(before, 'latin1').copy(b, 0, 0, p.keep);
  for (const [i, page] of p.pages) page.copy(b, i * PAGE, 0, Math.min(PAGE, p.size - i * PAGE));
  return b.subarray(0, p.size).toString('latin1');
}

test('a write inside the durable copy reads its page in first and shows through reads', () => {
  const base = 'a'.repeat(PAGE + 100);
  const src = durable(base);
  const d = new PendingData(base.length);
  d.write(10, Buffer.from('XYZ'), src.read);
  assert.is(d.bytes, PAGE, 'one page held');
  assert.is(d.size, base.length);
  assert.is(readAll(d, src), `${'a'.repeat(10)}XYZ${'a'.repeat(PAGE + 100 - 13)}`);
  assert.is(apply(d, base), readAll(d, src));
});

test('appends across pages grow the size; bytes past the durable end are zeros, not stale data', () => {
  const src = durable('0123456789');
  const d = new PendingData(10);
  d.write(PAGE * 2 + 5, Buffer.from('end'), src.read);
  assert.is(d.size, PAGE * 2 + 8);
  const all = readAll(d, src);
  assert.is(all.slice(0, 10), '0123456789');
  assert.is(all.slice(10, PAGE * 2 + 5), '\0'.repeat(PAGE * 2 - 5));
  assert.is(all.slice(-3), 'end');
  assert.is(d.pageCount, 1, 'only the written page is held; the hole costs nothing');
  assert.is(apply(d, '0123456789'), all);
});

test('truncate down then up: the cut durable bytes read as zeros and are cut from the durable copy', () => {
  const base = 'b'.repeat(100);
  const src = durable(base);
  const d = new PendingData(100);
  d.truncate(40);
  d.truncate(60);
  assert.is(d.bytes, 0, 'size changes cost no memory');
  const all = readAll(d, src);
  assert.is(all, 'b'.repeat(40) + '\0'.repeat(20));
  assert.is(d.plan().keep, 40);
  assert.is(apply(d, base), all);
});

test('truncate inside a held page zeroes its tail, so growing again shows zeros', () => {
  const src = durable('');
  const d = new PendingData(0);
  d.write(0, Buffer.from('hello world'), src.read);
  d.truncate(5);
  d.truncate(11);
  assert.is(readAll(d, src), 'hello\0\0\0\0\0\0');
  d.truncate(0);
  assert.is(d.bytes, 0, 'pages past the size are dropped');
});

test('reads past the size return nothing; a read that starts inside returns up to the size', () => {
  const src = durable('abc');
  const d = new PendingData(3);
  const out = Buffer.alloc(10);
  assert.is(d.read(3, 10, out, 0, src.read), 0);
  assert.is(d.read(1, 10, out, 0, src.read), 2);
  assert.is(out.subarray(0, 2).toString(), 'bc');
});

test.run();
