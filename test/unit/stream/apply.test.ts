import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Applier } from '../../../src/replication/stream/apply.js';
import { type Change, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_ZERO_RANGE, RENAME_EXCHANGE, RENAME_NOREPLACE } from '../../../src/replication/stream/change.js';
import { ErrnoError } from '../../../src/replication/stream/errno.js';
import type { ApplyFs } from '../../../src/replication/stream/fs.js';
import { compileFilter } from '../../../src/replication/stream/paths.js';
import { fsError, hookedFs, listAll, rmrf, tmpDir } from './helpers.js';

const D = '/srv/app/data';

interface Ctx {
  copy: string;
  outside: string;
  a: Applier;
  events: string[];
}

async function withCopy(fn: (c: Ctx) => Promise<void>, opts: { fs?: (events: string[]) => ApplyFs; notreplicated?: Parameters<typeof compileFilter>[0] } = {}) {
  const copy = await tmpDir('copy');
  const outside = await tmpDir('outside');
  const events: string[] = [];
  const a = new Applier({
    dirs: [{ dir: D, root: copy, filter: opts.notreplicated ? compileFilter(opts.notreplicated) : undefined }],
    fs: opts.fs?.(events),
  });
  try {
    await fn({ copy, outside, a, events });
  } finally {
    await a.close();
    await rmrf(copy);
    await rmrf(outside);
  }
}

async function failure(p: Promise<unknown>): Promise<ErrnoError> {
  try {
    await p;
  } catch (e) {
    assert.instance(e, ErrnoError);
    return e as ErrnoError;
  }
  throw new Error('expected the change to be refused');
}

type NoDir<T> = T extends unknown ? Omit<T, 'dir'> : never;

const st = (p: string) => fsp.lstat(p, { bigint: true });

test('each operation gives the result it had on PRIM', async () => {
  await withCopy(async ({ copy, a }) => {
    const ap = (c: NoDir<Change>) => a.apply({ dir: D, ...c } as Change);
    const p = (r: string) => path.join(copy, r);
    await ap({ op: 'mkdir', path: 'd', mode: 0o2775 });
    assert.is(Number((await st(p('d'))).mode) & 0o7777, 0o2775, 'exact mode, whatever the umask');
    await ap({ op: 'create', path: 'd/f', mode: 0o666 });
    assert.is(Number((await st(p('d/f'))).mode) & 0o7777, 0o666);
    await ap({ op: 'write', path: 'd/f', offset: 0, data: Buffer.from('hello world') });
    await ap({ op: 'write', path: 'd/f', offset: 6, data: Buffer.from('WORLD!') });
    assert.is(await fsp.readFile(p('d/f'), 'utf8'), 'hello WORLD!');
    await ap({ op: 'write', path: 'd/f', offset: 20, data: Buffer.from('x') });
    assert.is((await fsp.readFile(p('d/f'))).length, 21, 'a write past EOF leaves a hole of zeros');
    await ap({ op: 'truncate', path: 'd/f', size: 5 });
    assert.is(await fsp.readFile(p('d/f'), 'utf8'), 'hello');
    await ap({ op: 'mknod', path: 'regular', mode: 0o100600, rdev: 0 });
    assert.ok((await st(p('regular'))).isFile());
    await ap({ op: 'symlink', target: '../../anywhere/at/all', path: 'link' });
    assert.is(await fsp.readlink(p('link')), '../../anywhere/at/all');
    await ap({ op: 'link', from: 'd/f', to: 'hard' });
    assert.is((await st(p('hard'))).ino, (await st(p('d/f'))).ino);
    await ap({ op: 'chmod', path: 'd/f', mode: 0o4750 });
    assert.is(Number((await st(p('d/f'))).mode) & 0o7777, 0o4750);
    await ap({ op: 'chmod', path: '.', mode: 0o711 });
    assert.is(Number((await st(copy)).mode) & 0o7777, 0o711);
    await ap({ op: 'chown', path: 'd/f', uid: 1234, gid: -1 });
    assert.equal([(await st(p('d/f'))).uid, (await st(p('d/f'))).gid], [1234n, 0n]);
    await ap({ op: 'chown', path: 'link', uid: 42, gid: 43 });
    assert.equal([(await st(p('link'))).uid, (await st(p('link'))).gid], [42n, 43n], 'the symlink itself');
    await ap({ op: 'utimens', path: 'd/f', atime: [1_600_000_000, 250_000_000], mtime: [1_500_000_000, 125_000_000] });
    assert.is((await st(p('d/f'))).mtimeNs, 1_500_000_000_125_000_000n);
    assert.is((await st(p('d/f'))).atimeNs, 1_600_000_000_250_000_000n);
    await ap({ op: 'utimens', path: 'd/f', atime: null, mtime: [1_400_000_000, 0] });
    assert.is((await st(p('d/f'))).mtimeNs, 1_400_000_000_000_000_000n);
    assert.is((await st(p('d/f'))).atimeNs, 1_600_000_000_250_000_000n, 'an omitted time is kept');
    await ap({ op: 'utimens', path: 'link', atime: [5, 0], mtime: [6, 0] });
    assert.is((await st(p('link'))).mtimeNs, 6_000_000_000n, 'the symlink itself');
    await ap({ op: 'rename', from: 'regular', to: 'd/moved', flags: 0 });
    assert.equal(await listAll(copy), ['d', 'd/f', 'd/moved', 'hard', 'link']);
    await ap({ op: 'unlink', path: 'hard' });
    await ap({ op: 'unlink', path: 'link' });
    await ap({ op: 'unlink', path: 'd/moved' });
    await ap({ op: 'unlink', path: 'd/f' });
    await ap({ op: 'rmdir', path: 'd' });
    assert.equal(await listAll(copy), []);
    assert.is(a.failed, null);
  });
});

