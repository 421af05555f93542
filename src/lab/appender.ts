/**
 * The fsync appender (examples/appender) as the replicated application of a mirror lab: the lab, and a client that
 * records which appends were acknowledged (`AppendRecorder`) to check after faults that none was lost. The client runs
 * on a lab host (default `client`) against the VIP; nothing leaves the lab's namespaces.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Lab } from './lab.js';
import { createMirrorLab, DEMO_VIP, mirrorUserconfig, type LabModule, type MirrorLabOptions } from './mirror-lab.js';
import { repoRoot } from './spec.js';

export const APPENDER_MODULE = 'appender';
export const APPENDER_VIP = DEMO_VIP;
export const APPENDER_PORT = 7070;
/** The module's replicated directory; `APPENDER_PRIVATE_DIR` is what each lab node sees as its own disk. */
export const APPENDER_DATA = '/srv/appender/data';
export const APPENDER_PRIVATE_DIR = '/srv/appender';
/** The file the appender appends `<id>\n` to, inside APPENDER_DATA. */
export const APPENDER_RECORDS = 'records.log';

/** userconfig.xml of examples/appender with the lab options applied (heart, witness, failover, defaultprim, syncdelta). */
export function appenderUserconfig(o: MirrorLabOptions, witnessAddr: string): string {
  return mirrorUserconfig(o, witnessAddr, {
    vip: APPENDER_VIP, rfsDir: APPENDER_DATA, nicestop: '30s', forcestop: '10s',
    vars: { APPENDER_DIR: APPENDER_DATA, APPENDER_PORT: String(APPENDER_PORT) },
  });
}

export const APPENDER_LAB_MODULE: LabModule = { name: APPENDER_MODULE, userconfig: appenderUserconfig };

/**
 * A mirror lab with the appender module on both nodes and `/srv/appender` as each node's private disk
 * (`spec.privateDirs` may be overridden through `o.spec`). Daemons are started unless `o.daemons === false`; the
 * module is not (its prestart creates APPENDER_DATA).
 */
export async function createAppenderLab(o: MirrorLabOptions = {}): Promise<Lab> {
  return createMirrorLab({ ...o, module: APPENDER_LAB_MODULE, spec: { privateDirs: [APPENDER_PRIVATE_DIR], ...o.spec } });
}

/** The records file on a node's own disk, read from outside the lab: the backing store, not a FUSE mount. */
export function recordsFile(lab: Lab, node: string): string {
  return path.join(lab.paths(node).root, APPENDER_DATA, APPENDER_RECORDS);
}

/** SHA-256 (hex) and size of a node's records file; `undefined` when it does not exist. */
export function recordsDigest(lab: Lab, node: string): { sha256: string; size: number } | undefined {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(recordsFile(lab, node));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  return { sha256: createHash('sha256').update(buf).digest('hex'), size: buf.length };
}

/** Whether the appender started by start_prim runs on `node` (its pid file names a live appender.mjs). */
export function appenderRunsOn(lab: Lab, node: string): boolean {
  try {
    const pid = Number(fs.readFileSync(path.join(lab.paths(node).run, 'appender.pid'), 'utf8').trim());
    return pid > 0 && fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('appender.mjs');
  } catch {
    return false;
  }
}

export interface AppendRecorderOptions {
  /** Lab host the client runs on. Default `client`. */
  host?: string;
  /** Default the VIP and APPENDER_PORT. */
  addr?: string;
  port?: number;
  /** First id. Default 1. */
  firstId?: number;
  /** A request whose reply has not come back after this long has an unknown outcome; the connection is dropped. Default 2000. */
  ackTimeoutMs?: number;
  /** Default 1000. */
  connectTimeoutMs?: number;
  /** Pause after a failed request or connection attempt. Default 100. */
  backoffMs?: number;
  /** Pause after each acknowledged request (0: back to back). Default 0. */
  paceMs?: number;
}

export interface AppendStats {
  /** Requests sent (each with its own id). */
  sent: number;
  /** Ids acknowledged, in order. */
  acknowledged: number[];
  /** Failed requests and connection attempts. */
  errors: number;
  /** The last (at most 20) error lines of the client. */
  lastErrors: string[];
  /** Client processes started (more than one only when a client died). */
  clients: number;
  durationMs: number;
}

export interface AppendVerifyResult {
  node: string;
  acknowledged: number;
  /** Acknowledged ids found in the node's records file. */
  present: number;
  /** Acknowledged ids missing there: each one is a lost acknowledged write. */
  missing: number[];
  /** Lines in the file (acknowledged or not, e.g. a request whose reply was lost); a torn last line is counted. */
  records: number;
}

/**
 * A client that appends numbered records without pause, across failovers, and records which appends were
 * acknowledged, to check afterwards that none of them was lost (`verify`).
 *
 * Contract: an id is recorded as acknowledged only when the server replied exactly `ok <id>` to it. The client is one
 * long-lived `node examples/appender/client.mjs` on `host`, started with `lab.hostArgv` (the host's namespaces) by
 * this process, one request in flight at a time; it reports `sent <n>` / `ok <n>` / `err …` lines on stdout, which
 * this class parses (see client.mjs). After an error or `ackTimeoutMs` without a reply the client drops its
 * connection, waits `backoffMs` and reconnects (to whichever node holds the VIP then); ids are never reused, so a
 * request whose outcome is unknown may be in the file without being acknowledged. If the client process dies, it is
 * restarted after `backoffMs` with the next id. `stop` ends its stdin and waits for it; SIGKILL (to the PID this
 * process started) when it does not exit in time.
 */
