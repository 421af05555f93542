/**
 * A simulated `Replicator` (src/replication/types.ts) for the driver simulation (./driver-sim.ts): the data path of
 * file replication modelled on ids of writes, with the decisions taken by the real pure cores
 * (src/replication/core/primary.ts for PRIM/ALONE, core/secondary.ts for SECOND). What it models, and how:
 *
 * - DISK (`SimDisk`, survives a power-off): the ids of the writes the copy holds; the change record (base generation,
 *   ids, trusted, clean marker) as src/replication/record/change-record.ts keeps it; the tree-dirty marker and the
 *   activity log (src/replication/files/crash-markers.ts); the quarantine; and the writes whose mtime is not durable
 *   (`unsyncedMeta`): every write is an in-place overwrite made durable by fdatasync, so after a crash its data is on
 *   disk but its file still shows the old size and mtime.
 * - PRIMARY (sink.ts): a write is written locally first (the FUSE passthrough, after its path is in the activity log),
 *   then, by the machine's mode: `live`, sent on the stream and acknowledged when the SECOND acknowledged it
 *   (async="none": applied; "second": received); `record`, recorded and acknowledged; `awaiting`/`failing`, it waits
 *   for the mode to change; `off`, it fails. A stream that fails → `send-failed` → the engine is told once
 *   (`replicationFailed`) → `outdated` → the record opens → waiting writes are recorded and acknowledged.
 * - STREAM (`SimStream`): ordered, over the module's replication LAN, 1 ms latency; a cut LAN holds messages (TCP
 *   retransmits) and breaks the stream after the keepalive's `deadMs` (2 × timeout, ≥ 2 s); a daemon that dies closes
 *   it at once (the kernel closes its sockets), a node that powers off only by the keepalive.
 * - SECONDARY (secondary.ts): applies what it receives (or, injected fault `applyFails`, cannot: async="none" nacks,
 *   "second" had acknowledged on receipt and reports `copyBehind`), attaches to a PRIM in `awaiting` when the engine
 *   says `follow` and its tree is clean.
 * - REINTEGRATION (reint-target.ts / reint-source.ts): `begin` checks as the source does (ENOTPRIM, EGEN, EAGAIN on a
 *   live stream, record mode only when the record is trusted, based on the target's generation and the target's
 *   tree clean); `beginCopy()` before anything changes; one pass of `resyncMs` during which the link and the session
 *   must hold; the final pass is atomic (the freeze) and hands over to the live stream. A comparison copies what the
 *   source has and finds what only the target has when `full`, when its activity log names it, or when its mtime is
 *   durable (a size/mtime comparison sees it); found ones are quarantined with `quarantine`, else overwritten. Link
 *   errors are retried as the real replicator does (500 ms × attempt, at most 5 s) until the driver aborts.
 *
 * Not modelled: FUSE itself (syncfs, O_DIRECT, mmap: test/lab), page-cache loss of writes never fsync'd (every write
 * of the model application is fdatasync'd), the async="second" double-power-loss window (a received change is
 * applied at once), file times sent within a second, multi-pass convergence (one pass, then the frozen final pass).
 */
import { initialPrimary, stepPrimary, type PrimaryAction, type PrimaryEvent, type PrimaryState } from '../replication/core/primary.js';
import { initialSecondary, stepSecondary, type SecondaryAction, type SecondaryEvent, type SecondaryState } from '../replication/core/secondary.js';
import { BugError } from '../errors.js';
import type { Cancel, Clock } from '../platform/clock/types.js';
import type {
  FilesRole, PrimaryFiles, ReintegrateRequest, ReintegrationProgress, ReplicationDirective, ReplicationStatus, Replicator,
} from '../replication/types.js';

/** the activity log forgets epochs two behind a sync point (crash-markers.ts ROTATE_MS) */
export const SIM_ROTATE_MS = 30_000;
export const STREAM_LATENCY_MS = 1;

