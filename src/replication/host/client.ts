/**
 * `HostedReplicator`: the daemon's `Replicator` for a module with `<rfs>`, whose FUSE interception, replication
 * stream and reintegration run in the module's replication host process (main.ts), so that they outlive the daemon
 * (docs/design/replication.md, "Where the FUSE server runs").
 *
 * Contracts (beyond `Replicator`'s):
 * - `reattach()` (daemon start, before the engine's `boot`): finds a host a previous daemon left serving (socket and
 *   pid file in the run dir, which a reboot wipes), checks it is this module's host of this home speaking this
 *   protocol, and attaches; what it held for the engine (a write waiting for a new generation, a copy behind) is in
 *   the result, for the caller to post after `boot`. A host that does not answer is stale: its files are removed. A
 *   host that answers but is not ours or speaks another version is ended (SIGKILL, after checking its command line)
 *   and reported as not found, so that the caller recovers as after a crash.
 * - A host is started (`spawn`, one function: `spawnReplicationHost`) when a role other than `off` is asked and none
 *   is attached; `setRole('off')` leaves the layout and ends the host (a stopped module has no host), starting one
 *   first if needed so that the leftovers of a dead one (its dead FUSE mounts) are removed.
 * - The host dying while the daemon is attached and the directories are in a layout is a local failure: pending
 *   requests reject, and `hostLost` is called once (the driver posts the engine event `files-lost`).
 * - `close()` (daemon shutdown) leaves a host that serves a layout running (as the application is left running);
 *   a host in no layout is ended.
 * - `progress`, `alarm` and `status` answer from the last snapshot the host pushed (on change, checked every
 *   SNAPSHOT_MS) or `refresh` fetched (`tandem status` refreshes first).
 */
import { spawn } from 'node:child_process';
import fsSync from 'node:fs';
import fs from 'node:fs/promises';
import net from 'node:net';
import { errorFromBody, LineSplitter } from '../../daemon/control.js';
import { BugError, UserError } from '../../errors.js';
import { homePaths, type Home } from '../../home.js';
import { tandemArgv } from '../../platform/self.js';
import { realClock } from '../../platform/clock/real.js';
import type { Clock } from '../../platform/clock/types.js';
import type {
  FilesRole, PrimaryFiles, ReintegrateRequest, ReintegrationProgress, ReplicationDirective, ReplicationStatus, Replicator,
} from '../types.js';
import {
  decodeFromHost, encodeLine, HOST_PROTOCOL_VERSION, MAX_HOST_LINE,
  type HelloResult, type HostOp, type HostOps, type HostRequest, type HostSnapshot, type HostToDaemon,
} from './protocol.js';

/** Where a module's host listens and records its pid (the run dir: wiped at reboot). */
export const hostPaths = {
  socket: (h: Home, m: string) => `${h.runDir}/${m}.host.sock`,
  pid: (h: Home, m: string) => `${h.runDir}/${m}.host.pid`,
};

/** the hidden CLI subcommand that runs a host (src/commands/__replication-host.ts) */
export const HOST_SUBCOMMAND = '__replication-host';
/** how long a started host has to answer on its socket */
export const HOST_START_TIMEOUT_MS = 30_000;

export interface SpawnedHost {
  pid: number;
  /** resolves with how the process ended (`exited with 1`, `killed by SIGKILL`) */
  exited: Promise<string>;
}

export interface HostedReplicatorLog {
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
}

export interface HostedReplicatorOptions {
  module: string;
  home: Home;
  /** the replicated directories (for `status` while no host runs) */
  dirs: string[];
  log: HostedReplicatorLog;
  replicationFailed: (reason: string) => void;
  copyBehind: (reason: string) => void;
  /** the host died while serving a layout: the application works on a dead mount */
  hostLost: (reason: string) => void;
  /** starts the host process; default `spawnReplicationHost` */
  spawn?: (home: Home, module: string) => SpawnedHost;
  /** ends a process that is not our host (reattach found it answering on our socket); default SIGKILL if its
   *  command line is a replication host's */
  kill?: (pid: number) => Promise<void>;
  clock?: Clock;
  startTimeoutMs?: number;
}

export interface Reattached {
  role: FilesRole;
  pid: number;
  failed: string | null;
  behind: string | null;
}

type Pending = { resolve: (v: unknown) => void; reject: (e: Error) => void; op: HostOp };

