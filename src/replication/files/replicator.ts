/**
 * File replication of one mirror module with `<rfs>` on one node (docs/design/replication.md): the `Replicator` the
 * module driver uses. It takes the roles the engine's plans give it (`setRole`) and its directives (`direct`), and
 * wires the pieces, each in its own file:
 *
 *   sink.ts          PRIM/ALONE: what becomes of every change of the application (modes: ../core/primary.ts)
 *   reint-source.ts  PRIM/ALONE: the answers to a returning node's reintegration, and the freeze of its final pass
 *   reint-target.ts  SECOND (transient): the passes that bring this copy up to date, then the live stream
 *   secondary.ts     SECOND: the live stream's receiver, and reattaching after a swap (../core/secondary.ts)
 *   crash-markers.ts the tree-dirty marker and the activity log, so that a crashed node's copy is compared
 *
 * Nothing here watches the engine: the engine tells (`PrimaryFiles` with the plan step, `outdated`, `follow`). The
 * replicator tells the engine back through its callbacks (`replicationFailed`, `copyBehind`), once per fact.
 * Timers go through the Clock.
 */
import path from 'node:path';
import type { MirrorModuleConfig, ReplicatedDir } from '../../config/types.js';
import { BugError } from '../../errors.js';
import type { Home } from '../../home.js';
import { realClock } from '../../platform/clock/real.js';
import type { Clock } from '../../platform/clock/types.js';
import { syncFilesystem } from '../../platform/syncfs.js';
import { enterPrimary, enterSecondary, recover, type LayoutSystem, type PrimaryLayout, type SecondaryLayout } from '../layout/index.js';
import type { Channel } from '../stream/channel.js';
import { connectChannel } from '../stream/channel.js';
import { ReplicationError } from '../stream/errors.js';
import type {
  FilesRole, PrimaryFiles, ReintegrateRequest, ReintegrationProgress, ReplicationDirective, ReplicationStatus, Replicator,
} from '../types.js';
import { CrashMarkers } from './crash-markers.js';
import { CtlError, CtlPeer } from './ctl.js';
import { ReintegrationSource } from './reint-source.js';
import { ReintegrationTarget } from './reint-target.js';
import { SecondaryStream } from './secondary.js';
import { PrimarySink, type SinkLog } from './sink.js';

export { FINAL_PASS_BYTES, MAX_PASSES } from './reint-target.js';
export { FREEZE_LIMIT_MS } from './reint-source.js';

export type ReplicatorLog = SinkLog;

export interface FileReplicatorOptions {
  module: string;
  self: string;
  peer: string;
  cfg: MirrorModuleConfig;
  home: Home;
  key: Buffer;
  /** where the peer's replication listener is, and this node's address on that LAN */
  peerEndpoint: { host: string; port: number; localAddress: string };
  log: ReplicatorLog;
  /** posts the engine event `replication-failed` */
  replicationFailed: (reason: string) => void;
  /** posts the engine event `copy-behind` (a SECOND could not apply a change it acknowledged on receipt) */
  copyBehind?: (reason: string) => void;
  layoutSystem?: LayoutSystem;
  /** makes a filesystem's dirty data durable (syncfs); default `sync -f DIR` with a timeout (platform/syncfs.ts) */
  syncFs?: (dir: string) => Promise<void>;
  clock?: Clock;
}

const isLinkError = (e: unknown) =>
  e instanceof ReplicationError || (e instanceof CtlError && ['EAGAIN', 'EGEN', 'EBUSY', 'ENOTPRIM'].includes(e.code ?? ''));

export class FileReplicator implements Replicator {
  private role: FilesRole = 'off';
  private roleChain: Promise<void> = Promise.resolve();
  private readonly dirs: ReplicatedDir[];
  private readonly clock: Clock;
  private primaryLayout: PrimaryLayout | null = null;
  private secondaryLayout: SecondaryLayout | null = null;
  private backings: string[] = [];
  private recovered = false;
  private lastServed: ReplicationStatus['lastReintegration'] = null;
  private readonly markers: CrashMarkers;
  private readonly sink: PrimarySink;
  private readonly source: ReintegrationSource;
  private readonly target: ReintegrationTarget;
  private readonly secondary: SecondaryStream;

