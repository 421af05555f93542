/**
 * Delta reintegration end to end on real trees: operations run on the source AND are recorded (as the FUSE layer
 * reports them), the record plans the reintegration, the plan is applied to a copy of the base: the copy must
 * equal the source.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ChangeRecord } from '../../../src/replication/record/change-record.js';
import { ExtentMap, type FsChange } from '../../../src/replication/record/extent-map.js';
import { applyPlan, localSourceReader, PlanMismatchError, planSteps } from '../../../src/replication/reintegrate/apply-plan.js';
import { planTrees } from '../../../src/replication/reintegrate/compare.js';
import { planBytes } from '../../../src/replication/reintegrate/plan.js';
import { localRecordSource, planFromRecord } from '../../../src/replication/reintegrate/record-plan.js';
import { assertSameTree, build, cleanup, cloneTree, rng, tmpDir } from './trees.js';

test.after(cleanup);

/** Runs file operations on `root` and reports each one that succeeded, like the FUSE interception. */
class Recorder {
  constructor(readonly root: string, private readonly sink: (c: FsChange) => void) {}
  private abs(p: string): string { return path.join(this.root, p); }
  write(p: string, offset: number, data: Buffer): void {
    const fd = fs.openSync(this.abs(p), 'r+');
    try { fs.writeSync(fd, data, 0, data.length, offset); } finally { fs.closeSync(fd); }
    this.sink({ op: 'write', path: p, offset, length: data.length });
  }
  truncate(p: string, size: number): void { fs.truncateSync(this.abs(p), size); this.sink({ op: 'truncate', path: p, size }); }
  create(p: string, content?: Buffer | string): void {
    fs.writeFileSync(this.abs(p), '', { flag: 'wx' });
    this.sink({ op: 'create', path: p });
    if (content !== undefined && content.length > 0) this.write(p, 0, Buffer.from(content));
  }
  mkdir(p: string): void { fs.mkdirSync(this.abs(p)); this.sink({ op: 'mkdir', path: p }); }
  symlink(target: string, p: string): void { fs.symlinkSync(target, this.abs(p)); this.sink({ op: 'symlink', path: p }); }
  unlink(p: string): void { fs.unlinkSync(this.abs(p)); this.sink({ op: 'unlink', path: p }); }
  rmdir(p: string): void { fs.rmdirSync(this.abs(p)); this.sink({ op: 'rmdir', path: p }); }
  rename(from: string, to: string): void { fs.renameSync(this.abs(from), this.abs(to)); this.sink({ op: 'rename', from, to }); }
  chmod(p: string, mode: number): void { fs.chmodSync(this.abs(p), mode); this.sink({ op: 'chmod', path: p }); }
  chown(p: string, uid: number, gid: number): void { fs.lchownSync(this.abs(p), uid, gid); this.sink({ op: 'chown', path: p }); }
  utimens(p: string, secs: number): void { fs.lutimesSync(this.abs(p), secs, secs); this.sink({ op: 'utimens', path: p }); }
}

