import { randomBytes } from 'node:crypto';
import { constants as C } from 'node:fs';
import {
  type Change,
  describeChange,
  FALLOC_FL_KEEP_SIZE,
  FALLOC_FL_PUNCH_HOLE,
  FALLOC_FL_ZERO_RANGE,
  isNamespaceOp,
  RENAME_EXCHANGE,
  RENAME_NOREPLACE,
  type Timespec,
} from './change.js';
import { ErrnoError, errnoOf } from './errno.js';
import { type ApplyFs, type ApplyHandle, realFs } from './fs.js';
import { checkRelPath, checkSymlinkTarget, NO_EXCLUDES, type OpenedParent, openParent, type PathFilter } from './paths.js';

/**
 * The SECOND's side of replication for one module: applies changes to its copy of each replicated directory, one at a
 * time, in the order given, with node:fs on the copy (never through a FUSE mount).
 *
 * Contract:
 * - Changes are applied one at a time in the order of the `apply` calls (calls queue behind each other); the receiver
 *   (./receiver.ts) calls it in seq order.
 * - Durability: a `sync` change, and a change flagged `sync` ('data'/'full'), resolve only after fsync (fdatasync for
 *   'data' and datasync) of the file returned, and after every directory whose entries changed since the last such
 *   point (and, for a flagged namespace change, its own parent directories) was fsync'd. A `sync` with `syncfs`
 *   resolves after a syncfs of the copy's filesystem (every change before it durable). Other changes resolve once
 *   applied (in the page cache).
 * - Activity log (optional, `activity`): a file is durable in the copy's log before its data changes in place, and
 *   the log forgets it after a syncfs of that copy, so a crashed SECOND block-compares what it may have lost.
 * - Failure is sticky: the first change that cannot be applied (any error: ENOSPC, EDQUOT, EROFS, EIO from fsync, a
 *   refused path…) rejects with an ErrnoError and marks the applier failed; every later `apply` rejects at once with
 *   the same errno and does nothing, until `reset()`. Nothing is retried: an fsync that failed once is never retried
 *   and then reported as a success.
 * - Paths are checked by ./paths.ts (syntax, then each parent opened with O_NOFOLLOW from the copy root); nothing is
 *   ever written outside the copy root. A change whose path is excluded by `<notreplicated>` is skipped (resolves
 *   without touching the copy); a rename or link between an excluded and a replicated path is refused with EXDEV.
 * - Not replicable with node:fs, refused with EOPNOTSUPP (the FUSE side should refuse them to the application the
 *   same way): setxattr/removexattr, mknod of anything but a regular file (device nodes, FIFOs, sockets),
 *   RENAME_WHITEOUT, fallocate COLLAPSE/INSERT/UNSHARE ranges.
 * - Known differences that do not change file contents: fallocate does not preallocate blocks inside the file and
 *   PUNCH_HOLE/ZERO_RANGE write zeros (the copy may be less sparse); utimens goes through Node's utimes, whose
 *   seconds are a double: times are exact to about a microsecond, not to the nanosecond.
 */

export interface ReplicatedRoot {
  /** the replicated directory as written in userconfig.xml (what `Change.dir` names) */
  dir: string;
  /** where this node keeps its copy of it */
  root: string;
  filter?: PathFilter;
}

export interface ApplierOptions {
  dirs: ReplicatedRoot[];
  fs?: ApplyFs;
  /**
   * The copy's activity log (fuse/activity-log.ts `AppliedActivityLog`), per replicated dir: `beforeChange` resolves
   * once the file is durable in the log, before its data changes in place (write, truncate, fallocate); `durable`
   * after a syncfs of that dir's copy (every change applied so far is durable). A log that cannot be written fails
   * the change (the copy is then behind: reported, reintegrated).
   */
  activity?: (dir: string) => { beforeChange(rel: string): Promise<void>; durable(): Promise<void> } | null;
}

export interface ApplyFailure {
  errno: number;
  code: string;
  message: string;
}

const NOFOLLOW = C.O_NOFOLLOW | C.O_NONBLOCK;
const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const ZERO = Buffer.alloc(1024 * 1024);
const FILE_CACHE = 64;

export class Applier {
  private readonly fs: ApplyFs;
  private readonly dirs: Map<string, { root: string; filter: PathFilter; handle: ApplyHandle | null }>;
  private failure: ApplyFailure | null = null;
  private tail: Promise<void> = Promise.resolve();
  /** directories whose entries changed since the last durable point: key = dir + NUL + relative path */
  private dirty = new Map<string, { dir: string; rel: string }>();
  /** open write descriptors by dir NUL path (see fileHandle) */
  private files = new Map<string, ApplyHandle>();
  private readonly activity: ApplierOptions['activity'];

