// The process table: the fake's contract, LinuxProcTable on a made-up procfs tree (vanished files, zombies, odd
// names, network namespaces) and on the real /proc with this process and children it spawns and kills.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { FakeProcTable } from '../../../src/platform/procs/fake.js';
import { LinuxProcTable, parseStat, splitCmdline } from '../../../src/platform/procs/linux.js';
import { waitFor } from '../wait-for.js';

test('fake: list filters on comm and leaves zombies out; a watch follows its own process only', async () => {
  const t = new FakeProcTable();
  const a = t.spawn('httpd', ['/usr/sbin/httpd', '-k']);
  const b = t.spawn('sleep', ['sleep', '10']);
  assert.equal((await t.list()).map((p) => p.pid), [a.pid, b.pid]);
  assert.equal(await t.list((c) => c === 'httpd'), [a]);
  const wa = t.watch(a);
  assert.is(await wa.alive(), true);
  t.zombie(a.pid);
  assert.is(await wa.alive(), false, 'a zombie is dead');
  assert.equal((await t.list()).map((p) => p.pid), [b.pid]);
  const wb = t.watch(b);
  const c = t.reuse(b.pid, 'sleep', ['sleep', '10']);
  assert.is(c.pid, b.pid);
  assert.ok(c.startTime > b.startTime);
  assert.is(await wb.alive(), false, 'a reused pid is another process');
  assert.is(await t.watch(c).alive(), true);
  assert.is(t.openWatches, 3);
  wa.close();
  wa.close();
  assert.is(t.openWatches, 2);
  assert.is(await wa.alive(), false);
});

test('fake: afterListing kills after the snapshot; failNextList rejects once', async () => {
  const t = new FakeProcTable();
  const a = t.spawn('db');
  t.afterListing(() => t.kill(a.pid));
  assert.equal((await t.list()).map((p) => p.pid), [a.pid], 'the scan read it before it died');
  assert.is(await t.watch(a).alive(), false);
  assert.equal(await t.list(), []);
  t.failNextList(new Error('EACCES'));
  try {
    await t.list();
    assert.unreachable();
  } catch (e) {
    assert.is((e as Error).message, 'EACCES');
  }
  assert.equal(await t.list(), []);
  assert.is(t.lists, 4);
});

test('parseStat: comm may hold spaces and parentheses; field 22 is the start time', () => {
  const line = '4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10 18446744073709551615';
  assert.equal(parseStat(line), { comm: 'my (odd) name', state: 'S', startTime: 987654 });
  assert.is(parseStat('garbage'), null);
  assert.is(parseStat('1 (x) S 1 2'), null, 'cut before field 22');
  assert.equal(splitCmdline('a\0b c\0'), ['a', 'b c']);
  assert.equal(splitCmdline(''), []);
});

function statLine(pid: number, comm: string, state: string, start: number): string {
  return `${pid} (${comm}) ${state} 1 ${pid} ${pid} 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 ${start} 1000 10\n`;
}

async function fakeProcfs(): Promise<string> {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'tvt-procfs-'));
  const proc = async (pid: number | string, files: Record<string, string>, netns?: string) => {
    const dir = path.join(root, String(pid));
    await fs.mkdir(path.join(dir, 'ns'), { recursive: true });
    for (const [name, body] of Object.entries(files)) await fs.writeFile(path.join(dir, name), body);
    if (netns) await fs.symlink(netns, path.join(dir, 'ns', 'net'));
  };
  await proc('self', {}, 'net:[1]');
  await proc(10, { stat: statLine(10, 'httpd', 'S', 500), cmdline: '/usr/sbin/httpd\0-k\0start\0' }, 'net:[1]');
  await proc(11, { stat: statLine(11, 'httpd', 'S', 501) }, 'net:[1]'); // cmdline gone: exited mid-scan
  await proc(12, {}, 'net:[1]'); // stat gone
  await proc(13, { stat: statLine(13, 'httpd', 'Z', 502), cmdline: '' }, 'net:[1]');
  await proc(14, { stat: statLine(14, 'a (b) c', 'R', 503), cmdline: 'x\0' }, 'net:[1]');
  await proc(15, { stat: statLine(15, 'httpd', 'S', 504), cmdline: 'httpd\0' }, 'net:[2]');
  await proc('abc', {});
  return root;
}

