import type { BigIntStats } from 'node:fs';
import { promises as fsp } from 'node:fs';
import { run } from '../../platform/exec.js';

/**
 * The file system seam of the applier (STYLE §2): the few calls the SECOND makes on its copy. `realFs` is
 * node:fs/promises; tests wrap it to inject errors (ENOSPC, EIO from fsync) or observe ordering. Errors are thrown
 * as Node throws them (an Error with `code` and a negative `errno`).
 */
export interface ApplyFs {
  open(path: string, flags: number, mode?: number): Promise<ApplyHandle>;
  mkdir(path: string, mode: number): Promise<void>;
  unlink(path: string): Promise<void>;
  rmdir(path: string): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  symlink(target: string, path: string): Promise<void>;
  link(existing: string, path: string): Promise<void>;
  lchown(path: string, uid: number, gid: number): Promise<void>;
  lutimes(path: string, atime: number, mtime: number): Promise<void>;
  lstat(path: string): Promise<BigIntStats>;
  /** syncfs(2) of the filesystem holding `path` (a `sync` change with `syncfs`) */
  syncfs(path: string): Promise<void>;
}

/** An open file or directory (a subset of fs/promises FileHandle). */
export interface ApplyHandle {
  readonly fd: number;
  write(buf: Buffer, offset: number, length: number, position: number): Promise<{ bytesWritten: number }>;
  truncate(len: number): Promise<void>;
  chmod(mode: number): Promise<void>;
  chown(uid: number, gid: number): Promise<void>;
  utimes(atime: number, mtime: number): Promise<void>;
  sync(): Promise<void>;
  datasync(): Promise<void>;
  stat(opts: { bigint: true }): Promise<BigIntStats>;
  close(): Promise<void>;
}

export const realFs: ApplyFs = {
  open: (p, flags, mode) => fsp.open(p, flags, mode) as Promise<ApplyHandle>,
  mkdir: async (p, mode) => {
    await fsp.mkdir(p, { mode });
  },
  unlink: (p) => fsp.unlink(p),
  rmdir: (p) => fsp.rmdir(p),
  rename: (a, b) => fsp.rename(a, b),
  symlink: (target, p) => fsp.symlink(target, p),
  link: (a, b) => fsp.link(a, b),
  lchown: (p, uid, gid) => fsp.lchown(p, uid, gid),
  lutimes: (p, a, m) => fsp.lutimes(p, a, m),
  lstat: (p) => fsp.lstat(p, { bigint: true }),
  // Node has no syncfs: coreutils `sync -f` (its failure is an error with the errno of EIO)
  syncfs: async (p) => {
    const r = await run('sync', ['-f', '--', p], { reject: false, timeoutMs: 600_000 });
    if (r.code !== 0) throw Object.assign(new Error(`sync -f ${p} failed: ${r.stderr.trim()}`), { code: 'EIO', errno: -5 });
  },
};
