/**
 * FUSE passthrough overhead against the raw backing directory, in one run (root). The workload runs in a child
 * process (bench/fuse-workload.ts) once on the raw directory and once through the mount (no-op sink):
 * 256 MiB sequential in 1 MiB writes, 3000 × 4 KiB random writes each followed by fsync, 20000 × 4 KiB writes.
 * The VM this runs on is noisy, so after one discarded warm-up round, raw and mount runs alternate for `rounds`
 * rounds and each figure is the median.
 * Ratios are mount / raw: for throughput 1.00 = no loss, for latency 1.00 = no added latency.
 *   node dist/bench/fuse.js [rounds=5] [seqMiB=256] [fsyncOps=3000] [plainOps=20000]
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { mountPassthrough } from '../src/replication/fuse/index.js';

interface Result {
  seqMiBps: number;
  seqWithFsyncMiBps: number;
  fsyncOpsPerS: number;
  fsyncP50: number;
  fsyncP99: number;
  plainP50: number;
  plainP99: number;
}

const rounds = Number(process.argv[2] ?? 5);
const args = process.argv.slice(3);
const workload = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fuse-workload.js');

function medians(rs: Result[]): Result {
  const med = (k: keyof Result) => {
    const v = rs.map((r) => r[k]).sort((a, b) => a - b);
    return v[Math.floor(v.length / 2)]!;
  };
  return {
    seqMiBps: med('seqMiBps'), seqWithFsyncMiBps: med('seqWithFsyncMiBps'), fsyncOpsPerS: med('fsyncOpsPerS'),
    fsyncP50: med('fsyncP50'), fsyncP99: med('fsyncP99'), plainP50: med('plainP50'), plainP99: med('plainP99'),
  };
}

function runWorkload(dir: string): Promise<Result> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [workload, dir, ...args], { maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`workload failed: ${err.message}\n${stderr}`));
      else resolve(JSON.parse(stdout.trim().split('\n').pop()!) as Result);
    });
  });
}

const base = fs.mkdtempSync('/tmp/tandem-fuse-bench-');
const backing = path.join(base, 'backing');
const mnt = path.join(base, 'mnt');
fs.mkdirSync(backing);
fs.mkdirSync(mnt);
let m: Awaited<ReturnType<typeof mountPassthrough>> | null = null;
try {
  m = await mountPassthrough({ backing, mountpoint: mnt, log: (l) => console.error(`[fuse] ${l}`) });
  const raws: Result[] = [];
  const fuses: Result[] = [];
  // Warm-up, discarded: on this VM the first 256 MiB after a pause runs at a tenth of the speed of the next ones.
  await runWorkload(backing);
  await runWorkload(mnt);
  for (let i = 0; i < rounds; i++) {
    raws.push(await runWorkload(backing));
    fuses.push(await runWorkload(mnt));
  }
  const raw = medians(raws);
  const fuse = medians(fuses);
  const stats = m.stats();
  const f = (x: number, d = 1) => x.toFixed(d);
  const row = (name: string, r: number, u: number, unit: string, d = 1) =>
    console.log(`${name.padEnd(34)} raw ${f(r, d).padStart(9)} ${unit.padEnd(5)} fuse ${f(u, d).padStart(9)} ${unit.padEnd(5)} ratio ${(u / r).toFixed(2)}`);
  console.log(`FUSE passthrough bench, median of ${rounds} alternating rounds (FUSE 7.${m.protocol.minor}, max_write ${m.protocol.maxWrite}, no-op sink)`);
  row('seq write 1 MiB (no fsync)', raw.seqMiBps, fuse.seqMiBps, 'MiB/s');
  row('seq write 1 MiB + final fsync', raw.seqWithFsyncMiBps, fuse.seqWithFsyncMiBps, 'MiB/s');
  row('4 KiB write + fsync', raw.fsyncOpsPerS, fuse.fsyncOpsPerS, 'ops/s', 0);
  row('4 KiB write + fsync p50', raw.fsyncP50, fuse.fsyncP50, 'ms', 3);
  row('4 KiB write + fsync p99', raw.fsyncP99, fuse.fsyncP99, 'ms', 3);
  row('4 KiB write (no fsync) p50', raw.plainP50, fuse.plainP50, 'ms', 3);
  row('4 KiB write (no fsync) p99', raw.plainP99, fuse.plainP99, 'ms', 3);
  console.log(`server: ${stats.requests} requests, ${stats.writes} writes, ${stats.fsyncs} fsyncs, ${stats.errors} errors`);
} finally {
  await m?.unmount();
  fs.rmSync(base, { recursive: true, force: true });
}
