// Lossy disks in the lab: a program on node1 writes, syncs some of it, overwrites, creates and renames; a power-off
// and a boot; exactly what ext4 promises survives (docs/design/lossy-disk.md). Without lossy disks (the default) the
// machine's page cache keeps everything, as before.
import fs from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { APPENDER_MODULE, AppendRecorder, createAppenderLab } from '../../src/lab/appender.js';
import { Lab, type LabSpec } from '../../src/lab/lab.js';
import { moduleLogOf } from '../../src/lab/mirror-lab.js';
import { startPair, waitForStates } from '../../src/lab/postgres.js';
import { findLossyServers } from '../../src/lab/lossy/lab-disk.js';
import { findHolders, listNetns, mounts } from '../../src/lab/netns.js';
import { stateFile } from '../../src/lab/state.js';
import { teardownLab } from '../../src/lab/teardown.js';

const D = '/srv/demo';
const NODE = process.execPath;

/** The durable starting point: every file fsynced, then the directories. */
const SETUP = `
const fs = require('node:fs');
const D = '${D}';
const put = (p, s, mode = 0o644) => { const fd = fs.openSync(p, 'w', mode); fs.writeSync(fd, s); fs.fchmodSync(fd, mode); fs.futimesSync(fd, 1e9, 1e9); fs.fsyncSync(fd); fs.closeSync(fd); };
const syncDir = (p) => { const fd = fs.openSync(p, 'r'); fs.fsyncSync(fd); fs.closeSync(fd); };
fs.mkdirSync(D + '/sub');
put(D + '/data', '');
put(D + '/conf', 'v1');
put(D + '/mode', 'm');
put(D + '/mode2', 'm');
put(D + '/sub/old', 'old-name');
put(D + '/sub/victim', 'victim');
syncDir(D + '/sub');
syncDir(D);
`;

/** The experiment: each line's comment says what a power loss must leave. */
const EXPERIMENT = `
const fs = require('node:fs');
const D = '${D}';
const syncDir = (p) => { const fd = fs.openSync(p, 'r'); fs.fsyncSync(fd); fs.closeSync(fd); };
let fd = fs.openSync(D + '/data', 'r+');
fs.writeSync(fd, Buffer.alloc(8192, 'A'), 0, 8192, 0);
fs.fdatasyncSync(fd);                                  // data + size durable, mtime not (stays 1e9)
fs.writeSync(fd, Buffer.alloc(4096, 'B'), 0, 4096, 0); // overwrite in place: lost
fs.writeSync(fd, Buffer.from('C'), 0, 1, 8192);        // append: lost
fs.closeSync(fd);

fd = fs.openSync(D + '/named', 'w'); fs.writeSync(fd, 'named'); fs.fsyncSync(fd); fs.closeSync(fd);         // kept (dir fsync below)
fd = fs.openSync(D + '/name-only', 'w'); fs.writeSync(fd, 'lost data'); fs.closeSync(fd);                   // entry kept, data lost
fd = fs.openSync(D + '/conf.tmp', 'w'); fs.writeSync(fd, 'v2'); fs.fsyncSync(fd); fs.closeSync(fd);
fs.renameSync(D + '/conf.tmp', D + '/conf');                                                                // replace: kept
fs.chmodSync(D + '/mode', 0o600);                                                                           // lost
fd = fs.openSync(D + '/mode2', 'r'); fs.fchmodSync(fd, 0o600); fs.fsyncSync(fd); fs.closeSync(fd);          // kept
syncDir(D);

fd = fs.openSync(D + '/sub/noname', 'w'); fs.writeSync(fd, 'x'); fs.fsyncSync(fd); fs.closeSync(fd);       // lost: sub not synced
fs.renameSync(D + '/sub/old', D + '/sub/new');                                                              // undone
fs.unlinkSync(D + '/sub/victim');                                                                           // undone
fs.mkdirSync(D + '/sub/newdir');
fd = fs.openSync(D + '/sub/newdir/f', 'w'); fs.writeSync(fd, 'f'); fs.fsyncSync(fd); fs.closeSync(fd);
syncDir(D + '/sub/newdir');                                                                                 // lost: sub not synced
fd = fs.openSync(D + '/unsynced', 'w'); fs.writeSync(fd, 'u'); fs.closeSync(fd);                           // lost: after the dir fsync
`;

