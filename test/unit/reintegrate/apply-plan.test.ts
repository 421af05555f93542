import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BugError } from '../../../src/errors.js';
import { ExtentMap } from '../../../src/replication/record/extent-map.js';
import {
  applyPlan, loadPendingPlan, localSourceReader, PlanApplier, PlanMismatchError, type SourceReader,
} from '../../../src/replication/reintegrate/apply-plan.js';
import { listTree, planTrees, STAGING_DIR } from '../../../src/replication/reintegrate/compare.js';
import { emptyPlan, type Plan } from '../../../src/replication/reintegrate/plan.js';
import { localRecordSource, planFromRecord } from '../../../src/replication/reintegrate/record-plan.js';
import { assertSameTree, build, cleanup, cloneTree, setMtime, tmpDir } from './trees.js';
import { expectReject } from '../expect-reject.js';

test.after(cleanup);

/** A local source that counts what it serves, per path, and can fail on demand. */
function countingReader(root: string, hook?: (p: string, n: number) => void): SourceReader & { reads: Map<string, number>; bytes: number } {
  const inner = localSourceReader(root);
  const r = {
    reads: new Map<string, number>(),
    bytes: 0,
    async readRange(p: string, offset: number, length: number) {
      const n = (r.reads.get(p) ?? 0) + 1;
      r.reads.set(p, n);
      hook?.(p, n);
      const b = await inner.readRange(p, offset, length);
      r.bytes += b.length;
      return b;
    },
    readlink: (p: string) => inner.readlink(p),
  };
  return r;
}


test('after applying the plan from (source, target) the target equals the source: content, modes, owners, symlinks, mtimes', async () => {
  const src = tmpDir();
  const dst = tmpDir();
  build(src, {
    'etc/app.conf': 'port=80\n', 'data/big.bin': crypto.randomBytes(300_000), 'data/empty': '', 'data/sub/deep/x': 'x',
    'logs': null, 'current': { link: 'data/sub' }, 'dangling': { link: '../nowhere' }, 'kind/changes': 'file now',
  });
  build(dst, {
    'etc/app.conf': 'port=8080\n', 'data/big.bin': crypto.randomBytes(200_000), 'data/old': 'stale', 'junk/a/b/c': 'c',
    'current': { link: 'etc' }, 'kind/changes/was-a-dir': 'd', 'dangling': 'a file where a link should be',
  });
  fs.chmodSync(path.join(src, 'etc/app.conf'), 0o640);
  fs.chownSync(path.join(src, 'etc/app.conf'), 4242, 4343);
  fs.lchownSync(path.join(src, 'current'), 777, 778);
  fs.chmodSync(path.join(src, 'data/sub'), 0o750);
  fs.chmodSync(path.join(src, 'logs'), 0o1777);
  // the same size and mtime on both sides but a different mode: metadata only
  build(dst, { 'data/empty': '' });
  fs.chmodSync(path.join(dst, 'data/empty'), 0o604);
  const { plan } = await planTrees(src, dst);
  const report = await applyPlan(plan, { targetRoot: dst, source: localSourceReader(src), checkpointDir: tmpDir('cp') });
  assertSameTree(dst, src);
  assert.not.ok(fs.existsSync(path.join(dst, STAGING_DIR)));
  assert.is(report.bytesTransferred, report.bytesPlanned);
  // and a second comparison finds nothing left to do (reading every block: no content differs)
  const again = (await planTrees(src, dst)).plan;
  assert.equal([again.deletes, again.mkdirs, again.copies, again.patches, again.symlinks, again.metadata], [[], [], [], [], [], []]);
  assert.equal((await planTrees(src, dst, [], { trustMtime: false })).plan.patches, []);
});

