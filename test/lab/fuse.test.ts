// The FUSE passthrough on a real /dev/fuse mount (root). Each test mounts a fresh temp backing dir
// (/tmp/tandem-fuse-lab-*/backing at …/mnt) and unmounts it in `finally`. The server runs in this process's worker
// thread; this thread touches the mount only with async fs calls, and child processes (sh, coreutils, setpriv)
// do the rest. Every operation is checked against the backing directory.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { run } from '../../src/platform/exec.js';
import { mountPassthrough, type PassthroughMount, RecordingSink } from '../../src/replication/fuse/index.js';
import { InitFlag } from '../../src/replication/fuse/protocol.js';
import { type AsyncChangeSink, type Change, type ChangeSink, describeChange } from '../../src/replication/fuse/sink.js';
import { gate } from '../unit/gate.js';

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
  writebackCache?: boolean;
  writeBehindBytes?: number;
  /** default true (fuseblk, as mountPassthrough) */
  syncfs?: boolean;
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
    m = await mountPassthrough({
      backing, mountpoint: mnt, sink: o.sink ?? sink, sinkTimeoutMs: o.sinkTimeoutMs, log: (l) => logs.push(l),
      writebackCache: o.writebackCache, writeBehindBytes: o.writeBehindBytes, syncfs: o.syncfs,
    });
    assert.is((m.protocol.flags & InitFlag.WRITEBACK_CACHE) !== 0, o.writebackCache === true, 'writeback cache as asked');
    assert.is(m.syncfs, o.syncfs ?? true, `mounted as ${o.syncfs === false ? 'fuse' : 'fuseblk'}: ${logs.join('; ')}`);
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

// gate(): the sink holds a request until the test opens it. The test keeps it closed for HOLD_MS, the time a request
// that wrongly completes without the sink has to show itself (it cannot make a correct mount fail), then opens it;
// what completed while closed reads `isOpen` false.
const HOLD_MS = 300;
const holdThenOpen = async (g: ReturnType<typeof gate>) => {
  await g.reached;
  await new Promise((r) => setTimeout(r, HOLD_MS));
  g.open();
};

const asNobody = (script: string) =>
  run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'sh', '-c', script], { reject: false, timeoutMs: 60_000 });

const MODES: { name: string; o: LabOptions }[] = [{ name: '', o: {} }, { name: ' [writeback cache]', o: { writebackCache: true } }];

for (const { name, o } of MODES) test(`create, write, read, append, truncate through the mount match the backing dir${name}`, () => withMount(async (l) => {
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
  // sync before comparing attributes: under writeback cache the kernel owns mtime until it flushes (see below)
  await ok(l, 'head -c 3000000 /dev/urandom > big && cp big big.copy && cmp big big.copy && sync big big.copy');
  await same(l, 'big');
  await same(l, 'big.copy');
  const fh = await fsp.open(l.M('pos'), 'w+');
  await fh.write(Buffer.from('xyz'), 0, 3, 10_000_000);
  await fh.close();
  const s = await same(l, 'pos');
  assert.is(s.size, 10_000_003);
}, o));

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

for (const { name, o } of MODES) test(`rename: plain, over an existing file, of an open file; mv across directories${name}`, () => withMount(async (l) => {
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
}, o));

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
    // the FIFO s/p is local-only: neither its mknod nor its unlink is reported
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
  const g = gate();
  const sink: AsyncChangeSink = {
    async onChange(c) { if (c.op === 'write') await g.pass(); },
    onSync() {},
  };
  return withMount(async (l) => {
    const wrote = fsp.writeFile(l.M('slow'), 'x').then(() => g.isOpen);
    await holdThenOpen(g);
    assert.ok(await wrote, 'the write returned only after the sink answered');
  }, { sink });
});

