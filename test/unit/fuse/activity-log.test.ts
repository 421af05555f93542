import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ActivityLog, ActivityLogWriter, AppliedActivityLog, lastEpoch, loggedPaths, newEpochCounter } from '../../../src/replication/fuse/activity-log.js';

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-al-'));

test('a path is written once per epoch, durable in that epoch\'s file; a new epoch starts a new file', async () => {
  const dir = tmp();
  try {
    const counter = newEpochCounter(5);
    const w = new ActivityLogWriter(dir, counter);
    const main = new ActivityLog(dir, counter);
    w.beforeChange('a');
    w.beforeChange('a');
    w.beforeChange('dir/b c');
    assert.is(fs.readFileSync(path.join(dir, '5'), 'utf8'), '"a"\n"dir/b c"\n');
    assert.is(main.advance(), 6);
    w.beforeChange('a');
    assert.is(fs.readFileSync(path.join(dir, '6'), 'utf8'), '"a"\n');
    assert.equal([...(await loggedPaths(dir))].sort(), ['a', 'dir/b c']);
    assert.is(await lastEpoch(dir), 6);
    await main.forget(6);
    assert.equal(fs.readdirSync(dir), ['6']);
    w.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a torn last line (a crash mid-append) is ignored: its change was never made', async () => {
  const dir = tmp();
  try {
    fs.writeFileSync(path.join(dir, '3'), '"x"\n"half');
    assert.equal([...(await loggedPaths(dir))], ['x']);
    assert.equal([...(await loggedPaths(path.join(dir, 'missing')))], []);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a log that cannot be written throws (the change is then refused)', () => {
  const dir = tmp();
  try {
    const w = new ActivityLogWriter(dir, newEpochCounter());
    fs.rmSync(dir, { recursive: true, force: true });
    assert.throws(() => w.beforeChange('a'));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the SECOND\'s log: a path once per epoch, epochs continue above what is on disk, durable() forgets all noted so far', async () => {
  const dir = tmp();
  try {
    fs.writeFileSync(path.join(dir, '7'), '"from-the-primary-role"\n');
    const l = new AppliedActivityLog(dir);
    await l.beforeChange('a');
    await l.beforeChange('a');
    await l.beforeChange('b');
    assert.is(fs.readFileSync(path.join(dir, '8'), 'utf8'), '"a"\n"b"\n', 'a new epoch above the last one on disk');
    assert.equal([...(await loggedPaths(dir))].sort(), ['a', 'b', 'from-the-primary-role']);
    await l.durable();
    assert.equal(fs.readdirSync(dir), [], 'everything noted is durable in the copy: forgotten, earlier roles too');
    await l.beforeChange('a');
    assert.equal(fs.readdirSync(dir), ['9'], 'a path noted again after a sync point goes to a new epoch');
    assert.equal([...(await loggedPaths(dir))], ['a']);
    await l.close();
    const again = new AppliedActivityLog(dir);
    await again.beforeChange('c');
    assert.equal(fs.readdirSync(dir).sort(), ['10', '9'], 'a restarted log never appends to an older epoch');
    await again.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the SECOND\'s log rejects when it cannot be written', async () => {
  const dir = tmp();
  try {
    fs.writeFileSync(path.join(dir, 'blocker'), '');
    const l = new AppliedActivityLog(path.join(dir, 'blocker', 'sub'));
    let failed = false;
    await l.beforeChange('a').catch(() => (failed = true));
    assert.ok(failed, 'a log under a regular file cannot be created');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