test('a 32 MiB file with 3 changed 4 KiB regions: comparison sends 3 blocks, the change record sends 12 KiB', async () => {
  const src = tmpDir();
  const dst = tmpDir();
  const size = 32 * 1024 * 1024;
  fs.writeFileSync(path.join(src, 'db'), crypto.randomBytes(size));
  cloneTree(src, dst);
  const map = new ExtentMap();
  const fd = fs.openSync(path.join(src, 'db'), 'r+');
  for (const off of [1 * 1024 * 1024 + 8192, 17 * 1024 * 1024, size - 4096]) {
    fs.writeSync(fd, crypto.randomBytes(4096), 0, 4096, off);
    map.apply({ op: 'write', path: 'db', offset: off, length: 4096 });
  }
  fs.closeSync(fd);
  const changed = map.totalBytes();

  const cmpTarget = tmpDir();
  cloneTree(dst, cmpTarget);
  const { plan, bytesHashed } = await planTrees(src, cmpTarget);
  const byCompare = await applyPlan(plan, { targetRoot: cmpTarget, source: localSourceReader(src), checkpointDir: tmpDir('cp') });
  assertSameTree(cmpTarget, src);
  assert.ok(byCompare.bytesTransferred <= 3 * 64 * 1024, `${byCompare.bytesTransferred} bytes sent`);

  const recPlan = await planFromRecord(map, localRecordSource(src));
  const byRecord = await applyPlan(recPlan, { targetRoot: dst, source: localSourceReader(src), checkpointDir: tmpDir('cp') });
  assertSameTree(dst, src);
  assert.is(byRecord.bytesTransferred, changed);
  console.log(`   32 MiB file, 3 x 4 KiB changed (${changed} B): compare sent ${byCompare.bytesTransferred} B `
    + `(hashed ${bytesHashed} B on the two sides), record sent ${byRecord.bytesTransferred} B`);
});

test('an interrupted apply resumes where it stopped, does not redo done work, and ends identical', async () => {
  const src = tmpDir();
  const dst = tmpDir();
  const spec: Record<string, Buffer> = {};
  for (let i = 0; i < 10; i++) spec[`f${i}`] = crypto.randomBytes(10_000 + i);
  build(src, spec);
  const { plan } = await planTrees(src, dst);
  const checkpointDir = tmpDir('cp');
  const first = countingReader(src);
  let filesDone = 0;
  await expectReject(applyPlan(plan, {
    targetRoot: dst, source: first, checkpointDir, checkpointEveryMs: 60_000,
    onStepDone: (s) => { if (s.kind === 'copy' && ++filesDone === 4) throw new Error('injected failure'); },
  }), (e) => (e as Error).message === 'injected failure', 'first run');
  assert.equal([...first.reads.keys()], ['f0', 'f1', 'f2', 'f3']);
  assert.ok(await loadPendingPlan(checkpointDir), 'the plan is kept for a resume after a restart');

  const second = countingReader(src);
  const applier = new PlanApplier((await loadPendingPlan(checkpointDir))!, { targetRoot: dst, source: second, checkpointDir });
  const report = await applier.run();
  assert.equal([...second.reads.keys()], ['f4', 'f5', 'f6', 'f7', 'f8', 'f9'], 'done files are not read again');
  assert.ok(report.resumedAt > 0);
  assert.is(first.bytes + second.bytes, report.bytesPlanned, 'every byte read exactly once over the two runs');
  assert.equal(applier.progress().bytesDone, applier.progress().bytesTotal);
  assertSameTree(dst, src);
  assert.is(await loadPendingPlan(checkpointDir), null, 'the checkpoint is removed when done');
});

test('an abort in the middle of a large file resumes inside that file (checkpointed offset)', async () => {
  const src = tmpDir();
  const dst = tmpDir();
  const size = 4 * 1024 * 1024 + 123;
  build(src, { big: crypto.randomBytes(size) });
  const { plan } = await planTrees(src, dst);
  const checkpointDir = tmpDir('cp');
  const ac = new AbortController();
  const first = countingReader(src, (_p, n) => { if (n === 6) ac.abort(); });
  await expectReject(applyPlan(plan, {
    targetRoot: dst, source: first, checkpointDir, chunkSize: 256 * 1024, checkpointEveryMs: 0, signal: ac.signal,
  }), (e) => (e as Error).name === 'AbortError', 'aborted run');
  const second = countingReader(src);
  const report = await applyPlan(plan, { targetRoot: dst, source: second, checkpointDir, chunkSize: 256 * 1024 });
  assert.is(first.bytes, 6 * 256 * 1024);
  assert.is(first.bytes + second.bytes, size, 'no byte copied twice');
  assert.is(report.bytesTransferred, second.bytes);
  assertSameTree(dst, src);
});

