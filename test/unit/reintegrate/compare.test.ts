import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { UserError } from '../../../src/errors.js';
import {
  blockSums, excludeMatcher, listTree, planBlocks, planFromManifests, planTrees, STAGING_DIR, withBlockRanges,
} from '../../../src/replication/reintegrate/compare.js';
import { planFromJson, planToJson } from '../../../src/replication/reintegrate/plan.js';
import { assertSameTree, build, cleanup, cloneTree, setMtime, tmpDir } from './trees.js';

test.after(cleanup);

test('listTree: types, sizes, modes, owners, ns mtimes, symlink targets; never follows symlinks', async () => {
  const root = tmpDir();
  build(root, { 'a.txt': 'hello', 'd/e/f': 'x', 'link': { link: 'd/e' }, 'empty': null });
  fs.chmodSync(path.join(root, 'a.txt'), 0o640);
  fs.chownSync(path.join(root, 'a.txt'), 1234, 5678);
  const m = await listTree(root);
  assert.equal([...m.keys()].sort(), ['a.txt', 'd', 'd/e', 'd/e/f', 'empty', 'link']);
  const a = m.get('a.txt')!;
  assert.equal([a.type, a.size, a.mode, a.uid, a.gid], ['file', 5, 0o640, 1234, 5678]);
  assert.is(a.mtimeNs, fs.statSync(path.join(root, 'a.txt'), { bigint: true }).mtimeNs);
  assert.equal([m.get('link')!.type, m.get('link')!.linkTarget], ['symlink', 'd/e']);
  assert.equal([m.get('d')!.type, m.get('d')!.size], ['dir', 0]);
});

test('listTree: notreplicated path / regexpath / !regexpath, and the staging directory', async () => {
  const root = tmpDir();
  build(root, {
    'tmp/x': '1', 'tmpfile': '2', 'data/a.log': '3', 'data/a.db': '4', 'data/sub/b.db': '5', 'data/sub/c.txt': '6',
    [`${STAGING_DIR}/stage/0`]: '7',
  });
  const keys = async (rules: Parameters<typeof excludeMatcher>[0]) => [...(await listTree(root, rules)).keys()].sort();
  assert.equal(await keys([{ path: 'tmp' }, { regexpath: '\\.log$' }]),
    ['data', 'data/a.db', 'data/sub', 'data/sub/b.db', 'data/sub/c.txt', 'tmpfile']);
  assert.equal(await keys([{ regexpath: '!\\.db$' }]), ['data', 'data/a.db', 'data/sub', 'data/sub/b.db', 'tmp']);
  assert.equal(await keys([{ regexpath: '^data/sub$' }]), ['data', 'data/a.db', 'data/a.log', 'tmp', 'tmp/x', 'tmpfile']);
});

test('listTree: a missing root or a file root is a UserError that names it', async () => {
  for (const bad of [path.join(tmpDir(), 'nope'), (() => { const f = path.join(tmpDir(), 'f'); fs.writeFileSync(f, ''); return f; })()]) {
    try {
      await listTree(bad);
      assert.unreachable();
    } catch (e) {
      assert.instance(e, UserError);
      assert.match((e as Error).message, bad);
    }
  }
});

test('blockSums + planBlocks: only differing blocks, merged, clipped to the source size', async () => {
  const dir = tmpDir();
  const src = crypto.randomBytes(10 * 1024 + 100);
  const dst = Buffer.from(src);
  dst[1024 * 3 + 7] ^= 0xff; // block 3
  dst[1024 * 4] ^= 0xff; // block 4 (adjacent: merged)
  dst[1024 * 8 + 1] ^= 0xff; // block 8
  fs.writeFileSync(path.join(dir, 's'), src);
  fs.writeFileSync(path.join(dir, 't'), dst.subarray(0, 9 * 1024)); // target shorter: blocks 9, 10 missing
  const s = await blockSums(path.join(dir, 's'), 1024);
  const t = await blockSums(path.join(dir, 't'), 1024);
  assert.is(s.length, 11);
  assert.is(s[10]!.length, 32);
  assert.equal(planBlocks(s, t, 1024, src.length), [[3072, 5120], [8192, 10 * 1024 + 100]]);
  assert.equal(planBlocks(s, s, 1024, src.length), []);
  assert.equal(planBlocks(t, s, 1024, 9 * 1024), [[3072, 5120], [8192, 9216]], 'a longer target: its extra blocks are cut by the size');
  fs.writeFileSync(path.join(dir, 'empty'), '');
  assert.equal(await blockSums(path.join(dir, 'empty')), []);
});

