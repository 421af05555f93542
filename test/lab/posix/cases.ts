// The table of the POSIX conformance suite (test/lab/conformance.test.ts): each case runs in a fresh directory of its
// own, on a plain directory and on the FUSE mount of a primary, step by step, as root or as a test user. The suite
// compares every step's outcome (value or errno) and the case directory's final tree (type, mode, owner, size, nlink,
// rdev, symlink target, content hash, names). Times are compared only where a step reads them (`times`, µs).
import type { Value } from './runner.js';

export type Who = 'root' | 'u1' | 'u2';
export interface Step {
  as: Who;
  op: string;
  args: Value[];
}
export interface Case {
  name: string;
  steps: Step[];
}

/**
 * Test users. Ids need no passwd entry. u2 is also a member of group 1003 (setgid and chgrp cases); u1 is not.
 */
export const USERS: Record<Exclude<Who, 'root'>, { uid: number; gid: number; groups: number[] }> = {
  u1: { uid: 1001, gid: 1001, groups: [1001] },
  u2: { uid: 1002, gid: 1002, groups: [1002, 1003] },
};

const step = (as: Who) => (op: string, ...args: Value[]): Step => ({ as, op, args });
const R = step('root');
const A = step('u1');
const B = step('u2');

const cases: Case[] = [];
const c = (name: string, ...steps: Step[]) => cases.push({ name, steps });

/** a directory everybody may write into */
const open = (d = 'w') => [R('mkdir', d, 0o777), R('chmod', d, 0o777)];

// ── open and create flags ─────────────────────────────────────────────────────────────────────────────────────────
c('create O_CREAT|O_WRONLY 0640', R('open', 'f', ['WRONLY', 'CREAT'], 0o640), R('fstat'), R('close'));
c('create O_CREAT mode 06755 as root keeps setuid/setgid', R('touch', 'f', ['WRONLY', 'CREAT'], 0o6755), R('stat', 'f'));
c('O_CREAT|O_EXCL on an existing file: EEXIST', R('writeFile', 'f', 'x'), R('touch', 'f', ['WRONLY', 'CREAT', 'EXCL']));
c('O_CREAT|O_EXCL on a dangling symlink: EEXIST', R('symlink', 'nowhere', 'l'), R('touch', 'l', ['WRONLY', 'CREAT', 'EXCL']));
c('O_CREAT through a dangling symlink creates its target', R('symlink', 'target', 'l'), R('touch', 'l', ['WRONLY', 'CREAT']), R('lstat', 'target'));
c('O_CREAT on an existing file keeps it', R('writeFile', 'f', 'keep'), R('touch', 'f', ['WRONLY', 'CREAT'], 0o600), R('readFile', 'f'), R('stat', 'f'));
c('O_TRUNC empties a file', R('writeFile', 'f', 'content'), R('touch', 'f', ['WRONLY', 'TRUNC']), R('stat', 'f'));
c('O_RDONLY|O_TRUNC truncates too (Linux)', R('writeFile', 'f', 'content'), R('touch', 'f', ['RDONLY', 'TRUNC']), R('stat', 'f'));
c('O_TRUNC without write permission: EACCES', ...open(), R('writeFile', 'w/f', 'data', 0o644), A('touch', 'w/f', ['WRONLY', 'TRUNC']), R('readFile', 'w/f'));
c('O_APPEND writes at the end whatever the offset', R('writeFile', 'f', '0123'), R('open', 'f', ['WRONLY', 'APPEND']), R('write', '_', 'abc', 0), R('write', '_', 'de', 1), R('close'), R('readFile', 'f'));
c('O_APPEND from two handles interleaves', R('writeFile', 'f', ''), R('open', 'f', ['WRONLY', 'APPEND'], 0, 'a'), R('open', 'f', ['WRONLY', 'APPEND'], 0, 'b'),
  R('write', 'a', '1'), R('write', 'b', '2'), R('write', 'a', '3'), R('close', 'a'), R('close', 'b'), R('readFile', 'f'));
