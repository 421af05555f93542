/**
 * fio (the Debian package, job files in bench/fio/) through a replicated directory against the raw disk, in one lab
 * run (root; scripts/setup.sh installs fio). The module is the bare `bench` module (bench/bench-module.ts). Setups:
 *   raw          node1's private dir /srv/bench/raw (not replicated, same disk as the backing): THE BASELINE
 *   alone        the module ALONE on node1 (node2 stopped): through the FUSE interception into the change record
 *   prim+second  PRIM on node1, SECOND on node2, async="none": every fsync durable on both nodes
 * Jobs, in this order on one file per setup: seqwrite (1 MiB, no fsync), randwrite-fsync (4 KiB, fsync after each),
 * seqread (1 MiB) and randread (4 KiB), each read once cold (`sync` and drop_caches first: the lab nodes share this
 * kernel's page cache) and once warm (the same job again at once). The VM is noisy (2 cores, shared): the setups
 * alternate inside each round and each figure is the median of the rounds; ratios are setup / raw (higher is better).
 *   node dist/bench/fio.js [rounds=3] [sizeMiB=256] [seconds=10]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { controlRequest } from '../src/daemon/control.js';
import type { ModuleView, StatusView } from '../src/daemon/views.js';
import type { Lab } from '../src/lab/lab.js';
import { controlSocketOf, createMirrorLab } from '../src/lab/mirror-lab.js';
import { startPair, waitForStates } from '../src/lab/postgres.js';
import { benchModule, DATA, MODULE, PRIVATE_DIR } from './bench-module.js';

const rounds = Number(process.argv[2] ?? 3);
const sizeMiB = Number(process.argv[3] ?? 256);
const seconds = Number(process.argv[4] ?? 10);
const PRIM = 'node1';
const SECOND = 'node2';
const JOBS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bench/fio'); // dist/bench → bench/fio
const SETUPS = ['raw', 'alone', 'prim+second'] as const;
type Setup = (typeof SETUPS)[number];
const METRICS = ['seqwrite MiB/s', 'randwrite+fsync IOPS', 'seqread cold MiB/s', 'seqread warm MiB/s', 'randread cold IOPS', 'randread warm IOPS'] as const;
type Metric = (typeof METRICS)[number];

const loadavg = () => os.loadavg().map((x) => x.toFixed(2)).join(' ');
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

interface FioJob { read: { bw_bytes: number; iops: number }; write: { bw_bytes: number; iops: number } }

async function fio(lab: Lab, job: string, file: string): Promise<FioJob> {
  const r = await lab.exec(PRIM, ['fio', '--output-format=json', path.join(JOBS, `${job}.fio`)], {
    env: { FILE: file, SIZE: `${sizeMiB}M`, RUNTIME: `${seconds}s` }, timeoutMs: 600_000,
  });
  const out = JSON.parse(r.stdout.slice(r.stdout.indexOf('{'))) as { jobs: FioJob[] };
  return out.jobs[0]!;
}

async function dropCaches(): Promise<void> {
  fs.writeFileSync('/proc/sys/vm/drop_caches', '3\n');
}

async function moduleView(lab: Lab, node: string): Promise<ModuleView> {
  const v = (await controlRequest(controlSocketOf(lab, node), 'status', MODULE, undefined, { timeoutMs: 5000 })) as StatusView;
  return v.modules[0]!;
}

/** Puts the cluster in the shape `setup` needs (raw runs in whatever shape it is). */
async function shape(lab: Lab, setup: Setup): Promise<void> {
  const second = (await moduleView(lab, SECOND)).state;
  if (setup === 'alone' && second !== 'STOP') {
    await lab.cli(SECOND, ['stop', '-m', MODULE]);
    await waitForStates(lab, { [PRIM]: 'ALONE', [SECOND]: 'STOP' }, 60_000, MODULE);
    await lab.waitFor(`${PRIM} recording changes`, async () => (await moduleView(lab, PRIM)).replication?.mode === 'recording', 30_000, 100);
  }
  if (setup === 'prim+second' && second !== 'SECOND') {
    await lab.cli(SECOND, ['start', '-m', MODULE]);
    await waitForStates(lab, { [PRIM]: 'PRIM', [SECOND]: 'SECOND' }, 120_000, MODULE);
    await lab.waitFor(`${PRIM} replicating live`, async () => (await moduleView(lab, PRIM)).replication?.mode === 'live', 60_000, 100);
  }
}

