import { isUtf8 } from 'node:buffer';
import { constants as C } from 'node:fs';
import type { FuseFs } from '../../replication/fuse/dispatch.js';
import { E, FsError } from '../../replication/fuse/errno.js';
import type { Ctx } from '../../replication/fuse/passthrough.js';
import {
  type Attr, type AttrOut, type EntryOut, type Kstatfs, type SetattrIn,
  direntplusSize, dtype, encodeDirent, encodeDirentplus,
  FALLOC_FL_KEEP_SIZE, FATTR, InitFlag, RENAME_NOREPLACE, SEEK_DATA, SEEK_HOLE,
} from '../../replication/fuse/protocol.js';
import type { Inode, LossyModel } from './model.js';
import type { DurableStore } from './store.js';

/**
 * The lossy disk's answers to the kernel: the FuseFs the replication Dispatcher drives, over a LossyModel.
 *
 * Contract:
 * - Every answer comes from the model's current view; nothing here reaches the store except through the model (and
 *   statfs).
 * - FSYNC and FSYNCDIR are the only requests that make anything durable (model.fsync): the kernel sends FSYNC for
 *   fsync(2), fdatasync(2) (FUSE_FSYNC_FDATASYNC) and after each O_SYNC / O_DSYNC write. syncfs(2) and sync(2) do
 *   not reach a FUSE server (the kernel sends FUSE_SYNCFS to virtiofs only), so they make nothing durable here;
 *   `syncAll` (the lab's `syncDisks`) stands in for them.
 * - Refused: hard links (EPERM), FIFOs, sockets and device nodes (EOPNOTSUPP), RENAME_EXCHANGE and RENAME_WHITEOUT
 *   (EINVAL), fallocate modes other than 0 and KEEP_SIZE (EOPNOTSUPP), extended attributes (the Dispatcher's
 *   ENOSYS), names that are not UTF-8 (EILSEQ). Writeback caching is never asked for: every write reaches the model
 *   before write(2) returns.
 * - st_ino is the model's inode id, stable while this server runs (a new one after each boot).
 */
export interface LossyFsOptions {
  model: LossyModel;
  store: DurableStore;
  /** kernel cache timeouts, seconds */
  entryTimeout: number;
  attrTimeout: number;
  /** current time, microseconds (UTIME_NOW) */
  nowUs?: () => number;
}

interface FileHandle {
  node: Inode;
}

interface DirHandle {
  node: Inode;
  /** names as listed at offset 0 (after '.' and '..') */
  names: string[] | null;
}

export class LossyFs implements FuseFs {
  private readonly m: LossyModel;
  private readonly files = new Map<number, FileHandle>();
  private readonly dirs = new Map<number, DirHandle>();
  private nextFh = 1;
  private readonly nowUs: () => number;
  readonly table: { readonly size: number };

  constructor(private readonly o: LossyFsOptions) {
    this.m = o.model;
    this.nowUs = o.nowUs ?? (() => Date.now() * 1000);
    const m = this.m;
    this.table = { get size() { return m.inodeCount; } };
  }

  get openFiles(): number {
    return this.files.size;
  }

  get openDirs(): number {
    return this.dirs.size;
  }

  negotiated(flags: number): void {
    if (flags & InitFlag.WRITEBACK_CACHE) throw new FsError(E.EPROTO, 'the lossy disk must not run with writeback caching');
  }

  lookup(parent: number, name: Buffer): EntryOut {
    return this.entry(this.m.lookup(this.m.get(parent), this.name(name)));
  }

  forget(nodeid: number, n: number): void {
    this.m.unref(nodeid, n);
  }

  getattr(nodeid: number): AttrOut {
    return this.attrOut(this.m.get(nodeid));
  }

  setattr(nodeid: number, a: SetattrIn): AttrOut {
    const n = this.m.get(nodeid);
    const now = this.nowUs();
    const us = (sec: number, nsec: number) => sec * 1e6 + Math.floor(nsec / 1000);
    this.m.setattr(n, {
      mode: a.valid & FATTR.MODE ? a.mode : undefined,
      uid: a.valid & FATTR.UID ? a.uid : undefined,
      gid: a.valid & FATTR.GID ? a.gid : undefined,
      size: a.valid & FATTR.SIZE ? a.size : undefined,
      atimeUs: a.valid & FATTR.ATIME_NOW ? now : a.valid & FATTR.ATIME ? us(a.atime, a.atimensec) : undefined,
      mtimeUs: a.valid & FATTR.MTIME_NOW ? now : a.valid & FATTR.MTIME ? us(a.mtime, a.mtimensec) : undefined,
    });
    return this.attrOut(n);
  }