test('planFromManifests: every kind of difference lands in the right list, in the documented order', async () => {
  const src = tmpDir();
  build(src, {
    'same': 'same', 'grown': 'abcdef', 'meta-only': 'm', 'newdir/deep/f': 'n', 'newfile': 'nf', 'link': { link: 'new-target' },
    'was-dir': 'now a file', 'was-file/x': 'now a dir', 'samesize': 'AAAA',
  });
  const dst = tmpDir();
  build(dst, {
    'same': 'same', 'grown': 'abc', 'meta-only': 'm', 'link': { link: 'old-target' }, 'was-dir/inner': 'i',
    'was-file': 'f', 'samesize': 'BBBB', 'gone/a/b': 'g', 'gone-file': 'g',
  });
  for (const root of [src, dst]) for (const p of ['same', 'meta-only', 'samesize']) setMtime(path.join(root, p), 1_600_000_000.25);
  fs.chmodSync(path.join(src, 'meta-only'), 0o600);
  const [s, t] = [await listTree(src), await listTree(dst)];
  const plan = planFromManifests(s, t, { quarantine: true });
  assert.equal(plan.deletes, ['gone/a/b', 'gone/a', 'was-dir/inner', 'gone', 'gone-file', 'was-dir', 'was-file']);
  assert.equal(plan.mkdirs, ['newdir', 'was-file', 'newdir/deep']);
  assert.equal(plan.copies.map((c) => c.path), ['newdir/deep/f', 'newfile', 'was-dir', 'was-file/x']);
  assert.equal(plan.patches.map((p) => [p.path, p.size, p.targetSize, p.ranges]), [['grown', 6, 3, null]]);
  assert.equal(plan.symlinks, [{ path: 'link', target: 'new-target' }]);
  assert.equal(plan.quarantine, ['gone-file', 'gone/a/b', 'grown', 'link', 'was-dir/inner', 'was-file']);
  const metaPaths = plan.metadata.map((m) => m.path);
  assert.ok(metaPaths.includes('meta-only') && !metaPaths.includes('same') && !metaPaths.includes('samesize'),
    'same size and mtime: trusted equal (the content differs, but that is what trustMtime means)');
  assert.equal(metaPaths.slice(-3), ['newdir/deep', 'newdir', 'was-file'], 'directories last, deepest first');
  assert.equal(planFromManifests(s, t, { trustMtime: false }).patches.map((p) => p.path), ['grown', 'meta-only', 'same', 'samesize']);
  assert.equal(planFromManifests(s, t).quarantine, [], 'no quarantine unless asked');
  // plans travel and persist as JSON (bigint times included)
  assert.equal(planFromJson(planToJson(plan)), plan);
});

test('checkSince: same size and mtime, but recent: the blocks are compared anyway', async () => {
  const src = tmpDir();
  build(src, { old: 'AAAA', recent: 'AAAA' });
  const dst = tmpDir();
  build(dst, { old: 'BBBB', recent: 'BBBB' });
  for (const root of [src, dst]) {
    setMtime(path.join(root, 'old'), '1600000000.5');
    setMtime(path.join(root, 'recent'), '1700000000.5');
  }
  const [s, t] = [await listTree(src), await listTree(dst)];
  assert.equal(planFromManifests(s, t).patches, [], 'the quick check alone sees nothing');
  const plan = planFromManifests(s, t, { checkSince: 1_650_000_000_000_000_000n });
  assert.equal(plan.patches.map((p) => p.path), ['recent']);
});

test('mustCheck (the target\'s activity log): same size, same old mtime, but logged: the blocks are compared', async () => {
  const src = tmpDir();
  build(src, { 'db': 'AAAA', 'other': 'XXXX' });
  const dst = tmpDir();
  build(dst, { 'db': 'BBBB', 'other': 'YYYY' });
  for (const root of [src, dst]) for (const p of ['db', 'other']) setMtime(path.join(root, p), 1_600_000_000.25);
  const [s, t] = [await listTree(src), await listTree(dst)];
  assert.equal(planFromManifests(s, t).patches.map((p) => p.path), [], 'trusted equal without the log');
  assert.equal(planFromManifests(s, t, { mustCheck: new Set(['db']) }).patches.map((p) => p.path), ['db']);
});