  constructor(private readonly o: FileReplicatorOptions) {
    if (!o.cfg.rfs) throw new BugError(`FileReplicator built for module ${o.module}, which has no <rfs>`);
    const rfs = o.cfg.rfs;
    this.dirs = rfs.replicated;
    this.clock = o.clock ?? realClock;
    const stateDir = path.join(o.home.root, 'state', `${o.module}.files`);
    const liveness = this.liveness();
    const common = { module: o.module, peer: o.peer, dirs: this.dirs, clock: this.clock, log: o.log };
    this.markers = new CrashMarkers(stateDir, this.dirs.length, o.syncFs ?? ((d) => syncFilesystem(d)), (m) => o.log.warn(m));
    this.sink = new PrimarySink({
      ...common, rfs, stateDir, liveness, awaitMs: Math.max(o.cfg.heart.timeoutMs, 5000), replicationFailed: o.replicationFailed,
    });
    this.source = new ReintegrationSource({
      ...common, self: o.self, sink: this.sink,
      layout: () => (this.primaryLayout ? { layout: this.primaryLayout, backings: this.backings } : null),
      finished: (r) => { this.lastServed = r; },
      logged: (i) => this.markers.logged(i),
    });
    const connect = () => this.connect();
    this.secondary = new SecondaryStream({ ...common, rfs, markers: this.markers, liveness, connect, copyBehind: o.copyBehind ?? (() => {}) });
    this.target = new ReintegrationTarget({
      ...common, home: o.home, stateDir, markers: this.markers, liveness, connect,
      startStream: (ch, gen) => this.secondary.start(ch, gen),
    });
  }

  // ───────────────────────────── Replicator ─────────────────────────────

  /** In-process: nothing outlives the process that built it. */
  async reattach(): Promise<null> {
    return null;
  }

  /** In-process: always up to date. */
  async refresh(_timeoutMs: number): Promise<void> {}

  setRole(role: FilesRole, primary?: PrimaryFiles): Promise<void> {
    const next = this.roleChain.then(() => this.changeRole(role, primary));
    this.roleChain = next.catch(() => {});
    return next;
  }

  direct(d: ReplicationDirective): void {
    switch (d.kind) {
      case 'outdated':
        if (this.role === 'primary') this.sink.outdated(d.gen, d.peerHolds);
        return;
      case 'follow':
        if (this.role === 'secondary') this.secondary.follow(d.gen);
        return;
      case 'unfollow':
        this.secondary.unfollow();
        return;
    }
  }

