// The lossy disk's FUSE answers, driven through the replication Dispatcher by a fake kernel over an in-memory store:
// requests encoded as the kernel would, replies decoded. No /dev/fuse, no mount, no threads.
import { constants as C } from 'node:fs';
import os from 'node:os';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { LossyFs } from '../../../src/lab/lossy/handler.js';
import { LossyModel } from '../../../src/lab/lossy/model.js';
import { MemoryStore } from '../../../src/lab/lossy/store-fake.js';
import { Dispatcher } from '../../../src/replication/fuse/dispatch.js';
import * as P from '../../../src/replication/fuse/protocol.js';

const E = os.constants.errno;
const NOW_US = 1_800_000_000_000_000;

class FakeKernel {
  readonly store = new MemoryStore();
  readonly model = new LossyModel({ store: this.store, nowUs: () => NOW_US });
  readonly fs = new LossyFs({ model: this.model, store: this.store, entryTimeout: 1, attrTimeout: 1, nowUs: () => NOW_US });
  readonly d = new Dispatcher(this.fs, { init: { maxWrite: 1 << 20, wantFlags: P.DEFAULT_INIT_FLAGS }, log: () => {} });
  private unique = 1;
  private readonly req = Buffer.alloc(1 << 20);
  private readonly out = Buffer.alloc((1 << 20) + 4096);

  constructor() {
    this.ok(P.Op.INIT, 0, { struct: P.InitIn, value: { major: 7, minor: 45, maxReadahead: 131072, flags: 0xffff_ffff >>> 0, flags2: 0 } });
  }

  call(opcode: number, nodeid: number, body?: { struct: P.Struct<any>; value: unknown }, tail?: Buffer | string[], who = { uid: 0, gid: 0 }) {
    const t = Array.isArray(tail) ? Buffer.concat(tail.map((s) => Buffer.from(`${s}\0`))) : tail;
    const n = P.encodeRequest(this.req, { opcode, unique: this.unique++, nodeid, uid: who.uid, gid: who.gid, pid: 1 }, body, t);
    const len = this.d.handle(this.req, n, this.out);
    if (len === 0) return { error: 0, body: Buffer.alloc(0) };
    return { error: -P.OutHeader.decode(this.out).error, body: Buffer.from(this.out.subarray(16, len)) };
  }

  ok(opcode: number, nodeid: number, body?: { struct: P.Struct<any>; value: unknown }, tail?: Buffer | string[], who?: { uid: number; gid: number }): Buffer {
    const r = this.call(opcode, nodeid, body, tail, who);
    assert.is(r.error, 0, `${P.opName(opcode)} failed with errno ${r.error}`);
    return r.body;
  }

  create(parent: number, name: string, flags = C.O_RDWR, mode = 0o100644, who?: { uid: number; gid: number }) {
    const b = this.ok(P.Op.CREATE, parent, { struct: P.CreateIn, value: { flags, mode, umask: 0, openFlags: 0 } }, [name], who);
    return { entry: P.EntryOut.decode(b), fh: P.OpenOut.decode(b, P.EntryOut.size).fh };
  }

  write(fh: number, offset: number, data: string, flags = 0): number {
    const b = Buffer.from(data);
    return P.WriteOut.decode(this.ok(P.Op.WRITE, 0, { struct: P.WriteIn, value: { fh, offset, size: b.length, writeFlags: 0, lockOwner: 0, flags } }, b)).size;
  }

  read(fh: number, offset: number, size: number): string {
    return this.ok(P.Op.READ, 0, { struct: P.ReadIn, value: { fh, offset, size, readFlags: 0, lockOwner: 0, flags: 0 } }).toString();
  }

  getattr(nodeid: number): P.Attr {
    return P.AttrOut.decode(this.ok(P.Op.GETATTR, nodeid, { struct: P.GetattrIn, value: { getattrFlags: 0, fh: 0 } })).attr;
  }

  setattr(nodeid: number, v: Partial<P.SetattrIn> & { valid: number }): P.Attr {
    const value = { fh: 0, size: 0, lockOwner: 0, atime: 0, mtime: 0, ctime: 0, atimensec: 0, mtimensec: 0, ctimensec: 0, mode: 0, uid: 0, gid: 0, ...v };
    return P.AttrOut.decode(this.ok(P.Op.SETATTR, nodeid, { struct: P.SetattrIn, value })).attr;
  }

