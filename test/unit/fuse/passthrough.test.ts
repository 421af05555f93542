// The passthrough driven through the Dispatcher by a fake kernel: requests are encoded as the kernel would, replies
// decoded, and the backing directory (a temp dir) checked. No /dev/fuse, no mount, no threads.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs, { constants as C } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { Dispatcher } from '../../../src/replication/fuse/dispatch.js';
import type { HostCall } from '../../../src/replication/fuse/host-calls.js';
import { Passthrough, utimesArg } from '../../../src/replication/fuse/passthrough.js';
import * as P from '../../../src/replication/fuse/protocol.js';
import type { Change, ChangeSink } from '../../../src/replication/fuse/sink.js';
import { RecordingSink } from '../../../src/replication/fuse/sink.js';

const E = os.constants.errno;

interface Reply {
  error: number;
  body: Buffer;
}

class FakeKernel {
  private unique = 1;
  private readonly req = Buffer.alloc(1 << 20);
  private readonly out = Buffer.alloc((1 << 20) + 4096);
  readonly sink = new RecordingSink();
  readonly backing: string;
  readonly fs: Passthrough;
  readonly d: Dispatcher;
  readonly logs: string[] = [];
  sinkFails = false;
  now = 1_800_000_000_123_456_789n;

  readonly writeBehinds: number[] = [];
  readonly writeBehindCancels: number[] = [];
  /** fds whose (pretend) write-behind fdatasync failed */
  readonly writeBehindFailed = new Set<number>();

  /** host calls made (with a fake host: `host: true`), in order, interleaved with the sink's events in `order` */
  readonly hostCalls: HostCall[] = [];
  readonly order: string[] = [];

  constructor(o: {
    writebackCache?: boolean; writeBehindBytes?: number; excluded?: (rel: string, isDir: boolean) => boolean;
    /** a fake host: mkfifo through coreutils, syncfs recorded; `sink` replaces the recording sink's wrapper */
    host?: boolean; sink?: ChangeSink; maxPathBytes?: number;
    /** the activity log hook (called before a file's data changes) */
    activity?: { beforeChange(rel: string): void };
  } = {}) {
    this.backing = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-fuse-unit-'));
    const sink: ChangeSink = o.sink ?? {
      onChange: (c: Change) => {
        if (this.sinkFails) throw new Error('replica gone');
        this.sink.onChange(c);
      },
      onSync: (p, d) => this.sink.onSync(p, d),
      onSyncfs: () => {
        this.order.push('sink syncfs');
        this.sink.onSyncfs();
      },
    };
    const host = o.host ? {
      call: (c: HostCall) => {
        this.hostCalls.push(c);
        this.order.push(`host ${c.op}`);
        if (c.op === 'mkfifo') {
          const r = spawnSync('mkfifo', ['-m', (c.mode & 0o7777).toString(8), '--', c.path], { encoding: 'utf8' });
          if (r.status !== 0) throw new Error(r.stderr);
        } else if (c.op === 'mksock') {
          const js = `const net = require('net'), fs = require('fs'); const [d, n] = process.argv.slice(1); const t = d + '/.t';
            const s = net.createServer().listen(t, () => { fs.linkSync(t, d + '/' + n); s.close(); });`;
          const r = spawnSync(process.execPath, ['-e', js, c.dir, c.name], { encoding: 'utf8' });
          if (r.status !== 0) throw new Error(r.stderr);
        }
      },
    } : null;
    this.fs = new Passthrough({
      root: this.backing, hostRoot: this.backing, hostFd: (fd) => `/proc/${process.pid}/fd/${fd}`,
      sink, host, entryTimeout: 1, attrTimeout: 1.5, log: (m) => this.logs.push(m), nowNs: () => this.now,
      excluded: o.excluded ?? null, maxPathBytes: o.maxPathBytes, activity: o.activity ?? null,
      writeBehind: o.writeBehindBytes ? {
        bytes: o.writeBehindBytes,
        request: (fd) => void this.writeBehinds.push(fd),
        cancel: (fd) => void this.writeBehindCancels.push(fd),
        failed: (fd) => this.writeBehindFailed.delete(fd),
      } : null,
    });
    const wantFlags = P.DEFAULT_INIT_FLAGS | (o.writebackCache ? P.InitFlag.WRITEBACK_CACHE : 0);
    this.d = new Dispatcher(this.fs, { init: { maxWrite: 1 << 20, wantFlags }, log: (m) => this.logs.push(m) });
  }

  call(opcode: number, nodeid: number, body?: { struct: P.Struct<any>; value: unknown }, tail?: Buffer | string[], who = { uid: 0, gid: 0 }): Reply {
    const t = Array.isArray(tail) ? Buffer.concat(tail.map((s) => Buffer.from(`${s}\0`))) : tail;
    const n = P.encodeRequest(this.req, { opcode, unique: this.unique++, nodeid, uid: who.uid, gid: who.gid, pid: 1 }, body, t);
    const len = this.d.handle(this.req, n, this.out);
    if (len === 0) return { error: 0, body: Buffer.alloc(0) };
    const h = P.OutHeader.decode(this.out);
    assert.is(h.len, len);
    return { error: -h.error, body: Buffer.from(this.out.subarray(16, len)) };
  }

  ok(opcode: number, nodeid: number, body?: { struct: P.Struct<any>; value: unknown }, tail?: Buffer | string[], who?: { uid: number; gid: number }): Buffer {
    const r = this.call(opcode, nodeid, body, tail, who);
    assert.is(r.error, 0, `${P.opName(opcode)} failed with errno ${r.error}`);
    return r.body;
  }

  init(): void {
    this.ok(P.Op.INIT, 0, { struct: P.InitIn, value: { major: 7, minor: 45, maxReadahead: 131072, flags: 0xffff_ffff >>> 0, flags2: 0 } });
  }

