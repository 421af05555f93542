import { E, FsError } from '../../replication/fuse/errno.js';
import { PAGE, type DataPlan } from './pages.js';
import type { Attrs, DurableStore, Kind, Loc, StoredEntry, StoreStatfs } from './store.js';

interface MemEntry {
  kind: Kind;
  attrs: Attrs;
  data: Buffer;
  target?: string;
  children: Map<string, MemEntry>;
}

/** A file, directory or symlink as `MemoryStore.dump` shows it. */
export interface DumpEntry {
  kind: Kind;
  mode: number;
  uid: number;
  gid: number;
  mtimeUs: number;
  /** files: content as a string (latin1); symlinks: the target; directories: '' */
  data: string;
}

/**
 * The durable store in memory, for unit tests: it outlives the model, as a disk outlives a power loss. `dump()` is
 * the tree a boot would find. Operations count in `ops` so a test can see that nothing was written.
 */
export class MemoryStore implements DurableStore {
  private root: MemEntry;
  private readonly slots = new Map<number, MemEntry>();
  ops = 0;

  constructor(rootAttrs: Partial<Attrs> = {}) {
    this.root = entry('dir', { mode: 0o40755, uid: 0, gid: 0, size: 0, atimeUs: 0, mtimeUs: 0, ctimeUs: 0, ...rootAttrs });
  }

  stat(loc: Loc): StoredEntry {
    const e = this.at(loc);
    return { name: loc.path.at(-1) ?? '', kind: e.kind, attrs: { ...e.attrs, size: sizeOf(e) }, nlink: nlinkOf(e), target: e.target };
  }

  list(loc: Loc): StoredEntry[] {
    return [...this.at(loc).children.entries()].map(([name, e]) => ({ name, kind: e.kind, attrs: { ...e.attrs, size: sizeOf(e) }, nlink: nlinkOf(e), target: e.target }));
  }

  read(loc: Loc, buf: Buffer, bufOff: number, len: number, off: number): number {
    const e = this.at(loc);
    if (off >= e.data.length) return 0;
    return e.data.copy(buf, bufOff, off, Math.min(off + len, e.data.length));
  }

  create(loc: Loc, kind: Kind, attrs: Attrs, target?: string): void {
    this.ops++;
    const e = entry(kind, { ...attrs, size: 0 });
    if (kind === 'symlink') e.target = target ?? '';
    this.put(loc, e);
  }

  writeData(loc: Loc, plan: DataPlan, times: { atimeUs: number; mtimeUs: number }): void {
    this.ops++;
    const e = this.at(loc);
    let data = Buffer.alloc(Math.max(plan.size, plan.keep));
    e.data.copy(data, 0, 0, Math.min(plan.keep, e.data.length));
    for (const [i, page] of plan.pages) page.copy(data, i * PAGE, 0, Math.min(PAGE, plan.size - i * PAGE));
    data = data.subarray(0, plan.size);
    e.data = Buffer.from(data);
    e.attrs.atimeUs = times.atimeUs;
    e.attrs.mtimeUs = times.mtimeUs;
  }

  setAttrs(loc: Loc, kind: Kind, attrs: Attrs): void {
    this.ops++;
    const e = this.at(loc);
    e.attrs = { ...attrs, mode: kind === 'symlink' ? e.attrs.mode : attrs.mode, size: sizeOf(e) };
  }

  setTimes(loc: Loc, atimeUs: number, mtimeUs: number): void {
    this.ops++;
    const e = this.at(loc);
    e.attrs.atimeUs = atimeUs;
    e.attrs.mtimeUs = mtimeUs;
  }

  move(from: Loc, to: Loc): void {
    this.ops++;
    const e = this.at(from);
    if (this.find(to)) throw new FsError(E.EEXIST, `move onto ${show(to)}`);
    this.put(to, e);
    this.detach(from);
  }

  remove(loc: Loc): void {
    this.ops++;
    if (this.find(loc)) this.detach(loc);
  }

  clearStaging(): void {
    this.slots.clear();
  }

  statfs(): StoreStatfs {
    return { blocks: 1 << 20, bfree: 1 << 19, bavail: 1 << 19, files: 1 << 16, ffree: 1 << 15, bsize: 4096 };
  }

  /** Number of staging slots in use. */
  get staged(): number {
    return this.slots.size;
  }

  /** The durable tree below the root: relative path → entry, parents before children, names sorted. */
  dump(): Record<string, DumpEntry> {
    const out: Record<string, DumpEntry> = {};
    const walk = (e: MemEntry, rel: string) => {
      for (const name of [...e.children.keys()].sort()) {
        const c = e.children.get(name)!;
        const r = rel ? `${rel}/${name}` : name;
        out[r] = {
          kind: c.kind, mode: c.attrs.mode & 0o7777, uid: c.attrs.uid, gid: c.attrs.gid, mtimeUs: c.attrs.mtimeUs,
          data: c.kind === 'file' ? c.data.toString('latin1') : c.kind === 'symlink' ? c.target ?? '' : '',
        };
        if (c.kind === 'dir') walk(c, r);
      }
    };
    walk(this.root, '');
    return out;
  }

  /** attributes of the root directory as stored */
  get rootAttrs(): Attrs {
    return { ...this.root.attrs };
  }

  private find(loc: Loc): MemEntry | undefined {
    let e: MemEntry | undefined = loc.top === 'root' ? this.root : this.slots.get(loc.top);
    for (const name of loc.path) {
      if (!e || e.kind !== 'dir') return undefined;
      e = e.children.get(name);
    }
    return e;
  }

  private at(loc: Loc): MemEntry {
    const e = this.find(loc);
    if (!e) throw new FsError(E.ENOENT, `no ${show(loc)} in the store`);
    return e;
  }

  private put(loc: Loc, e: MemEntry): void {
    if (loc.path.length === 0) {
      if (loc.top === 'root') throw new FsError(E.EEXIST, 'the root exists');
      if (this.slots.has(loc.top)) throw new FsError(E.EEXIST, `slot ${loc.top} exists`);
      this.slots.set(loc.top, e);
      return;
    }
    const parent = this.at({ top: loc.top, path: loc.path.slice(0, -1) });
    const name = loc.path.at(-1)!;
    if (parent.kind !== 'dir') throw new FsError(E.ENOTDIR, show(loc));
    if (parent.children.has(name)) throw new FsError(E.EEXIST, show(loc));
    parent.children.set(name, e);
  }

  private detach(loc: Loc): void {
    if (loc.path.length === 0) {
      if (loc.top === 'root') throw new FsError(E.EINVAL, 'the root cannot go');
      this.slots.delete(loc.top);
      return;
    }
    this.at({ top: loc.top, path: loc.path.slice(0, -1) }).children.delete(loc.path.at(-1)!);
  }
}

function entry(kind: Kind, attrs: Attrs): MemEntry {
  return { kind, attrs: { ...attrs }, data: Buffer.alloc(0), children: new Map() };
}

function sizeOf(e: MemEntry): number {
  return e.kind === 'file' ? e.data.length : e.kind === 'symlink' ? Buffer.byteLength(e.target ?? '') : 4096;
}

function nlinkOf(e: MemEntry): number {
  if (e.kind !== 'dir') return 1;
  let n = 2;
  for (const c of e.children.values()) if (c.kind === 'dir') n++;
  return n;
}

function show(loc: Loc): string {
  return `${loc.top === 'root' ? '' : `[slot ${loc.top}]`}/${loc.path.join('/')}`;
}
