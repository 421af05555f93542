import { BugError } from '../../errors.js';
import { E, FsError } from '../../replication/fuse/errno.js';
import { PendingData, type DurableRead } from './pages.js';
import { childLoc, slotLoc, type Attrs, type DurableStore, type Kind, type Loc } from './store.js';

/**
 * What a lossy disk keeps in memory above its durable store, and which call makes which change durable.
 *
 * Two views of one tree. The current view is what the node sees (every read answers from it); the durable view is
 * what a power loss leaves, and is exactly what the DurableStore holds. A change enters the current view only; the
 * calls below copy parts of it into the durable view. Everything else is lost at a power loss: the model is simply
 * dropped (the server process is killed) and the next one starts from the store.
 *
 * The rules (what ext4 with data=ordered promises an application, and not more; docs/design/lossy-disk.md):
 *
 * | call                          | becomes durable                                                            |
 * |-------------------------------|----------------------------------------------------------------------------|
 * | fdatasync(file), O_DSYNC write | the file's data and size                                                  |
 * | fsync(file), O_SYNC write      | the file's data, size, mode, owner, atime and mtime                       |
 * | fdatasync(dir)                | the directory's entries: creates, unlinks, rmdirs, renames in or out of it |
 * | fsync(dir)                    | the directory's entries, and its own mode, owner and times                 |
 * | sync of the whole disk (lab)  | everything                                                                 |
 * | close, write, anything else   | nothing                                                                    |
 *
 * Details:
 * - A new inode becomes durable with its first durable entry, with the mode and owner it was created with (a later
 *   chmod needs an fsync of the inode). A file fsynced before its directory is durable but has no durable name; it
 *   appears only if its entry is made durable before the power loss.
 * - A rename is atomic: a sync of either directory makes both halves durable (the old name gone, the new one there,
 *   whatever it replaced gone). When that moves an entry onto a durable name whose inode was itself renamed away, the
 *   rename that moved it away is made durable too (a chain), so an inode never loses its only durable name to a
 *   rename it was not part of. A directory moved below a durable path needs the path's own pending renames; they
 *   are made durable first.
 * - An entry made durable inside a directory whose own name is not durable is durable below that directory only:
 *   it appears if the directory's name becomes durable later.
 * - ctime is kept in the current view only; after a power loss it is the store's (when the server last wrote the
 *   inode). atime changes only by utimens (reads do not update it).
 * - Memory: pending data is held in 4 KiB pages. Past `pendingLimitBytes` the files with the oldest pending data
 *   are written back (as an fdatasync of each would: data and size, not mtime) until at most half the limit is held:
 *   a real kernel also writes back at any time, so this is one of the outcomes a power loss may have. Pending
 *   metadata costs a few hundred bytes per inode touched since the start.
 *
 * Pure apart from the DurableStore it is given (and `nowUs`); one caller at a time.
 */
export interface ModelOptions {
  store: DurableStore;
  /** current time, microseconds since the epoch; default Date.now() * 1000 */
  nowUs?: () => number;
  /** pending data bytes above which files are written back; default DEFAULT_PENDING_LIMIT */
  pendingLimitBytes?: number;
}

/** 64 MiB per lossy disk. */
export const DEFAULT_PENDING_LIMIT = 64 << 20;

export interface Creator {
  uid: number;
  gid: number;
}

/** A setattr; absent fields are left alone. */
export interface AttrChange {
  mode?: number;
  uid?: number;
  gid?: number;
  size?: number;
  atimeUs?: number;
  mtimeUs?: number;
}

export interface ModelStats {
  /** memory held for data not yet durable */
  pendingBytes: number;
  /** files whose data or size is not durable */
  pendingFiles: number;
  /** files written back because pendingBytes went past the limit, and the bytes that made durable */
  writebacks: number;
  writebackBytes: number;
  fsyncs: number;
  fdatasyncs: number;
  /** fsync or fdatasync of a directory */
  dirSyncs: number;
  syncAlls: number;
  /** inodes in memory */
  inodes: number;
}

