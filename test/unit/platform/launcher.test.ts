// The launcher: the fake's contract, and LinuxLauncher with small shell scripts in a temporary directory.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { UserError } from '../../../src/errors.js';
import { FakeLauncher } from '../../../src/platform/launcher/fake.js';
import { LinuxLauncher } from '../../../src/platform/launcher/linux.js';
import type { LaunchRequest } from '../../../src/platform/launcher/types.js';
import { waitFor } from '../wait-for.js';

test('fake: records requests, fails on demand, exits by itself or on stop', async () => {
  const l = new FakeLauncher();
  const req: LaunchRequest = { exec: '/x', args: ['a'], env: { A: '1' }, logFile: '/log', title: 'custom.x' };
  l.failNext('no /x', 1);
  try {
    await l.launch(req);
    assert.unreachable();
  } catch (e) {
    assert.instance(e, UserError);
  }
  const p = await l.launch(req);
  assert.is(l.only(), p);
  l.exit(p.pid, 3);
  assert.equal(await p.exited, { code: 3, signal: null });
  assert.is(l.running.size, 0);
  const q = await l.launch(req);
  assert.equal(await q.stop(), { code: null, signal: 'SIGTERM' });
  assert.equal(l.stopped, [q.pid]);
  assert.is(l.requests.length, 3);
});

async function tmp(): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), 'tvt-launcher-'));
}

async function script(dir: string, name: string, body: string): Promise<string> {
  const file = path.join(dir, name);
  await fs.writeFile(file, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  return file;
}

/** exited: gone from /proc, or a zombie (an orphan waits for pid 1 to reap it, which may take a while) */
async function gone(pid: number): Promise<boolean> {
  const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null);
  return stat === null || stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
}

const pidIn = async (file: string, tag: string) =>
  Number(await waitFor(async () => /(?:^|\n)(\w+)=(\d+)/.exec((await fs.readFile(file, 'utf8')).split('\n').filter((l) => l.startsWith(`${tag}=`)).join('\n'))?.[2], 5000, `${tag} in the log`));

test('linux: output and framing go to the log, env is exactly the one given, stop ends the whole group', async () => {
  const dir = await tmp();
  try {
    const exec = await script(dir, 'chk', 'echo "hello $FOO"; echo oops >&2; echo "home=${HOME:-none}"; sleep 300 & echo "child=$!"; wait');
    const logFile = path.join(dir, 'log', 'custom.log');
    const p = await new LinuxLauncher().launch({ exec, args: [], env: { FOO: 'bar', PATH: process.env.PATH ?? '/usr/bin:/bin' }, logFile, title: 'custom.x' });
    const child = await pidIn(logFile, 'child');
    assert.not.ok(await gone(child));
    const e = await p.stop(2000);
    assert.equal(e, { code: null, signal: 'SIGTERM' });
    await waitFor(() => gone(child), 5000, 'the background sleep to be killed with its group');
    const log = await fs.readFile(logFile, 'utf8');
    assert.match(log, /custom\.x started: .*chk \(pid \d+\)\n/);
    assert.match(log, /hello bar\n/);
    assert.match(log, /oops\n/);
    assert.match(log, /home=none\n/, 'nothing of the caller\'s environment is added');
    assert.match(log, /custom\.x exited SIGTERM after \d+ ms\n/);
    assert.equal(await p.stop(), e, 'idempotent');
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test('linux: a program that ignores SIGTERM gets SIGKILL after the grace', async () => {
  const dir = await tmp();
  try {
    const exec = await script(dir, 'stubborn', "trap '' TERM; echo ready=1; while :; do sleep 1; done");
    const logFile = path.join(dir, 'log');
    const p = await new LinuxLauncher().launch({ exec, args: [], env: {}, logFile, title: 'custom.s' });
    await pidIn(logFile, 'ready');
    assert.equal(await p.stop(100), { code: null, signal: 'SIGKILL' });
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test('linux: a leader that exits by itself reports its code; stop then clears what it left in the group', async () => {
  const dir = await tmp();
  try {
    const exec = await script(dir, 'quitter', 'sleep 300 & echo "child=$!"; exit 3');
    const logFile = path.join(dir, 'log');
    const p = await new LinuxLauncher().launch({ exec, args: ['x'], env: {}, logFile, title: 'custom.q' });
    assert.equal(await p.exited, { code: 3, signal: null });
    const child = await pidIn(logFile, 'child');
    assert.not.ok(await gone(child), 'the background sleep outlived its leader');
    assert.equal(await p.stop(), { code: 3, signal: null });
    await waitFor(() => gone(child), 5000, 'the leftover sleep to be killed');
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test('linux: a missing or non-executable program is a UserError, and the log says so', async () => {
  const dir = await tmp();
  try {
    const logFile = path.join(dir, 'log');
    const l = new LinuxLauncher();
    for (const exec of [path.join(dir, 'missing'), await fs.writeFile(path.join(dir, 'plain'), 'echo hi\n').then(() => path.join(dir, 'plain'))]) {
      try {
        await l.launch({ exec, args: [], env: {}, logFile, title: 'custom.m' });
        assert.unreachable(`${exec} started`);
      } catch (e) {
        assert.instance(e, UserError);
        assert.match((e as Error).message, /custom\.m: cannot start/);
      }
    }
    const log = await fs.readFile(logFile, 'utf8');
    assert.match(log, /could not start: .*missing: spawn .* ENOENT/);
    assert.match(log, /could not start: .*plain: spawn .* EACCES/);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test.run();