test('a day ALONE: writes, truncates, renames (files, directories, a swap), deletes, recreations, metadata → identical copy', async () => {
  const src = tmpDir('src');
  build(src, {
    'db/t1': crypto.randomBytes(200_000), 'db/t2': crypto.randomBytes(100_000), 'logs/a.log': 'log a\n',
    'conf/app.conf': 'port=80\n', 'old/x': 'x', 'old/y': 'y', 'dir1/sub/f': crypto.randomBytes(70_000),
    'big': crypto.randomBytes(1024 * 1024), 'keep/untouched': 'u',
  });
  const dst = tmpDir('dst');
  cloneTree(src, dst);

  const recDir = tmpDir('rec');
  let record = await ChangeRecord.open(recDir, { baseGeneration: '4@n1', begin: true, groupCommitMs: 5 });
  const r = new Recorder(src, (c) => record.record(c));
  r.write('db/t1', 4096, crypto.randomBytes(1000));
  r.write('db/t1', 150_000, crypto.randomBytes(10));
  r.truncate('db/t2', 50_000);
  r.truncate('db/t2', 80_000); // the base bytes [50000, 80000) are zeros now
  r.write('big', 1024 * 1024, crypto.randomBytes(5000)); // append
  r.create('n.txt', 'new file');
  r.rename('db/t1', 'db/t1.renamed');
  r.rename('dir1', 'dir2');
  r.write('dir2/sub/f', 65_536, crypto.randomBytes(100));
  await record.close({ clean: true }); // the daemon restarts in the middle of the day
  record = await ChangeRecord.open(recDir, { baseGeneration: '4@n1', groupCommitMs: 5 });
  assert.ok(record.trusted());
  r.unlink('old/x');
  r.unlink('old/y');
  r.rmdir('old');
  r.mkdir('newdir');
  r.create('newdir/a', 'a');
  r.symlink('../conf', 'newdir/l');
  r.chmod('conf/app.conf', 0o600);
  r.chown('conf/app.conf', 1500, 1501);
  r.rename('conf/app.conf', 'tmpswap');
  r.rename('logs/a.log', 'conf/app.conf');
  r.rename('tmpswap', 'logs/a.log');
  r.create('db/t3', crypto.randomBytes(3000));
  r.unlink('db/t2');
  r.create('db/t2', 'replaced'); // deleted and recreated: a whole copy
  r.mkdir('x');
  r.rename('dir2/sub', 'x/sub');
  r.utimens('keep', 1_234_567_890);
  await record.close({ clean: true });

  record = await ChangeRecord.open(recDir, { baseGeneration: '4@n1' });
  assert.ok(record.trusted());
  const map = record.snapshot();
  await record.close({ clean: true });
  const byPath = new Map(map.changedFiles().map((c) => [c.path, c]));
  assert.is(byPath.get('db/t2')!.status, 'replaced');
  assert.is(byPath.get('db/t1.renamed')!.from, 'db/t1');

  const plan = await planFromRecord(map, localRecordSource(src));
  assert.equal(plan.moves.map((m) => `${m.from}→${m.to}`).sort(),
    ['conf/app.conf→logs/a.log', 'db/t1→db/t1.renamed', 'dir1/sub→x/sub', 'dir1→dir2', 'logs/a.log→conf/app.conf']);
  const report = await applyPlan(plan, { targetRoot: dst, source: localSourceReader(src), checkpointDir: tmpDir('cp') });
  assertSameTree(dst, src);
  const whole = 'new file'.length + 1 + 3000 + 'replaced'.length;
  // db/t2's truncations do not count: it was replaced afterwards (copied whole)
  assert.is(report.bytesTransferred, 1000 + 10 + 5000 + 100 + whole);
  console.log(`   delta: ${map.totalBytes()} B recorded as changed, ${report.bytesTransferred} B sent `
    + `(incl. ${whole} B of new files), tree ${Math.round((1024 * 1024 + 370_000) / 1024)} KiB`);
});

test('excludes: a file moved in from a non-replicated path is copied whole; one moved out is deleted at the peer', async () => {
  const src = tmpDir('src');
  build(src, { 'data/keep': 'k', 'data/leaving': 'l', 'tmp/scratch': 's', 'tmp/d/inner': 'i' });
  const dst = tmpDir('dst');
  cloneTree(src, dst);
  build(dst, { 'tmp/peer-only': 'the peer’s own scratch file' });
  const map = new ExtentMap();
  const r = new Recorder(src, (c) => map.apply(c));
  r.create('tmp/new', 'fresh');
  r.rename('tmp/new', 'data/arrived');
  r.rename('tmp/d', 'data/d'); // a whole directory from a non-replicated path: listed and copied
  r.rename('data/leaving', 'tmp/left');
  r.write('tmp/scratch', 0, Buffer.from('S'));
  const excludes = [{ path: 'tmp' }];
  const plan = await planFromRecord(map, localRecordSource(src, excludes), { excludes });
  assert.equal(plan.moves, []);
  // a rename's destination may have existed in the base: its deletion is planned (a no-op where it did not)
  assert.equal(plan.deletes, ['data/arrived', 'data/d', 'data/leaving']);
  assert.equal(plan.copies.map((c) => c.path), ['data/arrived', 'data/d/inner']);
  await applyPlan(plan, { targetRoot: dst, source: localSourceReader(src), checkpointDir: tmpDir('cp') });
  const skip = (p: string) => p === 'tmp' || p.startsWith('tmp/');
  assertSameTree(dst, src, skip);
  assert.is(fs.readFileSync(path.join(dst, 'tmp/peer-only'), 'utf8'), 'the peer’s own scratch file');
  assert.is(fs.readFileSync(path.join(dst, 'tmp/scratch'), 'utf8'), 's', 'non-replicated content is left alone');
});

