import fs, { type BigIntStats, constants as C } from 'node:fs';
import path from 'node:path';
import { isUtf8 } from 'node:buffer';
import { utimesArg } from '../../replication/fuse/passthrough.js';
import { PAGE, type DataPlan } from './pages.js';
import type { Attrs, DurableStore, Kind, Loc, StoredEntry, StoreStatfs } from './store.js';

/** How many durable files DiskStore keeps open for reads and writes. */
const OPEN_FDS = 64;
/** Pages per pwritev (Linux's IOV_MAX is 1024). */
const IOV_MAX = 1024;

/**
 * The durable store on the host's filesystem: the tree under `root` (a node's `<lab dir>/<node>/root/<dir>`, as
 * without a lossy disk) and the staging slots as `<staging>/<id>`. Synchronous fs calls on host paths only, never on
 * a FUSE mount.
 *
 * The host's kernel keeps all of it (its page cache survives the lab's power losses): durability here means "written
 * to this directory", never an fsync of the host's disk.
 *
 * Names that are not valid UTF-8, and entries that are neither regular files, directories nor symlinks (FIFOs,
 * sockets, devices), are left out of listings (logged once): the lossy disk cannot serve them.
 */
export class DiskStore implements DurableStore {
  /** path → open fd (O_RDWR), least recently used first */
  private readonly fds = new Map<string, number>();
  private warned = false;

  constructor(private readonly root: string, private readonly staging: string, private readonly log: (msg: string) => void = () => {}) {
    fs.mkdirSync(staging, { recursive: true });
  }

  stat(loc: Loc): StoredEntry {
    const p = this.path(loc);
    const st = fs.lstatSync(p, { bigint: true });
    const kind = kindOf(st);
    if (!kind) throw Object.assign(new Error(`${p} is not a file, directory or symlink`), { code: 'EOPNOTSUPP' });
    return { name: path.basename(p), kind, attrs: attrsOf(st), nlink: Number(st.nlink), target: kind === 'symlink' ? fs.readlinkSync(p, 'utf8') : undefined };
  }

  list(loc: Loc): StoredEntry[] {
    const dir = this.path(loc);
    const out: StoredEntry[] = [];
    for (const raw of fs.readdirSync(dir, { encoding: 'buffer' })) {
      const name = isUtf8(raw) ? raw.toString('utf8') : null;
      const p = name === null ? null : path.join(dir, name);
      const st = p === null ? undefined : fs.lstatSync(p, { bigint: true, throwIfNoEntry: false });
      const kind = st ? kindOf(st) : null;
      if (name === null || !st || !kind) {
        if (!this.warned) this.log(`lossy disk: leaving out ${path.join(dir, raw.toString('latin1'))} (not UTF-8, or not a file, directory or symlink)`);
        this.warned = true;
        continue;
      }
      out.push({ name, kind, attrs: attrsOf(st), nlink: Number(st.nlink), target: kind === 'symlink' ? fs.readlinkSync(p!, 'utf8') : undefined });
    }
    return out;
  }

  read(loc: Loc, buf: Buffer, bufOff: number, len: number, off: number): number {
    const fd = this.fd(this.path(loc));
    let done = 0;
    while (done < len) {
      const n = fs.readSync(fd, buf, bufOff + done, len - done, off + done);
      if (n <= 0) break;
      done += n;
    }
    return done;
  }

  create(loc: Loc, kind: Kind, attrs: Attrs, target?: string): void {
    const p = this.path(loc);
    if (kind === 'file') fs.closeSync(fs.openSync(p, C.O_CREAT | C.O_EXCL | C.O_WRONLY, attrs.mode & 0o7777));
    else if (kind === 'dir') fs.mkdirSync(p, attrs.mode & 0o7777);
    else fs.symlinkSync(target ?? '', p);
    this.setAttrs(loc, kind, attrs);
  }