  fsync(fh: number, datasync: boolean, dir = false): void {
    this.ok(dir ? P.Op.FSYNCDIR : P.Op.FSYNC, 0, { struct: P.FsyncIn, value: { fh, fsyncFlags: datasync ? P.FUSE_FSYNC_FDATASYNC : 0 } });
  }

  opendir(nodeid: number): number {
    return P.OpenOut.decode(this.ok(P.Op.OPENDIR, nodeid, { struct: P.OpenIn, value: { flags: 0, openFlags: 0 } })).fh;
  }
}

test('create, write, read back; attributes come from the current view', () => {
  const k = new FakeKernel();
  const { entry, fh } = k.create(1, 'f', C.O_RDWR, 0o100640, { uid: 1000, gid: 100 });
  assert.is(entry.attr.mode, 0o100640);
  assert.is(entry.attr.uid, 1000);
  assert.is(entry.attr.gid, 100);
  assert.is(k.write(fh, 0, 'hello'), 5);
  assert.is(k.read(fh, 0, 100), 'hello');
  const a = k.getattr(entry.nodeid);
  assert.is(a.size, 5);
  assert.is(a.ino, entry.nodeid);
  assert.is(a.mtime * 1e6 + a.mtimensec / 1000, NOW_US);
  assert.equal(k.store.dump(), {}, 'nothing durable yet');
});

test('O_APPEND writes at the current size; O_TRUNC on open truncates', () => {
  const k = new FakeKernel();
  const { entry, fh } = k.create(1, 'log');
  k.write(fh, 0, 'one');
  k.write(fh, 0, 'two', C.O_APPEND);
  assert.is(k.read(fh, 0, 100), 'onetwo');
  const fh2 = P.OpenOut.decode(k.ok(P.Op.OPEN, entry.nodeid, { struct: P.OpenIn, value: { flags: C.O_RDWR | C.O_TRUNC, openFlags: 0 } })).fh;
  assert.is(k.read(fh2, 0, 100), '');
  assert.is(k.getattr(entry.nodeid).size, 0);
});

test('CREATE of an existing name opens it (EEXIST with O_EXCL)', () => {
  const k = new FakeKernel();
  const a = k.create(1, 'f');
  k.write(a.fh, 0, 'kept');
  const b = k.create(1, 'f');
  assert.is(b.entry.nodeid, a.entry.nodeid);
  assert.is(k.read(b.fh, 0, 10), 'kept');
  const r = k.call(P.Op.CREATE, 1, { struct: P.CreateIn, value: { flags: C.O_RDWR | C.O_EXCL, mode: 0o100644, umask: 0, openFlags: 0 } }, ['f']);
  assert.is(r.error, E.EEXIST);
});

test('setattr: mode, owner, size and times (UTIME_NOW included) in the current view, durable at FSYNC', () => {
  const k = new FakeKernel();
  const { entry, fh } = k.create(1, 'f');
  k.write(fh, 0, 'abcdef');
  k.fsync(k.opendir(1), false, true);
  const a = k.setattr(entry.nodeid, {
    valid: P.FATTR.MODE | P.FATTR.UID | P.FATTR.GID | P.FATTR.SIZE | P.FATTR.MTIME | P.FATTR.ATIME | P.FATTR.ATIME_NOW,
    mode: 0o100600, uid: 7, gid: 8, size: 3, mtime: 1_000_000_000, mtimensec: 123_456_789,
  });
  assert.is(a.mode, 0o100600);
  assert.is(a.uid, 7);
  assert.is(a.size, 3);
  assert.is(a.mtime, 1_000_000_000);
  assert.is(a.mtimensec, 123_456_000, 'microsecond precision');
  assert.is(a.atime * 1e6 + a.atimensec / 1000, NOW_US);
  assert.is(k.store.dump().f!.data, '', 'the entry is durable, nothing else yet');
  k.fsync(fh, true);
  assert.is(k.store.dump().f!.data, 'abc', 'FSYNC with FDATASYNC: data and size');
  assert.is(k.store.dump().f!.mode, 0o644);
  k.fsync(fh, false);
  assert.equal({ ...k.store.dump().f, data: k.store.dump().f!.data }, { kind: 'file', mode: 0o600, uid: 7, gid: 8, mtimeUs: 1_000_000_000_123_456, data: 'abc' });
});

