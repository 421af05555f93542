import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { ExternalError } from '../../errors.js';
import { formatCommand, run as realRun, type RunFn } from '../../platform/exec.js';

/**
 * Mounting a FUSE filesystem served by this process, without libfuse or fusermount (root only: Node cannot receive
 * fusermount's SCM_RIGHTS fd).
 *
 * Contract:
 * - `openFuseDevice` opens /dev/fuse read-write with O_CLOEXEC (libuv's default), so children never inherit it.
 * - `mountFuse` runs `mount -i -t fuse -o fd=3,…` asynchronously with the device fd as the child's fd 3 (`-i`: no
 *   /sbin/mount.fuse helper). It uses child_process.spawn, not platform/exec's run(), because run() cannot hand a
 *   file descriptor to the child. Reading the device before that child exits fails with EPERM, so start the server
 *   only after this resolves; mount(2) does not wait for INIT.
 * - With `blockImage` it mounts `fuseblk` instead, over a loop device that mount(8) makes of that image file
 *   (`-o loop`, with autoclear: the loop device goes with the superblock): the kernel forwards syncfs(2) as
 *   FUSE_SYNCFS only to fuseblk (and virtiofs) servers (Linux 6.18; plain fuse mounts answer syncfs at once). The
 *   server never reads the device. A fuseblk superblock also sends FUSE_DESTROY, synchronously, when it goes.
 * - Nothing here touches the mount synchronously. The few synchronous calls read /proc/self/mountinfo or write the
 *   fusectl abort file: neither goes through the FUSE connection.
 * - `unmountFuse` tries `umount`, then `umount -l`; both with --no-canonicalize, so umount(8) does not stat a
 *   possibly hung mount. `abortFuseConnection` is the last resort for a hung server (fusectl `abort`).
 */

const FUSECTL = '/sys/fs/fuse/connections';

export function openFuseDevice(): number {
  return fs.openSync('/dev/fuse', fs.constants.O_RDWR);
}

export interface MountFuseOptions {
  /** shown as the source in /proc/mounts */
  fsname?: string;
  /** shown as fuse.<subtype> in /proc/mounts */
  subtype?: string;
  /** let other users than root use the mount (needs root); default true */
  allowOther?: boolean;
  timeoutMs?: number;
  /** mount `fuseblk` over a loop device of this image file (see the contract); default: plain `fuse` */
  blockImage?: string;
  /**
   * argv that `mount` runs under, e.g. `['nsenter', '-t', '<pid>', '-m', '--']` to mount in another process's mount
   * namespace (the lab's lossy disks); the device fd still reaches `mount` as fd 3. Default: none.
   */
  via?: string[];
}

export async function mountFuse(fd: number, mountpoint: string, opts: MountFuseOptions = {}): Promise<void> {
  const options = [
    'fd=3', 'rootmode=40000', 'user_id=0', 'group_id=0', 'default_permissions',
    ...(opts.allowOther === false ? [] : ['allow_other']),
    ...(opts.subtype ? [`subtype=${opts.subtype}`] : []),
  ].join(',');
  const args = opts.blockImage
    ? ['-i', '-t', 'fuseblk', '-o', `loop,${options},blksize=4096`, opts.blockImage, mountpoint]
    : ['-i', '-t', 'fuse', '-o', options, opts.fsname ?? 'tandemfs', mountpoint];
  const argv = [...(opts.via ?? []), 'mount', ...args];
  const command = formatCommand(argv[0]!, argv.slice(1));
  await new Promise<void>((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe', fd] });
    let stderr = '';
    child.stdout!.on('data', () => {});
    child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new ExternalError(command, null, err.message));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new ExternalError(command, code, stderr || (signal ? `killed by ${signal}` : '')));
    });
  });
}

export interface MountInfo {
  /** fusectl connection number (the superblock's device number) */
  connection: number;
  fstype: string;
  source: string;
}

/** The topmost mount at `mountpoint` (an absolute, canonical path) from /proc/self/mountinfo, or null. */
export function findMount(mountpoint: string, mountinfo = fs.readFileSync('/proc/self/mountinfo', 'utf8')): MountInfo | null {
  let found: MountInfo | null = null;
  for (const line of mountinfo.split('\n')) {
    const [pre, post] = line.split(' - ');
    if (!pre || !post) continue;
    const f = pre.split(' ');
    const target = unescapeMountinfo(f[4] ?? '');
    if (target !== mountpoint) continue;
    const [major, minor] = (f[2] ?? '0:0').split(':').map(Number);
    const [fstype = '', source = ''] = post.split(' ');
    found = { connection: (major! << 20) | minor!, fstype, source: unescapeMountinfo(source) };
  }
  return found;
}

function unescapeMountinfo(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export function isFuseMounted(mountpoint: string): boolean {
  const m = findMount(mountpoint);
  return m !== null && isFuseType(m.fstype);
}

/** `fuse`, `fuseblk`, or either with a subtype (`fuse.tandem`, `fuseblk.tandem`) */
export function isFuseType(fstype: string): boolean {
  return /^fuse(blk)?(\.|$)/.test(fstype);
}

/** `umount`, falling back to `umount -l` (detach now, the connection ends when the last user goes). */
export async function unmountFuse(mountpoint: string, opts: { run?: RunFn; log?: (msg: string) => void } = {}): Promise<'clean' | 'lazy'> {
  const run = opts.run ?? realRun;
  const r = await run('umount', ['--no-canonicalize', mountpoint], { reject: false, timeoutMs: 20_000 }).catch((err: Error) => ({ code: -1, stderr: err.message }));
  if (r.code === 0) return 'clean';
  opts.log?.(`umount ${mountpoint} failed (${r.stderr.trim()}); detaching it with umount -l`);
  await run('umount', ['-l', '--no-canonicalize', mountpoint], { timeoutMs: 20_000 });
  return 'lazy';
}

/**
 * Aborts a FUSE connection through fusectl: every pending and future request fails with ENOTCONN and the server's
 * device read fails, which frees processes stuck on a hung server. Mounts fusectl if needed, and unmounts it again
 * if it mounted it.
 */
export async function abortFuseConnection(connection: number, opts: { run?: RunFn } = {}): Promise<void> {
  const run = opts.run ?? realRun;
  const mounted = fs.readFileSync('/proc/self/mounts', 'utf8').split('\n').some((l) => l.split(' ')[1] === FUSECTL);
  if (!mounted) await run('mount', ['-t', 'fusectl', 'fusectl', FUSECTL]);
  try {
    const file = `${FUSECTL}/${connection}/abort`;
    if (fs.existsSync(file)) fs.writeFileSync(file, '1');
  } finally {
    if (!mounted) await run('umount', [FUSECTL], { reject: false });
  }
}
