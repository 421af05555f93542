// toStream (src/replication/files/wire.ts): what the SECOND receives for each change the FUSE interception reports.
// Every result is also encoded and decoded by the replication codec: a change that round-trips exactly has the wire
// shape the codec documents (paths, modes, times, owners).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { toStream } from '../../src/replication/files/wire.js';
import type { Change as FuseChange } from '../../src/replication/fuse/index.js';
import type { Change } from '../../src/replication/stream/change.js';
import { decode, encode, type WireChange } from '../../src/replication/stream/codec.js';

const D = '/srv/app/data';
const S_IFREG = 0o100000;
const S_IFIFO = 0o010000;
const S_IFSOCK = 0o140000;
const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;

/** toStream, and a check that every change it returned survives the codec unchanged */
function wire(c: FuseChange): Change[] {
  const out = toStream(D, c);
  for (const [i, s] of out.entries()) {
    assert.is.not(s.op, 'sync', 'the FUSE changes never map to a sync change (onSync does)');
    const d = decode(encode({ type: 'change', seq: i + 1, change: s as WireChange }));
    assert.ok(d.ok, `${s.op}: ${!d.ok ? d.error : ''}`);
    if (d.ok) assert.equal(d.msg, { type: 'change', seq: i + 1, change: s }, `${s.op} round-trips through the codec`);
  }
  return out;
}

test('create, mkdir and symlink are followed by a chown to the owner the object got on PRIM', () => {
  assert.equal(wire({ op: 'create', path: 'a/new.db', mode: S_IFREG | 0o640, rdev: 0, uid: 999, gid: 998 }), [
    { dir: D, op: 'create', path: 'a/new.db', mode: 0o640 },
    { dir: D, op: 'chown', path: 'a/new.db', uid: 999, gid: 998 },
  ]);
  assert.equal(wire({ op: 'mkdir', path: 'a/sub', mode: 0o2750, uid: 0, gid: 50 }), [
    { dir: D, op: 'mkdir', path: 'a/sub', mode: 0o2750 },
    { dir: D, op: 'chown', path: 'a/sub', uid: 0, gid: 50 },
  ]);
  assert.equal(wire({ op: 'symlink', target: '../../etc/passwd', path: 'l', uid: 1000, gid: 1000 }), [
    { dir: D, op: 'symlink', target: '../../etc/passwd', path: 'l' },
    { dir: D, op: 'chown', path: 'l', uid: 1000, gid: 1000 },
  ]);
});

test('create keeps only the permission bits (setuid, setgid and sticky included), never the file type', () => {
  const [c] = wire({ op: 'create', path: 'f', mode: S_IFREG | 0o7755, rdev: 0, uid: 1, gid: 2 });
  assert.equal(c, { dir: D, op: 'create', path: 'f', mode: 0o7755 });
  const [m] = wire({ op: 'mkdir', path: 'd', mode: 0o040000 | 0o1777, uid: 1, gid: 2 });
  assert.equal(m, { dir: D, op: 'mkdir', path: 'd', mode: 0o1777 });
});

test('mknod of a regular file (S_IFREG, or no type bits) is a create + chown; FIFOs, sockets and devices are not replicated', () => {
  const reg = [{ dir: D, op: 'create', path: 'r', mode: 0o600 }, { dir: D, op: 'chown', path: 'r', uid: 5, gid: 6 }];
  assert.equal(wire({ op: 'mknod', path: 'r', mode: S_IFREG | 0o600, rdev: 0, uid: 5, gid: 6 }), reg);
  assert.equal(wire({ op: 'mknod', path: 'r', mode: 0o600, rdev: 0, uid: 5, gid: 6 }), reg);
  assert.equal(wire({ op: 'mknod', path: 'fifo', mode: S_IFIFO | 0o644, rdev: 0, uid: 5, gid: 6 }), []);
  assert.equal(wire({ op: 'mknod', path: 'sock', mode: S_IFSOCK | 0o755, rdev: 0, uid: 5, gid: 6 }), []);
  assert.equal(wire({ op: 'mknod', path: 'tty', mode: S_IFCHR | 0o620, rdev: 0x0401, uid: 0, gid: 5 }), []);
  assert.equal(wire({ op: 'mknod', path: 'sda', mode: S_IFBLK | 0o660, rdev: 0x0800, uid: 0, gid: 6 }), []);
});