async function runSetup(lab: Lab, setup: Setup): Promise<Record<Metric, number>> {
  await shape(lab, setup);
  const file = setup === 'raw' ? `${PRIVATE_DIR}/raw/fio.dat` : `${DATA}/fio.dat`;
  const MiBps = (b: number) => b / (1 << 20);
  const w = await fio(lab, 'seqwrite', file);
  const f = await fio(lab, 'randwrite-fsync', file);
  await lab.exec(PRIM, ['sync']);
  await dropCaches();
  const sc = await fio(lab, 'seqread', file);
  const sw = await fio(lab, 'seqread', file);
  await dropCaches();
  const rc = await fio(lab, 'randread', file);
  const rw = await fio(lab, 'randread', file);
  return {
    'seqwrite MiB/s': MiBps(w.write.bw_bytes), 'randwrite+fsync IOPS': f.write.iops,
    'seqread cold MiB/s': MiBps(sc.read.bw_bytes), 'seqread warm MiB/s': MiBps(sw.read.bw_bytes),
    'randread cold IOPS': rc.read.iops, 'randread warm IOPS': rw.read.iops,
  };
}

const module = benchModule();
let lab: Lab | null = null;
try {
  lab = await createMirrorLab({ pulse: '200ms', timeout: '1s', module, spec: { privateDirs: [PRIVATE_DIR] } });
  const l = lab;
  await startPair(l, PRIM, SECOND, 120_000, MODULE);
  await l.exec(PRIM, ['mkdir', '-p', `${PRIVATE_DIR}/raw`]);
  console.log(`[bench] fio ${sizeMiB} MiB per file, ${seconds} s per timed job; load average ${loadavg()}`);
  const got: Record<Setup, Record<Metric, number>[]> = { raw: [], alone: [], 'prim+second': [] };
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? SETUPS : [...SETUPS].reverse();
    for (const s of order) {
      const m = await runSetup(l, s);
      got[s].push(m);
      console.log(`round ${r + 1} ${s.padEnd(12)} ${METRICS.map((k) => `${k} ${m[k].toFixed(0)}`).join(', ')} (load ${loadavg()})`);
    }
  }
  console.log(`\nfio through the replicated dir vs the raw disk, median of ${rounds} alternating rounds; ${sizeMiB} MiB; load average ${loadavg()}; ${os.cpus().length} CPUs`);
  console.log(`${'metric'.padEnd(22)} ${SETUPS.map((s) => s.padStart(12)).join(' ')}   alone/raw  prim+second/raw`);
  const med = (s: Setup, k: Metric) => median(got[s].map((m) => m[k]));
  for (const k of METRICS) {
    const raw = med('raw', k);
    console.log(`${k.padEnd(22)} ${SETUPS.map((s) => med(s, k).toFixed(0).padStart(12)).join(' ')}   ${(med('alone', k) / raw).toFixed(2).padStart(9)}  ${(med('prim+second', k) / raw).toFixed(2).padStart(15)}`);
  }
  const ratio = (s: Setup, k: Metric) => med(s, k) / med('raw', k);
  const targets: [string, boolean][] = [
    ['seq read and randread ≥ 0.8 of raw, cold and warm (ALONE and PRIM+SECOND)', (['alone', 'prim+second'] as const).every((s) =>
      (['seqread cold MiB/s', 'seqread warm MiB/s', 'randread cold IOPS', 'randread warm IOPS'] as const).every((k) => ratio(s, k) >= 0.8))],
    ['randwrite+fsync PRIM+SECOND ≥ 0.5 of raw', ratio('prim+second', 'randwrite+fsync IOPS') >= 0.5],
    ['seq write without fsync ≥ 0.5 of raw (ALONE and PRIM+SECOND)', ratio('alone', 'seqwrite MiB/s') >= 0.5 && ratio('prim+second', 'seqwrite MiB/s') >= 0.5],
  ];
  for (const [t, ok] of targets) console.log(`target: ${t}: ${ok ? 'met' : 'NOT met'}`);
  const both = (k: Metric) => `${ratio('alone', k).toFixed(2)} / ${ratio('prim+second', k).toFixed(2)}`;
  console.log(`verdict: of raw, ALONE / PRIM+SECOND: seq read cold ${both('seqread cold MiB/s')}, warm ${both('seqread warm MiB/s')}; ` +
    `randread cold ${both('randread cold IOPS')}, warm ${both('randread warm IOPS')}; randwrite+fsync ${both('randwrite+fsync IOPS')} ` +
    `(raw ${med('raw', 'randwrite+fsync IOPS').toFixed(0)} IOPS); seq write without fsync ${both('seqwrite MiB/s')}`);
} finally {
  await lab?.down();
  fs.rmSync(module.dir, { recursive: true, force: true });
}
