import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { CustomChecker, type CustomCheckerOptions } from '../../../src/checkers/custom.js';
import { FakeClock } from '../../../src/platform/clock/fake.js';
import { FakeLauncher } from '../../../src/platform/launcher/fake.js';
import { LinuxLauncher } from '../../../src/platform/launcher/linux.js';
import { waitFor } from '../wait-for.js';
import { recorder, settle, step } from './helpers.js';

function setup(extra: Partial<CustomCheckerOptions> = {}) {
  const clock = new FakeClock();
  const launcher = new FakeLauncher();
  const r = recorder();
  const logs: string[] = [];
  const c = new CustomChecker({
    ident: 'db', exec: '/opt/check-db', args: ['--port', '5432'], env: { PATH: '/usr/bin', TANDEM_MODULE: 'pg' }, logFile: '/var/log/pg.log',
    launcher, clock, report: r.report, log: (m) => logs.push(m), ...extra,
  });
  return { clock, launcher, r, logs, c };
}

/** advances until the program is launched again, returning the delay it took */
async function relaunchDelay(clock: FakeClock, launcher: FakeLauncher): Promise<number> {
  const before = launcher.requests.length;
  const t0 = clock.mono();
  for (let i = 0; i < 100 && launcher.requests.length === before; i++) await step(clock, 500);
  return clock.mono() - t0;
}

test('init at start, the program launched with its args, env and log; nothing else reported', async () => {
  const { clock, launcher, r, c } = setup();
  assert.is(c.resource, 'custom.db');
  c.start();
  assert.equal(r.seen, ['init waiting for /opt/check-db to report']);
  await step(clock, 0);
  assert.equal(launcher.requests, [{ exec: '/opt/check-db', args: ['--port', '5432'], env: { PATH: '/usr/bin', TANDEM_MODULE: 'pg' }, logFile: '/var/log/pg.log', title: 'custom.db' }]);
  assert.is(c.pid, launcher.only().pid);
  await step(clock, 60_000);
  assert.is(r.seen.length, 1);
  await c.stop();
});

test('an exit is logged, its group cleared, and the program started again after 1 s, 2 s, 4 s … 30 s', async () => {
  const { clock, launcher, logs, r, c } = setup();
  c.start();
  await step(clock, 0);
  const delays: number[] = [];
  for (let i = 0; i < 7; i++) {
    const pid = launcher.only().pid;
    launcher.exit(pid, 1);
    await settle();
    assert.ok(launcher.stopped.includes(pid), 'what it left in its group is stopped');
    delays.push(await relaunchDelay(clock, launcher));
  }
  assert.equal(delays, [1000, 2000, 4000, 8000, 16000, 30000, 30000]);
  assert.match(logs[0]!, /^custom\.db: \/opt\/check-db \(pid 5000\) exited 1 after 0 ms; starting it again in 1000 ms$/);
  assert.is(r.seen.length, 1, 'exits are not reported: the resource keeps what the program set');
  await c.stop();
});

test('a run of 60 s resets the delay to 1 s', async () => {
  const { clock, launcher, c } = setup();
  c.start();
  await step(clock, 0);
  for (let i = 0; i < 3; i++) {
    launcher.exit(launcher.only().pid, 1);
    await settle();
    await relaunchDelay(clock, launcher);
  }
  await step(clock, 60_000);
  launcher.exit(launcher.only().pid, 0);
  await settle();
  assert.is(await relaunchDelay(clock, launcher), 1000);
  await c.stop();
});

test('a program that cannot start is unknown with the reason, retried on the backoff, init again once it runs', async () => {
  const { clock, launcher, logs, r, c } = setup();
  launcher.failNext('custom.db: cannot start /opt/check-db: spawn /opt/check-db ENOENT', 2);
  c.start();
  await step(clock, 0);
  assert.equal(r.seen, ['init waiting for /opt/check-db to report', 'unknown custom.db: cannot start /opt/check-db: spawn /opt/check-db ENOENT']);
  assert.is(await relaunchDelay(clock, launcher), 1000);
  assert.is(await relaunchDelay(clock, launcher), 2000);
  assert.is(launcher.running.size, 1);
  assert.equal(r.states(), ['init', 'unknown', 'init']);
  assert.is(r.last(), 'init /opt/check-db started again; waiting for it to report');
  assert.match(logs[0]!, /ENOENT; trying again in 1000 ms$/);
  await c.stop();
});

test('stop ends the program, cancels a pending restart and silences the checker', async () => {
  const { clock, launcher, r, c } = setup();
  c.start();
  await step(clock, 0);
  const pid = launcher.only().pid;
  await c.stop();
  assert.equal(launcher.stopped, [pid]);
  assert.is(launcher.running.size, 0);
  assert.is(clock.pending, 0);
  await step(clock, 60_000);
  assert.is(launcher.requests.length, 1);
  c.start();
  await step(clock, 0);
  launcher.exit(launcher.only().pid, 1);
  await settle();
  await c.stop();
  assert.is(clock.pending, 0, 'the restart timer is cancelled');
  await step(clock, 60_000);
  assert.is(launcher.requests.length, 2);
  assert.equal(r.states(), ['init', 'init']);
});

test('stop while the program is being launched ends it once it runs, and resolves only when its group is gone', async () => {
  const { clock, launcher, c } = setup();
  let release = () => {};
  const slowStop = new Promise<void>((r) => { release = r; });
  const launch = launcher.launch.bind(launcher);
  launcher.launch = async (req) => {
    const p = await launch(req);
    const stop = p.stop.bind(p);
    return { pid: p.pid, exited: p.exited, stop: async () => { const e = await stop(); await slowStop; return e; } };
  };
  c.start();
  clock.advance(0); // launch called, not yet resolved
  let done = false;
  const stopped = c.stop().then(() => { done = true; });
  await settle();
  assert.equal(launcher.stopped, [5000]);
  assert.is(done, false, 'the group is still being stopped');
  release();
  await stopped;
  assert.is(launcher.running.size, 0);
});

test('with the real launcher: a program that keeps exiting is started again; stop kills the one that sleeps', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tvt-custom-'));
  try {
    const exec = path.join(dir, 'check');
    const marker = path.join(dir, 'runs');
    await fs.writeFile(exec, `#!/bin/sh\necho run >> ${marker}\n[ "$(wc -l < ${marker})" -ge 2 ] && exec sleep 300\nexit 1\n`, { mode: 0o755 });
    const clock = new FakeClock();
    const logs: string[] = [];
    const r = recorder();
    const logFile = path.join(dir, 'module.log');
    const c = new CustomChecker({ ident: 'x', exec, args: [], env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, logFile, launcher: new LinuxLauncher(), clock, report: r.report, log: (m) => logs.push(m), stopGraceMs: 1000 });
    c.start();
    clock.advance(0);
    await waitFor(() => logs.length === 1, 5000, 'the first run to exit');
    assert.match(logs[0]!, /exited 1 after 0 ms; starting it again in 1000 ms/);
    clock.advance(1000);
    await waitFor(async () => (await fs.readFile(marker, 'utf8')).split('\n').length === 3 && c.pid !== null, 5000, 'the second run');
    const pid = c.pid!;
    await c.stop();
    const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8').catch(() => 'gone');
    assert.ok(stat === 'gone' || / Z /.test(stat), 'the sleeping program is gone');
    assert.equal(r.states(), ['init']);
    assert.match(await fs.readFile(logFile, 'utf8'), /custom\.x exited SIGTERM/);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test.run();
