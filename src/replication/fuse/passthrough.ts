import fs, { type BigIntStats, constants as C } from 'node:fs';
import { isUtf8 } from 'node:buffer';
import { E, errnoOf, FsError } from './errno.js';
import type { HostCall } from './host-calls.js';
import { type Inode, InodeTable } from './inodes.js';
import {
  type Attr, type AttrOut, type EntryOut, type Kstatfs, type SetattrIn,
  direntplusSize, dtype, encodeDirent, encodeDirentplus,
  FATTR, FUSE_WRITE_CACHE, InitFlag, RENAME_NOREPLACE, SEEK_DATA, SEEK_HOLE,
} from './protocol.js';
import type { Change, ChangeSink, Timespec } from './sink.js';

/**
 * A passthrough filesystem over a backing directory, for the FUSE worker: synchronous fs calls on the backing store
 * (never on the mount), one request at a time.
 *
 * What each operation does, and what is refused:
 * - Paths: every backing path is `<root>/<relative path>`, with root = `/proc/self/fd/<dirfd>` (a directory fd
 *   opened before mounting), so the backing store stays reachable even when the mount covers it. When that string
 *   would pass PATH_MAX, the directories along it are opened (O_PATH) a stretch at a time and the path goes on from
 *   `/proc/self/fd/<fd>` of the last one (closed again after the request: `endRequest`), so every path the mount
 *   accepts reaches the backing store. A relative path longer than `maxPathBytes` (the mount point's own length
 *   taken from PATH_MAX - 1: every file keeps an absolute path within PATH_MAX) is refused with ENAMETOOLONG, as
 *   the stream and reintegration name files by that path.
 * - Ownership: the server runs as root; new files, directories, symlinks and nodes are chown'ed to the caller's
 *   uid/gid from the request header (the directory's group when it is setgid, as the backing fs would do) and then
 *   chmod'ed to the exact mode the kernel sent (the kernel already applied the caller's umask). Permission checks
 *   are the kernel's (mount option default_permissions) against the attributes we report, which are the backing
 *   store's.
 * - Open files are tracked by inode, not path: a renamed, unlinked or overwritten open file keeps working through
 *   its backing fd (see inodes.ts). Writes to a file no path leads to are not reported to the sink.
 * - write honours O_APPEND from the *current* file flags (fcntl may change them): the data goes at the backing
 *   file's size, and the Change carries that real offset. O_SYNC/O_DSYNC writes are durable locally (the backing fd
 *   has the same flag); the kernel then sends FSYNC (fdatasync for O_DSYNC) before the write returns to the
 *   application (generic_write_sync in fuse_cache_write_iter), and that FSYNC reaches onSync, so each such write is
 *   followed by exactly one onSync (asserted by the lab test).
 * - O_DIRECT: the kernel sends direct writes straight to the server (no page cache of the mount) and no FSYNC after
 *   them. The backing fd is opened without O_DIRECT (Node's buffers have no guaranteed alignment, and the server
 *   never sees the application's buffer to apply the backing fs's alignment rules), so such a write is made durable
 *   as an O_DSYNC one: fdatasync of the backing file and the sink's sync before the reply.
 * - syncfs (SYNCFS, sent by kernels that forward syncfs(2) to the server: fuseblk mounts, see mount.ts): the
 *   backing filesystem's syncfs and the sink's onSyncfs (every change reported before it durable where the sink
 *   makes changes durable), before the reply; with a sink that can defer (deferSyncfs) the main thread does both and
 *   replies, while this thread serves other requests.
 * - Writeback cache (`negotiated` with FUSE_WRITEBACK_CACHE): the kernel owns size, mtime and O_APPEND, so every
 *   WRITE goes at the offset it carries; write-only opens get an O_RDWR backing fd, because the kernel READs a
 *   partially written page through whatever handle wrote it; the kernel's mtime/ctime arrive as a SETATTR (ctime
 *   cannot be set and is ignored). Attributes we reply for regular files keep the backing store's size and times;
 *   the kernel ignores those while it caches the file. The kernel's background writeback sends that SETATTR right
 *   after queueing the inode's WRITEs, and it can overtake them (a foreground request passes queued background
 *   ones), so a cached WRITE that lands after a time was set puts that time back on the backing file (and reports
 *   the utimens to the sink): the backing store keeps the kernel's mtime, not the moment a late WRITE landed.
 * - Write-behind (`writeBehind`): after every `bytes` written through one handle the backing fd is handed to a
 *   helper thread that fdatasyncs it, so its disk writeback overlaps with the rest of the write.
 * - rename: flags 0 and RENAME_NOREPLACE (checked then renamed; atomic for everything that goes through this
 *   mount because one worker serializes all requests). RENAME_EXCHANGE and RENAME_WHITEOUT are refused with EINVAL:
 *   Node has no renameat2, and a three-step exchange would not be atomic.
 * - link (hard links): refused with EPERM. Replicating hard links would need inode identity across nodes (as
 *   SafeKit, tandem replicates names, not inodes); a second name for the same data could silently diverge.
 * - mknod: regular files (Node), FIFOs and device nodes (coreutils mkfifo / mknod through HostCalls), sockets (what
 *   bind(2) of a unix socket asks for: HostCalls binds a listener at a temporary name in the same directory and
 *   links the node to the name). FIFOs, sockets and device nodes are local-only: nothing about them reaches the
 *   sink (their creation, unlink, attribute changes, renames); a rename of one over a reported file is reported as
 *   the unlink of that file. A socket node works on this node only anyway (the kernel connects by inode), a FIFO
 *   holds no data, and a device number names hardware of this node.
 * - fallocate: util-linux fallocate through HostCalls on /proc/<pid>/fd/<fd> (works for unlinked files too).
 * - lseek SEEK_DATA/SEEK_HOLE: Node cannot ask the backing fs about holes, so the whole file is reported as data
 *   (SEEK_DATA → offset, SEEK_HOLE → size, ENXIO past the end): the generic answer POSIX allows and the kernel gives
 *   for filesystems without hole support. Sparse-aware tools copy correctly but densely.
 * - utimens: applied with Node's (l|f)utimes, which take a double: precision is about a microsecond, not a
 *   nanosecond. A side left unchanged (UTIME_OMIT) is rewritten with its current value at that precision. The
 *   Change carries the exact requested times.
 * - Extended attributes: not supported (Node has no xattr API and no helper tool is guaranteed); the dispatcher
 *   answers ENOSYS, which the kernel turns into EOPNOTSUPP for the application and remembers.
 * - Names must be valid UTF-8 (Change paths are strings): others are refused with EILSEQ and hidden from listings.
 */