/**
 * Deliberate faults of the *simulated* replicator, for the mutation tests that show each hole of issue 8 is found
 * by the simulation (test/unit/driver-sim-holes.test.ts). All false in every other use.
 */
export interface SimMutations {
  /** a SECOND that could not apply a change it acknowledged on receipt does not tell the engine (no copy-behind) */
  noCopyBehind: boolean;
  /** the tree-dirty marker is never looked at: a crashed node's copy counts as clean */
  noTreeDirty: boolean;
  /** the activity log is not consulted by a comparison */
  noActivityLog: boolean;
  /** a record opened as the primary role is entered on a dirty tree is trusted (PrimarySink.enter ignores `dirty`) */
  noDirtySourceRecord: boolean;
}

export const noMutations = (): SimMutations => ({ noCopyBehind: false, noTreeDirty: false, noActivityLog: false, noDirtySourceRecord: false });

export interface SimRecord {
  base: string;
  ids: Set<number>;
  trusted: boolean;
  /** the clean marker: the record was closed cleanly (a crash while it is open leaves it false) */
  clean: boolean;
}

/** What a node's disk holds for the module's replicated directories (survives power-off and daemon death). */
export class SimDisk {
  data = new Set<number>();
  quarantine = new Set<number>();
  record: SimRecord | null = null;
  dirty = false;
  /** the activity log: id → epoch */
  activity = new Map<number, number>();
  epoch = 0;
  /** writes whose size/mtime change is not durable (see the header) */
  unsyncedMeta = new Set<number>();

  clearDirty() {
    this.dirty = false;
    this.activity.clear();
    this.unsyncedMeta.clear();
  }
}

export class CtlError extends Error {
  constructor(message: string, readonly code: string) {
    super(message);
  }
}

const LINK_CODES = new Set(['EAGAIN', 'EGEN', 'EBUSY', 'ENOTPRIM', 'ELINK']);
const isLinkError = (e: unknown) => e instanceof CtlError && LINK_CODES.has(e.code);

/** What the simulated replicator needs of the simulation around it. */
export interface SimReplicatorEnv {
  node: string;
  peer: string;
  disk: SimDisk;
  clock: Clock;
  async: 'none' | 'second';
  timeoutMs: number;
  resyncMs: number;
  mutations: SimMutations;
  /** the peer's live replicator when its daemon runs and the replication LAN connects the nodes now; else null */
  reach: () => SimReplicator | null;
  /** the replication LAN connects the two nodes now (both powered, no cut) */
  linkUp: () => boolean;
  /** this node's injected fault: applying a received change fails (disk full) */
  applyFails: () => boolean;
  log: (level: 'info' | 'warn' | 'error', msg: string) => void;
  replicationFailed: (reason: string) => void;
  copyBehind: (reason: string) => void;
}

interface Msg {
  kind: 'change' | 'ack' | 'nack' | 'barrier' | 'barrier-ack';
  id: number;
}

/**
 * The live stream between a primary (`p`) and a secondary (`s`): two ordered queues, delivered together after
 * STREAM_LATENCY_MS when the replication LAN is up; broken after `deadMs` without a link, at once by `close`.
 */
export class SimStream {
  private toS: Msg[] = [];
  private toP: Msg[] = [];
  broken = false;
  private downSince: number | null = null;
  private deliverArmed = false;
  private readonly watch: Cancel;
  /** awaiting an acknowledgement, by change id (or barrier id) */
  private readonly waiting = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();
  private barrierSeq = 0;
  /** ends that died without closing (power-off): nothing is delivered to or from them */
  private deadEnd = new Set<'p' | 's'>();

  constructor(readonly p: SimReplicator, readonly s: SimReplicator, readonly gen: string, private readonly clock: Clock,
    private readonly linkUp: () => boolean, private readonly deadMs: number) {
    this.watch = clock.every(100, () => this.check());
  }

