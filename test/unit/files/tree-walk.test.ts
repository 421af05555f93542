// The encoded manifest pages (files/manifest-codec.ts) and the synchronous, fd-relative walk that lists them
// (files/tree-walk.ts), in this thread (inlineLister) and in the worker (workerLister): the same pages either way,
// the contract of the earlier JSON pages kept (order, cursor, excludes, nothing followed). Files: /tmp/tandem-walk-*.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { decodeManifestPage, FLAG_LOGGED, ManifestCodecError, ManifestWriter, markLogged } from '../../../src/replication/files/manifest-codec.js';
import { inlineLister, listTreePaged, walkPageSync, workerLister, type EncodedPage } from '../../../src/replication/files/tree-walk.js';
import { listTree } from '../../../src/replication/reintegrate/compare.js';
import type { ManifestEntry } from '../../../src/replication/reintegrate/plan.js';
import { UserError } from '../../../src/errors.js';

function decoded(p: EncodedPage): [string, ManifestEntry, number][] {
  const out: [string, ManifestEntry, number][] = [];
  decodeManifestPage(p.data, p.count, (rel, e, flags) => out.push([rel, e, flags]));
  return out;
}

function withTree(fn: (root: string) => Promise<void>): () => Promise<void> {
  return async () => {
    const root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-walk-')));
    try {
      for (const p of ['a/b/c', 'a/b/d', 'a/e', 'a-z/f', 'b', 'skip/x', 'é/ü']) {
        fs.mkdirSync(path.dirname(path.join(root, p)), { recursive: true });
        fs.writeFileSync(path.join(root, p), p);
      }
      fs.symlinkSync('/etc', path.join(root, 'link'));
      fs.mkdirSync(path.join(root, '.tandem-reintegrate'));
      await fn(root);
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  };
}

test('an encoded page decodes to the entries written, symlink targets and flags included', () => {
  const w = new ManifestWriter();
  const entries: [string, ManifestEntry][] = [
    ['f', { type: 'file', size: 2 ** 40 + 3, mtimeNs: 1_733_000_000_123_456_789n, mode: 0o644, uid: 1000, gid: 2000 }],
    ['d/ü', { type: 'dir', size: 0, mtimeNs: -5n, mode: 0o755, uid: 0, gid: 0 }],
    ['d/l', { type: 'symlink', size: 0, mtimeNs: 0n, mode: 0o777, uid: 4_294_967_294, gid: 1, linkTarget: '../ä'.repeat(2000) }],
    ['d/p', { type: 'other', size: 0, mtimeNs: 1n, mode: 0o600, uid: 1, gid: 1 }],
  ];
  for (const [i, [rel, e]] of entries.entries()) w.add(rel, e, i === 0 ? FLAG_LOGGED : 0);
  const got = decoded({ data: w.finish(), count: w.count, next: null });
  assert.equal(got, entries.map(([rel, e], i) => [rel, e, i === 0 ? FLAG_LOGGED : 0]));
});

test('a malformed page is refused, never turned into entries', () => {
  const w = new ManifestWriter();
  w.add('a', { type: 'file', size: 1, mtimeNs: 1n, mode: 0o644, uid: 0, gid: 0 });
  w.add('b', { type: 'symlink', size: 0, mtimeNs: 1n, mode: 0o777, uid: 0, gid: 0, linkTarget: 'x' });
  const good = w.finish();
  const bad: [string, Buffer, number][] = [
    ['cut short', good.subarray(0, good.length - 1), 2],
    ['trailing bytes', Buffer.concat([good, Buffer.from([0])]), 2],
    ['fewer entries than said', good, 3],
    ['more entries than said', good, 1],
    ['unknown type', Buffer.from(good).fill(9, 0, 1), 2],
    ['unknown flag', Buffer.from(good).fill(4, 1, 2), 2],
    ['empty path', (() => { const b = Buffer.from(good); b.writeUInt32LE(0, 28); return b; })(), 2],
    ['path past the end', (() => { const b = Buffer.from(good); b.writeUInt32LE(1 << 30, 28); return b; })(), 2],
    ['a directory with a size', (() => { const b = Buffer.from(good); b[0] = 1; return b; })(), 2],
  ];
  for (const [what, data, count] of bad) {
    let n = 0;
    assert.throws(() => decodeManifestPage(data, count, () => { n++; }), (e: unknown) => e instanceof ManifestCodecError, what);
    if (what !== 'more entries than said' && what !== 'fewer entries than said' && what !== 'cut short' && what !== 'trailing bytes') assert.is(n, 0, `${what}: no entry handed out`);
  }
});

test('markLogged flags exactly the paths named, after symlinks too', () => {
  const w = new ManifestWriter();
  w.add('l', { type: 'symlink', size: 0, mtimeNs: 1n, mode: 0o777, uid: 0, gid: 0, linkTarget: 'somewhere' });
  w.add('t', { type: 'file', size: 5, mtimeNs: 1n, mode: 0o644, uid: 0, gid: 0 });
  w.add('u', { type: 'file', size: 5, mtimeNs: 1n, mode: 0o644, uid: 0, gid: 0 });
  const p = { data: w.finish(), count: 3, next: null };
  markLogged(p.data, p.count, new Set(['t', 'nope']));
  assert.equal(decoded(p).map(([rel, , f]) => [rel, f]), [['l', 0], ['t', FLAG_LOGGED], ['u', 0]]);
});

test('pages: depth first, sorted, excludes and the staging dir left out, symlinks listed not followed', withTree(async (root) => {
  const p = walkPageSync({ root, after: null, excludes: [{ path: 'skip' }], maxEntries: 100, maxBytes: 1 << 20 });
  assert.is(p.next, null);
  const got = decoded(p);
  assert.equal(got.map(([rel]) => rel), ['a', 'a/b', 'a/b/c', 'a/b/d', 'a/e', 'a-z', 'a-z/f', 'b', 'link', 'é', 'é/ü']);
  const link = got.find(([rel]) => rel === 'link')![1];
  assert.equal([link.type, link.linkTarget], ['symlink', '/etc']);
  // the same entries as listTree (the reference walk), field by field
  const ref = await listTree(root, [{ path: 'skip' }]);
  assert.equal(new Map(got.map(([rel, e]) => [rel, e])), ref);
  assert.equal(await listTreePaged(root, [{ path: 'skip' }], inlineLister), ref);
}));

test('pages resume after any cursor, also one that vanished; they end at maxEntries or maxBytes', withTree(async (root) => {
  const ex = [{ path: 'skip' }];
  for (const [after, rest] of [['a/b', ['a/b/c', 'a/b/d', 'a/e', 'a-z', 'a-z/f', 'b', 'link', 'é', 'é/ü']], ['a/b/cc', ['a/b/d', 'a/e', 'a-z', 'a-z/f', 'b', 'link', 'é', 'é/ü']],
    ['a-y', ['a-z', 'a-z/f', 'b', 'link', 'é', 'é/ü']], ['é/ü', []], ['link/x', ['é', 'é/ü']]] as const) {
    assert.equal(decoded(walkPageSync({ root, after, excludes: ex, maxEntries: 100, maxBytes: 1 << 20 })).map(([r]) => r), rest, `after ${after}`);
  }
  // one entry per page, then pages by bytes: the concatenation is the whole walk
  for (const limits of [{ maxEntries: 1, maxBytes: 1 << 20 }, { maxEntries: 100, maxBytes: 60 }]) {
    const all: string[] = [];
    let after: string | null = null;
    for (let k = 0; k < 50; k++) {
      const p: EncodedPage = walkPageSync({ root, after, excludes: ex, ...limits });
      all.push(...decoded(p).map(([r]) => r));
      if (p.next === null) break;
      assert.ok(p.count > 0);
      after = p.next;
    }
    assert.equal(all, ['a', 'a/b', 'a/b/c', 'a/b/d', 'a/e', 'a-z', 'a-z/f', 'b', 'link', 'é', 'é/ü'], JSON.stringify(limits));
  }
}));

test('a directory swapped for a symlink is not entered; no descriptor is left open', withTree(async (root) => {
  const before = fs.readdirSync('/proc/self/fd').length;
  fs.rmSync(path.join(root, 'a'), { recursive: true });
  fs.symlinkSync(path.join(root, 'a-z'), path.join(root, 'a'));
  const got = decoded(walkPageSync({ root, after: 'a', excludes: [], maxEntries: 100, maxBytes: 1 << 20 })).map(([r]) => r);
  assert.equal(got, ['a-z', 'a-z/f', 'b', 'link', 'skip', 'skip/x', 'é', 'é/ü'], 'a cursor through a symlink resumes after it');
  const whole = decoded(walkPageSync({ root, after: null, excludes: [], maxEntries: 100, maxBytes: 1 << 20 }));
  assert.is(whole.find(([r]) => r === 'a')![1].type, 'symlink');
  assert.not.ok(whole.some(([r]) => r.startsWith('a/')), 'nothing below the symlink');
  assert.is(fs.readdirSync('/proc/self/fd').length, before);
  assert.throws(() => walkPageSync({ root: path.join(root, 'nope'), after: null, excludes: [], maxEntries: 1, maxBytes: 1 }), (e: NodeJS.ErrnoException) => e.code === 'ENOENT');
}));

test('the worker lists the same pages; an error keeps its code; a missing root is a UserError for listTreePaged', withTree(async (root) => {
  const lister = workerLister();
  for (const r of [{ root, after: null, excludes: [], maxEntries: 100, maxBytes: 1 << 20 }, { root, after: 'a/b', excludes: [{ path: 'skip' }], maxEntries: 3, maxBytes: 1 << 20 }]) {
    const [a, b] = await Promise.all([lister.page(r), inlineLister.page(r)]);
    assert.equal([a.count, a.next, a.data.equals(b.data)], [b.count, b.next, true]);
  }
  const e = await lister.page({ root: path.join(root, 'nope'), after: null, excludes: [], maxEntries: 1, maxBytes: 1 }).then(() => null, (x: unknown) => x);
  assert.is((e as NodeJS.ErrnoException).code, 'ENOENT');
  assert.equal(await listTreePaged(root, [], lister), await listTree(root));
  const missing = await listTreePaged(path.join(root, 'nope'), [], lister).then(() => null, (x: unknown) => x);
  assert.instance(missing, UserError);
}));

test.run();
