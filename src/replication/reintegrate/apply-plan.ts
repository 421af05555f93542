import { constants as C } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { BugError, UserError } from '../../errors.js';
import { writeDurably } from '../../daemon/state-store.js';
import { inParallel } from '../../parallel.js';
import { assertRelPath, deepestFirst, isUnder, parentOf, shallowestFirst } from '../record/extent-map.js';
import type { ReintegrationProgress } from '../types.js';
import { STAGING_DIR } from './compare.js';
import { planBytes, planFromJson, planId, planToJson, type MetaSet, type Plan, type Range } from './plan.js';
import { Quarantine } from './quarantine.js';
import { isAbsent, nsToSeconds, TargetTree } from './target-tree.js';

export { nsToSeconds };

/**
 * Where content comes from while a plan is applied: a local directory (tests, `localSourceReader`) or the peer
 * over the replication channel. `readRange` returns up to `length` bytes at `offset` (fewer at end of file: the
 * source shrank since the plan) and rejects with an error whose `code` is 'ENOENT' if the path is gone.
 */
export interface SourceReader {
  readRange(path: string, offset: number, length: number): Promise<Buffer>;
  readlink(path: string): Promise<string>;
  /**
   * Optional hint: the chunks the applier will read from now on, in order, as a lazy sequence (a remote reader may
   * read ahead along it, across files, as far as it pulls it). Replaces an earlier sequence.
   */
  readAhead?(chunks: Iterator<ReadChunk>): void;
}

/** One `readRange` the applier will make. */
export interface ReadChunk {
  path: string;
  offset: number;
  length: number;
}

/** The [offset, length] reads of `ranges` in chunks of at most `chunk` bytes, after skipping their first `skip` bytes. */
export function* rangeChunks(ranges: Range[], skip: number, chunk: number): Generator<[number, number]> {
  for (const [s, e] of ranges) {
    if (skip >= e - s) {
      skip -= e - s;
      continue;
    }
    for (let pos = s + skip; pos < e; pos += chunk) yield [pos, Math.min(chunk, e - pos)];
    skip = 0;
  }
}

/** fsyncs of copied files in flight at once at a checkpoint */
const SYNC_PARALLEL = 8;