  constructor(opts: ApplierOptions) {
    this.fs = opts.fs ?? realFs;
    this.activity = opts.activity;
    this.dirs = new Map(opts.dirs.map((d) => [d.dir, { root: d.root, filter: d.filter ?? NO_EXCLUDES, handle: null }]));
  }

  /** the first failure since the last reset, or null */
  get failed(): ApplyFailure | null {
    return this.failure;
  }

  hasDir(dir: string): boolean {
    return this.dirs.has(dir);
  }

  dirNames(): string[] {
    return [...this.dirs.keys()];
  }

  /** Applies one change (contract above). `label` names it in errors, e.g. `change 42`. Calls run one at a time, in call order. */
  apply(change: Change, label = 'change'): Promise<void> {
    const run = this.tail.then(() => this.applySerial(change, label));
    this.tail = run.catch(() => {});
    return run;
  }

  private async applySerial(change: Change, label: string): Promise<void> {
    if (this.failure) {
      throw new ErrnoError(this.failure.code, `${label} refused: the replica failed earlier (${this.failure.message}) and must be reset`, this.failure.errno);
    }
    try {
      await this.applyOne(change);
    } catch (e) {
      const { errno, code } = errnoOf(e);
      const message = `${label} (${describeChange(change)} in ${change.dir}): ${(e as Error)?.message ?? String(e)}`;
      this.failure = { errno, code, message };
      throw new ErrnoError(code, message, errno);
    }
  }

  /**
   * Clears the failure (the daemon calls this before reintegrating the copy) and reopens the roots on next use.
   * Waits for the change being applied, if any.
   */
  async reset(): Promise<void> {
    await this.tail;
    await this.close();
    this.failure = null;
    this.dirty.clear();
  }

  async close(): Promise<void> {
    await this.dropFiles();
    for (const d of this.dirs.values()) {
      const h = d.handle;
      d.handle = null;
      if (h) await h.close().catch(() => {});
    }
  }

  // ── one change ─────────────────────────────────────────────────────────────────────────────────────────────────

  private async applyOne(c: Change): Promise<void> {
    const d = this.dirs.get(c.dir);
    if (!d) throw new ErrnoError('EINVAL', `${JSON.stringify(c.dir)} is not a replicated directory of this module here`);
    const rootOk = c.op === 'chmod' || c.op === 'chown' || c.op === 'utimens' || c.op === 'setxattr' || c.op === 'removexattr' || c.op === 'sync';
    const paths = c.op === 'rename' || c.op === 'link' ? [c.from, c.to] : [c.path];
    const parts = paths.map((p) => {
      const r = checkRelPath(p, { allowRoot: rootOk });
      if (!r.ok) throw new ErrnoError(r.code, `refused path: ${r.reason}`);
      return r.parts;
    });
    if (!d.handle) d.handle = await this.fs.open(d.root, C.O_RDONLY | C.O_DIRECTORY);
    const root = d.handle;

    const ex = await Promise.all(paths.map((p, i) => this.isExcluded(d.filter, root, p, parts[i]!, c)));
    if (ex.length === 2 && ex[0] !== ex[1]) {
      throw new ErrnoError('EXDEV', `${c.op} between a replicated and a not-replicated path (<notreplicated>)`);
    }
    if (ex.every(Boolean)) return;

    const durable = c.op !== 'sync' && c.sync !== undefined;
    const datasync = c.sync === 'data';
    // a cached descriptor names the object its path had when it was opened: any change of names ends them all
    if (isNamespaceOp(c.op) || c.op === 'link') await this.dropFiles();
    if (c.op === 'write' || c.op === 'truncate' || c.op === 'fallocate') {
      await this.activity?.(c.dir)?.beforeChange(c.path);
      const h = await this.fileHandle(c.dir, root, parts[0]!, c.path);
      if (c.op === 'write') await writeAll(h, c.data, c.offset);
      else if (c.op === 'truncate') await h.truncate(c.size);
      else await fallocate(h, c.mode, c.offset, c.length);
      if (durable) {
        await (datasync ? h.datasync() : h.sync());
        await this.flushDirty();
      }
      return;
    }
    if (c.op === 'sync' && c.syncfs) {
      await this.fs.syncfs(d.root);
      for (const [k, e] of this.dirty) if (e.dir === c.dir) this.dirty.delete(k);
      await this.activity?.(c.dir)?.durable();
      return;
    }
    const cached = c.op === 'sync' ? this.files.get(`${c.dir}\0${c.path}`) : undefined;
    if (c.op === 'sync' && cached) {
      await (c.datasync ? cached.datasync() : cached.sync());
      await this.flushDirty();
      return;
    }
    if (c.op === 'sync') {
      await this.withTarget(root, parts[0]!, (t) => this.syncTarget(t, c.datasync));
      await this.flushDirty();
      return;
    }
    if (c.op === 'rename' || c.op === 'link') {
      const a = await openParent(this.fs, root, parts[0]!);
      let to: OpenedParent | null = null;
      try {
        to = await openParent(this.fs, root, parts[1]!);
        if (c.op === 'rename') await this.rename(a, to, c.flags);
        else await this.fs.link(a.target, to.target);
        this.markDirty(c.dir, parts[0]!);
        this.markDirty(c.dir, parts[1]!);
        if (c.op === 'rename') this.renameDirty(c.dir, c.from, c.to, c.flags);
        if (durable) {
          await a.dir.sync();
          await to.dir.sync();
        }
      } finally {
        await to?.close();
        await a.close();
      }
    } else {
      await this.withTarget(root, parts[0]!, async (t) => {
        await this.applyAt(t, c, durable, datasync);
        if (isNamespaceOp(c.op)) {
          this.markDirty(c.dir, parts[0]!);
          if (c.op === 'rmdir') this.dropDirty(c.dir, c.path);
          if (durable) await t.dir.sync();
        }
      });
    }
    if (durable) await this.flushDirty();
  }

