import { test } from 'uvu';
import { rng } from '../rng.js';
import * as assert from 'uvu/assert';
import { BugError } from '../../../src/errors.js';
import { ExtentMap, MAX_RANGES_PER_FILE, type FsChange, type Range } from '../../../src/replication/record/extent-map.js';


function mapOf(changes: FsChange[]): ExtentMap {
  const m = new ExtentMap();
  for (const c of changes) m.apply(c);
  return m;
}

test('writes merge overlapping and adjacent ranges, and keep disjoint ones apart', () => {
  const m = mapOf([
    { op: 'write', path: 'f', offset: 10, length: 10 },
    { op: 'write', path: 'f', offset: 30, length: 5 },
    { op: 'write', path: 'f', offset: 20, length: 5 }, // adjacent to [10,20)
    { op: 'write', path: 'f', offset: 100, length: 1 },
    { op: 'write', path: 'f', offset: 0, length: 0 }, // empty: nothing
  ]);
  assert.equal(m.extentsOf('f'), [[10, 25], [30, 35], [100, 101]]);
  m.apply({ op: 'write', path: 'f', offset: 24, length: 7 });
  assert.equal(m.extentsOf('f'), [[10, 35], [100, 101]]);
  assert.is(m.totalBytes(), 26);
  assert.equal(m.extentsOf('other'), []);
});

test('random writes to a huge file: ranges are coarsened past the cap, every changed byte still covered', () => {
  const m = new ExtentMap();
  const writes: [number, number][] = [];
  const r = rng(7);
  for (let i = 0; i < 20_000; i++) {
    const off = Math.floor(r() * 2 ** 34); // a 16 GiB file, 4 KiB pages
    writes.push([off - (off % 4096), 4096]);
    m.apply({ op: 'write', path: 'db', offset: writes[i]![0], length: 4096 });
  }
  const got = m.extentsOf('db');
  assert.ok(got.length <= MAX_RANGES_PER_FILE, `${got.length} ranges`);
  for (let i = 1; i < got.length; i++) assert.ok(got[i]![0] > got[i - 1]![1], 'sorted and disjoint');
  for (const [off, len] of writes) {
    const hit = got.find(([s, e]) => s <= off && off + len <= e);
    assert.ok(hit, `write at ${off} is covered`);
  }
});

test('truncate drops ranges beyond the new size; growth after a known size is recorded', () => {
  const m = mapOf([
    { op: 'write', path: 'f', offset: 0, length: 10 },
    { op: 'write', path: 'f', offset: 50, length: 50 },
    { op: 'truncate', path: 'f', size: 60 },
  ]);
  assert.equal(m.extentsOf('f'), [[0, 10], [50, 60]]);
  m.apply({ op: 'truncate', path: 'f', size: 5 });
  assert.equal(m.extentsOf('f'), [[0, 5]]);
  m.apply({ op: 'truncate', path: 'f', size: 200 }); // zeros now cover what the base had at [5, 200)
  assert.equal(m.extentsOf('f'), [[0, 200]]);
  const g = mapOf([{ op: 'truncate', path: 'g', size: 10 }, { op: 'write', path: 'g', offset: 40, length: 2 }]);
  assert.equal(g.extentsOf('g'), [[10, 42]], 'the hole after a known size is recorded');
  const [c] = g.changedFiles();
  assert.is(c!.truncated, true);
  assert.is(c!.size, 42);
});