/** One connection to a host. */
class HostLink {
  private seq = 1;
  private pending = new Map<number, Pending>();
  private splitter = new LineSplitter(MAX_HOST_LINE);
  closedReason: string | null = null;
  readonly closed: Promise<string>;

  constructor(private readonly sock: net.Socket, readonly pid: number, private readonly onEvent: (m: HostToDaemon & { t: 'ev' }) => void) {
    let done!: (why: string) => void;
    this.closed = new Promise((r) => { done = r; });
    sock.on('data', (chunk: Buffer) => {
      const lines = this.splitter.push(chunk);
      if (lines === 'overflow') return this.fail(`the host sent a line longer than ${MAX_HOST_LINE} bytes`);
      for (const line of lines) {
        let m: HostToDaemon;
        try {
          m = decodeFromHost(line);
        } catch (e) {
          return this.fail(`unreadable message from the host: ${(e as Error).message}`);
        }
        if (m.t === 'ev') this.onEvent(m);
        else {
          const p = this.pending.get(m.id);
          this.pending.delete(m.id);
          if (m.ok) p?.resolve(m.result);
          else p?.reject(errorFromBody(m.error));
        }
      }
    });
    sock.on('error', (e) => this.fail(e.message));
    sock.on('close', () => {
      this.closedReason ??= 'connection closed';
      for (const p of this.pending.values()) p.reject(new Error(`the replication host (pid ${this.pid}) went away during ${p.op}: ${this.closedReason}`));
      this.pending.clear();
      done(this.closedReason);
    });
  }

  request<K extends HostOp>(op: K, args: HostOps[K]['args']): Promise<HostOps[K]['result']> {
    if (this.closedReason !== null) return Promise.reject(new Error(`the replication host (pid ${this.pid}) is gone (${this.closedReason})`));
    const id = this.seq++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, op });
      this.sock.write(encodeLine({ t: 'req', id, op, args } as HostRequest));
    });
  }

  fail(why: string): void {
    this.closedReason ??= why;
    this.sock.destroy();
  }

  /** closes without it being a loss (shutdown, daemon detaching) */
  end(): void {
    this.closedReason ??= 'closed by the daemon';
    this.sock.end();
    this.sock.destroy();
  }
}

export class HostedReplicator implements Replicator {
  private link: HostLink | null = null;
  private role: FilesRole = 'off';
  private chain: Promise<void> = Promise.resolve();
  private snap: HostSnapshot = { progress: null, alarm: null, status: null };
  private rids = 1;
  private copyHandlers = new Map<number, () => Promise<void>>();
  private readonly clock: Clock;

  constructor(private readonly o: HostedReplicatorOptions) {
    this.clock = o.clock ?? realClock;
  }

  /** pid of the attached host, or null */
  get hostPid(): number | null {
    return this.link?.pid ?? null;
  }

  // ───────────────────────────── reattach ─────────────────────────────

  async reattach(): Promise<Reattached | null> {
    const sockPath = hostPaths.socket(this.o.home, this.o.module);
    const pidPath = hostPaths.pid(this.o.home, this.o.module);
    const recorded = Number((await fs.readFile(pidPath, 'utf8').catch(() => '')).trim()) || null;
    let sock: net.Socket;
    try {
      sock = await connectUnix(sockPath);
    } catch {
      const had = await fs.lstat(sockPath).then(() => true, () => false);
      if (had || recorded) this.o.log.warn(`replication host of ${this.o.module}: ${sockPath} does not answer (the host is gone); removed`);
      await fs.rm(sockPath, { force: true });
      await fs.rm(pidPath, { force: true });
      return null;
    }
    const link = new HostLink(sock, recorded ?? 0, (m) => this.onEvent(link, m));
    let hello: HelloResult;
    try {
      hello = await this.hello(link);
      if (hello.module !== this.o.module || hello.home !== this.o.home.root || (recorded !== null && hello.pid !== recorded)) {
        throw new UserError(`it serves module ${hello.module} of ${hello.home} as pid ${hello.pid} (expected ${this.o.module} of ${this.o.home.root}, pid ${recorded ?? 'unrecorded'})`);
      }
    } catch (e) {
      link.end();
      this.o.log.error(`replication host of ${this.o.module} on ${sockPath} cannot be reattached: ${(e as Error).message}; it is ended and the module recovers as after a crash`);
      if (recorded) await (this.o.kill ?? killHost)(recorded).catch((k: Error) => this.o.log.error(`ending pid ${recorded}: ${k.message}`));
      await fs.rm(sockPath, { force: true });
      await fs.rm(pidPath, { force: true });
      return null;
    }
    this.adopt(link, hello);
    this.o.log.info(`replication host of ${this.o.module} (pid ${hello.pid}) reattached: ${hello.role} layout`);
    return { role: hello.role, pid: hello.pid, failed: hello.failed, behind: hello.behind };
  }