  private async applyAt(t: OpenedParent, c: Change, durable: boolean, datasync: boolean): Promise<void> {
    const fs = this.fs;
    const onRoot = t.name === null;
    switch (c.op) {
      case 'write':
        return this.withFile(t.target, C.O_WRONLY, durable, datasync, (h) => writeAll(h, c.data, c.offset));
      case 'truncate':
        return this.withFile(t.target, C.O_WRONLY, durable, datasync, (h) => h.truncate(c.size));
      case 'mknod':
        if ((c.mode & S_IFMT) !== S_IFREG && (c.mode & S_IFMT) !== 0) {
          throw new ErrnoError('EOPNOTSUPP', 'device nodes, FIFOs and sockets are not replicated');
        }
        return this.create(t, c.mode, durable, datasync); // a regular file made with mknod is a create
      case 'create':
        return this.create(t, c.mode, durable, datasync);
      case 'mkdir': {
        await fs.mkdir(t.target, 0o700);
        return this.withFile(t.target, C.O_RDONLY | C.O_DIRECTORY, durable, false, (h) => h.chmod(c.mode & 0o7777));
      }
      case 'unlink':
        return fs.unlink(t.target);
      case 'rmdir':
        return fs.rmdir(t.target);
      case 'symlink': {
        const r = checkSymlinkTarget(c.target);
        if (r) throw new ErrnoError('EINVAL', r);
        return fs.symlink(c.target, t.target);
      }
      case 'chmod':
        if (onRoot) return t.dir.chmod(c.mode & 0o7777);
        return this.withFile(t.target, C.O_RDONLY, durable, datasync, (h) => h.chmod(c.mode & 0o7777));
      case 'chown':
        if (onRoot) return t.dir.chown(c.uid, c.gid);
        return fs.lchown(t.target, c.uid, c.gid);
      case 'utimens': {
        const cur = c.atime && c.mtime ? null : onRoot ? await t.dir.stat({ bigint: true }) : await fs.lstat(t.target);
        const a = c.atime ? seconds(c.atime) : nsToSeconds(cur!.atimeNs);
        const m = c.mtime ? seconds(c.mtime) : nsToSeconds(cur!.mtimeNs);
        if (onRoot) return t.dir.utimes(a, m);
        return fs.lutimes(t.target, a, m);
      }
      case 'setxattr':
      case 'removexattr':
        throw new ErrnoError('EOPNOTSUPP', 'extended attributes are not replicated (Node has no xattr API)');
      case 'fallocate':
        return this.withFile(t.target, C.O_WRONLY, durable, datasync, (h) => fallocate(h, c.mode, c.offset, c.length));
      case 'rename':
      case 'link':
      case 'sync':
        return; // handled by applyOne
    }
  }

