/**
 * PostgreSQL throughput under tandem, side by side with what a user would deploy instead, in one lab run (root,
 * PostgreSQL installed). pgbench's default TPC-B-like script, the same parameters and server settings everywhere; per
 * setup and round `pgbench -i` once, then for every client count a CHECKPOINT and a timed run. pgbench runs on the
 * lab's `client` host, so every setup goes through the same lab network. Setups:
 *   raw          a plain server on node1's own disk (/srv/pg/raw, not replicated), node1's address, port 5433:
 *                THE BASELINE.
 *   pg sync      PostgreSQL's own synchronous streaming replication: a primary on node1's own disk (/srv/pg/sync,
 *                port 5434) and a hot standby on node2's own disk (pg_basebackup), `synchronous_standby_names = '*'`,
 *                `synchronous_commit = on`: every commit waits for the standby to have flushed its WAL. What a
 *                PostgreSQL user would compare tandem with.
 *   alone        the lab's postgres module ALONE on node1 (node2 stopped): every change goes through the FUSE
 *                interception into the change record; through the VIP.
 *   prim+second  the module PRIM on node1, SECOND on node2, synchronous replication (async="none"), through the VIP.
 * The two nodes share this machine's disk and CPUs, as they do for tandem. The VM is noisy (2 cores, shared), so the
 * setups alternate inside each round and each figure is the median of the rounds.
 * Targets (the performance issue): ALONE ≥ 0.9 of raw; PRIM+SECOND ≥ 0.9 of pg sync at every client count.
 *   node dist/bench/pgbench.js [rounds=3] [seconds=15] [scale=10] [clients=1,4,16]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Lab } from '../src/lab/lab.js';
import {
  createPostgresLab, PG_DB, PG_MODULE, PG_PORT, PG_VIP, PG_PASSWORD, PG_PRIVATE_DIR, PG_USER, pgTool, runPgbench, startPair, waitForStates,
  type PgbenchResult, type PgTarget,
} from '../src/lab/postgres.js';

const rounds = Number(process.argv[2] ?? 3);
const seconds = Number(process.argv[3] ?? 15);
const scale = Number(process.argv[4] ?? 10);
const clientCounts = (process.argv[5] ?? '1,4,16').split(',').map(Number);
if (![rounds, seconds, scale, ...clientCounts].every((n) => Number.isInteger(n) && n > 0)) {
  console.error('usage: node dist/bench/pgbench.js [rounds=3] [seconds=15] [scale=10] [clients=1,4,16] (positive integers)');
  process.exit(2);
}
/** pgbench threads: one per client up to 2 (this machine's cores); the client host shares them with the servers. */
const jobsFor = (clients: number) => Math.min(2, clients);
/** The same initdb options as examples/postgres/bin/start_prim. */
const INITDB = ['--data-checksums', '--encoding=UTF8', '--no-locale', '--username=postgres', '--auth-local=peer', '--auth-host=scram-sha-256'];
/** The replication role of the `pg sync` setup. */
const REPL_USER = 'replicator';
const REPL_PASSWORD = 'replicator';

type Setup = 'raw' | 'pg sync' | 'alone' | 'prim+second';
const SETUPS: Setup[] = ['raw', 'pg sync', 'alone', 'prim+second'];

/** A PostgreSQL server the bench runs itself on a lab node's own disk (not replicated by tandem). */
interface LabServer {
  node: string;
  data: string;
  /** its Unix sockets and log */
  run: string;
  port: number;
}
const RAW: LabServer = { node: 'node1', data: `${PG_PRIVATE_DIR}/raw`, run: `${PG_PRIVATE_DIR}/raw-run`, port: 5433 };
const SYNC_PRIMARY: LabServer = { node: 'node1', data: `${PG_PRIVATE_DIR}/sync`, run: `${PG_PRIVATE_DIR}/sync-run`, port: 5434 };
const SYNC_STANDBY: LabServer = { node: 'node2', data: `${PG_PRIVATE_DIR}/sync`, run: `${PG_PRIVATE_DIR}/sync-run`, port: 5434 };