  // ───────────────────────────── Replicator ─────────────────────────────

  setRole(role: FilesRole, primary?: PrimaryFiles): Promise<void> {
    const next = this.chain.then(() => this.changeRole(role, primary));
    this.chain = next.catch(() => {});
    return next;
  }

  direct(d: ReplicationDirective): void {
    const link = this.link;
    if (!link) {
      this.o.log.warn(`replication directive ${d.kind} for ${this.o.module} dropped: no replication host runs`);
      return;
    }
    link.request('direct', { directive: d }).catch((e: Error) => this.o.log.error(`replication directive ${d.kind}: ${e.message}`));
  }

  async reintegrate(req: ReintegrateRequest): Promise<void> {
    if (req.signal.aborted) throw new Error('reintegration aborted');
    const link = this.link;
    if (!link) throw new BugError(`reintegration of ${this.o.module} asked while no replication host runs (the secondary layout comes first)`);
    const rid = this.rids++;
    this.copyHandlers.set(rid, req.beginCopy);
    const onAbort = () => { link.request('abort-reintegration', { rid }).catch(() => {}); };
    req.signal.addEventListener('abort', onAbort);
    const { signal: _s, beginCopy: _b, ...wire } = req;
    try {
      await link.request('reintegrate', { rid, req: wire });
    } finally {
      req.signal.removeEventListener('abort', onAbort);
      this.copyHandlers.delete(rid);
    }
  }

  async refresh(timeoutMs: number): Promise<void> {
    const link = this.link;
    if (!link) return;
    let cancel = () => {};
    const timeout = new Promise<null>((r) => { cancel = this.clock.after(timeoutMs, () => r(null)); });
    const s = await Promise.race([link.request('snapshot', {}).catch(() => null), timeout]);
    cancel();
    if (s && link === this.link) this.snap = s;
  }

  progress(): ReintegrationProgress | null {
    return this.link ? this.snap.progress : null;
  }

  alarm(): string | null {
    return this.link ? this.snap.alarm : null;
  }

  status(): ReplicationStatus {
    const s = this.snap.status;
    if (this.link && s) return s;
    return { role: 'off', mode: 'off', dirs: this.o.dirs, quarantines: s?.quarantines ?? [], lastReintegration: s?.lastReintegration ?? null };
  }

  async close(): Promise<void> {
    await this.chain;
    const link = this.link;
    if (!link) return;
    if (this.role === 'off') {
      await this.endHost(link);
      return;
    }
    this.o.log.info(`daemon stopping: the replication host of ${this.o.module} (pid ${link.pid}) keeps serving the ${this.role} layout; the next daemon reattaches`);
    this.link = null;
    link.end();
  }

  // ───────────────────────────── internals ─────────────────────────────

  private async changeRole(role: FilesRole, primary?: PrimaryFiles): Promise<void> {
    const link = this.link ?? await this.start();
    await link.request('set-role', { role, ...(primary ? { primary } : {}) });
    this.role = role;
    if (role === 'off') await this.endHost(link);
  }

  private async endHost(link: HostLink): Promise<void> {
    this.role = 'off';
    this.link = null;
    await link.request('shutdown', {}).catch((e: Error) => this.o.log.warn(`ending the replication host of ${this.o.module}: ${e.message}`));
    link.end();
  }

  private async hello(link: HostLink): Promise<HelloResult> {
    const hello = await link.request('hello', { version: HOST_PROTOCOL_VERSION, daemonPid: process.pid });
    if (hello.version !== HOST_PROTOCOL_VERSION) throw new UserError(`it speaks version ${hello.version} of the host protocol, this daemon ${HOST_PROTOCOL_VERSION}`);
    return hello;
  }

  private adopt(link: HostLink, hello: HelloResult): void {
    (link as { pid: number }).pid = hello.pid;
    this.link = link;
    this.role = hello.role;
    this.snap = hello.snapshot;
    void link.closed.then((why) => this.onClosed(link, why));
  }

