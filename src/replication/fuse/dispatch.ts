import { constants as C } from 'node:fs';
import { E, errnoOf } from './errno.js';
import type { Ctx } from './passthrough.js';
import {
  AccessIn, AttrOut, BatchForgetIn, CreateIn, decodeInitIn, EntryOut, FallocateIn, ForgetIn, ForgetOne, FsyncIn,
  FUSE_FSYNC_FDATASYNC, FUSE_GETATTR_FH, GetattrIn, InHeader, InitOut, type InitOptions, LseekIn, LseekOut,
  MkdirIn, MknodIn, negotiateInit, Op, OpenIn, OpenOut, opName, OutHeader, ReadIn, ReleaseIn, Rename2In, RenameIn,
  SetattrIn, StatfsOut, WriteIn, WriteOut, encodeError, readName, writeOutHeader, FlushIn, type Kstatfs,
} from './protocol.js';

/**
 * What the Dispatcher drives: one filesystem answering decoded requests, synchronously, one at a time. The
 * replication passthrough (passthrough.ts) is one; the lab's lossy disk (src/lab/lossy/) another. Methods throw an
 * FsError (or a Node system error) to fail a request with its errno; anything else becomes EIO and is logged as a bug.
 * `fsync` returns true when it took over the reply (it answers `unique` later); false means "reply now".
 */
export interface FuseFs {
  readonly table: { readonly size: number };
  readonly openFiles: number;
  readonly openDirs: number;
  negotiated(flags: number): void;
  lookup(parent: number, name: Buffer): EntryOut;
  forget(nodeid: number, n: number): void;
  getattr(nodeid: number, fh: number | null): AttrOut;
  setattr(nodeid: number, a: SetattrIn): AttrOut;
  readlink(nodeid: number): Buffer;
  symlink(ctx: Ctx, parent: number, name: Buffer, target: Buffer): EntryOut;
  mknod(ctx: Ctx, parent: number, name: Buffer, mode: number, rdev: number): EntryOut;
  mkdir(ctx: Ctx, parent: number, name: Buffer, mode: number): EntryOut;
  unlink(parent: number, name: Buffer): void;
  rmdir(parent: number, name: Buffer): void;
  rename(parent: number, name: Buffer, newParent: number, newName: Buffer, flags: number): void;
  link(): never;
  open(nodeid: number, flags: number): number;
  create(ctx: Ctx, parent: number, name: Buffer, flags: number, mode: number): { entry: EntryOut; fh: number };
  read(fh: number, offset: number, size: number, out: Buffer, outOff: number): number;
  write(fh: number, offset: number, data: Buffer, writeFlags: number, flags: number): number;
  statfs(): Kstatfs;
  flush(fh: number): void;
  release(fh: number): void;
  fsync(fh: number, datasync: boolean, unique?: number): boolean;
  opendir(nodeid: number): number;
  readdir(fh: number, offset: number, size: number, plus: boolean, out: Buffer, outOff: number): number;
  releasedir(fh: number): void;
  fsyncdir(fh: number, datasync: boolean): void;
  access(ctx: Ctx, nodeid: number, mask: number): void;
  fallocate(fh: number, offset: number, length: number, mode: number): void;
  lseek(fh: number, offset: number, whence: number): number;
  /** syncfs of the mount (fuseblk only); true when the reply is deferred. Absent: ENOSYS */
  syncfs?(unique?: number): boolean;
  /** called once each request is answered (per-request resources) */
  endRequest?(): void;
}

/** Counters shared with the main thread (a Float64Array over a SharedArrayBuffer); indexes into it. */
export const Stat = {
  requests: 0,
  errors: 1,
  bytesRead: 2,
  bytesWritten: 3,
  writes: 4,
  reads: 5,
  fsyncs: 6,
  inodes: 7,
  openFiles: 8,
  openDirs: 9,
  /** write-behind requests handed to the helper thread */
  writeBehinds: 10,
  /** mutating requests held at the freeze gate, their total and longest wait in ms (freeze-gate.ts) */
  gateWaits: 11,
  gateWaitMs: 12,
  gateWaitMaxMs: 13,
} as const;
export const STAT_SLOTS = 14;

