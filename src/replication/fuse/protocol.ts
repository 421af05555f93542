/**
 * Pure codecs for the Linux FUSE kernel protocol (include/uapi/linux/fuse.h), as spoken over /dev/fuse at protocol
 * 7.31. No I/O here: every function reads or writes a caller-owned Buffer at a given offset.
 *
 * Contract:
 * - All integers are little-endian (the kernel's native order on every platform tandem runs on).
 * - u64 fields are JS numbers: exact below 2^53 (8 PiB offsets, nodeids and handles we allocate ourselves). Fields
 *   the server never interprets (lock_owner) may lose low bits above that; nothing depends on them.
 * - Struct layouts are those of minor 31. Two structs grew after 7.31 and are decoded in their 7.31 form because we
 *   never negotiate the flag that enlarges them: fuse_setxattr_in is 8 bytes (no FUSE_SETXATTR_EXT) and requests
 *   carry no extension area (no FUSE_INIT_EXT), so fuse_in_header.total_extlen is always 0.
 * - Names in requests are NUL-terminated; `readName` returns the bytes before the NUL.
 */

// ── opcodes ─────────────────────────────────────────────────────────────────────────────────────────────────────────

export const Op = {
  LOOKUP: 1,
  FORGET: 2, // no reply
  GETATTR: 3,
  SETATTR: 4,
  READLINK: 5,
  SYMLINK: 6,
  MKNOD: 8,
  MKDIR: 9,
  UNLINK: 10,
  RMDIR: 11,
  RENAME: 12,
  LINK: 13,
  OPEN: 14,
  READ: 15,
  WRITE: 16,
  STATFS: 17,
  RELEASE: 18,
  FSYNC: 20,
  SETXATTR: 21,
  GETXATTR: 22,
  LISTXATTR: 23,
  REMOVEXATTR: 24,
  FLUSH: 25,
  INIT: 26,
  OPENDIR: 27,
  READDIR: 28,
  RELEASEDIR: 29,
  FSYNCDIR: 30,
  GETLK: 31,
  SETLK: 32,
  SETLKW: 33,
  ACCESS: 34,
  CREATE: 35,
  INTERRUPT: 36, // no reply
  BMAP: 37,
  DESTROY: 38,
  IOCTL: 39,
  POLL: 40,
  NOTIFY_REPLY: 41,
  BATCH_FORGET: 42, // no reply
  FALLOCATE: 43,
  READDIRPLUS: 44,
  RENAME2: 45,
  LSEEK: 46,
  COPY_FILE_RANGE: 47,
  SETUPMAPPING: 48,
  REMOVEMAPPING: 49,
  SYNCFS: 50,
  TMPFILE: 51,
  STATX: 52,
} as const;
export type OpCode = (typeof Op)[keyof typeof Op];

const opNames = new Map<number, string>(Object.entries(Op).map(([k, v]) => [v, k]));
/** "WRITE", "LOOKUP", … or "OP_<n>" for an opcode this module does not name. */
export function opName(opcode: number): string {
  return opNames.get(opcode) ?? `OP_${opcode}`;
}

export const FUSE_KERNEL_VERSION = 7;
/** The minor we speak. The kernel uses min(its minor, ours). */
export const FUSE_KERNEL_MINOR_VERSION = 31;
export const FUSE_ROOT_ID = 1;
/** The kernel refuses read buffers smaller than this. */
export const FUSE_MIN_READ_BUFFER = 8192;