c('O_DIRECTORY on a file: ENOTDIR; on a directory: opens', R('writeFile', 'f', ''), R('mkdir', 'd'), R('touch', 'f', ['RDONLY', 'DIRECTORY']), R('touch', 'd', ['RDONLY', 'DIRECTORY']));
c('O_NOFOLLOW on a symlink: ELOOP; on a file: opens', R('writeFile', 'f', ''), R('symlink', 'f', 'l'), R('touch', 'l', ['RDONLY', 'NOFOLLOW']), R('touch', 'f', ['RDONLY', 'NOFOLLOW']));
c('O_NOFOLLOW|O_CREAT on a dangling symlink: ELOOP', R('symlink', 'nowhere', 'l'), R('touch', 'l', ['WRONLY', 'CREAT', 'NOFOLLOW']));
c('O_CREAT|O_DIRECTORY: EINVAL', R('touch', 'x', ['RDONLY', 'CREAT', 'DIRECTORY']));
c('open a directory for writing: EISDIR', R('mkdir', 'd'), R('touch', 'd', ['WRONLY']), R('touch', 'd', ['RDWR']));
c('open a missing file: ENOENT; through a file: ENOTDIR', R('writeFile', 'f', ''), R('touch', 'missing', ['RDONLY']), R('touch', 'f/x', ['RDONLY']), R('touch', 'f/x', ['WRONLY', 'CREAT']));
c('write to a read-only handle: EBADF; read from a write-only one: EBADF', R('writeFile', 'f', 'abc'), R('open', 'f', ['RDONLY'], 0, 'r'), R('write', 'r', 'x'),
  R('open', 'f', ['WRONLY'], 0, 'w'), R('read', 'w', 3, 0), R('close', 'r'), R('close', 'w'));
c('O_SYNC and O_DSYNC writes', R('open', 'f', ['WRONLY', 'CREAT', 'SYNC'], 0o644, 's'), R('write', 's', 'sync'), R('open', 'g', ['WRONLY', 'CREAT', 'DSYNC'], 0o644, 'd'),
  R('write', 'd', 'dsync'), R('close', 's'), R('close', 'd'), R('readFile', 'f'), R('readFile', 'g'));
c('O_DIRECT aligned write (4096 at 0 and 8192)', R('py', 'odirect_write', '${CASE}/f', 4096, 0), R('py', 'odirect_write', '${CASE}/f', 4096, 8192), R('stat', 'f'));
c('O_DIRECT unaligned write (1000 bytes)', R('py', 'odirect_write', '${CASE}/f', 1000, 0), R('stat', 'f'));
c('O_TMPFILE in a directory', R('py', 'tmpfile', '${CASE}'));
c('fsync and fdatasync of a file; fsync of a directory', R('open', 'f', ['RDWR', 'CREAT']), R('write', '_', 'x'), R('fsync'), R('fdatasync'), R('close'),
  R('open', '.', ['RDONLY', 'DIRECTORY'], 0, 'd'), R('fsync', 'd'), R('close', 'd'));
c('syncfs (sync -f) of the directory', R('writeFile', 'f', 'x'), R('tool', 'sync', '-f', '.'), R('tool', 'sync', '-f', 'f'));
c('stores through a shared mapping, then msync(MS_SYNC)', R('writeFile', 'f', '0123456789'), R('py', 'mmap_msync', '${CASE}/f', 2, 'ab'), R('readFile', 'f'));
c('read and write at offsets, holes read as zeros', R('open', 'f', ['RDWR', 'CREAT']), R('write', '_', 'end', 10), R('read', '_', 20, 0), R('fstat'), R('close'));

// ── directories ───────────────────────────────────────────────────────────────────────────────────────────────────
c('mkdir 0750, 01777 (sticky kept), 06755 (setuid/setgid dropped)', R('mkdir', 'a', 0o750), R('mkdir', 'b', 0o1777), R('mkdir', 'c', 0o6755), R('stat', 'a'), R('stat', 'b'), R('stat', 'c'));
c('mkdir: EEXIST over a directory, a file, a symlink; ENOENT without parent', R('mkdir', 'd'), R('writeFile', 'f', ''), R('symlink', 'nowhere', 'l'),
  R('mkdir', 'd'), R('mkdir', 'f'), R('mkdir', 'l'), R('mkdir', 'missing/d'), R('mkdir', 'f/d'));
