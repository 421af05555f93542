/**
 * The replication hook of the FUSE passthrough: every change the passthrough makes to the backing store is shown to
 * a ChangeSink, after it succeeded locally and before the reply goes to the kernel (so before the application's
 * system call returns).
 *
 * Paths are relative to the mount root, '/'-separated, normalized (no '.', '..', empty or trailing components) and
 * never start with '/'. The mount root itself is ''. Names are valid UTF-8 (the passthrough refuses others).
 *
 * Changes to a file that is no longer reachable by any path (unlinked or replaced while open) are not reported: the
 * replica already removed it, and nothing written to it can ever be seen through a path again.
 *
 * FIFOs, sockets and device nodes are local-only (passthrough.ts): nothing about them is reported. A rename of one
 * over a reported file is reported as the unlink of that file; a rename of a reported object over one is an
 * ordinary rename (the replica has nothing at the destination).
 *
 * With the kernel's writeback cache (mountPassthrough `writebackCache`), "before the reply" still holds, but a
 * WRITE is the kernel writing back cached pages, not the application's write(2): it comes later, in page-sized
 * pieces merged or split at the kernel's choice, possibly after a rename (then under the new path) or an ftruncate
 * of the same file, and the kernel's mtime/ctime follow as a `utimens`. The kernel writes back and waits for every
 * dirty page of a file before it sends the FSYNC, so every byte written before an fsync reaches onChange before the
 * onSync of that fsync.
 */

/** Seconds and nanoseconds since the epoch (a struct timespec). */
export interface Timespec {
  sec: number;
  nsec: number;
}

export type Change =
  /** `data` is only valid during the onChange call (it views the request buffer): copy it to keep it. */
  | { op: 'write'; path: string; offset: number; data: Uint8Array }
  | { op: 'truncate'; path: string; size: number }
  /**
   * A new regular file (CREATE) or special file (MKNOD). `mode` includes the file type bits (S_IFREG, S_IFIFO, …);
   * `rdev` is the device number for S_IFCHR/S_IFBLK (Linux new_encode_dev), else 0. `uid`/`gid` are the owner the
   * file got (the caller, or the directory's group when the directory is setgid).
   */
  | { op: 'create' | 'mknod'; path: string; mode: number; rdev: number; uid: number; gid: number }
  | { op: 'mkdir'; path: string; mode: number; uid: number; gid: number }
  | { op: 'unlink'; path: string }
  | { op: 'rmdir'; path: string }
  /** `flags`: renameat2 flags (0, or RENAME_NOREPLACE = 1). */
  | { op: 'rename'; from: string; to: string; flags: number }
  | { op: 'symlink'; target: string; path: string; uid: number; gid: number }
  /** Never emitted in this version: hard links are refused with EPERM (see passthrough.ts). */
  | { op: 'link'; existing: string; path: string }
  /** `mode`: permission bits only (mode & 0o7777). */
  | { op: 'chmod'; path: string; mode: number }
  /** -1 means "unchanged", as for chown(2). */
  | { op: 'chown'; path: string; uid: number; gid: number }
  /** null means "unchanged" (UTIME_OMIT); UTIME_NOW is already resolved to the server's clock. */
  | { op: 'utimens'; path: string; atime: Timespec | null; mtime: Timespec | null }
  /** Never emitted in this version: extended attributes are not supported (see passthrough.ts). */
  | { op: 'setxattr'; path: string; name: string; value: Uint8Array; flags: number }
  | { op: 'removexattr'; path: string; name: string }
  /** `mode`: fallocate(2) mode bits (KEEP_SIZE = 1, PUNCH_HOLE = 2, ZERO_RANGE = 0x10). */
  | { op: 'fallocate'; path: string; mode: number; offset: number; length: number };

export type ChangeOp = Change['op'];

/** Observes every change the passthrough makes to the backing store, after it succeeded locally and before the reply goes to the kernel. */
export interface ChangeSink {
  /** Must return before the reply is sent; may block (the worker waits). Throwing fails the operation with EIO. */
  onChange(change: Change): void;
  /** fsync/fdatasync/O_SYNC write: return only when the change is durable where it must be. */
  onSync(path: string, datasync: boolean): void;
  /**
   * Optional split of onSync: `startSync` before the local fsync, `finishSync(token)` after it (it blocks like
   * onSync and throws like it), so both run at the same time. Every startSync is followed by its finishSync.
   */
  startSync?(path: string, datasync: boolean): unknown;
  finishSync?(token: unknown): void;
  /**
   * Optional: take over the reply of this fsync (request `unique`), before the local fsync. Returns false when it
   * does not (the caller then fsyncs and calls onSync); true means the sink's side starts its sync now, the caller
   * fsyncs locally and reports the result with `syncedLocally` (exactly once), and the sink's side replies to the
   * kernel once both are done: the local errno if the local fsync failed, else EIO if its own sync failed, else 0.
   * The caller must not reply.
   */
  deferSync?(path: string, datasync: boolean, unique: number): boolean;
  /** The local fsync of deferred sync `unique` ended: 0, or the positive errno it failed with. */
  syncedLocally?(unique: number, errno: number): void;
  /**
   * syncfs of the mount, after the backing filesystem's syncfs succeeded: return only when every change reported
   * before it is durable where it must be. Absent: nothing beyond the local syncfs is needed.
   */
  onSyncfs?(): void;
  /**
   * Optional: take over a syncfs (request `unique`) whole: the sink's side makes the backing filesystem durable
   * (syncfs) and does what onSyncfs does, then replies (EIO if either failed). False: the caller does it itself.
   */
  deferSyncfs?(unique: number): boolean;
}

