/**
 * The returning node's side of a reintegration (SECOND, transient): it drives the passes against the primary's
 * ReintegrationSource and applies them to its backing copy; at `done` the channel becomes the live stream.
 *
 *   pass 1: the plan from the primary's change record when the primary trusts it for this copy, else a comparison
 *           of the trees (size/mtime, then SHA-256 of 64 KiB blocks; every file changed in the last hour, and every
 *           file of this node's activity log, is block-compared), quarantining divergent files when asked;
 *   pass k: the changes the primary made during pass k-1, or a comparison when they cannot be trusted;
 *   final:  when a pass copied ≤ FINAL_PASS_BYTES (or after MAX_PASSES), frozen on the primary.
 * Contract: nothing of the copy changes before `beginCopy()` resolved (the engine persisted that the copy is
 * incomplete) and the tree-dirty marker is set; reads ahead stay within the window the applier announced.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { ReplicatedDir } from '../../config/types.js';
import type { Clock } from '../../platform/clock/types.js';
import { PlanApplier, PlanMismatchError, type SourceReader } from '../reintegrate/apply-plan.js';
import { planFromManifests, withBlockRanges } from '../reintegrate/compare.js';
import { planFromJson, type Plan } from '../reintegrate/plan.js';
import { listQuarantines } from '../reintegrate/quarantine.js';
import type { Channel } from '../stream/channel.js';
import type { ReintegrateRequest, ReintegrationProgress, ReplicationStatus } from '../types.js';
import type { CrashMarkers } from './crash-markers.js';
import { CtlError, CtlPeer } from './ctl.js';
import { ReadAhead } from './read-ahead.js';
import { READ_MAX } from './reint-source.js';
import { fetchManifest, passPlans, remoteRangesOf } from './remote-compare.js';
import type { SinkLog } from './sink.js';
import { listTreePaged } from './tree-walk.js';

export const FINAL_PASS_BYTES = 8 << 20;
export const MAX_PASSES = 6;
/** with trustMtime, files changed less than this long ago are block-compared anyway (SafeKit: about one hour) */
export const RECENT_MS = 3_600_000;

export interface ReintegrationTargetOptions {
  module: string;
  peer: string;
  dirs: ReplicatedDir[];
  home: { root: string };
  stateDir: string;
  clock: Clock;
  log: SinkLog;
  markers: CrashMarkers;
  liveness: { heartbeatMs: number; deadMs: number };
  connect: () => Promise<Channel>;
  /** hands the channel to the live stream at `done`; resolves once the primary's hello of `gen` was accepted */
  startStream: (ch: Channel, gen: string) => Promise<void>;
}

export class ReintegrationTarget {
  private copying: { applier: PlanApplier | null; doneBefore: number; startedAt: number } | null = null;
  private quarantines: ReplicationStatus['quarantines'] = [];
  lastReintegration: ReplicationStatus['lastReintegration'] = null;

  constructor(private readonly o: ReintegrationTargetOptions) {
    void this.refreshQuarantines();
  }

  get active(): boolean {
    return this.copying !== null;
  }

  get quarantineList(): ReplicationStatus['quarantines'] {
    return this.quarantines;
  }

  progress(): ReintegrationProgress | null {
    const c = this.copying;
    if (!c) return null;
    const p = c.applier?.progress();
    const done = c.doneBefore + (p?.bytesDone ?? 0);
    const secs = (performance.now() - c.startedAt) / 1000;
    return { bytesDone: done, bytesTotal: c.doneBefore + (p?.bytesTotal ?? 0), rateBytesPerS: secs > 0 ? Math.round(done / secs) : 0 };
  }