  async reintegrate(req: ReintegrateRequest): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      if (req.signal.aborted) throw new Error('reintegration aborted');
      if (this.role !== 'secondary') throw new BugError('reintegration asked while the replicated directories are not in the secondary layout');
      if (this.secondary.liveGen !== null && this.secondary.liveGen === req.sourceGen) return;
      this.secondary.copying(true);
      try {
        await this.target.run(req, this.backings);
        return;
      } catch (e) {
        if (req.signal.aborted) throw new Error('reintegration aborted');
        if (!isLinkError(e)) throw e;
        this.o.log.warn(`reintegration from ${req.from} (attempt ${attempt}): ${(e as Error).message}; retrying`);
        await new Promise<void>((resolve) => {
          const cancel = this.clock.after(Math.min(5000, 500 * attempt), done);
          function done() { req.signal.removeEventListener('abort', onAbort); resolve(); }
          function onAbort() { cancel(); done(); }
          req.signal.addEventListener('abort', onAbort);
        });
      } finally {
        this.secondary.copying(false);
      }
    }
  }

  progress(): ReintegrationProgress | null {
    return this.target.progress();
  }

  alarm(): string | null {
    const why = this.secondary.outdated;
    return why ? `the copy of ${this.o.module} could not apply a change (${why}); it is outdated until reintegrated` : null;
  }

  status(): ReplicationStatus {
    const mode = this.role === 'primary'
      ? (this.source.active ? 'reintegrating' : ({ off: 'off', record: 'recording', awaiting: 'waiting', live: 'live', failing: 'failing' } as const)[this.sink.mode])
      : this.role === 'secondary' ? (this.target.active ? 'reintegrating' : this.secondary.liveGen ? 'live' : 'idle') : 'off';
    const last = [this.lastServed, this.target.lastReintegration].filter((x) => x !== null).sort((a, b) => a.at.localeCompare(b.at)).at(-1) ?? null;
    const p = this.sink.traffic();
    const q = this.secondary.traffic();
    const traffic = {
      bytesSent: p.bytesSent + q.bytesSent, bytesReceived: p.bytesReceived + q.bytesReceived, changesSent: p.changes, changesReceived: q.changes,
      inFlight: p.inFlight, queued: p.queued, ackRttMs: p.ackRttMs, backlog: q.backlog, backlogBytes: q.backlogBytes,
    };
    return { role: this.role, mode, dirs: this.dirs.map((d) => d.dir), quarantines: this.target.quarantineList, lastReintegration: last, traffic };
  }

  /** End of the process that serves the layout (the replication host): the layout cannot outlive it. */
  async close(): Promise<void> {
    if (this.role !== 'off') this.o.log.warn(`the replicated directories of ${this.o.module} leave the ${this.role} layout`);
    await this.setRole('off').catch((e: Error) => this.o.log.error(`leaving the layout: ${e.message}`));
  }

  /** A replication channel the peer opened to this node (the host's listener routes it here). */
  accept(ch: Channel): void {
    const ctl = new CtlPeer(ch, this.liveness());
    ctl.serve((b) => this.source.handle(ctl, b));
    void ch.closed.then((e) => this.source.end(`channel closed${e ? `: ${e.message}` : ''}`, ctl));
  }

  // ───────────────────────────── roles ─────────────────────────────

  private async changeRole(role: FilesRole, primary?: PrimaryFiles): Promise<void> {
    if (role === this.role && (this.recovered || role !== 'off')) return;
    if (this.role === 'primary') await this.leavePrimary();
    else if (this.role === 'secondary') await this.leaveSecondary();
    this.role = 'off';
    if (!this.recovered) {
      for (const s of await recover(this.layoutReq())) this.o.log.warn(`replicated dir ${s.dir}: ${s.did}`);
      this.recovered = true;
    }
    if (role === 'primary') await this.enterPrimaryRole(primary);
    else if (role === 'secondary') await this.enterSecondaryRole();
    this.role = role;
  }

  private layoutReq() {
    return {
      dirs: this.dirs.map((d) => d.dir), runDir: this.o.home.runDir, module: this.o.module,
      ...(this.o.layoutSystem ? { system: this.o.layoutSystem } : {}), log: (l: string) => this.o.log.info(l),
    };
  }

  private async enterPrimaryRole(p: PrimaryFiles | undefined): Promise<void> {
    if (!p) throw new BugError('entering the primary layout without its generation (plan step `files` without `primary`)');
    const dirty = await this.markers.isDirty();
    await this.markers.markDirty();
    const activity = await this.markers.openActivity();
    await this.sink.enter(p, activity, dirty);
    try {
      this.primaryLayout = await enterPrimary({
        ...this.layoutReq(), sinkFor: (dir) => this.sink.sinkFor(this.dirIndex(dir)),
        notReplicatedFor: (dir) => this.dirs.find((d) => d.dir === dir)?.notreplicated ?? [],
        activityFor: (dir) => {
          const log = activity[this.dirIndex(dir)]!;
          return { dir: log.dir, epoch: log.counter };
        },
      });
    } catch (e) {
      await this.sink.leave();
      throw e;
    }
    this.backings = this.primaryLayout.dirs.map((d) => d.backing);
    this.sink.attachLayout(this.primaryLayout, this.backings);
    this.o.log.info(`replicated dirs of ${this.o.module} served through tandem (${this.sink.mode === 'record' ? 'recording changes for the peer' : `waiting for ${this.o.peer} to attach`})`);
  }

  private async leavePrimary(): Promise<void> {
    this.source.end('leaving the primary role');
    this.primaryLayout = null;
    const clean = await this.sink.leave();
    if (clean) await this.markers.clearDirty(this.backings);
    this.backings = [];
  }

  private async enterSecondaryRole(): Promise<void> {
    this.secondaryLayout = await enterSecondary(this.layoutReq());
    this.backings = this.secondaryLayout.dirs.map((d) => d.backing);
    this.secondary.enter(this.backings);
  }

  private async leaveSecondary(): Promise<void> {
    await this.secondary.leave();
    const layout = this.secondaryLayout;
    this.secondaryLayout = null;
    await layout?.leave();
    this.backings = [];
  }

  private dirIndex(dir: string): number {
    const i = this.dirs.findIndex((d) => d.dir === dir);
    if (i < 0) throw new BugError(`no replicated dir ${dir}`);
    return i;
  }

  /**
   * Keepalive of the live stream, from the module's heartbeat settings: a silent replication channel (its LAN cut
   * while heartbeats still pass on another) is given up after twice the heartbeat timeout (at least 2 s), so that
   * writes do not wait longer than that before the primary goes ALONE.
   */
  private liveness(): { heartbeatMs: number; deadMs: number } {
    const { pulseMs, timeoutMs } = this.o.cfg.heart;
    return { heartbeatMs: Math.max(100, Math.min(pulseMs, 1000)), deadMs: Math.max(2 * timeoutMs, 2000) };
  }

  private connect(): Promise<Channel> {
    const e = this.o.peerEndpoint;
    return connectChannel({ host: e.host, port: e.port, localAddress: e.localAddress, self: this.o.self, peer: this.o.peer, module: this.o.module, key: this.o.key });
  }
}