/**
 * The opcodes the freeze gate holds (freeze-gate.ts): every request that may change the backing store or report to
 * the ChangeSink, i.e. SETATTR (truncate, chmod, chown, utimens), SYMLINK, MKNOD, MKDIR, UNLINK, RMDIR, RENAME(2),
 * CREATE, WRITE, FALLOCATE, and also:
 * - FSYNC and FSYNCDIR: they change no byte, but they reach onSync, and their reply promises durability under the
 *   sink's current mode; a mode switch during a freeze must not fall between a sync and its reply.
 * - SYNCFS, like FSYNC: its reply promises durability of everything before it.
 * - LINK, SETXATTR, REMOVEXATTR, COPY_FILE_RANGE, TMPFILE: refused today (EPERM / ENOSYS) but changes if ever
 *   implemented; holding them costs nothing.
 * - OPEN only with O_TRUNC (sent because we agree to ATOMIC_O_TRUNC) or O_CREAT (the kernel strips it, but a
 *   truncating or creating open is a change by definition): see `mutates`.
 * Not held: FLUSH (only checks the handle; under writeback caching the kernel writes dirty pages back with WRITEs,
 * which are held, before it sends FLUSH), RELEASE / RELEASEDIR (close a backing fd: no byte or name changes; the last
 * close of an unlinked file frees blocks no path leads to), FORGET, INTERRUPT, and every read-only request. Reads
 * may still update atimes on the backing store (as the backing mount's atime options say); that is not content.
 */
const HELD = new Uint8Array(64);
for (const op of [
  Op.SETATTR, Op.SYMLINK, Op.MKNOD, Op.MKDIR, Op.UNLINK, Op.RMDIR, Op.RENAME, Op.RENAME2, Op.LINK, Op.CREATE, Op.WRITE,
  Op.FALLOCATE, Op.FSYNC, Op.FSYNCDIR, Op.SETXATTR, Op.REMOVEXATTR, Op.COPY_FILE_RANGE, Op.TMPFILE, Op.SYNCFS,
]) HELD[op] = 1;
const OPEN_CHANGES = C.O_TRUNC | C.O_CREAT;

/**
 * The nodeid of the regular file a held request is on, when the kernel cannot drop that inode while the request
 * waits (an open file or a writeback is behind it): WRITE, FSYNC, FALLOCATE, OPEN. 0 for the others. The freeze gate
 * uses it to wake the worker (freeze-gate.ts).
 */
export function pinnedFile(req: Buffer): number {
  const opcode = req.readUInt32LE(4);
  if (opcode !== Op.WRITE && opcode !== Op.FSYNC && opcode !== Op.FALLOCATE && opcode !== Op.OPEN) return 0;
  return InHeader.decode(req, 0).nodeid;
}

/** Does the request in req[0, n) change the backing store or reach the sink (see HELD)? */
export function mutates(req: Buffer, n: number): boolean {
  const opcode = req.readUInt32LE(4);
  if (opcode < HELD.length && HELD[opcode] === 1) return true;
  return opcode === Op.OPEN && n >= InHeader.size + OpenIn.size && (req.readUInt32LE(InHeader.size) & OPEN_CHANGES) !== 0;
}

export interface DispatcherOptions {
  init: InitOptions;
  log: (msg: string) => void;
  /** called once INIT is answered */
  onInit?: (out: InitOut, kernel: { major: number; minor: number; flags: number }) => void;
  stats?: Float64Array;
}

/**
 * Turns one request from /dev/fuse into one reply for it (or none), calling the FuseFs. Pure apart from the
 * FuseFs it drives: no device I/O here, so it can be driven by a fake kernel in tests.
 *
 * Contract: `handle(req, n, out)` reads the request in req[0, n) and writes the reply into `out` from 0, returning
 * its length; 0 means "send nothing" (FORGET, BATCH_FORGET, INTERRUPT). `out` must hold 16 + max_write bytes.
 * Requests before INIT are answered EIO. Unknown opcodes, xattrs, locks, ioctl, poll, bmap, copy_file_range,
 * tmpfile and statx get ENOSYS (the kernel then falls back or remembers "unsupported"). FSYNC and SYNCFS may be
 * answered later by the sink's side (the Passthrough says so): then nothing is sent from here either.
 */
export class Dispatcher {
  private initialized = false;
  destroyed = false;
  /** set when INIT could not be agreed: the worker should stop */
  fatal: string | null = null;

  constructor(private readonly fs: FuseFs, private readonly o: DispatcherOptions) {}