  lookup(parent: number, name: string): P.EntryOut {
    return P.EntryOut.decode(this.ok(P.Op.LOOKUP, parent, undefined, [name]));
  }
  create(parent: number, name: string, mode = 0o644, flags = C.O_WRONLY | C.O_CREAT, who?: { uid: number; gid: number }): { nodeid: number; fh: number } {
    const b = this.ok(P.Op.CREATE, parent, { struct: P.CreateIn, value: { flags, mode: 0o100000 | mode, umask: 0o22, openFlags: 0 } }, [name], who);
    return { nodeid: P.EntryOut.decode(b).nodeid, fh: P.OpenOut.decode(b, 128).fh };
  }
  open(nodeid: number, flags: number): number {
    return P.OpenOut.decode(this.ok(P.Op.OPEN, nodeid, { struct: P.OpenIn, value: { flags, openFlags: 0 } })).fh;
  }
  write(nodeid: number, fh: number, offset: number, data: string, flags = C.O_WRONLY, writeFlags = 0): number {
    const r = this.call(P.Op.WRITE, nodeid, { struct: P.WriteIn, value: { fh, offset, size: Buffer.byteLength(data), writeFlags, lockOwner: 0, flags } }, Buffer.from(data));
    if (r.error) return -r.error;
    return P.WriteOut.decode(r.body).size;
  }
  read(nodeid: number, fh: number, offset: number, size: number): string {
    return this.ok(P.Op.READ, nodeid, { struct: P.ReadIn, value: { fh, offset, size, readFlags: 0, lockOwner: 0, flags: 0 } }).toString();
  }
  release(nodeid: number, fh: number): void {
    this.ok(P.Op.RELEASE, nodeid, { struct: P.ReleaseIn, value: { fh, flags: 0, releaseFlags: 0, lockOwner: 0 } });
  }
  getattr(nodeid: number, fh?: number): P.Attr {
    const b = this.ok(P.Op.GETATTR, nodeid, { struct: P.GetattrIn, value: { getattrFlags: fh ? P.FUSE_GETATTR_FH : 0, fh: fh ?? 0 } });
    return P.AttrOut.decode(b).attr;
  }
  setattr(nodeid: number, v: Partial<P.SetattrIn>): Reply {
    const value = { valid: 0, fh: 0, size: 0, lockOwner: 0, atime: 0, mtime: 0, ctime: 0, atimensec: 0, mtimensec: 0, ctimensec: 0, mode: 0, uid: 0, gid: 0, ...v };
    return this.call(P.Op.SETATTR, nodeid, { struct: P.SetattrIn, value });
  }
  rename(from: string, to: string, flags = 0, dir = 1, newdir = 1): number {
    const r = flags
      ? this.call(P.Op.RENAME2, dir, { struct: P.Rename2In, value: { newdir, flags } }, [from, to])
      : this.call(P.Op.RENAME, dir, { struct: P.RenameIn, value: { newdir } }, [from, to]);
    return r.error;
  }
  mkdir(parent: number, name: string, mode = 0o755): P.EntryOut {
    return P.EntryOut.decode(this.ok(P.Op.MKDIR, parent, { struct: P.MkdirIn, value: { mode, umask: 0 } }, [name]));
  }
  mknod(parent: number, name: string, mode: number): Reply {
    return this.call(P.Op.MKNOD, parent, { struct: P.MknodIn, value: { mode, rdev: 0, umask: 0 } }, [name]);
  }
  b(rel: string): string {
    return path.join(this.backing, rel);
  }
  done(): void {
    fs.rmSync(this.backing, { recursive: true, force: true });
  }
}

function withKernel(fn: (k: FakeKernel) => void, o: ConstructorParameters<typeof FakeKernel>[0] = {}): () => void {
  return () => {
    const k = new FakeKernel(o);
    try {
      k.init();
      fn(k);
    } finally {
      k.done();
    }
  };
}

// The activity log hook sees every in-place data change before the backing file changes; when it cannot log, the
// change is not made (EIO), so no change can reach the disk without its path in the log.
{
  const seen: { rel: string; content: string }[] = [];
  let fail = false;
  let kernel: FakeKernel | null = null;
  const activity = {
    beforeChange(rel: string) {
      if (fail) throw new Error('log disk full');
      const f = path.join(kernel!.backing, rel);
      seen.push({ rel, content: fs.existsSync(f) ? fs.readFileSync(f, 'utf8') : '<none>' });
    },
  };
  test('activity log: told before write, truncate (setattr and O_TRUNC) reach the backing file; a failing log fails the change', withKernel((k) => {
    kernel = k;
    const { nodeid, fh } = k.create(1, 'db', 0o644, C.O_RDWR | C.O_CREAT);
    assert.is(k.write(nodeid, fh, 0, 'one', C.O_RDWR), 3);
    assert.is(k.write(nodeid, fh, 0, 'two', C.O_RDWR), 3);
    assert.equal(seen, [{ rel: 'db', content: '' }, { rel: 'db', content: 'one' }], 'each time, before the bytes changed');
    assert.is(k.setattr(nodeid, { valid: P.FATTR.SIZE, size: 1 }).error, 0);
    assert.equal(seen.at(-1), { rel: 'db', content: 'two' });
    k.release(nodeid, k.open(nodeid, C.O_WRONLY | C.O_TRUNC));
    assert.equal(seen.at(-1), { rel: 'db', content: 't' });
    fail = true;
    assert.is(k.write(nodeid, fh, 0, 'three', C.O_RDWR), -E.EIO);
    assert.is(fs.readFileSync(path.join(k.backing, 'db'), 'utf8'), '', 'the change was not made');
    assert.ok(k.logs.some((l) => l.includes('activity log: log disk full')));
    fail = false;
    assert.is(k.write(nodeid, fh, 0, 'four', C.O_RDWR), 4);
    k.release(nodeid, fh);
  }, { activity }));
}

test('requests before INIT get EIO; INIT answers 7.31', () => {
  const k = new FakeKernel();
  try {
    assert.is(k.call(P.Op.GETATTR, 1, { struct: P.GetattrIn, value: { getattrFlags: 0, fh: 0 } }).error, E.EIO);
    const b = k.ok(P.Op.INIT, 0, { struct: P.InitIn, value: { major: 7, minor: 40, maxReadahead: 65536, flags: P.DEFAULT_INIT_FLAGS, flags2: 0 } });
    const out = P.InitOut.decode(b);
    assert.is(out.minor, 31);
    assert.is(out.maxWrite, 1 << 20);
    assert.is(out.maxPages, 256);
    assert.is(k.getattr(1).mode & 0o170000, 0o040000);
  } finally {
    k.done();
  }
});

