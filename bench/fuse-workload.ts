/**
 * The FUSE bench workload, run as a child process of bench/fuse.ts (synchronous I/O is fine here: this process does
 * not serve the mount). Prints one JSON line.
 *   node dist/bench/fuse-workload.js <dir> [seqMiB=256] [fsyncOps=3000] [plainOps=20000]
 */
import fs from 'node:fs';
import path from 'node:path';

const [dir, seqArg, fsyncArg, plainArg] = process.argv.slice(2);
if (!dir) {
  console.error('usage: fuse-workload <dir> [seqMiB] [fsyncOps] [plainOps]');
  process.exit(2);
}
const seqMiB = Number(seqArg ?? 256);
const fsyncOps = Number(fsyncArg ?? 3000);
const plainOps = Number(plainArg ?? 20000);

const ms = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e6;
function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}
// xorshift32: the same offsets on every target
let seed = 0x9e3779b9;
function rnd(): number {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return seed >>> 0;
}

// 1. sequential: seqMiB × 1 MiB writes, then fsync. An untimed write of the same size comes first: on the VM this
// was measured on, freed guest memory goes back to the hypervisor, and the first run that needs it again pays
// for faulting it in (raw runs swung from 400 to 4600 MiB/s depending on what ran before).
const mib = Buffer.alloc(1 << 20, 0x5a);
const seqFile = path.join(dir, 'seq.bin');
let fd = fs.openSync(seqFile, 'w');
for (let i = 0; i < seqMiB; i++) fs.writeSync(fd, mib, 0, mib.length, i << 20);
fs.closeSync(fd);
fs.unlinkSync(seqFile);
let t0 = process.hrtime.bigint();
fd = fs.openSync(seqFile, 'w');
for (let i = 0; i < seqMiB; i++) fs.writeSync(fd, mib, 0, mib.length, i << 20);
const seqWriteMs = ms(t0);
fs.fsyncSync(fd);
const seqTotalMs = ms(t0);
fs.closeSync(fd);
fs.unlinkSync(seqFile);

// 2. 4 KiB random writes, each followed by fsync, in a 64 MiB file
const page = Buffer.alloc(4096, 0xa5);
const rndFile = path.join(dir, 'rnd.bin');
const span = 64 << 20;
fd = fs.openSync(rndFile, 'w+');
fs.ftruncateSync(fd, span);
fs.fsyncSync(fd);
const lat: number[] = [];
t0 = process.hrtime.bigint();
for (let i = 0; i < fsyncOps; i++) {
  const t = process.hrtime.bigint();
  fs.writeSync(fd, page, 0, 4096, (rnd() % (span / 4096)) * 4096);
  fs.fsyncSync(fd);
  lat.push(ms(t));
}
const fsyncTotalMs = ms(t0);
lat.sort((a, b) => a - b);

// 3. 4 KiB random writes without fsync
const plain: number[] = [];
for (let i = 0; i < plainOps; i++) {
  const t = process.hrtime.bigint();
  fs.writeSync(fd, page, 0, 4096, (rnd() % (span / 4096)) * 4096);
  plain.push(ms(t));
}
plain.sort((a, b) => a - b);
fs.closeSync(fd);
fs.unlinkSync(rndFile);

console.log(JSON.stringify({
  seqMiBps: seqMiB / (seqWriteMs / 1000),
  seqWithFsyncMiBps: seqMiB / (seqTotalMs / 1000),
  fsyncOpsPerS: fsyncOps / (fsyncTotalMs / 1000),
  fsyncP50: pct(lat, 50),
  fsyncP99: pct(lat, 99),
  plainP50: pct(plain, 50),
  plainP99: pct(plain, 99),
}));
