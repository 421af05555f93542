import { constants as C } from 'node:fs';
import type { NotReplicated } from '../../config/types.js';
import { UserError } from '../../errors.js';
import type { ApplyFs, ApplyHandle } from './fs.js';

/**
 * Paths that arrive from the wire, checked against the SECOND's copy root, and the `<notreplicated>` filter.
 *
 * Two layers:
 * 1. `checkRelPath` (pure): the syntax a path must have before anything touches the disk. Refused: non-strings,
 *    empty paths, absolute paths, empty components (`a//b`, trailing `/`), `.` and `..` components, NUL, names over
 *    NAME_MAX bytes, paths over PATH_MAX - 1 bytes (UTF-8). `.` alone is the root, only where the caller allows it.
 *    Newlines and any other byte are legal in Linux names and are accepted; messages quote paths with JSON.stringify.
 *    No Unicode normalization or case folding is ever applied: `é` (NFC) and `é` (NFD), or `A` and `a`, stay distinct
 *    files, exactly as on PRIM.
 * 2. `openParent` (I/O): walks the parent directories from an open handle on the root, one component at a time, each
 *    opened with O_DIRECTORY|O_NOFOLLOW relative to the previous directory's descriptor (through /proc/self/fd/N).
 *    A parent that is a symlink (ENOTDIR or ELOOP), not a directory, or missing stops the walk. The operation then
 *    names its target as `/proc/self/fd/<parent fd>/<name>`: the kernel resolves that from the directory we hold
 *    open, not from the path again.
 *
 * Check-then-use: there is none for parents. Each parent is opened (not lstat'ed) and used by descriptor, so swapping
 * a parent for a symlink after it was checked changes nothing: the operation happens in the directory that was
 * opened, which is inside the root. For the last component, operations that can avoid following a symlink do
 * (O_NOFOLLOW, O_EXCL, lchown, lutimes, unlink, rmdir, rename, link and symlink never follow it). What remains is a
 * window inside the final directory, e.g. a file swapped for a hard link to a file elsewhere on the same filesystem
 * between two changes. Only a process writing into the SECOND's copy could do that, and the copy is not writable by
 * applications while the node is SECOND (ARCHITECTURE "Replication contract"); the applier itself runs one change at a
 * time, so a malicious sender cannot race its own changes. Hard links created BY the stream (`link`) are checked like
 * any path (both ends inside the root), and device nodes and FIFOs are never created from the wire.
 * Linux-only: needs /proc mounted (always true where FUSE runs).
 */

export const NAME_MAX = 255;
/** PATH_MAX includes the terminating NUL, so a path has at most 4095 bytes. */
export const PATH_MAX = 4096;

export type PathCheck =
  | { ok: true; parts: string[] }
  | { ok: false; code: 'EINVAL' | 'ENAMETOOLONG'; reason: string };

/** Syntax check of a relative path from the wire; `parts` is [] for the root (`.`, only when `allowRoot`). */
export function checkRelPath(p: unknown, opts: { allowRoot?: boolean } = {}): PathCheck {
  const bad = (reason: string, code: 'EINVAL' | 'ENAMETOOLONG' = 'EINVAL'): PathCheck => ({ ok: false, code, reason });
  if (typeof p !== 'string') return bad('path is not a string');
  if (p === '') return bad('empty path');
  const q = JSON.stringify(p.length > 300 ? `${p.slice(0, 300)}…` : p);
  if (p.includes('\0')) return bad(`path ${q} contains NUL`);
  if (Buffer.byteLength(p, 'utf8') > PATH_MAX - 1) return bad(`path ${q} is longer than ${PATH_MAX - 1} bytes`, 'ENAMETOOLONG');
  if (p === '.') return opts.allowRoot ? { ok: true, parts: [] } : bad('this operation cannot apply to the replicated directory itself');
  if (p.startsWith('/')) return bad(`path ${q} is absolute; paths are relative to the replicated directory`);
  const parts = p.split('/');
  for (const part of parts) {
    if (part === '') return bad(`path ${q} has an empty component`);
    if (part === '.' || part === '..') return bad(`path ${q} has a "${part}" component`);
    if (Buffer.byteLength(part, 'utf8') > NAME_MAX) return bad(`path ${q} has a name longer than ${NAME_MAX} bytes`, 'ENAMETOOLONG');
  }
  // a lone surrogate would be written as U+FFFD: the name on disk would not be the name that was sent
  if (!isWellFormed(p)) return bad(`path ${q} is not valid Unicode`);
  return { ok: true, parts };
}