test('mounted over its own backing directory: existing files visible, changes land in the same directory', () => withMount(async (l) => {
  assert.is(l.mnt, l.backing);
  assert.is(await fsp.readFile(l.M('pre-existing'), 'utf8'), 'was here before the mount');
  await ok(l, 'echo through > new && mkdir dir && mv new dir/');
  await l.m.unmount();
  assert.is(await fsp.readFile(path.join(l.backing, 'dir/new'), 'utf8'), 'through\n');
}, { over: true }));

for (const { name, o } of MODES) test(`concurrent writers from several processes${name}`, () => withMount(async (l) => {
  // fsync before comparing attributes: under writeback cache the kernel owns mtime until it flushes, and it sends its
  // own mtime to the server only with an fsync (write-through needs no such step, but it costs nothing there).
  // A sync(2) loop meanwhile starts background writebacks, whose time update can overtake the WRITEs they queued
  // (passthrough.ts, "Writeback cache"): without the server putting the kernel's mtime back, 1 file in 20 ended with
  // a later mtime in the backing store (8 of 160 measured), so 10 rounds of 8 files catch it almost always.
  for (let round = 0; round < (o.writebackCache ? 10 : 1); round++) {
    await ok(l, '{ while :; do sync; sleep 0.01; done & } ; S=$!; trap "kill $S" EXIT; rm -f f? g?; '
      + 'W=; for i in 1 2 3 4; do (head -c 2000000 /dev/urandom > f$i; cp f$i g$i; sync f$i g$i) & W="$W $!"; done; wait $W; '
      + 'for i in 1 2 3 4; do cmp f$i g$i || exit 1; done');
    for (const i of [1, 2, 3, 4]) {
      await same(l, `f${i}`);
      await same(l, `g${i}`);
    }
  }
  assert.ok(l.m.stats().writes > 0);
}, o));

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

// ── cache modes: what reaches the sink, and when ────────────────────────────────────────────────────────────────

/**
 * Applies the changes it sees to an in-memory copy of the tree, as a replica would, and keeps the content a file had
 * in that copy at each onSync: what a failover right after that fsync returned would find.
 */
class ReplaySink implements ChangeSink {
  readonly files = new Map<string, Buffer>();
  readonly events: string[] = [];
  readonly synced: { path: string; content: Buffer }[] = [];
  onChange(c: Change): void {
    this.events.push(describeChange(c));
    const file = (p: string) => this.files.get(p) ?? Buffer.alloc(0);
    switch (c.op) {
      case 'create':
        this.files.set(c.path, Buffer.alloc(0));
        break;
      case 'write': {
        const b = file(c.path);
        const end = c.offset + c.data.byteLength;
        const out = Buffer.concat([b, Buffer.alloc(Math.max(0, end - b.length))]);
        out.set(c.data, c.offset);
        this.files.set(c.path, out);
        break;
      }
      case 'truncate': {
        const b = file(c.path);
        this.files.set(c.path, c.size <= b.length ? Buffer.from(b.subarray(0, c.size)) : Buffer.concat([b, Buffer.alloc(c.size - b.length)]));
        break;
      }
      case 'unlink':
        this.files.delete(c.path);
        break;
      case 'rename': {
        const b = this.files.get(c.from);
        this.files.delete(c.from);
        if (b) this.files.set(c.to, b);
        break;
      }
      default:
        break;
    }
  }
  onSync(path: string, datasync: boolean): void {
    this.events.push(describeChange({ op: 'sync', path, datasync }));
    this.synced.push({ path, content: Buffer.from(this.files.get(path) ?? Buffer.alloc(0)) });
  }
  /** the content the replica has for `path` at its last onSync */
  lastSynced(path: string): Buffer | undefined {
    return this.synced.filter((s) => s.path === path).pop()?.content;
  }
}

/** a local model of a file: the bytes the application has written, for comparison */
function put(model: Buffer, data: Buffer, offset: number): Buffer {
  const out = Buffer.concat([model, Buffer.alloc(Math.max(0, offset + data.length - model.length))]);
  data.copy(out, offset);
  return out;
}