/** INIT flags (fuse_init_in.flags / fuse_init_out.flags). */
export const InitFlag = {
  ASYNC_READ: 1 << 0,
  POSIX_LOCKS: 1 << 1,
  FILE_OPS: 1 << 2,
  ATOMIC_O_TRUNC: 1 << 3,
  EXPORT_SUPPORT: 1 << 4,
  BIG_WRITES: 1 << 5,
  DONT_MASK: 1 << 6,
  SPLICE_WRITE: 1 << 7,
  SPLICE_MOVE: 1 << 8,
  SPLICE_READ: 1 << 9,
  FLOCK_LOCKS: 1 << 10,
  HAS_IOCTL_DIR: 1 << 11,
  AUTO_INVAL_DATA: 1 << 12,
  DO_READDIRPLUS: 1 << 13,
  READDIRPLUS_AUTO: 1 << 14,
  ASYNC_DIO: 1 << 15,
  WRITEBACK_CACHE: 1 << 16,
  NO_OPEN_SUPPORT: 1 << 17,
  PARALLEL_DIROPS: 1 << 18,
  HANDLE_KILLPRIV: 1 << 19,
  POSIX_ACL: 1 << 20,
  ABORT_ERROR: 1 << 21,
  MAX_PAGES: 1 << 22,
  CACHE_SYMLINKS: 1 << 23,
  NO_OPENDIR_SUPPORT: 1 << 24,
  EXPLICIT_INVAL_DATA: 1 << 25,
  MAP_ALIGNMENT: 1 << 26,
  SUBMOUNTS: 1 << 27,
  HANDLE_KILLPRIV_V2: 1 << 28,
  SETXATTR_EXT: 1 << 29,
  INIT_EXT: 1 << 30,
} as const;

/** fuse_setattr_in.valid bits */
export const FATTR = {
  MODE: 1 << 0,
  UID: 1 << 1,
  GID: 1 << 2,
  SIZE: 1 << 3,
  ATIME: 1 << 4,
  MTIME: 1 << 5,
  FH: 1 << 6,
  ATIME_NOW: 1 << 7,
  MTIME_NOW: 1 << 8,
  LOCKOWNER: 1 << 9,
  CTIME: 1 << 10,
  KILL_SUIDGID: 1 << 11,
} as const;

/** fuse_open_out.open_flags */
export const FOPEN = {
  DIRECT_IO: 1 << 0,
  KEEP_CACHE: 1 << 1,
  NONSEEKABLE: 1 << 2,
  CACHE_DIR: 1 << 3,
  STREAM: 1 << 4,
  NOFLUSH: 1 << 5,
} as const;

export const FUSE_GETATTR_FH = 1 << 0;
export const FUSE_FSYNC_FDATASYNC = 1 << 0;
export const FUSE_RELEASE_FLUSH = 1 << 0;
export const FUSE_WRITE_CACHE = 1 << 0;
export const FUSE_WRITE_LOCKOWNER = 1 << 1;
export const FUSE_WRITE_KILL_SUIDGID = 1 << 2;

/** renameat2 flags carried by RENAME2 */
export const RENAME_NOREPLACE = 1 << 0;
export const RENAME_EXCHANGE = 1 << 1;
export const RENAME_WHITEOUT = 1 << 2;

/** lseek whence values that reach the filesystem (the kernel answers SEEK_SET/CUR/END itself) */
export const SEEK_DATA = 3;
export const SEEK_HOLE = 4;

/** fallocate modes the kernel forwards (fuse_file_fallocate refuses the others with EOPNOTSUPP) */
export const FALLOC_FL_KEEP_SIZE = 0x01;
export const FALLOC_FL_PUNCH_HOLE = 0x02;
export const FALLOC_FL_ZERO_RANGE = 0x10;

// ── generic struct codec ────────────────────────────────────────────────────────────────────────────────────────────

export type FieldType = 'u16' | 'u32' | 'i32' | 'u64';
/** A field named '' is padding: written as zero, not decoded. */
type Layout = readonly (readonly [string, FieldType])[];
type Fields<L extends Layout> = { [F in L[number] as F[0] extends '' ? never : F[0]]: number };

const fieldSize: Record<FieldType, number> = { u16: 2, u32: 4, i32: 4, u64: 8 };
const TWO32 = 0x1_0000_0000;

function readU64(b: Buffer, o: number): number {
  return b.readUInt32LE(o) + b.readUInt32LE(o + 4) * TWO32;
}
function writeU64(b: Buffer, o: number, v: number): void {
  // Negative values (error offsets, -1 "unchanged") wrap to their two's complement like C would.
  const n = v < 0 ? BigInt.asUintN(64, BigInt(v)) : null;
  if (n !== null) {
    b.writeBigUInt64LE(n, o);
    return;
  }
  const lo = v % TWO32;
  b.writeUInt32LE(lo, o);
  b.writeUInt32LE((v - lo) / TWO32, o + 4);
}

