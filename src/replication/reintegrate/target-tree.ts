import type { BigIntStats } from 'node:fs';
import { constants as C } from 'node:fs';
import fs from 'node:fs/promises';
import { viaFd } from '../stream/paths.js';

/**
 * The tree a reintegration plan is applied to (apply-plan.ts), opened the way the live applier opens its copy
 * (stream/paths.ts): every path of the plan (a path from the peer) is resolved from a descriptor of the root held for
 * the whole run, one component at a time, each directory opened O_DIRECTORY|O_NOFOLLOW through
 * `/proc/self/fd/<parent>/<name>`, and the operation then names its target as `/proc/self/fd/<parent fd>/<name>`.
 *
 * Contract:
 * - No symlink is ever followed on the way to a target, whether it was in the copy before or a step of this (or an
 *   earlier) plan created it: a parent that is a symlink or a file fails the walk (ELOOP / ENOTDIR), so nothing is
 *   ever written, chmod'ed, renamed or deleted outside the root.
 * - For the last component only calls that do not follow it are used (open with O_NOFOLLOW, lstat, lchown, lutimes,
 *   rename, unlink, rmdir, mkdir, symlink, copyFile with COPYFILE_EXCL); a mode is set through a descriptor opened
 *   O_NOFOLLOW, and never on a symlink.
 * - `''` is the root itself.
 * - Paths are trusted to be normalized relative paths (the applier checks them with assertRelPath first).
 */
export class TargetTree {
  private constructor(readonly root: string, private readonly rootHandle: fs.FileHandle) {}

  static async open(root: string): Promise<TargetTree> {
    return new TargetTree(root, await fs.open(root, DIR_FLAGS));
  }

  async close(): Promise<void> {
    await this.rootHandle.close().catch(() => {});
  }

  /**
   * Runs `fn` with `/proc/self/fd/<parent>/<name>` naming `rel` (the parent walked without following symlinks;
   * with `createParents`, missing parents are created with mode 0777 minus the umask). The descriptors of the walk
   * stay open while `fn` runs. The root itself cannot be named this way.
   */
  async at<T>(rel: string, fn: (target: string) => Promise<T>, opts: { createParents?: boolean } = {}): Promise<T> {
    const parts = rel.split('/');
    const opened: fs.FileHandle[] = [];
    try {
      let dir = this.rootHandle;
      for (const comp of parts.slice(0, -1)) {
        dir = await openDir(dir, comp, opts.createParents === true);
        opened.push(dir);
      }
      return await fn(viaFd(dir, parts[parts.length - 1]!));
    } finally {
      for (const h of opened.reverse()) await h.close().catch(() => {});
    }
  }

  /** lstat of `rel`, or null when nothing is there (or a parent is not a directory: nothing is there either). */
  async lstat(rel: string): Promise<BigIntStats | null> {
    if (rel === '') return this.rootHandle.stat({ bigint: true });
    try {
      return await this.at(rel, (p) => fs.lstat(p, { bigint: true }));
    } catch (e) {
      if (isAbsent(e)) return null;
      throw e;
    }
  }

  async exists(rel: string): Promise<boolean> {
    return (await this.lstat(rel)) !== null;
  }

  /** Opens `rel` with `flags | O_NOFOLLOW` (a symlink there fails with ELOOP). */
  openFile(rel: string, flags: number, mode = 0o600, opts: { createParents?: boolean } = {}): Promise<fs.FileHandle> {
    return this.at(rel, (p) => fs.open(p, flags | C.O_NOFOLLOW, mode), opts);
  }

  /** `mkdir -p`: every missing component is created; an existing directory is fine, anything else fails. */
  async mkdirp(rel: string): Promise<void> {
    if (rel === '') return;
    const parts = rel.split('/');
    const opened: fs.FileHandle[] = [];
    try {
      let dir = this.rootHandle;
      for (const comp of parts) {
        dir = await openDir(dir, comp, true);
        opened.push(dir);
      }
    } finally {
      for (const h of opened.reverse()) await h.close().catch(() => {});
    }
  }

  /** rename(2) of `from` to `to` (both in this tree); `to`'s missing parents are created. */
  async rename(from: string, to: string): Promise<void> {
    await this.at(from, (src) => this.at(to, (dest) => fs.rename(src, dest), { createParents: true }));
  }

  /** `rm -rf rel`, never following a symlink; nothing there (or a parent that is not a directory) is fine. */
  async removeTree(rel: string): Promise<void> {
    try {
      await this.at(rel, (p) => removeAt(p));
    } catch (e) {
      if (!isAbsent(e)) throw e;
    }
  }

