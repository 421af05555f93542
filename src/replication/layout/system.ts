import fsp from 'node:fs/promises';
import { run, type RunFn } from '../../platform/exec.js';
import { mountPassthrough, type FuseStats, type MountPassthroughOptions } from '../fuse/index.js';
// The one helper taken from below fuse/index.ts: the fusectl abort. Keep it to this line.
import { abortFuseConnection } from '../fuse/mount.js';
import { linuxProcSource, type ProcSource } from './holders.js';

/**
 * Everything the mount layout does to the system, as one narrow seam (the fake is `./fake.ts`).
 *
 * Contract:
 * - All of it is asynchronous; nothing here does I/O on a replicated directory (mountinfo and fusectl are not FUSE).
 * - `run` is used for `mount` and `umount` only, always with `--no-canonicalize` (the layout passes canonical paths,
 *   and umount(8) must not stat a possibly dead FUSE mount).
 * - `mountPassthrough` resolves once the FUSE mount answers; its `unmount()` always leaves the mount gone.
 * - `abortFuseConnection` fails every pending and future request of that connection with ENOTCONN.
 * - `proc` shows the processes (and loop/swap files) that could hold a replicated dir (holders.ts); read-only.
 */
export interface LayoutSystem {
  run: RunFn;
  proc: ProcSource;
  readMountinfo(): Promise<string>;
  mountPassthrough(o: MountPassthroughOptions): Promise<LayoutFuseMount>;
  abortFuseConnection(connection: number): Promise<void>;
}

export interface LayoutFuseMount {
  readonly connection: number;
  unmount(): Promise<void>;
  stats?(): FuseStats;
  /** mutating operations wait from when this resolves until `thaw()` (fuse/index.ts) */
  freeze?(): Promise<void>;
  thaw?(): void;
  streamWrites?(on: boolean): void;
  sinkDrained?(): Promise<void>;
}

export const linuxSystem: LayoutSystem = {
  run,
  proc: linuxProcSource,
  readMountinfo: () => fsp.readFile('/proc/self/mountinfo', 'utf8'),
  mountPassthrough,
  abortFuseConnection: (connection) => abortFuseConnection(connection),
};