const asPg = (argv: string[]) => ['runuser', '-u', 'postgres', '--', ...argv];
/** pg_hba.conf of a bench server: what start_prim writes (peer locally, md5 for the benchmark role from the lab). */
const hba = (replication: boolean) => ['local all all peer', `host ${PG_DB} ${PG_USER} 198.51.100.0/24 md5`,
  ...(replication ? [`host replication ${REPL_USER} 198.51.100.0/24 md5`] : [])].join('\n') + '\n';
/** The benchmark role and database, as start_prim creates them (two statements: CREATE DATABASE runs alone). */
const CREATE_ROLE = [`CREATE ROLE ${PG_USER} LOGIN PASSWORD '${PG_PASSWORD}'`, `CREATE DATABASE ${PG_DB} OWNER ${PG_USER}`];

async function sql(lab: Lab, s: LabServer, text: string): Promise<string> {
  const r = await lab.exec(s.node, asPg([pgTool('psql'), '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-h', s.run, '-p', String(s.port), '-d', 'postgres', '-c', text]),
    { timeoutMs: 300_000, cwd: '/' });
  return r.stdout.trim();
}

async function prepareDirs(lab: Lab, s: LabServer): Promise<void> {
  await lab.exec(s.node, ['sh', '-c', `mkdir -p ${s.data} ${s.run} && chown postgres:postgres ${s.data} ${s.run} && chmod 0700 ${s.data}`]);
}

async function pgStart(lab: Lab, s: LabServer): Promise<void> {
  await lab.exec(s.node, asPg([pgTool('pg_ctl'), 'start', '-D', s.data, '-l', `${s.run}/server.log`, '-w', '-s',
    '-o', `-c listen_addresses=${lab.addr(s.node)} -c port=${s.port} -c unix_socket_directories='${s.run}'`]), { timeoutMs: 120_000, cwd: '/' });
}

async function pgStop(lab: Lab, s: LabServer): Promise<void> {
  if (lab.isPoweredOff(s.node)) return;
  await lab.exec(s.node, asPg([pgTool('pg_ctl'), 'stop', '-D', s.data, '-m', 'fast', '-w', '-s']), { reject: false, timeoutMs: 60_000, cwd: '/' });
}

/** initdb, the lab's pg_hba.conf, start, the benchmark role and database (and the replication role when asked). */
async function startServer(lab: Lab, s: LabServer, replication = false): Promise<void> {
  await prepareDirs(lab, s);
  await lab.exec(s.node, asPg([pgTool('initdb'), '-D', s.data, ...INITDB]), { timeoutMs: 120_000, cwd: '/' });
  await lab.exec(s.node, ['sh', '-c', `cat > ${s.data}/pg_hba.conf`], { input: hba(replication) });
  await pgStart(lab, s);
  for (const text of CREATE_ROLE) await sql(lab, s, text);
  if (replication) await sql(lab, s, `CREATE ROLE ${REPL_USER} REPLICATION LOGIN PASSWORD '${REPL_PASSWORD}'`);
}

/**
 * PostgreSQL's own synchronous replication: the primary, a base backup of it on the standby's node, the standby
 * started in recovery and streaming, then `synchronous_standby_names = '*'`. Resolves once the primary reports the
 * standby's sync_state as `sync`, so every commit of the runs after it waits for the standby.
 */
