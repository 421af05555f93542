// The FUSE passthrough on a real /dev/fuse mount (root). Each test mounts a fresh temp backing dir
// (/tmp/tandem-fuse-lab-*/backing at …/mnt) and unmounts it in `finally`. The server runs in this process's worker
// thread; this thread touches the mount only with async fs calls, and child processes (sh, coreutils, setpriv)
// do the rest. Every operation is checked against the backing directory.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { run } from '../../src/platform/exec.js';
import { mountPassthrough, type PassthroughMount, RecordingSink } from '../../src/replication/fuse/index.js';
import type { AsyncChangeSink, Change } from '../../src/replication/fuse/sink.js';

const PREFIX = '/tmp/tandem-fuse-lab-';

interface Lab {
  base: string;
  backing: string;
  mnt: string;
  m: PassthroughMount;
  sink: RecordingSink;
  logs: string[];
  /** run a shell script in the mount (cwd = mount), as root */
  sh(script: string): Promise<{ code: number; stdout: string; stderr: string }>;
  /** absolute paths */
  M(rel: string): string;
  B(rel: string): string;
}

interface LabOptions {
  sink?: AsyncChangeSink;
  sinkTimeoutMs?: number;
  /** mount the backing dir over itself */
  over?: boolean;
  /** a test that deliberately leaves the mount busy/hung needs longer */
  timeoutMs?: number;
}

async function withMount(fn: (l: Lab) => Promise<void>, o: LabOptions = {}): Promise<void> {
  const base = fs.mkdtempSync(PREFIX);
  fs.chmodSync(base, 0o755); // nobody must be able to reach the mount and the backing dir
  const backing = path.join(base, 'backing');
  const mnt = o.over ? backing : path.join(base, 'mnt');
  fs.mkdirSync(backing);
  if (!o.over) fs.mkdirSync(mnt);
  const sink = new RecordingSink();
  const logs: string[] = [];
  let m: PassthroughMount | null = null;
  try {
    if (o.over) await fsp.writeFile(path.join(backing, 'pre-existing'), 'was here before the mount');
    m = await mountPassthrough({ backing, mountpoint: mnt, sink: o.sink ?? sink, sinkTimeoutMs: o.sinkTimeoutMs, log: (l) => logs.push(l) });
    const lab: Lab = {
      base, backing, mnt, m, sink, logs,
      sh: (script) => run('sh', ['-c', `cd '${mnt}' && umask 022 && ${script}`], { reject: false, timeoutMs: 120_000 }),
      M: (rel) => path.join(mnt, rel),
      B: (rel) => path.join(backing, rel),
    };
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      fn(lab),
      new Promise((_, rej) => { timer = setTimeout(() => rej(new Error('test timed out; unmounting')), o.timeoutMs ?? 120_000); }),
    ]).finally(() => clearTimeout(timer));
  } catch (err) {
    if (logs.length) console.error(`server log:\n  ${logs.join('\n  ')}`);
    throw err;
  } finally {
    await m?.unmount();
    const left = mountedUnder(base);
    if (left.length === 0) await fsp.rm(base, { recursive: true, force: true }); // never recurse into a live mount
    assert.equal(left, [], `nothing left mounted under ${base}`);
  }
}

function mountedUnder(base: string): string[] {
  return fs.readFileSync('/proc/mounts', 'utf8').split('\n').filter((l) => l.split(' ')[1]?.startsWith(base));
}

/** the same file seen through the mount and in the backing dir: same inode, type, mode, owner, size, mtime, content */
async function same(l: Lab, rel: string): Promise<fs.Stats> {
  const [a, b] = await Promise.all([fsp.lstat(l.M(rel)), fsp.lstat(l.B(rel))]);
  const pick = (s: fs.Stats) => ({ ino: s.ino, mode: s.mode, uid: s.uid, gid: s.gid, size: s.size, nlink: s.nlink, mtimeMs: s.mtimeMs, rdev: s.rdev });
  assert.equal(pick(a), pick(b), `${rel}: mount and backing attributes`);
  if (a.isFile()) assert.ok((await fsp.readFile(l.M(rel))).equals(await fsp.readFile(l.B(rel))), `${rel}: content`);
  if (a.isSymbolicLink()) assert.is(await fsp.readlink(l.M(rel)), await fsp.readlink(l.B(rel)));
  return b;
}

