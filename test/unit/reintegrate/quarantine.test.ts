import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BugError } from '../../../src/errors.js';
import { applyPlan, localSourceReader, planSteps } from '../../../src/replication/reintegrate/apply-plan.js';
import { planTrees } from '../../../src/replication/reintegrate/compare.js';
import { listQuarantines, Quarantine, quarantineName } from '../../../src/replication/reintegrate/quarantine.js';
import { assertSameTree, build, cleanup, cloneTree, tmpDir } from './trees.js';

test.after(cleanup);

const NOW = new Date('2025-03-04T05:06:07.890Z');

/**
 * After a split brain: the winner (source) and the loser (target) both wrote since their common data. Both wrote
 * orders.db within the same clock tick: same size, same mtime. Only a block comparison (trustMtime false, or
 * checkSince the split) sees the difference.
 */
function splitBrain(): { src: string; dst: string; big: Buffer } {
  const common = tmpDir('common');
  const big = crypto.randomBytes(1024 * 1024);
  build(common, {
    'same.txt': 'identical on both', 'sub/same2': 'also identical', 'orders.db': big, 'edited.txt': 'v1',
    'removed-by-winner': 'r', 'link': { link: 'same.txt' },
  });
  const src = tmpDir('winner');
  const dst = tmpDir('loser');
  cloneTree(common, src);
  cloneTree(common, dst);
  // the winner's writes
  fs.writeFileSync(path.join(src, 'edited.txt'), 'v2 (winner)');
  fs.rmSync(path.join(src, 'removed-by-winner'));
  const fd = fs.openSync(path.join(src, 'orders.db'), 'r+');
  fs.writeSync(fd, Buffer.alloc(100, 7), 0, 100, 500_000);
  fs.closeSync(fd);
  // the loser's writes, which must not be lost
  fs.writeFileSync(path.join(dst, 'edited.txt'), 'v2 (loser)');
  build(dst, { 'loser-only/new.txt': 'written during the split brain' });
  const fd2 = fs.openSync(path.join(dst, 'orders.db'), 'r+');
  fs.writeSync(fd2, Buffer.alloc(10, 9), 0, 10, 900_000);
  fs.closeSync(fd2);
  fs.rmSync(path.join(dst, 'link'));
  fs.symlinkSync('sub', path.join(dst, 'link'));
  return { src, dst, big };
}

test('split brain: divergent files are moved into the quarantine with their content; identical files are not', async () => {
  const { src, dst } = splitBrain();
  const loserBefore = {
    edited: fs.readFileSync(path.join(dst, 'edited.txt')),
    orders: fs.readFileSync(path.join(dst, 'orders.db')),
    newfile: fs.readFileSync(path.join(dst, 'loser-only/new.txt')),
    removed: fs.readFileSync(path.join(dst, 'removed-by-winner')),
  };
  const ordersIno = fs.statSync(path.join(dst, 'orders.db')).ino;
  const qroot = tmpDir('quarantine');
  const { plan } = await planTrees(src, dst, [], { quarantine: true, trustMtime: false });
  assert.equal(plan.quarantine, ['edited.txt', 'link', 'loser-only/new.txt', 'orders.db', 'removed-by-winner']);
  const report = await applyPlan(plan, {
    targetRoot: dst, source: localSourceReader(src), checkpointDir: tmpDir('cp'),
    quarantine: { root: qroot, generation: '7@node2' }, wallNow: () => NOW,
  });
  assertSameTree(dst, src);

  const name = '20250304T050607Z-7@node2';
  assert.equal(report.quarantine, { name, dir: path.join(qroot, name), files: 5 });
  const q = path.join(qroot, name);
  assert.equal(fs.readFileSync(path.join(q, 'edited.txt')), loserBefore.edited);
  assert.equal(fs.readFileSync(path.join(q, 'orders.db')), loserBefore.orders);
  assert.is(fs.statSync(path.join(q, 'orders.db')).ino, ordersIno, 'MOVED, not copied: the same inode');
  assert.equal(fs.readFileSync(path.join(q, 'loser-only/new.txt')), loserBefore.newfile);
  assert.equal(fs.readFileSync(path.join(q, 'removed-by-winner')), loserBefore.removed);
  assert.is(fs.readlinkSync(path.join(q, 'link')), 'sub');
  assert.not.ok(fs.existsSync(path.join(q, 'same.txt')));
  assert.not.ok(fs.existsSync(path.join(q, 'sub/same2')));

  // the patched file was restored from its quarantined copy: only its differing blocks came from the source
  assert.ok(report.bytesTransferred < 3 * 64 * 1024, `${report.bytesTransferred} bytes sent`);

  const manifest = JSON.parse(fs.readFileSync(path.join(qroot, `${name}.json`), 'utf8'));
  assert.is(manifest.complete, true);
  assert.is(manifest.generation, '7@node2');
  assert.is(manifest.from, dst);
  assert.equal(manifest.files.map((f: { path: string }) => f.path), ['edited.txt', 'link', 'loser-only/new.txt', 'orders.db', 'removed-by-winner']);
  assert.equal(manifest.files.find((f: { path: string }) => f.path === 'orders.db').size, 1024 * 1024);

  const list = await listQuarantines(qroot);
  assert.equal(list.map((i) => [i.name, i.files, i.complete, i.generation]), [[name, 5, true, '7@node2']]);
  assert.is(list[0]!.bytes, 1024 * 1024 + 'v2 (loser)'.length + 'written during the split brain'.length + 1);
});