/** A fixed-size C struct: its size, and encode/decode at an offset. */
export interface Struct<T> {
  readonly name: string;
  readonly size: number;
  /** the layout, padding included (name ''); empty for composite structs */
  readonly fields: readonly { name: string; type: FieldType; offset: number }[];
  decode(b: Buffer, off?: number): T;
  /** writes all `size` bytes (padding zeroed); returns off + size */
  encode(b: Buffer, off: number, v: T): number;
}

function struct<const L extends Layout>(name: string, layout: L): Struct<Fields<L>> {
  const offsets: number[] = [];
  let size = 0;
  for (const [, t] of layout) {
    offsets.push(size);
    size += fieldSize[t];
  }
  return {
    name,
    size,
    fields: layout.map(([f, t], i) => ({ name: f, type: t, offset: offsets[i]! })),
    decode(b, off = 0) {
      const v: Record<string, number> = {};
      for (let i = 0; i < layout.length; i++) {
        const [f, t] = layout[i]!;
        if (f === '') continue;
        const o = off + offsets[i]!;
        v[f] = t === 'u64' ? readU64(b, o) : t === 'u32' ? b.readUInt32LE(o) : t === 'i32' ? b.readInt32LE(o) : b.readUInt16LE(o);
      }
      return v as Fields<L>;
    },
    encode(b, off, v) {
      const rec = v as Record<string, number>;
      for (let i = 0; i < layout.length; i++) {
        const [f, t] = layout[i]!;
        const x = f === '' ? 0 : rec[f] ?? 0;
        const o = off + offsets[i]!;
        if (t === 'u64') writeU64(b, o, x);
        else if (t === 'u32') b.writeUInt32LE(x >>> 0, o);
        else if (t === 'i32') b.writeInt32LE(x | 0, o);
        else b.writeUInt16LE(x & 0xffff, o);
      }
      return off + size;
    },
  };
}

// ── headers ─────────────────────────────────────────────────────────────────────────────────────────────────────────

export const InHeader = struct('fuse_in_header', [
  ['len', 'u32'], ['opcode', 'u32'], ['unique', 'u64'], ['nodeid', 'u64'],
  ['uid', 'u32'], ['gid', 'u32'], ['pid', 'u32'], ['totalExtlen', 'u16'], ['', 'u16'],
] as const);
export type InHeader = ReturnType<typeof InHeader.decode>;

export const OutHeader = struct('fuse_out_header', [['len', 'u32'], ['error', 'i32'], ['unique', 'u64']] as const);
export type OutHeader = ReturnType<typeof OutHeader.decode>;

// ── INIT ────────────────────────────────────────────────────────────────────────────────────────────────────────────

/** The kernel sends 16 bytes before 7.36 and 64 after; decode what is there. */
export const InitIn = struct('fuse_init_in', [
  ['major', 'u32'], ['minor', 'u32'], ['maxReadahead', 'u32'], ['flags', 'u32'], ['flags2', 'u32'],
  ['', 'u32'], ['', 'u32'], ['', 'u32'], ['', 'u32'], ['', 'u32'], ['', 'u32'], ['', 'u32'], ['', 'u32'], ['', 'u32'], ['', 'u32'], ['', 'u32'],
] as const);
export type InitIn = ReturnType<typeof InitIn.decode>;
export function decodeInitIn(b: Buffer, off: number, len: number): InitIn {
  if (len >= InitIn.size) return InitIn.decode(b, off);
  return {
    major: b.readUInt32LE(off), minor: b.readUInt32LE(off + 4), maxReadahead: b.readUInt32LE(off + 8),
    flags: b.readUInt32LE(off + 12), flags2: len >= 20 ? b.readUInt32LE(off + 16) : 0,
  };
}

export const InitOut = struct('fuse_init_out', [
  ['major', 'u32'], ['minor', 'u32'], ['maxReadahead', 'u32'], ['flags', 'u32'],
  ['maxBackground', 'u16'], ['congestionThreshold', 'u16'], ['maxWrite', 'u32'], ['timeGran', 'u32'],
  ['maxPages', 'u16'], ['mapAlignment', 'u16'], ['flags2', 'u32'],
  ['', 'u32'], ['', 'u32'], ['', 'u32'], ['', 'u32'], ['', 'u32'], ['', 'u32'], ['', 'u32'],
] as const);
export type InitOut = ReturnType<typeof InitOut.decode>;

