import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as P from '../../../src/replication/fuse/protocol.js';
import type { FieldType, Struct } from '../../../src/replication/fuse/protocol.js';

// Sizes from include/uapi/linux/fuse.h (7.31 forms).
const SIZES: [Struct<any>, number][] = [
  [P.InHeader, 40], [P.OutHeader, 16], [P.InitIn, 64], [P.InitOut, 64], [P.Attr, 88], [P.EntryOut, 128],
  [P.AttrOut, 104], [P.ForgetIn, 8], [P.ForgetOne, 16], [P.BatchForgetIn, 8], [P.GetattrIn, 16], [P.SetattrIn, 88],
  [P.MknodIn, 16], [P.MkdirIn, 8], [P.RenameIn, 8], [P.Rename2In, 16], [P.LinkIn, 8], [P.OpenIn, 8], [P.CreateIn, 16],
  [P.OpenOut, 16], [P.ReleaseIn, 24], [P.FlushIn, 24], [P.ReadIn, 40], [P.WriteIn, 40], [P.WriteOut, 8],
  [P.Kstatfs, 80], [P.FsyncIn, 16], [P.SetxattrIn, 8], [P.GetxattrIn, 8], [P.GetxattrOut, 8], [P.AccessIn, 8],
  [P.InterruptIn, 8], [P.FallocateIn, 32], [P.LseekIn, 24], [P.LseekOut, 8],
];

test('every struct has the size of its C counterpart', () => {
  for (const [s, size] of SIZES) assert.is(s.size, size, s.name);
});

/** a distinct, exactly representable value for field i of the given type */
function sample(t: FieldType, i: number): number {
  switch (t) {
    case 'u16': return 0x100 + i;
    case 'u32': return 0x8102_0300 + i;
    case 'i32': return -(i + 2);
    case 'u64': return 2 ** 40 + i * 2 ** 33 + i;
  }
}

function read(b: Buffer, t: FieldType, o: number): number {
  switch (t) {
    case 'u16': return b.readUInt16LE(o);
    case 'u32': return b.readUInt32LE(o);
    case 'i32': return b.readInt32LE(o);
    case 'u64': return Number(b.readBigUInt64LE(o));
  }
}

test('every flat struct round-trips, puts each field at its C offset and zeroes padding', () => {
  for (const [s] of SIZES) {
    if (s.fields.length === 0) continue; // composites: next test
    const v: Record<string, number> = {};
    s.fields.forEach((f, i) => { if (f.name) v[f.name] = sample(f.type, i); });
    const b = Buffer.alloc(s.size + 16, 0xee);
    assert.is(s.encode(b, 8, v), 8 + s.size, s.name);
    assert.equal(s.decode(b, 8), v, s.name);
    for (const f of s.fields) {
      assert.is(read(b, f.type, 8 + f.offset), f.name ? v[f.name] : 0, `${s.name}.${f.name || 'padding'}`);
    }
    assert.is(b[7], 0xee, `${s.name} writes before its offset`);
    assert.is(b[8 + s.size], 0xee, `${s.name} writes past its end`);
  }
});

test('field offsets that the kernel relies on', () => {
  const off = (s: Struct<any>, name: string) => s.fields.find((f) => f.name === name)!.offset;
  assert.is(off(P.InHeader, 'opcode'), 4);
  assert.is(off(P.InHeader, 'nodeid'), 16);
  assert.is(off(P.InHeader, 'uid'), 24);
  assert.is(off(P.InHeader, 'pid'), 32);
  assert.is(off(P.OutHeader, 'error'), 4);
  assert.is(off(P.Attr, 'atimensec'), 48);
  assert.is(off(P.Attr, 'mode'), 60);
  assert.is(off(P.Attr, 'blksize'), 80);
  assert.is(off(P.SetattrIn, 'size'), 16);
  assert.is(off(P.SetattrIn, 'atime'), 32);
  assert.is(off(P.SetattrIn, 'mode'), 68);
  assert.is(off(P.SetattrIn, 'uid'), 76);
  assert.is(off(P.InitOut, 'maxWrite'), 20);
  assert.is(off(P.InitOut, 'maxPages'), 28);
  assert.is(off(P.InitOut, 'flags2'), 32);
  assert.is(off(P.WriteIn, 'flags'), 32);
  assert.is(off(P.Kstatfs, 'bsize'), 40);
  assert.is(off(P.Kstatfs, 'frsize'), 48);
});

const attr: P.Attr = {
  ino: 2 ** 35 + 7, size: 123456789012, blocks: 99, atime: 1_700_000_000, mtime: 1_700_000_001, ctime: 1_700_000_002,
  atimensec: 1, mtimensec: 999_999_999, ctimensec: 3, mode: 0o100644, nlink: 1, uid: 65534, gid: 65534,
  rdev: 0x0801, blksize: 4096, flags: 0,
};