async function ok(l: Lab, script: string): Promise<string> {
  const r = await l.sh(script);
  assert.is(r.code, 0, `${script}\n${r.stderr}`);
  return r.stdout;
}

async function rejects(p: Promise<unknown>, code: string): Promise<void> {
  try {
    await p;
  } catch (e) {
    assert.is((e as NodeJS.ErrnoException).code, code);
    return;
  }
  throw new Error(`expected ${code}`);
}

const asNobody = (script: string) =>
  run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'sh', '-c', script], { reject: false, timeoutMs: 60_000 });

test('create, write, read, append, truncate through the mount match the backing dir', () => withMount(async (l) => {
  await fsp.writeFile(l.M('a.txt'), 'hello');
  assert.is(await fsp.readFile(l.B('a.txt'), 'utf8'), 'hello');
  await fsp.appendFile(l.M('a.txt'), ' world');
  await ok(l, 'echo "!" >> a.txt && printf more >> a.txt');
  assert.is(await fsp.readFile(l.M('a.txt'), 'utf8'), 'hello world!\nmore');
  await same(l, 'a.txt');
  await ok(l, 'truncate -s 5 a.txt');
  assert.is(await fsp.readFile(l.B('a.txt'), 'utf8'), 'hello');
  await ok(l, 'truncate -s 100000 a.txt');
  await same(l, 'a.txt');
  await ok(l, 'head -c 3000000 /dev/urandom > big && cp big big.copy && cmp big big.copy');
  await same(l, 'big');
  await same(l, 'big.copy');
  const fh = await fsp.open(l.M('pos'), 'w+');
  await fh.write(Buffer.from('xyz'), 0, 3, 10_000_000);
  await fh.close();
  const s = await same(l, 'pos');
  assert.is(s.size, 10_000_003);
}));

test('O_APPEND from two handles interleaves at the real end of file', () => withMount(async (l) => {
  const a = await fsp.open(l.M('log'), 'a');
  const b = await fsp.open(l.M('log'), 'a');
  for (let i = 0; i < 5; i++) {
    await a.write(`a${i}\n`);
    await b.write(`b${i}\n`);
  }
  await a.close();
  await b.close();
  assert.is(await fsp.readFile(l.B('log'), 'utf8'), 'a0\nb0\na1\nb1\na2\nb2\na3\nb3\na4\nb4\n');
  const writes = l.sink.events.filter((c): c is Extract<Change, { op: 'write' }> => c.op === 'write');
  assert.equal(writes.map((w) => w.offset), [0, 3, 6, 9, 12, 15, 18, 21, 24, 27]);
}));

test('rename: plain, over an existing file, of an open file; mv across directories', () => withMount(async (l) => {
  await ok(l, 'echo one > one && echo two > two && mkdir d');
  const open = await fsp.open(l.M('one'), 'r+');
  await ok(l, 'mv one two');
  assert.is(await fsp.readFile(l.B('two'), 'utf8'), 'one\n');
  assert.not.ok(fs.existsSync(l.B('one')));
  await ok(l, 'mv two d/three');
  await open.write('ONE', 0);
  await open.close();
  assert.is(await fsp.readFile(l.B('d/three'), 'utf8'), 'ONE\n', 'the open file followed its renames');
  await fsp.rename(l.M('d'), l.M('e'));
  await same(l, 'e/three');
  const stillOpen = await fsp.open(l.M('e/three'), 'r');
  await fsp.writeFile(l.M('replacement'), 'new');
  await fsp.rename(l.M('replacement'), l.M('e/three'));
  assert.is((await stillOpen.read(Buffer.alloc(10), 0, 10, 0)).bytesRead, 4, 'the replaced file stays readable');
  await stillOpen.close();
  assert.is(await fsp.readFile(l.M('e/three'), 'utf8'), 'new');
  const renames = l.sink.summary().filter((s) => s.startsWith('rename'));
  assert.equal(renames, ['rename one → two', 'rename two → d/three flags 1', 'rename d → e', 'rename replacement → e/three']);
}));

