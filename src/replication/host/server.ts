/**
 * The host side of the wire (protocol.ts): serves one module's `Replicator` (a FileReplicator in the replication
 * host process, main.ts) to whichever daemon is attached. At most one daemon is attached: a new `hello` replaces
 * the connection before it (a restarted daemon whose predecessor's socket the kernel has not closed yet).
 *
 * Contracts:
 * - Reports are never lost while no daemon is attached: `replicationFailed` is held until the engine's `outdated`
 *   directive arrives (and repeated in every `hello` until then: the daemon that got it may have died before
 *   persisting); the held write stays unacknowledged meanwhile (the sink holds it: nothing here acknowledges).
 *   `copyBehind` is held until a daemon received it.
 * - A reintegration belongs to the daemon that asked: when that daemon goes away, it is aborted (the next daemon
 *   decides again).
 * - The snapshot (`tandem status` data) is pushed when it changed: after each request, and checked every
 *   SNAPSHOT_MS (Clock).
 */
import fs from 'node:fs/promises';
import net from 'node:net';
import { errorBody, LineSplitter } from '../../daemon/control.js';
import { BugError, UserError } from '../../errors.js';
import type { Cancel, Clock } from '../../platform/clock/types.js';
import type { FilesRole, Replicator } from '../types.js';
import {
  decodeRequest, encodeLine, HOST_PROTOCOL_VERSION, MAX_HOST_LINE,
  type HelloResult, type HostEvent, type HostRequest, type HostSnapshot, type HostToDaemon,
} from './protocol.js';

export const SNAPSHOT_MS = 500;

export interface HostServerLog {
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
}

export interface HostServerOptions {
  socketPath: string;
  module: string;
  /** TANDEM_HOME root (checked by the daemon at hello) */
  home: string;
  log: HostServerLog;
  clock: Clock;
  /** called once a `shutdown` was answered: the layouts are left; the process should end */
  onShutdown: () => void;
}

class Conn {
  readonly splitter = new LineSplitter(MAX_HOST_LINE);
  greeted = false;
  dead = false;
  constructor(readonly sock: net.Socket) {}
  send(m: HostToDaemon): boolean {
    if (this.dead) return false;
    this.sock.write(encodeLine(m));
    return true;
  }
}

export class ReplicationHostServer {
  private server: net.Server | null = null;
  private target: Replicator | null = null;
  private role: FilesRole = 'off';
  private attached: Conn | null = null;
  private failed: string | null = null;
  private behind: string | null = null;
  private lastSnapshot = '';
  private snapshotTimer: Cancel | null = null;
  private reintegrations = new Map<number, { ac: AbortController; owner: Conn; answer: ((ok: boolean) => void) | null }>();
  private shuttingDown = false;
  private served!: (t: Replicator) => void;
  /** resolved by `serve`: requests that arrive while the host still starts (binds `<rfs port>`) wait for it */
  private readonly ready = new Promise<Replicator>((r) => { this.served = r; });

  constructor(private readonly o: HostServerOptions) {}