c('rmdir: ENOTEMPTY, ENOTDIR, ENOENT, EINVAL for "."', R('mkdir', 'd'), R('writeFile', 'd/x', ''), R('writeFile', 'f', ''), R('mkdir', 'e'), R('symlink', 'e', 'l'),
  R('rmdir', 'd'), R('rmdir', 'f'), R('rmdir', 'missing'), R('rmdir', 'e/.'), R('rmdir', 'l'), R('unlink', 'd/x'), R('rmdir', 'd'));
c('directory nlink follows its subdirectories', R('mkdir', 'd'), R('mkdir', 'd/a'), R('mkdir', 'd/b'), R('stat', 'd'), R('rmdir', 'd/a'), R('stat', 'd'));
c('readdir lists names; of a file: ENOTDIR', R('mkdir', 'd'), R('writeFile', 'd/b', ''), R('writeFile', 'd/a', ''), R('symlink', 'x', 'd/c'), R('readdir', 'd'), R('readdir', 'd/a'));
c('chdir into a file: ENOTDIR; into a missing dir: ENOENT', R('writeFile', 'f', ''), R('chdir', 'f'), R('chdir', 'missing'));
c('a directory tree 40 levels deep, then removed', R('tool', 'mkdir', '-p', Array.from({ length: 40 }, (_, i) => `l${i}`).join('/')),
  R('tool', 'sh', '-c', 'find l0 | wc -l'), R('tool', 'rm', '-r', 'l0'), R('readdir', '.'));

// ── unlink ────────────────────────────────────────────────────────────────────────────────────────────────────────
c('unlink: EISDIR for a directory, ENOENT for a missing name', R('mkdir', 'd'), R('unlink', 'd'), R('unlink', 'missing'), R('unlink', 'missing/x'));
c('unlink a symlink removes the link, not its target', R('writeFile', 'f', 'target'), R('symlink', 'f', 'l'), R('unlink', 'l'), R('readFile', 'f'));
c('unlink an open file: the handle still reads and writes; nlink 0', R('writeFile', 'f', 'keep'), R('open', 'f', ['RDWR']), R('unlink', 'f'), R('read', '_', 10, 0),
  R('write', '_', 'K', 0), R('read', '_', 10, 0), R('fstat'), R('close'), R('readdir', '.'));

// ── rename ────────────────────────────────────────────────────────────────────────────────────────────────────────
c('rename a file over a file', R('writeFile', 'a', 'A'), R('writeFile', 'b', 'B'), R('rename', 'a', 'b'), R('readFile', 'b'), R('readdir', '.'));
c('rename a directory over an empty directory', R('mkdir', 'a'), R('writeFile', 'a/x', ''), R('mkdir', 'b'), R('rename', 'a', 'b'), R('readdir', 'b'));
c('rename a directory over a non-empty directory: ENOTEMPTY', R('mkdir', 'a'), R('mkdir', 'b'), R('writeFile', 'b/x', ''), R('rename', 'a', 'b'));
c('rename a file over a directory: EISDIR; a directory over a file: ENOTDIR', R('writeFile', 'f', ''), R('mkdir', 'd'), R('rename', 'f', 'd'), R('rename', 'd', 'f'));
c('rename a directory into its own subtree: EINVAL', R('mkdir', 'd'), R('mkdir', 'd/sub'), R('rename', 'd', 'd/sub/d'), R('rename', 'd', 'd/x'));
c('rename to itself, and of a missing name', R('writeFile', 'f', ''), R('rename', 'f', 'f'), R('rename', 'missing', 'x'), R('rename', 'f', 'f/x'));
c('rename across directories, of a symlink, of an open file', R('mkdir', 'a'), R('mkdir', 'b'), R('writeFile', 'a/f', 'x'), R('symlink', 'f', 'a/l'),
  R('open', 'a/f', ['WRONLY']), R('rename', 'a/f', 'b/g'), R('rename', 'a/l', 'b/l'), R('write', '_', 'after', 0), R('close'), R('readFile', 'b/g'), R('readlink', 'b/l'));
