/**
 * File replication of one mirror module with `<rfs>` on one node (docs/design/replication.md): the `Replicator` the
 * module driver uses. One object plays both sides, according to the role the engine's plans give it.
 *
 * PRIMARY (PRIM/ALONE: the FUSE interception is mounted over each replicated dir, the application writes through it)
 *   Every change reaches `onChange` before the application's system call returns. By mode:
 *   - `live`: sent to the SECOND (`sender.replicate`); the call returns when the SECOND acknowledged it (applied;
 *     durable for syncs with async="none", received with async="second"). A change the SECOND did not take (link
 *     lost, nack for ENOSPC/EIO, timeout) is NOT acknowledged: mode `failing`, the engine gets `replication-failed`,
 *     and the change waits until the engine persisted a new generation (ALONE); it is then recorded and answered.
 *   - `record` (ALONE): written to the persisted change record (record/change-record.ts), base = the generation the
 *     peer holds, so that its return copies only what changed.
 *   - `awaiting` (PRIM after a swap: the ready SECOND reconnects): changes wait up to the heartbeat timeout for it,
 *     then it counts as a replication failure.
 * SECONDARY (SECOND: the replicated dirs are read-only for applications; the copy lives at the private backing path)
 *   `reintegrate` connects to the peer, catches up (below), then applies the live stream (stream/receiver.ts).
 *
 * ONLINE REINTEGRATION (the application keeps running on the primary): passes driven by the SECOND.
 *   pass 1: from the primary's change record when it is trusted, its base is the SECOND's generation and the
 *           SECOND's copy is exactly that generation (no crash since: the `tree-dirty` marker); else by comparing
 *           the trees (size/mtime, then SHA-256 of 64 KiB blocks), quarantining divergent files when asked.
 *   pass k: the changes the primary made during pass k-1 (an in-memory extent map started when pass k-1's plan was
 *           made), or a comparison when they cannot be trusted (a rename raced the copy: PlanMismatchError).
 *   final:  when a pass copied ≤ 8 MiB (or after 6 passes): the primary FREEZES its mounts (mutating operations
 *           wait, reads go on), the last delta is copied, then the stream switches to live and the mounts thaw. The
 *           freeze is the only pause the application sees (its length is logged and shown in status).
 * Bytes copied come from the primary's backing path at the time they are read; a range changed after it was read
 * is in the next pass's extent map, so the final frozen pass always leaves the copy equal to the source.
 *
 * TREE-DIRTY marker (state/<module>.files/tree-dirty): present while the local tree may hold changes not covered by
 * the generation it is labelled with — from mounting the interception (or starting to copy/apply) until a clean
 * exit (unmount with nothing unreplicated pending, or end of the live stream, then `sync -f`). A node that crashed
 * is always compared, never patched from a record.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { MirrorModuleConfig, ReplicatedDir } from '../../config/types.js';
import { writeDurably } from '../../daemon/state-store.js';
import { BugError } from '../../errors.js';
import type { Home } from '../../home.js';
import { syncFilesystem } from '../../platform/syncfs.js';
import type { AsyncChangeSink, Change as FuseChange } from '../fuse/index.js';
import { enterPrimary, enterSecondary, recover, type LayoutSystem, type PrimaryLayout, type SecondaryLayout } from '../layout/index.js';
import { ChangeRecord } from '../record/change-record.js';
import { ExtentMap } from '../record/extent-map.js';
import { fsChangeOf } from '../record/from-intercepted.js';
import { PlanApplier, PlanMismatchError, type SourceReader } from '../reintegrate/apply-plan.js';
import { listTree, planFromManifests, withBlockRanges } from '../reintegrate/compare.js';
import { planFromJson, planToJson, type Plan, type Range } from '../reintegrate/plan.js';
import { listQuarantines } from '../reintegrate/quarantine.js';
import { localRecordSource, planFromRecord } from '../reintegrate/record-plan.js';
import { Applier } from '../stream/apply.js';
import type { Channel } from '../stream/channel.js';
import { connectChannel } from '../stream/channel.js';
import { ReplicationError } from '../stream/errors.js';
import { compileFilter } from '../stream/paths.js';
import { receiveChanges, type Receiver } from '../stream/receiver.js';
import { createSender, type ReplicationSender } from '../stream/sender.js';
import type {
  FilesRole, ReintegrateRequest, ReintegrationProgress, ReplicationStatus, ReplicationView, Replicator,
} from '../types.js';
import { CtlError, CtlPeer, type CtlReply } from './ctl.js';
import {
  fetchManifest, MANIFEST_PAGE_BYTES, MANIFEST_PAGE_ENTRIES, passAnswer, passPlans, planChunk, remoteBlockRanges, SUMS_PAGE,
} from './remote-compare.js';
import { SourceTree } from './source-tree.js';
import { toStream } from './wire.js';

export const FINAL_PASS_BYTES = 8 << 20;
export const MAX_PASSES = 6;
/** a frozen primary thaws and drops the session if the SECOND has not finished the final pass by then */
export const FREEZE_LIMIT_MS = 120_000;
const READ_MAX = 1 << 20;

export interface ReplicatorLog {
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
}

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
  layoutSystem?: LayoutSystem;
  /** makes a filesystem's dirty data durable (syncfs); default `sync -f DIR` with a timeout (platform/syncfs.ts) */
  syncFs?: (dir: string) => Promise<void>;
}

type PrimaryMode = 'off' | 'record' | 'awaiting' | 'live' | 'failing';

interface Session {
  ctl: CtlPeer;
  startedAt: number;
  bytesServed: number;
  pass: number;
  recordMode: boolean;
  frozen: boolean;
  freezeTimer: NodeJS.Timeout | null;
  /** the last pass's plans (UTF-8 JSON per dir) when too large to answer inline: fetched with `plan` */
  plans?: Buffer[];
}

