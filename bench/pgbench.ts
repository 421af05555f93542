/**
 * PostgreSQL throughput under tandem against a raw server, in one run (root, PostgreSQL installed). pgbench's default
 * TPC-B-like script, the same parameters everywhere, `pgbench -i` and a CHECKPOINT before every run:
 *   raw (lab)    a plain server on node1's own disk (/srv/pg/raw, not replicated), on node1's address, port 5433:
 *                THE BASELINE. The client goes through the same lab network as for the module, so the only difference
 *                with the rows below is tandem.
 *   raw (host)   a plain server in a temp dir on this machine, 127.0.0.1 (no lab network, for reference).
 *   alone        the lab's postgres module ALONE on node1 (node2 stopped): every change goes through the FUSE
 *                interception into the change record; pgbench from `client` through the VIP.
 *   prim+second  the module PRIM on node1, SECOND on node2, synchronous replication (async="none"), same client.
 * The VM is noisy (2 cores, shared), so the setups alternate inside each round and each figure is the median.
 * The target (the issue) is prim+second ≥ 0.60 × raw.
 *   node dist/bench/pgbench.js [rounds=3] [seconds=20] [scale=5] [clients=2]
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import type { Lab } from '../src/lab/lab.js';
import {
  createPostgresLab, parsePgbench, PG_DB, PG_MODULE, PG_PORT, PG_VIP, PG_PASSWORD, PG_PRIVATE_DIR, PG_USER, pgTool, runPgbench, startPair, waitForStates,
  type PgbenchResult, type PgTarget,
} from '../src/lab/postgres.js';

const run = promisify(execFile);
const rounds = Number(process.argv[2] ?? 3);
const seconds = Number(process.argv[3] ?? 20);
const scale = Number(process.argv[4] ?? 5);
const clients = Number(process.argv[5] ?? 2);
const JOBS = 1;
const RAW_LAB_PORT = 5433;
const RAW_LAB_DATA = `${PG_PRIVATE_DIR}/raw`;
/** the raw server's Unix sockets and log */
const RAW_LAB_RUN = `${PG_PRIVATE_DIR}/raw-run`;
/** the same initdb options as examples/postgres/bin/start_prim */
const INITDB = ['--data-checksums', '--encoding=UTF8', '--no-locale', '--username=postgres', '--auth-local=peer', '--auth-host=scram-sha-256'];

type Setup = 'raw (lab)' | 'raw (host)' | 'alone' | 'prim+second';
const SETUPS: Setup[] = ['raw (lab)', 'raw (host)', 'alone', 'prim+second'];