test('READDIRPLUS lists the current entries and counts one lookup per entry; FORGET gives them back', () => {
  const k = new FakeKernel();
  const f = k.create(1, 'f');
  k.ok(P.Op.MKDIR, 1, { struct: P.MkdirIn, value: { mode: 0o755, umask: 0 } }, ['d']);
  k.ok(P.Op.SYMLINK, 1, undefined, ['l', 'target']);
  k.ok(P.Op.RELEASE, 0, { struct: P.ReleaseIn, value: { fh: f.fh, flags: 0, releaseFlags: 0, lockOwner: 0 } });
  const dh = k.opendir(1);
  const body = k.ok(P.Op.READDIRPLUS, 1, { struct: P.ReadIn, value: { fh: dh, offset: 0, size: 64 * 1024, readFlags: 0, lockOwner: 0, flags: 0 } });
  const list = P.decodeDirentplus(body, 0, body.length);
  assert.equal(list.map((e) => e.dirent.name.toString()), ['.', '..', 'f', 'd', 'l']);
  assert.equal(list.slice(0, 2).map((e) => e.entry.nodeid), [0, 0]);
  const fNode = k.model.get(f.entry.nodeid);
  assert.is(fNode.lookups, 2, 'CREATE + READDIRPLUS');
  k.ok(P.Op.FORGET, f.entry.nodeid, { struct: P.ForgetIn, value: { nlookup: 2 } });
  assert.is(fNode.lookups, 0);
  assert.is(k.ok(P.Op.READLINK, list[4]!.entry.nodeid).toString(), 'target');
  assert.is(k.getattr(1).nlink, 3, 'the root: 2 + one subdirectory');
});

test('refused: hard links, FIFOs, RENAME_EXCHANGE, fallocate punch-hole, names that are not UTF-8', () => {
  const k = new FakeKernel();
  const f = k.create(1, 'f');
  assert.is(k.call(P.Op.LINK, 1, { struct: P.LinkIn, value: { oldnodeid: f.entry.nodeid } }, ['g']).error, E.EPERM);
  assert.is(k.call(P.Op.MKNOD, 1, { struct: P.MknodIn, value: { mode: 0o010644, rdev: 0, umask: 0 } }, ['fifo']).error, E.EOPNOTSUPP);
  assert.is(k.call(P.Op.RENAME2, 1, { struct: P.Rename2In, value: { newdir: 1, flags: P.RENAME_EXCHANGE } }, ['f', 'g']).error, E.EINVAL);
  const punch = { fh: f.fh, offset: 0, length: 10, mode: P.FALLOC_FL_PUNCH_HOLE | P.FALLOC_FL_KEEP_SIZE };
  assert.is(k.call(P.Op.FALLOCATE, 0, { struct: P.FallocateIn, value: punch }).error, E.EOPNOTSUPP);
  assert.is(k.call(P.Op.LOOKUP, 1, undefined, Buffer.from([0xff, 0])).error, E.EILSEQ);
  assert.is(k.call(P.Op.GETXATTR, 1).error, E.ENOSYS);
});

test('fallocate mode 0 grows the file with zeros (pending like any size change); KEEP_SIZE changes nothing', () => {
  const k = new FakeKernel();
  const f = k.create(1, 'f');
  k.ok(P.Op.FALLOCATE, 0, { struct: P.FallocateIn, value: { fh: f.fh, offset: 0, length: 8192, mode: 0 } });
  assert.is(k.getattr(f.entry.nodeid).size, 8192);
  k.ok(P.Op.FALLOCATE, 0, { struct: P.FallocateIn, value: { fh: f.fh, offset: 0, length: 1 << 20, mode: P.FALLOC_FL_KEEP_SIZE } });
  assert.is(k.getattr(f.entry.nodeid).size, 8192);
  assert.is(k.model.stats().pendingBytes, 0, 'zeros cost no memory');
});

test('RENAME_NOREPLACE onto an existing name: EEXIST; a rename is pending until a directory sync', () => {
  const k = new FakeKernel();
  k.create(1, 'a');
  k.create(1, 'b');
  k.fsync(k.opendir(1), true, true);
  assert.is(k.call(P.Op.RENAME2, 1, { struct: P.Rename2In, value: { newdir: 1, flags: P.RENAME_NOREPLACE } }, ['a', 'b']).error, E.EEXIST);
  k.ok(P.Op.RENAME, 1, { struct: P.RenameIn, value: { newdir: 1 } }, ['a', 'c']);
  assert.equal(Object.keys(k.store.dump()), ['a', 'b']);
  k.fsync(k.opendir(1), true, true);
  assert.equal(Object.keys(k.store.dump()), ['b', 'c']);
});

test.run();