function isWellFormed(s: string): boolean {
  return Buffer.from(s, 'utf8').toString('utf8') === s;
}

/** Why a symlink target from the wire is unusable (empty, NUL, over PATH_MAX - 1 bytes), or null. The target is data: it
 * may point anywhere, because nothing ever follows a symlink in the copy. */
export function checkSymlinkTarget(target: string): string | null {
  if (target === '') return 'empty symlink target';
  if (target.includes('\0')) return 'symlink target contains NUL';
  if (Buffer.byteLength(target, 'utf8') > PATH_MAX - 1) return `symlink target longer than ${PATH_MAX - 1} bytes`;
  return null;
}

/** A parent directory opened by `openParent`; `target` names the last component through the held descriptor. */
export interface OpenedParent {
  /** the parent directory (the root itself for a one-component path, or for the root) */
  dir: ApplyHandle;
  /** the last component, or null when the path is the root */
  name: string | null;
  /** `/proc/self/fd/<dir fd>/<name>`: names the target without resolving any parent again (root: the dir's fd path) */
  target: string;
  /** closes every handle the walk opened (never the root handle) */
  close(): Promise<void>;
}

const DIR_FLAGS = C.O_RDONLY | C.O_DIRECTORY | C.O_NOFOLLOW;

/** `/proc/self/fd/<fd>[/<name>]` */
export function viaFd(h: ApplyHandle, name?: string): string {
  return name === undefined ? `/proc/self/fd/${h.fd}` : `/proc/self/fd/${h.fd}/${name}`;
}

/**
 * Opens every parent of `parts` below `root` (an open directory handle), refusing symlinks and non-directories.
 * Rejects with the fs error (ENOENT, ENOTDIR, ELOOP, EACCES…); a symlinked parent gives ENOTDIR or ELOOP. Every
 * handle opened on the way is closed on failure, and by `close()` on success.
 */
export async function openParent(fs: ApplyFs, root: ApplyHandle, parts: string[]): Promise<OpenedParent> {
  if (parts.length === 0) return { dir: root, name: null, target: viaFd(root), close: async () => {} };
  const opened: ApplyHandle[] = [];
  const closeAll = async () => {
    for (const h of opened.reverse()) await h.close().catch(() => {});
  };
  let dir = root;
  try {
    for (const comp of parts.slice(0, -1)) {
      dir = await fs.open(viaFd(dir, comp), DIR_FLAGS);
      opened.push(dir);
    }
  } catch (e) {
    await closeAll();
    throw e;
  }
  const name = parts[parts.length - 1]!;
  return { dir, name, target: viaFd(dir, name), close: closeAll };
}

/**
 * The `<notreplicated>` rules of one replicated directory.
 * - `path="p"`: `p` and everything below it (component-wise: `logs` excludes `logs` and `logs/a`, not `logs2`).
 * - `regexpath="re"`: every path whose relative path matches `re` (JavaScript RegExp, no flags), and everything below
 *   a matching directory.
 * - `regexpath="!re"`: only files whose relative path matches one of the `!` rules are replicated. Directories are
 *   never excluded by `!` rules, so the directories above a replicated file exist on both nodes.
 * The replicated directory itself (`.`) is never excluded.
 */
export interface PathFilter {
  excluded(rel: string, isDir: boolean): boolean;
}

export function compileFilter(rules: NotReplicated[]): PathFilter {
  const prefixes: string[] = [];
  const excludes: RegExp[] = [];
  const only: RegExp[] = [];
  for (const r of rules) {
    if (r.path !== undefined) {
      prefixes.push(r.path);
    } else if (r.regexpath !== undefined) {
      const neg = r.regexpath.startsWith('!');
      let re: RegExp;
      try {
        re = new RegExp(neg ? r.regexpath.slice(1) : r.regexpath);
      } catch (e) {
        throw new UserError(`notreplicated regexpath "${r.regexpath}" is not a valid regular expression (${(e as Error).message}). Fix it in userconfig.xml.`);
      }
      (neg ? only : excludes).push(re);
    }
  }
  return {
    excluded(rel, isDir) {
      if (rel === '.') return false;
      let i = -1;
      do {
        i = rel.indexOf('/', i + 1);
        const prefix = i < 0 ? rel : rel.slice(0, i);
        if (prefixes.includes(prefix)) return true;
        if (excludes.some((re) => re.test(prefix))) return true;
      } while (i >= 0);
      return !isDir && only.length > 0 && !only.some((re) => re.test(rel));
    },
  };
}

/** A filter that excludes nothing. */
export const NO_EXCLUDES: PathFilter = { excluded: () => false };