export interface InitOptions {
  /** bytes per WRITE request; a multiple of 4096, at least 128 KiB */
  maxWrite: number;
  /** flags we would like; only those the kernel offered are granted */
  wantFlags: number;
  /**
   * Background requests the kernel keeps in flight (readahead, writeback of cached pages, async RELEASE), and the
   * count above which it reports the connection congested; 0 = the kernel's defaults (12 and 9).
   */
  maxBackground?: number;
  congestionThreshold?: number;
  /** granularity in ns of the timestamps the kernel makes or passes on (it truncates to them); default TIME_GRAN */
  timeGran?: number;
}

/**
 * The flags tandem asks for, and why:
 * - ASYNC_READ: the kernel may issue readahead without waiting; harmless with one worker, useful with several.
 * - ATOMIC_O_TRUNC: O_TRUNC arrives in OPEN, so truncate-on-open is one request and one Change (not OPEN+SETATTR).
 * - BIG_WRITES + MAX_PAGES: writes up to maxWrite (1 MiB) per request instead of 4 KiB / 128 KiB.
 * - DO_READDIRPLUS + READDIRPLUS_AUTO: `ls -l` gets names and attributes in one request, the kernel decides when.
 * - CACHE_SYMLINKS: symlink targets never change in place (a new target is a new inode), so caching them is safe.
 * - ABORT_ERROR: after a fusectl abort the device read fails with ECONNABORTED, telling abort from unmount (ENODEV).
 * On request only (mountPassthrough's `writebackCache`, off by default): WRITEBACK_CACHE. The kernel then keeps
 * written pages in its cache and sends them as WRITEs (flag FUSE_WRITE_CACHE) at writeback, close, fsync and munmap;
 * it owns size, mtime and ctime of regular files (it ignores ours and sends its mtime/ctime back as a SETATTR), and
 * it computes O_APPEND offsets itself. Before FSYNC it writes back and waits for every dirty page of the file, so
 * the ChangeSink still sees every byte written before an fsync ahead of onSync; but a write(2) returns before the
 * sink has seen it. On the bench (bench/fuse.ts) it makes an unsynced 4 KiB write as fast as on the backing store
 * (3 µs instead of about 80 µs), but costs 10-20 % of 4 KiB+fsync throughput (the kernel adds a SETATTR of its
 * mtime before each FSYNC) and does not speed up sequential writes: the kernel's strict dirty limit for a FUSE bdi
 * (max_ratio 1 %, about 47 MiB here) throttles the writer to the server's pace, and lifting it through sysfs
 * defers all the work to the fsync instead.
 * Deliberately not asked: HANDLE_KILLPRIV (the
 * kernel then clears setuid/setgid itself with an explicit SETATTR, which the sink sees as a chmod);
 * POSIX_ACL/xattrs (no xattr syscalls from Node); SPLICE_* (Node cannot splice); POSIX_LOCKS/FLOCK_LOCKS (locks stay
 * local to this kernel, which is right for a single active node); PARALLEL_DIROPS (one worker serializes anyway);
 * EXPORT_SUPPORT (no NFS re-export of the mount).
 */
export const DEFAULT_INIT_FLAGS =
  InitFlag.ASYNC_READ | InitFlag.ATOMIC_O_TRUNC | InitFlag.BIG_WRITES | InitFlag.MAX_PAGES |
  InitFlag.DO_READDIRPLUS | InitFlag.READDIRPLUS_AUTO | InitFlag.CACHE_SYMLINKS | InitFlag.ABORT_ERROR;

/**
 * Timestamp granularity we announce: 1 µs, the precision at which the passthrough can set times on the backing
 * store (Node's utimes goes through libuv, which truncates to microseconds). The kernel truncates the times it
 * makes (writeback cache mtime/ctime) and the ones it passes on (utimensat) to this, so the mount, the backing
 * store and the ChangeSink agree exactly.
 */