test('rename flags: NOREPLACE refuses an existing destination (the copies differ), EXCHANGE swaps', async () => {
  await withCopy(async ({ copy, a }) => {
    await fsp.writeFile(path.join(copy, 'a'), 'A');
    await fsp.mkdir(path.join(copy, 'dir'));
    await fsp.writeFile(path.join(copy, 'dir/b'), 'B');
    await a.apply({ dir: D, op: 'rename', from: 'a', to: 'dir/b', flags: RENAME_EXCHANGE });
    assert.is(await fsp.readFile(path.join(copy, 'a'), 'utf8'), 'B');
    assert.is(await fsp.readFile(path.join(copy, 'dir/b'), 'utf8'), 'A');
    assert.equal(await listAll(copy), ['a', 'dir', 'dir/b'], 'no temporary name left');
    await a.apply({ dir: D, op: 'rename', from: 'a', to: 'c', flags: RENAME_NOREPLACE });
    const e = await failure(a.apply({ dir: D, op: 'rename', from: 'c', to: 'dir/b', flags: RENAME_NOREPLACE }));
    assert.is(e.code, 'EEXIST');
    assert.is(await fsp.readFile(path.join(copy, 'dir/b'), 'utf8'), 'A', 'not replaced');
  });
  await withCopy(async ({ a }) => {
    const e = await failure(a.apply({ dir: D, op: 'rename', from: 'x', to: 'y', flags: 4 }));
    assert.is(e.code, 'EOPNOTSUPP');
  });
});

test('fallocate: same size and contents as on PRIM', async () => {
  await withCopy(async ({ copy, a }) => {
    const f = path.join(copy, 'f');
    await fsp.writeFile(f, Buffer.alloc(10, 0x61));
    await a.apply({ dir: D, op: 'fallocate', path: 'f', mode: 0, offset: 5, length: 20 });
    assert.equal(await fsp.readFile(f), Buffer.concat([Buffer.alloc(10, 0x61), Buffer.alloc(15)]));
    await a.apply({ dir: D, op: 'fallocate', path: 'f', mode: FALLOC_FL_KEEP_SIZE, offset: 0, length: 100 });
    assert.is((await fsp.stat(f)).size, 25);
    await a.apply({ dir: D, op: 'fallocate', path: 'f', mode: FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset: 2, length: 100 });
    assert.equal(await fsp.readFile(f), Buffer.concat([Buffer.alloc(2, 0x61), Buffer.alloc(23)]));
    await fsp.writeFile(f, Buffer.alloc(4, 0x62));
    await a.apply({ dir: D, op: 'fallocate', path: 'f', mode: FALLOC_FL_ZERO_RANGE, offset: 1, length: 5 });
    assert.equal(await fsp.readFile(f), Buffer.from([0x62, 0, 0, 0, 0, 0]));
  });
  await withCopy(async ({ copy, a }) => {
    await fsp.writeFile(path.join(copy, 'f'), 'x');
    const e = await failure(a.apply({ dir: D, op: 'fallocate', path: 'f', mode: 0x08, offset: 0, length: 1 }));
    assert.is(e.code, 'EOPNOTSUPP');
  });
});