c('rename of a directory with an open file below it', R('mkdir', 'a'), R('writeFile', 'a/f', ''), R('open', 'a/f', ['WRONLY']), R('rename', 'a', 'b'), R('write', '_', 'moved'), R('close'), R('readFile', 'b/f'));
c('RENAME_NOREPLACE: EEXIST over an existing name, renames to a new one', R('writeFile', 'a', 'A'), R('writeFile', 'b', 'B'),
  R('py', 'renameat2', 'a', 'b', 1), R('py', 'renameat2', 'a', 'c', 1), R('readdir', '.'));
c('RENAME_EXCHANGE swaps two names', R('writeFile', 'a', 'A'), R('mkdir', 'b'), R('py', 'renameat2', 'a', 'b', 2), R('readdir', '.'));

// ── symlinks ──────────────────────────────────────────────────────────────────────────────────────────────────────
c('symlink and readlink (relative, absolute, dangling); lstat of a symlink', R('symlink', 'rel/target', 'a'), R('symlink', '/abs/target', 'b'), R('readlink', 'a'),
  R('readlink', 'b'), R('lstat', 'a'), R('stat', 'a'));
c('symlink over an existing name: EEXIST; readlink of a file: EINVAL', R('writeFile', 'f', ''), R('symlink', 'x', 'f'), R('readlink', 'f'));
c('symlink with a 4095-byte target; 4096 bytes: ENAMETOOLONG', R('symlink', 'x'.repeat(4095), 'long'), R('readlink', 'long'), R('symlink', 'y'.repeat(4096), 'longer'));
c('symlink loop: ELOOP', R('symlink', 'b', 'a'), R('symlink', 'a', 'b'), R('stat', 'a'), R('touch', 'a', ['RDONLY']));
c('a symlink to a directory is followed in paths', R('mkdir', 'd'), R('symlink', 'd', 'l'), R('writeFile', 'l/f', 'via link'), R('readFile', 'd/f'));
c('lchown and lutimes of a symlink do not touch its target', R('writeFile', 'f', ''), R('symlink', 'f', 'l'), R('lchown', 'l', 1001, 1001), R('lutimes', 'l', 1000, 2000),
  R('times', 'l'), R('lstat', 'l'), R('stat', 'f'));
c('chmod of a symlink without following (fchmodat AT_SYMLINK_NOFOLLOW): EOPNOTSUPP', R('writeFile', 'f', ''), R('symlink', 'f', 'l'), R('py', 'fchmodat_nofollow', 'l', 0o600), R('stat', 'f'));

// ── chmod, chown ──────────────────────────────────────────────────────────────────────────────────────────────────
c('chmod as root: 0640, 07777, 0', R('writeFile', 'f', ''), R('chmod', 'f', 0o640), R('stat', 'f'), R('chmod', 'f', 0o7777), R('stat', 'f'), R('chmod', 'f', 0), R('stat', 'f'));
c('chmod by someone else: EPERM; by the owner: allowed', ...open(), A('writeFile', 'w/f', ''), B('chmod', 'w/f', 0o777), A('chmod', 'w/f', 0o600), R('stat', 'w/f'));
c('chmod g+s by an owner outside the group: the bit is dropped', ...open(), A('writeFile', 'w/f', ''), R('chown', 'w/f', 1001, 1003), A('chmod', 'w/f', 0o2755), R('stat', 'w/f'));
c('chmod +t on a file by a user: dropped? (sticky on files)', ...open(), A('writeFile', 'w/f', ''), A('chmod', 'w/f', 0o1755), R('stat', 'w/f'));
c('chown as root: owner and group', R('writeFile', 'f', ''), R('chown', 'f', 1001, 1003), R('stat', 'f'), R('chown', 'f', -1, 1002), R('stat', 'f'), R('chown', 'f', -1, -1), R('stat', 'f'));
c('chown by root clears setuid and setgid (group-executable)', R('writeFile', 'f', ''), R('chmod', 'f', 0o6755), R('chown', 'f', 1001, 1001), R('stat', 'f'));
c('chown clears setuid but keeps setgid without group exec', R('writeFile', 'f', ''), R('chmod', 'f', 0o6745), R('chown', 'f', 1002, -1), R('stat', 'f'));
c('chown to another user by a user: EPERM', ...open(), A('writeFile', 'w/f', ''), A('chown', 'w/f', 1002, -1), R('stat', 'w/f'));
c('chgrp by the owner: to a group of theirs allowed, to another EPERM', ...open(), B('writeFile', 'w/f', ''), B('chown', 'w/f', -1, 1003), R('stat', 'w/f'), B('chown', 'w/f', -1, 1001), R('stat', 'w/f'));
c('chgrp by a member clears setgid? (owner chgrp of a 02755 file)', ...open(), B('writeFile', 'w/f', ''), B('chmod', 'w/f', 0o6755), B('chown', 'w/f', -1, 1003), R('stat', 'w/f'));
c('a write by another user clears setuid and setgid', ...open(), R('writeFile', 'w/f', 'x'), R('chmod', 'w/f', 0o6777), A('writeFile', 'w/f', 'more', 0o644, 'a'), R('stat', 'w/f'), R('readFile', 'w/f'));
c('a truncate by another user clears setuid', ...open(), R('writeFile', 'w/f', 'xyz'), R('chmod', 'w/f', 0o4777), A('truncate', 'w/f', 1), R('stat', 'w/f'));
c('a write by the root owner keeps setuid', R('writeFile', 'f', 'x'), R('chmod', 'f', 0o4755), R('writeFile', 'f', 'more', 0o644, 'a'), R('stat', 'f'));
c('fchmod and fchown through an open handle', R('open', 'f', ['RDWR', 'CREAT']), R('fchmod', '_', 0o600), R('fchown', '_', 1001, 1002), R('fstat'), R('close'));