  /**
   * Listens on the socket (mode 0600). A socket file nobody answers on (a host that died) is replaced; one a live
   * process answers on is refused: another host serves this module.
   */
  async listen(): Promise<void> {
    const p = this.o.socketPath;
    const st = await fs.lstat(p).catch(() => null);
    if (st) {
      if (!st.isSocket()) throw new UserError(`${p} exists and is not a socket. Remove it, then start the module again.`);
      if (await answers(p)) throw new UserError(`another replication host already serves module ${this.o.module} (it answers on ${p}).`, 'only one host per module; it is reattached by the daemon');
      await fs.rm(p, { force: true });
    }
    const server = net.createServer((sock) => this.onConnection(sock));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      const old = process.umask(0o177);
      try {
        server.listen(p, () => resolve());
      } finally {
        process.umask(old);
      }
    });
    this.server = server;
    this.snapshotTimer = this.o.clock.every(SNAPSHOT_MS, () => this.pushSnapshot());
  }

  /**
   * Starts answering requests with `target`. The socket listens first (so that a second host for the module is
   * refused before it binds anything), so a daemon may attach and ask before this: its requests wait here (a host
   * that fails to start ends, and the daemon's pending requests reject with the connection).
   */
  serve(target: Replicator): void {
    this.target = target;
    this.served(target);
  }

  /** The FileReplicator's `replicationFailed`: to the attached daemon, else held for the next. */
  replicationFailed(reason: string): void {
    this.failed = reason;
    if (!this.emit({ ev: 'replication-failed', reason })) {
      this.o.log.warn(`a write could not be replicated (${reason}) while no daemon is attached: it is held, unacknowledged, until a daemon reattaches and persists a new generation`);
    }
  }

  /** The FileReplicator's `copyBehind`: to the attached daemon, else held for the next. */
  copyBehind(reason: string): void {
    if (this.emit({ ev: 'copy-behind', reason })) return;
    this.behind = reason;
    this.o.log.warn(`this copy could not apply a change it acknowledged (${reason}) while no daemon is attached: reported at reattach`);
  }

  get daemonAttached(): boolean {
    return this.attached !== null;
  }

  async close(): Promise<void> {
    this.snapshotTimer?.();
    this.snapshotTimer = null;
    for (const r of this.reintegrations.values()) r.ac.abort();
    if (this.attached) {
      this.attached.dead = true;
      this.attached.sock.end();
    }
    const s = this.server;
    this.server = null;
    if (s) await new Promise<void>((r) => s.close(() => r()));
    await fs.rm(this.o.socketPath, { force: true });
  }

  // ───────────────────────────── connections ─────────────────────────────

  private onConnection(sock: net.Socket): void {
    const c = new Conn(sock);
    sock.on('error', () => {});
    sock.on('close', () => this.onClose(c));
    sock.on('data', (chunk: Buffer) => {
      if (c.dead) return;
      const lines = c.splitter.push(chunk);
      if (lines === 'overflow') return this.drop(c, `a line longer than ${MAX_HOST_LINE} bytes`);
      for (const line of lines) {
        let req: HostRequest;
        try {
          req = decodeRequest(line);
        } catch (e) {
          return this.drop(c, (e as Error).message);
        }
        void this.handle(c, req);
      }
    });
  }

  private drop(c: Conn, why: string): void {
    this.o.log.error(`replication host: unreadable request from the daemon (${why}); connection closed`);
    c.dead = true;
    c.sock.destroy();
  }

  private onClose(c: Conn): void {
    c.dead = true;
    for (const [rid, r] of this.reintegrations) {
      if (r.owner !== c) continue;
      r.ac.abort();
      r.answer?.(false);
      this.reintegrations.delete(rid);
    }
    if (this.attached !== c) return;
    this.attached = null;
    if (this.shuttingDown) return;
    this.o.log.warn(`replication host: the daemon detached; the replicated directories stay in the ${this.role} layout until a daemon reattaches`);
  }

  private emit(ev: HostEvent): boolean {
    return this.attached?.send({ t: 'ev', ...ev }) ?? false;
  }

  private snapshot(): HostSnapshot {
    const t = this.target;
    return { progress: t?.progress() ?? null, alarm: t?.alarm() ?? null, status: t?.status() ?? null };
  }

  private pushSnapshot(): void {
    if (!this.attached) return;
    const s = this.snapshot();
    const json = JSON.stringify(s);
    if (json === this.lastSnapshot) return;
    this.lastSnapshot = json;
    this.emit({ ev: 'snapshot', snapshot: s });
  }

  private async handle(c: Conn, req: HostRequest): Promise<void> {
    try {
      const result = await this.run(c, req);
      c.send({ t: 'res', id: req.id, ok: true, result: result ?? null });
      if (req.op === 'shutdown') {
        c.sock.end();
        this.o.onShutdown();
      }
    } catch (e) {
      c.send({ t: 'res', id: req.id, ok: false, error: errorBody(e) });
      if (req.op === 'hello') c.sock.end();
    }
    if (this.attached === c) this.pushSnapshot();
  }

  private async run(c: Conn, req: HostRequest): Promise<unknown> {
    if (req.op === 'hello') return this.hello(c, req.args.version, req.args.daemonPid);
    if (!c.greeted) throw new BugError(`request ${req.op} before hello`);
    const t = this.target ?? await this.ready;
    if (this.attached !== c) throw new UserError('another daemon attached to this replication host since; this connection is stale');
    switch (req.op) {
      case 'set-role':
        await t.setRole(req.args.role, req.args.primary);
        this.role = req.args.role;
        if (this.role !== 'primary') this.failed = null;
        return null;
      case 'direct':
        if (req.args.directive.kind === 'outdated') this.failed = null;
        t.direct(req.args.directive);
        return null;
      case 'reintegrate':
        return this.reintegrate(c, req.args.rid, req.args.req);
      case 'copy-answer': {
        const r = this.reintegrations.get(req.args.rid);
        const answer = r?.answer;
        if (r) r.answer = null;
        answer?.(req.args.ok);
        return null;
      }
      case 'abort-reintegration':
        this.reintegrations.get(req.args.rid)?.ac.abort();
        return null;
      case 'snapshot': {
        const s = this.snapshot();
        this.lastSnapshot = JSON.stringify(s);
        return s;
      }
      case 'shutdown':
        this.shuttingDown = true;
        this.o.log.info(`replication host: ending (asked by the daemon); leaving the ${this.role} layout`);
        await t.close();
        this.role = 'off';
        return null;
    }
  }

  private hello(c: Conn, version: number, daemonPid: number): HelloResult {
    if (version !== HOST_PROTOCOL_VERSION) {
      throw new UserError(`this replication host speaks version ${HOST_PROTOCOL_VERSION} of the host protocol, the daemon ${version}`,
        'the daemon was upgraded while this host kept serving: stop the module (`tandem stop -m M`) so that a new host starts');
    }
    const prev = this.attached;
    if (prev && prev !== c) {
      this.o.log.warn(`replication host: daemon ${daemonPid} attaches; the previous connection is closed`);
      prev.dead = true;
      prev.sock.destroy();
      this.onClose(prev);
    }
    c.greeted = true;
    this.attached = c;
    this.lastSnapshot = '';
    const behind = this.behind;
    this.behind = null;
    if (prev !== c) this.o.log.info(`replication host: daemon ${daemonPid} attached (${this.role} layout${this.failed ? `; a write waits for a new generation: ${this.failed}` : ''})`);
    const snapshot = this.snapshot();
    this.lastSnapshot = JSON.stringify(snapshot);
    return { version: HOST_PROTOCOL_VERSION, pid: process.pid, module: this.o.module, home: this.o.home, role: this.role, failed: this.failed, behind, snapshot };
  }

  private async reintegrate(c: Conn, rid: number, wire: import('./protocol.js').WireReintegrateRequest): Promise<null> {
    if (this.reintegrations.has(rid)) throw new BugError(`reintegration ${rid} is already running`);
    const ac = new AbortController();
    const entry: { ac: AbortController; owner: Conn; answer: ((ok: boolean) => void) | null } = { ac, owner: c, answer: null };
    this.reintegrations.set(rid, entry);
    try {
      await this.target!.reintegrate({
        ...wire, signal: ac.signal,
        beginCopy: () => new Promise<void>((resolve, reject) => {
          if (ac.signal.aborted || c.dead) return reject(new Error('reintegration abandoned'));
          entry.answer = (ok) => (ok ? resolve() : reject(new Error('reintegration abandoned')));
          c.send({ t: 'ev', ev: 'begin-copy', rid });
        }),
      });
      return null;
    } finally {
      entry.answer?.(false);
      this.reintegrations.delete(rid);
    }
  }
}

/** Whether a process accepts connections on the unix socket `p`. */
export function answers(p: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(p);
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}
