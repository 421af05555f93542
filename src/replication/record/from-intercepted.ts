import type { FsChange } from './extent-map.js';

/**
 * The shape shared by the changes the FUSE interception reports (src/replication/fuse/sink.ts `Change`) and those the
 * replication stream carries (src/replication/stream/change.ts): typed structurally, so this file depends on
 * neither.
 */
export interface InterceptedChange {
  op: string;
  path?: string;
  from?: string;
  to?: string;
  offset?: number;
  length?: number;
  size?: number;
  data?: { length: number };
}

/**
 * The extent-map change an intercepted change amounts to; 'none' when it changes nothing the record must know;
 * 'unknown' for an operation this version does not know (the caller must invalidate the record: a change it cannot
 * describe would make a trusted record incomplete).
 * - write: its byte range (the data itself is not kept);
 * - fallocate (any mode): recorded as a write of [offset, offset + length) — punched or zeroed ranges change
 *   content, and an allocation beyond the end may change the size: over-recording is always safe;
 * - setxattr/removexattr: metadata; link (refused by the interception today): the new name is a new object, copied
 *   whole;
 * - sync, and metadata changes of the replicated directory itself (path '' or '.'), which reintegration does not
 *   manage: 'none'.
 */
export function fsChangeOf(c: InterceptedChange): FsChange | 'none' | 'unknown' {
  const root = (p: string | undefined) => p === undefined || p === '' || p === '.';
  switch (c.op) {
    case 'write':
      return { op: 'write', path: c.path!, offset: c.offset!, length: c.data?.length ?? c.length ?? 0 };
    case 'fallocate':
      return { op: 'write', path: c.path!, offset: c.offset!, length: c.length! };
    case 'truncate':
      return { op: 'truncate', path: c.path!, size: c.size! };
    case 'create':
    case 'mknod':
    case 'mkdir':
    case 'symlink':
    case 'unlink':
    case 'rmdir':
      return { op: c.op, path: c.path! };
    case 'link':
      return { op: 'create', path: c.path ?? c.to! };
    case 'rename':
      return { op: 'rename', from: c.from!, to: c.to! };
    case 'chmod':
    case 'chown':
    case 'utimens':
      return root(c.path) ? 'none' : { op: c.op, path: c.path! };
    case 'setxattr':
    case 'removexattr':
      return root(c.path) ? 'none' : { op: 'xattr', path: c.path! };
    case 'sync':
      return 'none';
    default:
      return 'unknown';
  }
}
