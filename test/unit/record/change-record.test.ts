import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BugError } from '../../../src/errors.js';
import { ChangeRecord, CLEAN_FILE, JOURNAL_FILE, SNAPSHOT_FILE } from '../../../src/replication/record/change-record.js';
import { waitFor } from '../wait-for.js';

const G = '3@node1';
const dirs: string[] = [];
function tmp(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-record-'));
  dirs.push(d);
  return d;
}
test.after(() => { for (const d of dirs) fs.rmSync(d, { recursive: true, force: true }); });

async function started(dir: string, opts: { compactBytes?: number; groupCommitMs?: number } = {}): Promise<ChangeRecord> {
  return ChangeRecord.open(dir, { baseGeneration: G, begin: true, groupCommitMs: 0, ...opts });
}

test('begin: trusted and empty; changes survive a clean close and a reopen (daemon restart, module stop)', async () => {
  const dir = tmp();
  let r = await started(dir);
  assert.ok(r.trusted());
  assert.is(r.untrustedReason(), null);
  assert.ok(r.snapshot().isEmpty());
  r.record({ op: 'write', path: 'db/t1', offset: 4096, length: 4096 });
  r.record({ op: 'rename', from: 'db/t1', to: 'db/t2' });
  await r.close({ clean: true });
  assert.ok(fs.existsSync(path.join(dir, CLEAN_FILE)));

  r = await ChangeRecord.open(dir, { baseGeneration: G, groupCommitMs: 0 });
  assert.ok(r.trusted(), r.untrustedReason() ?? '');
  assert.not.ok(fs.existsSync(path.join(dir, CLEAN_FILE)), 'the marker is removed at open');
  assert.equal(r.snapshot().extentsOf('db/t2'), [[4096, 8192]]);
  r.record({ op: 'write', path: 'db/t2', offset: 0, length: 10 });
  await r.close({ clean: true });

  r = await ChangeRecord.open(dir, { baseGeneration: G, groupCommitMs: 0 });
  assert.ok(r.trusted());
  assert.equal(r.snapshot().extentsOf('db/t2'), [[0, 10], [4096, 8192]]);
  assert.is(r.snapshot().originOf('db/t2'), 'db/t1');
  await r.close({ clean: true });
});

test('crash (no clean close) → untrusted, and it stays untrusted after a later clean close', async () => {
  const dir = tmp();
  let r = await started(dir);
  r.record({ op: 'write', path: 'f', offset: 0, length: 1 });
  await r.flush();
  await r.close({ clean: false }); // what a crash leaves on disk: the journal, no marker

  r = await ChangeRecord.open(dir, { baseGeneration: G, groupCommitMs: 0 });
  assert.is(r.trusted(), false);
  assert.match(r.untrustedReason()!, /not closed cleanly/);
  r.record({ op: 'write', path: 'g', offset: 0, length: 1 });
  await r.close({ clean: true });

  r = await ChangeRecord.open(dir, { baseGeneration: G, groupCommitMs: 0 });
  assert.is(r.trusted(), false);
  assert.match(r.untrustedReason()!, /already untrusted/);
  await r.close({ clean: true });

  // a new period (the peer is back in sync and then lost again) starts trusted
  r = await ChangeRecord.open(dir, { baseGeneration: '5@node1', begin: true, groupCommitMs: 0 });
  assert.ok(r.trusted());
  await r.close({ clean: true });
});

test('wrong base generation → untrusted; no record at all → untrusted', async () => {
  const dir = tmp();
  const r = await started(dir);
  r.record({ op: 'create', path: 'x' });
  await r.close({ clean: true });
  const other = await ChangeRecord.open(dir, { baseGeneration: '2@node2', groupCommitMs: 0 });
  assert.is(other.trusted(), false);
  assert.match(other.untrustedReason()!, /relative to generation 3@node1, the peer holds 2@node2/);
  await other.close({ clean: true });

  const none = await ChangeRecord.open(tmp(), { baseGeneration: G, groupCommitMs: 0 });
  assert.is(none.trusted(), false);
  assert.match(none.untrustedReason()!, /never started/);
  await none.close({ clean: true });
});