// ── utimens ───────────────────────────────────────────────────────────────────────────────────────────────────────
c('utimes with explicit times (µs)', R('writeFile', 'f', ''), R('utimes', 'f', 1_000_000_000.25, 1_200_000_000.5), R('times', 'f'));
c('utimensat with nanoseconds', R('writeFile', 'f', ''), R('py', 'utimensat', 'f', [1_000_000_000, 123_456_789], [1_100_000_000, 987_654_321], false), R('times', 'f'));
c('utimensat UTIME_OMIT keeps one side', R('writeFile', 'f', ''), R('utimes', 'f', 1_000_000_000, 1_000_000_000), R('py', 'utimensat', 'f', 'omit', [1_500_000_000, 0], false), R('times', 'f'),
  R('py', 'utimensat', 'f', [1_600_000_000, 0], 'omit', false), R('times', 'f'));
c('utimensat of a symlink (AT_SYMLINK_NOFOLLOW)', R('writeFile', 'f', ''), R('utimes', 'f', 1, 1), R('symlink', 'f', 'l'), R('py', 'utimensat', 'l', [1_300_000_000, 0], [1_300_000_000, 0], true),
  R('times', 'l'), R('times', 'f'));
c('utimes by a writer who is not the owner: NOW allowed, explicit EPERM', ...open(), R('writeFile', 'w/f', ''), R('chmod', 'w/f', 0o666), A('py', 'utimensat', '${CASE}/w/f', 'now', 'now', false),
  A('utimes', 'w/f', 5, 5));
c('utimes NOW by someone who cannot write: EACCES', ...open(), R('writeFile', 'w/f', ''), A('py', 'utimensat', '${CASE}/w/f', 'now', 'now', false));

// ── truncate ──────────────────────────────────────────────────────────────────────────────────────────────────────
c('truncate: grow, shrink, of a directory (EISDIR), negative (EINVAL)', R('writeFile', 'f', 'abcdef'), R('truncate', 'f', 100), R('stat', 'f'), R('truncate', 'f', 2),
  R('readFile', 'f'), R('mkdir', 'd'), R('truncate', 'd', 0), R('truncate', 'f', -1));
c('truncate without write permission: EACCES', ...open(), R('writeFile', 'w/f', 'abc'), A('truncate', 'w/f', 0), R('stat', 'w/f'));
c('ftruncate of a read-only handle: EINVAL; of a writable one: ok', R('writeFile', 'f', 'abcdef'), R('open', 'f', ['RDONLY'], 0, 'r'), R('ftruncate', 'r', 1),
  R('open', 'f', ['WRONLY'], 0, 'w'), R('ftruncate', 'w', 3), R('close', 'r'), R('close', 'w'), R('readFile', 'f'));

