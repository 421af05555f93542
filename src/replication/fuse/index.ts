import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { NotReplicated } from '../../config/types.js';
import { UserError } from '../../errors.js';
import { abortFuseConnection, findMount, isFuseMounted, mountFuse, openFuseDevice, unmountFuse } from './mount.js';
import { DEFAULT_INIT_FLAGS, InitFlag } from './protocol.js';
import { FuseServer, type FuseReady, type FuseStats } from './server.js';
import type { AsyncChangeSink } from './sink.js';

export type { AsyncChangeSink, Change, ChangeSink, Timespec } from './sink.js';
export { noopSink, RecordingSink, describeChange } from './sink.js';
export type { FuseStats } from './server.js';

/**
 * Serves `backing` at `mountpoint` through the tandem FUSE passthrough (root only).
 *
 * Contract:
 * - Resolves once the kernel's INIT is answered: from then on every operation on the mount is applied to the backing
 *   directory, and every successful change is shown to `sink` before the application's system call returns.
 *   With `writebackCache` a write(2) (or a store through a shared mmap) returns once the kernel has cached it: its
 *   bytes reach the sink when the kernel writes the pages back, at the latest before an fsync/fdatasync/close (or a
 *   munmap of the last mapping) of that file returns, and always before the onSync of that fsync. Other changes
 *   still reach the sink before their system call returns. The kernel then owns the file times: a cached WRITE
 *   that lands after the kernel's time update (its background writeback lets one overtake the other) gets the
 *   kernel's mtime back, in the backing store and at the sink (passthrough.ts, "Writeback cache"). Off by default
 *   (a write is durable only at fsync); the product does not turn it on.
 * - `mountpoint` may be `backing` itself (mounted over it): the server reaches the backing store through a directory
 *   fd opened before the mount.
 * - The calling process must never do synchronous I/O on the mount (the server runs in one of its threads); async
 *   fs calls or child processes are fine.
 * - syncfs(2) and `sync -f` on the mount (and sync(2)) reach the server only when the mount is `fuseblk`
 *   (mount.ts): with `syncfs` (the default) it is, over a loop device of a small image file made in `scratchDir`
 *   and deleted once mounted; where that fails (no loop devices) the mount is plain `fuse`, syncfs on it returns at
 *   once without making anything durable, and it is logged. `PassthroughMount.syncfs` tells which.
 * - `unmount()` always leaves the mount gone from /proc/mounts: umount, else umount -l; if the server does not stop
 *   (or the umount does not return: a fuseblk umount waits for the server's FUSE_DESTROY reply), blocked sink
 *   calls are released, the connection is aborted through fusectl, and the worker is terminated.
 */
export interface MountPassthroughOptions {
  backing: string;
  mountpoint: string;
  /** default: none (no change is built or sent anywhere) */
  sink?: AsyncChangeSink;
  /** fail an operation with EIO when the sink has not answered after this long; default 0 = wait forever */
  sinkTimeoutMs?: number;
  log?: (line: string) => void;
  /** bytes per WRITE request, a multiple of 4096 between 128 KiB and 1 MiB; default 1 MiB */
  maxWrite?: number;
  /** ask for FUSE_WRITEBACK_CACHE (see the contract above and protocol.ts); default false */
  writebackCache?: boolean;
  /** INIT max_background / congestion_threshold; default 0 = the kernel's (12 / 9) */
  maxBackground?: number;
  congestionThreshold?: number;
  /**
   * fdatasync a backing file in a helper thread each time this many bytes were written to it through one handle
   * since its last fsync (write-behind.ts), so a later fsync finds most of it on disk; 0 = never. Default
   * DEFAULT_WRITE_BEHIND_BYTES.
   */
  writeBehindBytes?: number;
  /** the directory's `<notreplicated>` rules: a rename across them fails with EXDEV (the SECOND could not apply it) */
  notReplicated?: NotReplicated[];
  /** kernel cache timeouts, seconds; default 1 */
  entryTimeout?: number;
  attrTimeout?: number;
  /**
   * Before a file's data changes in place, its path is made durable in this activity log (activity-log.ts): the
   * directory (on the node's own disk) and the epoch counter the caller moves on at sync points. Absent: none.
   */
  activity?: { dir: string; epoch: SharedArrayBuffer };
  /** mount as fuseblk so that syncfs(2) reaches the server (see the contract); default true */
  syncfs?: boolean;
  /** where the loop device's image file is made (a local filesystem, not a FUSE mount); default os.tmpdir() */
  scratchDir?: string;
}