test('group commit: changes reach the journal on disk by themselves after the period, without flush()', async () => {
  const dir = tmp();
  const r = await started(dir, { groupCommitMs: 20 });
  for (let i = 0; i < 100; i++) r.record({ op: 'write', path: 'f', offset: i * 10, length: 5 });
  assert.is(fs.readFileSync(path.join(dir, JOURNAL_FILE), 'utf8'), '', 'nothing written synchronously');
  const journal = () => fs.readFileSync(path.join(dir, JOURNAL_FILE), 'utf8').trim().split('\n').filter((l) => l !== '');
  await waitFor(() => journal().length === 100, 5000, 'the group commit to write the 100 changes');
  const lines = journal();
  assert.equal(JSON.parse(lines[99]!), { s: 100, c: { op: 'write', path: 'f', offset: 990, length: 5 } });
  await r.close({ clean: true });
});

test('compaction: a growing journal is folded into the snapshot, and the record reopens identical', async () => {
  const dir = tmp();
  const r = await started(dir, { compactBytes: 2000 });
  for (let i = 0; i < 500; i++) {
    r.record({ op: 'write', path: `f${i % 7}`, offset: (i % 20) * 100, length: 50 }); // a small map, a long journal
    if (i % 50 === 49) await r.flush();
  }
  const want = r.snapshot();
  await r.close({ clean: true });
  const snapText = fs.readFileSync(path.join(dir, SNAPSHOT_FILE), 'utf8');
  const journalSize = fs.statSync(path.join(dir, JOURNAL_FILE)).size;
  assert.ok(journalSize < Math.max(2000, 2 * snapText.length) + 50 * 60, `the journal was compacted (${journalSize} B)`);
  assert.ok(JSON.parse(snapText).seq > 0);
  const again = await ChangeRecord.open(dir, { baseGeneration: G, groupCommitMs: 0 });
  assert.ok(again.trusted(), again.untrustedReason() ?? '');
  assert.equal(again.snapshot().changedFiles(), want.changedFiles());
  assert.is(again.snapshot().totalBytes(), 7 * 20 * 50, '7 files x 20 slots of 50 bytes (500 writes cover all 140)');
  await again.close({ clean: true });
});

test('a crash between snapshot and journal truncation: lines already in the snapshot are skipped', async () => {
  const dir = tmp();
  const r = await started(dir);
  r.record({ op: 'write', path: 'a', offset: 0, length: 10 });
  r.record({ op: 'write', path: 'a', offset: 20, length: 10 });
  await r.close({ clean: true });
  // snapshot says: after change 2; the old journal (changes 1, 2) is still there, plus change 3
  const map = (await ChangeRecord.open(dir, { baseGeneration: G, groupCommitMs: 0 }));
  const snapMap = map.snapshot().toJSON();
  await map.close({ clean: false });
  fs.writeFileSync(path.join(dir, SNAPSHOT_FILE), JSON.stringify({ v: 1, baseGeneration: G, seq: 2, trusted: true, map: snapMap }));
  fs.appendFileSync(path.join(dir, JOURNAL_FILE), `${JSON.stringify({ s: 3, c: { op: 'write', path: 'a', offset: 40, length: 1 } })}\n`);
  fs.writeFileSync(path.join(dir, CLEAN_FILE), JSON.stringify({ v: 1, baseGeneration: G, seq: 3 }));
  const again = await ChangeRecord.open(dir, { baseGeneration: G, groupCommitMs: 0 });
  assert.ok(again.trusted(), again.untrustedReason() ?? '');
  assert.equal(again.snapshot().extentsOf('a'), [[0, 10], [20, 30], [40, 41]]);
  await again.close({ clean: true });
});

