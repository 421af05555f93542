/**
 * The SECOND's live stream: the receiver that applies the primary's changes to the backing copy, and reattaching
 * to a PRIM after a swap or a daemon restart. When to attach and what an ended stream means are decided by the pure
 * machine of ../core/secondary.ts; this class opens channels, runs the receiver and a retry timer (Clock), and feeds
 * the results back.
 *
 * Contract: a stream is accepted only for the generation it was asked for (the primary's hello); a stream that ends
 * with every change applied leaves the tree clean (crash-markers.ts: syncfs, then tree-dirty removed); a change
 * that fails leaves it dirty and the copy outdated (standing alarm); a failed change that had been acknowledged on
 * receipt is reported at once (`copyBehind`).
 */
import type { ReplicatedDir, RfsConfig } from '../../config/types.js';
import type { Cancel, Clock } from '../../platform/clock/types.js';
import { initialSecondary, stepSecondary, type SecondaryAction, type SecondaryEvent, type SecondaryState } from '../core/secondary.js';
import { Applier } from '../stream/apply.js';
import type { Channel } from '../stream/channel.js';
import { ReplicationError } from '../stream/errors.js';
import { compileFilter } from '../stream/paths.js';
import { receiveChanges, type Receiver } from '../stream/receiver.js';
import type { CrashMarkers } from './crash-markers.js';
import { CtlPeer } from './ctl.js';
import type { SinkLog } from './sink.js';

export interface SecondaryStreamOptions {
  module: string;
  peer: string;
  dirs: ReplicatedDir[];
  rfs: RfsConfig;
  clock: Clock;
  log: SinkLog;
  markers: CrashMarkers;
  liveness: { heartbeatMs: number; deadMs: number };
  connect: () => Promise<Channel>;
  /** tells the engine (`copy-behind`) */
  copyBehind: (reason: string) => void;
}

export class SecondaryStream {
  private st: SecondaryState = initialSecondary();
  private receiver: Receiver | null = null;
  /** the latest live stream (kept after it ends, for its final counts) and what the earlier ones counted */
  private counted: { ch: Channel; rx: Receiver } | null = null;
  private before = { bytesSent: 0, bytesReceived: 0, changes: 0 };
  private applier: Applier | null = null;
  private retry: Cancel | null = null;
  private backings: string[] = [];
  /** what an ended stream leaves to do (close, report, mark the tree clean): a new layout waits for it */
  private ending: Promise<void> = Promise.resolve();

  constructor(private readonly o: SecondaryStreamOptions) {}

  /** the generation of the running live stream, or null */
  get liveGen(): string | null {
    return this.st.live;
  }

  /** why the copy is outdated, for the standing alarm; null when it is not */
  get outdated(): string | null {
    return this.st.failed;
  }

  /** The live streams' traffic: counts since this stream object was made, the backlog of the running stream now. */
  traffic(): { bytesSent: number; bytesReceived: number; changes: number; backlog: number; backlogBytes: number } {
    const c = this.counted;
    const cs = c?.ch.stats();
    const rs = c?.rx.stats();
    const live = c !== null && this.receiver === c.rx && rs !== undefined;
    return {
      bytesSent: this.before.bytesSent + (cs?.bytesSent ?? 0), bytesReceived: this.before.bytesReceived + (cs?.bytesReceived ?? 0),
      changes: this.before.changes + (rs?.received ?? 0), backlog: live ? rs.backlog : 0, backlogBytes: live ? rs.backlogBytes : 0,
    };
  }

  enter(backings: string[]): void {
    this.backings = backings;
  }

  follow(gen: string): void {
    this.feed({ kind: 'follow', gen, now: this.o.clock.mono() });
  }

  unfollow(): void {
    this.feed({ kind: 'unfollow' });
  }

  copying(on: boolean): void {
    this.feed({ kind: 'copy', on });
  }

  /** Leaving the secondary layout: the stream ends (changes received are still applied first). */
  async leave(): Promise<void> {
    this.retry?.();
    this.retry = null;
    const rx = this.receiver;
    if (rx) {
      rx.close();
      await rx.done;
    }
    // a stream that ended by itself (the peer lost) may still be marking the tree clean: that must be over before the
    // next layout marks it dirty again, or the clean mark would land on a tree in use
    await this.ending;
    await this.applier?.close();
    this.applier = null;
    this.feed({ kind: 'leave' });
    this.backings = [];
  }

