// The holder check (src/replication/layout/holders.ts): which processes would write to a replicated dir around
// tandem's mount, judged from a fake process table and mount tables; and the layout refusing to start on them.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { UserError } from '../../../src/errors.js';
import { FakeMountSystem, FakeProcSource } from '../../../src/replication/layout/fake.js';
import { checkNoHolders, findHolders, type ProcessView, viewOf } from '../../../src/replication/layout/holders.js';
import { enterPrimary, enterSecondary } from '../../../src/replication/layout/index.js';
import { parseMountinfo } from '../../../src/replication/layout/mountinfo.js';

const HERE = parseMountinfo([
  '22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw',
  '30 22 0:26 / /proc rw shared:5 - proc proc rw',
].join('\n'));
const D = { dir: '/srv/data', path: '/srv/data' };
const SELF = { pid: 1, mntNs: 'mnt:[1]' };
const proc = (p: Partial<ProcessView> & { pid: number }): ProcessView => ({ command: 'p', cwd: '/', root: '/', fds: [], maps: [], mntNs: 'mnt:[1]', ...p });

test('cwd, root, open files (also deleted ones) and mappings in the dir are holders; sockets, pipes and this process are not', () => {
  const { holders } = findHolders([D], [
    proc({ pid: 1, cwd: '/srv/data' }),
    proc({ pid: 10, command: 'sleep', cwd: '/srv/data/sub' }),
    proc({ pid: 11, command: 'chroot', root: '/srv/data' }),
    proc({ pid: 12, command: 'db', fds: [[0, '/dev/null'], [3, '/srv/data/wal'], [4, 'socket:[123]'], [5, '/srv/data/old (deleted)'], [6, 'pipe:[9]']] }),
    proc({ pid: 13, command: 'app', maps: ['/usr/lib/libc.so.6', '/srv/data/shm', '/srv/data/shm'] }),
    proc({ pid: 14, command: 'near', cwd: '/srv/database', fds: [[3, '/srv/data2/x']] }),
  ], SELF, HERE, new Map());
  assert.equal(holders, [
    { pid: 10, command: 'sleep', holds: ['its current directory /srv/data/sub'] },
    { pid: 11, command: 'chroot', holds: ['its root directory /srv/data'] },
    { pid: 12, command: 'db', holds: ['fd 3 on /srv/data/wal', 'fd 5 on /srv/data/old (deleted)'] },
    { pid: 13, command: 'app', holds: ['a mapping of /srv/data/shm'] },
  ]);
});

test('another mount namespace: judged at the paths where it shows the dir; one that does not get the mount is an exposure', () => {
  // a container with /srv/data bind-mounted (private) at /data, and a systemd-style slave namespace
  const container = parseMountinfo([
    '500 400 0:60 / / rw - overlay overlay rw',
    '501 500 254:0 /srv/data /data rw - ext4 /dev/vda rw',
  ].join('\n'));
  const slave = parseMountinfo('600 1 254:0 / / rw master:1 - ext4 /dev/vda rw');
  const ns = new Map([['mnt:[2]', container], ['mnt:[3]', slave]]);
  const { holders, exposures } = findHolders([D], [
    proc({ pid: 20, command: 'nginx', mntNs: 'mnt:[2]', cwd: '/data/www' }),
    proc({ pid: 21, command: 'idle', mntNs: 'mnt:[2]', cwd: '/', fds: [[3, '/srv/data/not-what-it-seems']] }),
    proc({ pid: 30, command: 'svc', mntNs: 'mnt:[3]', fds: [[7, '/srv/data/log']] }),
    proc({ pid: 31, command: 'svc2', mntNs: 'mnt:[3]' }),
  ], SELF, HERE, ns);
  assert.equal(holders.map((h) => [h.pid, h.holds]), [
    [20, ['its current directory /data/www', '(in mount namespace mnt:[2])']],
    [30, ['fd 7 on /srv/data/log', '(in mount namespace mnt:[3])']],
  ], 'a slave sees the mount later, but an fd opened before it still reaches the real directory');
  assert.equal(exposures, [{ mntNs: 'mnt:[2]', pids: [20, 21], where: ['/srv/data is visible at /data'] }]);
  assert.equal(viewOf(D, HERE, slave), { inside: ['/srv/data'], bypass: [] }, 'a slave of / gets the mount over /srv/data');
  const part = parseMountinfo('700 1 254:0 /srv/data/sub /mnt/sub rw - ext4 /dev/vda rw');
  assert.equal(viewOf(D, HERE, part), { inside: ['/mnt/sub'], bypass: ['/srv/data/sub is mounted at /mnt/sub'] });
  const other = parseMountinfo('800 1 8:1 /srv/data /x rw - ext4 /dev/sdb rw');
  assert.equal(viewOf(D, HERE, other), { inside: [], bypass: [] }, 'another filesystem');
});