test('unlink of an open file: still readable and writable through the handle', () => withMount(async (l) => {
  await fsp.writeFile(l.M('tmp'), 'keep me');
  const fh = await fsp.open(l.M('tmp'), 'r+');
  await fsp.unlink(l.M('tmp'));
  assert.not.ok(fs.existsSync(l.B('tmp')));
  await rejects(fsp.stat(l.M('tmp')), 'ENOENT');
  const buf = Buffer.alloc(7);
  await fh.read(buf, 0, 7, 0);
  assert.is(buf.toString(), 'keep me');
  await fh.write('KEEP', 0);
  await fh.read(buf, 0, 7, 0);
  assert.is(buf.toString(), 'KEEP me');
  assert.is((await fh.stat()).size, 7);
  await fh.close();
  assert.equal(l.sink.summary(), ['create tmp 100644 0:0', 'write tmp @0 +7', 'unlink tmp']);
}));

test('mkdir, rmdir, and readdir of 1000 entries (plain and plus)', () => withMount(async (l) => {
  await ok(l, 'mkdir -p d/sub && rmdir d/sub && mkdir many && i=0; while [ $i -lt 1000 ]; do : > many/f$i; i=$((i+1)); done');
  assert.not.ok(fs.existsSync(l.B('d/sub')));
  const viaMount = (await fsp.readdir(l.M('many'))).sort();
  const viaBacking = (await fsp.readdir(l.B('many'))).sort();
  assert.is(viaMount.length, 1000);
  assert.equal(viaMount, viaBacking);
  assert.is((await ok(l, 'ls many | wc -l')).trim(), '1000');
  assert.is((await ok(l, 'ls -l many | grep -c "^-rw-r--r--"')).trim(), '1000');
  const inodes = (await ok(l, 'ls -i many | sort -k2')).trim().split('\n').map((s) => s.trim().split(/\s+/));
  for (const [ino, name] of inodes.slice(0, 20)) assert.is(Number(ino), (await fsp.stat(l.B(`many/${name}`))).ino, `d_ino of ${name}`);
  await ok(l, 'rm -r many && rmdir d');
  assert.equal(await fsp.readdir(l.B('.')), []);
}));