for (const { name, o } of MODES) {
  test(`every byte written before fsync/fdatasync reaches the sink before its onSync, also after ftruncate${name}`, () => {
    const replay = new ReplaySink();
    return withMount(async (l) => {
      const fh = await fsp.open(l.M('db'), 'w+');
      let model: Buffer = Buffer.alloc(0);
      const w = async (data: Buffer, at: number) => {
        await fh.write(data, 0, data.length, at);
        model = put(model, data, at);
      };
      await w(crypto.randomBytes(1 << 20), 0);
      await w(crypto.randomBytes(100), 5000);
      await w(Buffer.from('xyz'), 4094); // across a page boundary
      await w(crypto.randomBytes(10), (3 << 20) - 10);
      await fh.sync();
      assert.ok(replay.lastSynced('db')!.equals(model), 'the replica has every byte at the fsync');
      await w(crypto.randomBytes(20000), 7000);
      await fh.truncate(9000); // over dirty pages
      model = model.subarray(0, 9000);
      await w(Buffer.from('after truncate'), 12000);
      await fh.datasync();
      assert.ok(replay.lastSynced('db')!.equals(model), 'the replica has every byte at the fdatasync');
      assert.is(replay.events.filter((e) => e === 'fsync db').length, 1);
      assert.is(replay.events.filter((e) => e === 'fdatasync db').length, 1);
      await fh.close();
      assert.ok((await fsp.readFile(l.B('db'))).equals(model), 'backing store');
      assert.ok(replay.files.get('db')!.equals(model), 'replica after close');
    }, { ...o, sink: replay });
  });

  test(`O_SYNC and O_DSYNC writes each reach the sink, then onSync, before they return${name}`, () => {
    const replay = new ReplaySink();
    return withMount(async (l) => {
      await ok(l, 'head -c 12288 /dev/urandom > src && dd if=src of=osync bs=4096 count=3 oflag=sync status=none && dd if=src of=odsync bs=4096 count=3 oflag=dsync status=none');
      const src = await fsp.readFile(l.B('src'));
      for (const [f, sync] of [['osync', 'fsync'], ['odsync', 'fdatasync']] as const) {
        const syncs = replay.synced.filter((s) => s.path === f);
        assert.is(syncs.length, 3, `${f}: one ${sync} per write (${replay.events.filter((e) => e.includes(f)).join(', ')})`);
        syncs.forEach((s, i) => assert.ok(s.content.equals(src.subarray(0, 4096 * (i + 1))), `${f}: ${i + 1} blocks at sync ${i + 1}`));
        const syncEvents = replay.events.filter((e) => e === `fsync ${f}` || e === `fdatasync ${f}`);
        assert.equal(syncEvents, [`${sync} ${f}`, `${sync} ${f}`, `${sync} ${f}`]);
      }
    }, { ...o, sink: replay });
  });

  test(`stores through a shared mmap reach the sink by fsync, and by munmap + close${name}`, async () => {
    if ((await run('sh', ['-c', 'command -v python3'], { reject: false })).code !== 0) return;
    const replay = new ReplaySink();
    return withMount(async (l) => {
      const py = [
        'import mmap, os, sys',
        'fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)',
        'os.ftruncate(fd, 3 * 4096)',
        'm = mmap.mmap(fd, 3 * 4096)',
        "m[0:5] = b'hello'; m[8202:8207] = b'world'",
        'os.fsync(fd)',
        "m[100:103] = b'abc'",
        'm.close(); os.close(fd)',
      ].join('\n');
      const r = await run('python3', ['-c', py, l.M('mapped')], { reject: false });
      assert.is(r.code, 0, r.stderr);
      const atSync = Buffer.alloc(3 * 4096);
      atSync.write('hello', 0);
      atSync.write('world', 8202);
      assert.ok(replay.lastSynced('mapped')!.equals(atSync), 'mmap stores before the fsync are in the replica at the fsync');
      const final = Buffer.from(atSync);
      final.write('abc', 100);
      assert.ok((await fsp.readFile(l.B('mapped'))).equals(final));
      assert.ok(replay.files.get('mapped')!.equals(final), 'the store after the fsync reached the replica by the close');
    }, { ...o, sink: replay });
  });

  test(`an open file written, unlinked, then written again: nothing reported after the unlink${name}`, () => {
    const replay = new ReplaySink();
    return withMount(async (l) => {
      const fh = await fsp.open(l.M('tmp'), 'w+');
      await fh.write('before');
      await fsp.unlink(l.M('tmp'));
      await fh.write(' after', 6);
      const buf = Buffer.alloc(12);
      await fh.read(buf, 0, 12, 0);
      assert.is(buf.toString(), 'before after');
      await fh.sync();
      await fh.close();
      assert.not.ok(fs.existsSync(l.B('tmp')));
      assert.not.ok(replay.files.has('tmp'));
      const i = replay.events.indexOf('unlink tmp');
      assert.ok(i >= 0);
      assert.equal(replay.events.slice(i + 1), [], 'no change to the orphan reported');
    }, { ...o, sink: replay });
  });
}

