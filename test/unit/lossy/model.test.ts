// The durability model over an in-memory store: each case runs a few file system calls, then a power loss (the
// model is dropped and a new one boots from the store), and compares what survived with what ext4 promises.
import os from 'node:os';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PAGE } from '../../../src/lab/lossy/pages.js';
import { MemoryStore } from '../../../src/lab/lossy/store-fake.js';
import { cases, Disk, WHO } from './cases.js';

const E = os.constants.errno;

function durableView(store: MemoryStore): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [p, e] of Object.entries(store.dump())) out[p] = e.kind === 'dir' ? '/' : e.kind === 'symlink' ? `-> ${e.data}` : e.data;
  return out;
}

/** A disk holding `files` (path → content, '/' for a directory), all durable. */
function disk(files: Record<string, string> = {}, o: { limit?: number } = {}): Disk<MemoryStore> {
  return new Disk(new MemoryStore(), durableView, o).fill(files);
}

for (const c of cases) {
  test(c.name, () => {
    const d = disk(c.before ?? {});
    c.run(d);
    if (c.sees) assert.equal(d.view(), c.sees, 'the node sees the latest state');
    assert.equal(d.crash(), c.survives, 'after the power loss');
    assert.is(d.store.staged, 0, 'staging is empty after a boot');
    assert.equal(d.view(), c.survives, 'a booted model serves what survived');
  });
}

test('fdatasync keeps data and size but not mtime; fsync keeps mtime and mode too', () => {
  const d = disk({ a: '', b: '' });
  const before = d.store.dump();
  d.chmod('a', 0o600).chmod('b', 0o600).write('a', 0, 'data').write('b', 0, 'data').fdatasync('a').fsync('b');
  const after = d.store.dump();
  assert.is(after.a!.data, 'data');
  assert.is(after.a!.mtimeUs, before.a!.mtimeUs, 'fdatasync: mtime not durable');
  assert.is(after.a!.mode, 0o644, 'fdatasync: chmod not durable');
  assert.is(after.b!.data, 'data');
  assert.is(after.b!.mtimeUs, d.node('b').attrs.mtimeUs, 'fsync: mtime durable');
  assert.is(after.b!.mode, 0o600, 'fsync: chmod durable');
});

test('utimens and chown are metadata: durable at fsync of the file, not at fsync of its directory', () => {
  const d = disk({ f: 'x' });
  d.utime('f', 42_000_000).fsync('');
  assert.is.not(d.store.dump().f!.mtimeUs, 42_000_000);
  d.fsync('f');
  assert.is(d.store.dump().f!.mtimeUs, 42_000_000);
});

test('entry changes leave the durable times of the directories alone until their fsync', () => {
  const d = disk({ a: '/', b: '/', 'a/f': 'x' });
  const t0 = d.store.dump();
  d.rename('a/f', 'b/f').fdatasync('a');
  const t1 = d.store.dump();
  assert.is(t1['b/f']?.data, 'x');
  assert.is(t1.a!.mtimeUs, t0.a!.mtimeUs, 'fdatasync(dir): entries, not times');
  assert.is(t1.b!.mtimeUs, t0.b!.mtimeUs, 'the other directory of the rename keeps its durable times');
  d.fsync('b');
  assert.is(d.store.dump().b!.mtimeUs, d.node('b').attrs.mtimeUs, 'fsync(dir): its times');
});

test('a new file keeps its creation mode when only its entry is durable', () => {
  const d = disk();
  d.create('f', 'x', 0o640).chmod('f', 0o600).fsync('');
  assert.is(d.store.dump().f!.mode, 0o640);
  assert.is(d.store.dump().f!.uid, WHO.uid);
});

test('a synced file in a directory created and never synced leaves nothing but staging, cleared at boot', () => {
  const d = disk();
  d.mkdir('x').create('x/f', 'data').fsync('x/f').fsync('x');
  assert.ok(d.store.staged > 0, 'durable inodes without a durable name wait in staging');
  assert.equal(d.crash(), {});
  assert.is(d.store.staged, 0);
});

