// A crashed PRIM that rejoins must not keep a write it never replicated (issue "Replication, second pass", item 2).
// The nodes' disks are the lab's lossy disks (docs/design/lossy-disk.md): a power-off loses what was not made
// durable, as a real one does. The PRIM overwrites a two-day-old file in place with the same size and fdatasyncs
// it: the data is durable on its own disk at once, the new mtime is not (fdatasync), and the change never reaches
// the SECOND (its replication LAN is cut). The PRIM loses power; the SECOND takes over with the old content. When
// the old PRIM comes back, its copy holds the other content under the same size and the same old mtime: only its
// activity log says that this file must be block-compared. The copies must end identical, with the SECOND's data.
// The same lab then shows the SECOND's side: the PRIM overwrites a file in place and puts its old mtime back (as
// `rsync -t --inplace` or `touch -r` do), without an fsync; the SECOND applies it (page cache only) and loses power.
// Its disk keeps the old data under the same size and mtime as the PRIM's new data: only the SECOND's own activity
// log (noted before it applied the write) says the file must be compared.
// Last, the source's side: the SECOND stops cleanly, the PRIM (now ALONE) overwrites the file in place, puts its old
// mtime back and syncs it, then loses power. Back ALONE, its change record is not trusted (it crashed), so the
// returning SECOND compares; its own copy is clean, and the file has the same size and the same old mtime on both
// nodes: only the PRIM's activity log, flagged in the manifest it sends, says that the file must be compared.
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { APPENDER_DATA, APPENDER_MODULE, APPENDER_PRIVATE_DIR, createAppenderLab } from '../../src/lab/appender.js';
import type { Lab } from '../../src/lab/lab.js';
import { moduleLogOf } from '../../src/lab/mirror-lab.js';
import { moduleState, startPair, waitForStates } from '../../src/lab/postgres.js';

const M = APPENDER_MODULE;
const FILE = `${APPENDER_DATA}/table.dat`;
const A = 'A'.repeat(4096);
const B = 'B'.repeat(4096);
const onDisk = (l: Lab, n: string) => fs.readFileSync(path.join(l.paths(n).root, FILE), 'utf8');

let lab: Lab | null = null;
test.before(async () => {
  lab = await createAppenderLab({ pulse: '200ms', timeout: '1s', spec: { privateDirs: [APPENDER_PRIVATE_DIR], lossyDisks: true } });
});
test.after(async () => {
  await lab?.down();
});
const dumpLogs = (l: Lab | null) => {
  if (l) for (const n of ['node1', 'node2']) console.log(`--- ${n}\n${moduleLogOf(l, n, M).split('\n').slice(-40).join('\n')}`);
};

test('a crashed PRIM\'s unreplicated in-place overwrite (fdatasync, old mtime) is found by its activity log and replaced', async () => {
  let ok = false;
  try {
    const l = lab!;
    await startPair(l, 'node1', 'node2', 60_000, M);
    // the file, two days old, the same on both nodes and durable there
    await l.exec('node1', ['sh', '-c', `printf '${A}' > ${FILE} && touch -d '2 days ago' ${FILE} && sync ${FILE}`]);
    await l.waitFor('the file on node2', async () => (await l.exec('node2', ['cat', FILE], { reject: false })).stdout === A, 20_000, 100);
    await l.waitFor('node2 has the old mtime', async () => {
      const st = (await l.exec('node2', ['stat', '-c', '%Y', FILE], { reject: false })).stdout.trim();
      return Number(st) < Date.now() / 1000 - 86_400;
    }, 20_000, 100);
    for (const n of ['node1', 'node2']) await l.syncDisks(n);

    // the SECOND stops getting the stream; the PRIM overwrites in place and fdatasyncs (it waits for node2 then)
    await l.cut('replication');
    const before = (await l.lossyStats('node1')).reduce((a, d) => a + d.fdatasyncs, 0);
    const writer = l.exec('node1', ['dd', 'of=' + FILE, 'bs=4096', 'count=1', 'conv=notrunc,fdatasync', 'status=none'], { input: B, reject: false, timeoutMs: 60_000 });
    await l.waitFor('the overwrite durable on node1\'s own disk', async () => (await l.lossyStats('node1')).reduce((a, d) => a + d.fdatasyncs, 0) > before, 20_000, 20);
    await l.poweroff('node1');
    await writer;
    await l.heal();
    assert.ok(onDisk(l, 'node1') === B, 'node1 kept its unreplicated overwrite through the power loss');
    await waitForStates(l, { node2: 'ALONE' }, 30_000, M);
    assert.ok((await l.exec('node2', ['cat', FILE])).stdout === A, 'node2 runs with the content it had');

    // node1 comes back: its copy differs from node2's in a file with the same size and the same old mtime
    await l.boot('node1');
    await waitForStates(l, { node1: 'SECOND', node2: 'PRIM' }, 60_000, M);
    assert.ok(onDisk(l, 'node1') === A, `node1's unreplicated write was replaced by the reintegration (node1 holds ${onDisk(l, 'node1').slice(0, 8)}…)`);
    assert.match(moduleLogOf(l, 'node1', M), /reintegration from node2 done/);
    assert.is(await moduleState(l, 'node1', M), 'SECOND');
    ok = true;
  } finally {
    if (!ok) dumpLogs(lab);
  }
});