/** A cleanly closed record with two changes, whose files the test then damages. */
async function closedRecord(): Promise<string> {
  const dir = tmp();
  const r = await started(dir);
  r.record({ op: 'write', path: 'a', offset: 0, length: 10 });
  r.record({ op: 'write', path: 'b', offset: 0, length: 10 });
  await r.close({ clean: true });
  return dir;
}

async function verdict(dir: string): Promise<string | null> {
  const r = await ChangeRecord.open(dir, { baseGeneration: G, groupCommitMs: 0 });
  const reason = r.untrustedReason();
  assert.is(r.trusted(), reason === null);
  if (!r.trusted()) assert.ok(r.snapshot().isEmpty(), 'an untrusted record offers no content');
  await r.close({ clean: true });
  return reason;
}

test('damaged records are untrusted, never an exception: each check has its reason', async () => {
  let dir = await closedRecord();
  const j = path.join(dir, JOURNAL_FILE);
  fs.writeFileSync(j, fs.readFileSync(j, 'utf8').split('\n').slice(0, 1).join('\n') + '\n'); // last change lost
  assert.match((await verdict(dir))!, /journal ends at 1, its clean marker says 2/);

  dir = await closedRecord();
  fs.appendFileSync(path.join(dir, JOURNAL_FILE), '{"s":3,"c":{"op":"wri');
  assert.match((await verdict(dir))!, /partial line/);

  dir = await closedRecord();
  fs.writeFileSync(path.join(dir, JOURNAL_FILE), '{"s":1,"c":{"op":"write","path":"a","offset":0,"length":1}}\n{"s":3,"c":{"op":"chmod","path":"a"}}\n');
  assert.match((await verdict(dir))!, /skips from 1 to 3/);

  dir = await closedRecord();
  fs.writeFileSync(path.join(dir, JOURNAL_FILE), '{"s":1,"c":{"op":"write","path":"/etc/passwd","offset":0,"length":1}}\n');
  assert.match((await verdict(dir))!, /corrupt at change 1/);

  dir = await closedRecord();
  fs.writeFileSync(path.join(dir, SNAPSHOT_FILE), '{not json');
  assert.match((await verdict(dir))!, /snapshot is unreadable/);

  dir = await closedRecord();
  fs.writeFileSync(path.join(dir, SNAPSHOT_FILE), JSON.stringify({ v: 1, baseGeneration: G, seq: 0, trusted: true, map: { v: 9 } }));
  assert.match((await verdict(dir))!, /snapshot is invalid/);

  dir = await closedRecord();
  fs.writeFileSync(path.join(dir, CLEAN_FILE), 'garbage');
  assert.match((await verdict(dir))!, /clean marker of the change record is unreadable/);

  dir = await closedRecord();
  fs.writeFileSync(path.join(dir, CLEAN_FILE), JSON.stringify({ v: 1, baseGeneration: '1@x', seq: 2 }));
  assert.match((await verdict(dir))!, /clean marker does not match/);

  assert.is(await verdict(await closedRecord()), null, 'the undamaged control case is trusted');
});

test('a failed journal write (file size limit: EFBIG) makes the record untrusted; flush rejects; the next open agrees', async () => {
  const dir = tmp();
  // a child process whose file size limit is 16 KiB (bash `ulimit -f 16`); Node ignores SIGXFSZ, so writes fail
  const child = path.join(dir, 'child.mjs');
  fs.writeFileSync(child, `
    import { ChangeRecord } from ${JSON.stringify(new URL('../../../src/replication/record/change-record.js', import.meta.url).href)};
    const r = await ChangeRecord.open(${JSON.stringify(path.join(dir, 'rec'))}, { baseGeneration: '${G}', begin: true, groupCommitMs: 0 });
    const before = r.trusted();
    for (let i = 0; i < 1000; i++) r.record({ op: 'write', path: 'file-with-a-long-name-' + i, offset: i, length: 1 });
    let code = null;
    try { await r.flush(); } catch (e) { code = e.code; }
    const out = { before, code, trusted: r.trusted(), reason: r.untrustedReason() };
    await r.close({ clean: true });
    console.log(JSON.stringify(out));
  `);
  const res = spawnSync('bash', ['-c', `ulimit -f 16; exec "${process.execPath}" "${child}"`], { encoding: 'utf8' });
  assert.is(res.status, 0, res.stderr);
  const out = JSON.parse(res.stdout) as { before: boolean; code: string; trusted: boolean; reason: string };
  assert.equal([out.before, out.code, out.trusted], [true, 'EFBIG', false]);
  assert.match(out.reason, /write of the change record failed/);
  assert.not.ok(fs.existsSync(path.join(dir, 'rec', CLEAN_FILE)), 'no clean marker for an untrusted record');
  const again = await ChangeRecord.open(path.join(dir, 'rec'), { baseGeneration: G, groupCommitMs: 0 });
  assert.is(again.trusted(), false);
  assert.match(again.untrustedReason()!, /not closed cleanly/);
  await again.close({ clean: true });
});