const asPg = (argv: string[]) => ['runuser', '-u', 'postgres', '--', ...argv];
/** pg_hba.conf of a raw server: what start_prim writes (peer locally, md5 for the benchmark role from `nets`). */
const hba = (nets: string[]) => ['local all all peer', ...nets.map((n) => `host ${PG_DB} ${PG_USER} ${n} md5`)].join('\n') + '\n';
/** The benchmark role and database, as start_prim creates them (two statements: CREATE DATABASE runs alone). */
const CREATE_ROLE = [`CREATE ROLE ${PG_USER} LOGIN PASSWORD '${PG_PASSWORD}'`, `CREATE DATABASE ${PG_DB} OWNER ${PG_USER}`];

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** A plain server on this machine: initdb in a temp dir, listening on 127.0.0.1 only. `stop` removes everything. */
async function startHostRaw(): Promise<{ port: number; sockets: string; stop: () => Promise<void> }> {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-pgbench-'));
  const data = path.join(base, 'data');
  const sockets = path.join(base, 'sockets');
  let started = false;
  const stop = async () => {
    if (started) await pgAsUser([pgTool('pg_ctl'), 'stop', '-D', data, '-m', 'fast', '-w', '-s']).catch((e: Error) => console.error(`[raw host] pg_ctl stop: ${e.message}`));
    started = false;
    fs.rmSync(base, { recursive: true, force: true });
  };
  try {
    fs.mkdirSync(sockets);
    await run('chown', ['-R', 'postgres:postgres', base]);
    const port = await freePort();
    await pgAsUser([pgTool('initdb'), '-D', data, ...INITDB]);
    fs.writeFileSync(path.join(data, 'pg_hba.conf'), hba(['127.0.0.1/32']));
    started = true;
    await pgAsUser([pgTool('pg_ctl'), 'start', '-D', data, '-l', path.join(base, 'server.log'), '-w', '-s',
      '-o', `-c listen_addresses=127.0.0.1 -c port=${port} -c unix_socket_directories='${sockets}'`]);
    for (const sql of CREATE_ROLE) await pgAsUser([pgTool('psql'), '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-h', sockets, '-p', String(port), '-d', 'postgres', '-c', sql]);
    return { port, sockets, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

async function pgAsUser(argv: string[]): Promise<string> {
  const [file, ...args] = asPg(argv);
  return (await run(file!, args, { maxBuffer: 16 << 20, cwd: '/' })).stdout;
}

/** A plain server on node1's own disk (not replicated), on node1's address and RAW_LAB_PORT. */
async function startLabRaw(lab: Lab, node: string): Promise<void> {
  const addr = lab.addr(node);
  await lab.exec(node, ['sh', '-c', `mkdir -p ${RAW_LAB_DATA} ${RAW_LAB_RUN} && chown postgres:postgres ${RAW_LAB_DATA} ${RAW_LAB_RUN} && chmod 0700 ${RAW_LAB_DATA}`]);
  await lab.exec(node, asPg([pgTool('initdb'), '-D', RAW_LAB_DATA, ...INITDB]), { timeoutMs: 120_000, cwd: '/' });
  await lab.exec(node, ['sh', '-c', `cat > ${RAW_LAB_DATA}/pg_hba.conf`], { input: hba(['198.51.100.0/24']) });
  await lab.exec(node, asPg([pgTool('pg_ctl'), 'start', '-D', RAW_LAB_DATA, '-l', `${RAW_LAB_RUN}/server.log`, '-w', '-s',
    '-o', `-c listen_addresses=${addr} -c port=${RAW_LAB_PORT} -c unix_socket_directories='${RAW_LAB_RUN}'`]), { timeoutMs: 120_000, cwd: '/' });
  for (const sql of CREATE_ROLE) {
    await lab.exec(node, asPg([pgTool('psql'), '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-h', RAW_LAB_RUN, '-p', String(RAW_LAB_PORT), '-d', 'postgres', '-c', sql]), { cwd: '/' });
  }
}

async function stopLabRaw(lab: Lab, node: string): Promise<void> {
  await lab.exec(node, asPg([pgTool('pg_ctl'), 'stop', '-D', RAW_LAB_DATA, '-m', 'fast', '-w', '-s']), { reject: false, timeoutMs: 60_000, cwd: '/' });
}

const pgbenchArgs = () => ['-n', '-c', String(clients), '-j', String(Math.min(JOBS, clients)), '-T', String(seconds)];

/** `pgbench -i`, CHECKPOINT (as postgres, through the server's socket dir `sockets` on `node`), then the timed run. */
async function labRun(lab: Lab, target: PgTarget, node: string, sockets: string, port: number): Promise<PgbenchResult> {
  const env = { PGPASSWORD: PG_PASSWORD };
  await lab.exec('client', [pgTool('pgbench'), '-i', '-q', '-s', String(scale), '-h', target.addr!, '-p', String(target.port), '-U', PG_USER, PG_DB], { env, timeoutMs: 600_000 });
  await lab.exec(node, asPg([pgTool('psql'), '-X', '-q', '-h', sockets, '-p', String(port), '-d', 'postgres', '-c', 'CHECKPOINT']), { timeoutMs: 300_000, cwd: '/' });
  return runPgbench(lab, { target, init: false, clients, jobs: JOBS, seconds });
}

async function hostRun(raw: { port: number; sockets: string }): Promise<PgbenchResult> {
  const conn = ['-h', '127.0.0.1', '-p', String(raw.port), '-U', PG_USER];
  const env = { ...process.env, PGPASSWORD: PG_PASSWORD };
  await run(pgTool('pgbench'), ['-i', '-q', '-s', String(scale), ...conn, PG_DB], { env, maxBuffer: 16 << 20 });
  await pgAsUser([pgTool('psql'), '-X', '-q', '-h', raw.sockets, '-p', String(raw.port), '-d', 'postgres', '-c', 'CHECKPOINT']);
  const r = await run(pgTool('pgbench'), [...pgbenchArgs(), ...conn, PG_DB], { env, maxBuffer: 16 << 20 });
  return parsePgbench(r.stdout);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const loadavg = () => fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

const results = new Map<Setup, PgbenchResult[]>(SETUPS.map((s) => [s, []]));
const t0 = performance.now();
let lab: Lab | null = null;
let hostRaw: Awaited<ReturnType<typeof startHostRaw>> | null = null;
try {
  hostRaw = await startHostRaw();
  lab = await createPostgresLab({ pulse: '200ms', timeout: '1s' });
  const l = lab;
  await startPair(l, 'node1', 'node2', 180_000);
  await startLabRaw(l, 'node1');
  const moduleSockets = path.join(l.paths('node1').run, 'postgres');
  const vip: PgTarget = { addr: PG_VIP, port: PG_PORT };
  const rawTarget: PgTarget = { addr: l.addr('node1'), port: RAW_LAB_PORT };
  console.error(`[bench] setup done in ${((performance.now() - t0) / 1000).toFixed(0)} s; load average ${loadavg()}`);

  const record = (s: Setup, r: PgbenchResult, round: number) => {
    results.get(s)!.push(r);
    console.log(`round ${round + 1} ${s.padEnd(12)} ${r.tps.toFixed(1).padStart(8)} tps  latency ${r.latencyMs.toFixed(2)} ms  (${r.transactions} transactions; load ${loadavg()})`);
  };
  for (let i = 0; i < rounds; i++) {
    // prim+second is where the round starts (and ends): node2 rejoins after the alone run
    const order: Setup[] = i % 2 === 0 ? ['raw (lab)', 'prim+second', 'raw (host)', 'alone'] : ['alone', 'raw (host)', 'prim+second', 'raw (lab)'];
    for (const s of order) {
      if (s === 'raw (lab)') record(s, await labRun(l, rawTarget, 'node1', RAW_LAB_RUN, RAW_LAB_PORT), i);
      else if (s === 'raw (host)') record(s, await hostRun(hostRaw), i);
      else if (s === 'alone') {
        await l.cli('node2', ['stop', '-m', PG_MODULE], { timeoutMs: 120_000 });
        await waitForStates(l, { node1: 'ALONE', node2: 'STOP' }, 120_000);
        record(s, await labRun(l, vip, 'node1', moduleSockets, PG_PORT), i);
        const tj = performance.now();
        await l.cli('node2', ['start', '-m', PG_MODULE], { timeoutMs: 120_000 });
        await waitForStates(l, { node1: 'PRIM', node2: 'SECOND' }, 600_000);
        console.error(`[bench] node2 back as SECOND in ${((performance.now() - tj) / 1000).toFixed(1)} s`);
      } else record(s, await labRun(l, vip, 'node1', moduleSockets, PG_PORT), i);
    }
  }

  const raw = median(results.get('raw (lab)')!.map((r) => r.tps));
  const rawHost = median(results.get('raw (host)')!.map((r) => r.tps));
  console.log(`\npgbench (TPC-B-like), scale ${scale}, ${clients} clients, ${JOBS} job, ${seconds} s, pgbench -i + CHECKPOINT before each run; ` +
    `median of ${rounds} alternating rounds; load average ${loadavg()}; ${os.cpus().length} CPUs`);
  console.log(`${'setup'.padEnd(12)} ${'tps per run'.padEnd(28)} ${'median'.padStart(8)} ${'/ raw(lab)'.padStart(10)} ${'/ raw(host)'.padStart(11)} ${'latency ms'.padStart(10)}`);
  for (const s of SETUPS) {
    const rs = results.get(s)!;
    const m = median(rs.map((r) => r.tps));
    console.log(`${s.padEnd(12)} ${rs.map((r) => r.tps.toFixed(0)).join(', ').padEnd(28)} ${m.toFixed(1).padStart(8)} ${(m / raw).toFixed(2).padStart(10)} ${(m / rawHost).toFixed(2).padStart(11)} ${median(rs.map((r) => r.latencyMs)).toFixed(2).padStart(10)}`);
  }
  const alone = median(results.get('alone')!.map((r) => r.tps));
  const pair = median(results.get('prim+second')!.map((r) => r.tps));
  console.log(`ALONE/RAW ${(alone / raw).toFixed(2)}, PRIM+SECOND/RAW ${(pair / raw).toFixed(2)} (target ≥ 0.60: ${pair / raw >= 0.6 ? 'met' : 'NOT met'}); ` +
    `RAW is the raw server on node1's disk through the lab network`);
} finally {
  if (lab) {
    await stopLabRaw(lab, 'node1').catch(() => undefined);
    const report = await lab.down();
    if (report.problems.length) console.error(`[bench] lab teardown left: ${report.problems.join('; ')}`);
  }
  await hostRaw?.stop();
  console.error(`[bench] total ${((performance.now() - t0) / 1000).toFixed(0)} s`);
}