/** One inode in both views. The handler reads it; only the model changes it. */
export interface Inode {
  readonly id: number;
  readonly kind: Kind;
  /** symlinks: the target */
  readonly target: string | null;
  /** current attributes */
  attrs: Attrs;
  /** current name: null once unlinked (or replaced by a rename) */
  parent: Inode | null;
  name: string;
  /** current entries (directories); null until loaded from the store */
  children: Map<string, Inode> | null;
  /** durable attributes; null while the inode does not exist in the store */
  dur: Attrs | null;
  /** attributes at creation: what a durable create records */
  readonly born: Attrs;
  /** durable name: null when the store has it in a staging slot, or not at all */
  dparent: Inode | null;
  dname: string;
  /** durable entries (directories), loaded with `children` */
  dchildren: Map<string, Inode> | null;
  /** st_nlink from the store, for a directory not loaded yet */
  readonly storedNlink: number;
  /** files: data above the durable copy; null when the durable copy is the current content */
  data: PendingData | null;
  /** open file handles */
  handles: number;
  /** the kernel's lookup count */
  lookups: number;
}

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;
const S_ISGID = 0o2000;
const ROOT_ID = 1;

export class LossyModel {
  readonly root: Inode;
  private readonly store: DurableStore;
  private readonly nowUs: () => number;
  private readonly limit: number;
  private readonly byId = new Map<number, Inode>();
  private nextId = ROOT_ID + 1;
  /** files with pending data, oldest first (the writeback order) */
  private readonly dirtyData = new Map<Inode, true>();
  private pendingBytes = 0;
  private readonly counts = { writebacks: 0, writebackBytes: 0, fsyncs: 0, fdatasyncs: 0, dirSyncs: 0, syncAlls: 0 };

  /** Starts from what the store holds (a boot): staging slots are dropped first, nothing is pending. */
  constructor(o: ModelOptions) {
    this.store = o.store;
    this.nowUs = o.nowUs ?? (() => Date.now() * 1000);
    this.limit = o.pendingLimitBytes ?? DEFAULT_PENDING_LIMIT;
    this.store.clearStaging();
    const st = this.store.stat({ top: 'root', path: [] });
    if (st.kind !== 'dir') throw new FsError(E.ENOTDIR, 'the root of a lossy disk must be a directory');
    this.root = this.make(ROOT_ID, 'dir', st.attrs, { ...st.attrs }, null, st.nlink);
  }

  get(id: number): Inode {
    const n = this.byId.get(id);
    if (!n) throw new FsError(E.ESTALE, `unknown inode ${id}`);
    return n;
  }

  /** inodes in memory */
  get inodeCount(): number {
    return this.byId.size;
  }

  stats(): ModelStats {
    return { pendingBytes: this.pendingBytes, pendingFiles: this.dirtyData.size, ...this.counts, inodes: this.byId.size };
  }

  // ── the current view ─────────────────────────────────────────────────────────────────────────────────────────────

  lookup(dir: Inode, name: string): Inode {
    const n = this.entries(dir).get(name);
    if (!n) throw new FsError(E.ENOENT);
    return n;
  }

  /** The current entries of a directory (loaded from the store on first use). */
  entries(dir: Inode): Map<string, Inode> {
    if (dir.kind !== 'dir') throw new FsError(E.ENOTDIR);
    if (!dir.children) this.load(dir);
    return dir.children!;
  }

  /** st_nlink in the current view. */
  nlink(n: Inode): number {
    if (n.kind !== 'dir') return 1;
    if (!n.children) return n.storedNlink;
    let k = 2;
    for (const c of n.children.values()) if (c.kind === 'dir') k++;
    return k;
  }

  create(dir: Inode, name: string, perm: number, who: Creator): Inode {
    return this.add(dir, name, 'file', S_IFREG | (perm & 0o7777), who, null);
  }

  mkdir(dir: Inode, name: string, perm: number, who: Creator): Inode {
    if (dir.kind !== 'dir') throw new FsError(E.ENOTDIR);
    return this.add(dir, name, 'dir', S_IFDIR | (perm & 0o7777) | (dir.attrs.mode & S_ISGID), who, null);
  }