test('not replicable: xattrs, device nodes and FIFOs are refused with EOPNOTSUPP, and nothing is created', async () => {
  for (const c of [
    { op: 'setxattr', path: 'f', name: 'user.a', value: Buffer.from('v'), flags: 0 },
    { op: 'removexattr', path: 'f', name: 'user.a' },
    { op: 'mknod', path: 'fifo', mode: 0o010644, rdev: 0 },
    { op: 'mknod', path: 'sda', mode: 0o060600, rdev: 0x800 },
  ]) {
    await withCopy(async ({ copy, a }) => {
      await fsp.writeFile(path.join(copy, 'f'), '');
      const e = await failure(a.apply({ dir: D, ...c } as Change));
      assert.is(e.code, 'EOPNOTSUPP', c.op);
      assert.equal(await listAll(copy), ['f']);
    });
  }
});

test('failure is sticky: later changes are refused with the same errno and not applied, until reset', async () => {
  await withCopy(async ({ copy, a }) => {
    const e = await failure(a.apply({ dir: D, op: 'write', path: 'missing', offset: 0, data: Buffer.from('x') }, 'change 7'));
    assert.is(e.code, 'ENOENT');
    assert.match(e.message, /change 7 \(write "missing" @0 \+1 in \/srv\/app\/data\)/);
    assert.equal(a.failed?.code, 'ENOENT');
    const later = await failure(a.apply({ dir: D, op: 'mkdir', path: 'd', mode: 0o755 }, 'change 8'));
    assert.is(later.code, 'ENOENT');
    assert.match(later.message, /change 8 refused: the replica failed earlier/);
    assert.equal(await listAll(copy), [], 'the later change was not applied');
    await a.reset();
    assert.is(a.failed, null);
    await a.apply({ dir: D, op: 'mkdir', path: 'd', mode: 0o755 });
    assert.equal(await listAll(copy), ['d']);
  });
});

test('activity log: a file is noted before its data changes in place, the log is told after a syncfs; a log that fails refuses the change', async () => {
  const copy = await tmpDir('copy');
  const events: string[] = [];
  let broken = false;
  const log = {
    beforeChange: async (rel: string) => {
      if (broken) throw new Error('log disk full');
      events.push(`note ${rel}`);
    },
    durable: async () => void events.push('durable'),
  };
  const fsHooked = hookedFs({ write: () => void events.push('write') }, events);
  const a = new Applier({ dirs: [{ dir: D, root: copy }], fs: fsHooked, activity: (dir) => (dir === D ? log : null) });
  try {
    await a.apply({ dir: D, op: 'create', path: 'f', mode: 0o644 });
    assert.not.ok(events.some((e) => e.startsWith('note')), 'a create changes no data in place');
    events.length = 0;
    await a.apply({ dir: D, op: 'write', path: 'f', offset: 0, data: Buffer.from('abc') });
    await a.apply({ dir: D, op: 'truncate', path: 'f', size: 2 });
    const notes = events.filter((e) => e.startsWith('note'));
    assert.equal(notes, ['note f', 'note f']);
    assert.ok(events.indexOf('note f') < events.indexOf('write'), `noted before the write: ${events.join(', ')}`);
    events.length = 0;
    await a.apply({ dir: D, op: 'sync', path: '.', datasync: false, syncfs: true });
    assert.is(events[events.length - 1], 'durable', `told after the syncfs: ${events.join(', ')}`);
    broken = true;
    const e = await failure(a.apply({ dir: D, op: 'write', path: 'f', offset: 0, data: Buffer.from('zz') }));
    assert.match(e.message, /log disk full/);
    assert.is(await fsp.readFile(path.join(copy, 'f'), 'utf8'), 'ab', 'the change the log could not cover was not made');
  } finally {
    await a.close();
    await rmrf(copy);
  }
});

