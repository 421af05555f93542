// The mount layout of replicated dirs on real mounts (root). Everything runs in a private mount namespace: started
// without TANDEM_LAYOUT_ROLE, this file re-runs itself under `unshare --mount --propagation private` and only relays
// the result, so no mount made here is ever visible on the host. Inside, the test process serves the FUSE mounts of
// the layouts it enters, so it touches a replicated dir only with async fs calls while no FUSE mount is on it, and
// through child processes (`sh`, the "application") otherwise. Layouts held by a process that crashes are served by a
// child started with TANDEM_LAYOUT_ROLE=server (same namespace). Every test ends with leave(), then recover(), then a
// last sweep (fusectl abort + umount -l) of anything still mounted under its /tmp/tlay-* directory.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { UserError } from '../../src/errors.js';
import { run } from '../../src/platform/exec.js';
import { RecordingSink } from '../../src/replication/fuse/index.js';
import {
  describeLayout, enterPrimary, enterSecondary, parseMountinfo, recover,
  type PrimaryLayout, type SecondaryLayout,
} from '../../src/replication/layout/index.js';
import { linuxSystem } from '../../src/replication/layout/system.js';
import { fuseConnection, isFuse } from '../../src/replication/layout/mountinfo.js';

const SELF = fileURLToPath(import.meta.url);
const ROLE = process.env.TANDEM_LAYOUT_ROLE;
const PREFIX = '/tmp/tlay-';
/** what mountPassthrough mounts here: fuseblk when the system has loop devices */
const FUSE_TYPE = fs.existsSync('/dev/loop-control') ? 'fuseblk.tandem' : 'fuse.tandem';

if (ROLE === undefined) await host();
else if (ROLE === 'server') await server();
else inNamespace();

/** Runs the suite in a private mount namespace and checks afterwards that the host saw none of its mounts. */
async function host(): Promise<void> {
  const child = spawn('unshare', ['--mount', '--propagation', 'private', process.execPath, '--enable-source-maps', SELF], {
    stdio: 'inherit',
    env: { ...process.env, TANDEM_LAYOUT_ROLE: 'tests' },
  });
  for (const sig of ['SIGTERM', 'SIGINT'] as const) process.on(sig, () => child.kill(sig));
  const code = await new Promise<number>((resolve) => child.on('exit', (c, s) => resolve(c ?? (s ? 1 : 0))));
  const leaked = (await fsp.readFile('/proc/mounts', 'utf8')).split('\n').filter((l) => l.includes(PREFIX));
  if (leaked.length > 0) {
    console.error(`mounts leaked to the host:\n  ${leaked.join('\n  ')}`);
    process.exit(1);
  }
  process.exit(code);
}

interface ServerArgs {
  kind: 'primary' | 'secondary';
  /** exit: leave() never runs; wait: hold the layout until killed */
  then: 'exit' | 'wait';
  dirs: string[];
  runDir: string;
  module: string;
}

/** Holds a layout for a test, in its own process, so that the test can kill it or let it exit without leave(). */
async function server(): Promise<void> {
  const a = JSON.parse(process.env.TANDEM_LAYOUT_ARGS!) as ServerArgs;
  const req = { dirs: a.dirs, runDir: a.runDir, module: a.module };
  if (a.kind === 'primary') await enterPrimary({ ...req, sinkFor: () => new RecordingSink() });
  else await enterSecondary(req);
  process.stdout.write('ready\n');
  if (a.then === 'exit') process.exit(0);
  setInterval(() => {}, 1 << 30);
}

