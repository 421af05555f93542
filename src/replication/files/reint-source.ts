/**
 * The primary's side of a reintegration (docs/design/replication.md): it answers the returning node's requests on
 * the replication channel (`begin`, `pass`, `manifest`, `sums`, `plan`, `read`, `readlink`, `done`), freezes its
 * mounts for the final pass and hands the channel over to the live stream at `done`.
 *
 * Contract:
 * - A session is served only while this node is the primary and records changes (mode `record`); `begin` on a live
 *   stream means the SECOND restarted its replication: the stream fails (the SECOND missed changes) and the SECOND
 *   is told to retry once the change is recorded (EAGAIN).
 * - Pass 1 comes from the change record when it is trusted, its base is the returning node's generation and that
 *   node's copy is clean; else the returning node compares (`compare: true`). Pass k: the changes made during pass
 *   k-1 (the sink's extent maps), or a comparison when a change could not be mapped.
 * - The final pass runs frozen: mutating operations wait, reads go on; the freeze ends at `done`, when the session
 *   ends, or after FREEZE_LIMIT_MS (timer through the Clock). Every path from the peer is opened from a held root
 *   descriptor, never following a symlink (source-tree.ts).
 */
import { performance } from 'node:perf_hooks';
import type { ReplicatedDir } from '../../config/types.js';
import type { Cancel, Clock } from '../../platform/clock/types.js';
import type { PrimaryLayout } from '../layout/index.js';
import type { ExtentMap } from '../record/extent-map.js';
import { planToJson } from '../reintegrate/plan.js';
import { localRecordSource, planFromRecord } from '../reintegrate/record-plan.js';
import type { Channel } from '../stream/channel.js';
import type { ReplicationStatus } from '../types.js';
import { CtlError, type CtlPeer, type CtlReply } from './ctl.js';
import { MANIFEST_PAGE_BYTES, MANIFEST_PAGE_ENTRIES, passAnswer, planChunk, SUMS_PAGE } from './remote-compare.js';
import type { PrimarySink, SinkLog } from './sink.js';
import { decodeManifestPage, FLAG_LOGGED, markLogged } from './manifest-codec.js';
import { SourceTree, type WireManifestEntry } from './source-tree.js';
import type { EncodedPage } from './tree-walk.js';

/** a frozen primary thaws and drops the session if the SECOND has not finished the final pass by then */
export const FREEZE_LIMIT_MS = 120_000;
export const READ_MAX = 1 << 20;

interface Session {
  ctl: CtlPeer;
  startedAt: number;
  bytesServed: number;
  pass: number;
  recordMode: boolean;
  frozen: boolean;
  freezeCancel: Cancel | null;
  /** the last pass's plans (UTF-8 JSON per dir) when too large to answer inline: fetched with `plan` */
  plans?: Buffer[];
  /** per dir, the paths of this node's activity log when the session began (comparison only): flagged in manifests */
  logged: Set<string>[] | null;
  /** the manifest page read ahead: the one after the last page answered */
  ahead: { dir: number; after: string | null; bin: boolean; page: Promise<EncodedPage> } | null;
}

export interface ReintegrationSourceOptions {
  self: string;
  peer: string;
  module: string;
  dirs: ReplicatedDir[];
  clock: Clock;
  log: SinkLog;
  sink: PrimarySink;
  /** the primary layout now (null: not the primary) and its backing roots */
  layout: () => { layout: PrimaryLayout; backings: string[] } | null;
  /** a reintegration ended: what it took (shown by status) */
  finished: (r: NonNullable<ReplicationStatus['lastReintegration']>) => void;
  /**
   * the paths of dir `i` in this node's activity log (CrashMarkers.logged): files changed in place that the peer
   * may not hold, possibly under their old size and mtime (a crash of this node, a restored mtime)
   */
  logged: (i: number) => Promise<Set<string>>;
}

export class ReintegrationSource {
  private session: Session | null = null;
  private freezeStartedAt = 0;

  constructor(private readonly o: ReintegrationSourceOptions) {}

  get active(): boolean {
    return this.session !== null;
  }

  /** The channel closed (or this node leaves the primary role): the session, if it was this one, ends. */
  end(why: string, ctl?: CtlPeer): void {
    const s = this.session;
    if (!s || (ctl && s.ctl !== ctl)) return;
    this.session = null;
    this.o.sink.endSegments();
    s.freezeCancel?.();
    if (s.frozen) this.thaw();
    this.o.log.warn(`reintegration of ${this.o.peer} interrupted: ${why}`);
    s.ctl.close();
  }

