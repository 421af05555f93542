/**
 * Every row of the performance table in one run, one benchmark after the other (they share the machine's CPUs and
 * disk: never side by side), each against its alternative measured in the same run. Prints each benchmark's output
 * as it goes, keeps it in `<out>/<row>.log`, and ends with the README's "Measured" table in Markdown: per row, the
 * lines of that benchmark's output that state a ratio against its target. Needs root and the lab (bash
 * scripts/setup.sh).
 *   node dist/bench/all.js [out=bench-results/<UTC time>] [rows=all]   rows: comma-separated names, e.g. fio,failover
 * Takes about 45 minutes on 2 vCPUs with the defaults (the million-file row alone 17; farm and modules 2-3 each).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

interface Row {
  name: string;
  workload: string;
  against: string;
  argv: string[];
}

const here = path.dirname(fileURLToPath(import.meta.url));
const ROWS: Row[] = [
  { name: 'pgbench', workload: 'pgbench TPC-B, scale 10, 1/4/16 clients', against: 'PostgreSQL on the raw disk; PostgreSQL synchronous streaming replication', argv: ['pgbench.js'] },
  { name: 'fio', workload: 'fio seq write 1 MiB, randwrite 4 KiB + fsync, randread 4 KiB, seq read', against: 'the raw backing directory', argv: ['fio.js'] },
  { name: 'reintegration', workload: 'resync: after a clean stop, after a crash (4 KiB writes scattered over 2 GiB), full copy of 2 GiB (1 MiB and 64 MiB files)', against: 'rsync literal data; cp -a + sync; rsync -a to the other host', argv: ['reintegration.js'] },
  { name: 'million', workload: '1,000,000 files, nothing changed, the returning node verifies', against: 'rsync -a --dry-run between the hosts', argv: ['million.js'] },
  { name: 'failover', workload: 'PRIM power-off → client served on the VIP', against: 'keepalived VRRP at equal detection time', argv: ['failover.js'] },
  { name: 'fuse', workload: 'FUSE alone, no replication', against: 'the raw backing directory', argv: ['fuse.js'] },
  { name: 'farm', workload: 'wrk through a farm VIP (on_port) at 1, 2 and 3 UP nodes; farm node power-off → its clients served', against: 'one node serving the same app on its own address; the farm timeout + 1 s', argv: ['farm.js'] },
  { name: 'modules', workload: '64 modules on one daemon (32 mirror, 32 farm), idle: CPU and RSS', against: 'the same daemon with no module', argv: ['modules.js'] },
];

const stamp = new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19);
const out = process.argv[2] ?? path.join('bench-results', stamp);
const wanted = process.argv[3]?.split(',') ?? null;
const unknown = wanted?.filter((w) => !ROWS.some((r) => r.name === w)) ?? [];
if (unknown.length > 0) {
  console.error(`bench/all: unknown row(s) ${unknown.join(', ')}; rows: ${ROWS.map((r) => r.name).join(', ')}`);
  process.exit(2);
}
const rows = ROWS.filter((r) => !wanted || wanted.includes(r.name));
const missing = rows.filter((r) => !fs.existsSync(path.join(here, r.argv[0]!)));
if (missing.length > 0) {
  console.error(`bench/all: ${missing.map((r) => r.argv[0]).join(', ')} not built in ${here}; run npx tsc -p tsconfig.json first`);
  process.exit(2);
}
fs.mkdirSync(out, { recursive: true });

/** Runs one benchmark, echoing its output; resolves with its exit code and stdout. */
function runRow(r: Row): Promise<{ code: number | null; stdout: string; seconds: number }> {
  const t0 = Date.now();
  const log = fs.createWriteStream(path.join(out, `${r.name}.log`));
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(here, r.argv[0]!), ...r.argv.slice(1)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); process.stdout.write(d); log.write(d); });
    child.stderr.on('data', (d: Buffer) => { process.stderr.write(d); log.write(d); });
    child.on('close', (code) => {
      log.end();
      resolve({ code, stdout, seconds: Math.round((Date.now() - t0) / 1000) });
    });
  });
}

/** The lines of a benchmark's output that state its verdicts: the ones that name a target, and `verdict:` lines. */
function verdicts(stdout: string): string[] {
  return stdout.split('\n').map((l) => l.trim()).filter((l) => (/target/i.test(l) && /\d/.test(l)) || l.startsWith('verdict: '))
    .map((l) => l.replace(/^verdict: /, ''));
}

const cell = (s: string) => s.replace(/\|/g, '\\|');
const results: { r: Row; code: number | null; lines: string[]; seconds: number }[] = [];
for (const r of rows) {
  console.log(`\n=== bench/all: ${r.name} (${r.argv.join(' ')}) — load average ${fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);
  const { code, stdout, seconds } = await runRow(r);
  results.push({ r, code, lines: verdicts(stdout), seconds });
}

const md = [
  `Measured by \`node dist/bench/all.js\` on ${new Date().toISOString().slice(0, 10)} (${os.cpus().length} vCPUs, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ` +
    'both lab nodes on one disk; every ratio against its alternative measured in the same run):',
  '',
  '| workload | side by side with | result |',
  '| --- | --- | --- |',
  ...results.map(({ r, code, lines }) => `| ${cell(r.workload)} | ${cell(r.against)} | ${code === 0 ? cell(lines.join('; ') || 'no verdict printed') : `FAILED (exit ${code}; see ${r.name}.log)`} |`),
];
fs.writeFileSync(path.join(out, 'measured.md'), `${md.join('\n')}\n`);
console.log(`\n${md.join('\n')}\n`);
console.log(`bench/all: ${results.map((x) => `${x.r.name} ${x.seconds} s`).join(', ')}; logs and measured.md in ${out}`);
process.exit(results.every((x) => x.code === 0) ? 0 : 1);