/** What the node sees: path → 'dir' | '<mode> <mtime s> <content>' (long contents as runs: 4096xB+…). */
const REPORT = `
const fs = require('node:fs');
const out = {};
const runs = (b) => { const r = []; for (let i = 0; i < b.length;) { let j = i; while (j < b.length && b[j] === b[i]) j++; r.push((j - i) + 'x' + String.fromCharCode(b[i])); i = j; } return r.join('+'); };
const walk = (rel) => {
  for (const n of fs.readdirSync('${D}/' + rel).sort()) {
    const r = rel ? rel + '/' + n : n;
    const st = fs.lstatSync('${D}/' + r);
    if (st.isDirectory()) { out[r] = 'dir'; walk(r); }
    else { const b = fs.readFileSync('${D}/' + r); out[r] = (st.mode & 0o777).toString(8) + ' ' + Math.floor(st.mtimeMs / 1000) + ' ' + (b.length > 64 ? runs(b) : b.toString()); }
  }
};
walk('');
console.log(JSON.stringify(out));
`;

/** fstypes of the mounts stacked exactly on `p` in the holder's mount namespace (the machine's others are ignored) */
function mountTypes(holder: number, p: string): string[] {
  return fs.readFileSync(`/proc/${holder}/mountinfo`, 'utf8').split('\n').map((l) => l.split(' ')).filter((f) => f[4] === p).map((f) => f[f.indexOf('-') + 1]!);
}

async function runOn(lab: Lab, node: string, src: string): Promise<string> {
  return (await lab.exec(node, [NODE, '-e', src], { timeoutMs: 60_000 })).stdout;
}

async function report(lab: Lab, node: string): Promise<Record<string, string>> {
  const view = JSON.parse(await runOn(lab, node, REPORT)) as Record<string, string>;
  // mtimes of files touched by the experiment are "now": keep only the ones the setup fixed
  for (const [k, v] of Object.entries(view)) if (v !== 'dir' && !v.split(' ')[1]!.startsWith('1000000000')) view[k] = v.replace(/^(\S+) \d+ /, '$1 now ');
  return view;
}

/** Creates a lab, runs `fn`, and always tears it down, checking that nothing is left. */
async function withLab(spec: Partial<LabSpec>, fn: (lab: Lab) => Promise<void>): Promise<void> {
  const lab = await Lab.create({ daemonCommand: ['sleep', 'infinity'], ...spec });
  lab.autoTeardownOnExit();
  try {
    await fn(lab);
  } finally {
    const report = await lab.down();
    assert.equal(report.problems, [], 'teardown problems');
    assert.equal(listNetns().filter((n) => n.startsWith(`${lab.prefix}-`)), [], 'namespaces left');
    assert.is(findHolders(`${lab.prefix}-`).length, 0, 'holders left');
    assert.is(findLossyServers(`${lab.prefix}-`).length, 0, 'lossy disk servers left');
    assert.not.ok(fs.existsSync(lab.dir), 'lab dir left');
  }
}

const LATEST = {
  conf: '644 now v2',
  data: '644 now 4096xB+4096xA+1xC',
  mode: '600 1000000000 m',
  mode2: '600 1000000000 m',
  'name-only': '644 now lost data',
  named: '644 now named',
  sub: 'dir',
  'sub/new': '644 1000000000 old-name',
  'sub/newdir': 'dir',
  'sub/newdir/f': '644 now f',
  'sub/noname': '644 now x',
  unsynced: '644 now u',
};