  /** One reintegration attempt, from connecting to the live stream running; rejects on any failure. */
  async run(req: ReintegrateRequest, backings: string[]): Promise<void> {
    const ctl = new CtlPeer(await this.o.connect(), this.o.liveness);
    const onAbort = () => ctl.close(new Error('reintegration aborted'));
    req.signal.addEventListener('abort', onAbort);
    const t0 = performance.now();
    this.copying = { applier: null, doneBefore: 0, startedAt: t0 };
    try {
      const clean = !(await this.o.markers.isDirty());
      const begun = await ctl.request({
        op: 'begin', expectGen: req.sourceGen, targetGen: req.targetGen, clean, full: req.full, quarantine: req.quarantine,
      });
      const sourceGen = String(begun.body.gen);
      await req.beginCopy();
      // what this node may hold that the source never got (it crashed while primary): compared whatever its mtime
      const mustCheck = clean ? null : await Promise.all(this.o.dirs.map((_, i) => this.o.markers.logged(i)));
      await this.o.markers.markDirty();
      let passes = 0;
      let last = Infinity;
      let total = 0;
      for (;;) {
        passes++;
        const final = passes >= MAX_PASSES || (passes > 1 && last <= FINAL_PASS_BYTES);
        const r = await ctl.request({ op: 'pass', final });
        const plans = await passPlans(ctl, r.body, this.o.dirs.length);
        let bytes = 0;
        for (let i = 0; i < this.o.dirs.length; i++) {
          if (plans) {
            try {
              bytes += await this.applyDir(i, planFromJson(plans[i]!), ctl, backings, req);
              continue;
            } catch (e) {
              if (!(e instanceof PlanMismatchError)) throw e;
              this.o.log.warn(`reintegration pass ${passes} of ${this.o.dirs[i]!.dir}: ${e.message} Comparing instead.`);
            }
          }
          bytes += await this.compareDir(i, ctl, backings, req, { full: req.full, quarantine: req.quarantine && passes === 1, mustCheck: mustCheck?.[i] ?? null });
        }
        last = bytes;
        total += bytes;
        if (final) break;
      }
      let rx: Promise<void> | null = null;
      await ctl.request({ op: 'done' }, undefined, () => { rx = this.o.startStream(ctl.handoff(), sourceGen); });
      await rx!;
      const ms = Math.round(performance.now() - t0);
      this.lastReintegration = {
        mode: begun.body.recordMode === true ? 'changes' : 'compare', bytes: total, ms, passes, freezeMs: 0,
        at: new Date(this.o.clock.wall()).toISOString(),
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

  private async applyDir(i: number, plan: Plan, ctl: CtlPeer, backings: string[], req: ReintegrateRequest): Promise<number> {
    const cp = path.join(this.o.stateDir, 'reintegrate', String(i));
    await fs.rm(cp, { recursive: true, force: true });
    await fs.mkdir(cp, { recursive: true });
    const applier = new PlanApplier(plan, {
      targetRoot: backings[i]!, source: reader(ctl, i), checkpointDir: cp, signal: req.signal,
      ...(plan.quarantine.length > 0 ? { quarantine: { root: this.quarantineRoot(i), generation: req.targetGen ?? 'none' } } : {}),
    });
    const c = this.copying!;
    c.applier = applier;
    const rep = await applier.run();
    c.doneBefore += rep.bytesTransferred;
    c.applier = null;
    if (rep.quarantine) this.o.log.warn(`split brain: ${rep.quarantine.files} local file(s) of ${this.o.dirs[i]!.dir} kept in quarantine at ${rep.quarantine.dir}`);
    return rep.bytesTransferred;
  }

  private async compareDir(i: number, ctl: CtlPeer, backings: string[], req: ReintegrateRequest,
    o: { full: boolean; quarantine: boolean; mustCheck: Set<string> | null }): Promise<number> {
    // both manifests at once: this node lists its copy while the primary's pages arrive
    const [{ manifest: source, logged }, target] = await Promise.all([
      fetchManifest(ctl, i), listTreePaged(backings[i]!, this.o.dirs[i]!.notreplicated),
    ]);
    // compared whatever their size and mtime: what this node may hold that the source never got (its activity log,
    // after a crash) and what the source may hold that this node never got (the source's activity log)
    const mustCheck = new Set([...(o.mustCheck ?? []), ...logged]);
    const checkSince = BigInt(this.o.clock.wall() - RECENT_MS) * 1_000_000n;
    let plan = planFromManifests(source, target, {
      trustMtime: !o.full, checkSince, quarantine: o.quarantine, ...(mustCheck.size ? { mustCheck } : {}),
    });
    plan = withBlockRanges(plan, await remoteRangesOf(ctl, i, backings[i]!, plan.patches, plan.blockSize, req.signal));
    return this.applyDir(i, plan, ctl, backings, req);
  }

  private quarantineRoot(i: number) {
    return path.join(this.o.home.root, 'quarantine', this.o.module, String(i));
  }

  private async refreshQuarantines() {
    const out: ReplicationStatus['quarantines'] = [];
    for (let i = 0; i < this.o.dirs.length; i++) {
      for (const q of await listQuarantines(this.quarantineRoot(i)).catch(() => [])) {
        out.push({ dir: this.o.dirs[i]!.dir, path: path.join(this.quarantineRoot(i), q.name), files: q.files });
      }
    }
    this.quarantines = out;
  }
}

const READ_AHEAD = 32;
const READ_AHEAD_BYTES = 8 << 20;

/**
 * The primary's files as the applier reads them, with read-ahead along the chunks it announced (read-ahead.ts),
 * across files: up to READ_AHEAD requests (READ_AHEAD_BYTES) in flight, so that the copy of many files does not wait
 * a round trip per file or per MiB; nothing is read outside the announced chunks.
 */
function reader(ctl: CtlPeer, i: number): SourceReader {
  const enoent = (e: unknown) => {
    if (e instanceof CtlError && e.code) throw Object.assign(new Error(e.message), { code: e.code });
    throw e;
  };
  const fetch = async (p: string, offset: number, length: number) =>
    (await ctl.request({ op: 'read', dir: i, path: p, offset, length }).catch(enoent)).data ?? Buffer.alloc(0);
  const ahead = new ReadAhead(fetch, { requests: READ_AHEAD, bytes: READ_AHEAD_BYTES });
  return {
    readAhead: (chunks) => ahead.announce(chunks),
    readRange: async (p, offset, length) => {
      if (length <= READ_MAX) return ahead.read(p, offset, length);
      const parts: Buffer[] = [];
      let got = 0;
      while (got < length) {
        const n = Math.min(READ_MAX, length - got);
        const d = await fetch(p, offset + got, n);
        parts.push(d);
        got += d.length;
        if (d.length < n) break;
      }
      return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
    },
    readlink: async (p) => String((await ctl.request({ op: 'readlink', dir: i, path: p }).catch(enoent)).body.target),
  };
}
