/**
 * A change to a replicated directory, as the FUSE interception on PRIM produces it and the SECOND applies it.
 *
 * Paths:
 * - `dir` names the replicated directory exactly as in userconfig.xml (`<replicated dir="/srv/app/data">`); one stream
 *   per module carries the changes of all its directories, so their relative order is kept across directories.
 * - `path` (and `from`, `to`) are relative to that directory, normalized: components separated by one `/`, no `.` or
 *   `..`, no leading or trailing `/`, never empty. `.` alone names the directory itself (allowed only where the
 *   operation makes sense on it: chmod, chown, utimens, setxattr, removexattr, sync).
 * - Names are UTF-8 strings (as Node gives them); file names that are not valid UTF-8 cannot be replicated.
 *
 * Semantics (what the SECOND does, see ./apply.ts):
 * - The result of applying the same changes in the same order is the same tree as on PRIM: contents, sizes, modes,
 *   owners, symlinks and mtimes.
 * - `mode` values are the final permission bits as on PRIM (after the application's umask): the SECOND sets exactly
 *   those bits, whatever its own umask.
 * - `create`: the file did not exist (a regular file; `O_CREAT` on an existing file is an open, not a create).
 * - `utimens`: times are already resolved by PRIM (UTIME_NOW replaced by the time PRIM stored); `null` = UTIME_OMIT.
 * - mtimes: every change updates mtimes on the SECOND at the SECOND's own clock. To keep mtimes identical (which
 *   reintegration's size/mtime comparison relies on), the FUSE side sends a `utimens` with PRIM's times after the last
 *   change of a file (e.g. at flush/release) and of a directory whose entries changed. The stream itself never
 *   invents times.
 * - `chown`: -1 leaves the uid or gid unchanged.
 * - `sync` on the change (`'data'` for O_DSYNC, `'full'` for O_SYNC): in mode `none` the SECOND acknowledges the
 *   change only after it is durable there, like an explicit `sync` change.
 * - `sync` change: fsync (`datasync: false`) or fdatasync of `path` (a file or a directory); acknowledged in mode
 *   `none` only once everything before it that touched that file, and every directory entry changed since the last
 *   sync, is durable on the SECOND. With `syncfs` (PRIM's syncfs of the mount; `path` '.', `datasync` false): once
 *   every change before it in the stream is durable on the SECOND (a syncfs of the copy's filesystem).
 */
export type Change =
  | (ChangeBase & { op: 'write'; path: string; offset: number; data: Buffer })
  | (ChangeBase & { op: 'truncate'; path: string; size: number })
  | (ChangeBase & { op: 'create'; path: string; mode: number })
  | (ChangeBase & { op: 'mknod'; path: string; mode: number; rdev: number })
  | (ChangeBase & { op: 'mkdir'; path: string; mode: number })
  | (ChangeBase & { op: 'unlink'; path: string })
  | (ChangeBase & { op: 'rmdir'; path: string })
  | (ChangeBase & { op: 'rename'; from: string; to: string; flags: number })
  | (ChangeBase & { op: 'symlink'; target: string; path: string })
  | (ChangeBase & { op: 'link'; from: string; to: string })
  | (ChangeBase & { op: 'chmod'; path: string; mode: number })
  | (ChangeBase & { op: 'chown'; path: string; uid: number; gid: number })
  | (ChangeBase & { op: 'utimens'; path: string; atime: Timespec | null; mtime: Timespec | null })
  | (ChangeBase & { op: 'setxattr'; path: string; name: string; value: Buffer; flags: number })
  | (ChangeBase & { op: 'removexattr'; path: string; name: string })
  | (ChangeBase & { op: 'fallocate'; path: string; mode: number; offset: number; length: number })
  | (ChangeBase & { op: 'sync'; path: string; datasync: boolean; syncfs?: boolean });

export interface ChangeBase {
  /** the replicated directory, as written in userconfig.xml */
  dir: string;
  /** the application asked for this change to be durable before it returns (O_SYNC: 'full', O_DSYNC: 'data') */
  sync?: 'data' | 'full';
}

export type ChangeOp = Change['op'];

/** [seconds since the epoch, nanoseconds 0..999999999] */
export type Timespec = [sec: number, nsec: number];

/** rename(2) flags (linux/fs.h). */
export const RENAME_NOREPLACE = 1;
export const RENAME_EXCHANGE = 2;
export const RENAME_WHITEOUT = 4;

/** fallocate(2) modes (linux/falloc.h). */
export const FALLOC_FL_KEEP_SIZE = 0x01;
export const FALLOC_FL_PUNCH_HOLE = 0x02;
export const FALLOC_FL_COLLAPSE_RANGE = 0x08;
export const FALLOC_FL_ZERO_RANGE = 0x10;
export const FALLOC_FL_INSERT_RANGE = 0x20;
export const FALLOC_FL_UNSHARE_RANGE = 0x40;

/** The paths a change names (one, or two for rename and link), in the order [source, destination]. */
export function changePaths(c: Change): string[] {
  return c.op === 'rename' || c.op === 'link' ? [c.from, c.to] : [c.path];
}

/** Changes that add, remove or rename directory entries: their parent directories must be fsync'd to be durable. */
export function isNamespaceOp(op: ChangeOp): boolean {
  return op === 'create' || op === 'mknod' || op === 'mkdir' || op === 'unlink' || op === 'rmdir' || op === 'rename' ||
    op === 'symlink' || op === 'link';
}

/** A short human description of a change for logs and errors: `write data/a.db @4096 +512`. Never includes data. */
export function describeChange(c: Change): string {
  const q = (p: string) => JSON.stringify(p);
  switch (c.op) {
    case 'write':
      return `write ${q(c.path)} @${c.offset} +${c.data.length}`;
    case 'rename':
    case 'link':
      return `${c.op} ${q(c.from)} → ${q(c.to)}`;
    case 'truncate':
      return `truncate ${q(c.path)} to ${c.size}`;
    default:
      return `${c.op} ${q(c.path)}`;
  }
}
