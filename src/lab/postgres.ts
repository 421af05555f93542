/**
 * PostgreSQL as the replicated application of a mirror lab (examples/postgres): the lab, module state helpers, a
 * client that records which commits were acknowledged (`CommitRecorder`) and a pgbench runner for benchmarks.
 * Every client command runs on a lab host (default `client`) against the VIP; nothing leaves the lab's namespaces.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { controlRequest } from '../daemon/control.js';
import type { StatusView } from '../daemon/views.js';
import type { Lab } from './lab.js';
import { controlSocketOf, createMirrorLab, DEMO_VIP, mirrorUserconfig, type LabModule, type MirrorLabOptions } from './mirror-lab.js';
import { netnsInode, pidsInNetns } from './netns.js';

export const PG_MODULE = 'postgres';
export const PG_VIP = DEMO_VIP;
export const PG_PORT = 5432;
/** The module's replicated directory; `PG_PRIVATE_DIR` is what each lab node sees as its own disk. */
export const PG_DATA = '/srv/pg/data';
export const PG_PRIVATE_DIR = '/srv/pg';
/** The login role, its password and database that start_prim creates, reachable from 198.51.100.0/24 (md5). */
export const PG_USER = 'tandem';
export const PG_PASSWORD = 'tandem';
export const PG_DB = 'tandem';

/** userconfig.xml of examples/postgres with the lab options applied (heart, witness, failover, defaultprim, syncdelta). */
export function postgresUserconfig(o: MirrorLabOptions, witnessAddr: string): string {
  return mirrorUserconfig(o, witnessAddr, {
    vip: PG_VIP, rfsDir: PG_DATA, nicestop: '90s', forcestop: '30s',
    vars: { PG_DATA, PG_PORT: String(PG_PORT), PG_USER, PG_PASSWORD, PG_DB, PG_CLIENTS: '198.51.100.0/24' },
  });
}

export const POSTGRES_LAB_MODULE: LabModule = { name: PG_MODULE, userconfig: postgresUserconfig };

/**
 * A mirror lab with the postgres module on both nodes and `/srv/pg` as each node's private disk (`spec.privateDirs`
 * may be overridden through `o.spec`). Daemons are started unless `o.daemons === false`; the module is not.
 */
export async function createPostgresLab(o: MirrorLabOptions = {}): Promise<Lab> {
  return createMirrorLab({ ...o, module: POSTGRES_LAB_MODULE, spec: { privateDirs: [PG_PRIVATE_DIR], ...o.spec } });
}

/** `STATE` when ready, `STATE?` while transient, `OFF` when the daemon does not answer. */
export async function moduleState(lab: Lab, node: string, module = PG_MODULE): Promise<string> {
  try {
    const v = (await controlRequest(controlSocketOf(lab, node), 'status', module, undefined, { timeoutMs: 2000 })) as StatusView;
    const m = v.modules[0]!;
    return `${m.state}${m.ready ? '' : '?'}`;
  } catch {
    return 'OFF';
  }
}

export async function waitForStates(lab: Lab, want: Record<string, string>, timeoutMs = 30_000, module = PG_MODULE): Promise<void> {
  const what = Object.entries(want).map(([n, s]) => `${n} ${s}`).join(', ');
  await lab.waitFor(what, async () => {
    for (const [n, s] of Object.entries(want)) if ((await moduleState(lab, n, module)) !== s) return false;
    return true;
  }, timeoutMs, 100);
}

/** First start of the module: `start` on both, `prim` on `prim`, `second` on `second`; resolves once PRIM/SECOND. */
export async function startPair(lab: Lab, prim = 'node1', second = 'node2', timeoutMs = 60_000, module = PG_MODULE): Promise<void> {
  for (const n of [prim, second]) await lab.cli(n, ['start', '-m', module]);
  await waitForStates(lab, { [prim]: 'WAIT', [second]: 'WAIT' }, timeoutMs, module);
  await lab.cli(prim, ['prim', '-m', module]);
  await waitForStates(lab, { [prim]: 'ALONE' }, timeoutMs, module);
  await lab.cli(second, ['second', '-m', module]);
  await waitForStates(lab, { [prim]: 'PRIM', [second]: 'SECOND' }, timeoutMs, module);
}