export class AppendRecorder {
  private readonly host: string;
  /** client.mjs's argv before and after FIRST */
  private readonly argvHead: string[];
  private readonly argvTail: string[];
  private readonly ackTimeoutMs: number;
  private readonly connectTimeoutMs: number;
  private readonly backoffMs: number;
  private readonly acked: number[] = [];
  private readonly errorTail: string[] = [];
  private nextId: number;
  private lastSentId = 0;
  private sentCount = 0;
  private errorCount = 0;
  private clients = 0;
  private child: ChildProcess | null = null;
  private childExit: Promise<void> | null = null;
  private loop: Promise<void> | null = null;
  private stopping = false;
  private t0 = 0;

  constructor(private readonly lab: Lab, o: AppendRecorderOptions = {}) {
    this.host = o.host ?? 'client';
    this.ackTimeoutMs = o.ackTimeoutMs ?? 2000;
    this.connectTimeoutMs = o.connectTimeoutMs ?? 1000;
    this.backoffMs = o.backoffMs ?? 100;
    this.nextId = o.firstId ?? 1;
    const client = path.join(repoRoot(), 'examples', APPENDER_MODULE, 'client.mjs');
    this.argvHead = [process.execPath, client, o.addr ?? APPENDER_VIP, String(o.port ?? APPENDER_PORT)];
    this.argvTail = [String(this.ackTimeoutMs), String(this.connectTimeoutMs), String(this.backoffMs), String(o.paceMs ?? 0)];
  }

  /** Ids acknowledged so far, in order. */
  get acknowledged(): readonly number[] {
    return this.acked;
  }

  /** The highest id sent so far (0 before the first): an ack of a larger id was requested after this moment. */
  get lastSent(): number {
    return this.lastSentId;
  }

  /** The last id acknowledged (0 before the first). */
  get lastAcked(): number {
    return this.acked[this.acked.length - 1] ?? 0;
  }

  /** Starts the client (and restarts it if it dies) until `stop`. */
  start(): void {
    if (this.loop) throw new Error('AppendRecorder: already running');
    this.stopping = false;
    this.t0 = performance.now();
    this.loop = (async () => {
      while (!this.stopping) {
        this.childExit = this.spawnClient();
        await this.childExit;
        if (!this.stopping) await sleep(this.backoffMs);
      }
    })();
  }

  /** Ends the client after the request in flight (bounded by the ack and connect timeouts), and summarises the run. */
  async stop(): Promise<AppendStats> {
    if (!this.loop) throw new Error('AppendRecorder: not running');
    this.stopping = true;
    const child = this.child;
    if (child) {
      child.stdin!.end();
      const grace = this.ackTimeoutMs + this.connectTimeoutMs + this.backoffMs + 2000;
      const killer = setTimeout(() => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      }, grace);
      await this.childExit;
      clearTimeout(killer);
    }
    await this.loop;
    this.loop = null;
    return {
      sent: this.sentCount,
      acknowledged: [...this.acked],
      errors: this.errorCount,
      lastErrors: this.errorTail.slice(-20),
      clients: this.clients,
      durationMs: Math.round(performance.now() - this.t0),
    };
  }

  /**
   * Reads the records file of `node` from its own disk (outside the lab, no FUSE in the way) and checks that every
   * acknowledged id is in it. A missing file counts as empty.
   */
  verify(node: string): AppendVerifyResult {
    let text = '';
    try {
      text = fs.readFileSync(recordsFile(this.lab, node), 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    const lines = text.split('\n');
    if (lines[lines.length - 1] === '') lines.pop();
    const present = new Set(lines.filter((l) => /^\d+$/.test(l)).map(Number));
    const missing = this.acked.filter((id) => !present.has(id));
    return { node, acknowledged: this.acked.length, present: this.acked.length - missing.length, missing, records: lines.length };
  }

  /** Runs one client process from `nextId` until it exits; resolves then. */
  private spawnClient(): Promise<void> {
    const [file, ...args] = this.lab.hostArgv(this.host, [...this.argvHead, String(this.nextId), ...this.argvTail]);
    const child = spawn(file!, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child = child;
    this.clients += 1;
    child.stdin!.on('error', () => undefined); // EPIPE once the client has exited: seen through 'exit'
    let buf = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (d: string) => {
      buf += d;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        this.onLine(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
      }
    });
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (d: string) => (stderr = (stderr + d).slice(-2000)));
    return new Promise<void>((resolve) => {
      const done = (why: string) => {
        if (this.child !== child) return;
        this.child = null;
        if (!this.stopping) this.noteError(`client ${this.clients} ended (${why})${stderr.trim() ? `: ${stderr.trim()}` : ''}`);
        resolve();
      };
      child.on('error', (e) => done(`could not start: ${e.message}`));
      child.on('close', (code, signal) => done(`exit ${code ?? signal}`));
    });
  }

  private onLine(line: string): void {
    const [kind, arg] = line.split(' ', 2);
    const id = Number(arg);
    if (kind === 'sent' && Number.isInteger(id)) {
      this.sentCount += 1;
      this.lastSentId = id;
      this.nextId = id + 1;
    } else if (kind === 'ok' && Number.isInteger(id)) {
      // the client prints ok only for the request in flight; anything else is a client bug, not an acknowledgement
      if (id === this.lastSentId && id > this.lastAcked) this.acked.push(id);
      else this.noteError(`unexpected "${line}" (last sent ${this.lastSentId}, last acknowledged ${this.lastAcked})`);
    } else if (kind === 'err') {
      this.noteError(line);
    } else if (kind !== 'done') {
      this.noteError(`unexpected client output "${line.slice(0, 200)}"`);
    }
  }

  private noteError(e: string): void {
    this.errorCount += 1;
    this.errorTail.push(e);
    if (this.errorTail.length > 100) this.errorTail.splice(0, this.errorTail.length - 100);
  }
}