  handle(req: Buffer, n: number, out: Buffer): number {
    const h = InHeader.decode(req, 0);
    const s = this.o.stats;
    if (s) s[Stat.requests]!++;
    const body = InHeader.size;
    try {
      if (h.opcode === Op.INIT) return this.init(req, body, n, h.unique, out);
      if (!this.initialized) return encodeError(out, h.unique, E.EIO);
      const len = this.op(h, req, body, n, out);
      if (s) this.count(s, h.opcode, len, out);
      return len;
    } catch (err) {
      const errno = errnoOf(err);
      if (s) s[Stat.errors]!++;
      if (errno === null) {
        this.o.log(`BUG in ${opName(h.opcode)}: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
        return encodeError(out, h.unique, E.EIO);
      }
      return encodeError(out, h.unique, errno);
    } finally {
      this.fs.endRequest?.();
    }
  }

  private init(req: Buffer, body: number, n: number, unique: number, out: Buffer): number {
    const kin = decodeInitIn(req, body, n - body);
    const d = negotiateInit(kin, this.o.init);
    if (d.kind === 'refuse') {
      this.fatal = d.reason;
      return encodeError(out, unique, E.EPROTO);
    }
    const len = InitOut.encode(out, OutHeader.size, d.out);
    if (d.kind === 'reply') {
      this.initialized = true;
      this.fs.negotiated(d.out.flags);
      this.o.onInit?.(d.out, kin);
    }
    return writeOutHeader(out, unique, 0, len);
  }

  private op(h: InHeader, req: Buffer, body: number, n: number, out: Buffer): number {
    const fs = this.fs;
    const ok = (len = OutHeader.size) => writeOutHeader(out, h.unique, 0, len);
    const entry = (e: EntryOut) => ok(EntryOut.encode(out, OutHeader.size, e));
    const ctx = { uid: h.uid, gid: h.gid, pid: h.pid };
    switch (h.opcode) {
      case Op.LOOKUP:
        return entry(fs.lookup(h.nodeid, readName(req, body, n).bytes));
      case Op.FORGET:
        fs.forget(h.nodeid, ForgetIn.decode(req, body).nlookup);
        return 0;
      case Op.BATCH_FORGET: {
        const { count } = BatchForgetIn.decode(req, body);
        for (let i = 0, o = body + BatchForgetIn.size; i < count && o + ForgetOne.size <= n; i++, o += ForgetOne.size) {
          const f = ForgetOne.decode(req, o);
          fs.forget(f.nodeid, f.nlookup);
        }
        return 0;
      }
      case Op.INTERRUPT:
        // One worker answers requests in order, so the interrupted request has already been answered (or is held at
        // the freeze gate, where it stays until the thaw).
        return 0;
      case Op.NOTIFY_REPLY:
        // The kernel's answer to the freeze gate's wake-up (freeze-gate.ts); it takes no reply.
        return 0;
      case Op.GETATTR: {
        const g = GetattrIn.decode(req, body);
        return ok(AttrOut.encode(out, OutHeader.size, fs.getattr(h.nodeid, g.getattrFlags & FUSE_GETATTR_FH ? g.fh : null)));
      }
      case Op.SETATTR:
        return ok(AttrOut.encode(out, OutHeader.size, fs.setattr(h.nodeid, SetattrIn.decode(req, body))));
      case Op.READLINK: {
        const target = fs.readlink(h.nodeid);
        return ok(OutHeader.size + target.copy(out, OutHeader.size));
      }
      case Op.SYMLINK: {
        const name = readName(req, body, n);
        const target = readName(req, name.next, n);
        return entry(fs.symlink(ctx, h.nodeid, name.bytes, target.bytes));
      }
      case Op.MKNOD: {
        const m = MknodIn.decode(req, body);
        return entry(fs.mknod(ctx, h.nodeid, readName(req, body + MknodIn.size, n).bytes, m.mode, m.rdev));
      }
      case Op.MKDIR: {
        const m = MkdirIn.decode(req, body);
        return entry(fs.mkdir(ctx, h.nodeid, readName(req, body + MkdirIn.size, n).bytes, m.mode));
      }
      case Op.UNLINK:
        fs.unlink(h.nodeid, readName(req, body, n).bytes);
        return ok();
      case Op.RMDIR:
        fs.rmdir(h.nodeid, readName(req, body, n).bytes);
        return ok();
      case Op.RENAME:
      case Op.RENAME2: {
        const two = h.opcode === Op.RENAME2;
        const r = two ? Rename2In.decode(req, body) : { ...RenameIn.decode(req, body), flags: 0 };
        const from = readName(req, body + (two ? Rename2In.size : RenameIn.size), n);
        const to = readName(req, from.next, n);
        fs.rename(h.nodeid, from.bytes, r.newdir, to.bytes, r.flags);
        return ok();
      }
      case Op.LINK:
        return fs.link();
      case Op.OPEN: {
        const fh = fs.open(h.nodeid, OpenIn.decode(req, body).flags);
        return ok(OpenOut.encode(out, OutHeader.size, { fh, openFlags: 0 }));
      }
      case Op.CREATE: {
        const c = CreateIn.decode(req, body);
        const r = fs.create(ctx, h.nodeid, readName(req, body + CreateIn.size, n).bytes, c.flags, c.mode);
        const off = EntryOut.encode(out, OutHeader.size, r.entry);
        return ok(OpenOut.encode(out, off, { fh: r.fh, openFlags: 0 }));
      }
      case Op.READ: {
        const r = ReadIn.decode(req, body);
        return ok(OutHeader.size + fs.read(r.fh, r.offset, r.size, out, OutHeader.size));
      }
      case Op.WRITE: {
        const w = WriteIn.decode(req, body);
        const start = body + WriteIn.size;
        const data = req.subarray(start, Math.min(start + w.size, n));
        const size = fs.write(w.fh, w.offset, data, w.writeFlags, w.flags);
        return ok(WriteOut.encode(out, OutHeader.size, { size }));
      }
      case Op.STATFS:
        return ok(StatfsOut.encode(out, OutHeader.size, fs.statfs()));
      case Op.FLUSH:
        fs.flush(FlushIn.decode(req, body).fh);
        return ok();
      case Op.RELEASE:
        fs.release(ReleaseIn.decode(req, body).fh);
        return ok();
      case Op.FSYNC: {
        const f = FsyncIn.decode(req, body);
        // deferred: the sink's side replies once the peer has it (sink-bridge.ts); no reply from here
        if (fs.fsync(f.fh, (f.fsyncFlags & FUSE_FSYNC_FDATASYNC) !== 0, h.unique)) return 0;
        return ok();
      }
      case Op.OPENDIR:
        return ok(OpenOut.encode(out, OutHeader.size, { fh: fs.opendir(h.nodeid), openFlags: 0 }));
      case Op.READDIR:
      case Op.READDIRPLUS: {
        const r = ReadIn.decode(req, body);
        return ok(OutHeader.size + fs.readdir(r.fh, r.offset, r.size, h.opcode === Op.READDIRPLUS, out, OutHeader.size));
      }
      case Op.RELEASEDIR:
        fs.releasedir(ReleaseIn.decode(req, body).fh);
        return ok();
      case Op.FSYNCDIR: {
        const f = FsyncIn.decode(req, body);
        fs.fsyncdir(f.fh, (f.fsyncFlags & FUSE_FSYNC_FDATASYNC) !== 0);
        return ok();
      }
      case Op.ACCESS:
        fs.access(ctx, h.nodeid, AccessIn.decode(req, body).mask);
        return ok();
      case Op.FALLOCATE: {
        const f = FallocateIn.decode(req, body);
        fs.fallocate(f.fh, f.offset, f.length, f.mode);
        return ok();
      }
      case Op.LSEEK: {
        const l = LseekIn.decode(req, body);
        return ok(LseekOut.encode(out, OutHeader.size, { offset: fs.lseek(l.fh, l.offset, l.whence) }));
      }
      case Op.SYNCFS:
        // deferred: the sink's side syncs the backing filesystem and replies (sink-bridge.ts); no reply from here
        if (!fs.syncfs) return encodeError(out, h.unique, E.ENOSYS);
        if (fs.syncfs(h.unique)) return 0;
        return ok();
      case Op.DESTROY:
        this.destroyed = true;
        return ok();
      default:
        return encodeError(out, h.unique, E.ENOSYS);
    }
  }

  private count(s: Float64Array, opcode: number, len: number, out: Buffer): void {
    if (len === 0) return;
    const error = out.readInt32LE(4);
    if (error !== 0) {
      s[Stat.errors]!++;
      return;
    }
    if (opcode === Op.READ) {
      s[Stat.reads]!++;
      s[Stat.bytesRead]! += len - OutHeader.size;
    } else if (opcode === Op.WRITE) {
      s[Stat.writes]!++;
      s[Stat.bytesWritten]! += out.readUInt32LE(OutHeader.size);
    } else if (opcode === Op.FSYNC) s[Stat.fsyncs]!++;
    s[Stat.inodes] = this.fs.table.size;
    s[Stat.openFiles] = this.fs.openFiles;
    s[Stat.openDirs] = this.fs.openDirs;
  }
}