test('symlink, readlink, fifo, chmod, chown, utimens, statfs', () => withMount(async (l) => {
  await ok(l, 'echo t > target && ln -s target link && ln -s /nonexistent/abs dangling && mkfifo -m 640 fifo');
  assert.is(await fsp.readlink(l.B('link')), 'target');
  assert.is((await ok(l, 'readlink dangling')).trim(), '/nonexistent/abs');
  assert.is((await ok(l, 'cat link')).trim(), 't');
  await same(l, 'link');
  const fifo = await same(l, 'fifo');
  assert.ok(fifo.isFIFO());
  assert.is(fifo.mode & 0o777, 0o640);
  assert.is((await ok(l, '(echo through-fifo > fifo &) ; cat fifo')).trim(), 'through-fifo');

  await ok(l, 'chmod 4751 target && chown nobody:nogroup target');
  let st = await same(l, 'target');
  assert.is(st.uid, 65534);
  assert.is(st.gid, 65534);
  await ok(l, 'chmod 0604 target');
  st = await same(l, 'target');
  assert.is(st.mode & 0o7777, 0o604);

  await ok(l, "touch -d '2001-02-03 04:05:06.123456789' target");
  st = await same(l, 'target');
  const exact = Date.UTC(2001, 1, 3, 4, 5, 6) + 123.456789;
  assert.ok(Math.abs(st.mtimeMs - exact) < 0.001, `mtime ${st.mtimeMs} vs ${exact} (µs precision)`);
  assert.ok(Math.abs(st.atimeMs - exact) < 0.001);
  const atimeBefore = (await fsp.lstat(l.B('target'))).atimeMs; // reading the content above may have moved it (relatime)
  await ok(l, 'touch -m -d @1000000000 target');
  const atimeAfter = (await fsp.lstat(l.B('target'))).atimeMs;
  assert.ok(Math.abs(atimeAfter - atimeBefore) < 0.001, `atime left alone by touch -m: ${atimeBefore} → ${atimeAfter}`);
  st = await same(l, 'target');
  assert.is(st.mtimeMs, 1e12);
  await ok(l, 'touch -h -d @1200000000 link');
  assert.is((await fsp.lstat(l.B('link'))).mtimeMs, 1.2e12, 'symlink times set without following');
  assert.is((await fsp.stat(l.B('target'))).mtimeMs, 1e12);

  const viaMount = (await ok(l, 'stat -f -c "%b %S %l" .')).trim();
  const viaBacking = (await run('stat', ['-f', '-c', '%b %S %l', l.backing])).stdout.trim();
  assert.is(viaMount, viaBacking);
}));

test('fallocate (allocate, keep-size, punch hole), lseek SEEK_DATA/SEEK_HOLE, fsync via dd', () => withMount(async (l) => {
  await ok(l, 'fallocate -l 1048576 f');
  let st = await same(l, 'f');
  assert.is(st.size, 1 << 20);
  assert.ok(st.blocks >= 2048, `allocated ${st.blocks} blocks`);
  await ok(l, 'fallocate -n -o 1048576 -l 1048576 f');
  st = await same(l, 'f');
  assert.is(st.size, 1 << 20, 'keep-size');
  assert.ok(st.blocks >= 4096);
  await ok(l, 'head -c 65536 /dev/urandom | dd of=f conv=notrunc status=none && fallocate -p -o 0 -l 32768 f');
  st = await same(l, 'f');
  assert.ok(st.blocks <= 4096 - 64, `punched: ${st.blocks}`);
  assert.ok((await fsp.readFile(l.B('f'))).subarray(0, 32768).every((b) => b === 0));
  const falloc = l.sink.summary().filter((s) => s.startsWith('fallocate'));
  assert.equal(falloc, ['fallocate f mode 0 @0 +1048576', 'fallocate f mode 1 @1048576 +1048576', 'fallocate f mode 3 @0 +32768']);

  // lseek: perl's sysseek passes SEEK_DATA (3) / SEEK_HOLE (4) through; perl-base is essential on Debian
  if ((await run('sh', ['-c', 'command -v perl'], { reject: false })).code === 0) {
    const seek = (whence: number, off: number) => run('perl', ['-e', `open(F, "<", $ARGV[0]) or die; my $r = sysseek(F, ${off}, ${whence}); print defined $r ? $r : "ERR:$!"`, l.M('f')]).then((r) => r.stdout);
    assert.is(await seek(3, 100), '100');
    assert.is(await seek(4, 100), String(1 << 20));
    assert.match(await seek(3, 1 << 20), /ERR:No such device or address/);
  }

  l.sink.clear();
  await ok(l, 'dd if=/dev/zero of=synced bs=4096 count=4 conv=fsync status=none && dd if=/dev/zero of=dsynced bs=4096 count=1 conv=fdatasync status=none');
  await ok(l, 'dd if=/dev/zero of=osync bs=4096 count=2 oflag=sync status=none');
  assert.equal(l.sink.summary(), [
    'create synced 100644 0:0', 'write synced @0 +4096', 'write synced @4096 +4096', 'write synced @8192 +4096',
    'write synced @12288 +4096', 'fsync synced',
    'create dsynced 100644 0:0', 'write dsynced @0 +4096', 'fdatasync dsynced',
    // O_SYNC: the kernel follows each write with FSYNC itself (generic_write_sync), so one sync per write
    'create osync 100644 0:0', 'write osync @0 +4096', 'fsync osync', 'write osync @4096 +4096', 'fsync osync',
  ]);
  await same(l, 'synced');
}));

