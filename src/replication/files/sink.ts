/**
 * The primary's sink (PRIM/ALONE): what becomes of every change the FUSE interception shows it, by mode. The modes
 * and their transitions are decided by the pure machine of ../core/primary.ts; this class feeds it events and
 * applies its actions: the change record, the live stream's sender, the awaiting deadline, the activity log's sync
 * points, the file times that follow the changes.
 *
 * Per mode, a change (`onChange`), an fsync (`onSync`, `syncInOrder`) or a syncfs (`onSyncfs`):
 *   - live: sent to the SECOND; returns when the SECOND acknowledged it (applied; durable for syncs with
 *     async="none", received with async="second"). Data writes stream ahead in order: write(2) returns once queued,
 *     the next fsync waits for it (acknowledgements are cumulative). A change the SECOND did not take is not
 *     acknowledged: the machine goes `failing`, the engine is told (`replicationFailed`, once), and the change waits
 *     until the engine persisted a new generation (`outdated`); it is then recorded and answered.
 *   - record: written to the persisted change record (base: the generation the peer holds), answered at once.
 *   - awaiting / failing: waits for the mode to change. off: fails (the application is being stopped).
 * Timers go through the Clock. Every change, in every mode, is also seen by the reintegration's extent map while a
 * session runs (`segments`), so the next pass copies what changed during the previous one.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import type { ReplicatedDir, RfsConfig } from '../../config/types.js';
import type { Cancel, Clock } from '../../platform/clock/types.js';
import { initialPrimary, stepPrimary, type PrimaryAction, type PrimaryEvent, type PrimaryMode, type PrimaryState } from '../core/primary.js';
import type { ActivityLog } from '../fuse/activity-log.js';
import type { AsyncChangeSink, Change as FuseChange } from '../fuse/index.js';
import type { PrimaryLayout } from '../layout/index.js';
import { ChangeRecord } from '../record/change-record.js';
import { ExtentMap } from '../record/extent-map.js';
import { fsChangeOf } from '../record/from-intercepted.js';
import type { Channel } from '../stream/channel.js';
import { createSender, type ReplicationSender } from '../stream/sender.js';
import type { PrimaryFiles } from '../types.js';
import { SyncPoints } from './crash-markers.js';
import { toStream } from './wire.js';

export interface SinkLog {
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
}

export interface PrimarySinkOptions {
  module: string;
  peer: string;
  dirs: ReplicatedDir[];
  rfs: RfsConfig;
  stateDir: string;
  clock: Clock;
  log: SinkLog;
  /** how long the awaiting mode waits for the SECOND to reattach */
  awaitMs: number;
  /** keepalive of the live stream */
  liveness: { heartbeatMs: number; deadMs: number };
  /** tells the engine (`replication-failed`) */
  replicationFailed: (reason: string) => void;
}

export class PrimarySink {
  private st: PrimaryState = initialPrimary();
  private records: ChangeRecord[] | null = null;
  /** while a reintegration session runs: what changed since its last pass was planned (per dir) */
  private segments: ExtentMap[] | null = null;
  private segmentsBroken = false;
  private sender: ReplicationSender | null = null;
  /** the latest live stream (kept after it ends, for its final counts) and what the earlier ones counted */
  private counted: { ch: Channel; sender: ReplicationSender } | null = null;
  private before = { bytesSent: 0, bytesReceived: 0, changes: 0 };
  private waiters: Array<() => void> = [];
  private awaitCancel: Cancel | null = null;
  /** streamed writes the SECOND did not acknowledge: recorded once the record is open */
  private unacked: { i: number; c: FuseChange }[] = [];
  /** a change could not reach the SECOND nor the record: the tree is not clean at leave */
  unreplicated = false;
  /** live mode: paths (per dir) whose times changed since the SECOND last got them (see `noteTimes`) */
  private timesDirty: Set<string>[] = [];
  private timesTimer: Cancel | null = null;
  private layout: PrimaryLayout | null = null;
  private backings: string[] = [];
  private syncPoints: SyncPoints | null = null;
  private activity: ActivityLog[] = [];
  private recordOpening: Promise<void> = Promise.resolve();
  private enteredDirty = false;

  constructor(private readonly o: PrimarySinkOptions) {}

  get mode(): PrimaryMode {
    return this.st.mode;
  }