const activityOf = (l: Lab, n: string) => {
  const dir = path.join(l.paths(n).home, 'state', `${M}.files`, 'activity', '0');
  return (fs.existsSync(dir) ? fs.readdirSync(dir) : []).map((f) => fs.readFileSync(path.join(dir, f), 'utf8')).join('');
};
const mtimeOf = async (l: Lab, n: string) => (await l.exec(n, ['stat', '-c', '%.9Y', FILE])).stdout.trim();

test('a crashed SECOND\'s applied but unsynced overwrite (old mtime put back) is found by its activity log and replaced', async () => {
  let ok = false;
  try {
    const l = lab!;
    // a swap: node2 leaves the PRIM role cleanly (its activity log and tree-dirty marker are gone) and is SECOND
    await l.cli('node2', ['swap', '-m', M]);
    await waitForStates(l, { node1: 'PRIM', node2: 'SECOND' }, 60_000, M);
    assert.is(activityOf(l, 'node2'), '', 'node2 starts its SECOND role with an empty activity log');
    for (const n of ['node1', 'node2']) await l.syncDisks(n);
    const old = await mtimeOf(l, 'node1');
    assert.is(await mtimeOf(l, 'node2'), old);
    assert.ok(onDisk(l, 'node2') === A, 'node2 holds A durably');
    const C = 'C'.repeat(4096);
    const ref = `${APPENDER_PRIVATE_DIR}/ref`;
    await l.exec('node1', ['sh', '-c', `touch -r ${FILE} ${ref} && printf '${C}' | dd of=${FILE} bs=4096 count=1 conv=notrunc status=none && touch -r ${ref} ${FILE}`]);
    await l.waitFor('node1\'s overwrite applied on node2, its old mtime back', async () =>
      (await l.exec('node2', ['cat', FILE], { reject: false })).stdout === C && (await mtimeOf(l, 'node2')) === old, 20_000, 50);
    // no barrier (a syncfs through the stream, which a lossy disk does not honour) may reach node2 from now on
    await l.cut('replication');
    assert.match(activityOf(l, 'node2'), /"table\.dat"/, 'node2 noted the file in its activity log before applying the write');
    await l.poweroff('node2');
    await l.heal();
    assert.ok(onDisk(l, 'node2') === A, 'node2 lost the unsynced overwrite at the power loss');
    await waitForStates(l, { node1: 'ALONE' }, 30_000, M);

    // node2 comes back: same size, same old mtime as node1's file, other data
    await l.boot('node2');
    await waitForStates(l, { node2: 'SECOND', node1: 'PRIM' }, 60_000, M);
    assert.ok(onDisk(l, 'node2') === C, `node2's stale block was replaced by the reintegration (node2 holds ${onDisk(l, 'node2').slice(0, 8)}…)`);
    ok = true;
  } finally {
    if (!ok) dumpLogs(lab);
  }
});

test('a crashed PRIM\'s durable in-place overwrite under its old mtime reaches a clean SECOND: the source\'s activity log', async () => {
  let ok = false;
  try {
    const l = lab!;
    await waitForStates(l, { node1: 'PRIM', node2: 'SECOND' }, 30_000, M);
    await l.cli('node2', ['stop', '-m', M]);
    await waitForStates(l, { node1: 'ALONE', node2: 'STOP' }, 30_000, M);
    for (const n of ['node1', 'node2']) await l.syncDisks(n);
    const old = await mtimeOf(l, 'node1');
    assert.is(await mtimeOf(l, 'node2'), old, 'same mtime on both copies');
    const D = 'D'.repeat(4096);
    const ref = `${APPENDER_PRIVATE_DIR}/ref`;
    await l.exec('node1', ['sh', '-c', `touch -r ${FILE} ${ref} && printf '${D}' | dd of=${FILE} bs=4096 count=1 conv=notrunc status=none && touch -r ${ref} ${FILE}`]);
    await l.syncDisks('node1');
    assert.is(await mtimeOf(l, 'node1'), old, 'node1\'s file has its old mtime back');
    await l.poweroff('node1');
    assert.ok(onDisk(l, 'node1') === D, 'node1 kept its overwrite (it was synced)');
    assert.not.match(activityOf(l, 'node2'), /table\.dat/, 'node2\'s own log does not name the file: only node1\'s can');

    await l.boot('node1');
    await waitForStates(l, { node1: 'ALONE' }, 60_000, M);
    await l.cli('node2', ['start', '-m', M]);
    await waitForStates(l, { node2: 'SECOND', node1: 'PRIM' }, 60_000, M);
    assert.match(moduleLogOf(l, 'node1', M), /node2 reintegrates from generation \S+ \(by comparison/);
    assert.ok(onDisk(l, 'node2') === D, `node2's copy got node1's overwrite (node2 holds ${onDisk(l, 'node2').slice(0, 8)}…)`);
    ok = true;
  } finally {
    if (!ok) dumpLogs(lab);
  }
});

test.run();