test('create as a user, write, read back; the backing file has the caller as owner and the exact mode', withKernel((k) => {
  assert.is(k.call(P.Op.LOOKUP, 1, undefined, ['a.txt']).error, E.ENOENT);
  const { nodeid, fh } = k.create(1, 'a.txt', 0o664, C.O_RDWR | C.O_CREAT, { uid: 65534, gid: 65534 });
  assert.is(k.write(nodeid, fh, 0, 'hello world'), 11);
  assert.is(k.read(nodeid, fh, 6, 100), 'world');
  const st = fs.statSync(k.b('a.txt'));
  assert.is(st.uid, 65534);
  assert.is(st.gid, 65534);
  assert.is(st.mode & 0o7777, 0o664, 'group write kept although the server umask would strip it');
  assert.is(fs.readFileSync(k.b('a.txt'), 'utf8'), 'hello world');
  const a = k.getattr(nodeid);
  assert.is(a.size, 11);
  assert.is(a.ino, st.ino);
  k.release(nodeid, fh);
  assert.equal(k.sink.summary(), ['create a.txt 100664 65534:65534', 'write a.txt @0 +11']);
}));

test('O_APPEND writes land at the end of the backing file whatever offset the kernel sends; the Change has the real offset', withKernel((k) => {
  fs.writeFileSync(k.b('log'), '12345');
  const { nodeid } = k.lookup(1, 'log');
  const fh = k.open(nodeid, C.O_WRONLY | C.O_APPEND);
  assert.is(k.write(nodeid, fh, 0, 'abc', C.O_WRONLY | C.O_APPEND), 3);
  assert.is(k.write(nodeid, fh, 2, 'de', C.O_WRONLY | C.O_APPEND), 2);
  assert.is(fs.readFileSync(k.b('log'), 'utf8'), '12345abcde');
  assert.equal(k.sink.summary(), ['write log @5 +3', 'write log @8 +2']);
}));

test('FSYNC and FSYNC with FDATASYNC reach onSync (the kernel sends them after O_SYNC/O_DSYNC writes too)', withKernel((k) => {
  const { nodeid, fh } = k.create(1, 'db', 0o600, C.O_RDWR | C.O_CREAT | C.O_SYNC);
  k.write(nodeid, fh, 0, 'x', C.O_RDWR | C.O_SYNC);
  k.ok(P.Op.FSYNC, nodeid, { struct: P.FsyncIn, value: { fh, fsyncFlags: 0 } });
  k.write(nodeid, fh, 1, 'y', C.O_RDWR | C.O_DSYNC);
  k.ok(P.Op.FSYNC, nodeid, { struct: P.FsyncIn, value: { fh, fsyncFlags: P.FUSE_FSYNC_FDATASYNC } });
  assert.equal(k.sink.summary(), ['create db 100600 0:0', 'write db @0 +1', 'fsync db', 'write db @1 +1', 'fdatasync db']);
}));

test('open with O_TRUNC truncates and reports it', withKernel((k) => {
  fs.writeFileSync(k.b('t'), 'old content');
  const { nodeid } = k.lookup(1, 't');
  k.open(nodeid, C.O_WRONLY | C.O_TRUNC);
  assert.is(fs.statSync(k.b('t')).size, 0);
  assert.equal(k.sink.summary(), ['truncate t 0']);
}));

test('rename: plain, over an existing file (orphaning it), NOREPLACE refuses, EXCHANGE refused with EINVAL', withKernel((k) => {
  fs.writeFileSync(k.b('a'), 'A');
  fs.writeFileSync(k.b('b'), 'B');
  fs.mkdirSync(k.b('d'));
  const a = k.lookup(1, 'a');
  const b = k.lookup(1, 'b');
  const d = k.lookup(1, 'd');
  const fhB = k.open(b.nodeid, C.O_RDONLY);
  assert.is(k.rename('a', 'b', P.RENAME_NOREPLACE), E.EEXIST);
  assert.is(k.rename('a', 'b', P.RENAME_EXCHANGE), E.EINVAL);
  assert.is(k.rename('a', 'b', P.RENAME_WHITEOUT), E.EINVAL);
  assert.is(fs.readFileSync(k.b('a'), 'utf8'), 'A', 'refused renames change nothing');
  assert.is(k.rename('a', 'b'), 0);
  assert.is(fs.readFileSync(k.b('b'), 'utf8'), 'A');
  assert.is(k.read(b.nodeid, fhB, 0, 10), 'B', 'the overwritten file stays readable through its handle');
  assert.is(k.getattr(b.nodeid).size, 1);
  assert.is(k.rename('b', 'moved', P.RENAME_NOREPLACE, 1, d.nodeid), 0);
  assert.is(fs.readFileSync(k.b('d/moved'), 'utf8'), 'A');
  assert.is(k.getattr(a.nodeid).size, 1, 'the renamed inode follows its file');
  assert.equal(k.sink.summary(), ['rename a → b', 'rename b → d/moved flags 1']);
}));

test('a renamed open file keeps its handle; its writes are reported under the new path', withKernel((k) => {
  const { nodeid, fh } = k.create(1, 'f', 0o644, C.O_RDWR | C.O_CREAT);
  k.ok(P.Op.MKDIR, 1, { struct: P.MkdirIn, value: { mode: 0o755, umask: 0 } }, ['dir']);
  const dir = k.lookup(1, 'dir');
  assert.is(k.rename('f', 'g', 0, 1, dir.nodeid), 0);
  assert.is(k.rename('dir', 'dir2'), 0);
  k.write(nodeid, fh, 0, 'after', C.O_RDWR);
  assert.is(fs.readFileSync(k.b('dir2/g'), 'utf8'), 'after');
  assert.equal(k.sink.summary().slice(-3), ['rename f → dir/g', 'rename dir → dir2', 'write dir2/g @0 +5']);
}));

