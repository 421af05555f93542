/** Linux errno numbers of the errors the applier reports in `nack` (asm-generic/errno*.h). */
export const ERRNO: Record<string, number> = {
  EPERM: 1, ENOENT: 2, EIO: 5, EBADF: 9, EAGAIN: 11, ENOMEM: 12, EACCES: 13, EBUSY: 16, EEXIST: 17, EXDEV: 18,
  ENOTDIR: 20, EISDIR: 21, EINVAL: 22, ENFILE: 23, EMFILE: 24, ETXTBSY: 26, EFBIG: 27, ENOSPC: 28, EROFS: 30,
  EMLINK: 31, ENAMETOOLONG: 36, ENOTEMPTY: 39, ELOOP: 40, ENODATA: 61, EPROTO: 71, EOVERFLOW: 75, EOPNOTSUPP: 95,
  ENOTSUP: 95, EDQUOT: 122, ESTALE: 116, EUCLEAN: 117,
};

/** An error with an errno, as the applier reports it. */
export class ErrnoError extends Error {
  override readonly name = 'ErrnoError';
  constructor(readonly code: string, message: string, readonly errno: number = ERRNO[code] ?? ERRNO.EIO!) {
    super(message);
  }
}

/** The (errno, code) of anything thrown while applying: Node errors carry both; anything else counts as EIO. */
export function errnoOf(e: unknown): { errno: number; code: string } {
  if (e instanceof ErrnoError) return { errno: e.errno, code: e.code };
  const n = e as NodeJS.ErrnoException | null;
  const code = typeof n?.code === 'string' && /^E[A-Z0-9]+$/.test(n.code) ? n.code : 'EIO';
  const errno = typeof n?.errno === 'number' && n.errno !== 0 ? Math.abs(n.errno) : ERRNO[code] ?? ERRNO.EIO!;
  return { errno: Math.min(errno, 0xffff), code };
}