async function startSyncPair(lab: Lab): Promise<void> {
  await startServer(lab, SYNC_PRIMARY, true);
  await prepareDirs(lab, SYNC_STANDBY);
  const conninfo = `host=${lab.addr(SYNC_PRIMARY.node)} port=${SYNC_PRIMARY.port} user=${REPL_USER} password=${REPL_PASSWORD} application_name=${SYNC_STANDBY.node}`;
  await lab.exec(SYNC_STANDBY.node, asPg(['env', `PGPASSWORD=${REPL_PASSWORD}`, pgTool('pg_basebackup'), '-h', lab.addr(SYNC_PRIMARY.node), '-p', String(SYNC_PRIMARY.port),
    '-U', REPL_USER, '-D', SYNC_STANDBY.data, '-X', 'stream', '-c', 'fast', '-R']), { timeoutMs: 300_000, cwd: '/' });
  // -R wrote standby.signal; the connection string is ours (with the application name the primary reports)
  await lab.exec(SYNC_STANDBY.node, ['sh', '-c', `cat >> ${SYNC_STANDBY.data}/postgresql.auto.conf`], { input: `primary_conninfo = '${conninfo}'\n` });
  await pgStart(lab, SYNC_STANDBY);
  await sql(lab, SYNC_PRIMARY, `ALTER SYSTEM SET synchronous_standby_names = '*'`);
  await sql(lab, SYNC_PRIMARY, `ALTER SYSTEM SET synchronous_commit = 'on'`);
  await sql(lab, SYNC_PRIMARY, 'SELECT pg_reload_conf()');
  await lab.waitFor('the standby streaming synchronously', async () =>
    (await sql(lab, SYNC_PRIMARY, `SELECT sync_state FROM pg_stat_replication WHERE application_name = '${SYNC_STANDBY.node}'`)) === 'sync', 60_000, 200);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const loadavg = () => fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

/** (setup, clients) → the runs' results */
const results = new Map<string, PgbenchResult[]>();
const key = (s: Setup, clients: number) => `${s}/${clients}`;
const runsOf = (s: Setup, clients: number) => results.get(key(s, clients)) ?? [];
const tpsOf = (s: Setup, clients: number) => median(runsOf(s, clients).map((r) => r.tps));

/** `pgbench -i` through `target`, then per client count a CHECKPOINT on `server` (its socket dir) and the timed run. */
async function runSetup(lab: Lab, setup: Setup, target: PgTarget, server: LabServer, round: number): Promise<void> {
  await lab.exec('client', [pgTool('pgbench'), '-i', '-q', '-s', String(scale), '-h', target.addr!, '-p', String(target.port), '-U', PG_USER, PG_DB],
    { env: { PGPASSWORD: PG_PASSWORD }, timeoutMs: 900_000 });
  for (const clients of clientCounts) {
    await sql(lab, server, 'CHECKPOINT');
    const r = await runPgbench(lab, { target, init: false, clients, jobs: jobsFor(clients), seconds });
    results.set(key(setup, clients), [...runsOf(setup, clients), r]);
    console.log(`round ${round + 1} ${setup.padEnd(12)} ${String(clients).padStart(2)} clients ${r.tps.toFixed(1).padStart(8)} tps  latency ${r.latencyMs.toFixed(2)} ms  (load ${loadavg()})`);
  }
}

const t0 = performance.now();
let lab: Lab | null = null;
try {
  lab = await createPostgresLab({ pulse: '200ms', timeout: '1s' });
  const l = lab;
  await startPair(l, 'node1', 'node2', 180_000);
  await startServer(l, RAW);
  await startSyncPair(l);
  // the module's server: its socket dir on node1 (start_prim's PG_SOCKET_DIR), the module's port
  const moduleServer: LabServer = { node: 'node1', data: '', run: path.join(l.paths('node1').run, 'postgres'), port: PG_PORT };
  const targets: Record<Setup, { target: PgTarget; server: LabServer }> = {
    raw: { target: { addr: l.addr(RAW.node), port: RAW.port }, server: RAW },
    'pg sync': { target: { addr: l.addr(SYNC_PRIMARY.node), port: SYNC_PRIMARY.port }, server: SYNC_PRIMARY },
    alone: { target: { addr: PG_VIP, port: PG_PORT }, server: moduleServer },
    'prim+second': { target: { addr: PG_VIP, port: PG_PORT }, server: moduleServer },
  };
  console.error(`[bench] setup done in ${((performance.now() - t0) / 1000).toFixed(0)} s; load average ${loadavg()}`);

  for (let i = 0; i < rounds; i++) {
    // the module is PRIM+SECOND where a round starts and ends: node2 rejoins after the alone runs
    const order: Setup[] = i % 2 === 0 ? ['raw', 'prim+second', 'pg sync', 'alone'] : ['alone', 'pg sync', 'prim+second', 'raw'];
    for (const s of order) {
      if (s !== 'alone') {
        await runSetup(l, s, targets[s].target, targets[s].server, i);
        continue;
      }
      await l.cli('node2', ['stop', '-m', PG_MODULE], { timeoutMs: 120_000 });
      await waitForStates(l, { node1: 'ALONE', node2: 'STOP' }, 120_000);
      await runSetup(l, s, targets[s].target, targets[s].server, i);
      const tj = performance.now();
      await l.cli('node2', ['start', '-m', PG_MODULE], { timeoutMs: 120_000 });
      await waitForStates(l, { node1: 'PRIM', node2: 'SECOND' }, 600_000);
      console.error(`[bench] node2 back as SECOND in ${((performance.now() - tj) / 1000).toFixed(1)} s`);
    }
  }

  console.log(`\npgbench (TPC-B-like), scale ${scale}, ${seconds} s per run, pgbench -i once per setup and round, CHECKPOINT before each run; ` +
    `median of ${rounds} alternating rounds; load average ${loadavg()}; ${os.cpus().length} CPUs`);
  console.log(`${'setup'.padEnd(12)} ${'clients'.padStart(7)} ${'tps per run'.padEnd(24)} ${'median'.padStart(8)} ${'/ raw'.padStart(6)} ${'/ pg sync'.padStart(9)} ${'latency ms'.padStart(10)}`);
  for (const clients of clientCounts) {
    for (const s of SETUPS) {
      const rs = runsOf(s, clients);
      const m = tpsOf(s, clients);
      console.log(`${s.padEnd(12)} ${String(clients).padStart(7)} ${rs.map((r) => r.tps.toFixed(0)).join(', ').padEnd(24)} ${m.toFixed(1).padStart(8)} ` +
        `${(m / tpsOf('raw', clients)).toFixed(2).padStart(6)} ${(m / tpsOf('pg sync', clients)).toFixed(2).padStart(9)} ${median(rs.map((r) => r.latencyMs)).toFixed(2).padStart(10)}`);
    }
  }
  for (const clients of clientCounts) {
    const alone = tpsOf('alone', clients) / tpsOf('raw', clients);
    const pair = tpsOf('prim+second', clients) / tpsOf('pg sync', clients);
    console.log(`${String(clients).padStart(2)} clients: ALONE/raw ${alone.toFixed(2)} (target ≥ 0.9: ${alone >= 0.9 ? 'met' : 'NOT met'}); ` +
      `PRIM+SECOND/pg sync ${pair.toFixed(2)} (target ≥ 0.9: ${pair >= 0.9 ? 'met' : 'NOT met'}); PRIM+SECOND/raw ${(tpsOf('prim+second', clients) / tpsOf('raw', clients)).toFixed(2)}; ` +
      `pg sync/raw ${(tpsOf('pg sync', clients) / tpsOf('raw', clients)).toFixed(2)}`);
  }
} finally {
  if (lab) {
    for (const s of [SYNC_STANDBY, SYNC_PRIMARY, RAW]) await pgStop(lab, s).catch(() => undefined);
    const report = await lab.down();
    if (report.problems.length) console.error(`[bench] lab teardown left: ${report.problems.join('; ')}`);
  }
  console.error(`[bench] total ${((performance.now() - t0) / 1000).toFixed(0)} s`);
}