test('a target that is not the record\'s base: PlanMismatchError, and a comparison then repairs it', async () => {
  const src = tmpDir('src');
  build(src, { f: crypto.randomBytes(10_000), g: 'g' });
  const dst = tmpDir('dst');
  cloneTree(src, dst);
  fs.rmSync(path.join(dst, 'f')); // someone removed it at the peer
  const map = new ExtentMap();
  const r = new Recorder(src, (c) => map.apply(c));
  r.write('f', 10, Buffer.from('changed'));
  const plan = await planFromRecord(map, localRecordSource(src));
  try {
    await applyPlan(plan, { targetRoot: dst, source: localSourceReader(src), checkpointDir: tmpDir('cp') });
    assert.unreachable();
  } catch (e) {
    assert.instance(e, PlanMismatchError);
  }
  const { plan: full } = await planTrees(src, dst);
  await applyPlan(full, { targetRoot: dst, source: localSourceReader(src), checkpointDir: tmpDir('cp') });
  assertSameTree(dst, src);
});

test('a crash at any step of a delta plan (checkpoint as left on disk) resumes to an identical copy', async () => {
  const src = tmpDir('src');
  build(src, { 'a/x': crypto.randomBytes(5000), 'a/y': 'y', b: 'b', c: 'c', 'd/e': 'e', f: crypto.randomBytes(9000) });
  const base = tmpDir('base');
  cloneTree(src, base);
  const map = new ExtentMap();
  const r = new Recorder(src, (c) => map.apply(c));
  r.rename('b', 'tmp'); // swap b and c
  r.rename('c', 'b');
  r.rename('tmp', 'c');
  r.rename('a', 'd/a2'); // a directory moves under another
  r.rename('d/a2/x', 'a'); // and one of its files takes its old name
  r.write('a', 100, crypto.randomBytes(300));
  r.unlink('d/a2/y');
  r.rename('f', 'd/e'); // overwrites d/e
  r.mkdir('g');
  r.create('g/h', 'h');
  const plan = await planFromRecord(map, localRecordSource(src));
  const steps = planSteps(plan).length;
  assert.ok(steps > 15, `${steps} steps`);
  for (let k = 0; k < steps; k++) {
    const dst = tmpDir('dst');
    cloneTree(base, dst);
    const checkpointDir = tmpDir('cp');
    let onDisk: string | null = null;
    try {
      await applyPlan(plan, {
        targetRoot: dst, source: localSourceReader(src), checkpointDir, checkpointEveryMs: 60_000,
        onStepDone: (s) => {
          if (s.index < k) return;
          onDisk = fs.readFileSync(path.join(checkpointDir, 'progress.json'), 'utf8'); // what a crash leaves
          throw new Error('crash');
        },
      });
      assert.unreachable();
    } catch (e) {
      assert.is((e as Error).message, 'crash');
    }
    fs.writeFileSync(path.join(checkpointDir, 'progress.json'), onDisk!);
    await applyPlan(plan, { targetRoot: dst, source: localSourceReader(src), checkpointDir });
    assertSameTree(dst, src, undefined, `crash after step ${k}:`);
  }
});

// ── property: random operation sequences on a real tree ─────────────────────────────────────────────────────

const NAMES = ['a', 'b', 'c', 'd'];