export interface Ctx {
  uid: number;
  gid: number;
  pid: number;
}

export interface PassthroughOptions {
  /** how this thread reaches the backing root, e.g. `/proc/self/fd/<dirfd>` */
  root: string;
  /** how another process reaches the backing root, e.g. `/proc/<pid>/fd/<dirfd>` (for HostCalls) */
  hostRoot: string;
  /** how another process reaches one of our fds: `(fd) => /proc/<pid>/fd/<fd>` */
  hostFd: (fd: number) => string;
  sink: ChangeSink | null;
  /** blocking calls to helper tools (host-calls.ts `HostCalls`); null: mknod of special files, fallocate and syncfs fail */
  host: { call(c: HostCall): void } | null;
  /** the longest relative path accepted (bytes); default PATH_MAX - 1 */
  maxPathBytes?: number;
  /** kernel cache timeouts, in seconds */
  entryTimeout: number;
  attrTimeout: number;
  log: (msg: string) => void;
  /** clock for UTIME_NOW (ns since the epoch) */
  nowNs?: () => bigint;
  /** write-behind (write-behind.ts); absent: none */
  writeBehind?: WriteBehindHook | null;
  /**
   * `<notreplicated>` paths of the directory: a rename (or link) between a replicated and a not-replicated path is
   * refused with EXDEV, as across filesystems (`mv` then copies and deletes), since the SECOND could not apply it
   */
  excluded?: ((rel: string, isDir: boolean) => boolean) | null;
  /**
   * The activity log (activity-log.ts): told before a file's data changes in place (write, truncate, fallocate);
   * returns once that is durable, throws if it cannot be (the change is then not made: EIO). Absent: none.
   */
  activity?: { beforeChange(rel: string): void } | null;
}

/**
 * How the passthrough drives write-behind: `request(fd)` each time `bytes` more have been written through one handle
 * since it was last synced (must not block); `cancel(fd)` before that backing fd is closed (may wait for an
 * fdatasync of it under way); `failed(fd)` after each successful fsync of it: true when a write-behind fdatasync of
 * it failed since, and the fsync then fails with EIO instead of reaching onSync.
 */
export interface WriteBehindHook {
  bytes: number;
  request(fd: number): void;
  cancel(fd: number): void;
  failed(fd: number): boolean;
}

interface FileHandle {
  fd: number;
  node: Inode;
  /** bytes written since the last fsync or write-behind request */
  unsynced: number;
}

interface DirEntry {
  name: Buffer;
  /** '.' and '..' get nodeid 0 in READDIRPLUS and no lookup count */
  dot: boolean;
}
interface DirHandle {
  node: Inode;
  entries: DirEntry[] | null;
}

const NS = 1_000_000_000n;
const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFIFO = 0o010000;
const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;
const S_IFSOCK = 0o140000;
const S_ISGID = 0o2000;
const O_ACCMODE = 3;
/** O_PATH (asm-generic): a descriptor that only names a directory, for the long-path walk */
const O_PATH = 0o10000000;
const O_DIRECT = C.O_DIRECT ?? 0o40000;
/** the longest path string the kernel takes: PATH_MAX (4096) includes the NUL */
const PATH_BYTES = 4095;
const NAME_MAX = 255;
/** a string of at most this many UTF-16 units is at most PATH_BYTES bytes of UTF-8 */
const SURELY_SHORT = Math.floor(PATH_BYTES / 3);

/** FIFOs, sockets and device nodes: created and used locally, never reported to the sink (see the contract). */
export function isLocalOnly(type: number): boolean {
  return type === S_IFIFO || type === S_IFSOCK || type === S_IFCHR || type === S_IFBLK;
}

/** Open flags passed to the backing open. O_APPEND is handled by write(); O_DIRECT would need aligned buffers. */
const PASS_FLAGS = C.O_RDONLY | C.O_WRONLY | C.O_RDWR | C.O_TRUNC | C.O_DSYNC | C.O_SYNC | C.O_NOATIME | C.O_NOFOLLOW;

function timespec(ns: bigint): { sec: number; nsec: number } {
  let sec = ns / NS;
  let nsec = ns % NS;
  if (nsec < 0n) {
    sec -= 1n;
    nsec += NS;
  }
  return { sec: Number(sec), nsec: Number(nsec) };
}

export function attrOf(st: BigIntStats): Attr {
  const a = timespec(st.atimeNs);
  const m = timespec(st.mtimeNs);
  const c = timespec(st.ctimeNs);
  return {
    ino: Number(st.ino), size: Number(st.size), blocks: Number(st.blocks),
    atime: a.sec, mtime: m.sec, ctime: c.sec, atimensec: a.nsec, mtimensec: m.nsec, ctimensec: c.nsec,
    mode: Number(st.mode), nlink: Number(st.nlink), uid: Number(st.uid), gid: Number(st.gid),
    rdev: Number(st.rdev & 0xffff_ffffn), blksize: Number(st.blksize), flags: 0,
  };
}