/** PIDs of the `postgres` processes (postmaster and backends) running on a lab node. */
export function postgresPids(lab: Lab, node: string): number[] {
  const ino = netnsInode(lab.ns(node));
  if (ino === undefined) return [];
  return pidsInNetns(new Set([ino])).filter((pid) => {
    try {
      return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'postgres';
    } catch {
      return false;
    }
  });
}

/** Path of a PostgreSQL client program: the newest `/usr/lib/postgresql/<v>/bin/<name>`, else `name` from PATH. */
export function pgTool(name: string): string {
  let versions: string[] = [];
  try {
    versions = fs.readdirSync('/usr/lib/postgresql').filter((v) => fs.existsSync(`/usr/lib/postgresql/${v}/bin/${name}`));
  } catch {
    // not installed in the Debian layout
  }
  versions.sort((a, b) => Number(b) - Number(a));
  return versions.length ? `/usr/lib/postgresql/${versions[0]}/bin/${name}` : name;
}

/** Where and as whom a client connects. Defaults: the VIP, PG_PORT, PG_USER / PG_PASSWORD / PG_DB. */
export interface PgTarget {
  addr?: string;
  port?: number;
  user?: string;
  password?: string;
  db?: string;
}

function targetOf(t: PgTarget = {}): Required<PgTarget> {
  return { addr: t.addr ?? PG_VIP, port: t.port ?? PG_PORT, user: t.user ?? PG_USER, password: t.password ?? PG_PASSWORD, db: t.db ?? PG_DB };
}

function connArgs(t: Required<PgTarget>): string[] {
  return ['-h', t.addr, '-p', String(t.port), '-U', t.user, '-d', t.db];
}

function connEnv(t: Required<PgTarget>, connectTimeoutS: number): Record<string, string> {
  return { PGPASSWORD: t.password, PGCONNECT_TIMEOUT: String(connectTimeoutS), PGAPPNAME: 'tandem-lab' };
}

/**
 * Runs one SQL text with psql on `host` (unaligned, tuples only, ON_ERROR_STOP) and returns its stdout. Throws
 * ExternalError when psql fails.
 */
export async function psql(lab: Lab, host: string, sql: string, target: PgTarget = {}, timeoutMs = 10_000): Promise<string> {
  const t = targetOf(target);
  const r = await lab.exec(host, [pgTool('psql'), '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', ...connArgs(t), '-c', sql], {
    env: connEnv(t, Math.max(1, Math.ceil(timeoutMs / 2000))),
    timeoutMs,
  });
  return r.stdout;
}

/** Resolves once `host` can run a query through `target` (default the VIP). Returns the server's address as it sees it. */
export async function waitForSql(lab: Lab, host = 'client', target: PgTarget = {}, timeoutMs = 30_000): Promise<string> {
  return lab.waitFor(`SQL from ${host} to ${targetOf(target).addr}`, async () => (await psql(lab, host, 'SELECT inet_server_addr()', target, 3000)).trim(), timeoutMs, 200);
}

export interface CommitRecorderOptions {
  /** Lab host the client runs on. Default `client`. */
  host?: string;
  target?: PgTarget;
  /** Default `tandem_commits`: (id bigint primary key, committed_at timestamptz). Created when missing. */
  table?: string;
  /** First transaction id. Default 1. */
  firstId?: number;
  /** A transaction whose acknowledgement has not come back after this long is abandoned with its session. Default 5000. */
  ackTimeoutMs?: number;
  /** Connection timeout of a new session. Default 3000. */
  connectTimeoutMs?: number;
}