  symlink(dir: Inode, name: string, target: string, who: Creator): Inode {
    return this.add(dir, name, 'symlink', S_IFLNK | 0o777, who, target);
  }

  unlink(dir: Inode, name: string): void {
    const n = this.lookup(dir, name);
    if (n.kind === 'dir') throw new FsError(E.EISDIR);
    this.remove(dir, name, n);
  }

  rmdir(dir: Inode, name: string): void {
    const n = this.lookup(dir, name);
    if (n.kind !== 'dir') throw new FsError(E.ENOTDIR);
    if (this.entries(n).size > 0) throw new FsError(E.ENOTEMPTY);
    this.remove(dir, name, n);
  }

  rename(dir: Inode, name: string, ndir: Inode, nname: string, noReplace: boolean): void {
    const n = this.lookup(dir, name);
    const there = this.entries(ndir);
    if (dir === ndir && name === nname) return;
    if (n.kind === 'dir') for (let q: Inode | null = ndir; q; q = q.parent) if (q === n) throw new FsError(E.EINVAL);
    const old = there.get(nname);
    if (old) {
      if (noReplace) throw new FsError(E.EEXIST);
      if (old.kind === 'dir') {
        if (n.kind !== 'dir') throw new FsError(E.EISDIR);
        if (this.entries(old).size > 0) throw new FsError(E.ENOTEMPTY);
      } else if (n.kind === 'dir') throw new FsError(E.ENOTDIR);
    }
    const now = this.now();
    if (old) {
      there.delete(nname);
      old.parent = null;
      old.attrs.ctimeUs = now;
    }
    dir.children!.delete(name);
    there.set(nname, n);
    n.parent = ndir;
    n.name = nname;
    n.attrs.ctimeUs = now;
    this.touch(dir, now);
    this.touch(ndir, now);
    if (old) this.settle(old);
  }

  setattr(n: Inode, c: AttrChange): void {
    const now = this.now();
    if (c.size !== undefined) {
      if (n.kind === 'dir') throw new FsError(E.EISDIR);
      if (n.kind !== 'file') throw new FsError(E.EINVAL);
      this.resize(n, c.size);
      n.attrs.mtimeUs = now;
    }
    if (c.uid !== undefined) n.attrs.uid = c.uid;
    if (c.gid !== undefined) n.attrs.gid = c.gid;
    if (c.mode !== undefined) n.attrs.mode = (n.attrs.mode & S_IFMT) | (c.mode & 0o7777);
    if (c.atimeUs !== undefined) n.attrs.atimeUs = c.atimeUs;
    if (c.mtimeUs !== undefined) n.attrs.mtimeUs = c.mtimeUs;
    n.attrs.ctimeUs = now;
  }

  /** A handle is opened on `n` (O_TRUNC: truncated to 0 first). */
  open(n: Inode, truncate: boolean): void {
    if (truncate) {
      if (n.kind !== 'file') throw new FsError(E.EISDIR);
      this.resize(n, 0);
      n.attrs.mtimeUs = n.attrs.ctimeUs = this.now();
    }
    n.handles++;
  }

  close(n: Inode): void {
    if (n.handles > 0) n.handles--;
    this.settle(n);
  }

  /** The kernel got one more reference to `n` (an entry reply). */
  ref(n: Inode): void {
    n.lookups++;
  }

  unref(id: number, k: number): void {
    const n = this.byId.get(id);
    if (!n || n === this.root) return;
    n.lookups = Math.max(0, n.lookups - k);
    this.settle(n);
  }

  read(n: Inode, off: number, len: number, out: Buffer, outOff: number): number {
    if (n.kind !== 'file') throw new FsError(E.EISDIR);
    if (n.data) return n.data.read(off, len, out, outOff, this.reader(n));
    const end = Math.min(off + len, n.attrs.size);
    if (end <= off) return 0;
    const loc = this.loc(n);
    const got = loc ? this.store.read(loc, out, outOff, end - off, off) : 0;
    out.fill(0, outOff + got, outOff + end - off);
    return end - off;
  }

