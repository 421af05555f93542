// The mount layout against the in-memory mount table (FakeMountSystem): the order of mounts, the checks that refuse
// a dir before anything is mounted, undoing a half-entered layout, leave() on partial state and recover(). The
// directories are real temporary ones (the layout lstat()s them); nothing is mounted for real.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BugError, UserError } from '../../../src/errors.js';
import { FakeMountSystem } from '../../../src/replication/layout/fake.js';
import { describeLayout, enterPrimary, enterSecondary, recover } from '../../../src/replication/layout/index.js';

interface Fixture {
  base: string;
  one: string;
  two: string;
  runDir: string;
  P(i: number): string;
  sys: FakeMountSystem;
}

async function withFixture(fn: (f: Fixture) => Promise<void>): Promise<void> {
  const base = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-layout-unit-')));
  const one = path.join(base, 'data', 'one');
  const two = path.join(base, 'data', 'two dir');
  fs.mkdirSync(one, { recursive: true });
  fs.mkdirSync(two);
  const runDir = path.join(base, 'run');
  try {
    await fn({ base, one, two, runDir, P: (i) => path.join(runDir, 'backing', 'db', String(i)), sys: new FakeMountSystem() });
  } finally {
    fs.rmSync(base, { recursive: true, force: true });
  }
}

const onlyRoot = (sys: FakeMountSystem) => assert.equal(sys.entries.map((e) => e.mountPoint), ['/']);

async function throwsUser(p: Promise<unknown>, re: RegExp): Promise<void> {
  try {
    await p;
  } catch (err) {
    assert.instance(err, UserError);
    assert.match((err as Error).message, re);
    return;
  }
  assert.unreachable('expected a UserError');
}

test('enterPrimary binds D to a private P, then serves P at D; leave() undoes it last dir first, FUSE before P', () => withFixture(async (f) => {
  const sinks: string[] = [];
  const l = await enterPrimary({ dirs: [f.one, f.two], runDir: f.runDir, module: 'db', system: f.sys, sinkFor: (d) => { sinks.push(d); return undefined; } });
  assert.equal(sinks, [f.one, f.two]);
  assert.equal(f.sys.commands, [
    `mount --no-canonicalize --bind ${f.one} ${f.P(0)}`,
    `mount --no-canonicalize --make-private ${f.P(0)}`,
    `fuse-mount ${f.one} backing ${f.P(0)}`,
    `mount --no-canonicalize --bind '${f.two}' ${f.P(1)}`,
    `mount --no-canonicalize --make-private ${f.P(1)}`,
    `fuse-mount ${f.two} backing ${f.P(1)}`,
  ]);
  assert.is(fs.statSync(path.join(f.runDir, 'backing')).mode & 0o777, 0o700, 'nobody but root reaches P');
  const st = await l.describe();
  assert.equal(st.map((s) => [s.dir, s.layout, s.servedHere]), [[f.one, 'primary', true], [f.two, 'primary', true]]);
  assert.equal(st[1]!.mounts, [`fuse on ${f.two}`, `bind of the dir on ${f.P(1)}`]);
  f.sys.commands.length = 0;
  await l.leave();
  await l.leave();
  assert.equal(f.sys.commands, [
    `fuse-unmount ${f.two}`, `umount --no-canonicalize ${f.P(1)}`,
    `fuse-unmount ${f.one}`, `umount --no-canonicalize ${f.P(0)}`,
  ]);
  onlyRoot(f.sys);
  assert.equal((await describeLayout({ dirs: [f.one], runDir: f.runDir, module: 'db', system: f.sys }))[0]!.servedHere, false);
}));

test('enterSecondary: private P for the applier, D bound onto itself read-only; writableRoot maps D to P', () => withFixture(async (f) => {
  const l = await enterSecondary({ dirs: [f.one], runDir: f.runDir, module: 'db', system: f.sys });
  assert.equal(f.sys.commands, [
    `mount --no-canonicalize --bind ${f.one} ${f.P(0)}`,
    `mount --no-canonicalize --make-private ${f.P(0)}`,
    `mount --no-canonicalize --bind ${f.one} ${f.one}`,
    `mount --no-canonicalize -o remount,bind,ro ${f.one}`,
  ]);
  assert.is(l.writableRoot(f.one), f.P(0));
  assert.is(l.writableRoot(`${f.one}/`), f.P(0));
  assert.throws(() => l.writableRoot('/elsewhere'), (e: Error) => e instanceof BugError);
  assert.equal((await l.describe()).map((s) => s.layout), ['secondary']);
  f.sys.commands.length = 0;
  await l.leave();
  assert.equal(f.sys.commands, [`umount --no-canonicalize ${f.one}`, `umount --no-canonicalize ${f.P(0)}`]);
  onlyRoot(f.sys);
}));