// ── names and paths ───────────────────────────────────────────────────────────────────────────────────────────────
c('a 255-byte name: create, mkdir, symlink, rename', R('writeFile', 'a'.repeat(255), 'x'), R('mkdir', 'b'.repeat(255)), R('symlink', 't', 'c'.repeat(255)),
  R('rename', 'a'.repeat(255), 'd'.repeat(255)), R('readdir', '.'));
c('a 256-byte name: ENAMETOOLONG for create, mkdir, symlink, rename, lookup', R('writeFile', 'f', ''), R('writeFile', 'a'.repeat(256), 'x'), R('mkdir', 'b'.repeat(256)),
  R('symlink', 't', 'c'.repeat(256)), R('rename', 'f', 'd'.repeat(256)), R('stat', 'e'.repeat(256)));
c('a 255-byte name in UTF-8 (85 × 3 bytes)', R('writeFile', 'é€'.repeat(42) + '€', 'u'), R('readdir', '.'));
c('an absolute path of 4095 bytes: create, stat, unlink', R('abspath', 4095, 'create'), R('abspath', 4095, 'stat'), R('abspath', 4095, 'unlink'));
c('an absolute path of 4096 bytes: ENAMETOOLONG', R('abspath', 4096, 'create'));
c('a directory deeper than PATH_MAX, reached by relative chdir', R('deepen', 'd'.repeat(200), 22), R('writeFile', 'deep', 'x'), R('readFile', 'deep'),
  R('chdir', '${CASE}'), R('rmdeep', 'd'.repeat(200)), R('readdir', '.'));

// ── special files ─────────────────────────────────────────────────────────────────────────────────────────────────
c('mkfifo: a FIFO that works', R('py', 'mknod', 'p', 'fifo', 0o640, 0, 0), R('lstat', 'p'), R('fifo_rw', 'p'), R('rename', 'p', 'q'), R('chmod', 'q', 0o600), R('unlink', 'q'));
c('mkfifo by a user in a directory of theirs', ...open(), A('py', 'mknod', '${CASE}/w/p', 'fifo', 0o666, 0, 0), R('lstat', 'w/p'));
c('mkfifo over an existing name: EEXIST', R('writeFile', 'f', ''), R('py', 'mknod', 'f', 'fifo', 0o644, 0, 0));
c('mknod of a character device (1,3), opened and written', R('py', 'mknod', 'c', 'char', 0o666, 1, 3), R('lstat', 'c'), R('writeFile', 'c', 'into the void'), R('readFile', 'c'));
c('mknod of a block device (7,200)', R('py', 'mknod', 'b', 'block', 0o600, 7, 200), R('lstat', 'b'), R('chown', 'b', 1001, 1001), R('rename', 'b', 'b2'), R('lstat', 'b2'));
c('mknod of a device by a user: EPERM', ...open(), A('py', 'mknod', '${CASE}/w/c', 'char', 0o666, 1, 3));
c('mknod of a regular file', R('py', 'mknod', 'r', 'file', 0o640, 0, 0), R('lstat', 'r'));
c('a rename of a FIFO over a file, and of a file over a FIFO', R('py', 'mknod', 'p', 'fifo', 0o644, 0, 0), R('writeFile', 'f', 'F'), R('rename', 'p', 'f'), R('lstat', 'f'),
  R('writeFile', 'g', 'G'), R('rename', 'g', 'f'), R('readFile', 'f'));
c('bind() a unix socket, connect, exchange; the socket file is left', R('bind', 's', 'kept'), R('lstat', 'kept'), R('chmod', 'kept', 0o600), R('rename', 'kept', 'k2'), R('lstat', 'k2'));
c('bind() over an existing name: EADDRINUSE', R('writeFile', 'f', ''), R('bind', 'f'));
c('bind() by a user in a directory of theirs', ...open(), A('bind', 'w/s', 'w/kept'), R('lstat', 'w/kept'));
c('mknod of a socket node', R('py', 'mknod', 's', 'socket', 0o644, 0, 0), R('lstat', 's'));