test('closing an unlinked file frees its staging slot; nothing leaks', () => {
  const d = disk({ f: 'x' });
  d.hold('f').unlink('f').fsync('');
  assert.is(d.store.staged, 1, 'still open: kept to serve reads');
  const out = Buffer.alloc(1);
  d.model.read(d.held('f'), 0, 1, out, 0);
  assert.is(out.toString(), 'x', 'the open file still reads');
  d.release('f');
  assert.is(d.store.staged, 0);
  assert.equal(d.crash(), {});
});

test('past the limit the oldest pending files are written back as by fdatasync (data, not names or mtime)', () => {
  const limit = 20 * PAGE;
  const d = disk({ old: '', young: '' }, { limit });
  const mtime0 = d.store.dump().old!.mtimeUs;
  d.write('old', 0, 'o'.repeat(10 * PAGE)).create('new', 'n');
  assert.is(d.model.stats().writebacks, 0);
  d.write('young', 0, 'y'.repeat(10 * PAGE));
  const s = d.model.stats();
  assert.is(s.writebacks, 2, 'the two oldest files written back, down to half the limit');
  assert.is(s.writebackBytes, 11 * PAGE);
  assert.is(s.pendingBytes, 10 * PAGE);
  const after = d.crash();
  assert.is(after.old, 'o'.repeat(10 * PAGE), 'the oldest file was written back');
  assert.is(after.young, '', 'the youngest was not');
  assert.is(after.new, undefined, 'a writeback makes no name durable');
  assert.is(d.store.dump().old!.mtimeUs, mtime0, 'nor the mtime');
});

test('pending bytes are counted in pages and given back by sync, truncate and unlink', () => {
  const d = disk({ f: '' });
  d.write('f', 0, 'x').write('f', PAGE * 3, 'y');
  assert.is(d.model.stats().pendingBytes, 2 * PAGE);
  assert.is(d.model.stats().pendingFiles, 1);
  d.truncate('f', 1);
  assert.is(d.model.stats().pendingBytes, PAGE);
  d.fdatasync('f');
  assert.is(d.model.stats().pendingBytes, 0);
  d.create('g', 'zzz');
  assert.is(d.model.stats().pendingBytes, PAGE);
  d.unlink('g');
  assert.is(d.model.stats().pendingBytes, 0, 'an unlinked file nobody holds drops its pending data');
});

test('a store write happens only at a sync: plain writes and namespace changes touch nothing', () => {
  const d = disk({ f: 'x', dir: '/' });
  const ops = d.store.ops;
  d.write('f', 0, 'y').create('g', 'z').rename('f', 'dir/f').mkdir('n').unlink('g').chmod('dir', 0o700);
  assert.is(d.store.ops, ops);
});

test('errors: ENOENT, EEXIST, ENOTEMPTY, EISDIR, ENOTDIR, EINVAL (a directory into itself)', () => {
  const d = disk({ d: '/', 'd/f': 'x', g: 'y' });
  const errno = (fn: () => void) => {
    try {
      fn();
    } catch (e) {
      return (e as { errno: number }).errno;
    }
    return 0;
  };
  assert.is(errno(() => d.node('nope')), E.ENOENT);
  assert.is(errno(() => d.create('g')), E.EEXIST);
  assert.is(errno(() => d.rmdir('d')), E.ENOTEMPTY);
  assert.is(errno(() => d.unlink('d')), E.EISDIR);
  assert.is(errno(() => d.rmdir('g')), E.ENOTDIR);
  assert.is(errno(() => d.rename('d', 'd/sub')), E.EINVAL);
  assert.is(errno(() => d.rename('g', 'd')), E.EISDIR);
  assert.is(errno(() => d.rename('d', 'g')), E.ENOTDIR);
});

test.run();