test('apply calls run one at a time, in call order, even when not awaited', async () => {
  await withCopy(async ({ copy, a }) => {
    const all = [
      a.apply({ dir: D, op: 'mkdir', path: 'd', mode: 0o755 }),
      a.apply({ dir: D, op: 'create', path: 'd/f', mode: 0o644 }),
      a.apply({ dir: D, op: 'write', path: 'd/f', offset: 0, data: Buffer.from('1') }),
      a.apply({ dir: D, op: 'rename', from: 'd', to: 'e', flags: 0 }),
      a.apply({ dir: D, op: 'write', path: 'e/f', offset: 1, data: Buffer.from('2') }),
    ];
    await Promise.all(all);
    assert.is(await fsp.readFile(path.join(copy, 'e/f'), 'utf8'), '12');
  });
});

test('an unknown replicated dir is refused', async () => {
  await withCopy(async ({ a }) => {
    const e = await failure(a.apply({ dir: '/etc', op: 'mkdir', path: 'd', mode: 0o755 }));
    assert.is(e.code, 'EINVAL');
    assert.match(e.message, /"\/etc" is not a replicated directory/);
  });
});

// ── path traversal from a malicious or buggy PRIM ──────────────────────────────────────────────────────────────

const hostile: Array<[string, Change[], string[]]> = [
  ['../ in a write', [{ dir: D, op: 'write', path: '../outside-file', offset: 0, data: Buffer.from('x') }], ['EINVAL']],
  ['an absolute path', [{ dir: D, op: 'create', path: '/tmp/evil', mode: 0o644 }], ['EINVAL']],
  ['a NUL in a name', [{ dir: D, op: 'mkdir', path: 'a\0b', mode: 0o755 }], ['EINVAL']],
  ['a name over 255 bytes', [{ dir: D, op: 'mkdir', path: 'n'.repeat(256), mode: 0o755 }], ['ENAMETOOLONG']],
  ['a path over PATH_MAX', [{ dir: D, op: 'unlink', path: Array(1500).fill('abc').join('/') }], ['ENAMETOOLONG']],
  ['an empty component', [{ dir: D, op: 'unlink', path: 'a//b' }], ['EINVAL']],
  ['the root itself removed', [{ dir: D, op: 'rmdir', path: '.' }], ['EINVAL']],
  ['a rename out of the tree', [{ dir: D, op: 'create', path: 'f', mode: 0o644 }, { dir: D, op: 'rename', from: 'f', to: '../stolen', flags: 0 }], ['EINVAL']],
  ['a hard link to a file outside', [{ dir: D, op: 'link', from: '../../etc/passwd', to: 'pw' }], ['EINVAL']],
  // a symlink is legal data, but nothing may go through it afterwards
  ['a write below a symlink to outside', [{ dir: D, op: 'symlink', target: '@OUT', path: 'esc' }, { dir: D, op: 'write', path: 'esc/pwned', offset: 0, data: Buffer.from('x') }], ['ENOTDIR', 'ELOOP']],
  ['a create below a symlink to outside', [{ dir: D, op: 'symlink', target: '@OUT', path: 'esc' }, { dir: D, op: 'create', path: 'esc/pwned', mode: 0o644 }], ['ENOTDIR', 'ELOOP']],
  ['a mkdir below a relative symlink', [{ dir: D, op: 'symlink', target: '../../../../../..@OUT', path: 'esc' }, { dir: D, op: 'mkdir', path: 'esc/d', mode: 0o755 }], ['ENOTDIR', 'ELOOP']],
  ['a rename into a symlinked dir', [{ dir: D, op: 'symlink', target: '@OUT', path: 'esc' }, { dir: D, op: 'create', path: 'f', mode: 0o644 }, { dir: D, op: 'rename', from: 'f', to: 'esc/f', flags: 0 }], ['ENOTDIR', 'ELOOP']],
  ['a chmod through a symlink', [{ dir: D, op: 'symlink', target: '@OUT', path: 'esc' }, { dir: D, op: 'chmod', path: 'esc', mode: 0o777 }], ['ELOOP']],
  ['a write through a symlink to an outside file', [{ dir: D, op: 'symlink', target: '@OUT/victim', path: 'esc' }, { dir: D, op: 'write', path: 'esc', offset: 0, data: Buffer.from('x') }], ['ELOOP']],
  ['a truncate through a symlink', [{ dir: D, op: 'symlink', target: '@OUT/victim', path: 'esc' }, { dir: D, op: 'truncate', path: 'esc', size: 0 }], ['ELOOP']],
  ['a create over a symlink', [{ dir: D, op: 'symlink', target: '@OUT/new', path: 'esc' }, { dir: D, op: 'create', path: 'esc', mode: 0o644 }], ['EEXIST']],
  ['a fallocate through a symlink', [{ dir: D, op: 'symlink', target: '@OUT/victim', path: 'esc' }, { dir: D, op: 'fallocate', path: 'esc', mode: 0, offset: 0, length: 10 }], ['ELOOP']],
  ['a sync below a symlink', [{ dir: D, op: 'symlink', target: '@OUT', path: 'esc' }, { dir: D, op: 'sync', path: 'esc/victim', datasync: false }], ['ENOTDIR', 'ELOOP']],
];