test('an unlinked open file stays readable and writable; its writes are not reported', withKernel((k) => {
  const { nodeid, fh } = k.create(1, 'gone', 0o644, C.O_RDWR | C.O_CREAT);
  k.write(nodeid, fh, 0, 'data');
  k.ok(P.Op.UNLINK, 1, undefined, ['gone']);
  assert.not.ok(fs.existsSync(k.b('gone')));
  assert.is(k.read(nodeid, fh, 0, 10), 'data');
  assert.is(k.write(nodeid, fh, 4, '+more'), 5);
  assert.is(k.read(nodeid, fh, 0, 20), 'data+more');
  assert.is(k.getattr(nodeid).size, 9, 'getattr without fh answers from the open fd');
  assert.is(k.setattr(nodeid, { valid: P.FATTR.SIZE, size: 2 }).error, 0, 'truncate through the fd');
  assert.is(k.read(nodeid, fh, 0, 20), 'da');
  assert.equal(k.sink.summary(), ['create gone 100644 0:0', 'write gone @0 +4', 'unlink gone']);
  k.release(nodeid, fh);
  k.call(P.Op.FORGET, nodeid, { struct: P.ForgetIn, value: { nlookup: 1 } });
  assert.is(k.fs.table.get(nodeid), undefined);
}));

test('hard links are refused with EPERM; xattrs, locks and statx with ENOSYS', withKernel((k) => {
  fs.writeFileSync(k.b('x'), '');
  const x = k.lookup(1, 'x');
  assert.is(k.call(P.Op.LINK, 1, { struct: P.LinkIn, value: { oldnodeid: x.nodeid } }, ['y']).error, E.EPERM);
  assert.not.ok(fs.existsSync(k.b('y')));
  assert.is(k.call(P.Op.GETXATTR, x.nodeid, { struct: P.GetxattrIn, value: { size: 0 } }, ['user.a']).error, E.ENOSYS);
  assert.is(k.call(P.Op.SETXATTR, x.nodeid, { struct: P.SetxattrIn, value: { size: 1, flags: 0 } }, Buffer.from('user.a\0v')).error, E.ENOSYS);
  assert.is(k.call(P.Op.LISTXATTR, x.nodeid, { struct: P.GetxattrIn, value: { size: 0 } }).error, E.ENOSYS);
  assert.is(k.call(P.Op.REMOVEXATTR, x.nodeid, undefined, ['user.a']).error, E.ENOSYS);
  assert.is(k.call(P.Op.STATX, x.nodeid).error, E.ENOSYS);
  assert.is(k.call(P.Op.SETLK, x.nodeid).error, E.ENOSYS);
  assert.equal(k.sink.summary(), []);
}));

test('FORGET, BATCH_FORGET and INTERRUPT get no reply; counts drop to zero and inodes go', withKernel((k) => {
  for (const n of ['p', 'q']) fs.writeFileSync(k.b(n), '');
  const p = k.lookup(1, 'p');
  k.lookup(1, 'p');
  const q = k.lookup(1, 'q');
  const before = k.fs.table.size;
  const batch = Buffer.alloc(32);
  P.ForgetOne.encode(batch, 0, { nodeid: p.nodeid, nlookup: 2 });
  P.ForgetOne.encode(batch, 16, { nodeid: q.nodeid, nlookup: 1 });
  const r = k.call(P.Op.BATCH_FORGET, 0, { struct: P.BatchForgetIn, value: { count: 2 } }, batch);
  assert.equal(r, { error: 0, body: Buffer.alloc(0) });
  assert.is(k.fs.table.size, before - 2);
  assert.equal(k.call(P.Op.INTERRUPT, 0, { struct: P.InterruptIn, value: { unique: 3 } }), { error: 0, body: Buffer.alloc(0) });
}));

test('readdir pages through 300 entries in small buffers, each once, with . and ..', withKernel((k) => {
  fs.mkdirSync(k.b('big'));
  const names = Array.from({ length: 300 }, (_, i) => `entry-${i}`);
  for (const n of names) fs.writeFileSync(k.b(`big/${n}`), '');
  const dir = k.lookup(1, 'big');
  const fh = P.OpenOut.decode(k.ok(P.Op.OPENDIR, dir.nodeid, { struct: P.OpenIn, value: { flags: 0, openFlags: 0 } })).fh;
  const seen: string[] = [];
  let offset = 0;
  for (;;) {
    const body = k.ok(P.Op.READDIR, dir.nodeid, { struct: P.ReadIn, value: { fh, offset, size: 512, readFlags: 0, lockOwner: 0, flags: 0 } });
    if (body.length === 0) break;
    assert.ok(body.length <= 512);
    assert.is(body.length % 8, 0);
    const ents = P.decodeDirents(body, 0, body.length);
    for (const e of ents) {
      seen.push(e.name.toString());
      assert.ok(e.ino > 0, 'a real inode number (glibc hides d_ino 0)');
    }
    offset = ents[ents.length - 1]!.off;
  }
  assert.equal(seen.slice(0, 2), ['.', '..']);
  assert.equal(seen.slice(2).sort(), [...names].sort());
  k.ok(P.Op.RELEASEDIR, dir.nodeid, { struct: P.ReleaseIn, value: { fh, flags: 0, releaseFlags: 0, lockOwner: 0 } });
}));

test('readdirplus returns attributes and counts one lookup per named entry (none for . and ..)', withKernel((k) => {
  fs.mkdirSync(k.b('d'));
  fs.writeFileSync(k.b('d/one'), '1');
  fs.symlinkSync('one', k.b('d/two'));
  const dir = k.lookup(1, 'd');
  const fh = P.OpenOut.decode(k.ok(P.Op.OPENDIR, dir.nodeid, { struct: P.OpenIn, value: { flags: 0, openFlags: 0 } })).fh;
  const body = k.ok(P.Op.READDIRPLUS, dir.nodeid, { struct: P.ReadIn, value: { fh, offset: 0, size: 4096, readFlags: 0, lockOwner: 0, flags: 0 } });
  const ents = P.decodeDirentplus(body, 0, body.length);
  const byName = new Map(ents.map((e) => [e.dirent.name.toString(), e]));
  assert.equal([...byName.keys()].sort(), ['.', '..', 'one', 'two']);
  assert.is(byName.get('.')!.entry.nodeid, 0);
  assert.is(byName.get('..')!.entry.nodeid, 0);
  const one = byName.get('one')!;
  assert.is(one.entry.attr.size, 1);
  assert.is(one.dirent.type, 8);
  assert.is(byName.get('two')!.dirent.type, 10);
  assert.is(one.entry.attrValid, 1);
  assert.is(one.entry.attrValidNsec, 500_000_000);
  assert.is(k.fs.table.get(one.entry.nodeid)!.nlookup, 1);
}));