export class Passthrough {
  readonly table: InodeTable;
  private readonly files = new Map<number, FileHandle>();
  private readonly dirs = new Map<number, DirHandle>();
  private nextFh = 1;
  private warnedNames = false;
  private readonly nowNs: () => bigint;
  /** FUSE_WRITEBACK_CACHE was agreed at INIT (see `negotiated`) */
  private writeback = false;
  /** under writeback caching, the mtime the kernel last set per file, put back after a late cached WRITE (`write`) */
  private readonly kernelMtime = new WeakMap<Inode, Timespec>();
  private warnedActivity = false;
  /** directory fds opened for long paths during the current request (closed by endRequest) */
  private readonly tmpFds: number[] = [];
  private readonly maxPathBytes: number;

  constructor(private readonly o: PassthroughOptions) {
    const st = fs.statSync(o.root, { bigint: true });
    if (!st.isDirectory()) throw new FsError(E.ENOTDIR, `${o.root} is not a directory`);
    this.table = new InodeTable(Number(st.ino));
    this.nowNs = o.nowNs ?? (() => BigInt(Date.now()) * 1_000_000n);
    this.maxPathBytes = o.maxPathBytes ?? PATH_BYTES;
  }

  /** The request is answered: close the directory fds its long paths needed. Cheap when there were none. */
  endRequest(): void {
    if (this.tmpFds.length === 0) return;
    for (const fd of this.tmpFds.splice(0)) {
      try {
        fs.closeSync(fd);
      } catch {
        // already closed
      }
    }
  }

  /** INIT was answered with `flags`: adapt to the cache mode the kernel agreed to. */
  negotiated(flags: number): void {
    this.writeback = (flags & InitFlag.WRITEBACK_CACHE) !== 0;
  }

  get writebackCache(): boolean {
    return this.writeback;
  }

  get openFiles(): number {
    return this.files.size;
  }
  get openDirs(): number {
    return this.dirs.size;
  }

  // ── namespace ────────────────────────────────────────────────────────────────────────────────────────────────────

  lookup(parentId: number, nameBytes: Buffer): EntryOut {
    const parent = this.node(parentId);
    const name = this.name(nameBytes);
    const st = fs.lstatSync(this.bp(this.childRel(parent, name)), { bigint: true, throwIfNoEntry: false });
    if (!st) throw new FsError(E.ENOENT);
    return this.entry(parent, name, st);
  }

  forget(nodeid: number, n: number): void {
    this.table.forget(nodeid, n);
  }

  getattr(nodeid: number, fh: number | null): AttrOut {
    const node = this.node(nodeid);
    const h = fh !== null ? this.files.get(fh) : undefined;
    return this.attrOut(this.statNode(node, h?.fd));
  }

  setattr(nodeid: number, a: SetattrIn): AttrOut {
    const node = this.node(nodeid);
    const rel = this.table.pathOf(node);
    let fd = a.valid & FATTR.FH ? this.files.get(a.fh)?.fd : undefined;
    if (rel === null && fd === undefined) fd = this.anyFd(node);
    // An unreachable file is changed through its fd; a reachable one by path (also for a handle opened O_RDONLY).
    const viaFd = rel === null;
    const bp = rel === null ? null : this.bp(rel);
    const erel = isLocalOnly(node.type) ? null : rel;
    if (a.valid & (FATTR.UID | FATTR.GID)) {
      const uid = a.valid & FATTR.UID ? a.uid : -1;
      const gid = a.valid & FATTR.GID ? a.gid : -1;
      viaFd ? fs.fchownSync(fd!, uid, gid) : fs.lchownSync(bp!, uid, gid);
      this.emit(erel, { op: 'chown', path: rel!, uid, gid });
    }
    if (a.valid & FATTR.MODE) {
      const mode = a.mode & 0o7777;
      if (viaFd) fs.fchmodSync(fd!, mode);
      else {
        if (fs.lstatSync(bp!).isSymbolicLink()) throw new FsError(E.EOPNOTSUPP);
        fs.chmodSync(bp!, mode);
      }
      this.emit(erel, { op: 'chmod', path: rel!, mode });
    }
    if (a.valid & FATTR.SIZE) {
      beyondMaxFileSize(a.size);
      if (rel !== null) this.beforeChange(rel);
      if (fd !== undefined) fs.ftruncateSync(fd, a.size);
      else fs.truncateSync(bp!, a.size);
      this.emit(erel, { op: 'truncate', path: rel!, size: a.size });
    }
    if (a.valid & (FATTR.ATIME | FATTR.MTIME)) {
      const now = toMicros(timespec(this.nowNs()));
      const atime: Timespec | null = a.valid & FATTR.ATIME_NOW ? now : a.valid & FATTR.ATIME ? { sec: a.atime, nsec: a.atimensec } : null;
      const mtime: Timespec | null = a.valid & FATTR.MTIME_NOW ? now : a.valid & FATTR.MTIME ? { sec: a.mtime, nsec: a.mtimensec } : null;
      const cur = atime && mtime ? null : this.statNode(node, fd);
      const at = atime ?? timespec(cur!.atimeNs);
      const mt = mtime ?? timespec(cur!.mtimeNs);
      if (viaFd) fs.futimesSync(fd!, utimesArg(at), utimesArg(mt));
      else fs.lutimesSync(bp!, utimesArg(at), utimesArg(mt));
      this.emit(erel, { op: 'utimens', path: rel!, atime, mtime });
      if (this.writeback && mtime && node.type === S_IFREG) this.kernelMtime.set(node, mt);
    }
    return this.attrOut(this.statNode(node, fd));
  }