export interface PassthroughMount {
  readonly backing: string;
  readonly mountpoint: string;
  /** the fusectl connection number, for diagnostics */
  readonly connection: number;
  readonly protocol: FuseReady;
  /** the mount is fuseblk: syncfs(2) on it reaches the server and is made durable (see the contract) */
  readonly syncfs: boolean;
  /**
   * Closes the freeze gate (freeze-gate.ts) and resolves once the backing directory is quiescent: no mutating
   * operation (dispatch.ts `mutates`: every change to the backing store, and fsync/fsyncdir) is between starting
   * its change and sending its reply — one waiting for the sink or a host call is waited for — and none starts until
   * `thaw()`. Mutating requests that arrive meanwhile wait in the server (the application's call blocks; nothing
   * fails); read-only ones are served as usual. Calling it again while frozen returns the same promise. It also
   * resolves, without that guarantee, if `thaw()` or `unmount()` comes first, and at once after `unmount()`.
   */
  freeze(): Promise<void>;
  /** Opens the gate: held operations run in arrival order, before newer mutating ones. A no-op when not frozen. */
  thaw(): void;
  /** whether the gate is closed (freeze() called, thaw() not yet) */
  readonly frozen: boolean;
  /**
   * With `true`, a data write is handed to the sink without waiting for it (the sink queues it in order and its
   * next answered call covers it); the sink must then accept writes it cannot refuse (they already returned). Off by
   * default.
   */
  streamWrites(on: boolean): void;
  /** resolves once the sink handled every write streamed so far */
  sinkDrained(): Promise<void>;
  /** Also opens the freeze gate first, for good, so held operations finish and the unmount does not hang. */
  unmount(): Promise<void>;
  stats(): FuseStats;
}

/** 8 MiB: the bench's 256 MiB write + fsync gains most from 4–32 MiB; files written in smaller amounts between fsyncs never trigger it. */
export const DEFAULT_WRITE_BEHIND_BYTES = 8 << 20;