// ── permissions as a user ─────────────────────────────────────────────────────────────────────────────────────────
c('a user cannot read or write a root 0600 file', R('writeFile', 'f', 'secret', 0o600), A('readFile', 'f'), A('writeFile', 'f', 'x', 0o644, 'a'), A('access', 'f', 'R'), A('access', 'f', 'F'));
c('a user cannot create, remove or rename in a root 0755 directory', R('mkdir', 'd'), R('writeFile', 'd/f', ''), A('writeFile', 'd/new', ''), A('mkdir', 'd/sub'), A('unlink', 'd/f'),
  A('rename', 'd/f', 'd/g'), A('symlink', 'x', 'd/l'), A('py', 'mknod', '${CASE}/d/p', 'fifo', 0o644, 0, 0), R('readdir', 'd'));
c('search permission: a user cannot reach into a 0700 directory; 0711 lets them', R('mkdir', 'd', 0o700), R('writeFile', 'd/f', 'x'), A('stat', 'd/f'), A('readdir', 'd'), A('chdir', 'd'),
  R('chmod', 'd', 0o711), A('stat', 'd/f'), A('readdir', 'd'), A('readFile', 'd/f'));
c('read permission on a directory without search: names only', R('mkdir', 'd', 0o744), R('writeFile', 'd/f', ''), A('readdir', 'd'), A('stat', 'd/f'));
c('execute permission: X_OK on 0644 fails for root and users; 0744 for root only', R('writeFile', 'f', ''), R('access', 'f', 'X'), A('access', 'f', 'X'), R('chmod', 'f', 0o744),
  R('access', 'f', 'X'), A('access', 'f', 'X'), R('mkdir', 'd', 0o600), R('access', 'd', 'X'));
c('the owner is refused a 0444 file for writing; root is not', ...open(), A('writeFile', 'w/f', 'x', 0o444), A('touch', 'w/f', ['WRONLY']), R('touch', 'w/f', ['WRONLY']), A('access', 'w/f', 'W'), R('access', 'w/f', 'W'));
c('group permission applies to a supplementary group', ...open(), R('writeFile', 'w/f', 'g', 0o640), R('chown', 'w/f', 0, 1003), B('readFile', 'w/f'), A('readFile', 'w/f'));
c('a user creates files owned by them with the mode asked (umask 022)', ...open(), A('touch', 'w/f', ['WRONLY', 'CREAT'], 0o666), A('mkdir', 'w/d', 0o777), A('symlink', 'f', 'w/l'), R('tree', 'w'));

// ── sticky and setgid directories ─────────────────────────────────────────────────────────────────────────────────
c('sticky directory: others cannot unlink or rename a user\'s file; owner and root can', R('mkdir', 't', 0o777), R('chmod', 't', 0o1777), A('writeFile', 't/a', ''), A('writeFile', 't/b', ''),
  A('writeFile', 't/c', ''), B('unlink', 't/a'), B('rename', 't/a', 't/z'), B('writeFile', 't/a', 'overwrite', 0o644, 'a'), A('unlink', 't/a'), R('unlink', 't/b'), B('rmdir', 't'), R('readdir', 't'));
c('sticky directory: others can create but not replace by rename', R('mkdir', 't', 0o777), R('chmod', 't', 0o1777), A('writeFile', 't/a', 'A'), B('writeFile', 't/n', 'N'), B('rename', 't/n', 't/a'), R('readFile', 't/a'));
c('setgid directory: files get its group, subdirectories its group and the bit', R('mkdir', 's', 0o777), R('chown', 's', 0, 1003), R('chmod', 's', 0o2777),
  B('writeFile', 's/f', ''), B('mkdir', 's/d'), A('writeFile', 's/g', ''), R('writeFile', 's/r', ''), R('mkdir', 's/rd'), R('tree', 's'));
c('setgid directory: a non-member asking for setgid gets it stripped', R('mkdir', 's', 0o777), R('chown', 's', 0, 1003), R('chmod', 's', 0o2777),
  A('touch', 's/f', ['WRONLY', 'CREAT'], 0o2755), B('touch', 's/g', ['WRONLY', 'CREAT'], 0o2755), R('stat', 's/f'), R('stat', 's/g'));
