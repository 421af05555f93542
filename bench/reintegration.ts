/**
 * Reintegration cost: bytes sent to the returning SECOND against bytes changed while it was away, and copy rate, in
 * one lab run (root). The module is a bare one defined here (`bench`): one replicated dir, async="none", no
 * application. A data set (by default 2 GiB: 1,024 files of 1 MiB and 16 of 64 MiB) is written on the PRIM through
 * its FUSE mount, then:
 *   1. clean stop of the SECOND: the PRIM goes ALONE and records changes; the SECOND returns and is patched from the
 *      change record. Target: bytes sent / bytes changed ≤ 1.1.
 *   2. power-off of the SECOND: its copy may hold changes of its own, so the trees are compared (size/mtime, then
 *      SHA-256 per 64 KiB block, each differing block narrowed by SHA-256 per 4 KiB) and the differing 4 KiB blocks
 *      are sent. Targets: bytes sent / bytes changed ≤ 1.1, and ≤ rsync's literal data for the same change (rsync's
 *      delta transfer from the PRIM's tree into a copy of the SECOND's, run in the same bench).
 *   3. full copy into an empty directory (`tandem second --fullsync` after wiping the SECOND's copy), `fullRounds`
 *      times, alternating with what a user would run instead on the same hosts: `cp -a` of the same files on this
 *      disk then `sync -f` (the fsync guarantee the reintegration gives), and `rsync -a` from an rsync daemon on the
 *      PRIM's host to a fresh directory on the SECOND's host over the lab network, then `sync -f`. Target: ≥ 0.8 of
 *      `cp -a`.
 * The change set (cases 1 and 2): 400 writes of 4 KiB, each in its own 64 KiB block drawn uniformly over the whole
 * data set's bytes, at a random 4 KiB-aligned offset inside it (a database page); 2 new files of 1 MiB, one rename,
 * one delete (of files not written). "Changed" counts the bytes written (a rename or a delete writes none). "Sent" is
 * the file data the PRIM read for the SECOND (`lastReintegration.bytes` of the PRIM in `tandem status --json`);
 * manifests and block checksums of a comparison are not in it.
 *   node dist/bench/reintegration.js [set=1024x1+16x64] [fullRounds=3]
 * `set`: `+`-separated `count`x`MiB` groups of files.
 */
import { rng } from '../test/unit/rng.js'; // mulberry32: the same change set on every run
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { controlRequest } from '../src/daemon/control.js';
import type { ModuleView, StatusView } from '../src/daemon/views.js';
import type { Lab } from '../src/lab/lab.js';
import { controlSocketOf, createMirrorLab } from '../src/lab/mirror-lab.js';
import { benchModule, DATA, MODULE, PRIVATE_DIR } from './bench-module.js';
import { startPair, waitForStates } from '../src/lab/postgres.js';
import { startRsyncDaemon } from './rsync.js';
import { digestDiff, treeDigest } from '../src/lab/tree-digest.js';

const run = promisify(execFile);
const MiB = 1 << 20;
const setSpec = process.argv[2] ?? '1024x1+16x64';
const fullRounds = Number(process.argv[3] ?? 3);

/** The data set: file name → size in bytes, from `count`x`MiB` groups. */
function dataSet(spec: string): Map<string, number> {
  const set = new Map<string, number>();
  for (const group of spec.split('+')) {
    const m = /^(\d+)x(\d+)$/.exec(group);
    if (!m || Number(m[1]) < 1 || Number(m[2]) < 1) {
      console.error(`bench/reintegration: bad data set "${spec}": expected count x MiB groups joined by +, e.g. 1024x1+16x64`);
      process.exit(2);
    }
    for (let i = 0; i < Number(m[1]); i++) set.set(`s${m[2]!.padStart(3, '0')}-${String(i).padStart(5, '0')}`, Number(m[2]) * MiB);
  }
  return set;
}
const BLOCK = 64 * 1024;
const WRITES = 400;
const PRIM = 'node1';
const SECOND = 'node2';

/**
 * Runs on a lab node (inside its mount namespace, so through the FUSE mount), cwd = DATA. Reads a JSON list of
 * operations on stdin, fsyncs every file it writes, prints the bytes written.
 */