export const TIME_GRAN = 1000;

export type InitDecision =
  | { kind: 'reply'; out: InitOut }
  /** the kernel speaks a newer major: answer with our major only and wait for another INIT */
  | { kind: 'major-only'; out: InitOut }
  | { kind: 'refuse'; reason: string };

/** Version and feature negotiation (the "Version negotiation" rules of fuse.h). Pure. */
export function negotiateInit(kin: InitIn, opts: InitOptions): InitDecision {
  const blank: InitOut = {
    major: FUSE_KERNEL_VERSION, minor: FUSE_KERNEL_MINOR_VERSION, maxReadahead: 0, flags: 0, maxBackground: 0,
    congestionThreshold: 0, maxWrite: 0, timeGran: 0, maxPages: 0, mapAlignment: 0, flags2: 0,
  };
  if (kin.major > FUSE_KERNEL_VERSION) return { kind: 'major-only', out: blank };
  if (kin.major < FUSE_KERNEL_VERSION || kin.minor < 12) {
    return { kind: 'refuse', reason: `kernel FUSE protocol ${kin.major}.${kin.minor} is too old (need 7.12 or later)` };
  }
  const minor = Math.min(kin.minor, FUSE_KERNEL_MINOR_VERSION);
  const flags = (opts.wantFlags & kin.flags) >>> 0;
  const pages = Math.ceil(opts.maxWrite / 4096);
  return {
    kind: 'reply',
    out: {
      ...blank,
      minor,
      maxReadahead: kin.maxReadahead,
      flags,
      maxWrite: opts.maxWrite,
      maxBackground: Math.min(opts.maxBackground ?? 0, 0xffff),
      congestionThreshold: Math.min(opts.congestionThreshold ?? 0, 0xffff),
      timeGran: opts.timeGran ?? TIME_GRAN,
      maxPages: flags & InitFlag.MAX_PAGES ? pages : 0,
    },
  };
}

// ── attributes and entries ──────────────────────────────────────────────────────────────────────────────────────────

export const Attr = struct('fuse_attr', [
  ['ino', 'u64'], ['size', 'u64'], ['blocks', 'u64'], ['atime', 'u64'], ['mtime', 'u64'], ['ctime', 'u64'],
  ['atimensec', 'u32'], ['mtimensec', 'u32'], ['ctimensec', 'u32'], ['mode', 'u32'], ['nlink', 'u32'],
  ['uid', 'u32'], ['gid', 'u32'], ['rdev', 'u32'], ['blksize', 'u32'], ['flags', 'u32'],
] as const);
export type Attr = ReturnType<typeof Attr.decode>;

const EntryHead = struct('fuse_entry_out head', [
  ['nodeid', 'u64'], ['generation', 'u64'], ['entryValid', 'u64'], ['attrValid', 'u64'],
  ['entryValidNsec', 'u32'], ['attrValidNsec', 'u32'],
] as const);
export interface EntryOut {
  nodeid: number;
  generation: number;
  entryValid: number;
  attrValid: number;
  entryValidNsec: number;
  attrValidNsec: number;
  attr: Attr;
}
export const EntryOut: Struct<EntryOut> = {
  name: 'fuse_entry_out',
  fields: [],
  size: EntryHead.size + Attr.size, // 128
  decode(b, off = 0) {
    return { ...EntryHead.decode(b, off), attr: Attr.decode(b, off + EntryHead.size) };
  },
  encode(b, off, v) {
    EntryHead.encode(b, off, v);
    return Attr.encode(b, off + EntryHead.size, v.attr);
  },
};

const AttrOutHead = struct('fuse_attr_out head', [['attrValid', 'u64'], ['attrValidNsec', 'u32'], ['', 'u32']] as const);
export interface AttrOut {
  attrValid: number;
  attrValidNsec: number;
  attr: Attr;
}
export const AttrOut: Struct<AttrOut> = {
  name: 'fuse_attr_out',
  fields: [],
  size: AttrOutHead.size + Attr.size, // 104
  decode(b, off = 0) {
    return { ...AttrOutHead.decode(b, off), attr: Attr.decode(b, off + AttrOutHead.size) };
  },
  encode(b, off, v) {
    AttrOutHead.encode(b, off, v);
    return Attr.encode(b, off + AttrOutHead.size, v.attr);
  },
};