test('the chunks announced for read-ahead are the reads the applier makes, in order; also when it resumes inside a file', async () => {
  const src = tmpDir();
  const dst = tmpDir();
  build(src, { a: crypto.randomBytes(700_000), b: Buffer.alloc(0), c: crypto.randomBytes(300_000), d: crypto.randomBytes(5) });
  const { plan } = await planTrees(src, dst);
  const recording = (abortAt?: { n: number; ac: AbortController }) => {
    const inner = countingReader(src);
    const r = {
      announced: [] as string[][],
      reads: [] as string[],
      readAhead(chunks: Iterator<{ path: string; offset: number; length: number }>) {
        const all: string[] = [];
        for (let c = chunks.next(); !c.done; c = chunks.next()) all.push(`${c.value.path}@${c.value.offset}+${c.value.length}`);
        r.announced.push(all);
      },
      async readRange(p: string, offset: number, length: number) {
        r.reads.push(`${p}@${offset}+${length}`);
        if (abortAt && r.reads.length === abortAt.n) abortAt.ac.abort();
        return inner.readRange(p, offset, length);
      },
      readlink: (p: string) => inner.readlink(p),
    };
    return r;
  };
  const checkpointDir = tmpDir('cp');
  const ac = new AbortController();
  const first = recording({ n: 2, ac });
  await expectReject(applyPlan(plan, {
    targetRoot: dst, source: first, checkpointDir, chunkSize: 256 * 1024, checkpointEveryMs: 0, signal: ac.signal,
  }), (e) => (e as Error).name === 'AbortError', 'aborted run');
  assert.is(first.announced.length, 1);
  assert.equal(first.announced[0]!.slice(0, 2), first.reads, 'the reads follow the announced chunks');
  assert.equal(first.announced[0], ['a@0+262144', 'a@262144+262144', 'a@524288+175712', 'c@0+262144', 'c@262144+37856', 'd@0+5'],
    'every copy in chunks; an empty file has none');
  const second = recording();
  await applyPlan(plan, { targetRoot: dst, source: second, checkpointDir, chunkSize: 256 * 1024 });
  assert.equal(second.announced, [second.reads], 'resumed inside a: the announcement starts where the reads do');
  assert.is(second.reads[0], 'a@524288+175712');
  assertSameTree(dst, src);
});

test('excludes are honoured: non-replicated paths are neither copied nor deleted nor compared', async () => {
  const src = tmpDir();
  const dst = tmpDir();
  build(src, { 'data/a': 'A', 'tmp/src-only': 'S', 'data/x.log': 'log at the source' });
  build(dst, { 'data/a': 'old', 'tmp/dst-only': 'D', 'data/y.log': 'log here' });
  const excludes = [{ path: 'tmp' }, { regexpath: '\\.log$' }];
  const { plan } = await planTrees(src, dst, excludes);
  await applyPlan(plan, { targetRoot: dst, source: localSourceReader(src), checkpointDir: tmpDir('cp') });
  const skip = (r: string) => r === 'tmp' || r.startsWith('tmp/') || r.endsWith('.log');
  assertSameTree(dst, src, skip);
  assert.is(fs.readFileSync(path.join(dst, 'tmp/dst-only'), 'utf8'), 'D');
  assert.is(fs.readFileSync(path.join(dst, 'data/y.log'), 'utf8'), 'log here');
  assert.not.ok(fs.existsSync(path.join(dst, 'tmp/src-only')));
  assert.not.ok(fs.existsSync(path.join(dst, 'data/x.log')));
});

test('progress: bytesDone/bytesTotal and a rate from the injected clock', async () => {
  const src = tmpDir();
  build(src, { a: Buffer.alloc(300_000, 1), b: Buffer.alloc(100_000, 2) });
  const dst = tmpDir();
  const { plan } = await planTrees(src, dst);
  let t = 0;
  const seen: number[] = [];
  let applier: PlanApplier | null = null;
  const reader = countingReader(src, () => { t += 100; seen.push(applier!.progress().bytesDone); });
  applier = new PlanApplier(plan, { targetRoot: dst, source: reader, checkpointDir: tmpDir('cp'), now: () => t, chunkSize: 100_000 });
  await applier.run();
  assert.equal(seen, [0, 100_000, 200_000, 300_000]);
  const p = applier.progress();
  assert.equal([p.bytesDone, p.bytesTotal], [400_000, 400_000]);
  assert.is(p.rateBytesPerS, 1_000_000, '400 kB in 4 reads of 100 ms');
});