  readlink(nodeid: number): Buffer {
    return fs.readlinkSync(this.bp(this.rel(this.node(nodeid))), { encoding: 'buffer' });
  }

  symlink(ctx: Ctx, parentId: number, nameBytes: Buffer, targetBytes: Buffer): EntryOut {
    const parent = this.node(parentId);
    const name = this.name(nameBytes);
    const target = this.name(targetBytes, true);
    const rel = this.childRel(parent, name);
    const bp = this.bp(rel);
    fs.symlinkSync(targetBytes, bp);
    const gid = this.ownerGid(parent, ctx);
    fs.lchownSync(bp, ctx.uid, gid);
    const st = fs.lstatSync(bp, { bigint: true });
    this.emit(rel, { op: 'symlink', target, path: rel, uid: Number(st.uid), gid: Number(st.gid) });
    return this.entry(parent, name, st);
  }

  mknod(ctx: Ctx, parentId: number, nameBytes: Buffer, mode: number, rdev: number): EntryOut {
    const parent = this.node(parentId);
    const name = this.name(nameBytes);
    const rel = this.childRel(parent, name);
    const bp = this.bp(rel);
    const type = mode & S_IFMT;
    const perm = mode & 0o7777;
    if (type === S_IFREG || type === 0) {
      fs.closeSync(fs.openSync(bp, C.O_CREAT | C.O_EXCL | C.O_WRONLY, perm));
    } else if (isLocalOnly(type)) {
      if (!this.o.host) throw new FsError(E.EOPNOTSUPP, 'no host helper for mknod');
      if (fs.lstatSync(bp, { throwIfNoEntry: false })) throw new FsError(E.EEXIST);
      const h = this.hostPath(rel);
      if (type === S_IFIFO) this.o.host.call({ op: 'mkfifo', path: `${h.dir}/${h.name}`, mode: perm });
      else if (type === S_IFSOCK) this.o.host.call({ op: 'mksock', dir: h.dir, name: h.name });
      else {
        const major = (rdev >>> 8) & 0xfff;
        const minor = (rdev & 0xff) | ((rdev >>> 12) & 0xfff00);
        this.o.host.call({ op: 'mknod', path: `${h.dir}/${h.name}`, mode: perm, kind: type === S_IFCHR ? 'c' : 'b', major, minor });
      }
    } else {
      throw new FsError(E.EINVAL, `mknod of type ${type.toString(8)}`);
    }
    fs.lchownSync(bp, ctx.uid, this.ownerGid(parent, ctx));
    fs.chmodSync(bp, perm);
    const st = fs.lstatSync(bp, { bigint: true });
    if (!isLocalOnly(type)) {
      this.emit(rel, { op: 'mknod', path: rel, mode: Number(st.mode), rdev: Number(st.rdev & 0xffff_ffffn), uid: Number(st.uid), gid: Number(st.gid) });
    }
    return this.entry(parent, name, st);
  }

  mkdir(ctx: Ctx, parentId: number, nameBytes: Buffer, mode: number): EntryOut {
    const parent = this.node(parentId);
    const name = this.name(nameBytes);
    const rel = this.childRel(parent, name);
    const bp = this.bp(rel);
    fs.mkdirSync(bp, mode & 0o7777);
    const parentSetgid = this.parentSetgid(parent);
    fs.lchownSync(bp, ctx.uid, parentSetgid ? -1 : ctx.gid);
    fs.chmodSync(bp, (mode & 0o7777) | (parentSetgid ? S_ISGID : 0));
    const st = fs.lstatSync(bp, { bigint: true });
    this.emit(rel, { op: 'mkdir', path: rel, mode: Number(st.mode), uid: Number(st.uid), gid: Number(st.gid) });
    return this.entry(parent, name, st);
  }

  unlink(parentId: number, nameBytes: Buffer): void {
    const parent = this.node(parentId);
    const name = this.name(nameBytes);
    const rel = this.childRel(parent, name);
    const bp = this.bp(rel);
    const local = isLocalOnly(this.typeAt(parent, name, bp));
    fs.unlinkSync(bp);
    this.table.removeName(parent, name);
    if (!local) this.emit(rel, { op: 'unlink', path: rel });
  }

  rmdir(parentId: number, nameBytes: Buffer): void {
    const parent = this.node(parentId);
    const name = this.name(nameBytes);
    const rel = this.childRel(parent, name);
    fs.rmdirSync(this.bp(rel));
    this.table.removeName(parent, name);
    this.emit(rel, { op: 'rmdir', path: rel });
  }

  rename(parentId: number, nameBytes: Buffer, newParentId: number, newNameBytes: Buffer, flags: number): void {
    if (flags & ~RENAME_NOREPLACE) throw new FsError(E.EINVAL, `rename flags ${flags} not supported`);
    const parent = this.node(parentId);
    const newParent = this.node(newParentId);
    const name = this.name(nameBytes);
    const newName = this.name(newNameBytes);
    const from = this.childRel(parent, name);
    const to = this.childRel(newParent, newName);
    const bFrom = this.bp(from);
    const type = this.typeAt(parent, name, bFrom);
    if (this.o.excluded) {
      const isDir = type === S_IFDIR;
      if (this.o.excluded(from, isDir) !== this.o.excluded(to, isDir)) {
        throw new FsError(E.EXDEV, `rename between a replicated and a not-replicated path (${from} → ${to})`);
      }
    }
    const bTo = this.bp(to);
    // a local-only node is not on the replica: moving it over a file removes that file there
    const replaced = flags & RENAME_NOREPLACE || isLocalOnly(type) ? fs.lstatSync(bTo, { throwIfNoEntry: false }) : undefined;
    if (flags & RENAME_NOREPLACE && replaced) throw new FsError(E.EEXIST);
    fs.renameSync(bFrom, bTo);
    const node = this.table.child(parent, name);
    if (node) this.table.move(node, newParent, newName);
    else this.table.removeName(newParent, newName);
    if (!isLocalOnly(type)) this.emit(from, { op: 'rename', from, to, flags });
    else if (replaced && !isLocalOnly(Number(replaced.mode) & S_IFMT)) this.emit(to, { op: 'unlink', path: to });
  }