// ── request bodies ──────────────────────────────────────────────────────────────────────────────────────────────────

export const ForgetIn = struct('fuse_forget_in', [['nlookup', 'u64']] as const);
export const ForgetOne = struct('fuse_forget_one', [['nodeid', 'u64'], ['nlookup', 'u64']] as const);
export const BatchForgetIn = struct('fuse_batch_forget_in', [['count', 'u32'], ['', 'u32']] as const);
export const GetattrIn = struct('fuse_getattr_in', [['getattrFlags', 'u32'], ['', 'u32'], ['fh', 'u64']] as const);
export const SetattrIn = struct('fuse_setattr_in', [
  ['valid', 'u32'], ['', 'u32'], ['fh', 'u64'], ['size', 'u64'], ['lockOwner', 'u64'],
  ['atime', 'u64'], ['mtime', 'u64'], ['ctime', 'u64'],
  ['atimensec', 'u32'], ['mtimensec', 'u32'], ['ctimensec', 'u32'], ['mode', 'u32'], ['', 'u32'],
  ['uid', 'u32'], ['gid', 'u32'], ['', 'u32'],
] as const);
export type SetattrIn = ReturnType<typeof SetattrIn.decode>;
export const MknodIn = struct('fuse_mknod_in', [['mode', 'u32'], ['rdev', 'u32'], ['umask', 'u32'], ['', 'u32']] as const);
export const MkdirIn = struct('fuse_mkdir_in', [['mode', 'u32'], ['umask', 'u32']] as const);
export const RenameIn = struct('fuse_rename_in', [['newdir', 'u64']] as const);
export const Rename2In = struct('fuse_rename2_in', [['newdir', 'u64'], ['flags', 'u32'], ['', 'u32']] as const);
export const LinkIn = struct('fuse_link_in', [['oldnodeid', 'u64']] as const);
export const OpenIn = struct('fuse_open_in', [['flags', 'u32'], ['openFlags', 'u32']] as const);
export const CreateIn = struct('fuse_create_in', [['flags', 'u32'], ['mode', 'u32'], ['umask', 'u32'], ['openFlags', 'u32']] as const);
export const OpenOut = struct('fuse_open_out', [['fh', 'u64'], ['openFlags', 'u32'], ['', 'u32']] as const);
export const ReleaseIn = struct('fuse_release_in', [['fh', 'u64'], ['flags', 'u32'], ['releaseFlags', 'u32'], ['lockOwner', 'u64']] as const);
export const FlushIn = struct('fuse_flush_in', [['fh', 'u64'], ['', 'u32'], ['', 'u32'], ['lockOwner', 'u64']] as const);
export const ReadIn = struct('fuse_read_in', [
  ['fh', 'u64'], ['offset', 'u64'], ['size', 'u32'], ['readFlags', 'u32'], ['lockOwner', 'u64'], ['flags', 'u32'], ['', 'u32'],
] as const);
export const WriteIn = struct('fuse_write_in', [
  ['fh', 'u64'], ['offset', 'u64'], ['size', 'u32'], ['writeFlags', 'u32'], ['lockOwner', 'u64'], ['flags', 'u32'], ['', 'u32'],
] as const);
export const WriteOut = struct('fuse_write_out', [['size', 'u32'], ['', 'u32']] as const);
export const Kstatfs = struct('fuse_kstatfs', [
  ['blocks', 'u64'], ['bfree', 'u64'], ['bavail', 'u64'], ['files', 'u64'], ['ffree', 'u64'],
  ['bsize', 'u32'], ['namelen', 'u32'], ['frsize', 'u32'], ['', 'u32'],
  ['', 'u32'], ['', 'u32'], ['', 'u32'], ['', 'u32'], ['', 'u32'], ['', 'u32'],
] as const);
export type Kstatfs = ReturnType<typeof Kstatfs.decode>;
/** fuse_statfs_out is exactly one fuse_kstatfs */
export const StatfsOut = Kstatfs;
export const FsyncIn = struct('fuse_fsync_in', [['fh', 'u64'], ['fsyncFlags', 'u32'], ['', 'u32']] as const);
/** 7.31 form (FUSE_COMPAT_SETXATTR_IN_SIZE): no setxattr_flags without FUSE_SETXATTR_EXT */
export const SetxattrIn = struct('fuse_setxattr_in', [['size', 'u32'], ['flags', 'u32']] as const);
export const GetxattrIn = struct('fuse_getxattr_in', [['size', 'u32'], ['', 'u32']] as const);
export const GetxattrOut = struct('fuse_getxattr_out', [['size', 'u32'], ['', 'u32']] as const);
export const AccessIn = struct('fuse_access_in', [['mask', 'u32'], ['', 'u32']] as const);
export const InterruptIn = struct('fuse_interrupt_in', [['unique', 'u64']] as const);
export const FallocateIn = struct('fuse_fallocate_in', [['fh', 'u64'], ['offset', 'u64'], ['length', 'u64'], ['mode', 'u32'], ['', 'u32']] as const);
export const LseekIn = struct('fuse_lseek_in', [['fh', 'u64'], ['offset', 'u64'], ['whence', 'u32'], ['', 'u32']] as const);
export const LseekOut = struct('fuse_lseek_out', [['offset', 'u64']] as const);
/** SYNCFS carries a fuse_syncfs_in that only pads */
export const SyncfsIn = struct('fuse_syncfs_in', [['padding', 'u64']] as const);