function inNamespace(): void {
  const baseline = new Set(fs.readFileSync('/proc/mounts', 'utf8').split('\n')); // before any FUSE mount of ours

  interface Fixture {
    base: string;
    one: string;
    /** with a space: exercises the escaping of /proc/self/mountinfo */
    two: string;
    runDir: string;
    module: string;
    req: { dirs: string[]; runDir: string; module: string };
    P(i: number): string;
    sinks: Map<string, RecordingSink>;
    sinkFor(dir: string): RecordingSink;
    /** a shell script as the application (a child process in this namespace), with $ONE and $TWO set */
    app(script: string): Promise<{ code: number; stdout: string; stderr: string }>;
    /** starts a process that holds a layout; resolves once it is in place */
    startServer(kind: ServerArgs['kind'], then: ServerArgs['then']): Promise<ChildProcess>;
    /** leave() is called in `finally` if the test did not */
    hold<T extends PrimaryLayout | SecondaryLayout>(l: T): T;
  }

  async function withFixture(fn: (f: Fixture) => Promise<void>, timeoutMs = 120_000): Promise<void> {
    const base = await fsp.mkdtemp(PREFIX);
    const one = path.join(base, 'data', 'one');
    const two = path.join(base, 'data', 'two dir');
    await fsp.mkdir(one, { recursive: true });
    await fsp.mkdir(two);
    const runDir = path.join(base, 'run');
    const module = 'db';
    const req = { dirs: [one, two], runDir, module };
    const children: ChildProcess[] = [];
    const held: Array<PrimaryLayout | SecondaryLayout> = [];
    const sinks = new Map<string, RecordingSink>();
    const f: Fixture = {
      base, one, two, runDir, module, req, sinks,
      P: (i) => path.join(runDir, 'backing', module, String(i)),
      sinkFor: (dir) => {
        const s = new RecordingSink();
        sinks.set(dir, s);
        return s;
      },
      app: (script) => run('sh', ['-c', script], { reject: false, timeoutMs: 60_000, env: { ONE: one, TWO: two } }),
      startServer: async (kind, then) => {
        const child = spawn(process.execPath, ['--enable-source-maps', SELF], {
          stdio: ['ignore', 'pipe', 'inherit'],
          env: { ...process.env, TANDEM_LAYOUT_ROLE: 'server', TANDEM_LAYOUT_ARGS: JSON.stringify({ kind, then, ...req }) },
        });
        children.push(child);
        await new Promise<void>((resolve, reject) => {
          let out = '';
          const timer = setTimeout(() => reject(new Error('the layout server did not come up within 30 s')), 30_000);
          child.stdout!.on('data', (d: Buffer) => {
            out += d.toString();
            if (out.includes('ready\n')) { clearTimeout(timer); resolve(); }
          });
          child.on('exit', (code) => { if (!out.includes('ready\n')) { clearTimeout(timer); reject(new Error(`the layout server exited with ${code}`)); } });
        });
        return child;
      },
      hold: (l) => { held.push(l); return l; },
    };
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        fn(f),
        new Promise((_, rej) => { timer = setTimeout(() => rej(new Error('test timed out; cleaning up')), timeoutMs); }),
      ]).finally(() => clearTimeout(timer));
    } finally {
      for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
      await Promise.all(children.map((c) => (c.exitCode === null && c.signalCode === null ? new Promise((r) => c.once('exit', r)) : null)));
      for (const l of held) await l.leave().catch((e: Error) => console.error(`cleanup: leave: ${e.message}`));
      await recover(req).catch((e: Error) => console.error(`cleanup: recover: ${e.message}`));
      await sweep(base);
      const left = await mountsUnder(base);
      if (left.length === 0) await fsp.rm(base, { recursive: true, force: true }); // never recurse into a live mount
      assert.equal(left, [], `nothing left mounted under ${base}`);
    }
  }

  /** last resort: abort FUSE connections and lazily detach everything under `base`, deepest first */
  async function sweep(base: string): Promise<void> {
    const entries = parseMountinfo(await fsp.readFile('/proc/self/mountinfo', 'utf8'))
      .filter((e) => e.mountPoint.startsWith(base)).reverse().sort((a, b) => b.mountPoint.length - a.mountPoint.length);
    for (const e of entries) {
      console.error(`cleanup: sweeping ${e.fstype} on ${e.mountPoint}`);
      if (isFuse(e)) await linuxSystem.abortFuseConnection(fuseConnection(e)).catch(() => {});
      await run('umount', ['-l', '--no-canonicalize', e.mountPoint], { reject: false });
    }
  }

  async function mountsUnder(base: string): Promise<string[]> {
    return parseMountinfo(await fsp.readFile('/proc/self/mountinfo', 'utf8'))
      .filter((e) => e.mountPoint.startsWith(base)).map((e) => `${e.fstype} on ${e.mountPoint}`);
  }

  async function mountsAt(p: string): Promise<string[]> {
    return parseMountinfo(await fsp.readFile('/proc/self/mountinfo', 'utf8'))
      .filter((e) => e.mountPoint === p).map((e) => `${e.fstype}${e.options.includes('ro') ? ' ro' : ''}`);
  }

  async function ok(f: Fixture, script: string): Promise<string> {
    const r = await f.app(script);
    assert.is(r.code, 0, `${script}\n${r.stderr}`);
    return r.stdout;
  }

  async function fails(f: Fixture, script: string, message: RegExp): Promise<void> {
    const r = await f.app(script);
    assert.is.not(r.code, 0, `${script} must fail`);
    assert.match(r.stderr, message);
  }

  async function rejectsWith(p: Promise<unknown>, code: string): Promise<void> {
    try {
      await p;
    } catch (e) {
      assert.is((e as NodeJS.ErrnoException).code, code);
      return;
    }
    assert.unreachable(`expected ${code}`);
  }

  const layouts = async (f: Fixture) => (await describeLayout(f.req)).map((s) => s.layout);

  test('primary: the application writes under D, the change lands in P and reaches the sink; leave() gives D back', () => withFixture(async (f) => {
    await fsp.writeFile(path.join(f.two, 'old.txt'), 'old\n');
    const l = f.hold(await enterPrimary({ ...f.req, sinkFor: (d) => f.sinkFor(d) }));
    // fuseblk over a loop device (so that syncfs reaches the server), or fuse where that cannot be done
    assert.equal(await mountsAt(f.one), [FUSE_TYPE]);
    assert.equal(await mountsAt(f.two), [FUSE_TYPE]);
    assert.is((await mountsAt(f.P(0))).length, 1);
    assert.equal(await layouts(f), ['primary', 'primary']);

    assert.is(await ok(f, 'cat "$TWO/old.txt" && echo hello > "$ONE/new.txt" && mkdir "$ONE/sub" && echo more >> "$TWO/old.txt"'), 'old');
    assert.is(await fsp.readFile(path.join(f.P(0), 'new.txt'), 'utf8'), 'hello\n');
    assert.ok((await fsp.stat(path.join(f.P(0), 'sub'))).isDirectory());
    assert.is(await fsp.readFile(path.join(f.P(1), 'old.txt'), 'utf8'), 'old\nmore\n');
    assert.equal(f.sinks.get(f.one)!.summary(), ['create new.txt 100644 0:0', 'write new.txt @0 +6', 'mkdir sub 40755 0:0']);
    assert.equal(f.sinks.get(f.two)!.summary(), ['write old.txt @4 +5']);
    const nobody = await run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'ls', f.P(0)], { reject: false });
    assert.is.not(nobody.code, 0, 'nobody but root reaches P');

    await l.leave();
    assert.equal(await mountsUnder(f.base), []);
    assert.is(await fsp.readFile(path.join(f.one, 'new.txt'), 'utf8'), 'hello\n');
    assert.is(await fsp.readFile(path.join(f.two, 'old.txt'), 'utf8'), 'old\nmore\n');
    assert.equal(await layouts(f), ['none', 'none']);
  }));

  test('secondary: writes to D fail with EROFS, writes to P succeed and show under D', () => withFixture(async (f) => {
    const l = f.hold(await enterSecondary(f.req));
    assert.equal(await layouts(f), ['secondary', 'secondary']);
    const [onOne] = await mountsAt(f.one);
    assert.match(onOne!, / ro$/);
    await rejectsWith(fsp.writeFile(path.join(f.one, 'x'), 'no'), 'EROFS');
    await rejectsWith(fsp.mkdir(path.join(f.two, 'd')), 'EROFS');
    await fails(f, 'echo no > "$ONE/x"', /Read-only file system/);

    const root = l.writableRoot(f.one);
    assert.is(root, f.P(0));
    await fsp.writeFile(path.join(root, 'applied'), 'from the primary');
    await fsp.mkdir(path.join(l.writableRoot(f.two), 'dir'));
    await fsp.rename(path.join(root, 'applied'), path.join(root, 'renamed'));
    assert.is(await ok(f, 'cat "$ONE/renamed" && ls "$TWO"'), 'from the primarydir');

    await l.leave();
    assert.equal(await mountsUnder(f.base), []);
    await fsp.writeFile(path.join(f.one, 'x'), 'writable again');
    assert.equal((await fsp.readdir(f.one)).sort(), ['renamed', 'x']);
  }));

  test('switching primary → secondary → primary keeps the data and the layouts clean', () => withFixture(async (f) => {
    const p1 = f.hold(await enterPrimary({ ...f.req, sinkFor: (d) => f.sinkFor(d) }));
    await ok(f, 'printf v1 > "$ONE/a.txt"');
    await p1.leave();
    assert.equal(await mountsUnder(f.base), []);

    const s = f.hold(await enterSecondary(f.req));
    assert.is(await ok(f, 'cat "$ONE/a.txt"'), 'v1');
    await fsp.writeFile(path.join(s.writableRoot(f.one), 'a.txt'), 'v2');
    assert.is(await ok(f, 'cat "$ONE/a.txt"'), 'v2');
    await fails(f, 'printf v3 > "$ONE/a.txt"', /Read-only file system/);
    await s.leave();
    assert.equal(await mountsUnder(f.base), []);

    const p2 = f.hold(await enterPrimary({ ...f.req, sinkFor: (d) => f.sinkFor(d) }));
    assert.equal(await layouts(f), ['primary', 'primary']);
    assert.is(await ok(f, 'cat "$ONE/a.txt" && printf +v3 >> "$ONE/a.txt"'), 'v2');
    assert.equal(f.sinks.get(f.one)!.summary(), ['write a.txt @2 +3']);
    await p2.leave();
    assert.is(await fsp.readFile(path.join(f.one, 'a.txt'), 'utf8'), 'v2+v3');
    assert.equal(await layouts(f), ['none', 'none']);
  }));

  test('recover: the serving process was SIGKILLed (stale FUSE mount answering ENOTCONN)', () => withFixture(async (f) => {
    const srv = await f.startServer('primary', 'wait');
    await ok(f, 'echo through-the-server > "$ONE/f" && echo 2 > "$TWO/g"');
    assert.is(await fsp.readFile(path.join(f.P(0), 'f'), 'utf8'), 'through-the-server\n');
    srv.kill('SIGKILL');
    await new Promise((r) => srv.once('exit', r));
    await fails(f, 'ls "$ONE"', /Transport endpoint is not connected/);
    const st = await describeLayout(f.req);
    assert.equal(st.map((s) => [s.layout, s.servedHere]), [['primary', false], ['primary', false]]);

    const steps = (await recover(f.req)).map((s) => s.did.replace(/connection \d+/, 'connection N'));
    assert.equal(steps, [
      `aborted FUSE connection N and detached ${FUSE_TYPE} from ${f.one}`,
      `aborted FUSE connection N and detached ${FUSE_TYPE} from ${f.two}`,
      `unmounted ${f.P(1)}`,
      `unmounted ${f.P(0)}`,
    ]);
    assert.equal(await mountsUnder(f.base), []);
    assert.equal(await layouts(f), ['none', 'none']);
    assert.is(await fsp.readFile(path.join(f.one, 'f'), 'utf8'), 'through-the-server\n');
    assert.equal(await recover(f.req), [], 'idempotent');
  }));

  test('recover: a hung (stopped) server; the blocked application is released', () => withFixture(async (f) => {
    const srv = await f.startServer('primary', 'wait');
    await ok(f, 'echo data > "$ONE/f"');
    srv.kill('SIGSTOP');
    const blocked = f.app('cat "$ONE/f"');
    await new Promise((r) => setTimeout(r, 300));
    await recover(f.req);
    const r = await blocked;
    assert.is.not(r.code, 0, 'the blocked read fails once the connection is aborted');
    assert.match(r.stderr, /Transport endpoint is not connected|Software caused connection abort|Interrupted/);
    assert.equal(await mountsUnder(f.base), []);
    assert.is(await fsp.readFile(path.join(f.one, 'f'), 'utf8'), 'data\n');
    srv.kill('SIGKILL');
  }));

  test('recover: leave() never ran (secondary, and primary whose process exited); a half-built layout', () => withFixture(async (f) => {
    await f.startServer('secondary', 'exit');
    assert.equal(await layouts(f), ['secondary', 'secondary']);
    await rejectsWith(fsp.writeFile(path.join(f.one, 'x'), 'no'), 'EROFS');
    try {
      await enterPrimary({ ...f.req, sinkFor: () => undefined });
      assert.unreachable('entering over leftovers must fail');
    } catch (err) {
      assert.instance(err, UserError);
      assert.match((err as Error).message, /still carries tandem mounts from an earlier run/);
    }
    assert.is((await recover(f.req)).length, 4);
    assert.equal(await mountsUnder(f.base), []);
    await fsp.writeFile(path.join(f.one, 'x'), 'writable');

    await f.startServer('primary', 'exit');
    assert.equal(await layouts(f), ['primary', 'primary']);
    await recover(f.req);
    assert.equal(await mountsUnder(f.base), []);

    await fsp.mkdir(f.P(0), { recursive: true });
    await run('mount', ['--bind', f.one, f.P(0)]);
    assert.equal(await layouts(f), ['partial', 'none']);
    assert.equal((await recover(f.req)).map((s) => s.did), [`unmounted ${f.P(0)}`]);
    assert.equal(await recover(f.req), []);
    const l = f.hold(await enterPrimary({ ...f.req, sinkFor: () => undefined }));
    assert.is(await ok(f, 'cat "$ONE/x"'), 'writable');
    await l.leave();
    assert.equal(await mountsUnder(f.base), []);
  }));

  test('a replicated dir that is a mount point of something else is refused; recover keeps it', () => withFixture(async (f) => {
    await run('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tlaytmp', f.two]);
    try {
      try {
        await enterPrimary({ ...f.req, sinkFor: () => undefined });
        assert.unreachable('must refuse');
      } catch (err) {
        assert.instance(err, UserError);
        assert.match((err as Error).message, /two dir is itself a mount point \(tmpfs tlaytmp\)/);
      }
      assert.equal(await mountsAt(f.one), [], 'nothing was mounted for the other dir either');
      assert.equal((await recover(f.req)).map((s) => s.did), [`kept tmpfs tlaytmp on ${f.two}: it is not tandem's`]);
      assert.equal(await mountsAt(f.two), ['tmpfs']);
    } finally {
      await run('umount', [f.two], { reject: false });
    }
  }));

  test('a process with its cwd in a replicated dir: refused, naming its pid; once it has ended the layout mounts', () => withFixture(async (f) => {
    const sleeper = spawn('sleep', ['600'], { cwd: f.one, stdio: 'ignore' });
    try {
      await new Promise((r) => sleeper.once('spawn', r));
      for (const enter of [() => enterPrimary({ ...f.req, sinkFor: (d) => f.sinkFor(d) }), () => enterSecondary(f.req)]) {
        try {
          f.hold(await enter());
          assert.unreachable('must refuse');
        } catch (err) {
          assert.instance(err, UserError);
          assert.match((err as Error).message, new RegExp(`pid ${sleeper.pid} \\(sleep\\): its current directory ${f.one}`));
          assert.match((err as UserError).hint ?? '', /start script/);
        }
      }
      assert.equal(await mountsUnder(f.base), [], 'nothing mounted');
    } finally {
      if (sleeper.exitCode === null) process.kill(sleeper.pid!, 'SIGKILL');
      await new Promise((r) => (sleeper.exitCode === null && sleeper.signalCode === null ? sleeper.once('exit', r) : r(null)));
    }
    const l = f.hold(await enterPrimary({ ...f.req, sinkFor: (d) => f.sinkFor(d) }));
    assert.equal(await layouts(f), ['primary', 'primary']);
    await l.leave();
  }));

  test('nothing of ours is left mounted in the namespace', async () => {
    const now = (await fsp.readFile('/proc/mounts', 'utf8')).split('\n');
    assert.equal(now.filter((l) => /fuse|\/tmp\/tlay/.test(l) && !baseline.has(l)), []);
  });

  test.run();
}
