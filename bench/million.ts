/**
 * A large tree with nothing changed: the returning node verifies it (issue 9: "1,000,000 files, nothing changed,
 * returning node verifies", target: completes, ≤ 2 min and ≤ the time of `rsync -a --dry-run` between the two hosts).
 * One lab run (root), the bare `bench` module (bench-module.ts):
 *   0. `files` files of a few hundred bytes, `filesPerDir` per directory, two days old, are generated straight into
 *      the PRIM's backing directory before the module's first start, then `cp -a` to the SECOND's (same content, same
 *      times, owners and modes).
 *   1. first start (`prim` on node1, `second` on node2): the SECOND's first sync compares the whole tree (reported
 *      apart: it is not the case the target is about).
 *   2. the case that matters, `rounds` times: power-off of the SECOND, then boot; timed from the boot to the pair
 *      settled (PRIM ready on node1, SECOND ready on node2, polled every 100 ms). The booted node's copy may hold
 *      changes of its own (it was not stopped cleanly), so it compares the trees: size/mtime, blocks of what its own
 *      activity log names. Also shown: the SECOND's own figure (`lastReintegration.ms`: connect to live stream).
 *   3. side by side, on the same trees: an rsync daemon in the PRIM's namespace (read-only module over the PRIM's
 *      backing dir, on its replication LAN address) and `rsync -a --dry-run --delete` from the SECOND's namespace
 *      into the SECOND's backing dir over the lab network; and a local `rsync -a --dry-run --delete` of backing dir to
 *      backing dir. Each rsync is run `rounds` times; the median counts.
 * Peak RSS (VmHWM of /proc/PID/status) of each node's daemon and replication host, reset (clear_refs 5) on the PRIM
 * before the measured case; the booted SECOND's processes are new. The trees are checked identical at the end (a local
 * `rsync -a --dry-run --itemize-changes --delete`: no line).
 * `fuseSample`: how many files the PRIM reads through its FUSE mount after the first start (each must equal its
 * backing file): the tree is served to the application, not only compared.
 *   node dist/bench/million.js [files=1000000] [filesPerDir=1000] [fuseSample=1000] [rounds=1]
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { controlRequest } from '../src/daemon/control.js';
import type { ModuleView, StatusView } from '../src/daemon/views.js';
import type { Lab } from '../src/lab/lab.js';
import { controlSocketOf, createMirrorLab } from '../src/lab/mirror-lab.js';
import { netnsInode, pidsInNetns } from '../src/lab/netns.js';
import { waitForStates } from '../src/lab/postgres.js';
import { benchModule, DATA, MODULE, PRIVATE_DIR } from './bench-module.js';

const run = promisify(execFile);
const files = Number(process.argv[2] ?? 1_000_000);
const filesPerDir = Number(process.argv[3] ?? 1000);
const fuseSample = Number(process.argv[4] ?? 1000);
const rounds = Number(process.argv[5] ?? 1);

const PRIM = 'node1';
const SECOND = 'node2';
const RSYNC_PORT = 8730;
const TIMEOUT_MS = 900_000;
/**
 * the first start block-compares every file (a first sync trusts no time): at 1M files it takes far longer
 * (MILLION_FIRST_START_TIMEOUT_S, default one hour)
 */
const FIRST_START_TIMEOUT_MS = Number(process.env.MILLION_FIRST_START_TIMEOUT_S ?? 3600) * 1000;

const dataOf = (lab: Lab, node: string) => path.join(lab.paths(node).root, DATA);
const secs = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const loadavg = () => fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
function median(xs: number[]): number {
  const v = [...xs].sort((a, b) => a - b);
  const m = Math.floor(v.length / 2);
  return v.length % 2 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
}