  async handle(ctl: CtlPeer, b: Record<string, unknown>): Promise<CtlReply> {
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
        const bin = b.format === 'bin';
        const page = await this.manifestPage(s, i, (b.after as string | undefined) ?? null, bin);
        // files this node changed in place and may not have replicated: the SECOND compares their blocks whatever
        // their size and mtime (its own activity log says the same of its side)
        const logged = s.logged?.[i];
        if (logged?.size) markLogged(page.data, page.count, logged);
        if (bin) return { body: { count: page.count, next: page.next }, data: page.data };
        // the JSON form earlier versions ask for (no `format`)
        const entries: [string, WireManifestEntry][] = [];
        decodeManifestPage(page.data, page.count, (rel, e, flags) => {
          entries.push([rel, { ...e, mtimeNs: e.mtimeNs.toString(), ...(flags & FLAG_LOGGED ? { logged: true as const } : {}) }]);
        });
        return { body: { entries, next: page.next } };
      }
      case 'sums': {
        // one page of sums, computed when asked: nothing is kept per file between requests
        const i = this.dirIndex(b.dir);
        const blockSize = intIn(b.blockSize, 4096, 16 << 20, 'blockSize');
        const first = b.first === undefined ? 0 : intIn(b.first, 0, Math.floor(Number.MAX_SAFE_INTEGER / blockSize) - SUMS_PAGE, 'first');
        const count = b.count === undefined ? SUMS_PAGE : intIn(b.count, 1, SUMS_PAGE, 'count');
        const sums = await this.tree(i).blockSums(b.path, blockSize, first, count);
        return { body: { first, count: sums.length, eof: sums.length < count }, data: Buffer.concat(sums) };
      }
      case 'plan':
        return { body: {}, data: planChunk(s.plans, this.dirIndex(b.dir), b.offset) };
      case 'read': {
        const i = this.dirIndex(b.dir);
        const length = intIn(b.length, 0, READ_MAX, 'length');
        const offset = intIn(b.offset, 0, Number.MAX_SAFE_INTEGER, 'offset');
        const data = await this.tree(i).read(b.path, offset, length);
        s.bytesServed += data.length;
        return { body: {}, data };
      }
      case 'readlink': {
        const i = this.dirIndex(b.dir);
        return { body: { target: await this.tree(i).readlink(b.path) } };
      }
      case 'done': {
        if (!s.frozen) throw new CtlError('done before the final pass', 'EPROTO');
        const gen = this.o.sink.gen!;
        ctl.answerNow(b.id as number, { live: true, gen });
        const ch: Channel = ctl.handoff();
        this.session = null;
        s.freezeCancel?.();
        this.o.sink.goLive(ch, gen);
        const freezeMs = this.thaw();
        const ms = Math.round(performance.now() - s.startedAt);
        this.o.finished({ mode: s.recordMode ? 'changes' : 'compare', bytes: s.bytesServed, ms, passes: s.pass, freezeMs, at: new Date(this.o.clock.wall()).toISOString() });
        this.o.log.info(`${this.o.peer} caught up: ${s.bytesServed} bytes sent in ${s.pass} passes, ${ms} ms, writes held ${freezeMs} ms; every change is replicated again`);
        return { body: { answered: true } };
      }
      default:
        throw new CtlError(`unknown request ${String(op)}`, 'EPROTO');
    }
  }

  /**
   * The manifest page of dir `i` after `after`: the one read ahead when it is the page asked for, else read now; then
   * the page after it is read ahead (one page per session at most), so that this node lists while the page just
   * answered crosses the network and the SECOND takes it in. A page read ahead is as valid as one read when asked:
   * the pass began before either (what changes later is in the next pass).
   */
  private async manifestPage(s: Session, i: number, after: string | null, bin: boolean): Promise<EncodedPage> {
    // the JSON form is several times larger than the encoded one: its pages hold less, to stay far below the ctl limit
    const maxBytes = bin ? MANIFEST_PAGE_BYTES : MANIFEST_PAGE_BYTES / 4;
    const read = (from: string | null) => this.tree(i).manifestPage(from, this.o.dirs[i]!.notreplicated, MANIFEST_PAGE_ENTRIES, maxBytes);
    const ahead = s.ahead;
    s.ahead = null;
    // a page read ahead that failed is read again now (the error, if any, is the one of that second read)
    const page = ahead && ahead.dir === i && ahead.after === after && ahead.bin === bin
      ? await ahead.page.catch(() => read(after)) : await read(after);
    if (page.next !== null && this.session === s) {
      const next = read(page.next);
      next.catch(() => {}); // nobody may ask for it (the session ends): not an unhandled rejection
      s.ahead = { dir: i, after: page.next, bin, page: next };
    }
    return page;
  }

  private async begin(ctl: CtlPeer, b: Record<string, unknown>): Promise<CtlReply> {
    const sink = this.o.sink;
    const gen = sink.gen;
    if (!this.o.layout() || !gen || sink.mode === 'off') throw new CtlError(`${this.o.self} does not run ${this.o.module}`, 'ENOTPRIM');
    if (typeof b.expectGen === 'string' && b.expectGen !== gen) throw new CtlError(`${this.o.self}'s generation is ${gen}, not ${b.expectGen}`, 'EGEN');
    if (b.attach === true) {
      if (sink.mode !== 'awaiting' || b.targetGen !== gen || b.clean !== true) throw new CtlError('the copy must be reintegrated first', 'ERESYNC');
      ctl.answerNow(b.id as number, { live: true, gen });
      sink.goLive(ctl.handoff(), gen);
      this.o.log.info(`${this.o.peer} attached as SECOND on generation ${gen}`);
      return { body: { answered: true } };
    }
    if (sink.mode === 'live') {
      sink.peerRestarted();
      throw new CtlError('replication was live: retry once this node recorded the change', 'EAGAIN');
    }
    if (sink.mode !== 'record') throw new CtlError(`not ready to reintegrate (${sink.mode})`, 'EAGAIN');
    const rs = sink.changeRecords ?? [];
    const recordMode = b.full !== true && b.quarantine !== true && b.clean === true && rs.length === this.o.dirs.length
      && rs.every((r) => r.trusted() && r.baseGeneration === b.targetGen);
    const logged = recordMode ? null : await Promise.all(this.o.dirs.map((_, i) => this.o.logged(i)));
    if (sink.mode !== 'record' || sink.gen !== gen) throw new CtlError(`not ready to reintegrate (${sink.mode})`, 'EAGAIN');
    if (this.session) this.end('replaced by a new reintegration');
    this.session = { ctl, startedAt: performance.now(), bytesServed: 0, pass: 0, recordMode, frozen: false, freezeCancel: null, logged, ahead: null };
    this.o.log.info(`${this.o.peer} reintegrates from generation ${gen} (${recordMode ? 'from the change record'
      : `by comparison: ${rs[0]?.untrustedReason() ?? (b.clean !== true ? 'its copy may hold changes of its own' : b.full === true ? 'full sync asked' : b.quarantine === true ? 'split brain' : `its generation ${String(b.targetGen)} is not the record's base ${rs[0]?.baseGeneration}`)}`})`);
    return { body: { gen, recordMode } };
  }

  private async pass(s: Session, final: boolean): Promise<CtlReply> {
    if (final && !s.frozen) {
      await this.freeze();
      s.frozen = true;
      s.freezeCancel = this.o.clock.after(FREEZE_LIMIT_MS, () => {
        if (this.session === s) this.end(`${this.o.peer} did not finish the final pass within ${FREEZE_LIMIT_MS} ms`);
      });
    }
    s.pass++;
    const previous = this.o.sink.nextSegments();
    let maps: ExtentMap[] | null = null;
    if (s.pass === 1) maps = s.recordMode ? this.o.sink.changeRecords!.map((r) => r.snapshot()) : null;
    else maps = previous.maps && !previous.broken ? previous.maps : null;
    if (!maps) return { body: { compare: true } };
    const plans: string[] = [];
    const backings = this.o.layout()?.backings ?? [];
    for (const [i, m] of maps.entries()) {
      const excludes = this.o.dirs[i]!.notreplicated;
      plans.push(planToJson(await planFromRecord(m, localRecordSource(backings[i]!, excludes), { excludes })));
    }
    const a = passAnswer(plans); // too large for one answer: the SECOND fetches them in chunks (`plan`)
    if (a.paged) s.plans = a.paged;
    return { body: a.body };
  }

  private async freeze(): Promise<void> {
    this.freezeStartedAt = performance.now();
    for (const d of this.o.layout()?.layout.dirs ?? []) {
      await d.mount.freeze?.();
      await d.mount.sinkDrained?.(); // writes streamed before the freeze are recorded before the last delta is made
    }
  }

  private thaw(): number {
    for (const d of this.o.layout()?.layout.dirs ?? []) d.mount.thaw?.();
    return Math.round(performance.now() - this.freezeStartedAt);
  }

  private dirIndex(v: unknown): number {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v >= this.o.dirs.length) throw new CtlError(`no replicated dir #${String(v)}`, 'EINVAL');
    return v;
  }

  /** Where the peer's paths are opened: from the backing root, never following a symlink (source-tree.ts). */
  private tree(i: number): SourceTree {
    const backings = this.o.layout()?.backings;
    if (!backings) throw new CtlError(`${this.o.self} does not run ${this.o.module}`, 'ENOTPRIM');
    return new SourceTree(backings[i]!);
  }
}

export function intIn(v: unknown, min: number, max: number, what: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw new CtlError(`${what} must be an integer in [${min}, ${max}]`, 'EINVAL');
  return v;
}
