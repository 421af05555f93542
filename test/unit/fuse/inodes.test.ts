import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { InodeTable } from '../../../src/replication/fuse/inodes.js';

test('lookup hands out fresh nodeids, counts references, and reuses the inode for the same file', () => {
  const t = new InodeTable(2);
  const a = t.lookup(t.root, 'a', 100);
  assert.is(a.nodeid, 2);
  assert.is(a.generation, 0);
  assert.is(t.lookup(t.root, 'a', 100), a);
  assert.is(a.nlookup, 2);
  const b = t.lookup(t.root, 'b', 101);
  assert.is(b.nodeid, 3);
  assert.is(t.pathOf(a), 'a');
  assert.is(t.pathOf(t.root), '');
});

test('forget frees an inode only when its count reaches 0 and no fd is open; nodeids are not reused', () => {
  const t = new InodeTable(2);
  const a = t.lookup(t.root, 'a', 100);
  t.lookup(t.root, 'a', 100);
  t.addFd(a, 7);
  t.forget(a.nodeid, 2);
  assert.is(t.get(a.nodeid), a, 'kept while an fd is open');
  t.removeFd(a, 7);
  assert.is(t.get(a.nodeid), undefined);
  assert.is(t.child(t.root, 'a'), undefined);
  assert.is(t.lookup(t.root, 'a', 100).nodeid, 3);
  t.forget(1, 100);
  assert.is(t.get(1), t.root, 'the root is never forgotten');
});

test('renaming a directory moves its descendants; the overwritten target becomes an orphan', () => {
  const t = new InodeTable(2);
  const d = t.lookup(t.root, 'd', 10);
  const sub = t.lookup(d, 'sub', 11);
  const f = t.lookup(sub, 'f.txt', 12);
  const e = t.lookup(t.root, 'e', 13);
  t.move(d, t.root, 'e');
  assert.is(t.pathOf(f), 'e/sub/f.txt');
  assert.is(t.childPath(sub, 'g'), 'e/sub/g');
  assert.ok(e.orphan);
  assert.is(t.pathOf(e), null);
  assert.is(t.child(t.root, 'e'), d);
  assert.is(t.child(t.root, 'd'), undefined);
});

test('removeName orphans an inode and everything below it; an open orphan stays reachable by nodeid', () => {
  const t = new InodeTable(2);
  const d = t.lookup(t.root, 'd', 10);
  const f = t.lookup(d, 'f', 11);
  t.addFd(f, 9);
  t.removeName(t.root, 'd');
  assert.is(t.pathOf(d), null);
  assert.is(t.pathOf(f), null, 'a descendant of an orphan has no path');
  assert.is(t.childPath(d, 'x'), null);
  assert.is(t.get(f.nodeid), f);
});

test('a different backing file under a known name gets a new nodeid; the old one is orphaned', () => {
  const t = new InodeTable(2);
  const a = t.lookup(t.root, 'a', 100);
  const a2 = t.lookup(t.root, 'a', 200);
  assert.is.not(a2.nodeid, a.nodeid);
  assert.ok(a.orphan);
  assert.is(t.pathOf(a2), 'a');
});

test.run();