/** `files` files of 200-455 bytes in directories of `filesPerDir`, all two days old (directories too). */
function generate(root: string): { dirs: number; bytes: number } {
  const old = Date.now() / 1000 - 2 * 86_400;
  const body = Buffer.alloc(455);
  for (let i = 0; i < body.length; i++) body[i] = 97 + (i % 26);
  let bytes = 0;
  const dirs = Math.ceil(files / filesPerDir);
  for (let d = 0; d < dirs; d++) {
    const dir = path.join(root, `d${String(d).padStart(5, '0')}`);
    fs.mkdirSync(dir);
    for (let f = d * filesPerDir; f < Math.min(files, (d + 1) * filesPerDir); f++) {
      const file = path.join(dir, `f${String(f).padStart(7, '0')}`);
      const n = 200 + (f % 256);
      body.writeUInt32LE(f, 0); // every file its own content
      fs.writeFileSync(file, body.subarray(0, n));
      fs.utimesSync(file, old, old);
      bytes += n;
    }
    fs.utimesSync(dir, old, old);
  }
  fs.utimesSync(root, old, old);
  return { dirs, bytes };
}

async function moduleView(lab: Lab, node: string): Promise<ModuleView> {
  const v = (await controlRequest(controlSocketOf(lab, node), 'status', MODULE, undefined, { timeoutMs: 5000 })) as StatusView;
  return v.modules[0]!;
}

/** Waits (polling every 100 ms) for PRIM ready on node1 and SECOND ready on node2; returns the wait in ms. */
async function settled(lab: Lab, t0: number, timeoutMs = TIMEOUT_MS): Promise<number> {
  await lab.waitFor(`${PRIM} PRIM and ${SECOND} SECOND`, async () => {
    const [p, s] = await Promise.all([moduleView(lab, PRIM).catch(() => null), moduleView(lab, SECOND).catch(() => null)]);
    return p?.state === 'PRIM' && p.ready && s?.state === 'SECOND' && s.ready;
  }, timeoutMs, 100);
  return performance.now() - t0;
}

/** The node's tandem processes (daemon, replication host) by pid and role. */
function tandemPids(lab: Lab, node: string): { pid: number; what: string }[] {
  const ino = netnsInode(lab.ns(node));
  if (ino === undefined) return [];
  const daemon = lab.daemonPid(node);
  return pidsInNetns(new Set([ino])).flatMap((pid) => {
    if (pid === daemon) return [{ pid, what: 'daemon' }];
    try {
      const argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      return argv.includes('__replication-host') ? [{ pid, what: 'replication host' }] : [];
    } catch {
      return [];
    }
  });
}

