// Fuzz: the FUSE request decoder (src/replication/fuse/dispatch.ts over protocol.ts, with the real Passthrough on a
// temporary backing directory; no /dev/fuse, no mount). What the kernel sends is built from what any process does
// on the mounted directory; the harness keeps the kernel's own invariants (a request has its 40-byte header and
// `len` = its size; `unique` is its request counter, far below 2^53; READ/READDIR ask at most max_read = 1 MiB; a
// WRITE carries at most max_write = 1 MiB), and
// everything else is fuzzed: opcodes, node ids, handles, offsets, sizes, flags, modes, names. Contract under test:
// `handle` never throws, returns 0 (no reply) or the length of one well-formed reply (header len = length, error 0
// or a negative errno), and never reports an internal error (a "BUG in …" log line: an exception that is not an
// errno; sizes and offsets above 2^53 are EFBIG, reads there return nothing). Files: /tmp/tandem-fuzz-fuse-*; removed at the end.
import fs, { constants as C } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Dispatcher } from '../../../src/replication/fuse/dispatch.js';
import { Passthrough } from '../../../src/replication/fuse/passthrough.js';
import * as P from '../../../src/replication/fuse/protocol.js';
import { RecordingSink } from '../../../src/replication/fuse/sink.js';
import { failure, fuzzSync } from './fuzz.js';

const MAX_WRITE = 1 << 20;

