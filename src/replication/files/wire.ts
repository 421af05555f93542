import type { Change as FuseChange, Timespec as FuseTime } from '../fuse/index.js';
import type { Change, Timespec } from '../stream/change.js';

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_ISUGID = 0o6000;

/**
 * The stream changes (the wire contract, stream/change.ts) that reproduce one change the FUSE interception reported
 * for the replicated directory `dir`:
 * - create / mkdir / symlink carry no owner on the wire: a `chown` to the owner the object got on PRIM follows, so
 *   files of an application running as its own user (postgres) are owned by that user on the SECOND too; a chown
 *   clears setuid/setgid of a file, so a mode with those bits is set again after it;
 * - FIFOs, sockets and device nodes are local-only (the interception does not report them, fuse/sink.ts); a mknod of
 *   one that arrives anyway gives [] (reintegration skips them too);
 * - write data is a view of the bridged copy (not copied again).
 */
export function toStream(dir: string, c: FuseChange): Change[] {
  switch (c.op) {
    case 'write':
      return [{ dir, op: 'write', path: c.path, offset: c.offset, data: Buffer.from(c.data.buffer, c.data.byteOffset, c.data.byteLength) }];
    case 'truncate':
      return [{ dir, op: 'truncate', path: c.path, size: c.size }];
    case 'create':
    case 'mknod':
      if (c.op === 'mknod' && (c.mode & S_IFMT) !== S_IFREG && (c.mode & S_IFMT) !== 0) return [];
      return [
        { dir, op: 'create', path: c.path, mode: c.mode & 0o7777 }, { dir, op: 'chown', path: c.path, uid: c.uid, gid: c.gid },
        ...(c.mode & S_ISUGID ? [{ dir, op: 'chmod', path: c.path, mode: c.mode & 0o7777 } as const] : []),
      ];
    case 'mkdir':
      return [{ dir, op: 'mkdir', path: c.path, mode: c.mode & 0o7777 }, { dir, op: 'chown', path: c.path, uid: c.uid, gid: c.gid }];
    case 'symlink':
      return [{ dir, op: 'symlink', target: c.target, path: c.path }, { dir, op: 'chown', path: c.path, uid: c.uid, gid: c.gid }];
    case 'unlink':
      return [{ dir, op: 'unlink', path: c.path }];
    case 'rmdir':
      return [{ dir, op: 'rmdir', path: c.path }];
    case 'rename':
      return [{ dir, op: 'rename', from: c.from, to: c.to, flags: c.flags }];
    case 'link':
      return [{ dir, op: 'link', from: c.existing, to: c.path }];
    case 'chmod':
      return [{ dir, op: 'chmod', path: c.path || '.', mode: c.mode & 0o7777 }];
    case 'chown':
      return [{ dir, op: 'chown', path: c.path || '.', uid: c.uid, gid: c.gid }];
    case 'utimens':
      return [{ dir, op: 'utimens', path: c.path || '.', atime: time(c.atime), mtime: time(c.mtime) }];
    case 'setxattr':
      return [{ dir, op: 'setxattr', path: c.path || '.', name: c.name, value: Buffer.from(c.value), flags: c.flags }];
    case 'removexattr':
      return [{ dir, op: 'removexattr', path: c.path || '.', name: c.name }];
    case 'fallocate':
      return [{ dir, op: 'fallocate', path: c.path, mode: c.mode, offset: c.offset, length: c.length }];
  }
}

function time(t: FuseTime | null): Timespec | null {
  return t ? [t.sec, t.nsec] : null;
}
