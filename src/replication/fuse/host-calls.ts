import { randomBytes } from 'node:crypto';
import fsp from 'node:fs/promises';
import net from 'node:net';
import { run as realRun, type RunFn } from '../../platform/exec.js';
import { BlockingCaller, BlockingCallError, type BlockingServer, serveBlockingCalls, type WorkerEnd } from './blocking-call.js';
import { E, errnoFromMessage, errnoOf, FsError } from './errno.js';

/**
 * System calls Node has no API for, done on the main thread asynchronously while the worker waits: mkfifo(3)
 * (coreutils mkfifo), mknod(2) for devices (coreutils mknod), fallocate(2) (util-linux fallocate), syncfs(2)
 * (coreutils `sync -f`), and a socket node (Node's own bind(2): a listener at a temporary name in the directory,
 * hard-linked to the name asked for, then closed, which unlinks the temporary name). No native code. A tool costs
 * one process start (milliseconds), which is acceptable for these rare operations.
 *
 * Paths are absolute paths that reach the backing store without going through the FUSE mount:
 * `/proc/<pid>/fd/<fd>/<name>` for a name in a directory the worker holds open (short, so PATH_MAX and sun_path's
 * 108 bytes never bite), `/proc/<pid>/fd/<fd>` for an open backing file (this also reaches unlinked files).
 * Failures come back as FsError with the errno read from the tool's message (EIO when it cannot be told).
 */
export type HostCall =
  | { op: 'mkfifo'; path: string; mode: number }
  | { op: 'mknod'; path: string; mode: number; kind: 'c' | 'b'; major: number; minor: number }
  /** a socket node `name` in the directory `dir` (mode from the process umask; the caller sets owner and mode) */
  | { op: 'mksock'; dir: string; name: string }
  | { op: 'fallocate'; path: string; mode: number; offset: number; length: number }
  /** syncfs(2) of the filesystem that holds `path` */
  | { op: 'syncfs'; path: string };

type HostAnswer = { errno: number; message: string } | null;

/** The fallocate(1) options for a fallocate(2) mode; null when the tool cannot express it. */
export function fallocateArgs(mode: number, offset: number, length: number, path: string): string[] | null {
  const KEEP = 0x01, PUNCH = 0x02, ZERO = 0x10;
  const opts: string[] = [];
  if (mode & ~(KEEP | PUNCH | ZERO)) return null;
  if (mode & PUNCH) {
    if (!(mode & KEEP) || mode & ZERO) return null; // the kernel requires KEEP_SIZE with PUNCH_HOLE
    opts.push('--punch-hole');
  } else {
    if (mode & ZERO) opts.push('--zero-range');
    if (mode & KEEP) opts.push('--keep-size');
  }
  return [...opts, '--offset', String(offset), '--length', String(length), path];
}

/** Main thread: run host calls for a worker. */
export function serveHostCalls(run: RunFn = realRun): BlockingServer {
  return serveBlockingCalls<HostCall, HostAnswer>(async (c) => {
    let cmd: string;
    let args: string[];
    const oct = (m: number) => (m & 0o7777).toString(8);
    switch (c.op) {
      case 'mkfifo':
        [cmd, args] = ['mkfifo', ['-m', oct(c.mode), '--', c.path]];
        break;
      case 'mknod':
        [cmd, args] = ['mknod', ['-m', oct(c.mode), '--', c.path, c.kind, String(c.major), String(c.minor)]];
        break;
      case 'mksock':
        return makeSocketNode(c.dir, c.name);
      case 'syncfs':
        [cmd, args] = ['sync', ['-f', '--', c.path]];
        break;
      case 'fallocate': {
        const a = fallocateArgs(c.mode, c.offset, c.length, c.path);
        if (!a) return { errno: E.EOPNOTSUPP, message: `fallocate mode ${c.mode} not supported` };
        [cmd, args] = ['fallocate', a];
        break;
      }
    }
    const r = await run(cmd, args, { reject: false, timeoutMs: 30_000 });
    if (r.code === 0) return null;
    return { errno: errnoFromMessage(r.stderr), message: `${cmd} exited ${r.code}: ${r.stderr.trim()}` };
  });
}

/**
 * A socket node at `dir/name` without keeping a listener: Node binds only through a listening server, and closing
 * it unlinks the path it bound (libuv), so it binds a temporary name and links the node to `name` first (link(2)
 * fails with EEXIST instead of replacing anything).
 */
async function makeSocketNode(dir: string, name: string): Promise<HostAnswer> {
  const tmp = `${dir}/.tandem-bind-${randomBytes(8).toString('hex')}`;
  const server = net.createServer();
  const fail = (e: unknown): HostAnswer => ({ errno: errnoOf(e) ?? E.EIO, message: `socket node ${name}: ${(e as Error).message}` });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(tmp, () => resolve());
    });
  } catch (e) {
    return fail(e);
  }
  try {
    await fsp.link(tmp, `${dir}/${name}`);
    return null;
  } catch (e) {
    return fail(e);
  } finally {
    await new Promise((r) => server.close(r));
    await fsp.unlink(tmp).catch(() => {});
  }
}

/** Worker thread: blocking host calls. */
export class HostCalls {
  private readonly caller: BlockingCaller<HostCall, HostAnswer>;
  constructor(end: WorkerEnd, timeoutMs = 60_000) {
    this.caller = new BlockingCaller(end, timeoutMs);
  }
  call(c: HostCall): void {
    let a: HostAnswer;
    try {
      a = this.caller.call(c);
    } catch (err) {
      if (err instanceof BlockingCallError) throw new FsError(E.EIO, err.message);
      throw err;
    }
    if (a) throw new FsError(a.errno, a.message);
  }
}