  get pendingAcks(): number {
    return this.waiting.size;
  }

  /** Sends a change; resolves when the SECOND acknowledged it, rejects when the stream breaks or it is refused. */
  send(id: number): Promise<void> {
    if (this.broken) return Promise.reject(new Error('stream closed'));
    this.toS.push({ kind: 'change', id });
    const p = new Promise<void>((resolve, reject) => this.waiting.set(id, { resolve, reject }));
    this.arm();
    return p;
  }

  /** A syncfs barrier: resolves once every change sent before it is durable on the SECOND. */
  barrier(): Promise<void> {
    if (this.broken) return Promise.reject(new Error('stream closed'));
    const id = -(++this.barrierSeq);
    this.toS.push({ kind: 'barrier', id });
    const p = new Promise<void>((resolve, reject) => this.waiting.set(id, { resolve, reject }));
    this.arm();
    return p;
  }

  /** @internal the SECOND answers */
  answer(m: Msg) {
    if (this.broken) return;
    this.toP.push(m);
    this.arm();
  }

  /** One end went away without closing (power-off): the other notices only by the keepalive. */
  endDied(end: 'p' | 's') {
    this.deadEnd.add(end);
  }

  /** Closed by one end (or its process died): the other end sees it after the latency. */
  close(why: string) {
    if (this.broken) return;
    this.clock.after(STREAM_LATENCY_MS, () => this.break(why));
    this.broken = true; // nothing more is sent; what is queued still arrives
    this.arm();
  }

  private up(): boolean {
    return this.linkUp() && this.deadEnd.size === 0;
  }

  private arm() {
    if (this.deliverArmed) return;
    this.deliverArmed = true;
    this.clock.after(STREAM_LATENCY_MS, () => {
      this.deliverArmed = false;
      if (this.up()) this.deliver();
    });
  }

  private deliver() {
    const toS = this.toS.splice(0);
    const toP = this.toP.splice(0);
    for (const m of toS) this.s.onStreamMessage(this, m);
    for (const m of toP) {
      const w = this.waiting.get(m.id);
      if (!w) continue;
      this.waiting.delete(m.id);
      if (m.kind === 'nack') w.reject(new Error(`${this.s.env.node} could not apply a change`));
      else w.resolve();
    }
  }

  private check() {
    if (this.up()) {
      this.downSince = null;
      if (this.toS.length || this.toP.length) this.deliver();
      return;
    }
    this.downSince ??= this.clock.mono();
    if (this.clock.mono() - this.downSince >= this.deadMs) this.break(`no answer for ${this.deadMs} ms`);
  }

  private ended = false;

  private break(why: string) {
    if (this.ended) return;
    if (this.up()) this.deliver(); // a close: what was queued before it arrives first
    this.ended = true;
    this.broken = true;
    this.watch();
    this.toS = [];
    this.toP = [];
    const err = new Error(`replication stream ${why}`);
    for (const w of this.waiting.values()) w.reject(err);
    this.waiting.clear();
    if (!this.deadEnd.has('p')) this.p.onStreamEnded(this, why);
    if (!this.deadEnd.has('s')) this.s.onStreamEnded(this, why);
  }
}

interface Session {
  target: SimReplicator;
  recordMode: boolean;
}

export class SimReplicator implements Replicator {
  role: FilesRole = 'off';
  private roleChain: Promise<void> = Promise.resolve();
  prim: PrimaryState = initialPrimary();
  sec: SecondaryState = initialSecondary();
  /** primary: the live stream to the SECOND */
  private sender: SimStream | null = null;
  /** secondary: the live stream from the PRIM */
  private receiver: SimStream | null = null;
  /** secondary: the stream that failed applying a change (it ends failed) */
  private failedStreams = new WeakSet<SimStream>();
  private session: Session | null = null;
  private waiters: Array<() => void> = [];
  private awaitCancel: Cancel | null = null;
  private retryCancel: Cancel | null = null;
  private syncCancel: Cancel | null = null;
  private recordOpening: Promise<void> = Promise.resolve();
  private unreplicated = false;
  /** the tree-dirty marker was set when the primary role was entered (PrimarySink.enter's `dirty`) */
  private enteredDirty = false;
  /** set when the daemon died (or the node powered off): nothing more happens */
  dead = false;
  private copyingNow = false;