  /** Writes at `off` (at the current size with `append`); returns the byte count. */
  write(n: Inode, off: number, data: Buffer, append: boolean): number {
    if (n.kind !== 'file') throw new FsError(E.EISDIR);
    const d = this.pending(n);
    const before = d.bytes;
    d.write(append ? n.attrs.size : off, data, this.reader(n));
    this.pendingBytes += d.bytes - before;
    n.attrs.size = d.size;
    n.attrs.mtimeUs = n.attrs.ctimeUs = this.now();
    this.enforceLimit();
    return data.length;
  }

  /** fallocate(2) mode 0 (may grow the file with zeros) or FALLOC_FL_KEEP_SIZE (changes nothing visible). */
  fallocate(n: Inode, off: number, len: number, keepSize: boolean): void {
    if (n.kind !== 'file') throw new FsError(E.ENODEV);
    if (keepSize || off + len <= n.attrs.size) return;
    this.resize(n, off + len);
    n.attrs.mtimeUs = n.attrs.ctimeUs = this.now();
  }

  // ── making it durable ────────────────────────────────────────────────────────────────────────────────────────────

  /** fsync(2) (`datasync` false) or fdatasync(2) of a file or directory; see the table above. */
  fsync(n: Inode, datasync: boolean): void {
    if (n.kind === 'dir') {
      this.counts.dirSyncs++;
      this.syncEntries(n);
    } else {
      this.counts[datasync ? 'fdatasyncs' : 'fsyncs']++;
      this.syncData(n);
    }
    if (!datasync) this.syncAttrs(n);
    this.settle(n);
  }

  /** Everything becomes durable (sync(2) on a real disk). */
  syncAll(): void {
    this.counts.syncAlls++;
    for (const n of [...this.byId.values()]) if (n.kind === 'dir' && this.alive(n)) this.syncEntries(n);
    for (const n of [...this.byId.values()]) {
      if (n.parent === null && n !== this.root) continue; // unlinked: nothing of it can survive
      this.syncData(n);
      this.syncAttrs(n);
    }
  }

  /** The durable data and size of a file. */
  private syncData(n: Inode): void {
    if (n.kind !== 'file') return;
    this.ensureDurable(n);
    const d = n.data;
    if (!d) return;
    const plan = d.plan();
    this.store.writeData(this.loc(n)!, plan, { atimeUs: n.dur!.atimeUs, mtimeUs: n.dur!.mtimeUs });
    n.dur!.size = plan.size;
    this.dropData(n);
  }

  /** The durable mode, owner and times (data first: a file's durable size is its synced one). */
  private syncAttrs(n: Inode): void {
    this.ensureDurable(n);
    const dur = n.dur!;
    const a = n.attrs;
    const size = n.kind === 'file' ? dur.size : a.size;
    if (dur.mode === a.mode && dur.uid === a.uid && dur.gid === a.gid && dur.atimeUs === a.atimeUs && dur.mtimeUs === a.mtimeUs) {
      n.dur = { ...a, size };
      return;
    }
    n.dur = { ...a, size };
    this.store.setAttrs(this.loc(n)!, n.kind, n.dur);
  }

  /** Makes every entry of `d` durable as it is now (with the atomic-rename and chain rules above). */
  private syncEntries(d: Inode): void {
    if (!d.children) return; // never loaded: nothing changed in it
    if (d.dur === null && !this.alive(d)) return;
    this.ensureDurable(d);
    const changed: Inode[] = [];
    for (const [name, x] of d.dchildren!) if (d.children.get(name) !== x) changed.push(x);
    for (const [name, y] of d.children) if (d.dchildren!.get(name) !== y) changed.push(y);
    const done = new Set<Inode>();
    const touched = new Set<Inode>();
    for (const z of changed) this.place(z, done, touched);
    // the store's directories changed their times with their entries; put back the durable ones
    for (const t of touched) {
      const loc = t.dur ? this.loc(t) : null;
      if (loc) this.store.setTimes(loc, t.dur!.atimeUs, t.dur!.mtimeUs);
    }
  }