test('write carries the same bytes, also from a view into a larger request buffer', () => {
  const request = Buffer.from('HEADER--payload bytes--TRAILER');
  const view = new Uint8Array(request.buffer, request.byteOffset + 8, 15); // "payload bytes--"
  const out = wire({ op: 'write', path: 'pg/base/1/1259', offset: 8192, data: view });
  assert.is(out.length, 1);
  const w = out[0]!;
  assert.ok(w.op === 'write');
  if (w.op !== 'write') return;
  assert.equal({ ...w, data: null }, { dir: D, op: 'write', path: 'pg/base/1/1259', offset: 8192, data: null });
  assert.ok(Buffer.isBuffer(w.data), 'a Buffer (the codec refuses anything else)');
  assert.is(w.data.toString(), 'payload bytes--');
  assert.is(w.data.length, 15);
  const empty = wire({ op: 'write', path: 'f', offset: 0, data: new Uint8Array(0) })[0]!;
  assert.ok(empty.op === 'write' && empty.data.length === 0);
});

test('truncate, unlink, rmdir, rename and fallocate map field for field', () => {
  assert.equal(wire({ op: 'truncate', path: 'f', size: 123456789 }), [{ dir: D, op: 'truncate', path: 'f', size: 123456789 }]);
  assert.equal(wire({ op: 'unlink', path: 'a/b' }), [{ dir: D, op: 'unlink', path: 'a/b' }]);
  assert.equal(wire({ op: 'rmdir', path: 'a' }), [{ dir: D, op: 'rmdir', path: 'a' }]);
  assert.equal(wire({ op: 'rename', from: 'a/x.tmp', to: 'b/x', flags: 1 }), [{ dir: D, op: 'rename', from: 'a/x.tmp', to: 'b/x', flags: 1 }]);
  assert.equal(wire({ op: 'fallocate', path: 'f', mode: 3, offset: 4096, length: 1 << 20 }),
    [{ dir: D, op: 'fallocate', path: 'f', mode: 3, offset: 4096, length: 1 << 20 }]);
});

test('link maps existing → from and path → to', () => {
  assert.equal(wire({ op: 'link', existing: 'a/orig', path: 'b/alias' }), [{ dir: D, op: 'link', from: 'a/orig', to: 'b/alias' }]);
});

test('chmod keeps the permission bits, chown keeps -1 (unchanged)', () => {
  assert.equal(wire({ op: 'chmod', path: 'f', mode: 0o4711 }), [{ dir: D, op: 'chmod', path: 'f', mode: 0o4711 }]);
  assert.equal(wire({ op: 'chown', path: 'f', uid: -1, gid: 33 }), [{ dir: D, op: 'chown', path: 'f', uid: -1, gid: 33 }]);
  assert.equal(wire({ op: 'chown', path: 'f', uid: 70, gid: -1 }), [{ dir: D, op: 'chown', path: 'f', uid: 70, gid: -1 }]);
});

test('utimens: {sec, nsec} becomes [sec, nsec]; null (UTIME_OMIT) stays null', () => {
  assert.equal(wire({ op: 'utimens', path: 'f', atime: { sec: 1700000000, nsec: 999999999 }, mtime: { sec: 0, nsec: 0 } }),
    [{ dir: D, op: 'utimens', path: 'f', atime: [1700000000, 999999999], mtime: [0, 0] }]);
  assert.equal(wire({ op: 'utimens', path: 'f', atime: null, mtime: { sec: 1700000001, nsec: 5 } }),
    [{ dir: D, op: 'utimens', path: 'f', atime: null, mtime: [1700000001, 5] }]);
  assert.equal(wire({ op: 'utimens', path: 'f', atime: { sec: -1, nsec: 1 }, mtime: null }),
    [{ dir: D, op: 'utimens', path: 'f', atime: [-1, 1], mtime: null }]);
  assert.equal(wire({ op: 'utimens', path: 'f', atime: null, mtime: null }), [{ dir: D, op: 'utimens', path: 'f', atime: null, mtime: null }]);
});