c('setgid directory: symlinks and FIFOs get its group too', R('mkdir', 's', 0o777), R('chown', 's', 0, 1003), R('chmod', 's', 0o2777), A('symlink', 'x', 's/l'),
  A('py', 'mknod', '${CASE}/s/p', 'fifo', 0o644, 0, 0), R('lstat', 's/l'), R('lstat', 's/p'));

// ── hard links ────────────────────────────────────────────────────────────────────────────────────────────────────
c('link a file: a second name, nlink 2', R('writeFile', 'f', 'shared'), R('link', 'f', 'g'), R('stat', 'f'), R('readFile', 'g'));
c('link: EEXIST over an existing name, ENOENT from a missing one, EPERM for a directory', R('writeFile', 'f', ''), R('writeFile', 'g', ''), R('mkdir', 'd'),
  R('link', 'f', 'g'), R('link', 'missing', 'h'), R('link', 'd', 'e'), R('readdir', '.'));

// ── extended attributes ───────────────────────────────────────────────────────────────────────────────────────────
c('user xattrs: set, get, list, remove', R('writeFile', 'f', ''), R('py', 'setxattr', 'f', 'user.k', 'v'), R('py', 'getxattr', 'f', 'user.k'), R('py', 'listxattr', 'f'),
  R('py', 'removexattr', 'f', 'user.k'), R('py', 'listxattr', 'f'));
c('xattrs: a missing one (ENODATA), list of a plain file', R('writeFile', 'f', ''), R('py', 'getxattr', 'f', 'user.none'), R('py', 'listxattr', 'f'));

// ── statfs, access ────────────────────────────────────────────────────────────────────────────────────────────────
c('statfs: type, block size, blocks, inodes', R('statfs', '.'));
c('access F/R/W as root and as a user', R('writeFile', 'f', '', 0o640), R('access', 'f', 'F'), R('access', 'f', 'RW'), A('access', 'f', 'F'), A('access', 'f', 'R'), A('access', 'missing', 'F'));
c('fallocate and a punched hole keep size and content', R('tool', 'fallocate', '-l', '65536', 'f'), R('stat', 'f'), R('tool', 'fallocate', '-p', '-o', '0', '-l', '4096', 'f'), R('stat', 'f'));

export const CASES: readonly Case[] = cases;

/**
 * Differences the mount is allowed to have, by case name, with the reason (README "File replication", Limits). The
 * suite fails on any other difference, and on an entry here whose case no longer differs (so the list stays true).
 */
export const ALLOWED: Readonly<Record<string, string>> = {
  'statfs: type, block size, blocks, inodes': 'f_type is FUSE\'s (0x65735546), not the backing filesystem\'s; sizes and counts are the backing filesystem\'s',
  'link a file: a second name, nlink 2': 'hard links are refused with EPERM: tandem replicates names, not inodes, and a second name for one inode would diverge on the SECOND',
  'user xattrs: set, get, list, remove': 'extended attributes are not supported (EOPNOTSUPP): Node has no xattr calls and the stream does not carry them',
  'xattrs: a missing one (ENODATA), list of a plain file': 'extended attributes are not supported (EOPNOTSUPP), so a missing one is EOPNOTSUPP, not ENODATA',
  'RENAME_EXCHANGE swaps two names': 'RENAME_EXCHANGE is refused with EINVAL: Node has no renameat2, and three renames would not be atomic',
  'O_TMPFILE in a directory': 'O_TMPFILE is refused (EOPNOTSUPP): an unnamed file gets a name only through linkat, a hard link',
  'utimensat with nanoseconds': 'times have microsecond precision on the mount (the kernel truncates to the granularity the server announces; Node sets times as a double)',
  'O_DIRECT unaligned write (1000 bytes)': 'FUSE accepts unaligned O_DIRECT I/O (the server never sees the application\'s buffer); ext4 answers EINVAL',
  'a directory deeper than PATH_MAX, reached by relative chdir': 'a name whose path from the mount point is longer than PATH_MAX is refused with ENAMETOOLONG: replication names files by path',
};