test('rename carries extents to the new path; unlink drops them; delete + recreate is "replaced"', () => {
  const m = mapOf([
    { op: 'write', path: 'a', offset: 0, length: 4 },
    { op: 'rename', from: 'a', to: 'b' },
  ]);
  assert.equal(m.extentsOf('b'), [[0, 4]]);
  assert.equal(m.extentsOf('a'), []);
  assert.is(m.originOf('b'), 'a');
  assert.is(m.originOf('a'), undefined);
  assert.equal(m.changedFiles().map((c) => [c.path, c.status, c.from]), [['b', 'renamed', 'a']]);
  m.apply({ op: 'unlink', path: 'b' });
  assert.equal(m.extentsOf('b'), []);
  assert.equal(m.deletedBasePaths(), ['a', 'b']); // 'b' was overwritten by the rename (if it existed)
  assert.is(m.totalBytes(), 0);

  const r = mapOf([
    { op: 'write', path: 'd/f', offset: 0, length: 4 },
    { op: 'unlink', path: 'd/f' },
    { op: 'create', path: 'd/f' },
  ]);
  const f = r.changedFiles().find((c) => c.path === 'd/f')!;
  assert.is(f.status, 'replaced');
  assert.is(f.from, null);
  const d = r.changedFiles().find((c) => c.path === 'd')!;
  assert.is(d.meta, true, 'the parent directory changed (its times go to the peer)');
  assert.is(d.status, 'modified');
  assert.is(mapOf([{ op: 'create', path: 'n' }]).changedFiles()[0]!.status, 'created');
});

test('directory rename: children follow, recorded children keep their extents, the old name is empty', () => {
  const m = mapOf([
    { op: 'write', path: 'a/x', offset: 8, length: 8 },
    { op: 'rename', from: 'a', to: 'b' },
    { op: 'mkdir', path: 'a' },
    { op: 'rename', from: 'b/y', to: 'a/y' },
  ]);
  assert.equal(m.extentsOf('b/x'), [[8, 16]]);
  assert.is(m.originOf('b/x'), 'a/x');
  assert.is(m.originOf('b/z'), 'a/z', 'an untouched child resolves through its renamed parent');
  assert.is(m.originOf('a'), null);
  assert.is(m.originOf('a/y'), 'a/y');
  assert.is(m.originOf('a/z'), undefined, 'nothing from the base is under the new directory');
  assert.is(m.originOf('b/y'), undefined);
  const byPath = new Map(m.changedFiles().map((c) => [c.path, c]));
  assert.is(byPath.get('b')!.status, 'renamed');
  assert.is(byPath.get('b/x')!.status, 'modified', 'moved with its directory: no move of its own');
  assert.is(byPath.get('a/y')!.status, 'renamed', 'same name, but its parent is a new directory: it must move');
  assert.is(byPath.get('a')!.status, 'created');
});

test('swap through a temporary name: each path holds the other base object, nothing base is deleted', () => {
  const m = mapOf([
    { op: 'write', path: 'p', offset: 0, length: 1 },
    { op: 'rename', from: 'p', to: 'tmp' },
    { op: 'rename', from: 'q', to: 'p' },
    { op: 'rename', from: 'tmp', to: 'q' },
  ]);
  assert.is(m.originOf('p'), 'q');
  assert.is(m.originOf('q'), 'p');
  assert.equal(m.extentsOf('q'), [[0, 1]]);
  // 'tmp' did not exist in the base: deleting an absent base path is a no-op for the receiver
  assert.equal(m.deletedBasePaths(), ['tmp']);
  // renaming back gives the identity again
  m.apply({ op: 'rename', from: 'p', to: 't2' });
  m.apply({ op: 'rename', from: 'q', to: 'p' });
  m.apply({ op: 'rename', from: 't2', to: 'q' });
  assert.is(m.originOf('p'), 'p');
  assert.is(m.originOf('q'), 'q');
});

test('metadata operations mark a path without touching its data; rmdir after its children', () => {
  const m = mapOf([
    { op: 'chmod', path: 'x' },
    { op: 'xattr', path: 'd/y' },
    { op: 'unlink', path: 'd/y' },
    { op: 'rmdir', path: 'd' },
  ]);
  const x = m.changedFiles().find((c) => c.path === 'x')!;
  assert.equal([x.meta, x.status, x.extents, x.size], [true, 'modified', [], null]);
  assert.equal(m.deletedBasePaths(), ['d/y', 'd']);
  assert.is(m.originOf('d/y'), undefined);
  assert.ok(!m.changedFiles().some((c) => c.path.startsWith('d')), 'nothing recorded under a removed directory');
});