for (const [name, changes, codes] of hostile) {
  test(`path traversal refused: ${name}; nothing outside the root changes`, async () => {
    await withCopy(async ({ outside, a }) => {
      await fsp.writeFile(path.join(outside, 'victim'), 'untouched');
      await fsp.chmod(outside, 0o755);
      const before = await fsp.lstat(path.join(outside, 'victim'), { bigint: true });
      const fix = (c: Change): Change => (c.op === 'symlink' ? { ...c, target: c.target.replace('@OUT', outside) } : c);
      let err: ErrnoError | null = null;
      for (const c of changes) {
        try {
          await a.apply(fix(c));
        } catch (e) {
          err = e as ErrnoError;
          break;
        }
      }
      assert.ok(err, 'the hostile change was applied');
      assert.ok(codes.includes(err!.code), `${err!.code}: ${err!.message}`);
      assert.ok(a.failed, 'the applier is marked failed');
      assert.equal(await listAll(outside), ['victim']);
      const after = await fsp.lstat(path.join(outside, 'victim'), { bigint: true });
      assert.is(await fsp.readFile(path.join(outside, 'victim'), 'utf8'), 'untouched');
      assert.equal([after.mode, after.size, after.mtimeNs], [before.mode, before.size, before.mtimeNs]);
      assert.is((await fsp.stat(outside)).mode & 0o777, 0o755);
      assert.not.ok(await fsp.access(path.join(path.dirname(outside), 'outside-file')).then(() => true, () => false));
    });
  });
}

test('a parent swapped for a symlink between two changes does not redirect the next change', async () => {
  await withCopy(async ({ copy, outside, a }) => {
    await a.apply({ dir: D, op: 'mkdir', path: 'sub', mode: 0o755 });
    // something outside the applier swaps the directory (the copy is not writable by applications; this is the worst case)
    await fsp.rename(path.join(copy, 'sub'), path.join(copy, 'sub.old'));
    await fsp.symlink(outside, path.join(copy, 'sub'));
    const e = await failure(a.apply({ dir: D, op: 'create', path: 'sub/x', mode: 0o644 }));
    assert.ok(['ENOTDIR', 'ELOOP'].includes(e.code));
    assert.equal(await listAll(outside), []);
  });
});

test('a swap DURING a change (after its parents were opened) still lands inside the root', async () => {
  let swapped = false;
  let copyDir = '';
  let outsideDir = '';
  const fs = () =>
    hookedFs({
      open: async (target, flags) => {
        // when the applier opens the file itself (its parent is already held), swap the parent for a symlink
        if (!swapped && target.endsWith('/victim') && flags & 0o100 /* O_CREAT */) {
          swapped = true;
          await fsp.rename(path.join(copyDir, 'sub'), path.join(copyDir, 'sub.old'));
          await fsp.symlink(outsideDir, path.join(copyDir, 'sub'));
        }
      },
    });
  await withCopy(async ({ copy, outside, a }) => {
    copyDir = copy;
    outsideDir = outside;
    await fsp.mkdir(path.join(copy, 'sub'));
    await a.apply({ dir: D, op: 'create', path: 'sub/victim', mode: 0o644 });
    assert.ok(swapped);
    assert.equal(await listAll(outside), []);
    assert.ok((await fsp.lstat(path.join(copy, 'sub.old/victim'))).isFile());
  }, { fs });
});

