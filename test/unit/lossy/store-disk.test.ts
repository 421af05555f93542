// The same cases as model.test.ts, over the real store on a temp dir: what survives is read back from the
// directory itself, as the next boot (or a look at <lab dir>/<node>/root) would see it.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DiskStore } from '../../../src/lab/lossy/store-disk.js';
import { cases, Disk } from './cases.js';

const dirs: string[] = [];

function tree(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string) => {
    for (const name of fs.readdirSync(path.join(root, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const p = path.join(root, r);
      const st = fs.lstatSync(p);
      if (st.isDirectory()) {
        out[r] = '/';
        walk(r);
      } else if (st.isSymbolicLink()) out[r] = `-> ${fs.readlinkSync(p)}`;
      else out[r] = fs.readFileSync(p, 'latin1');
    }
  };
  walk('');
  return out;
}

function disk(files: Record<string, string> = {}): { d: Disk<DiskStore>; root: string; staging: string } {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-lossy-unit-'));
  dirs.push(base);
  const root = path.join(base, 'root');
  const staging = path.join(base, 'staging');
  fs.mkdirSync(root);
  const d = new Disk(new DiskStore(root, staging), () => tree(root));
  d.fill(files);
  return { d, root, staging };
}

test.after(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

for (const c of cases) {
  test(`disk: ${c.name}`, () => {
    const { d, staging } = disk(c.before ?? {});
    c.run(d);
    if (c.sees) assert.equal(d.view(), c.sees, 'the node sees the latest state');
    assert.equal(d.crash(), c.survives, 'after the power loss');
    assert.equal(fs.readdirSync(staging), [], 'staging is empty after a boot');
    assert.equal(d.view(), c.survives, 'a booted model serves what survived');
  });
}

test('disk: times on the host are the durable ones: fdatasync leaves mtime, entry changes leave the directories\' times', () => {
  const { d, root } = disk({ a: '/', b: '/', 'a/f': 'x' });
  const t = (p: string) => fs.lstatSync(path.join(root, p), { bigint: true }).mtimeNs / 1000n;
  const before = { a: t('a'), b: t('b'), f: t('a/f') };
  d.write('a/f', 0, 'more').fdatasync('a/f');
  assert.is(fs.readFileSync(path.join(root, 'a/f'), 'utf8'), 'more');
  assert.is(t('a/f'), before.f, 'fdatasync: the host file keeps the durable mtime');
  d.rename('a/f', 'b/f').create('b/new', 'n').fdatasync('b');
  assert.ok(fs.existsSync(path.join(root, 'b/f')));
  assert.is(t('a'), before.a, 'the source directory keeps its durable mtime');
  assert.is(t('b'), before.b, 'so does the target (fdatasync: entries only)');
  d.fsync('b');
  assert.is(t('b'), BigInt(d.node('b').attrs.mtimeUs), 'fsync(dir) makes its mtime durable');
  d.utime('b/f', 1_234_567_891).fsync('b/f');
  assert.is(t('b/f'), 1_234_567_891n, 'microsecond precision');
});

test('disk: a file open across renames and syncs keeps reading through the moved copy', () => {
  const { d, root } = disk({ f: 'abc' });
  d.hold('f').rename('f', 'g').fsync('').mkdir('sub').fsync('').rename('g', 'sub/g').fsync('sub');
  const out = Buffer.alloc(3);
  d.model.read(d.held('f'), 0, 3, out, 0);
  assert.is(out.toString(), 'abc');
  d.writeHeld('f', 0, 'X').fsyncHeld('f');
  assert.is(fs.readFileSync(path.join(root, 'sub/g'), 'utf8'), 'Xbc');
  d.release('f');
});

test('disk: a data sync writes runs of pages with pwritev: more pages than IOV_MAX, a gap, a clipped last page', () => {
  const { d, root } = disk({ f: 'durable head' });
  const big = Buffer.alloc(2500 * 4096);
  for (let i = 0; i < big.length; i += 4096) big.write(`page ${i / 4096}`, i);
  d.model.write(d.node('f'), 4096, big, false);
  d.write('f', 4096 * 3000 + 10, 'tail');
  d.fdatasync('f');
  const want = Buffer.alloc(4096 * 3000 + 14);
  want.write('durable head');
  big.copy(want, 4096);
  want.write('tail', 4096 * 3000 + 10);
  assert.ok(fs.readFileSync(path.join(root, 'f')).equals(want));
});

test('disk: FIFOs and names that are not UTF-8 on the host are left out of the view, logged once', () => {
  const { root, staging } = disk({ plain: 'p' });
  fs.writeFileSync(Buffer.concat([Buffer.from(`${root}/`), Buffer.from([0x66, 0xff])]), 'x');
  execFileSync('mkfifo', [path.join(root, 'fifo')]);
  const logs: string[] = [];
  const d = new Disk(new DiskStore(root, staging, (m) => logs.push(m)), () => tree(root));
  assert.equal(d.view(), { plain: 'p' });
  assert.is(logs.length, 1);
});

test.run();