  async symlink(target: string, rel: string): Promise<void> {
    await this.at(rel, (p) => fs.symlink(target, p));
  }

  /** Copies the file `src` (a path outside this tree) to `rel`, which must not exist (a clone where the filesystem can). */
  async copyIn(src: string, rel: string): Promise<void> {
    await this.at(rel, (p) => fs.copyFile(src, p, C.COPYFILE_EXCL | C.COPYFILE_FICLONE), { createParents: true });
  }

  /**
   * Owner, then mode (chown clears set-id bits), then times (atime kept). Nothing there: nothing to do. The mode is
   * set through a descriptor opened O_NOFOLLOW; symlinks and special files keep theirs.
   */
  async setMeta(rel: string, m: { uid: number; gid: number; mode: number; mtimeNs: bigint }): Promise<void> {
    if (rel === '') return this.setMetaOf(viaFd(this.rootHandle), this.rootHandle, m);
    try {
      await this.at(rel, (p) => this.setMetaOf(p, null, m));
    } catch (e) {
      if (!isAbsent(e)) throw e;
    }
  }

  private async setMetaOf(p: string, held: fs.FileHandle | null, m: { uid: number; gid: number; mode: number; mtimeNs: bigint }): Promise<void> {
    if (held) {
      // the root: through its descriptor (a call on /proc/self/fd/N itself would act on the magic link)
      const st = await held.stat({ bigint: true });
      if (Number(st.uid) !== m.uid || Number(st.gid) !== m.gid) await held.chown(m.uid, m.gid);
      await held.chmod(m.mode);
      await held.utimes(nsToSeconds(st.atimeNs), nsToSeconds(m.mtimeNs));
      return;
    }
    const st = await fs.lstat(p, { bigint: true });
    if (Number(st.uid) !== m.uid || Number(st.gid) !== m.gid) await fs.lchown(p, m.uid, m.gid);
    if (st.isDirectory() || st.isFile()) {
      const fh = await fs.open(p, st.isDirectory() ? DIR_FLAGS : C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK);
      try {
        await fh.chmod(m.mode);
      } finally {
        await fh.close();
      }
    }
    await fs.lutimes(p, nsToSeconds(st.atimeNs), nsToSeconds(m.mtimeNs));
  }

  /** fsync of the file or directory `rel` ('' = the root). */
  async sync(rel: string): Promise<void> {
    if (rel === '') return this.rootHandle.sync();
    const fh = await this.at(rel, async (p) => {
      const st = await fs.lstat(p);
      return fs.open(p, st.isDirectory() ? DIR_FLAGS : C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK);
    });
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  }
}

const DIR_FLAGS = C.O_RDONLY | C.O_DIRECTORY | C.O_NOFOLLOW;

/** Opens the directory `name` in `dir` (no symlink followed); with `create`, makes it first when missing. */
async function openDir(dir: fs.FileHandle, name: string, create: boolean): Promise<fs.FileHandle> {
  try {
    return await fs.open(viaFd(dir, name), DIR_FLAGS);
  } catch (e) {
    if (!create || (e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  await fs.mkdir(viaFd(dir, name), 0o777).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== 'EEXIST') throw e;
  });
  return fs.open(viaFd(dir, name), DIR_FLAGS);
}

/** Removes what `p` names (a `/proc/self/fd/N/name` path): a directory with its contents, walked by descriptor. */
async function removeAt(p: string): Promise<void> {
  let st;
  try {
    st = await fs.lstat(p);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  if (!st.isDirectory()) {
    await fs.unlink(p).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'ENOENT') throw e;
    });
    return;
  }
  const dir = await fs.open(p, DIR_FLAGS);
  try {
    for (const name of await fs.readdir(viaFd(dir))) await removeAt(viaFd(dir, name));
  } finally {
    await dir.close();
  }
  await fs.rmdir(p).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== 'ENOENT') throw e;
  });
}

/** The walk found nothing there: a missing component, or a parent that is a symlink or a file. */
export function isAbsent(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR' || code === 'ELOOP';
}

/** ns since the epoch → seconds for lutimes, exact to the microsecond (libuv truncates to µs; +0.5 µs keeps the double above it). */
export function nsToSeconds(ns: bigint): number {
  return Number(ns / 1_000_000_000n) + (Number((ns % 1_000_000_000n) / 1000n) + 0.5) / 1e6;
}