test('FUSE dispatcher: fuzzed requests never throw and always get one well-formed reply (or none), never an internal error', () => {
  const backing = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-fuzz-fuse-'));
  fs.writeFileSync(path.join(backing, 'a.txt'), 'hello world');
  fs.mkdirSync(path.join(backing, 'sub'));
  fs.writeFileSync(path.join(backing, 'sub', 'b'), Buffer.alloc(8192, 1));
  fs.symlinkSync('a.txt', path.join(backing, 'ln'));
  const logs: string[] = [];
  const sink = new RecordingSink();
  const pt = new Passthrough({
    root: backing, hostRoot: backing, hostFd: (fd) => `/proc/self/fd/${fd}`, sink: { onChange: () => {}, onSync: () => {} },
    host: null, entryTimeout: 1, attrTimeout: 1, log: (m) => logs.push(m), nowNs: () => 1_800_000_000_000_000_000n,
    excluded: null, writeBehind: null,
  });
  void sink;
  const d = new Dispatcher(pt, { init: { maxWrite: MAX_WRITE, wantFlags: P.DEFAULT_INIT_FLAGS }, log: (m) => logs.push(m) });
  const req = Buffer.alloc(MAX_WRITE + 4096);
  const out = Buffer.alloc(MAX_WRITE + 4096);
  let unique = 1;
  const call = (opcode: number, nodeid: number, body?: { struct: P.Struct<any>; value: unknown }, tail?: Buffer) => {
    const n = P.encodeRequest(req, { opcode, unique: unique++, nodeid, uid: 0, gid: 0, pid: 1 }, body, tail);
    const len = d.handle(req, n, out);
    return { n, bytes: Buffer.from(req.subarray(0, n)), reply: Buffer.from(out.subarray(0, len)) };
  };
  const name = (...s: string[]) => Buffer.concat(s.map((x) => Buffer.from(`${x}\0`)));
  try {
    call(P.Op.INIT, 0, { struct: P.InitIn, value: { major: 7, minor: 31, maxReadahead: 131072, flags: 0xffffffff, flags2: 0 } });
    const entry = (r: { reply: Buffer }) => P.EntryOut.decode(r.reply, 16).nodeid;
    const a = entry(call(P.Op.LOOKUP, 1, undefined, name('a.txt')));
    const sub = entry(call(P.Op.LOOKUP, 1, undefined, name('sub')));
    const fh = P.OpenOut.decode(call(P.Op.OPEN, a, { struct: P.OpenIn, value: { flags: C.O_RDWR, openFlags: 0 } }).reply, 16).fh;
    const dh = P.OpenOut.decode(call(P.Op.OPENDIR, 1, { struct: P.OpenIn, value: { flags: 0, openFlags: 0 } }).reply, 16).fh;
    const ids = [1, a, sub];
    const corpus: Buffer[] = [];
    const add = (opcode: number, nodeid: number, body?: { struct: P.Struct<any>; value: unknown }, tail?: Buffer) => {
      const n = P.encodeRequest(req, { opcode, unique: 1, nodeid, uid: 0, gid: 0, pid: 1 }, body, tail);
      corpus.push(Buffer.from(req.subarray(0, n)));
    };
    for (const id of ids) {
      add(P.Op.LOOKUP, id, undefined, name('a.txt'));
      add(P.Op.GETATTR, id, { struct: P.GetattrIn, value: { getattrFlags: 0, fh: 0 } });
      add(P.Op.SETATTR, id, { struct: P.SetattrIn, value: { valid: P.FATTR.MODE | P.FATTR.SIZE | P.FATTR.MTIME, fh, size: 5, lockOwner: 0, atime: 0, mtime: 1, ctime: 0, atimensec: 0, mtimensec: 5, ctimensec: 0, mode: 0o100600, uid: 0, gid: 0 } });
      add(P.Op.ACCESS, id, { struct: P.AccessIn, value: { mask: 4 } });
      add(P.Op.FORGET, id, { struct: P.ForgetIn, value: { nlookup: 1 } });
    }
    add(P.Op.READLINK, a);
    add(P.Op.SYMLINK, 1, undefined, name('l2', 'a.txt'));
    add(P.Op.MKNOD, sub, { struct: P.MknodIn, value: { mode: 0o100644, rdev: 0, umask: 0o22 } }, name('n'));
    add(P.Op.MKDIR, 1, { struct: P.MkdirIn, value: { mode: 0o755, umask: 0o22 } }, name('d'));
    add(P.Op.UNLINK, sub, undefined, name('n'));
    add(P.Op.RMDIR, 1, undefined, name('d'));
    add(P.Op.RENAME, 1, { struct: P.RenameIn, value: { newdir: sub } }, name('l2', 'l3'));
    add(P.Op.RENAME2, sub, { struct: P.Rename2In, value: { newdir: 1, flags: P.RENAME_NOREPLACE } }, name('l3', 'l2'));
    add(P.Op.LINK, a, { struct: P.LinkIn, value: { oldnodeid: a } }, name('hard'));
    add(P.Op.OPEN, a, { struct: P.OpenIn, value: { flags: C.O_RDONLY, openFlags: 0 } });
    add(P.Op.CREATE, sub, { struct: P.CreateIn, value: { flags: C.O_RDWR | C.O_CREAT, mode: 0o100644, umask: 0o22, openFlags: 0 } }, name('c'));
    add(P.Op.READ, a, { struct: P.ReadIn, value: { fh, offset: 0, size: 4096, readFlags: 0, lockOwner: 0, flags: 0 } });
    add(P.Op.WRITE, a, { struct: P.WriteIn, value: { fh, offset: 3, size: 5, writeFlags: 0, lockOwner: 0, flags: 0 } }, Buffer.from('abcde'));
    add(P.Op.STATFS, 1);
    add(P.Op.FLUSH, a, { struct: P.FlushIn, value: { fh, lockOwner: 0 } });
    add(P.Op.FSYNC, a, { struct: P.FsyncIn, value: { fh, fsyncFlags: 1 } });
    add(P.Op.FALLOCATE, a, { struct: P.FallocateIn, value: { fh, offset: 0, length: 4096, mode: 0 } });
    add(P.Op.LSEEK, a, { struct: P.LseekIn, value: { fh, offset: 0, whence: P.SEEK_DATA } });
    add(P.Op.READDIR, 1, { struct: P.ReadIn, value: { fh: dh, offset: 0, size: 4096, readFlags: 0, lockOwner: 0, flags: 0 } });
    add(P.Op.READDIRPLUS, 1, { struct: P.ReadIn, value: { fh: dh, offset: 0, size: 4096, readFlags: 0, lockOwner: 0, flags: 0 } });
    add(P.Op.FSYNCDIR, 1, { struct: P.FsyncIn, value: { fh: dh, fsyncFlags: 0 } });
    add(P.Op.BATCH_FORGET, 0, { struct: P.BatchForgetIn, value: { count: 2 } }, Buffer.alloc(32, 0));
    add(P.Op.INTERRUPT, 0, { struct: P.InterruptIn, value: { unique: 5 } });
    add(P.Op.GETXATTR, a, { struct: P.GetxattrIn, value: { size: 64 } }, name('user.x'));
    add(P.Op.INIT, 0, { struct: P.InitIn, value: { major: 7, minor: 31, maxReadahead: 131072, flags: 0xffffffff, flags2: 0 } });
    const release = Buffer.from(call(P.Op.RELEASE, a, { struct: P.ReleaseIn, value: { fh: 999, flags: 0, releaseFlags: 0, lockOwner: 0 } }).bytes);
    corpus.push(release);

    let replies = 0;
    const stats = fuzzSync({ name: 'FUSE dispatch', corpus, maxLen: 8192, allocLimit: () => MAX_WRITE + 8192 }, (raw, i, f) => {
      // the kernel's invariants: a header, len = size, reads within max_read, a write's size within its payload
      const input = raw.length >= P.InHeader.size ? Buffer.from(raw) : Buffer.concat([raw, Buffer.alloc(P.InHeader.size - raw.length)]);
      input.writeUInt32LE(input.length, 0);
      input.writeUInt32LE(0, 36); // total_extlen: no extensions negotiated
      // unique: the kernel's request counter (starts at 0, +2 per request): far below 2^53
      input.writeUInt32LE(input.readUInt32LE(12) & 0x1fffff, 12);
      const opcode = input.readUInt32LE(4);
      const body = P.InHeader.size;
      if ((opcode === P.Op.READ || opcode === P.Op.READDIR || opcode === P.Op.READDIRPLUS) && input.length >= body + 24) {
        input.writeUInt32LE(input.readUInt32LE(body + 16) % (MAX_WRITE + 1), body + 16);
      }
      if (opcode === P.Op.WRITE && input.length >= body + P.WriteIn.size) {
        input.writeUInt32LE(Math.min(input.readUInt32LE(body + 16), input.length - body - P.WriteIn.size), body + 16);
      }
      if (f.chance(0.3) && input.length >= 24) input.writeUInt32LE(f.pick([1, a, sub, 0, 2, 99999]), 16); // node ids that exist
      input.copy(req, 0);
      const before = logs.length;
      let len: number;
      try {
        len = d.handle(req, input.length, out);
      } catch (e) {
        throw failure(`${P.opName(opcode)}: handle threw ${String(e)}`, i, input);
      }
      if (!Number.isInteger(len) || len < 0 || len > out.length) throw failure(`${P.opName(opcode)}: reply length ${len}`, i, input);
      if (len > 0) {
        replies++;
        const h = P.OutHeader.decode(out);
        if (h.len !== len || h.error > 0 || h.error < -4095) throw failure(`${P.opName(opcode)}: malformed reply header ${JSON.stringify(h)}`, i, input);
      }
      const bug = logs.slice(before).find((l) => l.startsWith('BUG'));
      if (bug) {
        const line = bug.split('\n')[0]!.replace(/Received .*/, 'Received …');
        throw failure(`${P.opName(opcode)}: internal error: ${line}`, i, input);
      }
    });
    console.log(`  ${stats.inputs} requests, ${replies} replies; slowest ${stats.slowestMs.toFixed(2)} ms, largest allocation ${stats.largestAlloc} B`);
    assert.ok(replies > 0);
  } finally {
    fs.rmSync(backing, { recursive: true, force: true });
  }
});

test.run();