/**
 * A ChangeSink that lives on the main thread, where work is asynchronous: the worker stays blocked until the promise
 * settles (sink-bridge.ts). A rejection fails the operation with EIO, like a throw. Every ChangeSink is one.
 */
export interface AsyncChangeSink {
  onChange(change: Change): void | Promise<void>;
  onSync(path: string, datasync: boolean): void | Promise<void>;
  /**
   * Optional split of onSync for deferred fsync replies: resolves once the sync is placed in order among the
   * changes (later changes may then be handled), with `done`, which settles when it is durable where it must be.
   */
  syncInOrder?(path: string, datasync: boolean): Promise<{ done: Promise<void> }>;
  /**
   * syncfs of the mount: settle once every change handed to the sink before it is durable where it must be (the
   * SECOND's copy, in mode none). Later changes are handed over only after it settled. Absent: nothing to do.
   */
  onSyncfs?(): void | Promise<void>;
}

/** Accepts everything. The passthrough treats it as "no sink" and skips building changes altogether. */
export const noopSink: ChangeSink = Object.freeze({
  onChange() {},
  onSync() {},
});

export type Recorded = Change | { op: 'sync'; path: string; datasync: boolean } | { op: 'syncfs' };

/** Keeps every change (write data copied) in order, for tests. */
export class RecordingSink implements ChangeSink {
  readonly events: Recorded[] = [];
  onChange(change: Change): void {
    this.events.push(change.op === 'write' ? { ...change, data: Uint8Array.from(change.data) } : change);
  }
  onSync(path: string, datasync: boolean): void {
    this.events.push({ op: 'sync', path, datasync });
  }
  onSyncfs(): void {
    this.events.push({ op: 'syncfs' });
  }
  /** the recorded changes without write data, as compact one-line strings: "write a.txt @0 +5", "rename a → b" */
  summary(): string[] {
    return this.events.map(describeChange);
  }
  clear(): void {
    this.events.length = 0;
  }
}

/** One line per change, for logs and test assertions. */
export function describeChange(c: Recorded): string {
  const oct = (m: number) => m.toString(8);
  switch (c.op) {
    case 'write': return `write ${c.path} @${c.offset} +${c.data.byteLength}`;
    case 'truncate': return `truncate ${c.path} ${c.size}`;
    case 'create': case 'mknod': return `${c.op} ${c.path} ${oct(c.mode)}${c.rdev ? ` rdev ${c.rdev}` : ''} ${c.uid}:${c.gid}`;
    case 'mkdir': return `mkdir ${c.path} ${oct(c.mode)} ${c.uid}:${c.gid}`;
    case 'unlink': case 'rmdir': return `${c.op} ${c.path}`;
    case 'rename': return `rename ${c.from} → ${c.to}${c.flags ? ` flags ${c.flags}` : ''}`;
    case 'symlink': return `symlink ${c.path} → ${c.target} ${c.uid}:${c.gid}`;
    case 'link': return `link ${c.path} = ${c.existing}`;
    case 'chmod': return `chmod ${c.path} ${oct(c.mode)}`;
    case 'chown': return `chown ${c.path} ${c.uid}:${c.gid}`;
    case 'utimens': {
      const t = (x: Timespec | null) => (x ? `${x.sec}.${String(x.nsec).padStart(9, '0')}` : 'omit');
      return `utimens ${c.path} ${t(c.atime)} ${t(c.mtime)}`;
    }
    case 'setxattr': return `setxattr ${c.path} ${c.name}`;
    case 'removexattr': return `removexattr ${c.path} ${c.name}`;
    case 'fallocate': return `fallocate ${c.path} mode ${c.mode} @${c.offset} +${c.length}`;
    case 'sync': return `${c.datasync ? 'fdatasync' : 'fsync'} ${c.path}`;
    case 'syncfs': return 'syncfs';
  }
}
