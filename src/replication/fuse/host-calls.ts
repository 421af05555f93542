import { run as realRun, type RunFn } from '../../platform/exec.js';
import { BlockingCaller, BlockingCallError, type BlockingServer, serveBlockingCalls, type WorkerEnd } from './blocking-call.js';
import { E, errnoFromMessage, FsError } from './errno.js';

/**
 * System calls Node has no API for, done by a standard tool that the main thread starts asynchronously while the
 * worker waits: mkfifo(3) (coreutils mkfifo), mknod(2) for devices (coreutils mknod), fallocate(2) (util-linux
 * fallocate). No native code. Each costs one process start (milliseconds), which is acceptable for these rare
 * operations.
 *
 * Paths are absolute paths the tool can open without going through the FUSE mount: `/proc/<pid>/fd/<dirfd>/…` for
 * names under the backing root, `/proc/<pid>/fd/<fd>` for an open backing file (this also reaches unlinked files).
 * Failures come back as FsError with the errno read from the tool's message (EIO when it cannot be told).
 */
export type HostCall =
  | { op: 'mkfifo'; path: string; mode: number }
  | { op: 'mknod'; path: string; mode: number; kind: 'c' | 'b'; major: number; minor: number }
  | { op: 'fallocate'; path: string; mode: number; offset: number; length: number };

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