const WRITER = `
const fs = require('fs'), crypto = require('crypto');
const ops = JSON.parse(fs.readFileSync(0, 'utf8'));
let written = 0;
for (const o of ops) {
  if (o.op === 'create') {
    const fd = fs.openSync(o.path, 'w');
    for (let off = 0; off < o.size; off += 1 << 20) written += fs.writeSync(fd, crypto.randomBytes(Math.min(1 << 20, o.size - off)));
    fs.fsyncSync(fd); fs.closeSync(fd);
  } else if (o.op === 'write') {
    const fd = fs.openSync(o.path, 'r+');
    for (const [offset, length] of o.ranges) written += fs.writeSync(fd, crypto.randomBytes(length), 0, length, offset);
    fs.fsyncSync(fd); fs.closeSync(fd);
  } else if (o.op === 'rename') fs.renameSync(o.from, o.to);
  else if (o.op === 'unlink') fs.unlinkSync(o.path);
}
console.log(written);
`;

type Op =
  | { op: 'create'; path: string; size: number }
  | { op: 'write'; path: string; ranges: [number, number][] }
  | { op: 'rename'; from: string; to: string }
  | { op: 'unlink'; path: string };

async function applyOps(lab: Lab, node: string, ops: Op[]): Promise<{ bytes: number; ms: number }> {
  const t0 = performance.now();
  const r = await lab.exec(node, [process.execPath, '-e', WRITER], { input: JSON.stringify(ops), cwd: DATA, timeoutMs: 900_000 });
  return { bytes: Number(r.stdout.trim()), ms: performance.now() - t0 };
}


/**
 * The change set of one case over the current data set `files` (updated in place): WRITES writes of 4 KiB, each in a
 * distinct 64 KiB block drawn uniformly over all the data set's blocks, at a random 4 KiB-aligned offset inside it (a
 * database page: an unaligned 4 KiB write touches two 4 KiB blocks, and a comparison then sends both); 2 new files of
 * 1 MiB; a rename and a delete of the smallest files that are not written. Returns the renamed file's size too: rsync
 * sees a renamed file as a new one and copies it whole; tandem's comparison moves it and compares its blocks.
 */
function changeSet(files: Map<string, number>, tag: string, seed: number): { ops: Op[]; expected: number; renamedBytes: number } {
  const rnd = rng(seed);
  const names = [...files.keys()].sort();
  const firstBlock: number[] = [];
  let blocks = 0;
  for (const n of names) {
    firstBlock.push(blocks);
    blocks += Math.floor(files.get(n)! / BLOCK);
  }
  if (blocks < WRITES * 2 || names.length < 4) throw new Error(`the change set needs at least ${WRITES * 2} blocks of 64 KiB in 4 files; the data set has ${blocks} in ${names.length}`);
  const chosen = new Set<number>();
  while (chosen.size < WRITES) chosen.add(Math.floor(rnd() * blocks));
  const ranges = new Map<string, [number, number][]>();
  for (const g of [...chosen].sort((x, y) => x - y)) {
    let lo = 0;
    let hi = names.length - 1;
    while (lo < hi) { // the last file whose first block is ≤ g
      const mid = (lo + hi + 1) >> 1;
      if (firstBlock[mid]! <= g) lo = mid;
      else hi = mid - 1;
    }
    const name = names[lo]!;
    const r = ranges.get(name) ?? [];
    r.push([(g - firstBlock[lo]!) * BLOCK + Math.floor(rnd() * 16) * 4096, 4096]);
    ranges.set(name, r);
  }
  const ops: Op[] = [...ranges].map(([path, r]) => ({ op: 'write', path, ranges: r }));
  let expected = WRITES * 4096;
  for (let i = 0; i < 2; i++) {
    ops.push({ op: 'create', path: `new-${tag}-${i}`, size: MiB });
    files.set(`new-${tag}-${i}`, MiB);
    expected += MiB;
  }
  const untouched = names.filter((n) => !ranges.has(n)).sort((x, y) => files.get(x)! - files.get(y)! || (x < y ? -1 : 1));
  if (untouched.length < 2) throw new Error('the change set needs 2 files that are not written (a rename and a delete)');
  const [from, gone] = [untouched[0]!, untouched[1]!];
  const renamedBytes = files.get(from)!;
  ops.push({ op: 'rename', from, to: `renamed-${tag}` });
  files.set(`renamed-${tag}`, renamedBytes);
  files.delete(from);
  ops.push({ op: 'unlink', path: gone });
  files.delete(gone);
  return { ops, expected, renamedBytes };
}