  link(): never {
    throw new FsError(E.EPERM, 'hard links are not supported on replicated directories');
  }

  // ── files ────────────────────────────────────────────────────────────────────────────────────────────────────────

  open(nodeid: number, flags: number): number {
    const node = this.node(nodeid);
    const rel = this.table.pathOf(node);
    let fd: number;
    if (rel !== null && flags & C.O_TRUNC) this.beforeChange(rel);
    if (rel !== null) fd = fs.openSync(this.bp(rel), this.backingFlags(flags));
    else {
      const any = this.anyFd(node);
      fd = fs.openSync(`/proc/self/fd/${any}`, this.backingFlags(flags));
    }
    try {
      if (flags & C.O_TRUNC) this.emit(rel, { op: 'truncate', path: rel!, size: 0 });
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
    return this.addFile(node, fd);
  }

  create(ctx: Ctx, parentId: number, nameBytes: Buffer, flags: number, mode: number): { entry: EntryOut; fh: number } {
    const parent = this.node(parentId);
    const name = this.name(nameBytes);
    const rel = this.childRel(parent, name);
    const bp = this.bp(rel);
    const perm = mode & 0o7777;
    let created = true;
    let fd: number;
    try {
      fd = fs.openSync(bp, this.backingFlags(flags) | C.O_CREAT | C.O_EXCL, perm);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || flags & C.O_EXCL) throw err;
      fd = fs.openSync(bp, this.backingFlags(flags)); // it appeared since the kernel's lookup: a plain open
      created = false;
    }
    try {
      if (created) {
        fs.fchownSync(fd, ctx.uid, this.ownerGid(parent, ctx));
        fs.fchmodSync(fd, perm);
      }
      const st = fs.fstatSync(fd, { bigint: true });
      if (created) this.emit(rel, { op: 'create', path: rel, mode: Number(st.mode), rdev: 0, uid: Number(st.uid), gid: Number(st.gid) });
      else if (flags & C.O_TRUNC) this.emit(rel, { op: 'truncate', path: rel, size: 0 });
      const entry = this.entry(parent, name, st);
      return { entry, fh: this.addFile(this.table.get(entry.nodeid)!, fd) };
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
  }

  /** Reads into `out` at `outOff`; returns the byte count. */
  read(fh: number, offset: number, size: number, out: Buffer, outOff: number): number {
    const h = this.file(fh);
    // past any file's end (the kernel's own answer beyond s_maxbytes): nothing; node:fs refuses such positions
    if (offset > MAX_FILE_OFFSET) return 0;
    return fs.readSync(h.fd, out, outOff, Math.min(size, out.length - outOff), offset);
  }

  /** `flags` is the file's current f_flags (fuse_write_in.flags). Returns the byte count written. */
  write(fh: number, offset: number, data: Buffer, writeFlags: number, flags: number): number {
    const h = this.file(fh);
    const pos = !this.writeback && flags & C.O_APPEND && !(writeFlags & FUSE_WRITE_CACHE) ? fs.fstatSync(h.fd).size : offset;
    beyondMaxFileSize(pos + data.length);
    if (this.o.activity) {
      const rel = this.table.pathOf(h.node);
      if (rel !== null) this.beforeChange(rel);
    }
    let done = 0;
    while (done < data.length) {
      const n = fs.writeSync(h.fd, data, done, data.length - done, pos + done);
      if (n <= 0) break;
      done += n;
    }
    if (this.o.sink) {
      const rel = this.table.pathOf(h.node);
      this.emit(rel, { op: 'write', path: rel!, offset: pos, data: data.subarray(0, done) });
    }
    const kernelMtime = writeFlags & FUSE_WRITE_CACHE && done > 0 ? this.kernelMtime.get(h.node) : undefined;
    if (kernelMtime) this.keepKernelMtime(h, kernelMtime);
    const wb = this.o.writeBehind;
    if (wb && (h.unsynced += done) >= wb.bytes) {
      h.unsynced = 0;
      wb.request(h.fd);
    }
    // a direct write (O_DIRECT without O_SYNC/O_DSYNC, which get a FSYNC from the kernel) is durable as an O_DSYNC one
    if (flags & O_DIRECT && !(flags & C.O_DSYNC) && !(writeFlags & FUSE_WRITE_CACHE)) this.syncHandle(h, this.table.pathOf(h.node), true);
    return done;
  }

  flush(fh: number): void {
    this.file(fh);
  }

  release(fh: number): void {
    const h = this.files.get(fh);
    if (!h) return;
    this.files.delete(fh);
    try {
      this.o.writeBehind?.cancel(h.fd);
      fs.closeSync(h.fd);
    } finally {
      this.table.removeFd(h.node, h.fd);
    }
  }

  /** Returns true when the sink took over the reply (deferSync): the caller must not reply. */
  fsync(fh: number, datasync: boolean, unique?: number): boolean {
    const h = this.file(fh);
    const rel = this.table.pathOf(h.node);
    const sink = this.o.sink;
    if (rel !== null && unique !== undefined && sink?.deferSync && sink.syncedLocally) {
      // the sink's side sends the sync to the peer while this thread fsyncs locally; it replies once both are done,
      // and this thread serves other requests meanwhile
      if (this.guardSink(() => sink.deferSync!(rel, datasync, unique), 'sync')) {
        let errno = 0;
        try {
          this.localSync(h, datasync);
        } catch (err) {
          errno = errnoOf(err) ?? E.EIO;
        }
        this.guardSink(() => sink.syncedLocally!(unique, errno), 'sync');
        return true;
      }
      this.localSync(h, datasync);
      this.sync(rel, datasync);
      return false;
    }
    this.syncHandle(h, rel, datasync);
    return false;
  }

  /** fsync/fdatasync of the backing file and the sink's sync of `rel` (null: unreachable, local only), both awaited. */
  private syncHandle(h: FileHandle, rel: string | null, datasync: boolean): void {
    const sink = this.o.sink;
    // the sink's sync (the peer's) runs while the local fsync does; both must succeed
    const token = rel !== null && sink?.startSync ? this.guardSink(() => sink.startSync!(rel, datasync), 'sync') : undefined;
    try {
      this.localSync(h, datasync);
    } finally {
      if (token !== undefined) this.guardSink(() => sink!.finishSync!(token), 'sync');
    }
    if (rel !== null && token === undefined) this.sync(rel, datasync);
  }

  /** fsync/fdatasync of the backing file; fails (EIO) when a write-behind fdatasync of it failed since the last one. */
  private localSync(h: FileHandle, datasync: boolean): void {
    if (datasync) fs.fdatasyncSync(h.fd);
    else fs.fsyncSync(h.fd);
    h.unsynced = 0;
    if (this.o.writeBehind?.failed(h.fd)) throw new FsError(E.EIO, 'an earlier write-behind fdatasync failed');
  }

  /**
   * SYNCFS: the backing filesystem's syncfs, then the sink's onSyncfs; returns true when the sink took the request
   * over (deferSyncfs: its side does both and replies), and the caller must not reply.
   */
  syncfs(unique?: number): boolean {
    const sink = this.o.sink;
    if (sink?.deferSyncfs && unique !== undefined && this.guardSink(() => sink.deferSyncfs!(unique), 'syncfs')) return true;
    if (!this.o.host) throw new FsError(E.EIO, 'no host helper to syncfs the backing filesystem');
    this.o.host.call({ op: 'syncfs', path: this.o.hostRoot });
    if (sink?.onSyncfs) this.guardSink(() => sink.onSyncfs!(), 'syncfs');
    return false;
  }

  /** Runs a sink call; a sink failure is logged and becomes EIO for the operation. */
  private guardSink<T>(fn: () => T, what: string): T {
    try {
      return fn();
    } catch (err) {
      this.o.log(`change sink refused ${what}: ${err instanceof Error ? err.message : String(err)}`);
      throw new FsError(E.EIO, 'change sink failed');
    }
  }

  fallocate(fh: number, offset: number, length: number, mode: number): void {
    const h = this.file(fh);
    beyondMaxFileSize(offset + length);
    if (!this.o.host) throw new FsError(E.EOPNOTSUPP, 'no host helper for fallocate');
    const rel = this.table.pathOf(h.node);
    if (rel !== null) this.beforeChange(rel);
    this.o.host.call({ op: 'fallocate', path: this.o.hostFd(h.fd), mode, offset, length });
    this.emit(rel, { op: 'fallocate', path: rel!, mode, offset, length });
  }

  lseek(fh: number, offset: number, whence: number): number {
    const h = this.file(fh);
    if (whence !== SEEK_DATA && whence !== SEEK_HOLE) throw new FsError(E.EINVAL);
    const size = fs.fstatSync(h.fd).size;
    if (offset < 0 || offset >= size) throw new FsError(E.ENXIO);
    return whence === SEEK_DATA ? offset : size;
  }

  // ── directories ──────────────────────────────────────────────────────────────────────────────────────────────────

  opendir(nodeid: number): number {
    const node = this.node(nodeid);
    const rel = this.table.pathOf(node);
    if (rel !== null && !fs.statSync(this.bp(rel)).isDirectory()) throw new FsError(E.ENOTDIR);
    const fh = this.nextFh++;
    this.dirs.set(fh, { node, entries: null });
    return fh;
  }

  /**
   * Fills `out[outOff, outOff+size)` with entries from index `offset` on (0 = '.', 1 = '..', then the names as read
   * at offset 0, so rewinddir sees a fresh listing); each entry's `off` is the index of the next. Returns the byte
   * count. READDIRPLUS entries count a lookup, except '.' and '..' (nodeid 0, which the kernel skips).
   */
  readdir(fh: number, offset: number, size: number, plus: boolean, out: Buffer, outOff: number): number {
    const h = this.dirs.get(fh);
    if (!h) throw new FsError(E.EBADF);
    if (offset === 0 || !h.entries) h.entries = this.list(h.node);
    const entries = h.entries;
    const end = Math.min(outOff + size, out.length);
    const rel = this.table.pathOf(h.node);
    let p = outOff;
    for (let i = offset; i < entries.length; i++) {
      const e = entries[i]!;
      const eRel = e.dot ? (i === 0 ? rel : this.dotdot(h.node)) : rel === null ? null : rel === '' ? e.name.toString() : `${rel}/${e.name.toString()}`;
      const st = eRel === null ? undefined : fs.lstatSync(this.bp(eRel), { bigint: true, throwIfNoEntry: false });
      if (!st) continue; // vanished since the listing
      const d = { ino: Number(st.ino), off: i + 1, type: dtype(Number(st.mode)), name: e.name };
      let r: number;
      if (plus) {
        if (p + direntplusSize(e.name.length) > end) break;
        const entry: EntryOut = e.dot
          ? { nodeid: 0, generation: 0, entryValid: 0, attrValid: 0, entryValidNsec: 0, attrValidNsec: 0, attr: attrOf(st) }
          : this.entry(h.node, e.name.toString(), st);
        r = encodeDirentplus(out, p, end, entry, d);
      } else {
        r = encodeDirent(out, p, end, d);
      }
      if (r < 0) break;
      p = r;
    }
    return p - outOff;
  }

  releasedir(fh: number): void {
    this.dirs.delete(fh);
  }

  fsyncdir(fh: number, datasync: boolean): void {
    const h = this.dirs.get(fh);
    if (!h) throw new FsError(E.EBADF);
    const rel = this.table.pathOf(h.node);
    if (rel === null) return;
    const fd = fs.openSync(this.bp(rel), C.O_RDONLY | C.O_DIRECTORY);
    try {
      if (datasync) fs.fdatasyncSync(fd);
      else fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    this.sync(rel, datasync);
  }

  // ── misc ─────────────────────────────────────────────────────────────────────────────────────────────────────────

  statfs(): Kstatfs {
    const s = fs.statfsSync(this.o.root);
    return { blocks: s.blocks, bfree: s.bfree, bavail: s.bavail, files: s.files, ffree: s.ffree, bsize: s.bsize, namelen: 255, frsize: s.bsize };
  }

  /** access(2) as the backing fs would answer for the caller's uid and primary gid (supplementary groups unknown). */
  access(ctx: Ctx, nodeid: number, mask: number): void {
    const st = this.statNode(this.node(nodeid));
    const mode = Number(st.mode);
    if (mask === 0) return;
    if (ctx.uid === 0) {
      if (mask & 1 && (mode & S_IFMT) !== S_IFDIR && !(mode & 0o111)) throw new FsError(E.EACCES);
      return;
    }
    const shift = Number(st.uid) === ctx.uid ? 6 : Number(st.gid) === ctx.gid ? 3 : 0;
    if ((((mode >> shift) & 7) & mask) !== mask) throw new FsError(E.EACCES);
  }

  // ── helpers ──────────────────────────────────────────────────────────────────────────────────────────────────────

  private bp(rel: string): string {
    // `<root>/.`: lstat of the bare /proc/self/fd/N would describe the magic link, not the directory
    if (rel === '') return `${this.o.root}/.`;
    const p = `${this.o.root}/${rel}`;
    if (p.length <= SURELY_SHORT || Buffer.byteLength(p) <= PATH_BYTES) return p;
    return this.viaDirFds(rel);
  }

  /**
   * A path to `rel` within PATH_MAX when `<root>/<rel>` is longer: the directories along it are opened (O_PATH), a
   * stretch of them at a time, each from the /proc/self/fd/N of the one before; the result goes on from the last one.
   * The fds are closed by endRequest.
   */
  private viaDirFds(rel: string): string {
    const parts = rel.split('/');
    let base = this.o.root;
    let stretch: string[] = [];
    let len = Buffer.byteLength(base);
    for (let i = 0; i < parts.length - 1; i++) {
      const n = Buffer.byteLength(parts[i]!) + 1;
      if (stretch.length > 0 && len + n > PATH_BYTES - NAME_MAX - 1) {
        const fd = fs.openSync(`${base}/${stretch.join('/')}`, O_PATH | C.O_DIRECTORY);
        this.tmpFds.push(fd);
        base = `/proc/self/fd/${fd}`;
        stretch = [];
        len = Buffer.byteLength(base);
      }
      stretch.push(parts[i]!);
      len += n;
    }
    stretch.push(parts[parts.length - 1]!);
    return `${base}/${stretch.join('/')}`;
  }

  /** How a helper process reaches `rel`: its parent directory, opened for this request (short for any tool and for sun_path). */
  private hostPath(rel: string): { dir: string; name: string } {
    const i = rel.lastIndexOf('/');
    const fd = fs.openSync(this.bp(i < 0 ? '' : rel.slice(0, i)), O_PATH | C.O_DIRECTORY);
    this.tmpFds.push(fd);
    return { dir: this.o.hostFd(fd), name: rel.slice(i + 1) };
  }

  /** The file type (S_IFMT bits) of `name` in `parent`: from the inode the kernel looked up, else from the backing store. */
  private typeAt(parent: Inode, name: string, bp: string): number {
    const t = this.table.child(parent, name)?.type;
    if (t) return t;
    const st = fs.lstatSync(bp, { throwIfNoEntry: false });
    return st ? st.mode & S_IFMT : 0;
  }

  /** A cached WRITE landed after the kernel set the file's mtime (see "Writeback cache" above): put that mtime back. */
  private keepKernelMtime(h: FileHandle, mtime: Timespec): void {
    const at = timespec(fs.fstatSync(h.fd, { bigint: true }).atimeNs);
    fs.futimesSync(h.fd, utimesArg(at), utimesArg(mtime));
    const rel = this.table.pathOf(h.node);
    this.emit(rel, { op: 'utimens', path: rel!, atime: null, mtime });
  }

  /** The flags for the backing open(2). Under writeback caching the kernel may READ through a write-only handle. */
  private backingFlags(flags: number): number {
    const f = flags & PASS_FLAGS;
    return this.writeback && (f & O_ACCMODE) === C.O_WRONLY ? (f & ~O_ACCMODE) | C.O_RDWR : f;
  }

  private node(nodeid: number): Inode {
    const n = this.table.get(nodeid);
    if (!n) throw new FsError(E.ESTALE, `unknown nodeid ${nodeid}`);
    return n;
  }

  private rel(node: Inode): string {
    const r = this.table.pathOf(node);
    if (r === null) throw new FsError(E.ENOENT);
    return r;
  }

  private childRel(parent: Inode, name: string): string {
    const r = this.table.childPath(parent, name);
    if (r === null) throw new FsError(E.ENOENT);
    if (r.length * 3 > this.maxPathBytes && Buffer.byteLength(r) > this.maxPathBytes) {
      throw new FsError(E.ENAMETOOLONG, `a path of ${Buffer.byteLength(r)} bytes below the mount point (at most ${this.maxPathBytes})`);
    }
    return r;
  }

  private name(bytes: Buffer, allowSlash = false): string {
    if (!isUtf8(bytes)) throw new FsError(E.EILSEQ, 'name is not valid UTF-8');
    const s = bytes.toString('utf8');
    if (!allowSlash && (s.includes('/') || s === '' || s === '.' || s === '..')) throw new FsError(E.EINVAL);
    return s;
  }

  private file(fh: number): FileHandle {
    const h = this.files.get(fh);
    if (!h) throw new FsError(E.EBADF);
    return h;
  }

  private addFile(node: Inode, fd: number): number {
    const fh = this.nextFh++;
    this.files.set(fh, { fd, node, unsynced: 0 });
    this.table.addFd(node, fd);
    return fh;
  }

  private anyFd(node: Inode): number {
    for (const fd of node.fds) return fd;
    throw new FsError(E.ENOENT);
  }

  private statNode(node: Inode, fd?: number): BigIntStats {
    if (fd !== undefined) return fs.fstatSync(fd, { bigint: true });
    const rel = this.table.pathOf(node);
    if (rel === null) return fs.fstatSync(this.anyFd(node), { bigint: true });
    const st = fs.lstatSync(this.bp(rel), { bigint: true, throwIfNoEntry: false });
    if (!st) throw new FsError(E.ENOENT);
    return st;
  }

  private entry(parent: Inode, name: string, st: BigIntStats): EntryOut {
    const node = this.table.lookup(parent, name, Number(st.ino), Number(st.mode) & S_IFMT);
    const [ev, evn] = split(this.o.entryTimeout);
    const [av, avn] = split(this.o.attrTimeout);
    return { nodeid: node.nodeid, generation: node.generation, entryValid: ev, entryValidNsec: evn, attrValid: av, attrValidNsec: avn, attr: attrOf(st) };
  }

  private attrOut(st: BigIntStats): AttrOut {
    const [av, avn] = split(this.o.attrTimeout);
    return { attrValid: av, attrValidNsec: avn, attr: attrOf(st) };
  }

  private parentSetgid(parent: Inode): boolean {
    return (Number(this.statNode(parent).mode) & S_ISGID) !== 0;
  }

  /** the group a new file gets: the caller's, or (-1: keep) the directory's when it is setgid */
  private ownerGid(parent: Inode, ctx: Ctx): number {
    return this.parentSetgid(parent) ? -1 : ctx.gid;
  }

  private dotdot(node: Inode): string | null {
    return node.parent ? this.table.pathOf(node.parent) : this.table.pathOf(node);
  }

  private list(node: Inode): DirEntry[] {
    const dots: DirEntry[] = [{ name: Buffer.from('.'), dot: true }, { name: Buffer.from('..'), dot: true }];
    const rel = this.table.pathOf(node);
    if (rel === null) return dots;
    const names = fs.readdirSync(this.bp(rel), { encoding: 'buffer' });
    const out = dots;
    for (const n of names) {
      if (isUtf8(n)) out.push({ name: n, dot: false });
      else if (!this.warnedNames) {
        this.warnedNames = true;
        this.o.log(`hiding names that are not valid UTF-8 (first: ${rel === '' ? '' : `${rel}/`}${n.toString('hex')} in hex)`);
      }
    }
    return out;
  }

  /** The activity log has `rel` before its data changes; a log that cannot be written fails the change with EIO. */
  private beforeChange(rel: string): void {
    const log = this.o.activity;
    if (!log) return;
    try {
      log.beforeChange(rel);
    } catch (err) {
      if (!this.warnedActivity) this.o.log(`activity log: ${(err as Error).message}; changes to files fail with EIO until it can be written`);
      this.warnedActivity = true;
      throw new FsError(E.EIO, 'activity log not writable');
    }
    this.warnedActivity = false;
  }

  /** Reports a change made to a reachable path; a sink failure becomes EIO. */
  private emit(rel: string | null, change: Change): void {
    const sink = this.o.sink;
    if (!sink || rel === null) return;
    this.guardSink(() => sink.onChange(change), change.op);
  }

  private sync(rel: string, datasync: boolean): void {
    const sink = this.o.sink;
    if (!sink) return;
    this.guardSink(() => sink.onSync(rel, datasync), 'sync');
  }
}

/** UTIME_NOW at the precision the backing store gets (protocol.ts TIME_GRAN). */
function toMicros(t: Timespec): Timespec {
  return { sec: t.sec, nsec: t.nsec - (t.nsec % 1000) };
}

/**
 * The number to give Node's (l|f)utimes so the backing store gets exactly t's microsecond: libuv converts the double
 * back to a timespec and truncates to whole microseconds, and a double near 2e9 s carries about 0.24 µs of rounding
 * error, so aim at the middle of the microsecond.
 */
export function utimesArg(t: Timespec): number {
  return t.sec + (Math.floor(t.nsec / 1000) + 0.5) / 1e6;
}

function split(seconds: number): [number, number] {
  const s = Math.floor(seconds);
  return [s, Math.round((seconds - s) * 1e9)];
}

/**
 * The largest offset node:fs takes exactly (2^53 - 1, 8 PiB): far above what any Linux filesystem stores (ext4:
 * 16 TiB, xfs and btrfs: 8 EiB in theory, bounded by the same loff_t the kernel hands us as a u64). A size or end
 * of write beyond it is answered EFBIG, as the backing filesystem answers a size past its own limit.
 */
const MAX_FILE_OFFSET = Number.MAX_SAFE_INTEGER;

function beyondMaxFileSize(end: number): void {
  if (!(end <= MAX_FILE_OFFSET)) throw new FsError(E.EFBIG, 'beyond the largest file size');
}
