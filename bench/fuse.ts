/**
 * FUSE passthrough overhead against the raw backing directory, in one run (root). The workload runs in a child
 * process (bench/fuse-workload.ts) on the raw directory and through one mount per variant (no-op sink):
 * 256 MiB sequential in 1 MiB writes, 3000 × 4 KiB random writes each followed by fsync, 20000 × 4 KiB writes.
 * The VM this runs on is noisy, so after one discarded warm-up round, raw and the variants alternate for `rounds`
 * rounds and each figure is the median.
 * Ratios are mount / raw, printed after each throughput (1.00 = no loss); latencies are in ms. "server CPU" is the
 * CPU time of this process (the FUSE worker threads) per workload run. Each variant is its own mount; every mount
 * lives for the whole run, idle ones cost nothing.
 *   node dist/bench/fuse.js [rounds=5] [seqMiB=256] [fsyncOps=3000] [plainOps=20000] [--variants=a,b,…]
 * Variants (VARIANTS below; default: default,wt,wc): `default` is mountPassthrough's defaults (write-through with
 * write-behind).
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { mountPassthrough, type MountPassthroughOptions, type PassthroughMount } from '../src/replication/fuse/index.js';

interface Result {
  seqMiBps: number;
  seqWithFsyncMiBps: number;
  fsyncOpsPerS: number;
  fsyncP50: number;
  fsyncP99: number;
  plainP50: number;
  plainP99: number;
  cpuMs: number;
}

type VariantOptions = Omit<MountPassthroughOptions, 'backing' | 'mountpoint'> & { bdi?: Record<string, string> };

const MiB = 1 << 20;
const BDI_UNLIMITED = { strict_limit: '0', max_ratio: '100' };
/**
 * wt = write-through (the kernel sends each write(2) to the server), wc = FUSE_WRITEBACK_CACHE, wbh = write-behind
 * threshold (none unless named), fuse = a plain fuse mount (not fuseblk over a loop device, the default), 256k =
 * max_write, bg64 = max_background 64 / congestion_threshold 48, bdi = the FUSE bdi's dirty limit lifted for that
 * mount through sysfs (strict_limit 0, max_ratio 100; a bench-only experiment, tandem does not do it).
 */
const VARIANTS: Record<string, VariantOptions> = {
  default: {},
  /** the defaults on a plain fuse mount instead of fuseblk over a loop device (no syncfs forwarding) */
  fuse: { syncfs: false },
  wt: { writebackCache: false, writeBehindBytes: 0 },
  'wt+wbh4m': { writebackCache: false, writeBehindBytes: 4 * MiB },
  'wt+wbh8m': { writebackCache: false, writeBehindBytes: 8 * MiB },
  'wt+wbh32m': { writebackCache: false, writeBehindBytes: 32 * MiB },
  'wt+256k': { writebackCache: false, writeBehindBytes: 0, maxWrite: 256 * 1024 },
  'wt+wbh8m+256k': { writebackCache: false, writeBehindBytes: 8 * MiB, maxWrite: 256 * 1024 },
  wc: { writebackCache: true, writeBehindBytes: 0 },
  'wc+wbh8m': { writebackCache: true, writeBehindBytes: 8 * MiB },
  'wc+bg64': { writebackCache: true, writeBehindBytes: 0, maxBackground: 64, congestionThreshold: 48 },
  'wc+bdi': { writebackCache: true, writeBehindBytes: 0, bdi: BDI_UNLIMITED },
  'wc+bdi+wbh8m': { writebackCache: true, writeBehindBytes: 8 * MiB, bdi: BDI_UNLIMITED },
};

const positional = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const flag = (name: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const rounds = Number(positional[0] ?? 5);
const args = positional.slice(1);
const variantNames = (flag('variants') ?? 'default,wt,wc').split(',');
for (const v of variantNames) if (!VARIANTS[v]) throw new Error(`unknown variant ${v}; known: ${Object.keys(VARIANTS).join(', ')}`);
const workload = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fuse-workload.js');

function medians(rs: Result[]): Result {
  const med = (k: keyof Result) => {
    const v = rs.map((r) => r[k]).sort((a, b) => a - b);
    return v[Math.floor(v.length / 2)]!;
  };
  return {
    seqMiBps: med('seqMiBps'), seqWithFsyncMiBps: med('seqWithFsyncMiBps'), fsyncOpsPerS: med('fsyncOpsPerS'),
    fsyncP50: med('fsyncP50'), fsyncP99: med('fsyncP99'), plainP50: med('plainP50'), plainP99: med('plainP99'), cpuMs: med('cpuMs'),
  };
}

function runWorkload(dir: string): Promise<Result> {
  const cpu0 = process.cpuUsage();
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [workload, dir, ...args], { maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      const cpu = process.cpuUsage(cpu0);
      if (err) reject(new Error(`workload failed: ${err.message}\n${stderr}`));
      else resolve({ ...(JSON.parse(stdout.trim().split('\n').pop()!) as Result), cpuMs: (cpu.user + cpu.system) / 1000 });
    });
  });
}