test('within(prefix) keeps one replicated directory and strips its name', () => {
  const m = mapOf([
    { op: 'write', path: '0/a', offset: 0, length: 3 },
    { op: 'rename', from: '0/a', to: '0/b' },
    { op: 'write', path: '1/c', offset: 0, length: 9 },
  ]);
  const z = m.within('0');
  assert.equal(z.extentsOf('b'), [[0, 3]]);
  assert.is(z.originOf('b'), 'a');
  assert.is(z.totalBytes(), 3);
  assert.is(m.within('1').totalBytes(), 9);
});

test('JSON round trip keeps everything; a foreign object is refused', () => {
  const m = mapOf([
    { op: 'write', path: 'a/x', offset: 3, length: 4 },
    { op: 'rename', from: 'a', to: 'b' },
    { op: 'unlink', path: 'c' },
    { op: 'truncate', path: 'e', size: 9 },
  ]);
  const r = ExtentMap.fromJSON(JSON.parse(JSON.stringify(m)));
  assert.equal(r.changedFiles(), m.changedFiles());
  assert.equal(r.deletedBasePaths(), m.deletedBasePaths());
  assert.is(r.originOf('a/x'), undefined);
  const c = m.clone();
  c.apply({ op: 'write', path: 'b/x', offset: 100, length: 1 });
  assert.is(m.totalBytes(), 4, 'a clone is independent');
  assert.throws(() => ExtentMap.fromJSON({ v: 2 } as never), (e: unknown) => e instanceof BugError);
});

test('malformed changes are bugs in the caller (BugError)', () => {
  const m = new ExtentMap();
  for (const c of [
    { op: 'write', path: '/abs', offset: 0, length: 1 },
    { op: 'write', path: 'a/../b', offset: 0, length: 1 },
    { op: 'write', path: '', offset: 0, length: 1 },
    { op: 'write', path: 'a', offset: -1, length: 1 },
    { op: 'write', path: 'a', offset: 0, length: 1.5 },
    { op: 'truncate', path: 'a', size: -3 },
    { op: 'rename', from: 'a', to: 'a/b' },
    { op: 'frobnicate', path: 'a' },
  ]) {
    assert.throws(() => m.apply(c as FsChange), (e: unknown) => e instanceof BugError, JSON.stringify(c));
  }
  assert.ok(m.isEmpty());
});

test('100k namespace changes and writes: renamed, unlinked and written files all accounted for (timing: bench/extent-map.ts)', () => {
  const m = new ExtentMap();
  for (let d = 0; d < 200; d++) {
    m.apply({ op: 'mkdir', path: `d${d}` });
    for (let f = 0; f < 200; f++) m.apply({ op: 'create', path: `d${d}/f${f}` });
  }
  for (let d = 0; d < 200; d += 2) m.apply({ op: 'rename', from: `d${d}`, to: `r${d}` });
  for (let d = 1; d < 200; d += 2) for (let f = 0; f < 200; f += 2) m.apply({ op: 'unlink', path: `d${d}/f${f}` });
  for (let i = 0; i < 40_000; i++) m.apply({ op: 'write', path: `r0/f${i % 200}`, offset: i * 10, length: 5 });
  assert.is(m.changedFiles().length, 200 + 100 * 200 + 100 * 100);
  assert.is(m.originOf('r4/f3'), null);
  assert.is(m.originOf('d4/f3'), undefined);
});

// ── property test: random operation sequences against a naive model ──────────────────────────────────────────

/**
 * The naive model: every object carries a byte array marking dirty bytes and its known size, following the rules
 * stated in extent-map.ts byte by byte; and the real content, to check that the ranges are SUFFICIENT: base content
 * + ranges from the source + size = source content.
 */
interface MObj {
  base: string | null;
  dirty: number[];
  size: number | null;
  content: number[];
}

const NAMES = ['f0', 'f1', 'f2', 'f3', 'f4', 'f5', 'f6', 'f7'];

function runs(dirty: number[]): Range[] {
  const out: Range[] = [];
  let s = -1;
  for (let i = 0; i <= dirty.length; i++) {
    if (i < dirty.length && dirty[i]) { if (s < 0) s = i; } else if (s >= 0) { out.push([s, i]); s = -1; }
  }
  return out;
}

function mark(o: MObj, s: number, e: number, v: number): void {
  for (let i = s; i < e; i++) o.dirty[i] = v;
}