async function moduleView(lab: Lab, node: string): Promise<ModuleView> {
  const v = (await controlRequest(controlSocketOf(lab, node), 'status', MODULE, undefined, { timeoutMs: 5000 })) as StatusView;
  return v.modules[0]!;
}

/** The PRIM has a change record open (ALONE, recording): changes made now are recorded for the SECOND. */
async function waitRecording(lab: Lab): Promise<void> {
  await waitForStates(lab, { [PRIM]: 'ALONE' }, 60_000, MODULE);
  await lab.waitFor(`${PRIM} recording changes`, async () => (await moduleView(lab, PRIM)).replication?.mode === 'recording', 30_000, 100);
}

const dataOf = (lab: Lab, node: string) => path.join(lab.paths(node).root, DATA);

function logLines(lab: Lab, node: string, re: RegExp): string[] {
  try {
    return fs.readFileSync(path.join(lab.paths(node).home, 'log', `${MODULE}.log`), 'utf8').split('\n').filter((l) => re.test(l));
  } catch {
    return [];
  }
}

/** Both copies identical on disk (backing dirs, read from outside the lab), else throws with the differences. */
async function assertIdentical(lab: Lab): Promise<number> {
  const [a, b] = await Promise.all([treeDigest(dataOf(lab, PRIM)), treeDigest(dataOf(lab, SECOND))]);
  if (a.digest !== b.digest) throw new Error(`copies differ after reintegration: ${digestDiff(a.entries, b.entries).join('; ')}`);
  return a.entries.size;
}

interface CaseResult {
  name: string;
  changed: number;
  sent: number;
  copiedBySecond: number;
  mode: string;
  passes: number;
  primMs: number;
  secondMs: number;
  freezeMs: number;
  wallMs: number;
}