test('a non-root user gets EACCES/EPERM exactly where the backing fs would refuse', () => withMount(async (l) => {
  await ok(l, 'echo secret > private && chmod 600 private && mkdir rootdir && chmod 755 rootdir && mkdir open && chmod 777 open && echo pub > public');
  const cases = [
    'cat private',
    'echo x > rootdir/new',
    'echo x >> public',
    'cat public',
    'chmod 777 public',
    'rm public',
    'mkdir rootdir/sub',
    'touch -d @5 public',
  ];
  for (const c of cases) {
    const viaMount = await asNobody(`cd '${l.mnt}' && ${c}`);
    const viaBacking = await asNobody(`cd '${l.backing}' && ${c}`);
    assert.is(viaMount.code, viaBacking.code, `${c}: exit code (mount: ${viaMount.stderr}; backing: ${viaBacking.stderr})`);
    const reason = (s: string) => /Permission denied|Operation not permitted/.exec(s)?.[0] ?? (s ? 'other' : '');
    assert.is(reason(viaMount.stderr), reason(viaBacking.stderr), `${c}: ${viaMount.stderr} vs ${viaBacking.stderr}`);
  }
  assert.is((await asNobody(`cat '${l.M('private')}'`)).code, 1);
  // a write by someone else clears setuid/setgid, as on the backing fs (the kernel sends it as a chmod)
  await ok(l, 'echo x > open/suid && chmod 6777 open/suid');
  l.sink.clear();
  const w = await asNobody(`echo more >> '${l.M('open/suid')}'`);
  assert.is(w.code, 0, w.stderr);
  assert.is((await same(l, 'open/suid')).mode & 0o7777, 0o777);
  assert.equal(l.sink.summary(), ['chmod open/suid 777', 'write open/suid @2 +5']);
  const made = await asNobody(`cd '${l.mnt}' && echo mine > open/mine && mkdir open/dir && ln -s mine open/ln && mkfifo open/pipe`);
  assert.is(made.code, 0, made.stderr);
  for (const f of ['open/mine', 'open/dir', 'open/ln', 'open/pipe']) {
    const st = await same(l, f);
    assert.equal([st.uid, st.gid], [65534, 65534], `${f} owned by the caller`);
  }
}));

test('hard links are refused with EPERM', () => withMount(async (l) => {
  await ok(l, 'echo a > a');
  const r = await l.sh('ln a b');
  assert.is.not(r.code, 0);
  assert.match(r.stderr, /Operation not permitted/);
  await rejects(fsp.link(l.M('a'), l.M('c')), 'EPERM');
  assert.not.ok(fs.existsSync(l.B('b')));
}));

test('the recording sink sees exactly the changes of a scripted session', () => withMount(async (l) => {
  await ok(l, [
    'mkdir s', 'echo hi > s/a', 'mv s/a s/b', 'chmod 600 s/b', 'touch -d @1000000000 s/b', 'ln -s b s/l', 'rm s/l',
    'truncate -s 1 s/b', 'printf x >> s/b', 'mkfifo s/p', 'rm s/p', 'rm s/b', 'rmdir s',
  ].join(' && '));
  assert.equal(l.sink.summary(), [
    'mkdir s 40755 0:0',
    'create s/a 100644 0:0',
    'write s/a @0 +3',
    'rename s/a → s/b flags 1',
    'chmod s/b 600',
    'utimens s/b 1000000000.000000000 1000000000.000000000',
    'symlink s/l → b 0:0',
    'unlink s/l',
    'truncate s/b 1',
    'write s/b @1 +1',
    'mknod s/p 10644 0:0',
    'unlink s/p',
    'unlink s/b',
    'rmdir s',
  ]);
  const w = l.sink.events[2] as Extract<Change, { op: 'write' }>;
  assert.is(Buffer.from(w.data).toString(), 'hi\n');
}));