test('loop devices and swap files in the dir are held by the kernel', () => {
  const { holders } = findHolders([D], [], SELF, HERE, new Map(), [
    { what: 'loop device /dev/loop3', file: '/srv/data/disk.img' }, { what: 'a swap area', file: '/swapfile' },
  ]);
  assert.equal(holders, [{ pid: 0, command: 'kernel', holds: ['loop device /dev/loop3 backed by /srv/data/disk.img'] }]);
});

test('checkNoHolders: a UserError naming pid, command and what it holds, saying what to do; exposures are only logged', async () => {
  const p = new FakeProcSource();
  p.add({ pid: 4242, command: 'sleep', cwd: '/srv/data' });
  p.add({ pid: 77, command: 'host-shell', mntNs: 'mnt:[9]' });
  p.namespaces.set('mnt:[9]', '900 1 254:0 / / rw - ext4 /dev/vda rw');
  const logs: string[] = [];
  try {
    await checkNoHolders([D], p, HERE, (l) => logs.push(l));
    assert.unreachable('refused');
  } catch (e) {
    assert.instance(e, UserError);
    assert.match((e as Error).message, /replicated dir \/srv\/data is in use by processes .*pid 4242 \(sleep\): its current directory \/srv\/data/);
    assert.match((e as UserError).hint ?? '', /Stop them .* or start them from the module's start script/);
  }
  assert.equal(logs.length, 1);
  assert.match(logs[0]!, /mount namespace mnt:\[9\] \(processes 77\) does not get tandem's mount: \/srv\/data is visible at \/srv\/data/);
  p.list.splice(0, 1);
  logs.length = 0;
  await checkNoHolders([D], p, HERE, (l) => logs.push(l));
  assert.is(logs.length, 1, 'only the exposure, logged');
});

async function withDirs(fn: (one: string, runDir: string, sys: FakeMountSystem) => Promise<void>): Promise<void> {
  const base = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-holders-unit-')));
  const one = path.join(base, 'data');
  fs.mkdirSync(one);
  try {
    await fn(one, path.join(base, 'run'), new FakeMountSystem());
  } finally {
    fs.rmSync(base, { recursive: true, force: true });
  }
}

test('enterPrimary and enterSecondary refuse a held dir before mounting anything; once it is let go they mount', () => withDirs(async (one, runDir, sys) => {
  sys.proc.add({ pid: 555, command: 'tail', fds: [[3, `${one}/log`]] });
  for (const enter of [
    () => enterPrimary({ dirs: [one], runDir, module: 'db', system: sys, sinkFor: () => undefined }),
    () => enterSecondary({ dirs: [one], runDir, module: 'db', system: sys }),
  ]) {
    try {
      await enter();
      assert.unreachable('refused');
    } catch (e) {
      assert.instance(e, UserError);
      assert.match((e as Error).message, new RegExp(`pid 555 \\(tail\\): fd 3 on ${one}/log`));
    }
  }
  assert.equal(sys.commands, [], 'nothing mounted');
  sys.proc.list.length = 0;
  const l = await enterPrimary({ dirs: [one], runDir, module: 'db', system: sys, sinkFor: () => undefined });
  assert.ok(sys.commands.some((c) => c.startsWith('fuse-mount')));
  await l.leave();
}));

test.run();