const base = fs.mkdtempSync('/tmp/tandem-fuse-bench-');
const backing = path.join(base, 'backing');
fs.mkdirSync(backing);
const mounts: { name: string; m: PassthroughMount; dir: string; results: Result[] }[] = [];
try {
  for (const name of variantNames) {
    const b = path.join(backing, name);
    const mnt = path.join(base, `mnt-${name}`);
    fs.mkdirSync(b);
    fs.mkdirSync(mnt);
    const m = await mountPassthrough({ ...VARIANTS[name], backing: b, mountpoint: mnt, log: (l) => console.error(`[fuse ${name}] ${l}`) });
    const bdi = `/sys/class/bdi/${m.connection >> 20}:${m.connection & 0xfffff}`;
    for (const [k, val] of Object.entries(VARIANTS[name]!.bdi ?? {})) {
      fs.writeFileSync(`${bdi}/${k}`, val);
      console.error(`[bench] ${bdi}/${k} = ${fs.readFileSync(`${bdi}/${k}`, 'utf8').trim()}`);
    }
    mounts.push({ name, m, dir: mnt, results: [] });
  }
  const raws: Result[] = [];
  // Warm-up, discarded: on this VM the first 256 MiB after a pause runs at a tenth of the speed of the next ones.
  await runWorkload(backing);
  for (const v of mounts) await runWorkload(v.dir);
  for (let i = 0; i < rounds; i++) {
    raws.push(await runWorkload(backing));
    for (const v of mounts) v.results.push(await runWorkload(v.dir));
  }
  const raw = medians(raws);
  const f = (x: number, d: number) => x.toFixed(d);
  console.log(`FUSE passthrough bench, median of ${rounds} alternating rounds, no-op sink; load average ${fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);
  console.log(`${'variant'.padEnd(20)} ${'seq MiB/s'.padStart(16)} ${'seq+fsync MiB/s'.padStart(16)} ${'4K+fsync ops/s'.padStart(16)} ${'p50 ms'.padStart(13)} ${'p99 ms'.padStart(13)} ${'4K p50 ms'.padStart(14)} ${'server CPU ms'.padStart(13)}`);
  const line = (name: string, r: Result) => {
    const ratio = (u: number, w: number) => (r === raw ? '' : ` ${(u / w).toFixed(2)}`);
    console.log([
      name.padEnd(20),
      `${f(r.seqMiBps, 0)}${ratio(r.seqMiBps, raw.seqMiBps)}`.padStart(16),
      `${f(r.seqWithFsyncMiBps, 0)}${ratio(r.seqWithFsyncMiBps, raw.seqWithFsyncMiBps)}`.padStart(16),
      `${f(r.fsyncOpsPerS, 0)}${ratio(r.fsyncOpsPerS, raw.fsyncOpsPerS)}`.padStart(16),
      f(r.fsyncP50, 3).padStart(13), f(r.fsyncP99, 3).padStart(13), f(r.plainP50, 3).padStart(14), f(r.cpuMs, 0).padStart(13),
    ].join(' '));
  };
  line('raw', raw);
  for (const v of mounts) {
    const p = v.m.protocol;
    line(v.name, medians(v.results));
    const s = v.m.stats();
    console.log(`${''.padEnd(20)} flags 0x${p.flags.toString(16)}, max_write ${p.maxWrite}; ${s.requests} requests, ${s.writes} writes, ${(s.bytesWritten / s.writes / 1024).toFixed(0)} KiB/write, ${s.fsyncs} fsyncs, ${s.errors} errors`);
  }
  console.log('ratios are mount / raw (throughput: higher is better)');
  for (const v of mounts) {
    const m = medians(v.results);
    console.log(`verdict: FUSE alone (${v.name}) of raw: 256 MiB + fsync ${(m.seqWithFsyncMiBps / raw.seqWithFsyncMiBps).toFixed(2)}, ` +
      `4 KiB write+fsync ${(m.fsyncOpsPerS / raw.fsyncOpsPerS).toFixed(2)}, 256 MiB without fsync ${(m.seqMiBps / raw.seqMiBps).toFixed(2)}`);
  }
} finally {
  for (const v of mounts) await v.m.unmount();
  // never recurse (synchronously, from the serving process) into a mount that is still there
  const left = fs.readFileSync('/proc/mounts', 'utf8').split('\n').filter((l) => l.split(' ')[1]?.startsWith(base));
  if (left.length) console.error(`still mounted, not removing ${base}:\n${left.join('\n')}`);
  else fs.rmSync(base, { recursive: true, force: true });
}