test('the source changes during the apply: a file deleted at the source is not left behind', async () => {
  const src = tmpDir();
  build(src, { keep: 'k', vanishing: crypto.randomBytes(50_000) });
  const dst = tmpDir();
  const { plan } = await planTrees(src, dst);
  const reader = countingReader(src, (p) => { if (p === 'vanishing') fs.rmSync(path.join(src, 'vanishing')); });
  await applyPlan(plan, { targetRoot: dst, source: reader, checkpointDir: tmpDir('cp') });
  assert.not.ok(fs.existsSync(path.join(dst, 'vanishing')));
  assertSameTree(dst, src);
});

test('error paths: mismatching target, unresolved patches, missing quarantine root, bad paths, source I/O errors', async () => {
  const root = tmpDir();
  const src = tmpDir();
  build(src, { f: 'content' });
  const base = (): Plan => emptyPlan();
  const opts = () => ({ targetRoot: root, source: localSourceReader(src), checkpointDir: tmpDir('cp') });

  const patchMissing = { ...base(), patches: [{ path: 'f', size: 7, targetSize: null, ranges: [[0, 7] as [number, number]] }] };
  const e = await expectReject(applyPlan(patchMissing, opts()), (x) => x instanceof PlanMismatchError, 'patch of a missing file');
  assert.match((e as Error).message, /f \(to be patched\) is missing here/);
  await expectReject(applyPlan({ ...base(), moves: [{ from: 'a', to: 'b' }] }, opts()), (x) => x instanceof PlanMismatchError, 'move of a missing file');

  assert.throws(() => new PlanApplier({ ...base(), patches: [{ path: 'f', size: 1, targetSize: 1, ranges: null }] }, opts()),
    (x: unknown) => x instanceof BugError && /withBlockRanges/.test((x as Error).message));
  assert.throws(() => new PlanApplier({ ...base(), quarantine: ['f'] }, opts()), (x: unknown) => x instanceof BugError);
  assert.throws(() => new PlanApplier({ ...base(), deletes: ['../../etc'] }, opts()), (x: unknown) => x instanceof BugError);
  assert.throws(() => new PlanApplier({ ...base(), copies: [{ path: '/etc/passwd', size: 1 }] }, opts()), (x: unknown) => x instanceof BugError);

  // a source read error stops the run with that error; the checkpoint lets a later run finish
  const dst = tmpDir();
  build(src, { g: 'more' });
  const { plan } = await planTrees(src, dst);
  const checkpointDir = tmpDir('cp');
  const failing: SourceReader = {
    readRange: async (p, o, l) => {
      if (p === 'g') throw Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' });
      return localSourceReader(src).readRange(p, o, l);
    },
    readlink: (p) => localSourceReader(src).readlink(p),
  };
  await expectReject(applyPlan(plan, { targetRoot: dst, source: failing, checkpointDir }), (x) => (x as NodeJS.ErrnoException).code === 'EIO', 'EIO');
  const progress = JSON.parse(fs.readFileSync(path.join(checkpointDir, 'progress.json'), 'utf8'));
  assert.is(progress.next, 1, 'f was done, g was not');
  const resumed = await applyPlan(plan, { targetRoot: dst, source: localSourceReader(src), checkpointDir });
  assert.is(resumed.resumedAt, 1);
  assertSameTree(dst, src);
});

test('a checkpoint of another plan is ignored: the new plan starts from the beginning', async () => {
  const src = tmpDir();
  build(src, { a: 'a', b: 'b' });
  const dst = tmpDir();
  const checkpointDir = tmpDir('cp');
  const { plan } = await planTrees(src, dst);
  await expectReject(applyPlan(plan, {
    targetRoot: dst, source: localSourceReader(src), checkpointDir, onStepDone: () => { throw new Error('stop'); },
  }), () => true, 'first');
  build(src, { c: 'c' });
  const other = (await planTrees(src, dst)).plan;
  const report = await applyPlan(other, { targetRoot: dst, source: localSourceReader(src), checkpointDir });
  assert.is(report.resumedAt, 0);
  assertSameTree(dst, src);
});