  /** the generation the application writes in */
  get gen(): string | null {
    return this.st.gen;
  }

  /** the change records while recording (read by the reintegration source) */
  get changeRecords(): ChangeRecord[] | null {
    return this.records;
  }

  /**
   * Enters the primary role: resolves once changes can be served (the record open, or awaiting the SECOND).
   * `dirty`: the tree-dirty marker was already set (the last exit was unclean): the tree may hold changes that no
   * record lists (a change held while awaiting, or failed while leaving, is on the disk), so the record opened now
   * is never trusted and the peer is reintegrated by comparison.
   */
  async enter(p: PrimaryFiles, activity: ActivityLog[], dirty = false): Promise<void> {
    this.unreplicated = false;
    this.activity = activity;
    this.enteredDirty = dirty;
    this.feed({ kind: 'enter', gen: p.gen, awaitPeer: p.awaitPeer, recordBase: p.recordBase });
    await this.recordOpening;
  }

  /** The layout is mounted (its mounts are told whether writes stream ahead). */
  attachLayout(layout: PrimaryLayout, backings: string[]): void {
    this.layout = layout;
    this.backings = backings;
    this.applyStreamWrites();
  }

  /**
   * Leaves the primary role once the application is stopped: the mounts are gone, then what was written without
   * fsync is flushed to the SECOND (live), the sender closed, the records closed (cleanly unless changes were held).
   * Returns whether the tree is clean (every change replicated or recorded).
   */
  async leave(): Promise<boolean> {
    const failing = this.st.mode === 'failing' || this.st.mode === 'awaiting';
    const layout = this.layout;
    const sender = this.sender;
    this.layout = null;
    this.sender = null; // the flush below still uses it; leave's close-sender must not close it first
    this.feed({ kind: 'leave' });
    try {
      await layout?.leave();
      if (sender && !failing) {
        await sender.replicate({ dir: this.o.dirs[0]!.dir, op: 'sync', path: '.', datasync: false }).catch((e: Error) => {
          this.unreplicated = true;
          this.o.log.error(`the last changes may not have reached ${this.o.peer}: ${e.message}`);
        });
      }
    } finally {
      sender?.close();
      await this.closeRecords(!failing);
    }
    if (this.unacked.length > 0) this.unreplicated = true; // streamed writes neither acknowledged nor recorded
    this.unacked = [];
    this.backings = [];
    return !failing && !this.unreplicated;
  }

  /** The engine persisted a new generation (explicit directive). */
  outdated(gen: string, peerHolds: string | null): void {
    this.feed({ kind: 'outdated', gen, peerHolds });
  }

  /** The SECOND's live stream of `gen` starts on `ch` (it reattached, or its reintegration's final pass ended). */
  goLive(ch: Channel, gen: string): void {
    const sender = createSender({
      channel: ch, module: this.o.module, generation: gen, mode: this.o.rfs.async, dirs: this.o.dirs.map((d) => d.dir),
      ...this.o.liveness,
    });
    sender.onFailure((e) => { if (this.sender === sender) this.feed({ kind: 'send-failed', reason: `replication to ${this.o.peer} failed: ${e.message}` }); });
    this.sender = sender;
    if (this.counted) {
      const c = this.counted.ch.stats();
      this.before.bytesSent += c.bytesSent;
      this.before.bytesReceived += c.bytesReceived;
      this.before.changes += this.counted.sender.stats().changes;
    }
    this.counted = { ch, sender };
    this.feed({ kind: 'live', gen });
  }

  /** The live streams' traffic: counts since this sink was made, in flight on the running stream now. */
  traffic(): { bytesSent: number; bytesReceived: number; changes: number; inFlight: number; queued: number; ackRttMs: number | null } {
    const c = this.counted;
    const cs = c?.ch.stats();
    const ss = c?.sender.stats();
    const live = c !== null && this.sender === c.sender && ss !== undefined;
    return {
      bytesSent: this.before.bytesSent + (cs?.bytesSent ?? 0), bytesReceived: this.before.bytesReceived + (cs?.bytesReceived ?? 0),
      changes: this.before.changes + (ss?.changes ?? 0),
      inFlight: live ? ss.inFlight : 0, queued: live ? ss.queued : 0, ackRttMs: live ? ss.lastRttMs : null,
    };
  }