test('property: 400 random sequences agree with the naive model and reconstruct the source exactly', () => {
  for (let seed = 1; seed <= 400; seed++) {
    const r = rng(seed);
    const int = (n: number) => Math.floor(r() * n);
    const base = new Map<string, number[]>();
    const tree = new Map<string, MObj>();
    for (const n of NAMES.slice(0, 5)) {
      const content = Array.from({ length: int(300) }, () => 1 + int(255));
      base.set(n, content);
      tree.set(n, { base: n, dirty: [], size: null, content: [...content] });
    }
    const deleted = new Set<string>();
    const m = new ExtentMap();
    const ops: FsChange[] = [];
    for (let k = 0; k < 40; k++) {
      const live = [...tree.keys()];
      const pick = live[int(live.length)];
      const roll = r();
      let c: FsChange;
      if (roll < 0.4 && pick) {
        const o = tree.get(pick)!;
        const offset = int(o.content.length + 80);
        const length = int(60);
        c = { op: 'write', path: pick, offset, length };
        if (length > 0) {
          if (o.size !== null && offset > o.size) mark(o, o.size, offset, 1);
          mark(o, offset, offset + length, 1);
          if (o.size !== null) o.size = Math.max(o.size, offset + length);
          while (o.content.length < offset) o.content.push(0);
          for (let i = 0; i < length; i++) o.content[offset + i] = 1 + int(255);
        }
      } else if (roll < 0.6 && pick) {
        const o = tree.get(pick)!;
        const size = int(o.content.length + 100);
        c = { op: 'truncate', path: pick, size };
        mark(o, size, Math.max(size, o.dirty.length), 0);
        if (o.size !== null && size > o.size) mark(o, o.size, size, 1);
        o.size = size;
        o.content.length = Math.min(o.content.length, size);
        while (o.content.length < size) o.content.push(0);
      } else if (roll < 0.7) {
        const name = NAMES[int(NAMES.length)]!;
        if (tree.has(name)) continue;
        c = { op: 'create', path: name };
        tree.set(name, { base: null, dirty: [], size: 0, content: [] });
      } else if (roll < 0.8 && pick) {
        c = { op: 'unlink', path: pick };
        const o = tree.get(pick)!;
        if (o.base) deleted.add(o.base);
        tree.delete(pick);
      } else if (pick) {
        const to = NAMES[int(NAMES.length)]!;
        if (to === pick) continue;
        c = { op: 'rename', from: pick, to };
        const over = tree.get(to);
        if (over?.base) deleted.add(over.base);
        tree.set(to, tree.get(pick)!);
        tree.delete(pick);
      } else {
        continue;
      }
      ops.push(c);
      m.apply(c);
    }
    const ctx = `seed ${seed}: ${JSON.stringify(ops)}`;
    let total = 0;
    for (const [p, o] of tree) {
      assert.is(m.originOf(p), o.base, `origin of ${p}, ${ctx}`);
      const want = runs(o.dirty);
      assert.equal(m.extentsOf(p), want, `extents of ${p}, ${ctx}`);
      total += want.reduce((n, [s, e]) => n + e - s, 0);
      if (o.base !== null) {
        // the receiver: base content, then the ranges read from the source, then the source's size
        const got = [...base.get(o.base)!];
        for (const [s, e] of m.extentsOf(p)) {
          while (got.length < e) got.push(0);
          for (let i = s; i < e; i++) got[i] = o.content[i] ?? 0;
        }
        got.length = Math.min(got.length, o.content.length);
        while (got.length < o.content.length) got.push(0);
        assert.equal(got, o.content, `reconstructed ${p}, ${ctx}`);
      }
    }
    for (const p of base.keys()) if (!tree.has(p)) assert.is(m.originOf(p), undefined, `${p} is empty, ${ctx}`);
    const mapDeleted = new Set(m.deletedBasePaths().filter((p) => base.has(p)));
    assert.equal([...mapDeleted].sort(), [...deleted].sort(), `deleted, ${ctx}`);
    assert.is(m.totalBytes(), total, ctx);
  }
});

test.run();