test('directory mtimes are set after their contents; times survive to the microsecond (source in ns)', async () => {
  const src = tmpDir();
  build(src, { 'd/e/f': 'f', 'd/g': 'g' });
  setMtime(path.join(src, 'd/e/f'), '1500000000.123456789');
  setMtime(path.join(src, 'd/e'), '1400000000.654321999');
  setMtime(path.join(src, 'd'), '1300000000.000001001');
  const dst = tmpDir();
  const { plan } = await planTrees(src, dst);
  await applyPlan(plan, { targetRoot: dst, source: localSourceReader(src), checkpointDir: tmpDir('cp') });
  assertSameTree(dst, src);
  assert.is((fs.statSync(path.join(dst, 'd'), { bigint: true }).mtimeNs / 1000n), 1_300_000_000_000_001n);
  assert.is((await listTree(dst)).get('d/e/f')!.mtimeNs / 1000n, 1_500_000_000_123_456n);
  assert.is((await listTree(dst)).get('d/e')!.mtimeNs / 1000n, 1_400_000_000_654_321n);
});

test('symlinks in the target are never followed: a plan cannot write, create, chmod, move or delete outside the target', async () => {
  // A plan is a list of paths from the peer. A symlink in the copy (left by the live stream, or made by a step of an
  // earlier pass: `symlink x → /etc`, then `copy x/passwd`) must not lead any step out of the target.
  const outside = tmpDir('outside');
  const snapshot = () => {
    const out: Record<string, string> = {};
    for (const n of fs.readdirSync(outside).sort()) {
      const st = fs.lstatSync(path.join(outside, n));
      out[n] = `${(st.mode & 0o7777).toString(8)} ${st.isFile() ? fs.readFileSync(path.join(outside, n), 'utf8') : 'dir'}`;
    }
    return out;
  };
  const fresh = () => {
    const dst = tmpDir();
    fs.rmSync(outside, { recursive: true, force: true });
    build(outside, { g: 'outside g', file: 'outside file' });
    fs.chmodSync(path.join(outside, 'g'), 0o600);
    build(dst, { evil: { link: outside }, evil2: { link: path.join(outside, 'file') }, keep: 'k' });
    return dst;
  };
  const src = tmpDir();
  build(src, { 'evil/f': 'from the peer', evil2: 'peer file', h: 'h' });
  const before = (fresh(), snapshot());
  const meta = (p: string, mode: number) => ({ path: p, type: 'file' as const, mode, uid: 0, gid: 0, mtimeNs: 1_500_000_000_000_000_000n });
  const plans: [string, Plan, 'ok' | 'fails'][] = [
    ['copy under a symlinked parent', { ...emptyPlan(), copies: [{ path: 'evil/f', size: 13 }] }, 'fails'],
    ['mkdir under a symlinked parent', { ...emptyPlan(), mkdirs: ['evil/d'] }, 'fails'],
    ['delete under a symlinked parent', { ...emptyPlan(), deletes: ['evil/g'] }, 'ok'],
    ['metadata under a symlinked parent', { ...emptyPlan(), metadata: [meta('evil/g', 0o4777)] }, 'ok'],
    ['metadata of a symlink to a file outside', { ...emptyPlan(), metadata: [meta('evil2', 0o4777)] }, 'ok'],
    ['copy onto a symlink to a file outside', { ...emptyPlan(), copies: [{ path: 'evil2', size: 9 }] }, 'ok'],
    ['patch of a symlink to a file outside', { ...emptyPlan(), patches: [{ path: 'evil2', size: 9, targetSize: 12, ranges: [[0, 9]] }] }, 'fails'],
    ['move from under a symlinked parent', { ...emptyPlan(), moves: [{ from: 'evil/g', to: 'h' }] }, 'fails'],
    ['quarantine under a symlinked parent', { ...emptyPlan(), quarantine: ['evil/g'], deletes: ['evil/g'] }, 'ok'],
  ];
  for (const [what, plan, expect] of plans) {
    const dst = fresh();
    const r = await applyPlan(plan, {
      targetRoot: dst, source: localSourceReader(src), checkpointDir: tmpDir('cp'),
      ...(plan.quarantine.length ? { quarantine: { root: tmpDir('q'), generation: '1@n' } } : {}),
    }).then(() => 'ok', (e: Error) => `fails: ${e.message}`);
    assert.equal(snapshot(), before, `${what}: outside the target unchanged (${r})`);
    assert.is(r.split(':')[0], expect, `${what}: ${r}`);
    assert.is(fs.readFileSync(path.join(dst, 'keep'), 'utf8'), 'k');
    if (what.startsWith('copy onto')) {
      assert.ok(fs.lstatSync(path.join(dst, 'evil2')).isFile(), 'the copy replaced the symlink by a file');
      assert.is(fs.readFileSync(path.join(dst, 'evil2'), 'utf8'), 'peer file');
    }
  }
});

test.run();