  /** Gives `z` its current name in the durable view too (or none, when it has none). */
  private place(z: Inode, done: Set<Inode>, touched: Set<Inode>): void {
    if (done.has(z)) return;
    done.add(z);
    const p = z.parent;
    if (p === z.dparent && (p === null || z.name === z.dname)) return;
    if (p === null) {
      this.detach(z, touched);
      return;
    }
    this.ensureDurable(p);
    // moving a directory below a path that lies (durably) inside it: that path's own renames go first
    for (let q = this.insideMoved(z, p); q; q = this.insideMoved(z, p)) {
      if (done.has(q)) throw new BugError(`lossy disk: cannot order the renames around inode ${z.id}`);
      this.place(q, done, touched);
    }
    const w = p.dchildren!.get(z.name);
    if (w && w !== z) this.detach(w, touched);
    const to = childLoc(this.loc(p)!, z.name);
    if (z.dur === null) {
      this.store.create(to, z.kind, z.born, z.target ?? undefined);
      z.dur = { ...z.born };
    } else {
      this.store.move(this.loc(z)!, to);
      if (z.dparent) {
        z.dparent.dchildren!.delete(z.dname);
        touched.add(z.dparent);
      }
    }
    p.dchildren!.set(z.name, z);
    z.dparent = p;
    z.dname = z.name;
    touched.add(p);
    if (w && w !== z) this.place(w, done, touched);
  }

  /**
   * When z is a directory and p (where z goes) lies durably inside z: the first inode on p's durable path below z
   * whose current place differs (one must: currently p is not inside z). Else null.
   */
  private insideMoved(z: Inode, p: Inode): Inode | null {
    const path: Inode[] = [];
    for (let q: Inode | null = p; q; q = q.dparent) {
      if (q === z) {
        const moved = path.find((c) => c.parent !== c.dparent || c.name !== c.dname);
        if (!moved) throw new BugError(`lossy disk: inode ${p.id} is inside ${z.id} in both views`);
        return moved;
      }
      path.push(q);
    }
    return null;
  }

  /** `w` loses its durable name: into a staging slot while it is alive, else gone from the store. */
  private detach(w: Inode, touched: Set<Inode>): void {
    if (!w.dparent) return;
    const from = this.loc(w)!;
    w.dparent.dchildren!.delete(w.dname);
    touched.add(w.dparent);
    w.dparent = null;
    if (this.alive(w)) this.store.move(from, slotLoc(w.id));
    else this.free(w, from);
  }

  /** Removes `n` (not alive) and its durable subtree from the store, keeping alive inodes in it in staging slots. */
  private free(n: Inode, loc: Loc): void {
    this.rescue(n);
    this.store.remove(loc);
    this.forgetDurable(n);
  }

  private rescue(n: Inode): void {
    if (!n.dchildren) return;
    for (const [name, c] of n.dchildren) {
      if (this.alive(c)) {
        this.store.move(this.loc(c)!, slotLoc(c.id));
        n.dchildren.delete(name);
        c.dparent = null;
      } else {
        this.rescue(c);
      }
    }
  }

  private forgetDurable(n: Inode): void {
    if (n.dchildren) {
      for (const c of n.dchildren.values()) if (c.dparent === n) this.forgetDurable(c);
      n.dchildren.clear();
    }
    n.dur = null;
    n.dparent = null;
    if (!this.alive(n) && n.lookups === 0) this.byId.delete(n.id);
  }

  /** Gives `n` a place in the store (a staging slot: it has no durable name) when it has none. */
  private ensureDurable(n: Inode): void {
    if (n.dur !== null) return;
    this.store.create(slotLoc(n.id), n.kind, n.born, n.target ?? undefined);
    n.dur = { ...n.born };
  }

  /** After `n` may have lost its last name or handle or kernel reference: drop what nothing can reach any more. */
  private settle(n: Inode): void {
    if (this.alive(n)) return;
    if (n.data) this.dropData(n);
    if (n.dparent === null && n.dur !== null) this.free(n, slotLoc(n.id));
    else if (n.dparent === null && n.lookups === 0) this.byId.delete(n.id);
  }