test('writeback cache: write(2) returns before the sink sees the data; fsync waits for the sink', () => {
  const g = gate();
  let writes = 0;
  const sink: AsyncChangeSink = {
    async onChange(c) {
      if (c.op === 'write') {
        await g.pass();
        writes++;
      }
    },
    onSync() {},
  };
  return withMount(async (l) => {
    const fh = await fsp.open(l.M('cached'), 'w');
    // without the cache this write would wait for the sink: open the gate after a while so that it fails, not hangs
    const unstick = setTimeout(() => g.open(), 10_000);
    try {
      await fh.write(Buffer.alloc(64 * 1024, 1));
      assert.not.ok(g.isOpen, 'the write returned while the sink held everything back: it was cached');
      const synced = fh.sync().then(() => g.isOpen);
      await holdThenOpen(g);
      assert.ok(await synced, 'fsync returned only after the sink answered');
      assert.ok(writes >= 1);
    } finally {
      clearTimeout(unstick);
      await fh.close();
    }
  }, { sink, writebackCache: true });
});

test('writeback cache: O_APPEND from two handles; the kernel picks the offsets and the server honours them', () => {
  const replay = new ReplaySink();
  return withMount(async (l) => {
    await fsp.writeFile(l.M('log'), 'start\n');
    const a = await fsp.open(l.M('log'), 'a');
    const b = await fsp.open(l.M('log'), 'a');
    for (let i = 0; i < 5; i++) {
      await a.write(`a${i}\n`);
      await b.write(`b${i}\n`);
    }
    assert.is((await a.stat()).size, 36, 'the kernel knows the size before any writeback');
    await a.close();
    await b.close();
    const want = 'start\na0\nb0\na1\nb1\na2\nb2\na3\nb3\na4\nb4\n';
    assert.is(await fsp.readFile(l.B('log'), 'utf8'), want);
    assert.is(replay.files.get('log')!.toString(), want);
    await ok(l, 'echo tail >> log');
    assert.is(await fsp.readFile(l.B('log'), 'utf8'), `${want}tail\n`);
  }, { sink: replay, writebackCache: true });
});

test('writeback cache: partial pages written through a write-only handle; size and mtime agree with the backing store', () => withMount(async (l) => {
  const original = crypto.randomBytes(10_000);
  await fsp.writeFile(l.B('f'), original);
  const fh = await fsp.open(l.M('f'), fs.constants.O_WRONLY);
  await fh.write('abc', 0, 'utf8');
  await fh.write('tail', 12_000, 'utf8');
  assert.is((await fsp.stat(l.M('f'))).size, 12_004, 'the mount shows the kernel size while it caches');
  await fh.close();
  const want = Buffer.concat([original, Buffer.alloc(2000), Buffer.from('tail')]);
  want.write('abc', 0);
  assert.ok((await fsp.readFile(l.B('f'))).equals(want), 'the kernel read the partial pages through the write-only handle');
  await same(l, 'f');
  await ok(l, "touch -d '2001-02-03 04:05:06.123456789' f");
  const st = await same(l, 'f');
  assert.is(st.mtimeMs, Date.UTC(2001, 1, 3, 4, 5, 6) + 123.456, 'truncated to the microsecond everywhere');
  assert.ok(l.sink.summary().some((e) => e.startsWith('utimens f omit ')), `the kernel's mtime reaches the sink: ${l.sink.summary().join(', ')}`);
}, { writebackCache: true }));