/** Rejoins the SECOND with `rejoin` and waits for PRIM/SECOND; returns both sides' lastReintegration. */
async function reintegrate(lab: Lab, name: string, changed: number, rejoin: () => Promise<void>): Promise<CaseResult> {
  const before = (await moduleView(lab, PRIM)).replication?.lastReintegration?.at ?? null;
  const cpu0 = { prim: daemonCpuMs(lab, PRIM), second: daemonCpuMs(lab, SECOND) };
  const primHost = hostPid(lab, PRIM);
  const primHost0 = cpuMs(primHost);
  const secondHost: { pid?: number; last: number } = { last: 0 }; // started by the rejoin: sampled while it runs
  const t0 = performance.now();
  await rejoin();
  // progress samples of the copy (the SECOND's `reintegration` in status) until the pair is settled
  const samples: { t: number; bytes: number }[] = [];
  await lab.waitFor(`${PRIM} PRIM and ${SECOND} SECOND`, async () => {
    const [p, s] = await Promise.all([moduleView(lab, PRIM).catch(() => null), moduleView(lab, SECOND).catch(() => null)]);
    if (s?.reintegration) samples.push({ t: performance.now(), bytes: s.reintegration.bytesDone });
    secondHost.pid ??= hostPid(lab, SECOND);
    secondHost.last = Math.max(secondHost.last, cpuMs(secondHost.pid));
    return p?.state === 'PRIM' && p.ready && s?.state === 'SECOND' && s.ready;
  }, 900_000, 100);
  const wallMs = performance.now() - t0;
  const cpu = { prim: daemonCpuMs(lab, PRIM) - cpu0.prim, second: daemonCpuMs(lab, SECOND) - cpu0.second };
  const primHostMs = cpuMs(primHost) - primHost0;
  const p = (await moduleView(lab, PRIM)).replication?.lastReintegration;
  const s = (await moduleView(lab, SECOND)).replication?.lastReintegration;
  if (!p || p.at === before || !s) throw new Error(`${name}: no new lastReintegration in status (PRIM ${JSON.stringify(p)}, SECOND ${JSON.stringify(s)})`);
  const entries = await assertIdentical(lab);
  const r: CaseResult = {
    name, changed, sent: p.bytes, copiedBySecond: s.bytes, mode: p.mode, passes: p.passes, primMs: p.ms, secondMs: s.ms, freezeMs: p.freezeMs, wallMs,
  };
  const mibps = r.sent / MiB / (r.secondMs / 1000);
  console.log(`${name}: changed ${changed} B, sent ${r.sent} B (SECOND copied ${r.copiedBySecond} B), sent/changed ${(r.sent / Math.max(1, changed)).toFixed(3)}; ` +
    `mode ${r.mode}, ${r.passes} passes, ${r.secondMs} ms on the SECOND (${r.primMs} ms PRIM session, writes held ${r.freezeMs} ms), ` +
    `${mibps.toFixed(1)} MiB/s; rejoin to PRIM/SECOND ${(wallMs / 1000).toFixed(1)} s; copies identical (${entries} entries)`);
  const moving = samples.filter((x) => x.bytes > 0);
  const copy = moving.length >= 2 ? (moving.at(-1)!.bytes - moving[0]!.bytes) / MiB / ((moving.at(-1)!.t - moving[0]!.t) / 1000) : NaN;
  console.log(`  daemon CPU during the rejoin: ${PRIM} ${cpu.prim.toFixed(0)} ms, ${SECOND} ${cpu.second.toFixed(0)} ms (a booted daemon: since its start); ` +
    `copy rate between progress samples ${Number.isNaN(copy) ? 'n/a (too short)' : `${copy.toFixed(1)} MiB/s over ${moving.length} samples`}`);
  console.log(`  replication host CPU during the rejoin: ${PRIM} ${primHostMs.toFixed(0)} ms, ${SECOND} ${secondHost.pid !== undefined ? `${secondHost.last.toFixed(0)} ms (since its start)` : 'n/a'}; ` +
    `wall ${wallMs.toFixed(0)} ms`);
  for (const l of logLines(lab, PRIM, /caught up|reintegrates from/).slice(-2)) console.log(`  ${PRIM}: ${l.replace(/^\S+ \S+\s+/, '')}`);
  for (const l of logLines(lab, SECOND, /reintegration from .* done|becoming SECOND/).slice(-2)) console.log(`  ${SECOND}: ${l.replace(/^\S+ \S+\s+/, '')}`);
  return r;
}

/** utime + stime (ms) of a process (all its threads), 0 when it does not run. */
function cpuMs(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / CLOCK_TICKS;
  } catch {
    return 0;
  }
}