test('withBlockRanges: a file whose blocks all match and whose size is equal is only metadata', async () => {
  const src = tmpDir();
  build(src, { 'touched': 'same bytes', 'changed': 'new bytes!' });
  const dst = tmpDir();
  cloneTree(src, dst);
  fs.writeFileSync(path.join(dst, 'changed'), 'old bytes!');
  setMtime(path.join(src, 'touched'), 1_700_000_000);
  setMtime(path.join(src, 'changed'), 1_700_000_000);
  const { plan, bytesHashed } = await planTrees(src, dst, [], { quarantine: true });
  assert.equal(plan.patches.map((p) => [p.path, p.ranges]), [['changed', [[0, 10]]]]);
  assert.equal(plan.quarantine, ['changed'], 'the identical file is not quarantined');
  assert.ok(plan.metadata.some((m) => m.path === 'touched'), 'its mtime is still set');
  assert.is(bytesHashed, 40);
  assert.equal(withBlockRanges(plan, new Map()), plan, 'resolved patches are kept');
});

test('special files are reported as skipped, not silently ignored', async () => {
  const src = tmpDir();
  execFileSync('mkfifo', [path.join(src, 'fifo')]);
  const plan = planFromManifests(await listTree(src), new Map());
  assert.equal(plan.skipped.map((s) => s.path), ['fifo']);
  assert.equal(plan.metadata, []);
});


test('a file the source renamed is moved on the target and patched from itself, not copied whole; ambiguous or small ones are copied', async () => {
  const { applyPlan, localSourceReader } = await import('../../../src/replication/reintegrate/apply-plan.js');
  const src = tmpDir();
  const dst = tmpDir();
  const big = crypto.randomBytes(300_000);
  const edited = Buffer.from(big);
  edited.fill(7, 100_000, 104_096); // one 4 KiB page changed in the renamed copy, size unchanged
  const twin = crypto.randomBytes(100_000);
  build(src, { 'new/big': edited, 'twin-a2': twin, 'twin-b2': Buffer.from(twin), 'small2': 'tiny', keep: 'k' });
  build(dst, { 'old-big': big, 'twin-a': twin, 'twin-b': Buffer.from(twin), small: 'tiny', keep: 'k' });
  for (const [root, rel] of [[src, 'new/big'], [dst, 'old-big'], [src, 'twin-a2'], [src, 'twin-b2'], [dst, 'twin-a'], [dst, 'twin-b'], [src, 'small2'], [dst, 'small']] as const) {
    setMtime(path.join(root, rel), '1700000000.123456');
  }
  const { plan } = await planTrees(src, dst);
  assert.equal(plan.moves, [{ from: 'old-big', to: 'new/big' }], 'only the unambiguous large pair is a rename');
  assert.equal(plan.patches.map((p) => [p.path, p.base, p.ranges]), [['new/big', 'old-big', [[65536, 131072]]]], 'the changed block only');
  assert.equal(plan.copies.map((c) => c.path).sort(), ['small2', 'twin-a2', 'twin-b2']);
  assert.equal(plan.deletes.sort(), ['small', 'twin-a', 'twin-b']);
  const report = await applyPlan(plan, { targetRoot: dst, source: localSourceReader(src), checkpointDir: tmpDir('cp') });
  assert.is(report.bytesTransferred, 65536 + 100_000 * 2 + 4);
  assertSameTree(dst, src);

  // a split-brain resync keeps every differing target file in quarantine: no pairing there
  const dst2 = tmpDir();
  build(dst2, { 'old-big': big });
  setMtime(path.join(dst2, 'old-big'), '1700000000.123456');
  const q = planFromManifests(await listTree(src), await listTree(dst2), { quarantine: true });
  assert.equal(q.moves, []);
  assert.ok(q.copies.some((c) => c.path === 'new/big') && q.quarantine.includes('old-big'));
});

test.run();