  writeData(loc: Loc, plan: DataPlan, times: { atimeUs: number; mtimeUs: number }): void {
    const fd = this.fd(this.path(loc));
    if (fs.fstatSync(fd).size > plan.keep) fs.ftruncateSync(fd, plan.keep);
    // runs of consecutive pages in one pwritev each (the last page clipped to the size)
    for (let r = 0; r < plan.pages.length;) {
      const first = plan.pages[r]![0];
      let n = 1;
      while (r + n < plan.pages.length && n < IOV_MAX && plan.pages[r + n]![0] === first + n) n++;
      const bufs = plan.pages.slice(r, r + n).map(([i, page]) => page.subarray(0, Math.max(0, Math.min(PAGE, plan.size - i * PAGE))));
      let pos = first * PAGE;
      for (let b = 0; b < bufs.length;) {
        let done = fs.writevSync(fd, bufs.slice(b), pos);
        pos += done;
        while (b < bufs.length && done >= bufs[b]!.length) done -= bufs[b++]!.length;
        if (b < bufs.length && done > 0) bufs[b] = bufs[b]!.subarray(done);
      }
      r += n;
    }
    fs.ftruncateSync(fd, plan.size);
    fs.futimesSync(fd, us(times.atimeUs), us(times.mtimeUs));
  }

  setAttrs(loc: Loc, kind: Kind, attrs: Attrs): void {
    const p = this.path(loc);
    fs.lchownSync(p, attrs.uid, attrs.gid);
    if (kind !== 'symlink') fs.chmodSync(p, attrs.mode & 0o7777);
    fs.lutimesSync(p, us(attrs.atimeUs), us(attrs.mtimeUs));
  }

  setTimes(loc: Loc, atimeUs: number, mtimeUs: number): void {
    fs.lutimesSync(this.path(loc), us(atimeUs), us(mtimeUs));
  }

  move(from: Loc, to: Loc): void {
    const a = this.path(from);
    const b = this.path(to);
    if (fs.lstatSync(b, { throwIfNoEntry: false })) throw Object.assign(new Error(`${b} exists`), { code: 'EEXIST' });
    fs.renameSync(a, b);
    // open fds follow the file: re-key them
    for (const [p, fd] of [...this.fds]) {
      if (p === a || p.startsWith(`${a}/`)) {
        this.fds.delete(p);
        this.fds.set(b + p.slice(a.length), fd);
      }
    }
  }

  remove(loc: Loc): void {
    const p = this.path(loc);
    this.forget(p);
    fs.rmSync(p, { recursive: true, force: true });
  }

  clearStaging(): void {
    this.forget(this.staging);
    for (const name of fs.readdirSync(this.staging)) fs.rmSync(path.join(this.staging, name), { recursive: true, force: true });
  }

  statfs(): StoreStatfs {
    const s = fs.statfsSync(this.root);
    return { blocks: s.blocks, bfree: s.bfree, bavail: s.bavail, files: s.files, ffree: s.ffree, bsize: s.bsize };
  }

  /** Closes every cached fd. */
  close(): void {
    for (const fd of this.fds.values()) fs.closeSync(fd);
    this.fds.clear();
  }

  private path(loc: Loc): string {
    const top = loc.top === 'root' ? this.root : path.join(this.staging, String(loc.top));
    return loc.path.length ? path.join(top, ...loc.path) : top;
  }

  private fd(p: string): number {
    let fd = this.fds.get(p);
    if (fd !== undefined) {
      this.fds.delete(p);
      this.fds.set(p, fd);
      return fd;
    }
    fd = fs.openSync(p, C.O_RDWR | C.O_NOFOLLOW);
    this.fds.set(p, fd);
    if (this.fds.size > OPEN_FDS) {
      const [oldest, ofd] = this.fds.entries().next().value as [string, number];
      this.fds.delete(oldest);
      fs.closeSync(ofd);
    }
    return fd;
  }

  private forget(prefix: string): void {
    for (const [p, fd] of [...this.fds]) {
      if (p === prefix || p.startsWith(`${prefix}/`)) {
        this.fds.delete(p);
        fs.closeSync(fd);
      }
    }
  }
}

function kindOf(st: BigIntStats): Kind | null {
  return st.isFile() ? 'file' : st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : null;
}

export function attrsOf(st: BigIntStats): Attrs {
  return {
    mode: Number(st.mode), uid: Number(st.uid), gid: Number(st.gid), size: Number(st.size),
    atimeUs: Number(st.atimeNs / 1000n), mtimeUs: Number(st.mtimeNs / 1000n), ctimeUs: Number(st.ctimeNs / 1000n),
  };
}

function us(t: number): number {
  const sec = Math.floor(t / 1e6);
  return utimesArg({ sec, nsec: (t - sec * 1e6) * 1000 });
}
