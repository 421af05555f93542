import type { DataPlan } from './pages.js';

export type Kind = 'file' | 'dir' | 'symlink';

/** Attributes of an inode. Times in microseconds since the epoch (the precision the store can set). */
export interface Attrs {
  /** st_mode, file type bits included */
  mode: number;
  uid: number;
  gid: number;
  size: number;
  atimeUs: number;
  mtimeUs: number;
  ctimeUs: number;
}

/**
 * A place in the durable store: a path below the tree's root, or below a staging slot. A staging slot holds a
 * durable inode that has no durable name (yet): a file fsynced before its directory, a directory an entry was made
 * durable in before its own name, an unlinked file still open. The slot is named by the inode's id, which is unique
 * within one server run; staging is emptied at every start (after a power loss nothing names those inodes).
 */
export interface Loc {
  top: 'root' | number;
  path: readonly string[];
}

export function childLoc(parent: Loc, name: string): Loc {
  return { top: parent.top, path: [...parent.path, name] };
}

export function slotLoc(id: number): Loc {
  return { top: id, path: [] };
}

export interface StoredEntry {
  name: string;
  kind: Kind;
  attrs: Attrs;
  /** st_nlink as stored (for directories: 2 + subdirectories) */
  nlink: number;
  /** symlinks only */
  target?: string;
}

export interface StoreStatfs {
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  bsize: number;
}

/**
 * The durable state of a lossy disk: what is left after a power loss. The model (model.ts) is its only writer and
 * calls it only when something becomes durable; reads serve what the model does not hold in memory.
 *
 * Contract:
 * - Synchronous; a failure throws (a Node system error, which the FUSE request then returns as its errno).
 * - `create` makes an empty file, an empty directory or a symlink at `loc` (which must not exist) with `attrs` (mode,
 *   owner, atime and mtime; size and ctime are not set).
 * - `writeData` applies a DataPlan to the file at `loc` and then leaves its atime and mtime at `times`.
 * - `setAttrs` sets mode (not for symlinks), owner, atime and mtime. `setTimes` only the times.
 * - `move` renames; the destination must not exist. `remove` deletes recursively; a missing `loc` is no error.
 * - `clearStaging` deletes every staging slot.
 * - Nothing here changes the times of a parent directory on purpose; where the underlying store does (a real
 *   filesystem does on every entry change), the model puts them back with `setTimes`.
 */
export interface DurableStore {
  stat(loc: Loc): StoredEntry;
  list(loc: Loc): StoredEntry[];
  read(loc: Loc, buf: Buffer, bufOff: number, len: number, off: number): number;
  create(loc: Loc, kind: Kind, attrs: Attrs, target?: string): void;
  writeData(loc: Loc, plan: DataPlan, times: { atimeUs: number; mtimeUs: number }): void;
  setAttrs(loc: Loc, kind: Kind, attrs: Attrs): void;
  setTimes(loc: Loc, atimeUs: number, mtimeUs: number): void;
  move(from: Loc, to: Loc): void;
  remove(loc: Loc): void;
  clearStaging(): void;
  statfs(): StoreStatfs;
}