  /** A SECOND opened a new reintegration while live: it restarted its replication, so it missed changes. */
  peerRestarted(): void {
    this.feed({ kind: 'send-failed', reason: `${this.o.peer} restarted its replication` });
  }

  /** Starts (or restarts) the extent maps of a reintegration pass; returns those of the previous pass, or null. */
  nextSegments(): { maps: ExtentMap[] | null; broken: boolean } {
    const previous = { maps: this.segments, broken: this.segmentsBroken };
    this.segments = this.o.dirs.map(() => new ExtentMap());
    this.segmentsBroken = false;
    return previous;
  }

  endSegments(): void {
    this.segments = null;
  }

  /** The sink of dir `i`, for its FUSE mount. */
  sinkFor(i: number): AsyncChangeSink {
    return {
      onChange: (c) => this.onChange(i, c),
      onSync: (p, datasync) => this.onSync(i, p, datasync),
      syncInOrder: (p, datasync) => this.syncInOrder(i, p, datasync),
      // syncfs of the mount: every change before it durable on the SECOND (its syncfs of the copy)
      onSyncfs: () => this.onSync(i, '', false, true),
    };
  }

  // ───────────────────────────── the machine ─────────────────────────────

  private feed(e: PrimaryEvent) {
    const r = stepPrimary(this.st, e);
    this.st = r.state;
    for (const a of r.actions) this.apply(a);
  }

  private apply(a: PrimaryAction) {
    switch (a.kind) {
      case 'open-record':
        this.recordOpening = this.openRecords(a.base, a.fresh).then(
          () => this.feed({ kind: 'record-opened' }),
          (e: Error) => this.feed({ kind: 'record-failed', reason: e.message }),
        );
        return;
      case 'close-sender':
        this.sender?.close();
        this.sender = null;
        this.stopLiveTimers();
        return;
      case 'discard-record': {
        const rs = this.records;
        this.records = null;
        this.segments = null;
        void (async () => {
          for (const r of rs ?? []) {
            await r.close({ clean: false }).catch(() => {});
            await ChangeRecord.discard(r.dir).catch((e: Error) => this.o.log.warn(`discarding the change record: ${e.message}`));
          }
        })();
        this.startSyncPoints();
        return;
      }
      case 'report-failure':
        this.o.replicationFailed(a.reason);
        return;
      case 'arm-await':
        this.awaitCancel?.();
        this.awaitCancel = this.o.clock.after(this.o.awaitMs, () => this.feed({ kind: 'await-expired' }));
        return;
      case 'disarm-await':
        this.awaitCancel?.();
        this.awaitCancel = null;
        return;
      case 'flush-unacked':
        for (const u of this.unacked.splice(0)) this.recordChange(u.i, u.c);
        return;
      case 'mode':
        this.applyStreamWrites();
        for (const w of this.waiters.splice(0)) w();
        return;
      case 'log':
        this.o.log[a.level](a.msg);
        return;
    }
  }

  private applyStreamWrites() {
    for (const d of this.layout?.dirs ?? []) d.mount.streamWrites?.(this.st.mode === 'live');
  }

  private modeChanged(): Promise<void> {
    return new Promise((r) => this.waiters.push(r));
  }

  private startSyncPoints() {
    this.syncPoints?.stop();
    if (this.activity.length === 0) return;
    this.syncPoints = new SyncPoints(this.o.clock, this.activity, async () => {
      const sender = this.sender;
      if (!sender || this.st.mode !== 'live') throw new Error('not live');
      // every dir: each may be its own filesystem on the SECOND, whose activity log forgets a dir after its syncfs
      for (const d of this.o.dirs) await sender.replicate({ dir: d.dir, op: 'sync', path: '.', datasync: false, syncfs: true });
    }, (m) => this.o.log.warn(m));
    this.syncPoints.start();
  }

  private stopLiveTimers() {
    this.syncPoints?.stop();
    this.syncPoints = null;
    this.timesTimer?.();
    this.timesTimer = null;
    this.timesDirty = [];
  }

  // ───────────────────────────── changes ─────────────────────────────