test('setattr: chown, chmod, truncate, times (incl. UTIME_NOW and omitted sides) in that order', withKernel((k) => {
  fs.writeFileSync(k.b('f'), '0123456789');
  fs.utimesSync(k.b('f'), 1000, 2000);
  const f = k.lookup(1, 'f');
  const r = k.setattr(f.nodeid, {
    valid: P.FATTR.UID | P.FATTR.MODE | P.FATTR.SIZE | P.FATTR.MTIME, uid: 65534, mode: 0o100640, size: 4,
    mtime: 1_600_000_000, mtimensec: 250_000_000,
  });
  assert.is(r.error, 0);
  const attr = P.AttrOut.decode(r.body).attr;
  const st = fs.statSync(k.b('f'));
  assert.is(st.uid, 65534);
  assert.is(st.gid, 0);
  assert.is(st.mode & 0o7777, 0o640);
  assert.is(st.size, 4);
  assert.is(st.mtimeMs, 1_600_000_000_250);
  assert.is(Math.round(st.atimeMs), 1_000_000, 'omitted atime kept');
  assert.equal([attr.uid, attr.mode & 0o7777, attr.size, attr.mtime], [65534, 0o640, 4, 1_600_000_000]);
  k.setattr(f.nodeid, { valid: P.FATTR.ATIME | P.FATTR.ATIME_NOW });
  assert.is(Math.floor(fs.statSync(k.b('f')).atimeMs / 1000), 1_800_000_000, 'UTIME_NOW uses the server clock');
  assert.equal(k.sink.summary(), [
    'chown f 65534:-1', 'chmod f 640', 'truncate f 4', 'utimens f omit 1600000000.250000000',
    'utimens f 1800000000.123456000 omit', // UTIME_NOW at the microsecond the backing store keeps
  ]);
}));

test('chmod of a symlink is refused; symlink and readlink round-trip', withKernel((k) => {
  const e = P.EntryOut.decode(k.ok(P.Op.SYMLINK, 1, undefined, ['ln', '../some/where'], { uid: 65534, gid: 65534 }));
  assert.is(fs.readlinkSync(k.b('ln')), '../some/where');
  assert.is(fs.lstatSync(k.b('ln')).uid, 65534);
  assert.is(k.ok(P.Op.READLINK, e.nodeid).toString(), '../some/where');
  assert.is(k.setattr(e.nodeid, { valid: P.FATTR.MODE, mode: 0o600 }).error, E.EOPNOTSUPP);
  assert.equal(k.sink.summary(), ['symlink ln → ../some/where 65534:65534']);
}));

test('mkdir/rmdir; mknod of a regular file; fifo without a host helper and sockets are refused', withKernel((k) => {
  k.ok(P.Op.MKDIR, 1, { struct: P.MkdirIn, value: { mode: 0o775, umask: 0o22 } }, ['d'], { uid: 1000, gid: 1000 });
  assert.is(fs.statSync(k.b('d')).mode & 0o7777, 0o775);
  assert.is(fs.statSync(k.b('d')).uid, 1000);
  assert.is(k.call(P.Op.RMDIR, 1, undefined, ['nonexistent']).error, E.ENOENT);
  fs.writeFileSync(k.b('d/x'), '');
  assert.is(k.call(P.Op.RMDIR, 1, undefined, ['d']).error, E.ENOTEMPTY);
  fs.unlinkSync(k.b('d/x'));
  k.ok(P.Op.RMDIR, 1, undefined, ['d']);
  k.ok(P.Op.MKNOD, 1, { struct: P.MknodIn, value: { mode: 0o100600, rdev: 0, umask: 0 } }, ['reg']);
  assert.ok(fs.statSync(k.b('reg')).isFile());
  assert.is(k.call(P.Op.MKNOD, 1, { struct: P.MknodIn, value: { mode: 0o010644, rdev: 0, umask: 0 } }, ['fifo']).error, E.EOPNOTSUPP);
  assert.is(k.call(P.Op.MKNOD, 1, { struct: P.MknodIn, value: { mode: 0o140644, rdev: 0, umask: 0 } }, ['sock']).error, E.EOPNOTSUPP);
  assert.equal(k.sink.summary(), ['mkdir d 40775 1000:1000', 'rmdir d', 'mknod reg 100600 0:0']);
}));

test('a setgid directory gives new files its group and new directories its setgid bit', withKernel((k) => {
  fs.mkdirSync(k.b('shared'));
  fs.chownSync(k.b('shared'), 0, 4242);
  fs.chmodSync(k.b('shared'), 0o2775);
  const shared = k.lookup(1, 'shared');
  k.create(shared.nodeid, 'f', 0o644, C.O_WRONLY | C.O_CREAT, { uid: 1000, gid: 1000 });
  k.ok(P.Op.MKDIR, shared.nodeid, { struct: P.MkdirIn, value: { mode: 0o755, umask: 0 } }, ['sub'], { uid: 1000, gid: 1000 });
  assert.equal([fs.statSync(k.b('shared/f')).uid, fs.statSync(k.b('shared/f')).gid], [1000, 4242]);
  const sub = fs.statSync(k.b('shared/sub'));
  assert.equal([sub.uid, sub.gid, sub.mode & 0o7777], [1000, 4242, 0o2755]);
}));

test('sizes and offsets past 2^53: write, truncate and fallocate are EFBIG with nothing changed, a read returns nothing', withKernel((k) => {
  const { nodeid, fh } = k.create(1, 'big', 0o644, C.O_RDWR | C.O_CREAT);
  k.write(nodeid, fh, 0, 'abc', C.O_RDWR);
  const far = 2 ** 60;
  assert.is(k.write(nodeid, fh, far, 'x', C.O_RDWR), -E.EFBIG);
  assert.is(k.write(nodeid, fh, Number.MAX_SAFE_INTEGER, 'xy', C.O_RDWR), -E.EFBIG, 'the end of the write counts');
  assert.is(k.setattr(nodeid, { valid: P.FATTR.SIZE, size: far }).error, E.EFBIG);
  assert.is(k.call(P.Op.FALLOCATE, nodeid, { struct: P.FallocateIn, value: { fh, offset: far, length: 4096, mode: 0 } }).error, E.EFBIG);
  assert.is(k.read(nodeid, fh, far, 100), '');
  assert.is(fs.readFileSync(k.b('big'), 'utf8'), 'abc');
  assert.equal(k.sink.summary(), ['create big 100644 0:0', 'write big @0 +3']);
  assert.not.ok(k.logs.some((l) => l.startsWith('BUG')), 'no internal error');
}));