  constructor(readonly env: SimReplicatorEnv) {}

  get disk(): SimDisk {
    return this.env.disk;
  }

  private get deadMs() {
    return Math.max(2 * this.env.timeoutMs, 2000);
  }

  // ───────────────────────────── Replicator ─────────────────────────────

  setRole(role: FilesRole, primary?: PrimaryFiles): Promise<void> {
    const next = this.roleChain.then(() => this.changeRole(role, primary));
    this.roleChain = next.catch(() => {});
    return next;
  }

  direct(d: ReplicationDirective): void {
    switch (d.kind) {
      case 'outdated':
        if (this.role === 'primary') this.feedPrim({ kind: 'outdated', gen: d.gen, peerHolds: d.peerHolds });
        return;
      case 'follow':
        if (this.role === 'secondary') this.feedSec({ kind: 'follow', gen: d.gen, now: this.env.clock.mono() });
        return;
      case 'unfollow':
        this.feedSec({ kind: 'unfollow' });
        return;
    }
  }

  async reintegrate(req: ReintegrateRequest): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      if (req.signal.aborted) throw new Error('reintegration aborted');
      if (this.role !== 'secondary') throw new BugError('reintegration asked while the replicated directories are not in the secondary layout');
      if (this.sec.live !== null && this.sec.live === req.sourceGen) return;
      this.copyingNow = true;
      this.feedSec({ kind: 'copy', on: true });
      try {
        await this.runTarget(req);
        return;
      } catch (e) {
        if (req.signal.aborted) throw new Error('reintegration aborted');
        if (!isLinkError(e)) throw e;
        this.env.log('warn', `reintegration from ${req.from} (attempt ${attempt}): ${(e as Error).message}; retrying`);
        await this.sleep(Math.min(5000, 500 * attempt), req.signal).catch(() => {});
      } finally {
        this.copyingNow = false;
        this.feedSec({ kind: 'copy', on: false });
      }
    }
  }

  progress(): ReintegrationProgress | null {
    return this.copyingNow ? { bytesDone: 0, bytesTotal: 0, rateBytesPerS: 0 } : null;
  }

  alarm(): string | null {
    return this.sec.failed ? `the copy could not apply a change (${this.sec.failed})` : null;
  }

  status(): ReplicationStatus | null {
    return null;
  }

  /**
   * A killed daemon's replicator dies with it here (`die`): the simulation models the replication host dying with its
   * daemon, so a restarted driver finds nothing to reattach to (stop_prim force, as after a crash). Reattaching to a
   * live host is covered by test/unit/daemon/boot-reattach.test.ts and test/lab/daemon-restart.test.ts.
   */
  async reattach(): Promise<null> {
    return null;
  }

  async refresh(_timeoutMs: number): Promise<void> {}

  async close(): Promise<void> {
    await this.setRole('off');
  }

  // ───────────────────────────── the application's writes ─────────────────────────────

  /**
   * One write of the model application (an in-place overwrite followed by fdatasync). Resolves with the generation
   * it is acknowledged in, or null when it fails (the mount is gone or leaving). Mirrors PrimarySink.onChange/onSync.
   */
  async appWrite(id: number): Promise<string | null> {
    if (this.dead || this.role !== 'primary') return null;
    const d = this.disk;
    d.activity.set(id, d.epoch); // the path is durable in the activity log before the data changes
    d.data.add(id);
    d.unsyncedMeta.add(id);
    for (;;) {
      if (this.dead) return null;
      switch (this.prim.mode) {
        case 'live': {
          const sender = this.sender!;
          try {
            await sender.send(id);
            if (this.dead) return null;
            return this.prim.gen;
          } catch (e) {
            if (this.dead) return null;
            if (this.sender === sender) this.feedPrim({ kind: 'send-failed', reason: `replication to ${this.env.peer} failed: ${(e as Error).message}` });
            continue;
          }
        }
        case 'record':
          d.record!.ids.add(id);
          return this.prim.gen;
        case 'off':
          this.unreplicated = true;
          return null;
        default:
          await new Promise<void>((r) => this.waiters.push(r));
      }
    }
  }

  // ───────────────────────────── roles ─────────────────────────────

  private async changeRole(role: FilesRole, primary?: PrimaryFiles): Promise<void> {
    await Promise.resolve();
    if (this.dead) return new Promise(() => {});
    if (role === this.role) return;
    if (this.role === 'primary') await this.leavePrimary();
    else if (this.role === 'secondary') this.leaveSecondary();
    this.role = 'off';
    if (role === 'primary') {
      if (!primary) throw new BugError('entering the primary layout without its generation');
      this.enteredDirty = this.disk.dirty;
      this.disk.dirty = true;
      this.disk.epoch++;
      this.unreplicated = false;
      this.feedPrim({ kind: 'enter', gen: primary.gen, awaitPeer: primary.awaitPeer, recordBase: primary.recordBase });
      await this.recordOpening;
    }
    this.role = role;
  }

  private async leavePrimary(): Promise<void> {
    this.endSession('leaving the primary role');
    const failing = this.prim.mode === 'failing' || this.prim.mode === 'awaiting';
    const sender = this.sender;
    this.sender = null;
    this.feedPrim({ kind: 'leave' });
    if (sender && !failing && !sender.broken) {
      // what was sent is flushed to the SECOND (a final sync) before the stream closes
      await sender.barrier().catch((e: Error) => {
        this.unreplicated = true;
        this.env.log('error', `the last changes may not have reached ${this.env.peer}: ${e.message}`);
      });
    }
    sender?.close('closed by the primary');
    const r = this.disk.record;
    if (r) r.clean = !failing && r.trusted;
    if (!failing && !this.unreplicated) this.disk.clearDirty();
  }

  private leaveSecondary() {
    this.retryCancel?.();
    this.retryCancel = null;
    const rx = this.receiver;
    this.receiver = null;
    rx?.close('closed by the secondary');
    // SecondaryStream.leave waits for the end of a healthy live stream, which clears the tree-dirty marker
    if (rx && !this.failedStreams.has(rx) && this.sec.live !== null) this.disk.clearDirty();
    this.feedSec({ kind: 'leave' });
  }

  // ───────────────────────────── the primary machine ─────────────────────────────

  private feedPrim(e: PrimaryEvent) {
    if (this.dead) return;
    const r = stepPrimary(this.prim, e);
    this.prim = r.state;
    for (const a of r.actions) this.applyPrim(a);
  }

  private applyPrim(a: PrimaryAction) {
    switch (a.kind) {
      case 'open-record':
        this.recordOpening = (async () => {
          await Promise.resolve();
          if (this.dead) return;
          this.openRecord(a.base, a.fresh);
          this.feedPrim({ kind: 'record-opened' });
        })();
        return;
      case 'close-sender':
        this.sender?.close('closed by the primary');
        this.sender = null;
        this.syncCancel?.();
        this.syncCancel = null;
        return;
      case 'discard-record':
        this.disk.record = null;
        this.startSyncPoints();
        return;
      case 'report-failure':
        this.env.replicationFailed(a.reason);
        return;
      case 'arm-await':
        this.awaitCancel?.();
        this.awaitCancel = this.env.clock.after(Math.max(this.env.timeoutMs, 5000), () => this.feedPrim({ kind: 'await-expired' }));
        return;
      case 'disarm-await':
        this.awaitCancel?.();
        this.awaitCancel = null;
        return;
      case 'flush-unacked':
        return; // a waiting write records itself when the mode changes (appWrite)
      case 'mode':
        for (const w of this.waiters.splice(0)) w();
        return;
      case 'log':
        this.env.log(a.level, a.msg);
        return;
    }
  }

  /** ChangeRecord.open as the sink uses it: a trusted, cleanly closed record continues; otherwise a new one. */
  private openRecord(base: string, fresh: boolean) {
    const d = this.disk;
    const old = d.record;
    const trusted = fresh || !this.enteredDirty || this.env.mutations.noDirtySourceRecord; // PrimarySink.enter: a record opened on a dirty tree is never trusted
    if (!fresh && old && old.clean && old.trusted) {
      old.clean = false;
      old.trusted = trusted;
      return;
    }
    d.record = { base, ids: new Set(), trusted, clean: false };
  }

  /** While live: every SIM_ROTATE_MS the activity log moves on and, after a barrier, forgets epochs two behind. */
  private startSyncPoints() {
    this.syncCancel?.();
    let busy = false;
    this.syncCancel = this.env.clock.every(SIM_ROTATE_MS, () => {
      const sender = this.sender;
      if (busy || !sender || this.prim.mode !== 'live') return;
      busy = true;
      const epoch = ++this.disk.epoch;
      sender.barrier().then(() => {
        if (this.dead) return;
        for (const [id, e] of this.disk.activity) if (e <= epoch - 2) this.disk.activity.delete(id);
      }, () => {}).finally(() => { busy = false; });
    });
  }

  private goLive(stream: SimStream) {
    this.sender = stream;
    this.feedPrim({ kind: 'live', gen: stream.gen });
  }

  // ───────────────────────────── the reintegration source ─────────────────────────────

  /** The source's answer to `begin` (reint-source.ts); throws CtlError. */
  sourceBegin(b: { target: SimReplicator; attach: boolean; expectGen: string | null; targetGen: string | null; clean: boolean; full: boolean; quarantine: boolean }):
    { gen: string; recordMode: boolean; stream?: SimStream } {
    const gen = this.prim.gen;
    if (this.dead || this.role !== 'primary' || !gen || this.prim.mode === 'off') throw new CtlError(`${this.env.node} does not run the module`, 'ENOTPRIM');
    if (b.expectGen !== null && b.expectGen !== gen) throw new CtlError(`${this.env.node}'s generation is ${gen}, not ${b.expectGen}`, 'EGEN');
    if (b.attach) {
      if (this.prim.mode !== 'awaiting' || b.targetGen !== gen || !b.clean) throw new CtlError('the copy must be reintegrated first', 'ERESYNC');
      const stream = this.newStream(b.target, gen);
      this.goLive(stream);
      this.env.log('info', `${this.env.peer} attached as SECOND on generation ${gen}`);
      return { gen, recordMode: false, stream };
    }
    if (this.prim.mode === 'live') {
      this.feedPrim({ kind: 'send-failed', reason: `${this.env.peer} restarted its replication` });
      throw new CtlError('replication was live: retry once this node recorded the change', 'EAGAIN');
    }
    if (this.prim.mode !== 'record') throw new CtlError(`not ready to reintegrate (${this.prim.mode})`, 'EAGAIN');
    if (this.session) this.endSession('replaced by a new reintegration');
    const r = this.disk.record;
    const recordMode = !b.full && !b.quarantine && b.clean && !!r && r.trusted && r.base === b.targetGen;
    this.session = { target: b.target, recordMode };
    this.env.log('info', `${this.env.peer} reintegrates from generation ${gen} (${recordMode ? 'from the change record' : 'by comparison'})`);
    return { gen, recordMode };
  }

  /** The final pass, frozen (atomic here), then `done`: the target's copy is made and the live stream starts. */
  sourceFinal(target: SimReplicator, mustCheck: Set<number> | null, full: boolean, quarantine: boolean): SimStream {
    const s = this.session;
    if (this.dead || !s || s.target !== target || this.prim.mode !== 'record') throw new CtlError('no reintegration session on this channel', 'EAGAIN');
    this.session = null;
    const src = this.disk;
    const dst = target.disk;
    if (s.recordMode) {
      for (const id of src.record!.ids) dst.data.add(id);
    } else {
      for (const id of dst.data) {
        if (src.data.has(id)) continue;
        const seen = full || (mustCheck?.has(id) ?? false) || !dst.unsyncedMeta.has(id);
        if (!seen) continue; // same size, old mtime, not in the activity log: the comparison trusts it
        dst.data.delete(id);
        if (quarantine) dst.quarantine.add(id);
      }
      for (const id of src.data) dst.data.add(id);
    }
    const stream = this.newStream(target, this.prim.gen!);
    this.goLive(stream);
    this.env.log('info', `${this.env.peer} caught up (${s.recordMode ? 'changes' : 'compare'}); every change is replicated again`);
    return stream;
  }

  /** the session of `target` still runs */
  serves(target: SimReplicator): boolean {
    return !this.dead && this.session?.target === target;
  }

  private endSession(why: string) {
    if (!this.session) return;
    this.session = null;
    this.env.log('warn', `reintegration of ${this.env.peer} interrupted: ${why}`);
  }

  private newStream(target: SimReplicator, gen: string): SimStream {
    return new SimStream(this, target, gen, this.env.clock, this.env.linkUp, this.deadMs);
  }

  // ───────────────────────────── the reintegration target ─────────────────────────────

  private async runTarget(req: ReintegrateRequest): Promise<void> {
    await this.sleep(STREAM_LATENCY_MS, req.signal);
    const src = this.env.reach();
    if (!src) throw new CtlError(`cannot reach ${req.from}`, 'ELINK');
    const clean = this.env.mutations.noTreeDirty ? true : !this.disk.dirty;
    const begun = src.sourceBegin({
      target: this, attach: false, expectGen: req.sourceGen, targetGen: req.targetGen, clean, full: req.full, quarantine: req.quarantine,
    });
    await req.beginCopy();
    if (this.dead) return new Promise(() => {});
    const mustCheck = clean ? null : this.env.mutations.noActivityLog ? new Set<number>() : new Set(this.disk.activity.keys());
    this.disk.dirty = true;
    await this.sleep(this.env.resyncMs, req.signal);
    if (!src.serves(this) || !this.env.linkUp() || this.env.reach() !== src) throw new CtlError(`${req.from}: reintegration session lost`, 'ELINK');
    if (this.role !== 'secondary') throw new BugError('the secondary layout was left during a reintegration');
    const stream = src.sourceFinal(this, mustCheck, req.full, req.quarantine && true);
    this.receiver = stream;
    this.feedSec({ kind: 'stream-started', gen: stream.gen });
    this.env.log('info', `reintegration from ${req.from} done (${begun.recordMode ? 'changes' : 'compare'}); live replication of generation ${stream.gen}`);
  }

  private sleep(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal.aborted) return reject(new Error('reintegration aborted'));
      const onAbort = () => {
        cancel();
        reject(new Error('reintegration aborted'));
      };
      const cancel = this.env.clock.after(ms, () => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      });
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  // ───────────────────────────── the secondary machine ─────────────────────────────

  private feedSec(e: SecondaryEvent) {
    if (this.dead) return;
    const r = stepSecondary(this.sec, e);
    this.sec = r.state;
    for (const a of r.actions) this.applySec(a);
  }

  private applySec(a: SecondaryAction) {
    switch (a.kind) {
      case 'attach':
        void this.attach(a.gen);
        return;
      case 'retry-at':
        this.retryCancel?.();
        this.retryCancel = this.env.clock.after(Math.max(0, a.at - this.env.clock.mono()), () => {
          this.retryCancel = null;
          this.feedSec({ kind: 'tick', now: this.env.clock.mono() });
        });
        return;
      case 'report-behind':
        if (!this.env.mutations.noCopyBehind) this.env.copyBehind(a.reason);
        return;
      case 'log':
        this.env.log(a.level, a.msg);
        return;
    }
  }

  private async attach(gen: string): Promise<void> {
    await Promise.resolve();
    if (this.dead) return;
    const clean = this.env.mutations.noTreeDirty ? true : !this.disk.dirty;
    const now = () => this.env.clock.mono();
    if (!clean) return this.feedSec({ kind: 'attach-result', ok: false, dirty: true, now: now() });
    const src = this.env.reach();
    try {
      if (!src) throw new CtlError(`cannot reach ${this.env.peer}`, 'ELINK');
      this.disk.dirty = true;
      const r = src.sourceBegin({ target: this, attach: true, expectGen: gen, targetGen: gen, clean, full: false, quarantine: false });
      this.receiver = r.stream!;
      this.feedSec({ kind: 'stream-started', gen });
      this.env.log('info', `attached to ${this.env.peer}: live replication of generation ${gen}`);
      this.feedSec({ kind: 'attach-result', ok: true, now: now() });
    } catch (e) {
      this.disk.clearDirty(); // refused before anything was applied: the copy is still exactly `gen`
      this.env.log('warn', `attaching to ${this.env.peer}: ${(e as Error).message}`);
      this.feedSec({ kind: 'attach-result', ok: false, now: now() });
    }
  }

  // ───────────────────────────── the stream's ends ─────────────────────────────

  /** @internal a message of the stream arrives here (SECOND) */
  onStreamMessage(stream: SimStream, m: Msg) {
    if (this.dead || stream !== this.receiver) return;
    if (m.kind === 'barrier') return stream.answer({ kind: 'barrier-ack', id: m.id });
    if (m.kind !== 'change') return;
    if (this.env.applyFails()) {
      const acknowledged = this.env.async === 'second';
      if (acknowledged) stream.answer({ kind: 'ack', id: m.id });
      else stream.answer({ kind: 'nack', id: m.id });
      this.failedStreams.add(stream);
      this.feedSec({ kind: 'apply-failed', reason: 'sim: disk full', acknowledged });
      this.receiver = null;
      stream.close('a change could not be applied');
      return;
    }
    this.disk.data.add(m.id);
    stream.answer({ kind: 'ack', id: m.id });
  }

  /** @internal the stream ended (closed by the other end, or the keepalive gave up) */
  onStreamEnded(stream: SimStream, why: string) {
    if (this.dead) return;
    if (stream === this.sender) {
      this.feedPrim({ kind: 'send-failed', reason: `replication to ${this.env.peer} failed: ${why}` });
      return;
    }
    const failed = this.failedStreams.has(stream);
    if (stream === this.receiver) this.receiver = null;
    if (stream.s !== this) return;
    if (this.sec.live === stream.gen || failed) {
      this.env.log('warn', `live replication from ${this.env.peer} ended: ${why}`);
      this.feedSec({ kind: 'stream-ended', failed: failed ? 'sim: disk full' : null });
      if (!failed && this.role === 'secondary') this.disk.clearDirty();
    }
  }

  /** The daemon died or the node powered off: streams are dropped (`closed`: the process died, the kernel closed them). */
  die(closed: boolean) {
    this.dead = true;
    for (const c of [this.awaitCancel, this.retryCancel, this.syncCancel]) c?.();
    for (const st of [this.sender, this.receiver]) {
      if (!st) continue;
      if (closed) st.close('the peer process died');
      else st.endDied(st.p === this ? 'p' : 's');
    }
  }
}