export interface RecorderSummary {
  /** Transactions sent (each with its own id). */
  attempted: number;
  /** Of those, how many were acknowledged. */
  acknowledged: number;
  /** psql sessions opened (a session ends at the first error, lost connection or acknowledgement timeout). */
  sessions: number;
  /** Why sessions ended or could not start, in order (at most the last 20). */
  errors: string[];
  durationMs: number;
}

export interface VerifyResult {
  node: string;
  acknowledged: number;
  /** Acknowledged ids found in the table on the node. */
  present: number;
  /** Acknowledged ids missing there: each one is a lost commit. */
  missing: number[];
}

/**
 * A client that commits numbered transactions one at a time and records which commits were acknowledged, to check
 * after a fault that none of them was lost (`verify`).
 *
 * Contract: an id is recorded as acknowledged only when the server answered its COMMIT. The client is one long-lived
 * `psql` on `host`, fed on stdin, with ON_ERROR_STOP: each transaction is `BEGIN; INSERT id; COMMIT;` followed by
 * `\warn tandem-ack <id>`, which psql executes only after COMMIT returned without error (any error, or a lost
 * connection, ends psql before the marker). Markers go to stderr, which psql does not buffer. A transaction whose
 * marker does not come back within `ackTimeoutMs` has an unknown outcome: it is not recorded, its session is killed
 * (SIGKILL to that psql, which this process started) and a new session is opened for the next id. Ids are never
 * reused, so an unacknowledged commit that did happen is simply an extra row.
 *
 * One transaction is in flight at a time; `run` and `start` must not overlap.
 */
export class CommitRecorder {
  private readonly host: string;
  private readonly target: Required<PgTarget>;
  private readonly table: string;
  private readonly ackTimeoutMs: number;
  private readonly connectTimeoutMs: number;
  private nextId: number;
  private readonly acked: number[] = [];
  private session: PsqlSession | null = null;
  private stats = { attempted: 0, acknowledged: 0, sessions: 0, errors: [] as string[] };
  private loop: Promise<RecorderSummary> | null = null;
  private stopRequested = false;

  constructor(private readonly lab: Lab, o: CommitRecorderOptions = {}) {
    this.host = o.host ?? 'client';
    this.target = targetOf(o.target);
    this.table = o.table ?? 'tandem_commits';
    if (!/^[a-z_][a-z0-9_]*$/.test(this.table)) throw new Error(`CommitRecorder: table name "${this.table}" must be a plain lowercase identifier`);
    this.ackTimeoutMs = o.ackTimeoutMs ?? 5000;
    this.connectTimeoutMs = o.connectTimeoutMs ?? 3000;
    this.nextId = o.firstId ?? 1;
  }

  /** Ids of the acknowledged commits, in commit order. */
  get acknowledged(): readonly number[] {
    return this.acked;
  }

  /**
   * Sends `count` transactions (retrying sessions as needed) and resolves with what happened since the recorder was
   * made. Stops early, without throwing, when `timeoutMs` runs out.
   */
  async run(count: number, timeoutMs = 60_000): Promise<RecorderSummary> {
    const t0 = performance.now();
    const end = t0 + timeoutMs;
    const stopAt = this.stats.attempted + count;
    while (this.stats.attempted < stopAt && performance.now() < end) await this.step(end);
    await this.closeSession();
    return this.summary(t0);
  }

  /** Commits continuously in the background until `stop`. */
  start(): void {
    if (this.loop) throw new Error('CommitRecorder: already running');
    this.stopRequested = false;
    const t0 = performance.now();
    this.loop = (async () => {
      while (!this.stopRequested) await this.step(Infinity);
      await this.closeSession();
      return this.summary(t0);
    })();
  }

  /** Ends the background loop after the transaction in flight (at most `ackTimeoutMs`), and summarises it. */
  async stop(): Promise<RecorderSummary> {
    if (!this.loop) throw new Error('CommitRecorder: not running');
    this.stopRequested = true;
    const s = await this.loop;
    this.loop = null;
    return s;
  }