const isLinkError = (e: unknown) =>
  e instanceof ReplicationError || (e instanceof CtlError && ['EAGAIN', 'EGEN', 'EBUSY', 'ENOTPRIM'].includes(e.code ?? ''));

export class FileReplicator implements Replicator {
  private role: FilesRole = 'off';
  private roleChain: Promise<void> = Promise.resolve();
  private view: ReplicationView | null = null;
  private readonly dirs: ReplicatedDir[];
  private readonly stateDir: string;
  private primaryLayout: PrimaryLayout | null = null;
  private secondaryLayout: SecondaryLayout | null = null;
  private backings: string[] = [];
  private recovered = false;

  // primary side
  private mode: PrimaryMode = 'off';
  /** the generation `live`/`awaiting` replicate (the SECOND holds it) */
  private modeGen: string | null = null;
  private records: ChangeRecord[] | null = null;
  private segments: ExtentMap[] | null = null;
  private segmentsBroken = false;
  private sender: ReplicationSender | null = null;
  private waiters: Array<() => void> = [];
  private failTimer: NodeJS.Timeout | null = null;
  private awaitTimer: NodeJS.Timeout | null = null;
  private switching = false;
  private session: Session | null = null;
  private unreplicated = false;
  private unacked: { i: number; c: FuseChange }[] = [];
  /** live mode: paths (per dir) whose times changed since the SECOND last got them (see `sendTimes`) */
  private timesDirty: Set<string>[] = [];
  private timesTimer: NodeJS.Timeout | null = null;

  // secondary side
  private receiver: Receiver | null = null;
  private receiverApplier: Applier | null = null;
  private liveGen: string | null = null;
  private attachAfter = 0;
  private attaching = false;
  private copying: { applier: PlanApplier | null; doneBefore: number; startedAt: number } | null = null;

  private lastReintegration: ReplicationStatus['lastReintegration'] = null;
  private quarantines: ReplicationStatus['quarantines'] = [];
  private standingAlarm: string | null = null;

  constructor(private readonly o: FileReplicatorOptions) {
    if (!o.cfg.rfs) throw new BugError(`FileReplicator built for module ${o.module}, which has no <rfs>`);
    this.dirs = o.cfg.rfs.replicated;
    this.stateDir = path.join(o.home.root, 'state', `${o.module}.files`);
    void this.refreshQuarantines();
  }

  // ───────────────────────────── Replicator ─────────────────────────────

  setRole(role: FilesRole): Promise<void> {
    const next = this.roleChain.then(() => this.changeRole(role));
    this.roleChain = next.catch(() => {});
    return next;
  }

  observe(view: ReplicationView): void {
    this.view = view;
    if (this.role === 'primary') {
      const outdated = view.gen !== this.modeGen && view.state === 'ALONE';
      if ((this.mode === 'failing' || this.mode === 'awaiting' || this.mode === 'live') && outdated && !this.switching) {
        if (this.mode === 'live') this.dropLive('the engine started a new generation');
        void this.switchToRecord(this.modeGen);
      }
    } else if (this.role === 'secondary') {
      const p = view.peer;
      if (view.state === 'SECOND' && view.ready && !this.receiver && !this.attaching && !this.copying && p?.state === 'PRIM'
        && p.gen !== null && p.gen === view.gen && Date.now() >= this.attachAfter) {
        void this.attach(view.gen);
      }
    }
  }