  readlink(nodeid: number): Buffer {
    const n = this.m.get(nodeid);
    if (n.kind !== 'symlink') throw new FsError(E.EINVAL);
    return Buffer.from(n.target!);
  }

  symlink(ctx: Ctx, parent: number, name: Buffer, target: Buffer): EntryOut {
    return this.entry(this.m.symlink(this.m.get(parent), this.name(name), this.name(target, true), ctx));
  }

  mknod(ctx: Ctx, parent: number, name: Buffer, mode: number): EntryOut {
    const type = mode & 0o170000;
    if (type !== 0o100000 && type !== 0) throw new FsError(E.EOPNOTSUPP, 'the lossy disk holds only files, directories and symlinks');
    return this.entry(this.m.create(this.m.get(parent), this.name(name), mode, ctx));
  }

  mkdir(ctx: Ctx, parent: number, name: Buffer, mode: number): EntryOut {
    return this.entry(this.m.mkdir(this.m.get(parent), this.name(name), mode, ctx));
  }

  unlink(parent: number, name: Buffer): void {
    this.m.unlink(this.m.get(parent), this.name(name));
  }

  rmdir(parent: number, name: Buffer): void {
    this.m.rmdir(this.m.get(parent), this.name(name));
  }

  rename(parent: number, name: Buffer, newParent: number, newName: Buffer, flags: number): void {
    if (flags & ~RENAME_NOREPLACE) throw new FsError(E.EINVAL, `rename flags ${flags} not supported`);
    this.m.rename(this.m.get(parent), this.name(name), this.m.get(newParent), this.name(newName), (flags & RENAME_NOREPLACE) !== 0);
  }

  link(): never {
    throw new FsError(E.EPERM, 'hard links are not supported on a lossy disk');
  }

  open(nodeid: number, flags: number): number {
    const n = this.m.get(nodeid);
    if (n.kind === 'dir') throw new FsError(E.EISDIR);
    this.m.open(n, (flags & C.O_TRUNC) !== 0);
    return this.addFile(n);
  }

  create(ctx: Ctx, parent: number, name: Buffer, flags: number, mode: number): { entry: EntryOut; fh: number } {
    const dir = this.m.get(parent);
    const nm = this.name(name);
    let n = this.m.entries(dir).get(nm);
    if (n && flags & C.O_EXCL) throw new FsError(E.EEXIST);
    if (n) this.m.open(n, (flags & C.O_TRUNC) !== 0);
    else {
      n = this.m.create(dir, nm, mode, ctx);
      this.m.open(n, false);
    }
    return { entry: this.entry(n), fh: this.addFile(n) };
  }

  read(fh: number, offset: number, size: number, out: Buffer, outOff: number): number {
    return this.m.read(this.file(fh).node, offset, Math.min(size, out.length - outOff), out, outOff);
  }

  write(fh: number, offset: number, data: Buffer, _writeFlags: number, flags: number): number {
    return this.m.write(this.file(fh).node, offset, data, (flags & C.O_APPEND) !== 0);
  }

  statfs(): Kstatfs {
    const s = this.o.store.statfs();
    return { ...s, namelen: 255, frsize: s.bsize };
  }

  flush(fh: number): void {
    this.file(fh);
  }

  release(fh: number): void {
    const h = this.files.get(fh);
    if (!h) return;
    this.files.delete(fh);
    this.m.close(h.node);
  }

  fsync(fh: number, datasync: boolean): boolean {
    this.m.fsync(this.file(fh).node, datasync);
    return false;
  }

  opendir(nodeid: number): number {
    const n = this.m.get(nodeid);
    this.m.entries(n);
    const fh = this.nextFh++;
    this.dirs.set(fh, { node: n, names: null });
    return fh;
  }

