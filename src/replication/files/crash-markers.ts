/**
 * What a node leaves on its own disk so that, after a crash, its copy is never trusted beyond what it is:
 *
 * - TREE-DIRTY (`state/<module>.files/tree-dirty`): present while the local tree may hold changes not covered by the
 *   generation it is labelled with — from mounting the interception (or starting to copy or apply) until a clean
 *   exit (unmount with nothing unreplicated pending, or end of the live stream, then syncfs). A dirty copy is always
 *   compared, never patched from a record nor reattached as it is.
 * - ACTIVITY LOG (`state/<module>.files/activity/<dir index>/`, fuse/activity-log.ts): the files the primary changed
 *   in place since the last point known to be on both nodes, each made durable before its change. After a crash
 *   every one of them is block-compared: an in-place overwrite made durable by fdatasync keeps its old size and
 *   mtime, which a comparison would otherwise trust. The SECOND keeps one too (same directory, `AppliedActivityLog`):
 *   the files its applier changed in place since the last syncfs of its copy, whose data a power loss may drop while
 *   their size and mtime survive.
 *
 * Sync points: while live, `SyncPoints` moves each log's epoch on every ROTATE_MS and, once a barrier sent through
 * the stream after that (a syncfs on the SECOND) came back, forgets the epochs two behind. A clean exit forgets all.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { writeDurably } from '../../daemon/state-store.js';
import type { Cancel, Clock } from '../../platform/clock/types.js';
import { ActivityLog, AppliedActivityLog, lastEpoch, loggedPaths, newEpochCounter } from '../fuse/activity-log.js';

export const ROTATE_MS = 30_000;

export class CrashMarkers {
  private readonly logs: ActivityLog[] = [];

  constructor(private readonly stateDir: string, private readonly dirs: number, private readonly syncFs: (dir: string) => Promise<void>,
    private readonly warn: (m: string) => void) {}

  private dirtyFile() {
    return path.join(this.stateDir, 'tree-dirty');
  }

  private activityDir(i: number) {
    return path.join(this.stateDir, 'activity', String(i));
  }

  async isDirty(): Promise<boolean> {
    return fs.access(this.dirtyFile()).then(() => true, () => false);
  }

  async markDirty(): Promise<void> {
    await fs.mkdir(this.stateDir, { recursive: true });
    if (!(await this.isDirty())) await writeDurably(this.dirtyFile(), `${new Date().toISOString()}\n`);
  }

  /**
   * The tree equals its generation: make that durable (syncfs of each backing filesystem), then say so and forget
   * the activity logs. A failed syncfs leaves the tree dirty (compared next time).
   */
  async clearDirty(backings: string[]): Promise<void> {
    for (const b of backings) {
      try {
        await this.syncFs(b);
      } catch (e) {
        this.warn(`${(e as Error).message}; the copy will be compared at the next reintegration`);
        return;
      }
    }
    await fs.rm(this.dirtyFile(), { force: true });
    await fs.rm(path.join(this.stateDir, 'activity'), { recursive: true, force: true });
  }

  /** The activity logs for a primary layout about to be mounted: epochs continue above what is on disk. */
  async openActivity(): Promise<ActivityLog[]> {
    this.logs.length = 0;
    for (let i = 0; i < this.dirs; i++) {
      const dir = this.activityDir(i);
      await fs.mkdir(dir, { recursive: true });
      this.logs.push(new ActivityLog(dir, newEpochCounter((await lastEpoch(dir)) + 1)));
    }
    return this.logs;
  }

  /** The SECOND's activity logs, one per replicated dir (by index), for the applier of a live stream. */
  appliedActivity(): AppliedActivityLog[] {
    return Array.from({ length: this.dirs }, (_, i) => new AppliedActivityLog(this.activityDir(i)));
  }

  /** The paths of dir `i` that may hold changes the peer never got (every epoch on disk). */
  logged(i: number): Promise<Set<string>> {
    return loggedPaths(this.activityDir(i));
  }
}

/**
 * Sync points of the activity logs while the live stream runs: every `ROTATE_MS`, each log moves to a new epoch,
 * then `barrier()` (a syncfs through the stream: every change sent before it is durable on the SECOND) runs; when it
 * resolves, epochs two behind are forgotten (a change noted just before a move may be sent just after its barrier,
 * so one more barrier is waited for). Timers through the Clock; `stop()` cancels.
 */
export class SyncPoints {
  private cancel: Cancel | null = null;
  private busy = false;

  constructor(private readonly clock: Clock, private readonly logs: ActivityLog[], private readonly barrier: () => Promise<void>,
    private readonly warn: (m: string) => void) {}

  start(): void {
    this.cancel ??= this.clock.every(ROTATE_MS, () => void this.point());
  }

  stop(): void {
    this.cancel?.();
    this.cancel = null;
  }

  private async point(): Promise<void> {
    if (this.busy || !this.cancel) return;
    this.busy = true;
    try {
      const epochs = this.logs.map((l) => l.advance());
      await this.barrier();
      for (const [i, l] of this.logs.entries()) await l.forget(epochs[i]! - 1);
    } catch (e) {
      this.warn(`activity log sync point: ${(e as Error).message}`);
    } finally {
      this.busy = false;
    }
  }
}