  /**
   * Checks on `node` (normally the node that is PRIM now), through its own address rather than the VIP, that every
   * acknowledged id is in the table.
   */
  async verify(node: string): Promise<VerifyResult> {
    // the ids acknowledged BEFORE the query: while the recorder runs, later ones may commit after the query's snapshot
    const acked = [...this.acked];
    const out = await psql(this.lab, node, `SELECT id FROM ${this.table}`, { ...this.target, addr: this.lab.addr(node) }, 30_000);
    const present = new Set(out.split('\n').filter(Boolean).map(Number));
    const missing = acked.filter((id) => !present.has(id));
    return { node, acknowledged: acked.length, present: acked.length - missing.length, missing };
  }

  private summary(t0: number): RecorderSummary {
    return { ...this.stats, errors: this.stats.errors.slice(-20), durationMs: Math.round(performance.now() - t0) };
  }

  private noteError(e: string): void {
    this.stats.errors.push(e);
    if (this.stats.errors.length > 100) this.stats.errors.splice(0, this.stats.errors.length - 100);
  }

  /** One transaction, opening a session first when there is none (a failed open waits 200 ms and returns). */
  private async step(end: number): Promise<void> {
    if (!this.session) {
      const s = new PsqlSession(this.lab, this.host, this.target, this.connectTimeoutMs);
      this.stats.sessions += 1;
      const setup = `SET client_min_messages = warning;\nCREATE TABLE IF NOT EXISTS ${this.table} (id bigint PRIMARY KEY, committed_at timestamptz NOT NULL DEFAULT now());\n`;
      const ok = await s.send(setup, 'ready', Math.min(this.connectTimeoutMs + this.ackTimeoutMs, Math.max(0, end - performance.now())));
      if (!ok) {
        this.noteError(`session ${this.stats.sessions}: ${s.reason()}`);
        s.kill();
        await sleep(200);
        return;
      }
      this.session = s;
    }
    const id = this.nextId++;
    this.stats.attempted += 1;
    const txn = `BEGIN;\nINSERT INTO ${this.table} (id) VALUES (${id});\nCOMMIT;\n`;
    if (await this.session.send(txn, String(id), this.ackTimeoutMs)) {
      this.acked.push(id);
      this.stats.acknowledged += 1;
    } else {
      this.noteError(`transaction ${id}: ${this.session.reason()}`);
      this.session.kill();
      this.session = null;
    }
  }

  private async closeSession(): Promise<void> {
    const s = this.session;
    this.session = null;
    if (s) await s.close(2000);
  }
}

/** One psql process on a lab host, fed statements on stdin; `send` waits for the marker that follows them. */
class PsqlSession {
  private readonly child: ChildProcess;
  private readonly seen = new Set<string>();
  private stderrTail: string[] = [];
  private buf = '';
  private exited: string | null = null;
  private waiter: (() => void) | null = null;

  constructor(lab: Lab, host: string, t: Required<PgTarget>, connectTimeoutMs: number) {
    const argv = lab.hostArgv(host, [pgTool('psql'), '-X', '-q', '-v', 'ON_ERROR_STOP=1', ...connArgs(t)]);
    this.child = spawn(argv[0]!, argv.slice(1), {
      stdio: ['pipe', 'ignore', 'pipe'],
      env: { ...process.env, ...connEnv(t, Math.max(1, Math.ceil(connectTimeoutMs / 1000))) },
    });
    this.child.stdin!.on('error', () => undefined); // EPIPE once psql has exited: seen through 'exit'
    this.child.stderr!.setEncoding('utf8');
    this.child.stderr!.on('data', (d: string) => this.onStderr(d));
    this.child.on('error', (e) => this.onExit(`psql could not start: ${e.message}`));
    this.child.on('exit', (code, signal) => this.onExit(`psql exited ${code ?? signal}`));
  }