// ── names ───────────────────────────────────────────────────────────────────────────────────────────────────────────

/** The NUL-terminated byte string at [off, end): returns its bytes (without NUL) and the offset after the NUL. */
export function readName(b: Buffer, off: number, end: number): { bytes: Buffer; next: number } {
  let z = b.indexOf(0, off);
  if (z < 0 || z >= end) z = end;
  return { bytes: b.subarray(off, z), next: Math.min(z + 1, end) };
}

/** Encodes names as the kernel sends them (each NUL-terminated), for tests and tools. */
export function encodeNames(b: Buffer, off: number, ...names: (string | Uint8Array)[]): number {
  for (const n of names) {
    off += typeof n === 'string' ? b.write(n, off, 'utf8') : Buffer.from(n.buffer, n.byteOffset, n.byteLength).copy(b, off);
    b[off++] = 0;
  }
  return off;
}

// ── directory entries ───────────────────────────────────────────────────────────────────────────────────────────────

/** FUSE_REC_ALIGN: records are padded to 8 bytes. */
export function align8(n: number): number {
  return (n + 7) & ~7;
}
/** offsetof(struct fuse_dirent, name) */
export const DIRENT_NAME_OFFSET = 24;
/** offsetof(struct fuse_direntplus, dirent.name) */
export const DIRENTPLUS_NAME_OFFSET = EntryOut.size + DIRENT_NAME_OFFSET;

export function direntSize(nameLen: number): number {
  return align8(DIRENT_NAME_OFFSET + nameLen);
}
export function direntplusSize(nameLen: number): number {
  return align8(DIRENTPLUS_NAME_OFFSET + nameLen);
}

export interface Dirent {
  ino: number;
  /** offset of the NEXT entry (what telldir returns after this one) */
  off: number;
  /** DT_* type: (st_mode >> 12) & 15 */
  type: number;
  name: Buffer;
}

/** Writes one fuse_dirent at `off` if it fits before `end`; returns the new offset, or -1 when it does not fit. */
export function encodeDirent(b: Buffer, off: number, end: number, d: Dirent): number {
  const size = direntSize(d.name.length);
  if (off + size > end) return -1;
  writeU64(b, off, d.ino);
  writeU64(b, off + 8, d.off);
  b.writeUInt32LE(d.name.length, off + 16);
  b.writeUInt32LE(d.type, off + 20);
  d.name.copy(b, off + DIRENT_NAME_OFFSET);
  b.fill(0, off + DIRENT_NAME_OFFSET + d.name.length, off + size);
  return off + size;
}