test('entry_out and attr_out embed fuse_attr at offsets 40 and 16', () => {
  const e: P.EntryOut = { nodeid: 42, generation: 0, entryValid: 1, attrValid: 2, entryValidNsec: 500, attrValidNsec: 600, attr };
  const b = Buffer.alloc(P.EntryOut.size);
  P.EntryOut.encode(b, 0, e);
  assert.equal(P.EntryOut.decode(b), e);
  assert.equal(P.Attr.decode(b, 40), attr);
  assert.is(b.readUInt32LE(36), 600);

  const a: P.AttrOut = { attrValid: 5, attrValidNsec: 7, attr };
  const c = Buffer.alloc(P.AttrOut.size, 0xff);
  P.AttrOut.encode(c, 0, a);
  assert.equal(P.AttrOut.decode(c), a);
  assert.is(c.readUInt32LE(12), 0, 'dummy zeroed');
  assert.equal(P.Attr.decode(c, 16), attr);
});

test('negative values are written as two’s complement (u64) and i32 keeps its sign', () => {
  const b = Buffer.alloc(16);
  P.OutHeader.encode(b, 0, { len: 16, error: -2, unique: 9 });
  assert.is(b.readInt32LE(4), -2);
  P.LseekOut.encode(b, 0, { offset: -1 });
  assert.is(b.readBigUInt64LE(0), 0xffff_ffff_ffff_ffffn);
});

test('dirents are padded to 8 bytes; names copied; padding zeroed', () => {
  for (const [len, size] of [[1, 32], [7, 32], [8, 32], [9, 40], [16, 40], [17, 48], [255, 280]] as const) {
    assert.is(P.direntSize(len), size, `name length ${len}`);
    assert.is(P.direntplusSize(len), P.align8(128 + 24 + len));
  }
  const b = Buffer.alloc(200, 0xaa);
  const names = ['a', 'abcdefgh', 'abcdefghi', 'é'];
  let off = 0;
  names.forEach((n, i) => { off = P.encodeDirent(b, off, 200, { ino: 100 + i, off: i + 1, type: 8, name: Buffer.from(n) }); });
  assert.is(off, 32 + 32 + 40 + 32);
  assert.is(b[24 + 1], 0, 'padding after "a" is zero');
  const back = P.decodeDirents(b, 0, off);
  assert.equal(back.map((d) => d.name.toString()), names);
  assert.equal(back.map((d) => [d.ino, d.off, d.type]), [[100, 1, 8], [101, 2, 8], [102, 3, 8], [103, 4, 8]]);
});

test('a dirent that does not fit is refused (returns -1) and writes nothing', () => {
  const b = Buffer.alloc(40, 0xaa);
  assert.is(P.encodeDirent(b, 16, 40, { ino: 1, off: 1, type: 4, name: Buffer.from('x') }), -1);
  assert.ok(b.every((x) => x === 0xaa));
  assert.is(P.encodeDirent(b, 8, 40, { ino: 1, off: 1, type: 4, name: Buffer.from('x') }), 40);
});

test('direntplus: entry_out then dirent, 8-aligned, and decodes back', () => {
  const b = Buffer.alloc(1024);
  const e: P.EntryOut = { nodeid: 5, generation: 0, entryValid: 1, attrValid: 1, entryValidNsec: 0, attrValidNsec: 0, attr };
  let off = P.encodeDirentplus(b, 0, 1024, e, { ino: attr.ino, off: 3, type: 8, name: Buffer.from('file.txt') });
  assert.is(off, 160);
  off = P.encodeDirentplus(b, off, 1024, { ...e, nodeid: 0 }, { ino: 2, off: 4, type: 4, name: Buffer.from('..') });
  assert.is(off, 320);
  const back = P.decodeDirentplus(b, 0, off);
  assert.is(back.length, 2);
  assert.equal(back[0]!.entry, e);
  assert.is(back[0]!.dirent.name.toString(), 'file.txt');
  assert.is(back[1]!.entry.nodeid, 0);
  assert.is(back[1]!.dirent.off, 4);
});

test('names: NUL-terminated, consecutive, bounded by the request end', () => {
  const b = Buffer.alloc(64, 0xff);
  const end = P.encodeNames(b, 0, 'from', 'to');
  assert.is(end, 8);
  const a = P.readName(b, 0, end);
  const c = P.readName(b, a.next, end);
  assert.is(a.bytes.toString(), 'from');
  assert.is(c.bytes.toString(), 'to');
  assert.is(c.next, end);
  const unterminated = Buffer.from('abc');
  assert.is(P.readName(unterminated, 0, 3).bytes.toString(), 'abc');
});