test('an interrupted quarantining reintegration resumes into the same quarantine and loses nothing', async () => {
  const { src, dst } = splitBrain();
  const edited = fs.readFileSync(path.join(dst, 'edited.txt'));
  const qroot = tmpDir('quarantine');
  const checkpointDir = tmpDir('cp');
  const { plan } = await planTrees(src, dst, [], { quarantine: true, trustMtime: false });
  let n = 0;
  const opts = { targetRoot: dst, source: localSourceReader(src), checkpointDir, quarantine: { root: qroot, generation: '7@node2' } };
  try {
    await applyPlan(plan, { ...opts, wallNow: () => NOW, onStepDone: () => { if (++n === 3) throw new Error('power cut'); } });
    assert.unreachable();
  } catch (e) {
    assert.is((e as Error).message, 'power cut');
  }
  const partial = await listQuarantines(qroot);
  assert.equal(partial.map((i) => [i.files, i.complete]), [[3, false]], 'reported while incomplete');
  const later = new Date(NOW.getTime() + 3600_000);
  const report = await applyPlan(plan, { ...opts, wallNow: () => later });
  assert.is(report.quarantine!.name, '20250304T050607Z-7@node2', 'the same quarantine, not a new one');
  assert.is(report.quarantine!.files, 5);
  assert.equal(fs.readFileSync(path.join(report.quarantine!.dir, 'edited.txt')), edited);
  assert.equal((await listQuarantines(qroot)).map((i) => [i.files, i.complete]), [[5, true]]);
  assertSameTree(dst, src);
});

test('a crash at any step (checkpoint as left on disk) still ends identical, with every divergent file quarantined once', async () => {
  const { src, dst: loser } = splitBrain();
  const original = new Map(['edited.txt', 'orders.db', 'loser-only/new.txt', 'removed-by-winner']
    .map((p) => [p, fs.readFileSync(path.join(loser, p))]));
  const { plan } = await planTrees(src, loser, [], { quarantine: true, trustMtime: false });
  const steps = planSteps(plan).length;
  for (let k = 0; k < steps; k++) {
    const dst = tmpDir('loser');
    cloneTree(loser, dst);
    const qroot = tmpDir('quarantine');
    const checkpointDir = tmpDir('cp');
    const opts = { targetRoot: dst, source: localSourceReader(src), checkpointDir, quarantine: { root: qroot, generation: '7@node2' } };
    let onDisk: string | null = null;
    try {
      await applyPlan(plan, {
        ...opts, wallNow: () => NOW, checkpointEveryMs: 60_000,
        onStepDone: (s) => {
          if (s.index < k) return;
          onDisk = fs.readFileSync(path.join(checkpointDir, 'progress.json'), 'utf8');
          throw new Error('crash');
        },
      });
      assert.unreachable();
    } catch (e) {
      assert.is((e as Error).message, 'crash');
    }
    fs.writeFileSync(path.join(checkpointDir, 'progress.json'), onDisk!);
    const report = await applyPlan(plan, { ...opts, wallNow: () => new Date(NOW.getTime() + 1000) });
    assertSameTree(dst, src, undefined, `crash after step ${k}:`);
    assert.is(report.quarantine!.files, 5, `crash after step ${k}`);
    for (const [p, content] of original) assert.equal(fs.readFileSync(path.join(report.quarantine!.dir, p)), content, `${p}, crash after step ${k}`);
    assert.equal((await listQuarantines(qroot)).length, 1);
  }
});