test('notreplicated paths are skipped; renames and links across the boundary are refused with EXDEV', async () => {
  await withCopy(async ({ copy, a }) => {
    await fsp.mkdir(path.join(copy, 'logs'));
    await fsp.writeFile(path.join(copy, 'logs/local.log'), 'this node only');
    await a.apply({ dir: D, op: 'write', path: 'logs/local.log', offset: 0, data: Buffer.from('FROM PRIM') });
    await a.apply({ dir: D, op: 'unlink', path: 'logs/local.log' });
    await a.apply({ dir: D, op: 'create', path: 'x.tmp', mode: 0o644 });
    await a.apply({ dir: D, op: 'rename', from: 'logs/a', to: 'logs/b', flags: 0 });
    assert.is(await fsp.readFile(path.join(copy, 'logs/local.log'), 'utf8'), 'this node only');
    assert.equal(await listAll(copy), ['logs', 'logs/local.log']);
    await a.apply({ dir: D, op: 'create', path: 'data', mode: 0o644 });
    const e = await failure(a.apply({ dir: D, op: 'rename', from: 'data', to: 'logs/data', flags: 0 }));
    assert.is(e.code, 'EXDEV');
    assert.ok((await fsp.lstat(path.join(copy, 'data'))).isFile());
  }, { notreplicated: [{ path: 'logs' }, { regexpath: '\\.tmp$' }] });
});

test('"!re" filter: a chmod on an existing directory is applied even though its name does not match', async () => {
  await withCopy(async ({ copy, a }) => {
    await a.apply({ dir: D, op: 'mkdir', path: 'dir', mode: 0o755 });
    await a.apply({ dir: D, op: 'create', path: 'dir/x.db', mode: 0o600 });
    await a.apply({ dir: D, op: 'create', path: 'dir/x.txt', mode: 0o600 });
    await a.apply({ dir: D, op: 'chmod', path: 'dir', mode: 0o700 });
    assert.equal(await listAll(copy), ['dir', 'dir/x.db']);
    assert.is((await fsp.stat(path.join(copy, 'dir'))).mode & 0o777, 0o700);
  }, { notreplicated: [{ regexpath: '!\\.db$' }] });
});

// ── storage errors ─────────────────────────────────────────────────────────────────────────────────────────────

test('disk full (ENOSPC) and quota (EDQUOT) on write: refused with the errno, replica failed', async () => {
  for (const [code, errno] of [['ENOSPC', 28], ['EDQUOT', 122], ['EROFS', 30]] as const) {
    await withCopy(async ({ copy, a }) => {
      await fsp.writeFile(path.join(copy, 'f'), 'old');
      const e = await failure(a.apply({ dir: D, op: 'write', path: 'f', offset: 0, data: Buffer.from('new') }));
      assert.equal([e.code, e.errno], [code, errno]);
      assert.equal(a.failed?.errno, errno);
      assert.is(await fsp.readFile(path.join(copy, 'f'), 'utf8'), 'old');
    }, { fs: () => hookedFs({ write: () => { throw fsError(code, errno); } }) });
  }
});

test('out of inodes on mkdir: ENOSPC', async () => {
  await withCopy(async ({ a }) => {
    const e = await failure(a.apply({ dir: D, op: 'mkdir', path: 'd', mode: 0o755 }));
    assert.is(e.code, 'ENOSPC');
  }, { fs: () => hookedFs({ mkdir: () => { throw fsError('ENOSPC', 28); } }) });
});