test('lseek SEEK_DATA/SEEK_HOLE: the whole file is data; ENXIO at or past the end', withKernel((k) => {
  fs.writeFileSync(k.b('s'), Buffer.alloc(10000));
  const s = k.lookup(1, 's');
  const fh = k.open(s.nodeid, C.O_RDONLY);
  const seek = (offset: number, whence: number) => k.call(P.Op.LSEEK, s.nodeid, { struct: P.LseekIn, value: { fh, offset, whence } });
  assert.is(P.LseekOut.decode(seek(100, P.SEEK_DATA).body).offset, 100);
  assert.is(P.LseekOut.decode(seek(100, P.SEEK_HOLE).body).offset, 10000);
  assert.is(seek(10000, P.SEEK_DATA).error, E.ENXIO);
  assert.is(seek(0, 0).error, E.EINVAL);
}));

test('a sink that throws fails the operation with EIO after the local change was made', withKernel((k) => {
  const { nodeid, fh } = k.create(1, 'w', 0o644, C.O_RDWR | C.O_CREAT);
  k.sinkFails = true;
  assert.is(k.write(nodeid, fh, 0, 'abc'), -E.EIO);
  assert.is(fs.readFileSync(k.b('w'), 'utf8'), 'abc', 'applied locally');
  assert.is(k.call(P.Op.MKDIR, 1, { struct: P.MkdirIn, value: { mode: 0o755, umask: 0 } }, ['d']).error, E.EIO);
  assert.is(k.fs.table.child(k.fs.table.root, 'd'), undefined, 'no lookup counted for a failed reply');
  assert.ok(k.logs.some((l) => l.includes('replica gone')));
}));

test('statfs, access, and names that are not UTF-8', withKernel((k) => {
  const s = P.Kstatfs.decode(k.ok(P.Op.STATFS, 1));
  const real = fs.statfsSync(k.backing);
  assert.is(s.bsize, real.bsize);
  assert.is(s.blocks, real.blocks);
  assert.is(s.namelen, 255);
  fs.writeFileSync(k.b('private'), '');
  fs.chmodSync(k.b('private'), 0o600);
  const p = k.lookup(1, 'private');
  const access = (mask: number, uid: number) => k.call(P.Op.ACCESS, p.nodeid, { struct: P.AccessIn, value: { mask } }, undefined, { uid, gid: uid }).error;
  assert.is(access(4, 0), 0);
  assert.is(access(4, 65534), E.EACCES);
  assert.is(access(1, 0), E.EACCES, 'root needs an x bit to execute');
  assert.is(k.call(P.Op.LOOKUP, 1, undefined, Buffer.from([0xff, 0xfe, 0])).error, E.EILSEQ);
}));

test('writeback cache: write-only opens can serve the kernel\'s partial-page READs; O_APPEND writes go at the kernel\'s offset', withKernel((k) => {
  assert.ok(k.fs.writebackCache, 'negotiated');
  fs.writeFileSync(k.b('f'), '0123456789');
  const { nodeid } = k.lookup(1, 'f');
  const fh = k.open(nodeid, C.O_WRONLY);
  assert.is(k.read(nodeid, fh, 0, 4096), '0123456789', 'the backing fd is O_RDWR');
  const created = k.create(1, 'g', 0o644, C.O_WRONLY | C.O_CREAT);
  k.write(created.nodeid, created.fh, 0, 'abc', C.O_WRONLY, P.FUSE_WRITE_CACHE);
  assert.is(k.read(created.nodeid, created.fh, 0, 10), 'abc');
  const app = k.open(nodeid, C.O_WRONLY | C.O_APPEND);
  assert.is(k.write(nodeid, app, 4, 'XY', C.O_WRONLY | C.O_APPEND), 2, 'a direct write at the offset the kernel chose');
  assert.is(k.write(nodeid, app, 10, 'end', C.O_WRONLY | C.O_APPEND, P.FUSE_WRITE_CACHE), 3);
  assert.is(fs.readFileSync(k.b('f'), 'utf8'), '0123XY6789end');
  assert.equal(k.sink.summary().filter((e) => e.startsWith('write f')), ['write f @4 +2', 'write f @10 +3']);
  assert.not.ok(fs.readFileSync(k.b('f'), 'utf8').includes('\0'));
}, { writebackCache: true }));

test('writeback cache: a cached WRITE that lands after the kernel set the mtime keeps the kernel\'s mtime (backing and sink)', withKernel((k) => {
  const f = k.create(1, 'f', 0o644, C.O_WRONLY | C.O_CREAT);
  k.write(f.nodeid, f.fh, 0, 'abc', C.O_WRONLY, P.FUSE_WRITE_CACHE);
  // the kernel's background writeback: its time update overtakes the WRITE it queued just before
  assert.is(k.setattr(f.nodeid, { valid: P.FATTR.MTIME | P.FATTR.FH, fh: f.fh, mtime: 1_700_000_000, mtimensec: 500_000_000 }).error, 0);
  fs.utimesSync(k.b('f'), 1_500_000_000, 1_700_000_000.5); // (the backing atime the late WRITE must not disturb)
  k.write(f.nodeid, f.fh, 3, 'def', C.O_WRONLY, P.FUSE_WRITE_CACHE);
  const st = fs.statSync(k.b('f'));
  assert.is(fs.readFileSync(k.b('f'), 'utf8'), 'abcdef');
  assert.is(st.mtimeMs, 1_700_000_000_500, 'the kernel\'s mtime, not the moment the WRITE landed');
  assert.is(Math.round(st.atimeMs / 1000), 1_500_000_000, 'atime kept');
  assert.equal(k.sink.summary(), [
    'create f 100644 0:0', 'write f @0 +3', 'utimens f omit 1700000000.500000000', 'write f @3 +3',
    'utimens f omit 1700000000.500000000', // the SECOND ends with the same mtime
  ]);
  // a direct (uncached) write is the application's own: it changes the mtime as on any file
  assert.is(k.write(f.nodeid, f.fh, 6, 'g', C.O_WRONLY), 1);
  assert.is(k.sink.summary().length, 6);
}, { writebackCache: true }));