test('setxattr carries the same value bytes; removexattr the name', () => {
  const value = new Uint8Array([0, 1, 2, 255]);
  assert.equal(wire({ op: 'setxattr', path: 'f', name: 'user.tag', value, flags: 2 }),
    [{ dir: D, op: 'setxattr', path: 'f', name: 'user.tag', value: Buffer.from([0, 1, 2, 255]), flags: 2 }]);
  assert.equal(wire({ op: 'removexattr', path: 'f', name: 'user.tag' }), [{ dir: D, op: 'removexattr', path: 'f', name: 'user.tag' }]);
});

test('the mount root (FUSE path "") is "." on the wire, for every operation that can apply to it', () => {
  assert.equal(wire({ op: 'chmod', path: '', mode: 0o755 }), [{ dir: D, op: 'chmod', path: '.', mode: 0o755 }]);
  assert.equal(wire({ op: 'chown', path: '', uid: 26, gid: 26 }), [{ dir: D, op: 'chown', path: '.', uid: 26, gid: 26 }]);
  assert.equal(wire({ op: 'utimens', path: '', atime: null, mtime: { sec: 1, nsec: 2 } }),
    [{ dir: D, op: 'utimens', path: '.', atime: null, mtime: [1, 2] }]);
  assert.equal(wire({ op: 'setxattr', path: '', name: 'user.a', value: new Uint8Array([7]), flags: 0 }),
    [{ dir: D, op: 'setxattr', path: '.', name: 'user.a', value: Buffer.from([7]), flags: 0 }]);
  assert.equal(wire({ op: 'removexattr', path: '', name: 'user.a' }), [{ dir: D, op: 'removexattr', path: '.', name: 'user.a' }]);
});

test('names that are legal on Linux (newline, non-ASCII) pass unchanged', () => {
  assert.equal(wire({ op: 'rename', from: 'é/日本', to: 'with\nnewline', flags: 0 }),
    [{ dir: D, op: 'rename', from: 'é/日本', to: 'with\nnewline', flags: 0 }]);
});

test('every FUSE op is covered: each gives at least one change for the same dir (except special files)', () => {
  const all: FuseChange[] = [
    { op: 'write', path: 'f', offset: 0, data: new Uint8Array([1]) },
    { op: 'truncate', path: 'f', size: 0 },
    { op: 'create', path: 'f', mode: S_IFREG | 0o644, rdev: 0, uid: 0, gid: 0 },
    { op: 'mknod', path: 'f', mode: S_IFREG | 0o644, rdev: 0, uid: 0, gid: 0 },
    { op: 'mkdir', path: 'd', mode: 0o755, uid: 0, gid: 0 },
    { op: 'unlink', path: 'f' },
    { op: 'rmdir', path: 'd' },
    { op: 'rename', from: 'a', to: 'b', flags: 0 },
    { op: 'symlink', target: 't', path: 'l', uid: 0, gid: 0 },
    { op: 'link', existing: 'a', path: 'b' },
    { op: 'chmod', path: 'f', mode: 0o600 },
    { op: 'chown', path: 'f', uid: 1, gid: 1 },
    { op: 'utimens', path: 'f', atime: null, mtime: null },
    { op: 'setxattr', path: 'f', name: 'user.x', value: new Uint8Array(0), flags: 0 },
    { op: 'removexattr', path: 'f', name: 'user.x' },
    { op: 'fallocate', path: 'f', mode: 0, offset: 0, length: 1 },
  ];
  for (const c of all) {
    const out = wire(c);
    assert.ok(out.length >= 1, c.op);
    assert.ok(out.every((s) => s.dir === D && s.sync === undefined), c.op);
  }
});

test.run();
