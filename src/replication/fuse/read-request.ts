import fs from 'node:fs';

/**
 * One blocking read of a request from /dev/fuse into `buf`: its length, or why the server must stop. ENOENT (the
 * request was interrupted before it was taken), EINTR and EAGAIN are retried; ENODEV (unmounted) and ECONNABORTED
 * (aborted through fusectl) end the loop, as does a read shorter than a request header.
 */
export function readRequest(fd: number, buf: Buffer): number | string {
  for (;;) {
    let n: number;
    try {
      n = fs.readSync(fd, buf, 0, buf.length, null);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'EINTR' || code === 'EAGAIN') continue;
      if (code === 'ENODEV') return 'unmounted';
      if (code === 'ECONNABORTED') return 'aborted';
      return `read /dev/fuse failed: ${(err as Error).message}`;
    }
    return n < 40 ? `short read from /dev/fuse (${n} bytes)` : n;
  }
}