test('write-through: a cached-looking WRITE never rewrites the mtime (nothing recorded without the writeback cache)', withKernel((k) => {
  const f = k.create(1, 'f', 0o644, C.O_WRONLY | C.O_CREAT);
  assert.is(k.setattr(f.nodeid, { valid: P.FATTR.MTIME, mtime: 1_700_000_000, mtimensec: 0 }).error, 0);
  k.write(f.nodeid, f.fh, 0, 'abc', C.O_WRONLY);
  assert.ok(fs.statSync(k.b('f')).mtimeMs > 1_700_000_000_000 + 1000, 'the write set the mtime');
  assert.equal(k.sink.summary(), ['create f 100644 0:0', 'utimens f omit 1700000000.000000000', 'write f @0 +3']);
}));

test('write-through: a write-only open cannot be read; O_APPEND still goes at the real end of file', withKernel((k) => {
  assert.not.ok(k.fs.writebackCache);
  fs.writeFileSync(k.b('f'), '0123456789');
  const { nodeid } = k.lookup(1, 'f');
  const fh = k.open(nodeid, C.O_WRONLY);
  assert.is(k.call(P.Op.READ, nodeid, { struct: P.ReadIn, value: { fh, offset: 0, size: 10, readFlags: 0, lockOwner: 0, flags: 0 } }).error, E.EBADF);
}));

test('write-behind: one request per `bytes` written through a handle; fsync starts the count again', withKernel((k) => {
  const { nodeid, fh } = k.create(1, 'big', 0o644, C.O_RDWR | C.O_CREAT);
  const fd = [...k.fs.table.get(nodeid)!.fds][0]!;
  k.write(nodeid, fh, 0, 'x'.repeat(600));
  assert.equal(k.writeBehinds, []);
  k.write(nodeid, fh, 600, 'x'.repeat(500));
  assert.equal(k.writeBehinds, [fd], 'after 1100 ≥ 1000 bytes');
  k.write(nodeid, fh, 1100, 'x'.repeat(900));
  k.ok(P.Op.FSYNC, nodeid, { struct: P.FsyncIn, value: { fh, fsyncFlags: 0 } });
  k.write(nodeid, fh, 2000, 'x'.repeat(900));
  assert.equal(k.writeBehinds, [fd], 'the fsync reset the count');
  k.write(nodeid, fh, 2900, 'x'.repeat(100));
  assert.equal(k.writeBehinds, [fd, fd]);
  k.writeBehindFailed.add(fd);
  assert.is(k.call(P.Op.FSYNC, nodeid, { struct: P.FsyncIn, value: { fh, fsyncFlags: 0 } }).error, E.EIO, 'a failed write-behind fails the next fsync');
  assert.is(k.call(P.Op.FSYNC, nodeid, { struct: P.FsyncIn, value: { fh, fsyncFlags: 0 } }).error, 0, 'once');
  k.release(nodeid, fh);
  assert.equal(k.writeBehindCancels, [fd], 'cancelled before the close');
}, { writeBehindBytes: 1000 }));