test('lossy disks: a power loss keeps exactly what was made durable', async () => {
  await withLab({ lossyDisks: true }, async (lab) => {
    const holder = lab.holderPid('node1');
    assert.equal(mountTypes(holder, D), ['fuse.tandem-lossy'], 'the private dir is a lossy disk');
    await runOn(lab, 'node1', SETUP);
    await runOn(lab, 'node1', EXPERIMENT);
    assert.equal(await report(lab, 'node1'), LATEST, 'the node sees its latest writes');
    const [st] = await lab.lossyStats('node1');
    assert.is(st!.dir, D);
    assert.ok(st!.pendingBytes > 0, 'unsynced data is held by the lossy disk');
    assert.is(st!.writebacks, 0, 'nothing was written back: every unsynced byte is lost below');
    assert.ok(st!.fdatasyncs >= 1 && st!.dirSyncs >= 4, `syncs counted: ${JSON.stringify(st)}`);

    await lab.poweroff('node1');
    assert.equal(findLossyServers(`${lab.ns('node1')}`), [], 'the disk server is gone with the power');
    assert.not.ok(mounts(holder).some((m) => m.mountPoint === D), 'and its mount');
    await lab.boot('node1', { daemon: false });

    assert.equal(await report(lab, 'node1'), {
      conf: '644 now v2', // tmp fsynced, renamed over, dir fsynced
      data: '644 1000000000 8192xA', // fdatasync: data and size, not the mtime; the later overwrite and append lost
      mode: '644 1000000000 m', // chmod without fsync of the file: lost
      mode2: '600 1000000000 m', // chmod + fsync: kept
      'name-only': '644 now ', // entry durable (dir fsync), data never synced
      named: '644 now named', // file and dir fsynced
      sub: 'dir',
      'sub/old': '644 1000000000 old-name', // rename without dir fsync: undone
      'sub/victim': '644 1000000000 victim', // unlink without dir fsync: undone
      // gone: sub/noname (file fsynced, sub not), sub/newdir (synced itself, sub not), unsynced (created after the dir fsync)
    });
    assert.ok(fs.existsSync(`${lab.paths('node1').root}${D}/data`), 'the durable state is the node root on the host');
    assert.is(fs.readFileSync(`${lab.paths('node1').root}${D}/data`, 'latin1'), 'A'.repeat(8192));

    const [after] = await lab.lossyStats('node1');
    assert.is(after!.pendingBytes, 0, 'a booted disk holds nothing pending');
    assert.equal(await report(lab, 'node2'), {}, 'node2 has its own disk');

    await runOn(lab, 'node1', `require('node:fs').writeFileSync('${D}/sub/victim', 'overwritten, unsynced')`);
    await lab.boot('node1', { daemon: false }); // a hard reset: boot while on
    assert.is((await report(lab, 'node1'))['sub/victim'], '644 1000000000 victim', 'a reset loses it too');
  });
});

test('without lossy disks (the default) a power-off keeps everything, synced or not', async () => {
  await withLab({}, async (lab) => {
    const holder = lab.holderPid('node1');
    assert.equal(mountTypes(holder, D).filter((t) => t.startsWith('fuse')), [], 'a plain bind mount');
    assert.is(mountTypes(holder, D).length, 1);
    await runOn(lab, 'node1', SETUP);
    await runOn(lab, 'node1', EXPERIMENT);
    const before = await report(lab, 'node1');
    assert.equal(before, LATEST);
    await lab.poweroff('node1');
    await lab.boot('node1', { daemon: false });
    assert.equal(await report(lab, 'node1'), LATEST, 'the page cache survived: nothing was lost');
    assert.equal(await lab.lossyStats('node1'), []);
    await lab.syncDisks('node1'); // a no-op
  });
});