export async function mountPassthrough(o: MountPassthroughOptions): Promise<PassthroughMount> {
  const log = o.log ?? (() => {});
  const maxWrite = o.maxWrite ?? 1 << 20;
  if (maxWrite % 4096 !== 0 || maxWrite < 128 * 1024 || maxWrite > 1 << 20) {
    throw new UserError(`maxWrite ${maxWrite} is not a multiple of 4096 between 131072 and 1048576.`);
  }
  const backing = realDir(o.backing, 'backing directory');
  const mountpoint = realDir(o.mountpoint, 'mount point');
  if (isFuseMounted(mountpoint)) throw new UserError(`${mountpoint} is already a FUSE mount. Unmount it first (umount ${mountpoint}).`);

  const dirfd = fs.openSync(backing, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  let fd: number;
  try {
    fd = openFuseDevice();
  } catch (err) {
    fs.closeSync(dirfd);
    throw new UserError(`cannot open /dev/fuse: ${(err as Error).message}. Run as root with the fuse module loaded (modprobe fuse).`);
  }
  let syncfs = false;
  try {
    if (o.syncfs ?? true) syncfs = await mountBlock(fd, mountpoint, o.scratchDir ?? os.tmpdir(), log);
    if (!syncfs) await mountFuse(fd, mountpoint, { fsname: 'tandemfs', subtype: 'tandem' });
  } catch (err) {
    fs.closeSync(fd);
    fs.closeSync(dirfd);
    throw err;
  }
  const connection = findMount(mountpoint)?.connection ?? -1;
  const server = new FuseServer({
    fd, dirfd, maxWrite, initFlags: DEFAULT_INIT_FLAGS | (o.writebackCache ? InitFlag.WRITEBACK_CACHE : 0),
    maxBackground: o.maxBackground, congestionThreshold: o.congestionThreshold, sink: o.sink, sinkTimeoutMs: o.sinkTimeoutMs, notReplicated: o.notReplicated,
    writeBehindBytes: o.writeBehindBytes ?? DEFAULT_WRITE_BEHIND_BYTES,
    ...(o.activity ? { activity: o.activity } : {}),
    entryTimeout: o.entryTimeout, attrTimeout: o.attrTimeout, mountpoint, log,
  });

  void server.stopped.then((reason) => log(`FUSE server for ${mountpoint} stopped: ${reason}`));

  let unmounting: Promise<void> | null = null;
  const unmount = () => (unmounting ??= stop());
  async function stop(): Promise<void> {
    server.closeGate();
    try {
      // a fuseblk umount waits for the server's DESTROY reply: never wait for it alone
      const unmounted = isFuseMounted(mountpoint) ? unmountFuse(mountpoint, { log }) : Promise.resolve('clean');
      unmounted.catch(() => {});
      if (!(await settles(Promise.all([unmounted, server.stopped]), 5000))) {
        log(`FUSE server for ${mountpoint} did not stop; releasing its sink and aborting connection ${connection}`);
        server.release();
        if (connection >= 0) await abortFuseConnection(connection).catch((err: Error) => log(`fusectl abort failed: ${err.message}`));
        if (!(await settles(server.stopped, 5000))) await server.terminate();
      }
      await unmounted;
      if (isFuseMounted(mountpoint)) await unmountFuse(mountpoint, { log });
    } finally {
      server.release();
      closeQuietly(fd);
      closeQuietly(dirfd);
    }
  }

  let protocol: FuseReady;
  try {
    protocol = await Promise.race([
      server.ready,
      new Promise<never>((_, rej) => setTimeout(() => rej(new Error('FUSE INIT did not arrive within 10 s')), 10_000).unref()),
    ]);
  } catch (err) {
    await unmount();
    throw err;
  }
  log(`mounted ${backing} at ${mountpoint} (FUSE 7.${protocol.minor}, kernel 7.${protocol.kernelMinor}, max_write ${protocol.maxWrite})`);
  return {
    backing, mountpoint, connection, protocol, syncfs, unmount, stats: () => server.stats(),
    freeze: () => server.freeze(), thaw: () => server.thaw(), get frozen() { return server.frozen; },
    streamWrites: (on: boolean) => server.streamWrites(on), sinkDrained: () => server.sinkDrained(),
  };
}

/**
 * Mounts fuseblk over a loop device of a fresh 64 KiB image in `dir` (deleted again: the loop device keeps it while
 * the superblock lives). False, and nothing mounted, when that cannot be done here (no loop device, no fuseblk).
 */
async function mountBlock(fd: number, mountpoint: string, dir: string, log: (l: string) => void): Promise<boolean> {
  const image = path.join(dir, `tandem-fuseblk-${randomBytes(6).toString('hex')}.img`);
  try {
    await fsp.writeFile(image, '', { mode: 0o600 });
    await fsp.truncate(image, 64 * 1024);
    await mountFuse(fd, mountpoint, { subtype: 'tandem', blockImage: image });
    return true;
  } catch (err) {
    log(`cannot mount ${mountpoint} as fuseblk over a loop device (${(err as Error).message.trim()}); mounting it as plain fuse: ` +
      'syncfs(2) and sync -f on it will return without making anything durable (fsync and fdatasync still do)');
    return false;
  } finally {
    await fsp.unlink(image).catch(() => {});
  }
}

function realDir(p: string, what: string): string {
  let real: string;
  try {
    real = fs.realpathSync(p);
  } catch {
    throw new UserError(`${what} ${p} does not exist. Create it first.`);
  }
  if (!fs.statSync(real).isDirectory()) throw new UserError(`${what} ${p} is not a directory.`);
  return real;
}

function closeQuietly(fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {
    // already closed
  }
}

function settles(p: Promise<unknown>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    p.then(() => { clearTimeout(t); resolve(true); }, () => { clearTimeout(t); resolve(true); });
  });
}