test('a journal that is not a regular file is untrusted (and never read)', async () => {
  const dir = await closedRecord();
  fs.rmSync(path.join(dir, JOURNAL_FILE));
  fs.symlinkSync('/dev/zero', path.join(dir, JOURNAL_FILE));
  assert.match((await verdict(dir))!, /not a regular file/);
});

test('intercepted changes (FUSE / stream shapes) are recorded; an unknown operation invalidates the record', async () => {
  const dir = tmp();
  const r = await started(dir);
  r.recordIntercepted({ op: 'create', path: 'f' });
  r.recordIntercepted({ op: 'write', path: 'f', offset: 0, data: new Uint8Array(10) });
  r.recordIntercepted({ op: 'fallocate', path: 'f', offset: 100, length: 50 });
  r.recordIntercepted({ op: 'write', path: 'g', offset: 4, data: new Uint8Array(4) });
  r.recordIntercepted({ op: 'setxattr', path: 'g' });
  r.recordIntercepted({ op: 'sync', path: 'g' });
  r.recordIntercepted({ op: 'utimens', path: '' });
  r.recordIntercepted({ op: 'chmod', path: '.' });
  assert.ok(r.trusted());
  const m = r.snapshot();
  assert.equal(m.extentsOf('f'), [[0, 150]], 'a new file: the hole before the allocation is recorded too');
  assert.equal(m.extentsOf('g'), [[4, 8]]);
  assert.is(m.changedFiles().find((c) => c.path === 'g')!.meta, true);
  r.recordIntercepted({ op: 'copy_file_range', path: 'g' });
  assert.is(r.trusted(), false);
  assert.match(r.untrustedReason()!, /cannot describe \(copy_file_range\)/);
  await r.close({ clean: true });
  assert.not.ok(fs.existsSync(path.join(dir, CLEAN_FILE)));
  const again = await ChangeRecord.open(dir, { baseGeneration: G, groupCommitMs: 0 });
  assert.is(again.trusted(), false);
  await again.close({ clean: true });
});

test('misuse is a BugError: recording after close, no base generation', async () => {
  const r = await started(tmp());
  await r.close({ clean: true });
  await r.close({ clean: true }); // idempotent
  assert.throws(() => r.record({ op: 'chmod', path: 'x' }), (e: unknown) => e instanceof BugError);
  try {
    await ChangeRecord.open(tmp(), { baseGeneration: '' });
    assert.unreachable();
  } catch (e) {
    assert.instance(e, BugError);
  }
});

test('discard removes the record; an I/O error at open is thrown (not a verdict)', async () => {
  const dir = await closedRecord();
  await ChangeRecord.discard(dir);
  assert.equal(fs.readdirSync(dir), []);
  await ChangeRecord.discard(path.join(dir, 'never-existed'));
  const file = path.join(tmp(), 'a-file');
  fs.writeFileSync(file, '');
  try {
    await ChangeRecord.open(path.join(file, 'sub'), { baseGeneration: G });
    assert.unreachable();
  } catch (e) {
    assert.is((e as NodeJS.ErrnoException).code, 'ENOTDIR');
  }
});

test.run();