test('a sink that throws makes the operation fail with EIO (after the local change)', () => {
  const seen: string[] = [];
  const sink: AsyncChangeSink = {
    async onChange(c) {
      seen.push(c.op);
      if (c.op === 'write' && c.path === 'poison') throw new Error('replica refused');
    },
    onSync() {},
  };
  return withMount(async (l) => {
    await rejects(fsp.writeFile(l.M('poison'), 'x'), 'EIO');
    assert.is(await fsp.readFile(l.B('poison'), 'utf8'), 'x');
    const r = await l.sh('echo fine > fine && echo bad >> poison');
    assert.is.not(r.code, 0);
    assert.match(r.stderr, /I\/O error|Input\/output error/);
    assert.is(await fsp.readFile(l.B('fine'), 'utf8'), 'fine\n');
    assert.ok(l.logs.some((s) => s.includes('replica refused')));
  }, { sink });
});

test('a slow main-thread sink delays the write until it answers', () => {
  let releaseAt = 0;
  const sink: AsyncChangeSink = {
    async onChange(c) {
      if (c.op === 'write') {
        await new Promise((r) => setTimeout(r, 300));
        releaseAt = Date.now();
      }
    },
    onSync() {},
  };
  return withMount(async (l) => {
    const t0 = Date.now();
    await fsp.writeFile(l.M('slow'), 'x');
    const t1 = Date.now();
    assert.ok(t1 - t0 >= 290, `write returned after ${t1 - t0} ms`);
    assert.ok(t1 >= releaseAt, 'not before the sink answered');
  }, { sink });
});

test('mounted over its own backing directory: existing files visible, changes land in the same directory', () => withMount(async (l) => {
  assert.is(l.mnt, l.backing);
  assert.is(await fsp.readFile(l.M('pre-existing'), 'utf8'), 'was here before the mount');
  await ok(l, 'echo through > new && mkdir dir && mv new dir/');
  await l.m.unmount();
  assert.is(await fsp.readFile(path.join(l.backing, 'dir/new'), 'utf8'), 'through\n');
}, { over: true }));

test('concurrent writers from several processes', () => withMount(async (l) => {
  await ok(l, 'for i in 1 2 3 4; do (head -c 2000000 /dev/urandom > f$i; cp f$i g$i) & done; wait; for i in 1 2 3 4; do cmp f$i g$i || exit 1; done');
  for (const i of [1, 2, 3, 4]) await same(l, `g${i}`);
  assert.ok(l.m.stats().writes > 0);
}));

test('unmount with a file still open falls back to a lazy unmount and an abort, leaving nothing mounted', () => withMount(async (l) => {
  const fh = await fsp.open(l.M('held'), 'w');
  await fh.write('x');
  await l.m.unmount();
  assert.equal(mountedUnder(l.base), []);
  assert.ok(l.logs.some((s) => s.includes('umount -l')), l.logs.join('\n'));
  await fh.close().catch(() => {});
}, { timeoutMs: 60_000 }));

test('a sink that never answers: unmount releases the blocked writer and leaves nothing mounted', () => {
  const sink: AsyncChangeSink = { onChange: (c) => (c.op === 'write' ? new Promise<void>(() => {}) : undefined), onSync() {} };
  return withMount(async (l) => {
    const writer = l.sh('echo stuck > hung; echo "exit=$?"');
    await new Promise((r) => setTimeout(r, 300));
    await l.m.unmount();
    const r = await writer;
    assert.match(r.stdout + r.stderr, /Input\/output error|Transport endpoint|Software caused connection abort|exit=[1-9]/);
    assert.equal(mountedUnder(l.base), []);
  }, { sink, timeoutMs: 60_000 });
});

test.run();