test('the pending limit writes back the oldest files; syncDisks makes everything durable', async () => {
  await withLab({ lossyDisks: [D], lossyPendingLimitBytes: 1 << 20 }, async (lab) => {
    await runOn(lab, 'node1', `
      const fs = require('node:fs');
      fs.writeFileSync('${D}/big', Buffer.alloc(3 << 20, 'b'));   // past the 1 MiB limit: written back as it goes
      fs.writeFileSync('${D}/small', 'small');
    `);
    const [st] = await lab.lossyStats('node1');
    assert.ok(st!.writebacks >= 1, `written back: ${JSON.stringify(st)}`);
    assert.ok(st!.pendingBytes <= 1 << 20, 'memory stays below the limit');
    await lab.syncDisks('node1');
    const [synced] = await lab.lossyStats('node1');
    assert.is(synced!.pendingBytes, 0);
    assert.is(synced!.syncAlls, 1);
    await lab.poweroff('node1');
    await lab.boot('node1', { daemon: false });
    const view = await report(lab, 'node1');
    assert.equal(view, { big: `644 now ${3 << 20}xb`, small: '644 now small' });
  });
});

test('tandem on lossy disks: the PRIM loses power; every acknowledged append is durable on node2, which takes over; node1 rejoins', async () => {
  const lab = await createAppenderLab({ pulse: '200ms', timeout: '1s', spec: { lossyDisks: true } });
  lab.autoTeardownOnExit();
  let rec: AppendRecorder | null = null;
  let ok = false;
  const records = async (node: string) => (await lab.exec(node, ['cat', '/srv/appender/data/records.log'])).stdout;
  try {
    await startPair(lab, 'node1', 'node2', 60_000, APPENDER_MODULE);
    // The module's prestart mkdirs the data dir and the appender creates its file without syncing a directory:
    // durable on a real ext4 once its journal commits (5 s), never on a lossy disk. Make the setup durable first.
    for (const n of ['node1', 'node2']) await lab.syncDisks(n);
    rec = new AppendRecorder(lab);
    rec.start();
    const r = rec;
    await lab.waitFor('appends acknowledged', async () => r.acknowledged.length >= 50, 30_000, 50);
    const sentAtCut = r.lastSent;
    await lab.poweroff('node1');
    await waitForStates(lab, { node2: 'ALONE' }, 30_000, APPENDER_MODULE);
    const v = r.verify('node2'); // node2's durable copy, on the host
    assert.equal(v.missing, [], `acknowledged appends not durable on node2 (${v.present} of ${v.acknowledged} are)`);
    await lab.waitFor('an append acknowledged by node2', async () => r.lastAcked > sentAtCut, 30_000, 20);
    await lab.boot('node1');
    await waitForStates(lab, { node2: 'PRIM', node1: 'SECOND' }, 120_000, APPENDER_MODULE);
    const stats = await r.stop();
    rec = null;
    const last = String(stats.acknowledged.at(-1));
    await lab.waitFor('node1 has the last acknowledged append', async () => (await records('node1')).split('\n').includes(last), 10_000);
    assert.is(await records('node1'), await records('node2'), 'the two copies are identical');
    ok = true;
  } finally {
    await rec?.stop().catch(() => undefined);
    if (!ok) for (const n of ['node1', 'node2']) console.log(`--- ${n}\n${moduleLogOf(lab, n, APPENDER_MODULE).split('\n').slice(-30).join('\n')}`);
    const report = await lab.down();
    assert.equal(report.problems, []);
    assert.is(findLossyServers(`${lab.prefix}-`).length, 0);
  }
});

test('teardown without any state (a crashed run) kills the lossy disk servers and leaves no mount', async () => {
  const lab = await Lab.create({ daemonCommand: ['sleep', 'infinity'], lossyDisks: true });
  try {
    await runOn(lab, 'node1', `require('node:fs').writeFileSync('${D}/f', 'x')`);
    assert.is(findLossyServers(`${lab.prefix}-`).length, 2, 'one server per node');
    fs.rmSync(stateFile(lab.dir));
  } finally {
    const r = await teardownLab(lab.prefix, lab.dir);
    assert.equal(r.problems, []);
    assert.is(findLossyServers(`${lab.prefix}-`).length, 0, 'servers found by their argv[0] and killed');
    assert.equal(listNetns().filter((n) => n.startsWith(`${lab.prefix}-`)), []);
    assert.is(findHolders(`${lab.prefix}-`).length, 0);
    assert.not.match(fs.readFileSync('/proc/self/mountinfo', 'utf8'), /tandem-lossy/);
  }
});

test.run();
