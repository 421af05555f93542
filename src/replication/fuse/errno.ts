import { constants } from 'node:os';
import { getSystemErrorMap } from 'node:util';

/** Positive Linux errno values used by the FUSE server. */
export const E = constants.errno as Readonly<Record<string, number>> & {
  EPERM: number; ENOENT: number; EIO: number; EBADF: number; EACCES: number; EEXIST: number; EXDEV: number;
  ENOTDIR: number; EISDIR: number; EINVAL: number; ENOSPC: number; ENOSYS: number; ENOTEMPTY: number; ENXIO: number;
  EOPNOTSUPP: number; ENAMETOOLONG: number; EILSEQ: number; ESTALE: number; EPROTO: number; ENODEV: number;
  EINTR: number; EAGAIN: number; ECONNABORTED: number;
};

/**
 * A filesystem operation failed with `errno` (positive). The dispatcher replies with it; any other thrown error
 * that carries no errno becomes EIO (and is logged as a bug).
 */
export class FsError extends Error {
  override readonly name = 'FsError';
  constructor(readonly errno: number, message?: string) {
    super(message ?? `errno ${errno}`);
  }
}

/** The positive errno of a Node system error or FsError, or null for anything else. */
export function errnoOf(err: unknown): number | null {
  if (err instanceof FsError) return err.errno;
  if (err && typeof err === 'object') {
    const e = err as { errno?: unknown; code?: unknown };
    if (typeof e.errno === 'number' && e.errno !== 0) return Math.abs(e.errno);
    if (typeof e.code === 'string' && typeof E[e.code] === 'number') return E[e.code]!;
  }
  return null;
}

/** Finds the errno whose message appears in a command's stderr ("fallocate: …: No space left on device"), else EIO. */
export function errnoFromMessage(stderr: string): number {
  const text = stderr.toLowerCase();
  let best: { errno: number; len: number } | null = null;
  for (const [code, [, message]] of getSystemErrorMap()) {
    const m = message.toLowerCase();
    if (m.length > 6 && text.includes(m) && (!best || m.length > best.len)) best = { errno: Math.abs(code), len: m.length };
  }
  return best?.errno ?? E.EIO;
}