  private enforceLimit(): void {
    if (this.pendingBytes <= this.limit) return;
    for (const n of this.dirtyData.keys()) {
      if (this.pendingBytes <= this.limit / 2) break;
      const bytes = n.data!.bytes;
      if (bytes === 0) continue;
      this.counts.writebacks++;
      this.counts.writebackBytes += bytes;
      this.syncData(n);
    }
  }

  // ── helpers ──────────────────────────────────────────────────────────────────────────────────────────────────────

  /** Where the store has `n`: below the root by its durable names, or below the staging slot of its topmost unnamed ancestor. */
  private loc(n: Inode): Loc | null {
    if (n === this.root) return { top: 'root', path: [] };
    if (n.dur === null) return null;
    const path: string[] = [];
    let q = n;
    for (; q !== this.root && q.dparent; q = q.dparent) path.push(q.dname);
    path.reverse();
    return q === this.root ? { top: 'root', path } : { top: q.id, path };
  }

  private alive(n: Inode): boolean {
    return n === this.root || n.parent !== null || n.handles > 0;
  }

  private load(dir: Inode): void {
    dir.children = new Map();
    dir.dchildren = new Map();
    const loc = this.loc(dir);
    if (!loc) return;
    for (const e of this.store.list(loc)) {
      const n = this.make(this.nextId++, e.kind, e.attrs, { ...e.attrs }, e.target ?? null, e.nlink);
      n.parent = n.dparent = dir;
      n.name = n.dname = e.name;
      dir.children.set(e.name, n);
      dir.dchildren.set(e.name, n);
    }
  }

  private add(dir: Inode, name: string, kind: Kind, mode: number, who: Creator, target: string | null): Inode {
    const there = this.entries(dir);
    if (there.has(name)) throw new FsError(E.EEXIST);
    const now = this.now();
    const gid = dir.attrs.mode & S_ISGID ? dir.attrs.gid : who.gid;
    const attrs: Attrs = { mode, uid: who.uid, gid, size: target === null ? 0 : Buffer.byteLength(target), atimeUs: now, mtimeUs: now, ctimeUs: now };
    const n = this.make(this.nextId++, kind, attrs, null, target, kind === 'dir' ? 2 : 1);
    if (kind === 'dir') {
      n.children = new Map();
      n.dchildren = new Map();
    }
    n.parent = dir;
    n.name = name;
    there.set(name, n);
    this.touch(dir, now);
    return n;
  }

  private remove(dir: Inode, name: string, n: Inode): void {
    const now = this.now();
    dir.children!.delete(name);
    n.parent = null;
    n.attrs.ctimeUs = now;
    this.touch(dir, now);
    this.settle(n);
  }

  private make(id: number, kind: Kind, attrs: Attrs, dur: Attrs | null, target: string | null, storedNlink: number): Inode {
    const n: Inode = {
      id, kind, target, attrs: { ...attrs }, parent: null, name: '', children: null, dur, born: { ...attrs },
      dparent: null, dname: '', dchildren: null, storedNlink, data: null, handles: 0, lookups: 0,
    };
    this.byId.set(id, n);
    return n;
  }

  private touch(dir: Inode, now: number): void {
    dir.attrs.mtimeUs = dir.attrs.ctimeUs = now;
  }

  private pending(n: Inode): PendingData {
    if (!n.data) {
      n.data = new PendingData(n.attrs.size);
      this.dirtyData.set(n, true);
    }
    return n.data;
  }

  private resize(n: Inode, size: number): void {
    const d = this.pending(n);
    const before = d.bytes;
    d.truncate(size);
    this.pendingBytes += d.bytes - before;
    n.attrs.size = size;
  }

  private dropData(n: Inode): void {
    this.pendingBytes -= n.data!.bytes;
    n.data = null;
    this.dirtyData.delete(n);
  }

  private reader(n: Inode): DurableRead {
    return (buf, bufOff, len, off) => {
      const loc = this.loc(n);
      return loc ? this.store.read(loc, buf, bufOff, len, off) : 0;
    };
  }

  private now(): number {
    return this.nowUs();
  }
}