test('utimesArg: the backing store gets exactly the requested microsecond', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-fuse-unit-'));
  try {
    const f = path.join(dir, 'f');
    fs.writeFileSync(f, '');
    let seed = 12345;
    const rnd = (n: number) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
    for (let i = 0; i < 2000; i++) {
      const t = { sec: 1_000_000_000 + rnd(1_000_000_000), nsec: rnd(1_000_000_000) };
      fs.utimesSync(f, utimesArg(t), utimesArg(t));
      const want = BigInt(t.sec) * 1_000_000_000n + BigInt(t.nsec - (t.nsec % 1000));
      assert.is(fs.statSync(f, { bigint: true }).mtimeNs, want, `${t.sec}.${t.nsec}`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('rename between a replicated and a not-replicated path: EXDEV (the SECOND could not apply it), nothing moved', withKernel((k) => {
  fs.mkdirSync(k.b('tmp'));
  fs.writeFileSync(k.b('tmp/a'), 'A');
  fs.writeFileSync(k.b('b'), 'B');
  fs.mkdirSync(k.b('tmp/sub'));
  const tmp = k.lookup(1, 'tmp').nodeid;
  assert.is(k.rename('a', 'a', 0, tmp, 1), E.EXDEV, 'out of a not-replicated dir');
  assert.is(k.rename('b', 'b', 0, 1, tmp), E.EXDEV, 'into a not-replicated dir');
  assert.is(k.rename('sub', 'sub', 0, tmp, 1), E.EXDEV, 'a directory too');
  assert.ok(fs.existsSync(k.b('tmp/a')) && fs.existsSync(k.b('b')) && fs.existsSync(k.b('tmp/sub')), 'nothing moved');
  const before = k.sink.events.length;
  assert.is(k.rename('a', 'c', 0, tmp, tmp), 0, 'inside the not-replicated dir: allowed');
  assert.is(k.rename('b', 'd'), 0, 'inside the replicated tree: allowed');
  assert.ok(fs.existsSync(k.b('tmp/c')) && fs.existsSync(k.b('d')));
  assert.is(k.sink.events.length, before + 2);
}, { excluded: (rel) => rel === 'tmp' || rel.startsWith('tmp/') }));

test('FIFOs are local-only: made through the host helper, never reported; a rename of one over a file reports its unlink', withKernel((k) => {
  assert.is(k.mknod(1, 'p', 0o010640).error, 0);
  assert.ok(fs.lstatSync(k.b('p')).isFIFO());
  assert.is(fs.lstatSync(k.b('p')).mode & 0o7777, 0o640);
  const mk = k.hostCalls[0]!;
  assert.is(mk.op, 'mkfifo');
  assert.match((mk as { path: string }).path, /^\/proc\/\d+\/fd\/\d+\/p$/, 'reached through its parent directory');
  const p = k.lookup(1, 'p');
  assert.is(k.setattr(p.nodeid, { valid: P.FATTR.MODE, mode: 0o010600 }).error, 0);
  assert.is(fs.lstatSync(k.b('p')).mode & 0o7777, 0o600);
  fs.writeFileSync(k.b('f'), 'F');
  k.lookup(1, 'f');
  assert.is(k.rename('p', 'f'), 0, 'the FIFO replaces a file');
  assert.ok(fs.lstatSync(k.b('f')).isFIFO());
  fs.writeFileSync(k.b('g'), 'G');
  assert.is(k.rename('g', 'f'), 0, 'a file replaces the FIFO');
  assert.is(k.mknod(1, 'q', 0o010644).error, 0);
  k.ok(P.Op.UNLINK, 1, undefined, ['q']);
  assert.equal(k.sink.summary(), ['unlink f', 'rename g → f'], 'the replica loses f, then gets g as f; nothing about FIFOs');
  assert.is(k.mknod(1, 's', 0o140755).error, 0, 'a socket node through the host helper');
  assert.ok(fs.lstatSync(k.b('s')).isSocket());
  assert.equal([fs.lstatSync(k.b('s')).mode & 0o7777, fs.readdirSync(k.backing).sort()], [0o755, ['f', 's']]);
  assert.equal(k.hostCalls.map((c) => c.op), ['mkfifo', 'mkfifo', 'mksock']);
  assert.equal(k.sink.summary(), ['unlink f', 'rename g → f']);
}, { host: true }));

test('long paths: a backing path over PATH_MAX is reached through held directory fds; over maxPathBytes it is ENAMETOOLONG', () => {
  const name = 'd'.repeat(200);
  const fdsBefore = fs.readdirSync('/proc/self/fd').length;
  withKernel((k) => {
    let parent = 1;
    let rel = '';
    while (Buffer.byteLength(`${k.backing}/${rel}/`) < 3900) {
      parent = k.mkdir(parent, name).nodeid;
      rel = rel ? `${rel}/${name}` : name;
    }
    const leaf = 'f'.repeat(4095 - Buffer.byteLength(`${k.backing}/${rel}/`) + 10); // the backing path: 4105 bytes
    assert.ok(Buffer.byteLength(leaf) <= 255);
    const { nodeid, fh } = k.create(parent, leaf, 0o600, C.O_RDWR | C.O_CREAT);
    assert.is(k.write(nodeid, fh, 0, 'deep'), 4);
    k.release(nodeid, fh);
    assert.is(k.getattr(nodeid).size, 4);
    assert.is(k.setattr(nodeid, { valid: P.FATTR.MODE, mode: 0o100640 }).error, 0);
    assert.is(k.lookup(parent, leaf).attr.mode & 0o7777, 0o640);
    k.ok(P.Op.UNLINK, parent, undefined, [leaf]);
    assert.is(k.call(P.Op.LOOKUP, parent, undefined, [leaf]).error, E.ENOENT);
    assert.ok(k.sink.summary().includes(`write ${rel}/${leaf} @0 +4`));
    assert.is(fs.readdirSync('/proc/self/fd').length, fdsBefore, 'the directory fds were closed after each request');
  })();
  withKernel((k) => {
    const d = k.mkdir(1, 'x'.repeat(60));
    assert.is(k.call(P.Op.MKDIR, d.nodeid, { struct: P.MkdirIn, value: { mode: 0o755, umask: 0 } }, ['y'.repeat(40)]).error, E.ENAMETOOLONG);
    assert.is(k.call(P.Op.LOOKUP, d.nodeid, undefined, ['y'.repeat(40)]).error, E.ENAMETOOLONG);
    assert.is(k.mkdir(d.nodeid, 'y'.repeat(39)).attr.mode & 0o170000, 0o040000, 'exactly maxPathBytes is accepted');
  }, { maxPathBytes: 100 })();
});

test('O_DIRECT writes are made durable like O_DSYNC ones (the kernel sends no FSYNC after them)', withKernel((k) => {
  const O_DIRECT = C.O_DIRECT ?? 0o40000;
  const { nodeid, fh } = k.create(1, 'd', 0o644, C.O_WRONLY | C.O_CREAT | O_DIRECT);
  assert.is(k.write(nodeid, fh, 0, 'x'.repeat(4096), C.O_WRONLY | O_DIRECT), 4096);
  assert.is(k.write(nodeid, fh, 4096, 'y'.repeat(4096), C.O_WRONLY | O_DIRECT | C.O_DSYNC), 4096);
  assert.is(k.write(nodeid, fh, 8192, 'z', C.O_WRONLY), 1);
  assert.equal(k.sink.summary(), [
    'create d 100644 0:0', 'write d @0 +4096', 'fdatasync d',
    'write d @4096 +4096', // O_DSYNC too: the kernel follows with FSYNC itself
    'write d @8192 +1',
  ]);
}));

test('SYNCFS: the backing filesystem\'s syncfs, then the sink\'s onSyncfs, then the reply; a failing sink gives EIO', () => {
  withKernel((k) => {
    k.create(1, 'f', 0o644, C.O_WRONLY | C.O_CREAT);
    const r = k.call(P.Op.SYNCFS, 1, { struct: P.SyncfsIn, value: { padding: 0 } });
    assert.is(r.error, 0);
    assert.equal(k.order, ['host syncfs', 'sink syncfs']);
    assert.equal(k.hostCalls.at(-1), { op: 'syncfs', path: k.backing });
    assert.equal(k.sink.summary(), ['create f 100644 0:0', 'syncfs']);
  }, { host: true })();
  const failing: ChangeSink = { onChange() {}, onSync() {}, onSyncfs() { throw new Error('peer gone'); } };
  withKernel((k) => {
    assert.is(k.call(P.Op.SYNCFS, 1, { struct: P.SyncfsIn, value: { padding: 0 } }).error, E.EIO);
    assert.ok(k.logs.some((l) => l.includes('peer gone')));
  }, { host: true, sink: failing })();
  const deferring: ChangeSink = { onChange() {}, onSync() {}, deferSyncfs: (u) => u > 0 };
  withKernel((k) => {
    const r = k.call(P.Op.SYNCFS, 1, { struct: P.SyncfsIn, value: { padding: 0 } });
    assert.equal(r, { error: 0, body: Buffer.alloc(0) }, 'deferred: no reply from the worker');
    assert.equal(k.hostCalls, [], 'the sink side syncs the backing filesystem');
  }, { host: true, sink: deferring })();
});

test.run();