  private async create(t: OpenedParent, mode: number, durable: boolean, datasync: boolean): Promise<void> {
    const h = await this.fs.open(t.target, C.O_WRONLY | C.O_CREAT | C.O_EXCL | NOFOLLOW, 0o600);
    try {
      await h.chmod(mode & 0o7777);
      if (durable) await (datasync ? h.datasync() : h.sync());
    } finally {
      await h.close();
    }
  }

  private async rename(a: OpenedParent, b: OpenedParent, flags: number): Promise<void> {
    const fs = this.fs;
    if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE) || (flags & RENAME_NOREPLACE && flags & RENAME_EXCHANGE)) {
      throw new ErrnoError('EOPNOTSUPP', `rename flags 0x${flags.toString(16)} are not replicated`);
    }
    if (flags & RENAME_NOREPLACE) {
      const exists = await fs.lstat(b.target).then(() => true, (e: NodeJS.ErrnoException) => {
        if (e.code === 'ENOENT') return false;
        throw e;
      });
      if (exists) throw new ErrnoError('EEXIST', 'RENAME_NOREPLACE: the destination exists on this node (the copies differ)');
      return fs.rename(a.target, b.target);
    }
    if (flags & RENAME_EXCHANGE) {
      // not atomic here (Node has no renameat2): three renames through a temporary name in the destination's directory
      await fs.lstat(a.target);
      await fs.lstat(b.target);
      const tmp = `/proc/self/fd/${b.dir.fd}/.tandem-exchange-${randomBytes(8).toString('hex')}`;
      await fs.rename(b.target, tmp);
      await fs.rename(a.target, b.target);
      await fs.rename(tmp, a.target);
      return;
    }
    return fs.rename(a.target, b.target);
  }

  private async isExcluded(filter: PathFilter, root: ApplyHandle, rel: string, parts: string[], c: Change): Promise<boolean> {
    if (filter === NO_EXCLUDES) return false;
    const asFile = filter.excluded(rel, false);
    const asDir = filter.excluded(rel, true);
    if (asFile === asDir) return asFile;
    if (c.op === 'mkdir' || c.op === 'rmdir') return asDir;
    if (c.op !== 'rename' && c.op !== 'link' && c.op !== 'chmod' && c.op !== 'chown' && c.op !== 'utimens' && c.op !== 'sync' &&
      c.op !== 'setxattr' && c.op !== 'removexattr') return asFile;
    // the kind of an existing entry decides: look at it without following anything
    const isDir = await this.withTarget(root, parts, async (t) =>
      t.name === null ? true : this.fs.lstat(t.target).then((s) => s.isDirectory(), () => false)).catch(() => false);
    return isDir ? asDir : asFile;
  }

  private async withTarget<T>(root: ApplyHandle, parts: string[], fn: (t: OpenedParent) => Promise<T>): Promise<T> {
    const t = await openParent(this.fs, root, parts);
    try {
      return await fn(t);
    } finally {
      await t.close();
    }
  }

  /**
   * A write descriptor of the regular file at `rel` (O_NOFOLLOW, parents walked as in openParent), kept open for the
   * next changes of the same file: data writes then cost one pwrite instead of a walk, an open and closes. At most
   * FILE_CACHE descriptors (least recently used closed first); all are closed at every namespace change.
   */
  private async fileHandle(dir: string, root: ApplyHandle, parts: string[], rel: string): Promise<ApplyHandle> {
    const key = `${dir}\0${rel}`;
    const had = this.files.get(key);
    if (had) {
      this.files.delete(key);
      this.files.set(key, had);
      return had;
    }
    const h = await this.withTarget(root, parts, (t) => this.fs.open(t.target, C.O_WRONLY | NOFOLLOW));
    this.files.set(key, h);
    if (this.files.size > FILE_CACHE) {
      const [k, old] = this.files.entries().next().value as [string, ApplyHandle];
      this.files.delete(k);
      await old.close().catch(() => {});
    }
    return h;
  }

  private async dropFiles(): Promise<void> {
    const all = [...this.files.values()];
    this.files.clear();
    for (const h of all) await h.close().catch(() => {});
  }

  /** Opens the last component without following it, runs `fn`, makes it durable if asked, closes it. */
  private async withFile(target: string, flags: number, durable: boolean, datasync: boolean, fn: (h: ApplyHandle) => Promise<unknown>): Promise<void> {
    const h = await this.fs.open(target, flags | NOFOLLOW);
    try {
      await fn(h);
      if (durable) await (datasync ? h.datasync() : h.sync());
    } finally {
      await h.close();
    }
  }

  private async syncTarget(t: OpenedParent, datasync: boolean): Promise<void> {
    if (t.name === null) return t.dir.sync();
    const h = await this.fs.open(t.target, C.O_RDONLY | NOFOLLOW);
    try {
      await (datasync ? h.datasync() : h.sync());
    } finally {
      await h.close();
    }
  }

  // ── directories to fsync at the next durable point ────────────────────────────────────────────────────────────

  private markDirty(dir: string, parts: string[]): void {
    const rel = parts.length <= 1 ? '.' : parts.slice(0, -1).join('/');
    this.dirty.set(`${dir}\0${rel}`, { dir, rel });
  }

  /** a renamed directory's pending entries follow it (and, for an exchange, the other one's follow it back) */
  private renameDirty(dir: string, from: string, to: string, flags: number): void {
    const next = new Map<string, { dir: string; rel: string }>();
    for (const e of this.dirty.values()) {
      let rel = e.rel;
      if (e.dir === dir) {
        if (rel === from || rel.startsWith(`${from}/`)) rel = to + rel.slice(from.length);
        else if (flags & RENAME_EXCHANGE && (rel === to || rel.startsWith(`${to}/`))) rel = from + rel.slice(to.length);
      }
      next.set(`${e.dir}\0${rel}`, { dir: e.dir, rel });
    }
    this.dirty = next;
  }

  private dropDirty(dir: string, removed: string): void {
    for (const [k, e] of this.dirty) if (e.dir === dir && (e.rel === removed || e.rel.startsWith(`${removed}/`))) this.dirty.delete(k);
  }

  private async flushDirty(): Promise<void> {
    for (const [k, e] of [...this.dirty]) {
      const d = this.dirs.get(e.dir)!;
      const parts = e.rel === '.' ? [] : e.rel.split('/');
      await this.withTarget(d.handle!, parts, async (t) => {
        if (t.name === null) return t.dir.sync();
        const h = await this.fs.open(t.target, C.O_RDONLY | C.O_DIRECTORY | C.O_NOFOLLOW);
        try {
          await h.sync();
        } finally {
          await h.close();
        }
      });
      this.dirty.delete(k);
    }
  }
}