  async reintegrate(req: ReintegrateRequest): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      if (req.signal.aborted) throw new Error('reintegration aborted');
      if (this.role !== 'secondary') throw new BugError('reintegration asked while the replicated directories are not in the secondary layout');
      if (this.receiver && this.liveGen !== null && this.liveGen === req.sourceGen) return;
      try {
        await this.syncOnce(req);
        return;
      } catch (e) {
        if (req.signal.aborted) throw new Error('reintegration aborted');
        if (!isLinkError(e)) throw e;
        this.o.log.warn(`reintegration from ${req.from} (attempt ${attempt}): ${(e as Error).message}; retrying`);
        await sleep(Math.min(5000, 500 * attempt), undefined, { signal: req.signal }).catch(() => {});
      }
    }
  }

  progress(): ReintegrationProgress | null {
    const c = this.copying;
    if (!c) return null;
    const p = c.applier?.progress();
    const done = c.doneBefore + (p?.bytesDone ?? 0);
    const secs = (performance.now() - c.startedAt) / 1000;
    return { bytesDone: done, bytesTotal: c.doneBefore + (p?.bytesTotal ?? 0), rateBytesPerS: secs > 0 ? Math.round(done / secs) : 0 };
  }

  alarm(): string | null {
    return this.standingAlarm;
  }

  status(): ReplicationStatus {
    const mode = this.role === 'primary'
      ? (this.session ? 'reintegrating' : ({ off: 'off', record: 'recording', awaiting: 'waiting', live: 'live', failing: 'failing' } as const)[this.mode])
      : this.role === 'secondary' ? (this.copying ? 'reintegrating' : this.receiver ? 'live' : 'idle') : 'off';
    return { role: this.role, mode, dirs: this.dirs.map((d) => d.dir), quarantines: this.quarantines, lastReintegration: this.lastReintegration };
  }

  /** Daemon shutdown: the layout cannot outlive this process (the FUSE server runs in it). */
  async close(): Promise<void> {
    if (this.role !== 'off') this.o.log.warn(`daemon stopping: the replicated directories of ${this.o.module} leave the ${this.role} layout`);
    await this.setRole('off').catch((e: Error) => this.o.log.error(`leaving the layout: ${e.message}`));
  }

  /** A replication channel the peer opened to this node (the daemon's listener routes it here). */
  accept(ch: Channel): void {
    const ctl = new CtlPeer(ch, this.liveness());
    ctl.serve((b, d) => this.handle(ctl, b, d));
    void ch.closed.then((e) => {
      if (this.session?.ctl === ctl) this.endSession(`channel closed${e ? `: ${e.message}` : ''}`);
    });
  }

  // ───────────────────────────── roles ─────────────────────────────

  private async changeRole(role: FilesRole): Promise<void> {
    if (role === this.role && (this.recovered || role !== 'off')) return;
    if (this.role === 'primary') await this.leavePrimary();
    else if (this.role === 'secondary') await this.leaveSecondary();
    this.role = 'off';
    if (!this.recovered) {
      for (const s of await recover(this.layoutReq())) this.o.log.warn(`replicated dir ${s.dir}: ${s.did}`);
      this.recovered = true;
    }
    if (role === 'primary') await this.enterPrimaryRole();
    else if (role === 'secondary') await this.enterSecondaryRole();
    this.role = role;
  }

  private layoutReq() {
    return {
      dirs: this.dirs.map((d) => d.dir), runDir: this.o.home.runDir, module: this.o.module,
      ...(this.o.layoutSystem ? { system: this.o.layoutSystem } : {}), log: (l: string) => this.o.log.info(l),
    };
  }

  private async enterPrimaryRole(): Promise<void> {
    const v = this.view;
    if (!v?.gen) throw new BugError('entering the primary layout without a data generation');
    await this.markDirty();
    this.unreplicated = false;
    if (v.state === 'PRIM') {
      this.setMode('awaiting', v.gen);
      this.awaitTimer = setTimeout(() => {
        if (this.mode === 'awaiting') this.fail(`${this.o.peer} did not connect its replication channel within ${this.awaitMs()} ms`);
      }, this.awaitMs());
    } else {
      await this.openRecords(v.prevGen ?? v.gen);
      this.setMode('record', null);
    }
    try {
      this.primaryLayout = await enterPrimary({
        ...this.layoutReq(), sinkFor: (dir) => this.sinkFor(dir),
        notReplicatedFor: (dir) => this.dirs.find((d) => d.dir === dir)?.notreplicated ?? [],
      });
    } catch (e) {
      await this.closeRecords(true);
      this.setMode('off', null);
      throw e;
    }
    this.backings = this.primaryLayout.dirs.map((d) => d.backing);
    this.o.log.info(`replicated dirs of ${this.o.module} served through tandem (${this.mode === 'record' ? 'recording changes for the peer' : `waiting for ${this.o.peer} to attach`})`);
  }

  private async leavePrimary(): Promise<void> {
    if (this.session) this.endSession('leaving the primary role');
    const failing = this.mode === 'failing' || this.mode === 'awaiting';
    const layout = this.primaryLayout;
    this.primaryLayout = null;
    this.setMode('off', null); // held changes fail (the application is stopped by now)
    const sender = this.sender;
    try {
      await layout?.leave();
      if (sender && !failing) {
        // the application is stopped and the mount gone: what it wrote without fsync must still reach the SECOND
        await sender.replicate({ dir: this.dirs[0]!.dir, op: 'sync', path: '.', datasync: false }).catch((e: Error) => {
          this.unreplicated = true;
          this.o.log.error(`the last changes may not have reached ${this.o.peer}: ${e.message}`);
        });
      }
    } finally {
      this.sender?.close();
      this.sender = null;
      await this.closeRecords(!failing);
      this.clearTimers();
    }
    if (this.unacked.length > 0) this.unreplicated = true; // streamed writes neither acknowledged nor recorded
    this.unacked = [];
    if (!failing && !this.unreplicated) await this.clearDirty(this.backings);
    this.backings = [];
  }

  private async enterSecondaryRole(): Promise<void> {
    this.secondaryLayout = await enterSecondary(this.layoutReq());
    this.backings = this.secondaryLayout.dirs.map((d) => d.backing);
  }

  private async leaveSecondary(): Promise<void> {
    const rx = this.receiver;
    if (rx) {
      rx.close();
      await rx.done;
    }
    await this.receiverApplier?.close();
    this.receiverApplier = null;
    const layout = this.secondaryLayout;
    this.secondaryLayout = null;
    await layout?.leave();
    this.backings = [];
  }

  // ───────────────────────────── primary: the sink ─────────────────────────────

  private sinkFor(dir: string): AsyncChangeSink {
    const i = this.dirs.findIndex((d) => d.dir === dir);
    return {
      onChange: (c) => this.onChange(i, c),
      onSync: (p, datasync) => this.onSync(i, p, datasync),
      syncInOrder: (p, datasync) => this.syncInOrder(i, p, datasync),
      // syncfs of the mount: every change before it durable on the SECOND (its syncfs of the copy)
      onSyncfs: () => this.onSync(i, '', false, true),
    };
  }

  private async onChange(i: number, c: FuseChange): Promise<void> {
    for (;;) {
      switch (this.mode) {
        case 'live': {
          const sender = this.sender!;
          const cs = toStream(this.dirs[i]!.dir, c);
          if (c.op === 'write') {
            // Data writes stream ahead, in order: write(2) returns once the change is queued; the next fsync (or
            // O_SYNC/O_DSYNC, which reach onSync) waits for it, acknowledgements being cumulative. A streamed write
            // the SECOND does not take is recorded once the engine persisted the new generation (flushUnacked).
            const noted = { op: 'write', path: c.path, offset: c.offset, data: { length: c.data.byteLength } } as unknown as FuseChange;
            const p = sender.replicate(cs[0]!);
            p.catch((e: Error) => {
              this.unacked.push({ i, c: noted });
              if (this.mode === 'record') this.flushUnacked();
              else this.onSendFailure(sender, e);
            });
            this.noteTimes(i, c);
            if (sender.stats().queued > 0) await p.catch(() => {}); // over the in-flight limit: the application waits
            return;
          }
          try {
            await Promise.all(cs.map((x) => sender.replicate(x)));
            this.noteTimes(i, c);
            return;
          } catch (e) {
            this.onSendFailure(sender, e as Error);
            continue;
          }
        }
        case 'record':
          this.recordChange(i, c);
          return;
        case 'off':
          this.unreplicated = true;
          throw new Error('the module left the primary role');
        default:
          await this.modeChanged();
      }
    }
  }

  private async onSync(i: number, p: string, datasync: boolean, syncfs = false): Promise<void> {
    for (;;) {
      switch (this.mode) {
        case 'live': {
          const sender = this.sender!;
          try {
            await sender.replicate({ dir: this.dirs[i]!.dir, op: 'sync', path: p || '.', datasync, ...(syncfs ? { syncfs } : {}) });
            return;
          } catch (e) {
            this.onSendFailure(sender, e as Error);
            continue;
          }
        }
        case 'record':
          return; // durable locally (the passthrough synced it); the record's trust does not need it on disk
        case 'off':
          throw new Error('the module left the primary role');
        default:
          await this.modeChanged();
      }
    }
  }

  /**
   * File times: the SECOND's own writes give its copy its own mtimes. The primary's times follow within a second
   * for every changed path (so that the size/mtime comparison of a later reintegration finds equal files equal);
   * not at each fsync, which would add a stat and a change to every commit.
   */
  private noteTimes(i: number, c: FuseChange) {
    const set = (this.timesDirty[i] ??= new Set());
    const parent = (p: string) => (p.includes('/') ? p.slice(0, p.lastIndexOf('/')) : '');
    switch (c.op) {
      case 'write': case 'truncate': case 'fallocate':
        set.add(c.path);
        break;
      case 'create': case 'mknod': case 'mkdir': case 'symlink':
        set.add(c.path);
        set.add(parent(c.path));
        break;
      case 'unlink': case 'rmdir':
        set.delete(c.path);
        set.add(parent(c.path));
        break;
      case 'rename':
        set.delete(c.from);
        set.add(c.to);
        set.add(parent(c.from));
        set.add(parent(c.to));
        break;
      default:
        return;
    }
    this.timesTimer ??= setTimeout(() => {
      this.timesTimer = null;
      const sender = this.sender;
      if (!sender || this.mode !== 'live') return;
      for (const [d, paths] of this.timesDirty.entries()) {
        if (paths?.size) void this.sendTimes(sender, d, [...paths].slice(0, 4096)).catch(() => {});
      }
    }, 1000);
  }

  private async sendTimes(sender: ReplicationSender, i: number, paths: string[]): Promise<void> {
    const set = this.timesDirty[i]!;
    for (const p of paths) set.delete(p);
    const root = this.backings[i]!;
    const ts = (ns: bigint): [number, number] => [Number(ns / 1_000_000_000n), Number(ns % 1_000_000_000n)];
    const sends: Promise<void>[] = [];
    for (const p of paths) {
      const st = await fs.lstat(p ? path.join(root, p) : root, { bigint: true }).catch(() => null);
      if (!st || sender !== this.sender) continue;
      sends.push(sender.replicate({ dir: this.dirs[i]!.dir, op: 'utimens', path: p || '.', atime: ts(st.atimeNs), mtime: ts(st.mtimeNs) }));
    }
    await Promise.all(sends);
  }

  /**
   * An fsync whose reply waits for the SECOND without holding later changes back (the FUSE worker serves other
   * requests meanwhile, so several commits can be in flight). Live: sent in order now; `done` settles when the
   * SECOND made it durable, or, if the SECOND did not take it, once the new generation is persisted (the data is
   * then recorded, and only local). Other modes: handled whole before anything after it.
   */
  private async syncInOrder(i: number, p: string, datasync: boolean): Promise<{ done: Promise<void> }> {
    if (this.mode !== 'live') {
      await this.onSync(i, p, datasync);
      return { done: Promise.resolve() };
    }
    const sender = this.sender!;
    const sent = sender.replicate({ dir: this.dirs[i]!.dir, op: 'sync', path: p || '.', datasync });
    const done = sent.catch(async (e: Error) => {
      this.onSendFailure(sender, e);
      // recorded once the new generation is persisted (record; or live again after a reintegration that followed)
      while (this.mode === 'failing' || this.mode === 'awaiting') await this.modeChanged();
      if (this.mode === 'off') throw new Error('the module left the primary role');
    });
    return { done };
  }

  /** Streamed writes the SECOND did not acknowledge go into the record, before anything that waited behind them. */
  private flushUnacked() {
    for (const u of this.unacked.splice(0)) this.recordChange(u.i, u.c);
  }

  private recordChange(i: number, c: FuseChange) {
    this.records![i]!.recordIntercepted(c);
    if (this.segments) {
      const f = fsChangeOf(c);
      if (f === 'unknown') this.segmentsBroken = true;
      else if (f !== 'none') this.segments[i]!.apply(f);
    }
  }

  private setMode(m: PrimaryMode, gen: string | null) {
    this.mode = m;
    this.modeGen = gen;
    for (const d of this.primaryLayout?.dirs ?? []) d.mount.streamWrites?.(m === 'live');
    for (const w of this.waiters.splice(0)) w();
  }

  private modeChanged(): Promise<void> {
    return new Promise((r) => this.waiters.push(r));
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

  private awaitMs(): number {
    return Math.max(this.o.cfg.heart.timeoutMs, 5000);
  }

  private onSendFailure(sender: ReplicationSender, e: Error) {
    if (this.sender !== sender || this.mode !== 'live') return;
    this.fail(`replication to ${this.o.peer} failed: ${e.message}`);
  }

  /** The SECOND missed (or may have missed) a change: hold changes until the engine persisted a new generation. */
  private fail(reason: string) {
    const gen = this.modeGen;
    this.sender?.close();
    this.sender = null;
    this.clearTimers();
    this.setMode('failing', gen);
    this.o.log.warn(`${reason}; changes wait until ${this.o.peer} is marked outdated`);
    this.o.replicationFailed(reason);
    this.failTimer = setInterval(() => {
      if (this.mode === 'failing') this.o.replicationFailed(reason);
    }, 2000);
    // the engine may already be ALONE on another generation (it noticed the peer's loss first)
    if (this.view && this.view.state === 'ALONE' && this.view.gen !== gen) void this.switchToRecord(gen);
  }

  private dropLive(why: string) {
    this.o.log.warn(`live replication to ${this.o.peer} stopped: ${why}`);
    this.sender?.close();
    this.sender = null;
    this.mode = 'failing';
    for (const d of this.primaryLayout?.dirs ?? []) d.mount.streamWrites?.(false);
  }

  private async switchToRecord(base: string | null) {
    this.switching = true;
    try {
      this.clearTimers();
      await this.openRecords(base ?? this.view?.prevGen ?? this.view!.gen!, true);
      this.flushUnacked();
      this.setMode('record', null);
      this.o.log.info(`recording changes for ${this.o.peer} (its copy holds generation ${base ?? 'unknown'})`);
    } catch (e) {
      this.o.log.error(`cannot open the change record: ${(e as Error).message}; changes stay blocked`);
    } finally {
      this.switching = false;
    }
  }

  private clearTimers() {
    if (this.timesTimer) clearTimeout(this.timesTimer);
    this.timesTimer = null;
    this.timesDirty = [];
    if (this.failTimer) clearInterval(this.failTimer);
    if (this.awaitTimer) clearTimeout(this.awaitTimer);
    this.failTimer = this.awaitTimer = null;
  }

  private recordDir(i: number) {
    return path.join(this.stateDir, 'record', String(i));
  }

  /**
   * Opens the change records: a trusted record (closed cleanly) is continued with its own base; otherwise a new one
   * starts with `base`, the generation the peer holds now (with `fresh`, always a new one).
   */
  private async openRecords(base: string, fresh = false): Promise<void> {
    await this.closeRecords(false);
    const out: ChangeRecord[] = [];
    for (let i = 0; i < this.dirs.length; i++) {
      const dir = this.recordDir(i);
      let r: ChangeRecord | null = null;
      if (!fresh) {
        const existing = await ChangeRecord.storedBase(dir);
        if (existing) {
          r = await ChangeRecord.open(dir, { baseGeneration: existing });
          if (!r.trusted() || (i > 0 && existing !== out[0]!.baseGeneration)) {
            await r.close({ clean: false });
            r = null;
          }
        }
      }
      out.push(r ?? await ChangeRecord.open(dir, { baseGeneration: base, begin: true }));
    }
    this.records = out;
  }

  private async closeRecords(clean: boolean): Promise<void> {
    const rs = this.records;
    this.records = null;
    for (const r of rs ?? []) await r.close({ clean }).catch((e: Error) => this.o.log.error(`closing the change record: ${e.message}`));
  }

  // ───────────────────────────── primary: reintegration server ─────────────────────────────

  private async handle(ctl: CtlPeer, b: Record<string, unknown>, data: Buffer | undefined): Promise<CtlReply> {
    void data;
    const op = b.op;
    if (op === 'begin') return this.begin(ctl, b);
    const s = this.session;
    if (!s || s.ctl !== ctl) throw new CtlError('no reintegration session on this channel', 'EAGAIN');
    switch (op) {
      case 'pass':
        return this.pass(s, b.final === true);
      case 'manifest': {
        const i = this.dirIndex(b.dir);
        if (b.after !== undefined && b.after !== null && typeof b.after !== 'string') throw new CtlError('after must be a path or null', 'EINVAL');
        return { body: await this.sourceTree(i).manifestPage((b.after as string | undefined) ?? null, this.dirs[i]!.notreplicated, MANIFEST_PAGE_ENTRIES, MANIFEST_PAGE_BYTES) };
      }
      case 'sums': {
        // one page of sums, computed when asked: nothing is kept per file between requests
        const i = this.dirIndex(b.dir);
        const blockSize = intIn(b.blockSize, 4096, 16 << 20, 'blockSize');
        const first = b.first === undefined ? 0 : intIn(b.first, 0, Math.floor(Number.MAX_SAFE_INTEGER / blockSize) - SUMS_PAGE, 'first');
        const count = b.count === undefined ? SUMS_PAGE : intIn(b.count, 1, SUMS_PAGE, 'count');
        const sums = await this.sourceTree(i).blockSums(b.path, blockSize, first, count);
        return { body: { first, count: sums.length, eof: sums.length < count }, data: Buffer.concat(sums) };
      }
      case 'plan':
        return { body: {}, data: planChunk(s.plans, this.dirIndex(b.dir), b.offset) };
      case 'read': {
        const i = this.dirIndex(b.dir);
        const length = intIn(b.length, 0, READ_MAX, 'length');
        const offset = intIn(b.offset, 0, Number.MAX_SAFE_INTEGER, 'offset');
        const data = await this.sourceTree(i).read(b.path, offset, length);
        s.bytesServed += data.length;
        return { body: {}, data };
      }
      case 'readlink': {
        const i = this.dirIndex(b.dir);
        return { body: { target: await this.sourceTree(i).readlink(b.path) } };
      }
      case 'done': {
        if (!s.frozen) throw new CtlError('done before the final pass', 'EPROTO');
        const gen = this.view!.gen!;
        ctl.answerNow(b.id as number, { live: true, gen });
        const ch = ctl.handoff();
        this.session = null;
        if (s.freezeTimer) clearTimeout(s.freezeTimer);
        this.goLive(ch, gen);
        const freezeMs = await this.thaw();
        const ms = Math.round(performance.now() - s.startedAt);
        this.lastReintegration = {
          mode: s.recordMode ? 'changes' : 'compare', bytes: s.bytesServed, ms, passes: s.pass, freezeMs, at: new Date().toISOString(),
        };
        this.o.log.info(`${this.o.peer} caught up: ${s.bytesServed} bytes sent in ${s.pass} passes, ${ms} ms, writes held ${freezeMs} ms; every change is replicated again`);
        return { body: { answered: true } };
      }
      default:
        throw new CtlError(`unknown request ${String(op)}`, 'EPROTO');
    }
  }

  private async begin(ctl: CtlPeer, b: Record<string, unknown>): Promise<CtlReply> {
    if (this.role !== 'primary' || !this.view?.gen) throw new CtlError(`${this.o.self} does not run ${this.o.module}`, 'ENOTPRIM');
    const gen = this.view.gen;
    if (typeof b.expectGen === 'string' && b.expectGen !== gen) throw new CtlError(`${this.o.self}'s generation is ${gen}, not ${b.expectGen}`, 'EGEN');
    if (b.attach === true) {
      if (this.mode !== 'awaiting' || b.targetGen !== gen || b.clean !== true) throw new CtlError('the copy must be reintegrated first', 'ERESYNC');
      ctl.answerNow(b.id as number, { live: true, gen });
      this.goLive(ctl.handoff(), gen);
      this.o.log.info(`${this.o.peer} attached as SECOND on generation ${gen}`);
      return { body: { answered: true } };
    }
    if (this.mode === 'live') {
      this.dropLive(`${this.o.peer} opened a new reintegration`);
      this.fail(`${this.o.peer} restarted its replication`);
      throw new CtlError('replication was live: retry once this node recorded the change', 'EAGAIN');
    }
    if (this.mode !== 'record' || this.switching) throw new CtlError(`not ready to reintegrate (${this.mode})`, 'EAGAIN');
    if (this.session) this.endSession('replaced by a new reintegration');
    const rs = this.records ?? [];
    const recordMode = b.full !== true && b.quarantine !== true && b.clean === true && rs.length === this.dirs.length
      && rs.every((r) => r.trusted() && r.baseGeneration === b.targetGen);
    this.session = { ctl, startedAt: performance.now(), bytesServed: 0, pass: 0, recordMode, frozen: false, freezeTimer: null };
    this.o.log.info(`${this.o.peer} reintegrates from generation ${gen} (${recordMode ? 'from the change record'
      : `by comparison: ${rs[0]?.untrustedReason() ?? (b.clean !== true ? 'its copy may hold changes of its own' : b.full === true ? 'full sync asked' : b.quarantine === true ? 'split brain' : `its generation ${String(b.targetGen)} is not the record's base ${rs[0]?.baseGeneration}`)}`})`);
    return { body: { gen, recordMode } };
  }

  private async pass(s: Session, final: boolean): Promise<CtlReply> {
    if (final && !s.frozen) {
      await this.freeze();
      s.frozen = true;
      s.freezeTimer = setTimeout(() => {
        if (this.session === s) this.endSession(`${this.o.peer} did not finish the final pass within ${FREEZE_LIMIT_MS} ms`);
      }, FREEZE_LIMIT_MS);
    }
    s.pass++;
    const previous = this.segments;
    const broken = this.segmentsBroken;
    this.segments = this.dirs.map(() => new ExtentMap());
    this.segmentsBroken = false;
    let maps: ExtentMap[] | null = null;
    if (s.pass === 1) maps = s.recordMode ? this.records!.map((r) => r.snapshot()) : null;
    else maps = previous && !broken ? previous : null;
    if (!maps) return { body: { compare: true } };
    const plans: string[] = [];
    for (const [i, m] of maps.entries()) {
      const excludes = this.dirs[i]!.notreplicated;
      plans.push(planToJson(await planFromRecord(m, localRecordSource(this.backings[i]!, excludes), { excludes })));
    }
    const a = passAnswer(plans); // too large for one answer: the SECOND fetches them in chunks (`plan`)
    if (a.paged) s.plans = a.paged;
    return { body: a.body };
  }

  private endSession(why: string) {
    const s = this.session;
    if (!s) return;
    this.session = null;
    this.segments = null;
    if (s.freezeTimer) clearTimeout(s.freezeTimer);
    if (s.frozen) void this.thaw();
    this.o.log.warn(`reintegration of ${this.o.peer} interrupted: ${why}`);
    s.ctl.close();
  }

  private goLive(ch: Channel, gen: string) {
    const rs = this.records;
    this.records = null;
    this.segments = null;
    this.clearTimers();
    void (async () => {
      for (const r of rs ?? []) {
        await r.close({ clean: false }).catch(() => {});
        await ChangeRecord.discard(r.dir).catch((e: Error) => this.o.log.warn(`discarding the change record: ${e.message}`));
      }
    })();
    const sender = createSender({
      channel: ch, module: this.o.module, generation: gen, mode: this.o.cfg.rfs!.async, dirs: this.dirs.map((d) => d.dir),
      ...this.liveness(),
    });
    sender.onFailure((e) => this.onSendFailure(sender, e));
    this.sender = sender;
    this.setMode('live', gen);
  }

  private freezeStartedAt = 0;
  private async freeze(): Promise<void> {
    this.freezeStartedAt = performance.now();
    for (const d of this.primaryLayout?.dirs ?? []) {
      await d.mount.freeze?.();
      await d.mount.sinkDrained?.(); // writes streamed before the freeze are recorded before the last delta is made
    }
  }

  private async thaw(): Promise<number> {
    for (const d of this.primaryLayout?.dirs ?? []) d.mount.thaw?.();
    return Math.round(performance.now() - this.freezeStartedAt);
  }

  private dirIndex(v: unknown): number {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v >= this.dirs.length) throw new CtlError(`no replicated dir #${String(v)}`, 'EINVAL');
    return v;
  }

  /** Where the peer's paths are opened: from the backing root, never following a symlink (source-tree.ts). */
  private sourceTree(i: number): SourceTree {
    return new SourceTree(this.backings[i]!);
  }

  // ───────────────────────────── secondary ─────────────────────────────

  private async syncOnce(req: ReintegrateRequest): Promise<void> {
    const ctl = new CtlPeer(await this.connect(), this.liveness());
    const onAbort = () => ctl.close(new Error('reintegration aborted'));
    req.signal.addEventListener('abort', onAbort);
    const t0 = performance.now();
    this.copying = { applier: null, doneBefore: 0, startedAt: t0 };
    try {
      const clean = !(await this.isDirty());
      const begun = await ctl.request({
        op: 'begin', expectGen: req.sourceGen, targetGen: this.view?.gen ?? null, clean, full: req.full, quarantine: req.quarantine,
      });
      const sourceGen = String(begun.body.gen);
      await req.beginCopy();
      await this.markDirty();
      let passes = 0;
      let last = Infinity;
      let total = 0;
      for (;;) {
        passes++;
        const final = passes >= MAX_PASSES || (passes > 1 && last <= FINAL_PASS_BYTES);
        const r = await ctl.request({ op: 'pass', final });
        const plans = await passPlans(ctl, r.body, this.dirs.length);
        let bytes = 0;
        for (let i = 0; i < this.dirs.length; i++) {
          if (plans) {
            try {
              bytes += await this.applyDir(i, planFromJson(plans[i]!), ctl, req.signal);
              continue;
            } catch (e) {
              if (!(e instanceof PlanMismatchError)) throw e;
              this.o.log.warn(`reintegration pass ${passes} of ${this.dirs[i]!.dir}: ${e.message} Comparing instead.`);
            }
          }
          bytes += await this.compareDir(i, ctl, { full: req.full, quarantine: req.quarantine && passes === 1 }, req.signal);
        }
        last = bytes;
        total += bytes;
        if (final) break;
      }
      let rx: Promise<void> | null = null;
      await ctl.request({ op: 'done' }, undefined, () => { rx = this.startReceiver(ctl.handoff(), sourceGen); });
      await rx!;
      const ms = Math.round(performance.now() - t0);
      this.lastReintegration = {
        mode: begun.body.recordMode === true ? 'changes' : 'compare', bytes: total, ms, passes, freezeMs: 0,
        at: new Date().toISOString(),
      };
      this.o.log.info(`reintegration from ${req.from} done: ${total} bytes copied in ${passes} passes, ${ms} ms; live replication of generation ${sourceGen}`);
      await this.refreshQuarantines();
    } catch (e) {
      ctl.close();
      throw e;
    } finally {
      this.copying = null;
      req.signal.removeEventListener('abort', onAbort);
    }
  }

  private async attach(gen: string) {
    this.attaching = true;
    try {
      const clean = !(await this.isDirty());
      if (!clean) {
        this.o.log.info(`not attaching to ${this.o.peer} on generation ${gen}: this copy may differ from it (unclean exit); it will be reintegrated`);
        this.attachAfter = Infinity;
        return;
      }
      const ctl = new CtlPeer(await this.connect(), this.liveness());
      let rx: Promise<void> | null = null;
      try {
        await this.markDirty();
        await ctl.request({ op: 'begin', attach: true, expectGen: gen, targetGen: gen, clean }, undefined, () => {
          rx = this.startReceiver(ctl.handoff(), gen);
        });
        await rx!;
        this.o.log.info(`attached to ${this.o.peer}: live replication of generation ${gen}`);
      } catch (e) {
        ctl.close();
        // refused before anything was applied: the copy is still exactly `gen`
        if (rx === null) await fs.rm(this.dirtyFile(), { force: true });
        throw e;
      }
    } catch (e) {
      this.attachAfter = Date.now() + 2000;
      this.o.log.warn(`attaching to ${this.o.peer}: ${(e as Error).message}`);
    } finally {
      this.attaching = false;
    }
  }

  private connect(): Promise<Channel> {
    const e = this.o.peerEndpoint;
    return connectChannel({ host: e.host, port: e.port, localAddress: e.localAddress, self: this.o.self, peer: this.o.peer, module: this.o.module, key: this.o.key });
  }

  /** Starts applying the live stream; resolves once the primary's hello (generation `gen`) was accepted. */
  private startReceiver(ch: Channel, gen: string): Promise<void> {
    const applier = new Applier({
      dirs: this.dirs.map((d, i) => ({ dir: d.dir, root: this.backings[i]!, filter: compileFilter(d.notreplicated) })),
    });
    let accepted!: () => void;
    const ok = new Promise<void>((r) => (accepted = r));
    const rx = receiveChanges({
      channel: ch, applier, mode: this.o.cfg.rfs!.async, log: (m) => this.o.log.warn(m), ...this.liveness(),
      acceptHello: (h) => {
        if (h.generation !== gen) return `generation ${h.generation}, expected ${gen}`;
        accepted();
        return null;
      },
    });
    this.receiver = rx;
    this.receiverApplier = applier;
    this.attachAfter = 0; // a copy that followed a live stream may attach again later (swap)
    this.liveGen = gen;
    const backings = [...this.backings];
    void rx.done.then(async (e) => {
      if (this.receiver === rx) {
        this.receiver = null;
        this.liveGen = null;
      }
      const failed = applier.failed;
      await applier.close();
      this.o.log.warn(`live replication from ${this.o.peer} ended${e ? `: ${e.message}` : ''}${failed ? `; a change failed: ${failed.message}` : ''}`);
      this.standingAlarm = failed ? `the copy of ${this.o.module} could not apply a change (${failed.message}); it is outdated until reintegrated` : null;
      if (!failed) await this.clearDirty(backings);
    });
    return Promise.race([
      ok,
      rx.done.then((e) => { throw e ?? new ReplicationError('link-lost', `${this.o.peer} closed the replication channel`); }),
    ]);
  }

  private async applyDir(i: number, plan: Plan, ctl: CtlPeer, signal: AbortSignal): Promise<number> {
    const cp = path.join(this.stateDir, 'reintegrate', String(i));
    await fs.rm(cp, { recursive: true, force: true });
    await fs.mkdir(cp, { recursive: true });
    const applier = new PlanApplier(plan, {
      targetRoot: this.backings[i]!, source: this.reader(ctl, i), checkpointDir: cp, signal,
      ...(plan.quarantine.length > 0 ? { quarantine: { root: this.quarantineRoot(i), generation: this.view?.gen ?? 'none' } } : {}),
    });
    const c = this.copying!;
    c.applier = applier;
    const rep = await applier.run();
    c.doneBefore += rep.bytesTransferred;
    c.applier = null;
    if (rep.quarantine) this.o.log.warn(`split brain: ${rep.quarantine.files} local file(s) of ${this.dirs[i]!.dir} kept in quarantine at ${rep.quarantine.dir}`);
    return rep.bytesTransferred;
  }

  private async compareDir(i: number, ctl: CtlPeer, o: { full: boolean; quarantine: boolean }, signal: AbortSignal): Promise<number> {
    const source = await fetchManifest(ctl, i);
    const target = await listTree(this.backings[i]!, this.dirs[i]!.notreplicated);
    const checkSince = BigInt(Date.now() - 3600_000) * 1_000_000n;
    let plan = planFromManifests(source, target, { trustMtime: !o.full, checkSince, quarantine: o.quarantine });
    const ranges = new Map<string, Range[]>();
    for (const p of plan.patches) {
      if (signal.aborted) throw new Error('reintegration aborted');
      ranges.set(p.path, await remoteBlockRanges(ctl, i, this.backings[i]!, p.path, plan.blockSize, p.size));
    }
    plan = withBlockRanges(plan, ranges);
    return this.applyDir(i, plan, ctl, signal);
  }

  private reader(ctl: CtlPeer, i: number): SourceReader {
    const enoent = (e: unknown) => {
      if (e instanceof CtlError && e.code) throw Object.assign(new Error(e.message), { code: e.code });
      throw e;
    };
    // read-ahead: up to READ_AHEAD requests in flight within the window the applier announced (willRead), so that
    // the copy does not wait a round trip per MiB; nothing is read outside the window
    const READ_AHEAD = 4;
    let window: { path: string; end: number } | null = null;
    const ahead = new Map<string, Promise<Buffer>>();
    const fetch = (p: string, offset: number, length: number) => {
      const pr = ctl.request({ op: 'read', dir: i, path: p, offset, length }).then((r) => r.data ?? Buffer.alloc(0), enoent);
      pr.catch(() => {}); // a read ahead nobody takes must not be an unhandled rejection
      return pr;
    };
    return {
      willRead: (p, _start, end) => {
        window = { path: p, end };
        ahead.clear();
      },
      readRange: async (p, offset, length) => {
        if (length <= READ_MAX && window?.path === p) {
          const key = `${offset}:${length}`;
          const pr = ahead.get(key) ?? fetch(p, offset, length);
          ahead.delete(key);
          for (let k = 1, o = offset + length; k <= READ_AHEAD && o < window.end; k++, o += length) {
            const n = Math.min(length, window.end - o);
            if (!ahead.has(`${o}:${n}`)) ahead.set(`${o}:${n}`, fetch(p, o, n));
          }
          const d = await pr;
          if (d.length < length) ahead.clear(); // end of file at the source
          return d;
        }
        const parts: Buffer[] = [];
        let got = 0;
        while (got < length) {
          const n = Math.min(READ_MAX, length - got);
          const r = await ctl.request({ op: 'read', dir: i, path: p, offset: offset + got, length: n }).catch(enoent);
          const d = r.data ?? Buffer.alloc(0);
          parts.push(d);
          got += d.length;
          if (d.length < n) break;
        }
        return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
      },
      readlink: async (p) => String((await ctl.request({ op: 'readlink', dir: i, path: p }).catch(enoent)).body.target),
    };
  }

  private quarantineRoot(i: number) {
    return path.join(this.o.home.root, 'quarantine', this.o.module, String(i));
  }

  private async refreshQuarantines() {
    const out: ReplicationStatus['quarantines'] = [];
    for (let i = 0; i < this.dirs.length; i++) {
      for (const q of await listQuarantines(this.quarantineRoot(i)).catch(() => [])) {
        out.push({ dir: this.dirs[i]!.dir, path: path.join(this.quarantineRoot(i), q.name), files: q.files });
      }
    }
    this.quarantines = out;
  }

  // ───────────────────────────── the tree-dirty marker ─────────────────────────────

  private dirtyFile() {
    return path.join(this.stateDir, 'tree-dirty');
  }

  private async isDirty(): Promise<boolean> {
    return fs.access(this.dirtyFile()).then(() => true, () => false);
  }

  private async markDirty(): Promise<void> {
    await fs.mkdir(this.stateDir, { recursive: true });
    if (!(await this.isDirty())) await writeDurably(this.dirtyFile(), `${new Date().toISOString()}\n`);
  }

  /** The tree equals its generation: make that durable (`sync -f` = syncfs of each backing filesystem), then say so. */
  private async clearDirty(backings: string[]): Promise<void> {
    const syncFs = this.o.syncFs ?? ((d: string) => syncFilesystem(d));
    for (const b of backings) {
      try {
        await syncFs(b);
      } catch (e) {
        this.o.log.warn(`${(e as Error).message}; the copy will be compared at the next reintegration`);
        return;
      }
    }
    await fs.rm(this.dirtyFile(), { force: true });
  }
}

function intIn(v: unknown, min: number, max: number, what: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw new CtlError(`${what} must be an integer in [${min}, ${max}]`, 'EINVAL');
  return v;
}