test('fsync returning EIO: reported, never retried, and the next sync of the same file is refused too', async () => {
  let fsyncs = 0;
  await withCopy(async ({ copy, a }) => {
    await fsp.writeFile(path.join(copy, 'f'), '');
    await a.apply({ dir: D, op: 'write', path: 'f', offset: 0, data: Buffer.from('data') });
    const e = await failure(a.apply({ dir: D, op: 'sync', path: 'f', datasync: false }));
    assert.equal([e.code, e.errno], ['EIO', 5]);
    assert.is(fsyncs, 1);
    const again = await failure(a.apply({ dir: D, op: 'sync', path: 'f', datasync: false }));
    assert.is(again.code, 'EIO');
    assert.is(fsyncs, 1, 'not retried');
  }, { fs: () => hookedFs({ fsync: () => { fsyncs++; throw fsError('EIO', 5); } }) });
});

// ── durability ─────────────────────────────────────────────────────────────────────────────────────────────────

test('sync: the file, then every directory whose entries changed since the last sync', async () => {
  await withCopy(async ({ copy, a, events }) => {
    const real = await fsp.realpath(copy);
    await a.apply({ dir: D, op: 'mkdir', path: 'd', mode: 0o755 });
    await a.apply({ dir: D, op: 'create', path: 'd/f', mode: 0o644 });
    await a.apply({ dir: D, op: 'write', path: 'd/f', offset: 0, data: Buffer.from('x') });
    assert.equal(events, [], 'nothing is fsync\'d before a durable point');
    await a.apply({ dir: D, op: 'sync', path: 'd/f', datasync: true });
    assert.is(events[0], `fdatasync ${real}/d/f`, 'the file first');
    assert.equal(events.slice(1).sort(), [`fsync ${real}`, `fsync ${real}/d`]);
    events.length = 0;
    await a.apply({ dir: D, op: 'sync', path: 'd/f', datasync: false });
    assert.equal(events, [`fsync ${real}/d/f`], 'directories already durable are not fsync\'d again');
  }, { fs: (events) => hookedFs({}, events) });
});

test('sync with syncfs: a syncfs of the copy\'s filesystem; pending directory fsyncs are then not needed', async () => {
  const synced: string[] = [];
  await withCopy(async ({ copy, a, events }) => {
    await a.apply({ dir: D, op: 'mkdir', path: 'd', mode: 0o755 });
    await a.apply({ dir: D, op: 'create', path: 'd/f', mode: 0o644 });
    await a.apply({ dir: D, op: 'write', path: 'd/f', offset: 0, data: Buffer.from('x') });
    await a.apply({ dir: D, op: 'sync', path: '.', datasync: false, syncfs: true });
    assert.equal(synced, [copy]);
    assert.equal(events, [], 'no file or directory fsync: the syncfs covers them');
    await a.apply({ dir: D, op: 'sync', path: 'd/f', datasync: true });
    assert.equal(events.length, 1, `only the file: ${events.join(', ')}`);
  }, { fs: (events) => ({ ...hookedFs({}, events), syncfs: async (p) => { synced.push(p); } }) });
  await withCopy(async ({ a }) => {
    const e = await failure(a.apply({ dir: D, op: 'sync', path: '.', datasync: false, syncfs: true }));
    assert.is(e.code, 'EIO');
  }, { fs: (events) => ({ ...hookedFs({}, events), syncfs: async () => { throw fsError('EIO', -5, 'sync -f failed'); } }) });
});

test('a sync-flagged write is fdatasync\'d / fsync\'d; a flagged rename fsyncs both parents', async () => {
  await withCopy(async ({ copy, a, events }) => {
    const real = await fsp.realpath(copy);
    await fsp.mkdir(path.join(copy, 'a'));
    await fsp.mkdir(path.join(copy, 'b'));
    await fsp.writeFile(path.join(copy, 'a/f'), '');
    await a.apply({ dir: D, op: 'write', path: 'a/f', offset: 0, data: Buffer.from('x'), sync: 'data' });
    assert.equal(events, [`fdatasync ${real}/a/f`]);
    events.length = 0;
    await a.apply({ dir: D, op: 'write', path: 'a/f', offset: 0, data: Buffer.from('y'), sync: 'full' });
    assert.equal(events, [`fsync ${real}/a/f`]);
    events.length = 0;
    await a.apply({ dir: D, op: 'rename', from: 'a/f', to: 'b/g', flags: 0, sync: 'full' });
    assert.equal(events.slice(0, 2), [`fsync ${real}/a`, `fsync ${real}/b`]);
  }, { fs: (events) => hookedFs({}, events) });
});