async function writeAll(h: ApplyHandle, data: Buffer, offset: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await h.write(data, done, data.length - done, offset + done);
    if (bytesWritten <= 0) throw new ErrnoError('EIO', `write returned ${bytesWritten}`);
    done += bytesWritten;
  }
}

async function writeZeros(h: ApplyHandle, from: number, to: number): Promise<void> {
  for (let o = from; o < to; o += ZERO.length) await writeAll(h, ZERO.subarray(0, Math.min(ZERO.length, to - o)), o);
}

/** fallocate(2) emulated for the same contents and size (see the class comment). */
async function fallocate(h: ApplyHandle, mode: number, offset: number, length: number): Promise<void> {
  const known = FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE;
  if (mode & ~known || (mode & FALLOC_FL_PUNCH_HOLE && !(mode & FALLOC_FL_KEEP_SIZE)) || (mode & FALLOC_FL_PUNCH_HOLE && mode & FALLOC_FL_ZERO_RANGE)) {
    throw new ErrnoError('EOPNOTSUPP', `fallocate mode 0x${mode.toString(16)} is not replicated`);
  }
  const end = offset + length;
  if (!Number.isSafeInteger(end)) throw new ErrnoError('EFBIG', 'fallocate range too large');
  const size = Number((await h.stat({ bigint: true })).size);
  const keep = (mode & FALLOC_FL_KEEP_SIZE) !== 0;
  if (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) {
    await writeZeros(h, offset, keep ? Math.min(end, size) : end);
  } else if (!keep && end > size) {
    await writeZeros(h, size, end);
  }
}

/**
 * Seconds as the double libuv's utimes takes; it keeps microseconds (truncating), so the microsecond is centred
 * (+0.5 µs) to survive the double's rounding: the copy's time then equals PRIM's to the microsecond.
 */
function seconds([sec, nsec]: Timespec): number {
  return sec + (Math.floor(nsec / 1000) + 0.5) / 1e6;
}

function nsToSeconds(ns: bigint): number {
  return seconds([Number(ns / 1_000_000_000n), Number(ns % 1_000_000_000n)]);
}