/** The daemon's replication host process (its child `tandem __replication-host`), if it runs. */
function hostPid(lab: Lab, node: string): number | undefined {
  const daemon = lab.daemonPid(node);
  if (daemon === undefined) return undefined;
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const ppid = Number(fs.readFileSync(`/proc/${e}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]);
      if (ppid === daemon && fs.readFileSync(`/proc/${e}/cmdline`, 'utf8').includes('__replication-host')) return Number(e);
    } catch {
      // gone meanwhile
    }
  }
  return undefined;
}

/** CPU (ms) of the node's daemon and of its replication host. */
function daemonCpuMs(lab: Lab, node: string): number {
  return cpuMs(lab.daemonPid(node));
}
const CLOCK_TICKS = 100;

/** `rsync -a` from the PRIM's rsync daemon into a fresh dir on the SECOND's host (same disk), then `sync -f`; MiB/s. */
async function rsyncCopy(lab: Lab, url: string, bytes: number): Promise<number> {
  const base = fs.mkdtempSync(path.join(lab.dir, SECOND, 'rsync-copy-'));
  try {
    const t0 = performance.now();
    await lab.exec(SECOND, ['rsync', '-a', url, `${base}/data/`], { timeoutMs: 900_000 });
    await lab.exec(SECOND, ['sync', '-f', `${base}/data`], { timeoutMs: 900_000 });
    return bytes / MiB / ((performance.now() - t0) / 1000);
  } finally {
    fs.rmSync(base, { recursive: true, force: true });
  }
}

/** `cp -a` of the PRIM's backing copy to a fresh dir on the same disk, then `sync -f`; returns MiB/s. */
async function rawCopy(lab: Lab, bytes: number): Promise<number> {
  const base = fs.mkdtempSync(path.join(lab.dir, 'raw-copy-'));
  try {
    const t0 = performance.now();
    await run('cp', ['-a', dataOf(lab, PRIM), path.join(base, 'data')]);
    await run('sync', ['-f', path.join(base, 'data')]);
    return bytes / MiB / ((performance.now() - t0) / 1000);
  } finally {
    fs.rmSync(base, { recursive: true, force: true });
  }
}

const loadavg = () => fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
function median(xs: number[]): number {
  const v = [...xs].sort((a, b) => a - b);
  const m = Math.floor(v.length / 2);
  return v.length % 2 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
}

const t0 = performance.now();
const module = benchModule();
const moduleDir = module.dir;
let lab: Lab | null = null;
try {
  lab = await createMirrorLab({ pulse: '200ms', timeout: '1s', module, spec: { privateDirs: [PRIVATE_DIR] } });
  const l = lab;
  await startPair(l, PRIM, SECOND, 120_000, MODULE);

  const files = dataSet(setSpec);
  const initial = await applyOps(l, PRIM, [...files].map(([n, size]) => ({ op: 'create', path: n, size })));
  console.log(`data set ${setSpec} (count x MiB): ${files.size} files written on the PRIM through FUSE with synchronous replication: ` +
    `${(initial.bytes / MiB).toFixed(0)} MiB in ${(initial.ms / 1000).toFixed(1)} s, ${(initial.bytes / MiB / (initial.ms / 1000)).toFixed(1)} MiB/s; load average ${loadavg()}`);
  await assertIdentical(l);

  // 1. clean stop: patched from the change record
  await l.cli(SECOND, ['stop', '-m', MODULE]);
  await waitForStates(l, { [SECOND]: 'STOP' }, 60_000, MODULE);
  await waitRecording(l);
  const c1 = changeSet(files, 'c1', 1);
  const w1 = await applyOps(l, PRIM, c1.ops);
  if (w1.bytes !== c1.expected) throw new Error(`writer wrote ${w1.bytes} B, expected ${c1.expected}`);
  const r1 = await reintegrate(l, 'clean stop (change record)', w1.bytes, async () => void await l.cli(SECOND, ['start', '-m', MODULE]));

  // 2. power-off: compared. Side by side: rsync's delta transfer of the same change, from the PRIM's tree into a copy
  // of what the SECOND held (`rsync -a --no-whole-file --inplace --stats`: its "Literal data" is what it sends)
  await sleep(1000);
  await l.poweroff(SECOND);
  await waitRecording(l);
  const snap = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-rsync-'));
  let rsyncLiteral = NaN;
  let r2: CaseResult;
  let renamed = 0;
  try {
    await run('cp', ['-a', `${dataOf(l, PRIM)}/.`, snap]);
    const c2 = changeSet(files, 'c2', 2);
    const w2 = await applyOps(l, PRIM, c2.ops);
    renamed = c2.renamedBytes;
    const rs = await run('rsync', ['-a', '--no-whole-file', '--inplace', '--delete', '--stats', `${dataOf(l, PRIM)}/`, `${snap}/`]);
    rsyncLiteral = Number(/Literal data: ([\d,]+) bytes/.exec(rs.stdout)?.[1]?.replace(/,/g, '') ?? NaN);
    console.log(`rsync of the same change: literal data ${rsyncLiteral} B, total sent ${/Total bytes sent: ([\d,]+)/.exec(rs.stdout)?.[1] ?? '?'} B`);
    r2 = await reintegrate(l, 'power-off (comparison)', w2.bytes, () => l.boot(SECOND));
  } finally {
    fs.rmSync(snap, { recursive: true, force: true });
  }

  // 3. full copy into an empty dir, alternating with cp -a on this disk and rsync -a to the other host
  const total = [...files.values()].reduce((n, x) => n + x, 0);
  const raws: number[] = [];
  const rsyncs: number[] = [];
  const fulls: CaseResult[] = [];
  const rsyncd = await startRsyncDaemon(l, PRIM, dataOf(l, PRIM));
  try {
    for (let i = 0; i <= fullRounds; i++) {
      raws.push(await rawCopy(l, total));
      rsyncs.push(await rsyncCopy(l, rsyncd.url, total));
      console.log(`cp -a + sync -f of ${(total / MiB).toFixed(0)} MiB: ${raws.at(-1)!.toFixed(1)} MiB/s; ` +
        `rsync -a ${PRIM} → ${SECOND} + sync -f: ${rsyncs.at(-1)!.toFixed(1)} MiB/s`);
      if (i === fullRounds) break;
      await l.cli(SECOND, ['stop', '-m', MODULE]);
      await waitForStates(l, { [SECOND]: 'STOP' }, 60_000, MODULE);
      await waitRecording(l);
      const d = dataOf(l, SECOND); // nothing is mounted on it while the module is stopped there
      for (const e of fs.readdirSync(d)) fs.rmSync(path.join(d, e), { recursive: true, force: true });
      fulls.push(await reintegrate(l, `full copy ${i + 1} (empty dir, --fullsync)`, total, async () => void await l.cli(SECOND, ['second', '-m', MODULE, '--fullsync'])));
    }
  } finally {
    await rsyncd.stop();
  }

  const rate = (r: CaseResult) => r.sent / MiB / (r.secondMs / 1000);
  const fullRate = median(fulls.map(rate));
  const rawRate = median(raws);
  const rsyncRate = median(rsyncs);
  console.log(`\nreintegration bench: data set ${setSpec} (count x MiB), ${(total / MiB).toFixed(0)} MiB; load average ${loadavg()}; ${os.cpus().length} CPUs`);
  console.log(`${'case'.padEnd(34)} ${'changed B'.padStart(11)} ${'sent B'.padStart(11)} ${'sent/changed'.padStart(12)} ${'ms'.padStart(7)} ${'MiB/s'.padStart(7)}  mode`);
  for (const r of [r1, r2, ...fulls]) {
    console.log(`${r.name.padEnd(34)} ${String(r.changed).padStart(11)} ${String(r.sent).padStart(11)} ${(r.sent / r.changed).toFixed(3).padStart(12)} ${String(r.secondMs).padStart(7)} ${rate(r).toFixed(1).padStart(7)}  ${r.mode}, ${r.passes} passes`);
  }
  console.log(`clean stop: sent/changed ${(r1.sent / r1.changed).toFixed(3)} (target ≤ 1.1: ${r1.sent / r1.changed <= 1.1 ? 'met' : 'NOT met'}); ` +
    `power-off: ${(r2.sent / r2.changed).toFixed(3)} (target ≤ 1.1: ${r2.sent / r2.changed <= 1.1 ? 'met' : 'NOT met'}), ` +
    `${(r2.sent / rsyncLiteral).toFixed(3)} of rsync's literal data (target ≤ 1: ${r2.sent <= rsyncLiteral ? 'met' : 'NOT met'})`);
  console.log(`power-off: the renamed file (${renamed} B) is ${r2.sent - r2.changed >= renamed ? 'copied whole' : 'moved and compared, not copied'}; ` +
    `rsync copies it whole (no --fuzzy)`);
  console.log(`full copy: median ${fullRate.toFixed(1)} MiB/s; cp -a + sync -f median ${rawRate.toFixed(1)} MiB/s (runs ${raws.map((x) => x.toFixed(0)).join(', ')}); ` +
    `rsync -a to the other host + sync -f median ${rsyncRate.toFixed(1)} MiB/s (runs ${rsyncs.map((x) => x.toFixed(0)).join(', ')})`);
  console.log(`full copy ratio: ${(fullRate / rawRate).toFixed(2)} of cp -a (target ≥ 0.8: ${fullRate / rawRate >= 0.8 ? 'met' : 'NOT met'}), ${(fullRate / rsyncRate).toFixed(2)} of rsync -a`);
} finally {
  if (lab) {
    const report = await lab.down();
    if (report.problems.length) console.error(`[bench] lab teardown left: ${report.problems.join('; ')}`);
  }
  fs.rmSync(moduleDir, { recursive: true, force: true });
  console.error(`[bench] total ${((performance.now() - t0) / 1000).toFixed(0)} s`);
}