  /** Writes `sql` then a marker; true once the marker came back, false on exit or after `timeoutMs`. */
  async send(sql: string, marker: string, timeoutMs: number): Promise<boolean> {
    if (this.exited) return false;
    this.child.stdin!.write(`${sql}\\warn tandem-ack ${marker}\n`);
    const deadline = performance.now() + timeoutMs;
    while (!this.seen.has(marker)) {
      if (this.exited) return false;
      const left = deadline - performance.now();
      if (left <= 0) return false;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.waiter = null;
    }
    this.seen.delete(marker);
    return true;
  }

  /** Why the session failed: psql's exit and its last error lines, or that it did not answer in time. */
  reason(): string {
    const err = this.stderrTail.join(' | ');
    return `${this.exited ?? 'no acknowledgement in time'}${err ? `: ${err}` : ''}`;
  }

  kill(): void {
    if (!this.exited && this.child.pid !== undefined) this.child.kill('SIGKILL');
  }

  /** Ends stdin so that psql exits by itself; kills it after `timeoutMs`. */
  async close(timeoutMs: number): Promise<void> {
    if (this.exited) return;
    this.child.stdin!.end();
    const deadline = performance.now() + timeoutMs;
    while (!this.exited && performance.now() < deadline) await sleep(20);
    this.kill();
  }

  private onStderr(d: string): void {
    this.buf += d;
    let nl: number;
    while ((nl = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, nl);
      this.buf = this.buf.slice(nl + 1);
      const m = /^tandem-ack (\S+)$/.exec(line);
      if (m) this.seen.add(m[1]!);
      else if (line.trim()) this.stderrTail = [...this.stderrTail, line.trim()].slice(-3);
    }
    this.waiter?.();
  }

  private onExit(why: string): void {
    this.exited ??= why;
    this.waiter?.();
  }
}

export interface PgbenchOptions {
  /** Lab host pgbench runs on. Default `client`. */
  host?: string;
  target?: PgTarget;
  /** `pgbench -i` first, at this scale (default true, scale 1). */
  init?: boolean;
  scale?: number;
  /** Default 4 clients, 2 threads. */
  clients?: number;
  jobs?: number;
  seconds: number;
  /** Extra pgbench arguments, e.g. ['-N'] (simple-update) or ['-S'] (select-only). */
  args?: string[];
}

export interface PgbenchResult {
  /** Transactions per second, without initial connection time. */
  tps: number;
  transactions: number;
  latencyMs: number;
  /** pgbench's report. */
  output: string;
}

/** Runs pgbench from a lab host against `target` (default the VIP). Throws ExternalError when pgbench fails. */
export async function runPgbench(lab: Lab, o: PgbenchOptions): Promise<PgbenchResult> {
  const host = o.host ?? 'client';
  const t = targetOf(o.target);
  const env = connEnv(t, 5);
  const conn = ['-h', t.addr, '-p', String(t.port), '-U', t.user];
  if (o.init ?? true) {
    await lab.exec(host, [pgTool('pgbench'), '-i', '-q', '-s', String(o.scale ?? 1), ...conn, t.db], { env, timeoutMs: 300_000 });
  }
  const clients = o.clients ?? 4;
  const r = await lab.exec(host, [pgTool('pgbench'), '-n', '-c', String(clients), '-j', String(Math.min(o.jobs ?? 2, clients)), '-T', String(o.seconds), ...(o.args ?? []), ...conn, t.db], {
    env,
    timeoutMs: o.seconds * 1000 + 60_000,
  });
  return parsePgbench(r.stdout);
}

/** Reads tps, transaction count and average latency from pgbench's report; throws when the report lacks them. */
export function parsePgbench(output: string): PgbenchResult {
  const num = (re: RegExp) => {
    const m = re.exec(output);
    if (!m) throw new Error(`pgbench report has no ${re.source}:\n${output}`);
    return Number(m[1]);
  };
  return {
    tps: num(/^tps = ([\d.]+) \(without initial connection time\)/m),
    transactions: num(/^number of transactions actually processed: (\d+)/m),
    latencyMs: num(/^latency average = ([\d.]+) ms/m),
    output,
  };
}