  /** Starts applying the live stream on `ch`; resolves once the primary's hello of generation `gen` was accepted. */
  start(ch: Channel, gen: string): Promise<void> {
    const logs = this.o.markers.appliedActivity();
    const byDir = new Map(this.o.dirs.map((d, i) => [d.dir, logs[i]!]));
    const applier = new Applier({
      dirs: this.o.dirs.map((d, i) => ({ dir: d.dir, root: this.backings[i]!, filter: compileFilter(d.notreplicated) })),
      activity: (dir) => byDir.get(dir) ?? null,
    });
    let accepted!: () => void;
    const ok = new Promise<void>((r) => (accepted = r));
    const rx = receiveChanges({
      channel: ch, applier, mode: this.o.rfs.async, log: (m) => this.o.log.warn(m), ...this.o.liveness,
      acceptHello: (h) => {
        if (h.generation !== gen) return `generation ${h.generation}, expected ${gen}`;
        accepted();
        return null;
      },
      onApplyFailed: (e, acknowledged) => this.feed({ kind: 'apply-failed', reason: e.message, acknowledged }),
    });
    this.receiver = rx;
    this.applier = applier;
    if (this.counted) {
      const c = this.counted.ch.stats();
      this.before.bytesSent += c.bytesSent;
      this.before.bytesReceived += c.bytesReceived;
      this.before.changes += this.counted.rx.stats().received;
    }
    this.counted = { ch, rx };
    const backings = [...this.backings];
    void ok.then(() => this.feed({ kind: 'stream-started', gen }));
    const ended = rx.done.then(async (e) => {
      if (this.receiver === rx) this.receiver = null;
      const failed = applier.failed;
      await applier.close();
      for (const l of logs) await l.close();
      this.o.log.warn(`live replication from ${this.o.peer} ended${e ? `: ${e.message}` : ''}${failed ? `; a change failed: ${failed.message}` : ''}`);
      this.feed({ kind: 'stream-ended', failed: failed ? failed.message : null });
      if (!failed) await this.o.markers.clearDirty(backings);
    }).catch((e: Error) => this.o.log.warn(`after the live stream from ${this.o.peer}: ${e.message}; the copy stays marked dirty (compared next time)`));
    this.ending = this.ending.then(() => ended);
    return Promise.race([
      ok,
      rx.done.then((e) => { throw e ?? new ReplicationError('link-lost', `${this.o.peer} closed the replication channel`); }),
    ]);
  }

  private feed(e: SecondaryEvent) {
    const r = stepSecondary(this.st, e);
    this.st = r.state;
    for (const a of r.actions) this.apply(a);
  }

  private apply(a: SecondaryAction) {
    switch (a.kind) {
      case 'attach':
        void this.attach(a.gen);
        return;
      case 'retry-at':
        this.retry?.();
        this.retry = this.o.clock.after(Math.max(0, a.at - this.o.clock.mono()), () => {
          this.retry = null;
          this.feed({ kind: 'tick', now: this.o.clock.mono() });
        });
        return;
      case 'report-behind':
        this.o.copyBehind(a.reason);
        return;
      case 'log':
        this.o.log[a.level](a.msg);
        return;
    }
  }

  /** Reattaches the live stream of a clean copy to its PRIM (after a swap or a daemon restart). */
  private async attach(gen: string): Promise<void> {
    const clean = !(await this.o.markers.isDirty());
    if (!clean) return this.feed({ kind: 'attach-result', ok: false, dirty: true, now: this.o.clock.mono() });
    let rx: Promise<void> | null = null;
    let ctl: CtlPeer | null = null;
    try {
      ctl = new CtlPeer(await this.o.connect(), this.o.liveness);
      await this.o.markers.markDirty();
      await ctl.request({ op: 'begin', attach: true, expectGen: gen, targetGen: gen, clean }, undefined, () => {
        rx = this.start(ctl!.handoff(), gen);
      });
      await rx!;
      this.o.log.info(`attached to ${this.o.peer}: live replication of generation ${gen}`);
      this.feed({ kind: 'attach-result', ok: true, now: this.o.clock.mono() });
    } catch (e) {
      ctl?.close();
      // refused before anything was applied: the copy is still exactly `gen`
      if (rx === null) await this.o.markers.clearDirty([]).catch(() => {});
      this.o.log.warn(`attaching to ${this.o.peer}: ${(e as Error).message}`);
      this.feed({ kind: 'attach-result', ok: false, now: this.o.clock.mono() });
    }
  }
}