/** Writes one fuse_direntplus (entry_out then dirent); same contract as encodeDirent. */
export function encodeDirentplus(b: Buffer, off: number, end: number, e: EntryOut, d: Dirent): number {
  const size = direntplusSize(d.name.length);
  if (off + size > end) return -1;
  EntryOut.encode(b, off, e);
  const r = encodeDirent(b, off + EntryOut.size, end, d);
  if (r !== off + size) throw new Error('direntplus size mismatch'); // both are aligned identically
  return r;
}

/** Parses a READDIR reply body (for tests and tools). */
export function decodeDirents(b: Buffer, off: number, end: number): Dirent[] {
  const out: Dirent[] = [];
  while (off + DIRENT_NAME_OFFSET <= end) {
    const namelen = b.readUInt32LE(off + 16);
    out.push({ ino: readU64(b, off), off: readU64(b, off + 8), type: b.readUInt32LE(off + 20), name: Buffer.from(b.subarray(off + 24, off + 24 + namelen)) });
    off += direntSize(namelen);
  }
  return out;
}

/** Parses a READDIRPLUS reply body (for tests and tools). */
export function decodeDirentplus(b: Buffer, off: number, end: number): { entry: EntryOut; dirent: Dirent }[] {
  const out: { entry: EntryOut; dirent: Dirent }[] = [];
  while (off + DIRENTPLUS_NAME_OFFSET <= end) {
    const entry = EntryOut.decode(b, off);
    const [dirent] = decodeDirents(b, off + EntryOut.size, off + EntryOut.size + direntSize(b.readUInt32LE(off + EntryOut.size + 16)));
    out.push({ entry, dirent: dirent! });
    off += direntplusSize(dirent!.name.length);
  }
  return out;
}

// ── whole messages ──────────────────────────────────────────────────────────────────────────────────────────────────

/** Writes a fuse_out_header at 0 for a reply of `len` bytes in total (header included). */
export function writeOutHeader(b: Buffer, unique: number, error: number, len: number): number {
  OutHeader.encode(b, 0, { len, error, unique });
  return len;
}

/** fuse_notify_code: a notification is an out header with unique 0 and the code in `error`, then its struct. */
export const NotifyCode = {
  RETRIEVE: 5,
} as const;

export const NotifyRetrieveOut = struct('fuse_notify_retrieve_out', [
  ['notifyUnique', 'u64'], ['nodeid', 'u64'], ['offset', 'u64'], ['size', 'u32'], ['', 'u32'],
] as const);

/**
 * A FUSE_NOTIFY_RETRIEVE notification: the kernel answers it by queueing a NOTIFY_REPLY request (unique =
 * `notifyUnique`, which must not be 0) carrying the cached bytes of [offset, offset+size) of `nodeid`; the server
 * must not reply to that request. With size 0 it carries no data: a way to make a server thread blocked in
 * read(2) of /dev/fuse return (freeze-gate.ts). Returns the message length.
 */
export function encodeNotifyRetrieve(b: Buffer, r: { notifyUnique: number; nodeid: number; offset: number; size: number }): number {
  const len = NotifyRetrieveOut.encode(b, OutHeader.size, r);
  OutHeader.encode(b, 0, { len, error: NotifyCode.RETRIEVE, unique: 0 });
  return len;
}

/** An error reply: header only. `errno` is positive (ENOENT = 2); the wire carries it negated. */
export function encodeError(b: Buffer, unique: number, errno: number): number {
  return writeOutHeader(b, unique, -Math.abs(errno), OutHeader.size);
}

/**
 * Builds a request as the kernel would (for unit tests and a fake kernel): header, then the fixed struct (if any),
 * then raw tail bytes (names, write data).
 */
export function encodeRequest(
  b: Buffer,
  h: Omit<InHeader, 'len' | 'totalExtlen'>,
  body?: { struct: Struct<any>; value: unknown },
  tail?: Uint8Array,
): number {
  let off = InHeader.size;
  if (body) off = body.struct.encode(b, off, body.value);
  if (tail) off += Buffer.from(tail.buffer, tail.byteOffset, tail.byteLength).copy(b, off);
  InHeader.encode(b, 0, { ...h, len: off, totalExtlen: 0 });
  return off;
}

/** S_IFMT → DT_* */
export function dtype(mode: number): number {
  return (mode >>> 12) & 15;
}