test('across filesystems (EXDEV) the move copies content, mode, owner and times, then removes the original', async () => {
  if (!fs.existsSync('/dev/shm') || fs.statSync('/dev/shm').dev === fs.statSync(tmpDir()).dev) return; // needs two filesystems
  const from = tmpDir();
  build(from, { 'a/file': 'precious', 'l': { link: 'a/file' } });
  fs.chmodSync(path.join(from, 'a/file'), 0o640);
  fs.chownSync(path.join(from, 'a/file'), 1001, 1002);
  const before = fs.statSync(path.join(from, 'a/file'), { bigint: true });
  const qroot = fs.mkdtempSync('/dev/shm/tandem-q-');
  try {
    const q = await Quarantine.open(qroot, { generation: '1@n', from, now: NOW });
    assert.ok(await q.add('a/file'));
    assert.ok(await q.add('l'));
    await q.save(true);
    const moved = path.join(q.dir, 'a/file');
    const st = fs.statSync(moved, { bigint: true });
    assert.is(fs.readFileSync(moved, 'utf8'), 'precious');
    assert.equal([Number(st.mode) & 0o7777, Number(st.uid), Number(st.gid)], [0o640, 1001, 1002]);
    assert.is(st.mtimeNs / 1000n, before.mtimeNs / 1000n);
    assert.is(fs.readlinkSync(path.join(q.dir, 'l')), 'a/file');
    assert.not.ok(fs.existsSync(path.join(from, 'a/file')));
    assert.not.ok(fs.existsSync(path.join(q.dir, 'a/file.tandem-moving')));
  } finally {
    fs.rmSync(qroot, { recursive: true, force: true });
  }
});

test('Quarantine.add: idempotent, tolerant of vanished files, refuses directories', async () => {
  const from = tmpDir();
  build(from, { f: 'x', d: null });
  const qroot = tmpDir('quarantine');
  const q = await Quarantine.open(qroot, { generation: '2@a', from, now: NOW });
  assert.ok(await q.add('f'));
  assert.is(await q.add('f'), null, 'already in quarantine');
  assert.is(await q.add('never-there'), null);
  try {
    await q.add('d');
    assert.unreachable();
  } catch (e) {
    assert.instance(e, BugError);
  }
  assert.equal(q.files().map((f) => f.path), ['f']);
  await assertRejectsBug(Quarantine.open(qroot, { generation: 'g', from, now: NOW, name: '../escape' }));
});

async function assertRejectsBug(p: Promise<unknown>): Promise<void> {
  try {
    await p;
    assert.unreachable();
  } catch (e) {
    assert.instance(e, BugError);
  }
}

test('listQuarantines: none when the root is missing; a damaged manifest is still reported', async () => {
  assert.equal(await listQuarantines(path.join(tmpDir(), 'nothing-here')), []);
  const qroot = tmpDir('quarantine');
  fs.writeFileSync(path.join(qroot, '20240101T000000Z-1@x.json'), '{broken');
  fs.mkdirSync(path.join(qroot, '20240101T000000Z-1@x'));
  const list = await listQuarantines(qroot);
  assert.equal(list.map((i) => [i.name, i.files, i.error]), [['20240101T000000Z-1@x', -1, 'manifest unreadable']]);
  assert.is(quarantineName(NOW, '3@node/1 x'), '20250304T050607Z-3@node_1_x');
});

test.run();