test('pending directory fsyncs follow a renamed directory and are dropped with a removed one', async () => {
  await withCopy(async ({ copy, a, events }) => {
    const real = await fsp.realpath(copy);
    await a.apply({ dir: D, op: 'mkdir', path: 'd', mode: 0o755 });
    await a.apply({ dir: D, op: 'mkdir', path: 'd/sub', mode: 0o755 });
    await a.apply({ dir: D, op: 'create', path: 'd/sub/f', mode: 0o644 });
    await a.apply({ dir: D, op: 'mkdir', path: 'gone', mode: 0o755 });
    await a.apply({ dir: D, op: 'create', path: 'gone/x', mode: 0o644 });
    await a.apply({ dir: D, op: 'unlink', path: 'gone/x' });
    await a.apply({ dir: D, op: 'rmdir', path: 'gone' });
    await a.apply({ dir: D, op: 'rename', from: 'd', to: 'e', flags: 0 });
    await a.apply({ dir: D, op: 'sync', path: 'e/sub/f', datasync: false });
    assert.equal(events.slice(1).sort(), [`fsync ${real}`, `fsync ${real}/e`, `fsync ${real}/e/sub`]);
    assert.is(a.failed, null);
  }, { fs: (events) => hookedFs({}, events) });
});

test('kept write descriptors follow names: after a rename, an unlink or a re-create, writes reach the object now at the path', async () => {
  await withCopy(async ({ copy, a }) => {
    const ap = (c: NoDir<Change>) => a.apply({ dir: D, ...c } as Change);
    const read = (r: string) => fsp.readFile(path.join(copy, r), 'utf8');
    await ap({ op: 'create', path: 'a', mode: 0o644 });
    await ap({ op: 'write', path: 'a', offset: 0, data: Buffer.from('first') });
    await ap({ op: 'rename', from: 'a', to: 'b', flags: 0 });
    await ap({ op: 'create', path: 'a', mode: 0o644 });
    await ap({ op: 'write', path: 'a', offset: 0, data: Buffer.from('second') });
    assert.is(await read('b'), 'first', 'the renamed file kept its content');
    assert.is(await read('a'), 'second', 'the new file got the write');
    await ap({ op: 'write', path: 'b', offset: 5, data: Buffer.from('+') });
    await ap({ op: 'unlink', path: 'a' });
    await ap({ op: 'create', path: 'a', mode: 0o644 });
    await ap({ op: 'write', path: 'a', offset: 0, data: Buffer.from('third') });
    await ap({ op: 'truncate', path: 'b', size: 3 });
    await ap({ op: 'sync', path: 'a', datasync: true });
    assert.is(await read('a'), 'third');
    assert.is(await read('b'), 'fir');
    // more files than the descriptor cache holds: every write still lands
    for (let i = 0; i < 100; i++) await ap({ op: 'create', path: `f${i}`, mode: 0o600 });
    for (let r = 0; r < 2; r++) for (let i = 0; i < 100; i++) await ap({ op: 'write', path: `f${i}`, offset: r, data: Buffer.from(String(r)) });
    for (let i = 0; i < 100; i++) assert.is(await read(`f${i}`), '01');
  });
});

test('utimens sets times exact to the microsecond (no double rounding below it)', async () => {
  await withCopy(async ({ copy, a }) => {
    await a.apply({ dir: D, op: 'create', path: 't', mode: 0o644 });
    for (const [sec, nsec] of [[1795330317, 647628123], [1795330317, 999999999], [1700000000, 1000], [1234567890, 0]] as const) {
      await a.apply({ dir: D, op: 'utimens', path: 't', atime: [sec, nsec], mtime: [sec, nsec] });
      const s = await st(path.join(copy, 't'));
      const want = BigInt(sec) * 1_000_000n + BigInt(Math.floor(nsec / 1000));
      assert.is(s.mtimeNs / 1000n, want, `mtime ${sec}.${nsec}`);
      assert.is(s.atimeNs / 1000n, want, `atime ${sec}.${nsec}`);
    }
  });
});

test.run();