  /** Starts a host and attaches to it. */
  private async start(): Promise<HostLink> {
    const child = (this.o.spawn ?? spawnReplicationHost)(this.o.home, this.o.module);
    let exited: string | null = null;
    void child.exited.then((how) => { exited = how; });
    const sockPath = hostPaths.socket(this.o.home, this.o.module);
    const deadline = this.clock.mono() + (this.o.startTimeoutMs ?? HOST_START_TIMEOUT_MS);
    for (;;) {
      if (exited !== null) {
        throw new UserError(`the replication host of ${this.o.module} (pid ${child.pid}) ${exited} before it served`, `see \`tandem log -m ${this.o.module}\``);
      }
      const sock = await connectUnix(sockPath).catch(() => null);
      if (sock) {
        const link = new HostLink(sock, child.pid, (m) => this.onEvent(link, m));
        const hello = await this.hello(link).catch((e: Error) => { link.end(); throw e; });
        if (hello.pid !== child.pid) {
          link.end();
          throw new UserError(`another replication host (pid ${hello.pid}) serves ${this.o.module} on ${sockPath}, not the one just started (pid ${child.pid})`,
            'restart the daemon: it reattaches to the running host');
        }
        this.adopt(link, hello);
        this.o.log.info(`replication host of ${this.o.module} started (pid ${child.pid})`);
        return link;
      }
      if (this.clock.mono() > deadline) {
        throw new UserError(`the replication host of ${this.o.module} (pid ${child.pid}) did not answer on ${sockPath} within ${(this.o.startTimeoutMs ?? HOST_START_TIMEOUT_MS) / 1000} s`,
          `see \`tandem log -m ${this.o.module}\``);
      }
      await new Promise<void>((r) => this.clock.after(50, r));
    }
  }

  private onEvent(link: HostLink, m: HostToDaemon & { t: 'ev' }): void {
    if (link !== this.link) return;
    switch (m.ev) {
      case 'replication-failed': return this.o.replicationFailed(m.reason);
      case 'copy-behind': return this.o.copyBehind(m.reason);
      case 'snapshot': this.snap = m.snapshot; return;
      case 'begin-copy': {
        const begin = this.copyHandlers.get(m.rid);
        const answer = (ok: boolean) => link.request('copy-answer', { rid: m.rid, ok }).catch(() => {});
        if (!begin) return void answer(false);
        begin().then(() => answer(true), () => answer(false));
        return;
      }
    }
  }

  private onClosed(link: HostLink, why: string): void {
    if (link !== this.link) return; // ended on purpose
    this.link = null;
    const role = this.role;
    this.role = 'off';
    if (role === 'off') {
      this.o.log.warn(`the replication host of ${this.o.module} (pid ${link.pid}) ended (${why})`);
      return;
    }
    const reason = `the replication host of ${this.o.module} (pid ${link.pid}) died while serving the ${role} layout (${why})`;
    this.o.log.error(`${reason}: the application works on a dead mount; the module is stopped here (forced) and started again`);
    this.o.hostLost(reason);
  }
}

function connectUnix(p: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(p);
    s.once('connect', () => { s.removeAllListeners('error'); resolve(s); });
    s.once('error', reject);
  });
}

/**
 * Starts module `module`'s replication host: `tandem __replication-host -m MODULE`, in a session of its own (it
 * outlives the daemon and is not in its process group), stdout and stderr appended to the module's log.
 */
export function spawnReplicationHost(home: Home, module: string): SpawnedHost {
  const [file, ...args] = tandemArgv();
  const logFile = homePaths.moduleLog(home, module);
  fsSync.mkdirSync(`${home.root}/log`, { recursive: true, mode: 0o700 });
  const out = fsSync.openSync(logFile, 'a', 0o600);
  try {
    const child = spawn(file!, [...args, HOST_SUBCOMMAND, '-m', module], {
      detached: true, stdio: ['ignore', out, out],
      env: { ...process.env, TANDEM_HOME: home.root, TANDEM_RUN_DIR: home.runDir },
    });
    child.unref();
    const exited = new Promise<string>((resolve) => {
      child.once('error', (e) => resolve(`could not start (${e.message})`));
      child.once('exit', (code, sig) => resolve(sig ? `was killed by ${sig}` : `exited with ${code}`));
    });
    if (child.pid === undefined) return { pid: 0, exited };
    return { pid: child.pid, exited };
  } finally {
    fsSync.closeSync(out);
  }
}

/** SIGKILL `pid` if its command line is a replication host's (never another process that reused the pid). */
export async function killHost(pid: number): Promise<void> {
  const cmd = await fs.readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  if (!cmd.split('\0').includes(HOST_SUBCOMMAND)) return;
  process.kill(pid, 'SIGKILL');
}