test('sync -f on the mount waits for a slow sink, after the changes before it; a fuseblk mount, its loop device gone after', async () => {
  const g = gate();
  const replay = new ReplaySink();
  const sink: AsyncChangeSink = {
    onChange: (c) => replay.onChange(c),
    onSync: (p, d) => replay.onSync(p, d),
    async onSyncfs() {
      replay.events.push('syncfs');
      await g.pass();
    },
  };
  let loop = '';
  await withMount(async (l) => {
    const line = fs.readFileSync('/proc/mounts', 'utf8').split('\n').find((x) => x.split(' ')[1] === l.mnt) ?? '';
    assert.match(line, /^\/dev\/loop\d+ \S+ fuseblk\.tandem /);
    loop = line.split(' ')[0]!;
    await ok(l, 'echo data > f && mkdir d');
    const synced = ok(l, 'sync -f .').then(() => g.isOpen);
    await holdThenOpen(g);
    assert.ok(await synced, 'sync -f returned only after the sink answered');
    assert.equal(replay.events, ['create f 100644 0:0', 'write f @0 +5', 'mkdir d 40755 0:0', 'syncfs']);
    await ok(l, 'sync -f d'); // any file of the filesystem
    assert.is(replay.events.filter((e) => e === 'syncfs').length, 2);
  }, { sink });
  const loops = (await run('losetup', ['-a'])).stdout;
  assert.not.ok(loops.split('\n').some((x) => x.startsWith(`${loop}:`)), `the loop device went with the mount: ${loops}`);
});

test('a sink that fails the syncfs makes sync -f fail with EIO', () => {
  const sink: AsyncChangeSink = { onChange() {}, onSync() {}, async onSyncfs() { throw new Error('peer gone'); } };
  return withMount(async (l) => {
    const r = await l.sh('sync -f .');
    assert.is.not(r.code, 0);
    assert.match(r.stderr, /Input\/output error/);
  }, { sink });
});

test('a plain fuse mount (syncfs off): the kernel answers syncfs itself, nothing reaches the server', () => withMount(async (l) => {
  await ok(l, 'echo x > f && sync -f .');
  assert.equal(l.sink.summary(), ['create f 100644 0:0', 'write f @0 +2']);
}, { syncfs: false }));

for (const { name, o } of MODES) test(`O_DIRECT writes reach onSync (fdatasync) before they return${name}`, () => withMount(async (l) => {
  await ok(l, 'dd if=/dev/zero of=direct bs=4096 count=2 oflag=direct status=none && dd if=/dev/zero of=dsync bs=4096 count=1 oflag=direct,dsync status=none');
  // (under writeback cache the kernel also sends its mtime, as a utimens)
  assert.equal(l.sink.summary().filter((e) => !e.startsWith('utimens')), [
    'create direct 100644 0:0', 'write direct @0 +4096', 'fdatasync direct', 'write direct @4096 +4096', 'fdatasync direct',
    'create dsync 100644 0:0', 'write dsync @0 +4096', 'fdatasync dsync', // O_DSYNC: the kernel's FSYNC, not a second one
  ]);
  await same(l, 'direct');
}, o));

test('write-behind: a large write hands the file to the helper thread every writeBehindBytes; data intact', () => withMount(async (l) => {
  await ok(l, 'head -c 25165824 /dev/urandom > big && sync big');
  const s = l.m.stats();
  assert.ok(s.writeBehinds >= 5 && s.writeBehinds <= 6, `write-behind requests: ${s.writeBehinds}`);
  await same(l, 'big');
}, { writeBehindBytes: 4 << 20 }));

test.run();