  private async onChange(i: number, c: FuseChange): Promise<void> {
    for (;;) {
      switch (this.st.mode) {
        case 'live': {
          const sender = this.sender!;
          const cs = toStream(this.o.dirs[i]!.dir, c);
          this.noteSegment(i, c);
          if (c.op === 'write') {
            // streams ahead, in order; a write the SECOND does not take is recorded once the record is open
            const noted = { op: 'write', path: c.path, offset: c.offset, data: { length: c.data.byteLength } } as unknown as FuseChange;
            const p = sender.replicate(cs[0]!);
            p.catch((e: Error) => {
              this.unacked.push({ i, c: noted });
              if (this.st.mode === 'record') this.apply({ kind: 'flush-unacked' });
              else if (this.sender === sender) this.feed({ kind: 'send-failed', reason: `replication to ${this.o.peer} failed: ${e.message}` });
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
            if (this.sender === sender) this.feed({ kind: 'send-failed', reason: `replication to ${this.o.peer} failed: ${(e as Error).message}` });
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
      switch (this.st.mode) {
        case 'live': {
          const sender = this.sender!;
          try {
            await sender.replicate({ dir: this.o.dirs[i]!.dir, op: 'sync', path: p || '.', datasync, ...(syncfs ? { syncfs } : {}) });
            return;
          } catch (e) {
            if (this.sender === sender) this.feed({ kind: 'send-failed', reason: `replication to ${this.o.peer} failed: ${(e as Error).message}` });
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
   * An fsync whose reply waits for the SECOND without holding later changes back (the FUSE worker serves other
   * requests meanwhile, so several commits can be in flight). Live: sent in order now; `done` settles when the
   * SECOND made it durable, or, if the SECOND did not take it, once the record is open (the data is then recorded,
   * and only local). Other modes: handled whole before anything after it.
   */
  private async syncInOrder(i: number, p: string, datasync: boolean): Promise<{ done: Promise<void> }> {
    if (this.st.mode !== 'live') {
      await this.onSync(i, p, datasync);
      return { done: Promise.resolve() };
    }
    const sender = this.sender!;
    const sent = sender.replicate({ dir: this.o.dirs[i]!.dir, op: 'sync', path: p || '.', datasync });
    const done = sent.catch(async (e: Error) => {
      if (this.sender === sender) this.feed({ kind: 'send-failed', reason: `replication to ${this.o.peer} failed: ${e.message}` });
      // recorded once the new generation is persisted (record; or live again after a reintegration that followed)
      while (this.st.mode === 'failing' || this.st.mode === 'awaiting') await this.modeChanged();
      if (this.st.mode === 'off') throw new Error('the module left the primary role');
    });
    return { done };
  }

  private recordChange(i: number, c: FuseChange) {
    this.records![i]!.recordIntercepted(c);
    this.noteSegment(i, c);
  }

  private noteSegment(i: number, c: FuseChange) {
    if (!this.segments) return;
    const f = fsChangeOf(c);
    if (f === 'unknown') this.segmentsBroken = true;
    else if (f !== 'none') this.segments[i]!.apply(f);
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
    this.timesTimer ??= this.o.clock.after(1000, () => {
      this.timesTimer = null;
      const sender = this.sender;
      if (!sender || this.st.mode !== 'live') return;
      for (const [d, paths] of this.timesDirty.entries()) {
        if (paths?.size) void this.sendTimes(sender, d, [...paths].slice(0, 4096)).catch(() => {});
      }
    });
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
      sends.push(sender.replicate({ dir: this.o.dirs[i]!.dir, op: 'utimens', path: p || '.', atime: ts(st.atimeNs), mtime: ts(st.mtimeNs) }));
    }
    await Promise.all(sends);
  }

  // ───────────────────────────── the change record ─────────────────────────────

  private recordDir(i: number) {
    return path.join(this.o.stateDir, 'record', String(i));
  }

  /**
   * Opens the change records: a trusted record (closed cleanly) is continued with its own base; otherwise a new one
   * starts with `base`, the generation the peer holds now (with `fresh`, always a new one).
   */
  private async openRecords(base: string, fresh: boolean): Promise<void> {
    await this.closeRecords(false);
    const out: ChangeRecord[] = [];
    for (let i = 0; i < this.o.dirs.length; i++) {
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
      if (!fresh && this.enteredDirty) out[i]!.invalidate('the copy was left uncleanly: it may hold changes no record lists');
    }
    this.records = out;
  }

  private async closeRecords(clean: boolean): Promise<void> {
    const rs = this.records;
    this.records = null;
    for (const r of rs ?? []) await r.close({ clean }).catch((e: Error) => this.o.log.error(`closing the change record: ${e.message}`));
  }
}