/** Up to `length` bytes at `offset` of an open file: fewer only at its end. */
export async function readFully(fh: fs.FileHandle, offset: number, length: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length);
  let got = 0;
  while (got < length) {
    const { bytesRead } = await fh.read(buf, got, length - got, offset + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return buf.subarray(0, got);
}

export function localSourceReader(root: string): SourceReader {
  return {
    async readRange(rel, offset, length) {
      const fh = await fs.open(path.join(root, rel), 'r');
      try {
        return await readFully(fh, offset, length);
      } finally {
        await fh.close();
      }
    },
    readlink: (rel) => fs.readlink(path.join(root, rel)),
  };
}

/**
 * The target does not hold what the plan expects (a file to patch or a base object to move is missing): the plan
 * was computed from a change record whose base the target does not have. The caller recomputes the plan by
 * comparison (compare.ts).
 */
export class PlanMismatchError extends UserError {
  constructor(what: string) {
    super(`${what}: the local copy does not match the change record it is being updated from.`,
      'tandem falls back to comparing the trees; if this repeats, run the reintegration with --fullsync.');
  }
}

export interface ApplyOptions {
  /** the tree to update */
  targetRoot: string;
  source: SourceReader;
  /** small directory for the durable checkpoint (plan.json, progress.json); one per reintegration target */
  checkpointDir: string;
  /** required when the plan quarantines files: where, and the generation of the local data being set aside */
  quarantine?: { root: string; generation: string };
  /** monotonic ms, for the rate and the checkpoint period */
  now?: () => number;
  /** wall clock, for the quarantine's name */
  wallNow?: () => Date;
  /** checkpoint at most this often (ms); 0 = after every step */
  checkpointEveryMs?: number;
  /** bytes read from the source per request */
  chunkSize?: number;
  signal?: AbortSignal;
  /** called after each step is done; an exception interrupts the run (after a checkpoint), as a failure would */
  onStepDone?: (s: StepInfo) => void | Promise<void>;
}

export interface StepInfo {
  index: number;
  kind: Step['k'];
  path: string;
}

export interface ApplyReport {
  /** bytes read from the source during this run ("bytes sent") */
  bytesTransferred: number;
  /** bytes the whole plan reads from the source */
  bytesPlanned: number;
  /** step the run started at (0 = from the beginning; >0 = resumed) */
  resumedAt: number;
  steps: number;
  stepsRun: number;
  counts: Record<Step['k'], number>;
  quarantine: { name: string; dir: string; files: number } | null;
}

type Step =
  | { k: 'quarantine'; path: string; restore: boolean }
  | { k: 'stage'; i: number; from: string }
  | { k: 'delete'; path: string }
  | { k: 'place'; i: number; to: string }
  | { k: 'mkdir'; path: string }
  | { k: 'copy'; path: string; size: number }
  | { k: 'patch'; path: string; size: number; ranges: Range[] }
  | { k: 'symlink'; path: string }
  | { k: 'meta'; m: MetaSet }
  | { k: 'finish' };

interface Progress {
  v: 1;
  planId: string;
  /** steps before `next` are done */
  next: number;
  /** bytes of step `next`'s ranges already durably written */
  stepOffset: number;
  bytesDone: number;
  quarantineName: string | null;
}

const PLAN_FILE = 'plan.json';
const PROGRESS_FILE = 'progress.json';

const stagePath = (i: number) => `${STAGING_DIR}/stage/${i}`;
const RESTORE_TMP = `${STAGING_DIR}/restore.tmp`;

/**
 * The plan as a flat list of idempotent steps, in the order documented on `Plan`. Deterministic: a checkpoint is
 * an index into this list. Deletions under a staged move source are rewritten to the staged location.
 */
export function planSteps(plan: Plan): Step[] {
  for (const p of plan.patches) if (p.ranges === null) throw new BugError(`patch of ${p.path} has no ranges (call withBlockRanges)`);
  const all = [
    ...plan.quarantine, ...plan.moves.flatMap((m) => [m.from, m.to]), ...plan.deletes, ...plan.mkdirs,
    ...plan.copies.map((c) => c.path), ...plan.patches.map((p) => p.path), ...plan.symlinks.map((s) => s.path),
    ...plan.metadata.map((m) => m.path),
  ];
  for (const p of all) assertRelPath(p);
  const patched = new Set(plan.patches.map((p) => p.path));
  const staged = plan.moves.map((m, i) => ({ ...m, i })).sort((a, b) => deepestFirst(a.from, b.from));
  const stageIndex = new Map(staged.map((m, n) => [m.i, n]));
  const translate = (d: string): string => {
    let best: { from: string; i: number } | null = null;
    for (const m of staged) if (isUnder(d, m.from) && (!best || m.from.length > best.from.length)) best = m;
    return best ? stagePath(stageIndex.get(best.i)!) + d.slice(best.from.length) : d;
  };
  return [
    ...plan.quarantine.map((p): Step => ({ k: 'quarantine', path: p, restore: patched.has(p) })),
    ...staged.map((m, n): Step => ({ k: 'stage', i: n, from: m.from })),
    ...plan.deletes.map((d): Step => ({ k: 'delete', path: translate(d) })),
    ...staged.map((m, n) => ({ n, to: m.to })).sort((a, b) => shallowestFirst(a.to, b.to))
      .map((m): Step => ({ k: 'place', i: m.n, to: m.to })),
    ...plan.mkdirs.map((p): Step => ({ k: 'mkdir', path: p })),
    ...plan.copies.map((c): Step => ({ k: 'copy', path: c.path, size: c.size })),
    ...plan.patches.map((p): Step => ({ k: 'patch', path: p.path, size: p.size, ranges: p.ranges! })),
    ...plan.symlinks.map((s): Step => ({ k: 'symlink', path: s.path })),
    ...plan.metadata.map((m): Step => ({ k: 'meta', m })),
    { k: 'finish' },
  ];
}

/**
 * Steps after which the checkpoint is written at once. Every step is idempotent on its own, but replaying a
 * sequence is not always: replaying a delete of `b` after the move that put a new object at `b` would remove that
 * object (and the replayed move would find nothing left to move). So a crash never leaves the checkpoint before a
 * completed stage or place step, nor before the end of the quarantine and delete phases when a place follows.
 */
function isBarrier(step: Step, next: Step | undefined): boolean {
  if (step.k === 'stage' || step.k === 'place') return true;
  return (step.k === 'quarantine' || step.k === 'delete') && next?.k !== step.k;
}

function stepPath(s: Step): string {
  switch (s.k) {
    case 'stage': return s.from;
    case 'place': return s.to;
    case 'meta': return s.m.path;
    case 'finish': return '';
    default: return s.path;
  }
}

/** The plan of an interrupted reintegration in `checkpointDir`, to resume it after a restart; null if none. */
export async function loadPendingPlan(checkpointDir: string): Promise<Plan | null> {
  try {
    return planFromJson(await fs.readFile(path.join(checkpointDir, PLAN_FILE), 'utf8'));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

/**
 * Applies a plan to `targetRoot`, resumably. Contract:
 * - steps run in the order of `planSteps`; each is idempotent, and the checkpoint is forced where replaying a
 *   run of steps would not be (`isBarrier`), so redoing the steps after the last checkpoint (after a crash) gives
 *   the same result;
 * - a checkpoint says "steps before N are done (and step N up to byte K)" only once their effects are durable:
 *   written files and changed directories are fsync'd before the checkpoint is written (writeDurably);
 * - a run of the same plan with an existing checkpoint resumes from it; a different plan starts over;
 * - on completion the checkpoint is removed and the staging directory is gone;
 * - on failure or abort, a checkpoint of the work done is written (best effort) before the error is rethrown;
 * - every path of the plan is opened from a descriptor of `targetRoot` held for the run, component by component,
 *   never following a symlink (target-tree.ts): a plan (a peer) cannot make it write, chmod, rename or delete
 *   anything outside the target, even through symlinks it created itself in an earlier step or pass.
 * The source may change while the plan runs (the application keeps writing): bytes are copied as read, and the
 * caller's live replication must apply later operations after the copied ranges (ARCHITECTURE.md).
 */
export class PlanApplier {
  private readonly steps: Step[];
  private readonly id: string;
  private readonly bytesTotal: number;
  private readonly now: () => number;
  private bytesDone = 0;
  private bytesAtStart = 0;
  private startedAt = 0;
  private transferred = 0;
  private next = 0;
  private stepOffset = 0;
  private durableStepOffset = 0;
  private lastSave = 0;
  private quarantine: Quarantine | null = null;
  private tree: TargetTree | null = null;
  /** relative paths in the target ('' = its root) */
  private readonly unsyncedFiles = new Set<string>();
  private readonly dirtyDirs = new Set<string>();
  /** absolute paths of quarantine directories whose entries changed */
  private readonly dirtyQuarantineDirs = new Set<string>();
  private readonly counts = Object.fromEntries(
    ['quarantine', 'stage', 'delete', 'place', 'mkdir', 'copy', 'patch', 'symlink', 'meta', 'finish'].map((k) => [k, 0]),
  ) as Record<Step['k'], number>;

  constructor(private readonly plan: Plan, private readonly opts: ApplyOptions) {
    if (plan.quarantine.length > 0 && !opts.quarantine) throw new BugError('the plan quarantines files but no quarantine root was given');
    this.steps = planSteps(plan);
    this.id = planId(plan);
    this.bytesTotal = planBytes(plan);
    this.now = opts.now ?? (() => performance.now());
  }

  progress(): ReintegrationProgress {
    const secs = (this.now() - this.startedAt) / 1000;
    return {
      bytesDone: this.bytesDone,
      bytesTotal: this.bytesTotal,
      rateBytesPerS: secs > 0 ? Math.round((this.bytesDone - this.bytesAtStart) / secs) : 0,
    };
  }

  async run(): Promise<ApplyReport> {
    this.tree = await TargetTree.open(this.opts.targetRoot);
    try {
      return await this.runOpen();
    } finally {
      await this.tree.close();
      this.tree = null;
    }
  }

  private async runOpen(): Promise<ApplyReport> {
    const cp = await this.loadProgress();
    this.next = cp?.next ?? 0;
    this.stepOffset = this.durableStepOffset = cp?.stepOffset ?? 0;
    this.bytesDone = this.bytesAtStart = cp?.bytesDone ?? 0;
    this.startedAt = this.lastSave = this.now();
    const resumedAt = this.next;
    if (!cp) {
      await writeDurably(path.join(this.opts.checkpointDir, PLAN_FILE), planToJson(this.plan));
      await this.saveProgress();
    }
    if (this.opts.quarantine && this.plan.quarantine.length > 0) {
      this.quarantine = await Quarantine.open(this.opts.quarantine.root, {
        generation: this.opts.quarantine.generation,
        from: this.opts.targetRoot,
        now: (this.opts.wallNow ?? (() => new Date()))(),
        ...(cp?.quarantineName ? { name: cp.quarantineName } : {}),
      });
      await this.saveProgress();
    }
    let stepsRun = 0;
    this.opts.source.readAhead?.(this.chunksFrom(this.next, this.stepOffset));
    try {
      for (let i = this.next; i < this.steps.length; i++) {
        this.checkAbort();
        const step = this.steps[i]!;
        await this.exec(step);
        this.counts[step.k]++;
        this.next = i + 1;
        this.stepOffset = this.durableStepOffset = 0;
        stepsRun++;
        await this.opts.onStepDone?.({ index: i, kind: step.k, path: stepPath(step) });
        if (isBarrier(step, this.steps[i + 1]) || this.now() - this.lastSave >= (this.opts.checkpointEveryMs ?? 1000)) {
          await this.checkpoint();
        }
      }
    } catch (e) {
      this.bytesDone -= this.stepOffset - this.durableStepOffset; // not durable: redone on resume
      this.stepOffset = this.durableStepOffset;
      await this.checkpoint().catch(() => undefined);
      throw e;
    }
    await this.syncPending();
    await fs.rm(path.join(this.opts.checkpointDir, PROGRESS_FILE), { force: true });
    await fs.rm(path.join(this.opts.checkpointDir, PLAN_FILE), { force: true });
    await syncDir(this.opts.checkpointDir);
    const q = this.quarantine;
    return {
      bytesTransferred: this.transferred,
      bytesPlanned: this.bytesTotal,
      resumedAt,
      steps: this.steps.length,
      stepsRun,
      counts: { ...this.counts },
      quarantine: q ? { name: q.name, dir: q.dir, files: q.files().length } : null,
    };
  }

  private get chunk(): number {
    return this.opts.chunkSize ?? 1024 * 1024;
  }

  /** The reads of the copy and patch steps from step `from` on (`skip` bytes of it done), in the order `transfer` makes them. */
  private *chunksFrom(from: number, skip: number): Generator<ReadChunk> {
    for (let i = from; i < this.steps.length; i++) {
      const s = this.steps[i]!;
      if (s.k !== 'copy' && s.k !== 'patch') continue;
      const ranges: Range[] = s.k === 'copy' ? [[0, s.size]] : s.ranges;
      for (const [offset, length] of rangeChunks(ranges, i === from ? skip : 0, this.chunk)) yield { path: s.path, offset, length };
    }
  }

  private get t(): TargetTree {
    return this.tree!;
  }

  private checkAbort(): void {
    const s = this.opts.signal;
    if (s?.aborted) throw s.reason instanceof Error ? s.reason : new Error('reintegration aborted');
  }

  private async exec(step: Step): Promise<void> {
    switch (step.k) {
      case 'quarantine': {
        const dirs = await this.t.at(step.path, (src) => this.quarantine!.add(step.path, src)).catch((e: unknown) => {
          if (isAbsent(e)) return null; // a parent is gone or not a directory: nothing of ours there to keep
          throw e;
        });
        if (dirs) {
          for (const d of dirs) this.dirtyQuarantineDirs.add(d);
          this.dirtyDirs.add(parentOf(step.path));
        }
        if (step.restore && !(await this.t.exists(step.path))) {
          // the patch needs the old content as its base: a copy (a clone where the filesystem can) comes back
          await this.t.removeTree(RESTORE_TMP);
          await this.t.copyIn(path.join(this.quarantine!.dir, step.path), RESTORE_TMP);
          await this.t.sync(RESTORE_TMP);
          await this.t.rename(RESTORE_TMP, step.path);
          this.dirtyDirs.add(parentOf(step.path));
        }
        return;
      }
      case 'stage': {
        const dest = stagePath(step.i);
        await this.t.mkdirp(parentOf(dest));
        try {
          await this.t.rename(step.from, dest);
        } catch (e) {
          if (!isAbsent(e)) throw e;
          if (!(await this.t.exists(dest))) throw new PlanMismatchError(`${step.from} (renamed by the source) is missing here`);
        }
        this.dirtyDirs.add(parentOf(step.from));
        this.dirtyDirs.add(parentOf(dest));
        return;
      }
      case 'delete':
        await this.t.removeTree(step.path);
        this.dirtyDirs.add(parentOf(step.path));
        return;
      case 'place': {
        const src = stagePath(step.i);
        if (!(await this.t.exists(src))) return; // placed before the interruption
        await this.t.rename(src, step.to);
        this.dirtyDirs.add(parentOf(src));
        this.dirtyDirs.add(parentOf(step.to));
        return;
      }
      case 'mkdir':
        await this.t.mkdirp(step.path);
        this.dirtyDirs.add(parentOf(step.path));
        return;
      case 'copy':
        return this.transfer(step.path, step.size, [[0, step.size]], false);
      case 'patch':
        return this.transfer(step.path, step.size, step.ranges, true);
      case 'symlink': {
        let target: string;
        try {
          target = await this.opts.source.readlink(step.path);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'ENOENT') return; // gone at the source since the plan
          throw e;
        }
        await this.t.at(step.path, async (p) => {
          await fs.unlink(p).catch((e: NodeJS.ErrnoException) => { if (e.code !== 'ENOENT') throw e; });
          await fs.symlink(target, p);
        });
        this.dirtyDirs.add(parentOf(step.path));
        return;
      }
      case 'meta':
        return this.t.setMeta(step.m.path, step.m);
      case 'finish':
        await this.t.removeTree(STAGING_DIR);
        this.dirtyDirs.add('');
        await this.quarantine?.save(true);
        return;
    }
  }

  /**
   * Writes `ranges` of the source's `rel` into the target's, then sets its size. Resumes at `stepOffset` bytes
   * into the ranges. A patch needs the target file (its base); a copy creates it (replacing a symlink or special file
   * there: a copy is the whole file, whatever held its name).
   */
  private async transfer(rel: string, size: number, ranges: Range[], patch: boolean): Promise<void> {
    const open = (flags: number) => this.t.openFile(rel, flags, 0o600);
    const create = async () => {
      try {
        return await open(C.O_WRONLY | C.O_CREAT | C.O_TRUNC);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ELOOP') throw e;
        await this.t.at(rel, (p) => fs.unlink(p)); // a symlink where the file goes: the copy replaces it
        return open(C.O_WRONLY | C.O_CREAT | C.O_EXCL);
      }
    };
    let fh: fs.FileHandle;
    try {
      fh = patch || this.stepOffset > 0 ? await open(C.O_RDWR) : await create();
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (patch && (code === 'ENOENT' || code === 'ELOOP' || code === 'ENOTDIR')) throw new PlanMismatchError(`${rel} (to be patched) is missing here`);
      if (code !== 'ENOENT') throw e;
      this.bytesDone -= this.stepOffset; // the partial copy is gone: start the file again
      this.stepOffset = this.durableStepOffset = 0;
      fh = await create();
    }
    if (!(await fh.stat()).isFile()) {
      await fh.close();
      throw new PlanMismatchError(`${rel} (to be ${patch ? 'patched' : 'copied'}) is not a regular file here`);
    }
    let gone = false;
    try {
      for (const [pos, len] of rangeChunks(ranges, this.stepOffset, this.chunk)) {
        this.checkAbort();
        let buf: Buffer;
        try {
          buf = await this.opts.source.readRange(rel, pos, len);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') { gone = true; break; }
          throw err;
        }
        if (buf.length > 0) await fh.write(buf, 0, buf.length, pos);
        this.transferred += buf.length;
        this.bytesDone += len;
        this.stepOffset += len;
        if (this.now() - this.lastSave >= (this.opts.checkpointEveryMs ?? 1000)) {
          await fh.sync();
          this.durableStepOffset = this.stepOffset;
          await this.checkpoint();
        }
      }
      if (!gone) await fh.truncate(size);
    } finally {
      await fh.close();
    }
    if (gone) {
      // deleted at the source since the plan: so is the local copy (the live stream agrees)
      await this.t.at(rel, (p) => fs.unlink(p)).catch((e: unknown) => { if (!isAbsent(e)) throw e; });
      this.dirtyDirs.add(parentOf(rel));
      return;
    }
    this.unsyncedFiles.add(rel);
    if (!patch) this.dirtyDirs.add(parentOf(rel));
  }

  private async syncPending(): Promise<void> {
    // several at once: the filesystem commits concurrent fsyncs together (a journal commit for many files)
    await inParallel([...this.unsyncedFiles], SYNC_PARALLEL, (f) => this.t.sync(f).catch((e: unknown) => { if (!isAbsent(e)) throw e; }));
    this.unsyncedFiles.clear();
    for (const d of this.dirtyDirs) await this.t.sync(d).catch((e: unknown) => { if (!isAbsent(e)) throw e; });
    this.dirtyDirs.clear();
    for (const d of this.dirtyQuarantineDirs) {
      await syncDir(d).catch((e: NodeJS.ErrnoException) => { if (e.code !== 'ENOENT') throw e; });
    }
    this.dirtyQuarantineDirs.clear();
  }

  /** Makes the work done durable, then records it. */
  private async checkpoint(): Promise<void> {
    await this.syncPending();
    await this.quarantine?.save();
    await this.saveProgress();
    this.lastSave = this.now();
  }

  private async saveProgress(): Promise<void> {
    const p: Progress = {
      v: 1, planId: this.id, next: this.next, stepOffset: this.stepOffset, bytesDone: this.bytesDone,
      quarantineName: this.quarantine?.name ?? null,
    };
    await writeDurably(path.join(this.opts.checkpointDir, PROGRESS_FILE), JSON.stringify(p));
  }

  private async loadProgress(): Promise<Progress | null> {
    let p: Progress;
    try {
      p = JSON.parse(await fs.readFile(path.join(this.opts.checkpointDir, PROGRESS_FILE), 'utf8')) as Progress;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT' || e instanceof SyntaxError) return null;
      throw e;
    }
    if (p?.v !== 1 || p.planId !== this.id || !Number.isInteger(p.next) || p.next < 0 || p.next > this.steps.length) return null;
    return p;
  }
}

/** Applies `plan` (see PlanApplier). */
export function applyPlan(plan: Plan, opts: ApplyOptions): Promise<ApplyReport> {
  return new PlanApplier(plan, opts).run();
}

async function syncFile(f: string): Promise<void> {
  const fh = await fs.open(f, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function syncDir(d: string): Promise<void> {
  await syncFile(d);
}