function entries(root: string): { files: string[]; dirs: string[]; all: string[] } {
  const files: string[] = [];
  const dirs: string[] = [];
  const walk = (rel: string) => {
    for (const n of fs.readdirSync(path.join(root, rel)).sort()) {
      const p = rel ? `${rel}/${n}` : n;
      const st = fs.lstatSync(path.join(root, p));
      if (st.isDirectory()) { dirs.push(p); walk(p); } else files.push(p);
    }
  };
  walk('');
  return { files, dirs, all: [...files, ...dirs] };
}

function randomOp(r: Recorder, rand: () => number): void {
  const int = (n: number) => Math.floor(rand() * n);
  const pick = <T>(xs: T[]): T | undefined => xs[int(xs.length)];
  const { files, dirs, all } = entries(r.root);
  const regular = files.filter((f) => fs.lstatSync(path.join(r.root, f)).isFile());
  const parent = pick(['', '', ...dirs.filter((d) => d.split('/').length < 3)])!;
  const fresh = (parent ? `${parent}/` : '') + pick(NAMES)!;
  const roll = rand();
  try {
    if (roll < 0.25 && regular.length) {
      const f = pick(regular)!;
      const size = fs.statSync(path.join(r.root, f)).size;
      r.write(f, int(size + 3000), crypto.randomBytes(1 + int(5000)));
    } else if (roll < 0.35 && regular.length) {
      const f = pick(regular)!;
      r.truncate(f, int(fs.statSync(path.join(r.root, f)).size + 4000));
    } else if (roll < 0.47) {
      r.create(fresh, crypto.randomBytes(int(3000)));
    } else if (roll < 0.55) {
      r.mkdir(fresh);
    } else if (roll < 0.58) {
      r.symlink(pick(['a', '../b', '/etc'])!, fresh);
    } else if (roll < 0.65 && files.length) {
      r.unlink(pick(files)!);
    } else if (roll < 0.7 && dirs.length) {
      r.rmdir(pick(dirs)!);
    } else if (roll < 0.9 && all.length) {
      const from = pick(all)!;
      if (fresh === from || fresh.startsWith(`${from}/`)) return;
      r.rename(from, fresh);
    } else if (roll < 0.95 && regular.length) {
      r.chmod(pick(regular)!, pick([0o600, 0o644, 0o755, 0o640])!);
    } else if (all.length) {
      r.utimens(pick(all)!, 1_000_000_000 + int(1e8));
    }
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (!['EEXIST', 'ENOTEMPTY', 'EISDIR', 'ENOTDIR', 'EINVAL', 'ENOENT'].includes(code ?? '')) throw e;
    // the operation failed: nothing is reported, as with FUSE
  }
}

test('property: 60 random sequences of 40 operations on real trees reintegrate to an identical copy', async () => {
  let changed = 0;
  let sent = 0;
  let treeBytes = 0;
  for (let seed = 1; seed <= 60; seed++) {
    const rand = rng(seed);
    const src = tmpDir('src');
    const setup = new Recorder(src, () => undefined);
    for (let i = 0; i < 25; i++) randomOp(setup, rand);
    const dst = tmpDir('dst');
    cloneTree(src, dst);
    const map = new ExtentMap();
    const ops: FsChange[] = [];
    const r = new Recorder(src, (c) => { ops.push(c); map.apply(c); });
    for (let i = 0; i < 40; i++) randomOp(r, rand);
    const plan = await planFromRecord(map, localRecordSource(src));
    const report = await applyPlan(plan, { targetRoot: dst, source: localSourceReader(src), checkpointDir: tmpDir('cp') });
    assertSameTree(dst, src, undefined, `seed ${seed}, ops ${JSON.stringify(ops)}\n`);
    assert.is(report.bytesTransferred, planBytes(plan));
    changed += map.totalBytes();
    sent += report.bytesTransferred;
    treeBytes += entries(src).files.reduce((n, f) => n + fs.lstatSync(path.join(src, f)).size, 0);
    cleanup();
  }
  console.log(`   random: ${changed} B recorded, ${sent} B sent, trees ${treeBytes} B in total`);
});

test.run();