test('encodeRequest builds header + struct + tail with the right len', () => {
  const b = Buffer.alloc(256);
  const tail = Buffer.from('name\0');
  const n = P.encodeRequest(b, { opcode: P.Op.MKDIR, unique: 7, nodeid: 1, uid: 1000, gid: 100, pid: 42 },
    { struct: P.MkdirIn, value: { mode: 0o755, umask: 0o22 } }, tail);
  assert.is(n, 40 + 8 + 5);
  const h = P.InHeader.decode(b);
  assert.equal(h, { len: n, opcode: P.Op.MKDIR, unique: 7, nodeid: 1, uid: 1000, gid: 100, pid: 42, totalExtlen: 0 });
  assert.equal(P.MkdirIn.decode(b, 40), { mode: 0o755, umask: 0o22 });
  assert.is(P.readName(b, 48, n).bytes.toString(), 'name');
});

test('error replies are a bare header with the negated errno', () => {
  const b = Buffer.alloc(16);
  assert.is(P.encodeError(b, 77, 2), 16);
  assert.equal(P.OutHeader.decode(b), { len: 16, error: -2, unique: 77 });
});

test('INIT: minor is min(kernel, 31); only offered flags granted; max_pages from max_write', () => {
  const kin = { major: 7, minor: 45, maxReadahead: 131072, flags: 0x7fff_ffff >>> 0, flags2: 0 };
  const d = P.negotiateInit(kin, { maxWrite: 1 << 20, wantFlags: P.DEFAULT_INIT_FLAGS });
  assert.is(d.kind, 'reply');
  if (d.kind !== 'reply') return;
  assert.is(d.out.major, 7);
  assert.is(d.out.minor, 31);
  assert.is(d.out.flags, P.DEFAULT_INIT_FLAGS);
  assert.is(d.out.maxWrite, 1 << 20);
  assert.is(d.out.maxPages, 256);
  assert.is(d.out.maxReadahead, 131072);
  assert.is(d.out.timeGran, 1000, 'microseconds: what the backing store can be given');
  assert.is(d.out.maxBackground, 0, 'kernel default unless asked');
  for (const f of ['ASYNC_READ', 'BIG_WRITES', 'ATOMIC_O_TRUNC', 'MAX_PAGES'] as const) assert.ok(d.out.flags & P.InitFlag[f], f);
  assert.not.ok(d.out.flags & P.InitFlag.WRITEBACK_CACHE, 'no writeback cache');

  const old = P.negotiateInit({ ...kin, minor: 26, flags: P.InitFlag.ASYNC_READ | P.InitFlag.BIG_WRITES }, { maxWrite: 131072, wantFlags: P.DEFAULT_INIT_FLAGS });
  assert.is(old.kind, 'reply');
  if (old.kind === 'reply') {
    assert.is(old.out.minor, 26);
    assert.is(old.out.flags, P.InitFlag.ASYNC_READ | P.InitFlag.BIG_WRITES);
    assert.is(old.out.maxPages, 0, 'no MAX_PAGES offered');
  }
  const wb = P.negotiateInit(kin, { maxWrite: 1 << 20, wantFlags: P.DEFAULT_INIT_FLAGS | P.InitFlag.WRITEBACK_CACHE, maxBackground: 64, congestionThreshold: 48 });
  assert.ok(wb.kind === 'reply' && wb.out.flags & P.InitFlag.WRITEBACK_CACHE, 'writeback cache when asked');
  assert.ok(wb.kind === 'reply' && wb.out.maxBackground === 64 && wb.out.congestionThreshold === 48);
  const noWb = P.negotiateInit({ ...kin, flags: P.DEFAULT_INIT_FLAGS }, { maxWrite: 1 << 20, wantFlags: P.DEFAULT_INIT_FLAGS | P.InitFlag.WRITEBACK_CACHE });
  assert.ok(noWb.kind === 'reply' && !(noWb.out.flags & P.InitFlag.WRITEBACK_CACHE), 'not when the kernel does not offer it');
  assert.is(P.negotiateInit({ ...kin, major: 8 }, { maxWrite: 131072, wantFlags: 0 }).kind, 'major-only');
  assert.is(P.negotiateInit({ ...kin, major: 6 }, { maxWrite: 131072, wantFlags: 0 }).kind, 'refuse');
});

test('INIT in: the 16-byte form of older kernels decodes with flags2 = 0', () => {
  const b = Buffer.alloc(16);
  b.writeUInt32LE(7, 0);
  b.writeUInt32LE(27, 4);
  b.writeUInt32LE(65536, 8);
  b.writeUInt32LE(0x21, 12);
  assert.equal(P.decodeInitIn(b, 0, 16), { major: 7, minor: 27, maxReadahead: 65536, flags: 0x21, flags2: 0 });
});

test('opName and dtype', () => {
  assert.is(P.opName(16), 'WRITE');
  assert.is(P.opName(52), 'STATX');
  assert.is(P.opName(999), 'OP_999');
  assert.is(P.dtype(0o100644), 8);
  assert.is(P.dtype(0o040755), 4);
  assert.is(P.dtype(0o120777), 10);
  assert.is(P.dtype(0o010644), 1);
});

test.run();
