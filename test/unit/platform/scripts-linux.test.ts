// LinuxScriptRunner on this machine with temporary directories (no namespaces, no network).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { UserError } from '../../../src/errors.js';
import { LinuxScriptRunner } from '../../../src/platform/scripts/linux.js';
import type { ScriptName, ScriptRequest } from '../../../src/platform/scripts/types.js';

interface Ctx {
  dir: string;
  runner: LinuxScriptRunner;
  pids: number[];
}

async function setup(): Promise<Ctx> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tvt-scripts-'));
  const runner = new LinuxScriptRunner({
    scriptsDir: (m) => path.join(dir, 'modules', m, 'bin'),
    logFile: (m) => path.join(dir, 'log', `${m}.log`),
  });
  await fs.mkdir(path.join(dir, 'modules', 'web', 'bin'), { recursive: true });
  return { dir, runner, pids: [] };
}

async function teardown(ctx: Ctx): Promise<void> {
  for (const pid of ctx.pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  await fs.rm(ctx.dir, { recursive: true, force: true });
}

async function script(ctx: Ctx, name: ScriptName, body: string, mode = 0o755): Promise<string> {
  const file = path.join(ctx.dir, 'modules', 'web', 'bin', name);
  await fs.writeFile(file, body, { mode });
  await fs.chmod(file, mode);
  return file;
}

const req = (script: ScriptName, extra: Partial<ScriptRequest> = {}): ScriptRequest => ({
  module: 'web',
  script,
  args: ['ALONE', 'PRIM', 'start'],
  env: {},
  timeoutMs: 10_000,
  ...extra,
});

const readLog = (ctx: Ctx) => fs.readFile(path.join(ctx.dir, 'log', 'web.log'), 'utf8');

/**
 * Alive and not a zombie. PID 1 in some sandboxes does not reap orphans, so a killed orphan can linger as a zombie
 * (state Z): it is dead, but process.kill(pid, 0) still succeeds on it.
 */
async function alive(pid: number): Promise<boolean> {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  return state !== '' && state !== 'Z';
}

async function readPid(file: string): Promise<number> {
  const end = Date.now() + 5000;
  for (;;) {
    const text = await fs.readFile(file, 'utf8').catch(() => '');
    if (/^\d+\n/.test(text)) return Number(text.trim());
    if (Date.now() > end) throw new Error(`no pid in ${file}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function withCtx(fn: (ctx: Ctx) => Promise<void>) {
  return async () => {
    const ctx = await setup();
    try {
      await fn(ctx);
    } finally {
      await teardown(ctx);
    }
  };
}

test('missing script → ok, missing, and no log written', withCtx(async (ctx) => {
  const r = await ctx.runner.run(req('prestart'));
  assert.equal(r, { ok: true, missing: true, timedOut: false, code: 0, durationMs: 0 });
  assert.is(await fs.stat(path.join(ctx.dir, 'log', 'web.log')).catch(() => null), null);
}));

test('missing module directory → missing', withCtx(async (ctx) => {
  const r = await ctx.runner.run({ ...req('prestart'), module: 'nosuchmodule' });
  assert.is(r.missing, true);
}));

test('exit codes: 0 is ok, anything else is not', withCtx(async (ctx) => {
  await script(ctx, 'start_prim', '#!/bin/sh\nexit 0\n');
  await script(ctx, 'stop_prim', '#!/bin/sh\nexit 3\n');
  const ok = await ctx.runner.run(req('start_prim'));
  assert.equal({ ...ok, durationMs: 0 }, { ok: true, missing: false, timedOut: false, code: 0, durationMs: 0 });
  const bad = await ctx.runner.run(req('stop_prim'));
  assert.is(bad.ok, false);
  assert.is(bad.code, 3);
  assert.is(bad.timedOut, false);
}));

test('a script killed by a signal → ok false, code null, and the log names the signal', withCtx(async (ctx) => {
  await script(ctx, 'stop_prim', '#!/bin/sh\nkill -TERM $$\n');
  const r = await ctx.runner.run(req('stop_prim'));
  assert.is(r.ok, false);
  assert.is(r.code, null);
  assert.match(await readLog(ctx), /script stop_prim ALONE PRIM start exited SIGTERM in \d+ ms/);
}));

test('args and env reach the script; process.env is kept', withCtx(async (ctx) => {
  await script(ctx, 'start_prim', '#!/bin/sh\necho "args=[$1|$2|$3] n=$# mod=$TANDEM_MODULE path=${PATH:+set}"\n');
  const r = await ctx.runner.run(req('start_prim', { args: ['WAIT', 'PRIM', 'with space'], env: { TANDEM_MODULE: 'web' } }));
  assert.is(r.ok, true);
  assert.match(await readLog(ctx), 'args=[WAIT|PRIM|with space] n=3 mod=web path=set');
}));

test('stdout and stderr land in the log between started and exited lines, appended', withCtx(async (ctx) => {
  await fs.mkdir(path.join(ctx.dir, 'log'));
  await fs.writeFile(path.join(ctx.dir, 'log', 'web.log'), 'earlier line\n');
  await script(ctx, 'start_prim', '#!/bin/sh\necho to-stdout\necho to-stderr >&2\nexit 5\n');
  await ctx.runner.run(req('start_prim'));
  const lines = (await readLog(ctx)).trimEnd().split('\n');
  const ts = '\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}\\.\\d{3}Z';
  assert.is(lines[0], 'earlier line');
  assert.match(lines[1]!, new RegExp(`^${ts} script start_prim ALONE PRIM start started$`));
  assert.equal(lines.slice(2, 4), ['to-stdout', 'to-stderr']);
  assert.match(lines[4]!, new RegExp(`^${ts} script start_prim ALONE PRIM start exited 5 in \\d+ ms$`));
  assert.is(lines.length, 5);
}));

test('timeout kills the whole process group with SIGKILL and reports timedOut', withCtx(async (ctx) => {
  const pidFile = path.join(ctx.dir, 'bg.pid');
  await script(ctx, 'stop_prim', `#!/bin/sh\nsleep 30 &\necho $! > ${pidFile}\nexec sleep 31\n`);
  // the script would exit 0 by itself after 31 s: a runner that ignored the timeout reports ok, not timedOut
  const r = await ctx.runner.run(req('stop_prim', { timeoutMs: 300 }));
  const bg = await readPid(pidFile);
  ctx.pids.push(bg);
  assert.equal({ ...r, durationMs: 0 }, { ok: false, missing: false, timedOut: true, code: null, durationMs: 0 });
  const end = Date.now() + 2000;
  while ((await alive(bg)) && Date.now() < end) await new Promise((res) => setTimeout(res, 10));
  assert.is(await alive(bg), false, 'the background child of the script was killed with the group');
  const log = await readLog(ctx);
  assert.match(log, /script stop_prim ALONE PRIM start timed out after 300 ms; killed its process group/);
  assert.match(log, /exited SIGKILL in \d+ ms/);
}));

test('a script that leaves a server in the background returns promptly and the server survives', withCtx(async (ctx) => {
  const pidFile = path.join(ctx.dir, 'server.pid');
  // the server inherits the log fd as stdout/stderr and keeps it open: the runner must not wait for it
  await script(ctx, 'start_prim', `#!/bin/sh\nsleep 30 &\necho $! > ${pidFile}\necho started-server\n`);
  // a runner that waited for the log fd to close would reach the 500 ms timeout and kill the group: r.ok proves it did not
  const r = await ctx.runner.run(req('start_prim', { timeoutMs: 500 }));
  const server = await readPid(pidFile);
  ctx.pids.push(server);
  assert.is(r.ok, true);
  assert.is(r.timedOut, false);
  await new Promise((res) => setTimeout(res, 800)); // past the script's timeout: nothing may kill the group later
  assert.is(await alive(server), true, 'the background server is still running');
  assert.match(await readLog(ctx), 'started-server');
}));

test('not executable: runs with /bin/sh and logs a warning', withCtx(async (ctx) => {
  const file = await script(ctx, 'start_second', 'echo "ran as [$0] with $1"\n', 0o644);
  const r = await ctx.runner.run(req('start_second'));
  assert.is(r.ok, true);
  const log = await readLog(ctx);
  assert.match(log, `warning: ${file} is not executable; running it with /bin/sh (chmod +x it to silence this)`);
  assert.match(log, `ran as [${file}] with ALONE`);
}));

test('not executable with a #! line: runs with that interpreter and its argument', withCtx(async (ctx) => {
  await script(ctx, 'start_second', '#!/bin/sh -e\nfalse\necho not-reached\n', 0o644);
  const r = await ctx.runner.run(req('start_second'));
  assert.is(r.code, 1, 'sh -e stopped at false');
  const log = await readLog(ctx);
  assert.match(log, 'running it with /bin/sh -e');
  assert.not.match(log, 'not-reached');
}));

test('a script whose interpreter does not exist → UserError, reason in the log', withCtx(async (ctx) => {
  const file = await script(ctx, 'start_prim', '#!/nonexistent/tvt-interp\necho hi\n');
  try {
    await ctx.runner.run(req('start_prim'));
    assert.unreachable('should throw');
  } catch (e) {
    assert.instance(e, UserError);
    assert.match((e as Error).message, `${file} could not be started`);
  }
  assert.match(await readLog(ctx), /script start_prim ALONE PRIM start could not start: .*ENOENT/);
}));

test('a directory where the script should be → UserError', withCtx(async (ctx) => {
  await fs.mkdir(path.join(ctx.dir, 'modules', 'web', 'bin', 'poststop'));
  try {
    await ctx.runner.run(req('poststop'));
    assert.unreachable('should throw');
  } catch (e) {
    assert.instance(e, UserError);
    assert.match((e as Error).message, /is not a regular file/);
  }
}));

test('a module bin path that is a file → UserError', withCtx(async (ctx) => {
  await fs.mkdir(path.join(ctx.dir, 'modules', 'db'), { recursive: true });
  await fs.writeFile(path.join(ctx.dir, 'modules', 'db', 'bin'), 'not a directory');
  try {
    await ctx.runner.run({ ...req('prestart'), module: 'db' });
    assert.unreachable('should throw');
  } catch (e) {
    assert.instance(e, UserError);
    assert.match((e as Error).message, /cannot read .*ENOTDIR/);
  }
}));

test('the module log is created 0600 (script output is not for other users); an existing readable one is made 0600', withCtx(async (ctx) => {
  await script(ctx, 'start_prim', '#!/bin/sh\necho secret-ish output\n');
  assert.ok((await ctx.runner.run(req('start_prim'))).ok);
  const log = path.join(ctx.dir, 'log', 'web.log');
  assert.is((await fs.stat(log)).mode & 0o777, 0o600);
  await fs.chmod(log, 0o644);
  assert.ok((await ctx.runner.run(req('start_prim'))).ok);
  assert.is((await fs.stat(log)).mode & 0o777, 0o600);
}));

test('a module log that cannot be opened or written never fails the script (full disk, broken log directory)', withCtx(async (ctx) => {
  const marker = path.join(ctx.dir, 'ran');
  await script(ctx, 'start_prim', `#!/bin/sh\necho output\necho "$1" > ${marker}\n`);
  await fs.mkdir(path.join(ctx.dir, 'log'), { recursive: true });
  await fs.symlink('/dev/full', path.join(ctx.dir, 'log', 'web.log')); // every write fails with ENOSPC
  let r = await ctx.runner.run(req('start_prim'));
  assert.equal([r.ok, r.code], [true, 0]);
  assert.is(await fs.readFile(marker, 'utf8'), 'ALONE\n');
  await fs.rm(path.join(ctx.dir, 'log'), { recursive: true });
  await fs.writeFile(path.join(ctx.dir, 'log'), 'a file where the log directory should be');
  await fs.rm(marker);
  r = await ctx.runner.run(req('start_prim'));
  assert.equal([r.ok, r.code], [true, 0]);
  assert.is(await fs.readFile(marker, 'utf8'), 'ALONE\n');
}));

test.run();