/** Peak RSS (VmHWM) in MiB of the node's tandem processes. */
function peakRss(lab: Lab, node: string): string {
  const parts = tandemPids(lab, node).map(({ pid, what }) => {
    try {
      const kb = Number(/VmHWM:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
      return `${what} ${(kb / 1024).toFixed(0)} MiB`;
    } catch {
      return `${what} ?`;
    }
  });
  return parts.length ? parts.join(', ') : 'no process';
}

function resetPeakRss(lab: Lab, node: string): void {
  for (const { pid } of tandemPids(lab, node)) {
    try {
      fs.writeFileSync(`/proc/${pid}/clear_refs`, '5');
    } catch {
      // gone meanwhile
    }
  }
}

/** Runs argv (a host argv or a local one) under `/usr/bin/time -f %M`: wall ms and peak RSS (MiB) of rsync's side. */
async function timed(argv: string[]): Promise<{ ms: number; rssMiB: number; stdout: string }> {
  const t0 = performance.now();
  const r = await run('/usr/bin/time', ['-f', 'maxrss_kb=%M', ...argv], { maxBuffer: 256 << 20 });
  const ms = performance.now() - t0;
  const kb = Number(/maxrss_kb=(\d+)/.exec(r.stderr)?.[1] ?? NaN);
  return { ms, rssMiB: kb / 1024, stdout: r.stdout };
}

const t0 = performance.now();
const module = benchModule();
let lab: Lab | null = null;
let rsyncd: ChildProcess | null = null;
try {
  lab = await createMirrorLab({ pulse: '200ms', timeout: '1s', module, spec: { privateDirs: [PRIVATE_DIR] } });
  const l = lab;
  const prim = dataOf(l, PRIM);
  const second = dataOf(l, SECOND);

  // 0. the tree, before the module's first start
  let t = performance.now();
  fs.mkdirSync(prim, { recursive: true });
  const g = generate(prim);
  const genMs = performance.now() - t;
  t = performance.now();
  fs.rmSync(second, { recursive: true, force: true });
  await run('cp', ['-a', prim, second]);
  console.log(`tree: ${files} files in ${g.dirs} dirs, ${(g.bytes / 2 ** 20).toFixed(0)} MiB; generated in ${secs(genMs)}, cp -a in ${secs(performance.now() - t)}; load average ${loadavg()}`);

  // 1. first start: the SECOND's first sync compares everything
  for (const n of [PRIM, SECOND]) await l.cli(n, ['start', '-m', MODULE]);
  await waitForStates(l, { [PRIM]: 'WAIT', [SECOND]: 'WAIT' }, 120_000, MODULE);
  await l.cli(PRIM, ['prim', '-m', MODULE]);
  await waitForStates(l, { [PRIM]: 'ALONE' }, 120_000, MODULE);
  t = performance.now();
  await l.cli(SECOND, ['second', '-m', MODULE]);
  const firstMs = await settled(l, t, FIRST_START_TIMEOUT_MS);
  const first = (await moduleView(l, SECOND)).replication?.lastReintegration;
  console.log(`first start (second → SECOND): ${secs(firstMs)}; SECOND's reintegration ${first?.ms} ms, ${first?.bytes} B copied, mode ${first?.mode}; ` +
    `peak RSS ${PRIM}: ${peakRss(l, PRIM)}; ${SECOND}: ${peakRss(l, SECOND)}`);

  // the application's view: a sample of files read through the PRIM's FUSE mount equals the backing files
  if (fuseSample > 0) {
    const step = Math.max(1, Math.floor(files / fuseSample));
    const sample = Array.from({ length: Math.min(fuseSample, files) }, (_, k) => {
      const f = k * step;
      return `d${String(Math.floor(f / filesPerDir)).padStart(5, '0')}/f${String(f).padStart(7, '0')}`;
    });
    const reader = `const fs=require('fs'),c=require('crypto');const h=c.createHash('sha256');` +
      `for(const p of JSON.parse(fs.readFileSync(0,'utf8')))h.update(fs.readFileSync(p));console.log(h.digest('hex'))`;
    t = performance.now();
    const viaFuse = (await l.exec(PRIM, [process.execPath, '-e', reader], { input: JSON.stringify(sample), cwd: DATA, timeoutMs: TIMEOUT_MS })).stdout.trim();
    const fuseMs = performance.now() - t;
    const h = (await import('node:crypto')).createHash('sha256');
    for (const p of sample) h.update(fs.readFileSync(path.join(prim, p)));
    if (h.digest('hex') !== viaFuse) throw new Error('files read through the PRIM\'s FUSE mount differ from the backing files');
    console.log(`${sample.length} files read through the PRIM's FUSE mount in ${secs(fuseMs)}: equal to the backing files`);
  }

  // 2. power-off and boot of the SECOND, nothing changed
  const tandemMs: number[] = [];
  const secondMs: number[] = [];
  for (let r = 0; r < rounds; r++) {
    await l.poweroff(SECOND);
    await waitForStates(l, { [PRIM]: 'ALONE' }, 60_000, MODULE);
    await l.waitFor(`${PRIM} recording changes`, async () => (await moduleView(l, PRIM)).replication?.mode === 'recording', 30_000, 100);
    resetPeakRss(l, PRIM);
    t = performance.now();
    await l.boot(SECOND);
    tandemMs.push(await settled(l, t));
    const s = (await moduleView(l, SECOND)).replication?.lastReintegration;
    secondMs.push(s?.ms ?? NaN);
    console.log(`power-off + boot ${r + 1}: boot → PRIM/SECOND ${secs(tandemMs.at(-1)!)}; SECOND's reintegration ${s?.ms} ms, ${s?.bytes} B copied, ` +
      `mode ${s?.mode}, ${s?.passes} passes; peak RSS ${PRIM}: ${peakRss(l, PRIM)}; ${SECOND}: ${peakRss(l, SECOND)}; load average ${loadavg()}`);
  }

  // where the last rejoin's time went: the booted node's module log since its boot
  const log = fs.readFileSync(path.join(l.paths(SECOND).home, 'log', `${MODULE}.log`), 'utf8').split('\n');
  const since = log.map((x, k) => (/starting module/.test(x) ? k : -1)).filter((k) => k >= 0).at(-1) ?? 0;
  for (const x of log.slice(since).filter((x) => /starting module|peer .* seen|becoming|host of .* started|reintegration from|→ SECOND/.test(x))) {
    console.log(`  ${SECOND}: ${x}`);
  }

  // 3. rsync side by side
  const conf = path.join(l.dir, 'rsyncd.conf');
  fs.writeFileSync(conf, `use chroot = no\nuid = root\ngid = root\npid file = ${path.join(l.dir, 'rsyncd.pid')}\n[data]\n  path = ${prim}\n  read only = yes\n`);
  const addr = l.addr(PRIM, 'replication');
  const [file, ...args] = l.hostArgv(PRIM, ['rsync', '--daemon', '--no-detach', `--config=${conf}`, `--address=${addr}`, `--port=${RSYNC_PORT}`]);
  rsyncd = spawn(file!, args, { stdio: 'ignore' });
  await l.waitFor('rsync daemon listening', async () =>
    (await l.exec(SECOND, ['rsync', `rsync://${addr}:${RSYNC_PORT}/`], { reject: false, timeoutMs: 5000 })).code === 0, 15_000, 100);
  const net: { ms: number; rssMiB: number }[] = [];
  const local: { ms: number; rssMiB: number }[] = [];
  for (let r = 0; r < rounds; r++) {
    net.push(await timed(l.hostArgv(SECOND, ['rsync', '-a', '--dry-run', '--delete', `rsync://${addr}:${RSYNC_PORT}/data/`, `${second}/`])));
    local.push(await timed(['rsync', '-a', '--dry-run', '--delete', `${prim}/`, `${second}/`]));
    console.log(`rsync -a --dry-run ${r + 1}: over the lab network ${secs(net.at(-1)!.ms)} (client peak RSS ${net.at(-1)!.rssMiB.toFixed(0)} MiB), ` +
      `local ${secs(local.at(-1)!.ms)} (peak RSS ${local.at(-1)!.rssMiB.toFixed(0)} MiB)`);
  }
  const diff = (await run('rsync', ['-a', '--dry-run', '--delete', '--itemize-changes', `${prim}/`, `${second}/`], { maxBuffer: 256 << 20 })).stdout.trim();
  if (diff) throw new Error(`the copies differ: ${diff.split('\n').slice(0, 10).join('; ')}`);

  const tm = median(tandemMs);
  const nm = median(net.map((x) => x.ms));
  const lm = median(local.map((x) => x.ms));
  console.log(`\nmillion bench: ${files} files, ${filesPerDir} per dir; ${rounds} round(s); load average ${loadavg()}`);
  console.log(`  first start (full comparison): ${secs(firstMs)}`);
  console.log(`  returning node verifies (boot → PRIM/SECOND, median): ${secs(tm)} (SECOND's reintegration ${secs(median(secondMs))})`);
  console.log(`  rsync -a --dry-run over the lab network: ${secs(nm)}; local: ${secs(lm)}`);
  console.log(`  ratio tandem/rsync network ${(tm / nm).toFixed(2)}, tandem/rsync local ${(tm / lm).toFixed(2)}; ` +
    `target ≤ 120 s: ${tm <= 120_000 ? 'met' : 'NOT met'}, ≤ rsync's time: ${tm <= nm ? 'met' : 'NOT met'}`);
} finally {
  if (rsyncd?.pid !== undefined) {
    rsyncd.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 200));
  }
  if (lab) {
    const report = await lab.down();
    if (report.problems.length) console.error(`[bench] lab teardown left: ${report.problems.join('; ')}`);
  }
  fs.rmSync(module.dir, { recursive: true, force: true });
  console.error(`[bench] total ${((performance.now() - t0) / 1000).toFixed(0)} s`);
}