test('linux over a made-up procfs: vanished files and zombies are skipped, odd comms parsed, netns filter', async () => {
  const root = await fakeProcfs();
  try {
    const all = await new LinuxProcTable({ procRoot: root }).list();
    assert.equal(all, [
      { pid: 10, startTime: 500, comm: 'httpd', argv: ['/usr/sbin/httpd', '-k', 'start'] },
      { pid: 14, startTime: 503, comm: 'a (b) c', argv: ['x'] },
      { pid: 15, startTime: 504, comm: 'httpd', argv: ['httpd'] },
    ]);
    const own = await new LinuxProcTable({ procRoot: root, ownNetnsOnly: true }).list((c) => c === 'httpd');
    assert.equal(own.map((p) => p.pid), [10], 'pid 15 lives in another network namespace');
  } finally {
    await fs.rm(root, { recursive: true, force: true });
  }
});

function spawnChild(cmd: string, args: string[]): Promise<ChildProcess> {
  const c = spawn(cmd, args, { stdio: 'ignore' });
  return new Promise((resolve, reject) => {
    c.once('spawn', () => resolve(c));
    c.once('error', reject);
  });
}

function killed(c: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (c.exitCode !== null || c.signalCode !== null) return resolve();
    c.once('exit', () => resolve());
    c.kill('SIGKILL');
  });
}

test('linux: this very process is listed with its comm, command line and a start time that a watch accepts', async () => {
  const t = new LinuxProcTable();
  const comm = path.basename(process.execPath).slice(0, 15);
  const me = (await t.list((c) => c === comm)).find((p) => p.pid === process.pid);
  assert.ok(me, 'this process is listed');
  // process.argv has the script's path resolved; the kernel keeps it as typed
  assert.equal(me.argv.slice(1).map((a, i) => (i === process.execArgv.length ? path.resolve(a) : a)), [...process.execArgv, ...process.argv.slice(1)]);
  assert.ok(me.startTime > 0);
  const w = t.watch(me);
  assert.is(await w.alive(), true);
  assert.is(await w.alive(), true, 'the held descriptor reads again');
  w.close();
  assert.is(await w.alive(), false, 'closed');
  assert.is(await t.watch({ pid: process.pid, startTime: me.startTime + 1 }).alive(), false, 'another start time is another process');
});

test('linux: a child spawned then killed is seen, then gone; its watch turns false and stays false', async () => {
  const t = new LinuxProcTable();
  const child = await spawnChild('sleep', ['300']);
  try {
    const p = (await t.list((c) => c === 'sleep')).find((x) => x.pid === child.pid);
    assert.ok(p, 'the child is listed');
    assert.equal(p.argv, ['sleep', '300']);
    const w = t.watch(p);
    assert.is(await w.alive(), true);
    await killed(child);
    await waitFor(async () => !(await w.alive()), 5000, 'the watch to see the death');
    assert.is(await w.alive(), false);
    assert.not.ok((await t.list()).some((x) => x.pid === child.pid && x.startTime === p.startTime));
  } finally {
    await killed(child);
  }
});

test('linux: a zombie is neither listed nor alive', async () => {
  const t = new LinuxProcTable();
  // sh starts `sleep 0` in the background, then becomes `sleep 300`, which never reaps it: a zombie child
  const parent = await spawnChild('sh', ['-c', 'sleep 0 & exec sleep 300']);
  try {
    const zombie = await waitFor(async () => {
      for (const name of await fs.readdir('/proc')) {
        if (!/^\d+$/.test(name)) continue;
        const text = await fs.readFile(`/proc/${name}/stat`, 'utf8').catch(() => '');
        const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
        if (f[0] === 'Z' && Number(f[1]) === parent.pid) return { pid: Number(name), startTime: Number(f[19]) };
      }
      return null;
    }, 5000, 'the zombie child of the sleep');
    assert.is(await t.watch(zombie).alive(), false);
    assert.not.ok((await t.list()).some((p) => p.pid === zombie.pid));
  } finally {
    await killed(parent);
  }
});

test.run();