test('UserErrors before anything is mounted: missing, file, symlink, relative, root, nested, run dir, module name', () => withFixture(async (f) => {
  const enter = (dirs: string[], extra: { runDir?: string; module?: string } = {}) =>
    enterPrimary({ dirs, runDir: extra.runDir ?? f.runDir, module: extra.module ?? 'db', system: f.sys, sinkFor: () => undefined });
  fs.writeFileSync(path.join(f.base, 'file'), '');
  fs.symlinkSync(f.one, path.join(f.base, 'link'));
  await throwsUser(enter([path.join(f.base, 'missing')]), /does not exist\. Create it \(mkdir -p /);
  await throwsUser(enter([path.join(f.base, 'no/such/parent')]), /does not exist/);
  await throwsUser(enter([path.join(f.base, 'file')]), /is not a directory/);
  await throwsUser(enter([path.join(f.base, 'link')]), new RegExp(`is a symbolic link to ${f.one}`));
  await throwsUser(enter(['data/one']), /is not absolute/);
  await throwsUser(enter(['/']), /is the root directory/);
  await throwsUser(enter([f.one, path.join(f.one, 'inner')]), /lies inside or contains replicated dir/);
  await throwsUser(enter([path.join(f.base, 'data'), f.two]), /lies inside or contains replicated dir/);
  await throwsUser(enter([f.one], { runDir: path.join(f.one, 'run') }), /overlaps tandem's run directory/);
  await throwsUser(enter([f.one], { module: '../x' }), /module name/);
  await throwsUser(enter([]), /has no replicated directory/);
  assert.equal(f.sys.commands, []);
  onlyRoot(f.sys);
}));

test('UserErrors for mounts: D is a mount point of something else, holds one, or carries leftovers', () => withFixture(async (f) => {
  const enter = () => enterSecondary({ dirs: [f.one, f.two], runDir: f.runDir, module: 'db', system: f.sys });
  const disk = f.sys.addMount(f.two, 'ext4', '/dev/sdb1');
  await throwsUser(enter(), /two dir is itself a mount point \(ext4 \/dev\/sdb1\).*replicate a directory inside/);
  f.sys.entries = f.sys.entries.filter((e) => e !== disk);
  const inner = f.sys.addMount(path.join(f.two, 'cache'), 'tmpfs', 'tmpfs');
  await throwsUser(enter(), /has mount points inside it \(.*cache: tmpfs tmpfs\)/);
  f.sys.entries = f.sys.entries.filter((e) => e !== inner);
  await f.sys.run('mount', ['--bind', f.one, f.P(0)]);
  await throwsUser(enter(), /one still carries tandem mounts from an earlier run \(bind of the dir on .*\)\. Run the layout recovery first/);
  assert.equal(f.sys.commands, [`mount --bind ${f.one} ${f.P(0)}`], 'nothing else was mounted');
}));

test('a failure half way through enterPrimary undoes every mount it made and releases the dirs', () => withFixture(async (f) => {
  f.sys.failOn(`fuse-mount ${f.two}`);
  const req = { dirs: [f.one, f.two], runDir: f.runDir, module: 'db', system: f.sys, sinkFor: () => undefined };
  await enterPrimary(req).then(() => assert.unreachable('must fail'), (err: Error) => assert.match(err.message, /injected/));
  onlyRoot(f.sys);
  assert.ok(f.sys.commands.includes(`fuse-unmount ${f.one}`));
  f.sys.failOn(`remount,bind,ro ${f.one}`);
  await enterSecondary(req).then(() => assert.unreachable('must fail'), (err: Error) => assert.match(err.message, /injected/));
  onlyRoot(f.sys);
  const l = await enterPrimary(req);
  await l.leave();
  onlyRoot(f.sys);
}));

test('leave() tolerates partial state and goes on after a failure; a FUSE mount that stays is aborted and detached', () => withFixture(async (f) => {
  const l = await enterPrimary({ dirs: [f.one, f.two], runDir: f.runDir, module: 'db', system: f.sys, sinkFor: () => undefined });
  await f.sys.run('umount', [f.P(1)]);
  f.sys.fuseStays(f.one);
  f.sys.commands.length = 0;
  await l.leave();
  onlyRoot(f.sys);
  assert.equal(f.sys.commands, [
    `fuse-unmount ${f.two}`,
    `fuse-unmount ${f.one}`, 'fuse-abort 40', `umount -l --no-canonicalize ${f.one}`, `umount --no-canonicalize ${f.P(0)}`,
  ]);

  const s = await enterSecondary({ dirs: [f.one, f.two], runDir: f.runDir, module: 'db', system: f.sys });
  f.sys.failOn(`umount --no-canonicalize '${f.two}'`);
  f.sys.failOn(`umount -l --no-canonicalize '${f.two}'`);
  await s.leave().then(() => assert.unreachable('must report the failure'), (err: Error) => assert.match(err.message, /injected/));
  assert.equal(f.sys.entries.map((e) => e.mountPoint).sort(), ['/', f.two, f.P(1)].sort(), 'the first dir was still taken down');
  assert.equal((await recover({ dirs: [f.one, f.two], runDir: f.runDir, module: 'db', system: f.sys })).map((x) => x.did),
    [`unmounted ${f.two}`, `unmounted ${f.P(1)}`], 'released: recover may clean it');
  onlyRoot(f.sys);
}));

test('recover removes leftovers of both layouts and orphan P mounts, keeps foreign mounts, and is idempotent', () => withFixture(async (f) => {
  const three = path.join(f.base, 'data', 'three');
  fs.mkdirSync(three);
  const dirs = [f.one, f.two, three];
  // a crashed primary on one, a secondary whose leave() never ran on two, a dir no longer configured at index 7
  await f.sys.run('mount', ['--bind', f.one, f.P(0)]);
  await f.sys.mountPassthrough({ backing: f.P(0), mountpoint: f.one });
  await f.sys.run('mount', ['--bind', f.two, f.P(1)]);
  await f.sys.run('mount', ['--bind', f.two, f.two]);
  await f.sys.run('mount', ['-o', 'remount,bind,ro', f.two]);
  await f.sys.run('mount', ['--bind', '/var', f.P(7)]);
  f.sys.addMount(three, 'nfs', 'server:/export');
  const req = { dirs, runDir: f.runDir, module: 'db', system: f.sys };
  assert.equal((await describeLayout(req)).map((s) => s.layout), ['primary', 'secondary', 'foreign']);
  f.sys.commands.length = 0;
  const steps = await recover(req);
  assert.equal(steps, [
    { dir: f.one, did: `aborted FUSE connection 40 and detached fuse.tandem from ${f.one}` },
    { dir: f.two, did: `unmounted ${f.two}` },
    { dir: three, did: `kept nfs server:/export on ${three}: it is not tandem's` },
    { dir: f.P(7), did: `unmounted ${f.P(7)}` },
    { dir: f.two, did: `unmounted ${f.P(1)}` },
    { dir: f.one, did: `unmounted ${f.P(0)}` },
  ]);
  assert.equal(f.sys.commands.slice(0, 2), ['fuse-abort 40', `umount -l --no-canonicalize ${f.one}`]);
  assert.equal(f.sys.entries.map((e) => e.mountPoint), ['/', three]);
  assert.equal((await describeLayout(req)).map((s) => s.layout), ['none', 'none', 'foreign']);
  assert.equal(await recover({ ...req, dirs: [f.one, f.two] }), []);
}));

test('recover refuses dirs whose layout this process holds', () => withFixture(async (f) => {
  const l = await enterSecondary({ dirs: [f.one], runDir: f.runDir, module: 'db', system: f.sys });
  await recover({ dirs: [f.one], runDir: f.runDir, module: 'db', system: f.sys })
    .then(() => assert.unreachable('must refuse'), (err: Error) => assert.instance(err, BugError));
  await enterPrimary({ dirs: [f.one], runDir: f.runDir, module: 'db', system: f.sys, sinkFor: () => undefined })
    .then(() => assert.unreachable('must refuse'), (err: Error) => assert.instance(err, BugError));
  await l.leave();
  onlyRoot(f.sys);
}));

test.run();