  /**
   * Entries from index `offset` on (0 = '.', 1 = '..', then the names as listed at offset 0, so rewinddir sees a
   * fresh listing); each entry's `off` is the index of the next. Names removed since the listing are skipped.
   * READDIRPLUS entries count a lookup, except '.' and '..' (nodeid 0).
   */
  readdir(fh: number, offset: number, size: number, plus: boolean, out: Buffer, outOff: number): number {
    const h = this.dirs.get(fh);
    if (!h) throw new FsError(E.EBADF);
    const entries = this.m.entries(h.node);
    if (offset === 0 || !h.names) h.names = [...entries.keys()];
    const end = Math.min(outOff + size, out.length);
    let p = outOff;
    for (let i = offset; i < h.names.length + 2; i++) {
      const node = i === 0 ? h.node : i === 1 ? (h.node.parent ?? h.node) : entries.get(h.names[i - 2]!);
      if (!node) continue;
      const name = Buffer.from(i === 0 ? '.' : i === 1 ? '..' : h.names[i - 2]!);
      const d = { ino: node.id, off: i + 1, type: dtype(node.attrs.mode), name };
      let r: number;
      if (plus) {
        if (p + direntplusSize(name.length) > end) break;
        const e: EntryOut = i < 2
          ? { nodeid: 0, generation: 0, entryValid: 0, attrValid: 0, entryValidNsec: 0, attrValidNsec: 0, attr: this.attr(node) }
          : this.entry(node);
        r = encodeDirentplus(out, p, end, e, d);
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
    this.m.fsync(h.node, datasync);
  }

  /** access(2) as a local filesystem would answer for the caller's uid and primary gid. */
  access(ctx: Ctx, nodeid: number, mask: number): void {
    const a = this.m.get(nodeid).attrs;
    if (mask === 0) return;
    if (ctx.uid === 0) {
      if (mask & 1 && (a.mode & 0o170000) !== 0o040000 && !(a.mode & 0o111)) throw new FsError(E.EACCES);
      return;
    }
    const shift = a.uid === ctx.uid ? 6 : a.gid === ctx.gid ? 3 : 0;
    if ((((a.mode >> shift) & 7) & mask) !== mask) throw new FsError(E.EACCES);
  }

  fallocate(fh: number, offset: number, length: number, mode: number): void {
    if (mode & ~FALLOC_FL_KEEP_SIZE) throw new FsError(E.EOPNOTSUPP, `fallocate mode ${mode} not supported on a lossy disk`);
    this.m.fallocate(this.file(fh).node, offset, length, (mode & FALLOC_FL_KEEP_SIZE) !== 0);
  }

  /** SEEK_DATA / SEEK_HOLE: the whole file is data (the generic answer). */
  lseek(fh: number, offset: number, whence: number): number {
    const n = this.file(fh).node;
    if (whence !== SEEK_DATA && whence !== SEEK_HOLE) throw new FsError(E.EINVAL);
    if (offset < 0 || offset >= n.attrs.size) throw new FsError(E.ENXIO);
    return whence === SEEK_DATA ? offset : n.attrs.size;
  }

  // ── helpers ──────────────────────────────────────────────────────────────────────────────────────────────────────

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

  private addFile(node: Inode): number {
    const fh = this.nextFh++;
    this.files.set(fh, { node });
    return fh;
  }

  private attr(n: Inode): Attr {
    const a = n.attrs;
    const sec = (us: number) => Math.floor(us / 1e6);
    const nsec = (us: number) => (us - Math.floor(us / 1e6) * 1e6) * 1000;
    return {
      ino: n.id, size: a.size, blocks: Math.ceil(a.size / 512), atime: sec(a.atimeUs), mtime: sec(a.mtimeUs), ctime: sec(a.ctimeUs),
      atimensec: nsec(a.atimeUs), mtimensec: nsec(a.mtimeUs), ctimensec: nsec(a.ctimeUs), mode: a.mode, nlink: this.m.nlink(n),
      uid: a.uid, gid: a.gid, rdev: 0, blksize: 4096, flags: 0,
    };
  }

  private entry(n: Inode): EntryOut {
    this.m.ref(n);
    const [ev, evn] = split(this.o.entryTimeout);
    const [av, avn] = split(this.o.attrTimeout);
    return { nodeid: n.id, generation: 0, entryValid: ev, entryValidNsec: evn, attrValid: av, attrValidNsec: avn, attr: this.attr(n) };
  }

  private attrOut(n: Inode): AttrOut {
    const [av, avn] = split(this.o.attrTimeout);
    return { attrValid: av, attrValidNsec: avn, attr: this.attr(n) };
  }
}

function split(seconds: number): [number, number] {
  const s = Math.floor(seconds);
  return [s, Math.round((seconds - s) * 1e9)];
}
