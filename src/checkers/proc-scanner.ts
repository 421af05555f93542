import type { Clock } from '../platform/clock/types.js';
import type { ProcId, ProcInfo, ProcTable, ProcWatch } from '../platform/procs/types.js';

/** A full scan of the process table: when it began (Clock.mono) and the candidates it found. */
export interface Scan {
  startedAt: number;
  procs: readonly ProcInfo[];
}

/** One proc checker's use of the shared scanner. */
export interface ScanSubscription {
  /**
   * A scan that began at most `maxAgeMs` ago and read the candidates of this subscription's comm filter: the last
   * one, the one in flight, or a new one. `maxAgeMs` 0 asks for a scan begun now (or one in flight begun in this
   * same millisecond). Rejects when the process table cannot be read.
   */
  scan(maxAgeMs: number): Promise<Scan>;
  /** the table's cheap per-process check */
  watch(p: ProcId): ProcWatch;
  /** its filter leaves the scans that begin after this; idempotent */
  close(): void;
}

interface Sub {
  wants: (comm: string) => boolean;
}

interface Entry {
  startedAt: number;
  included: ReadonlySet<Sub>;
  result: Promise<Scan>;
}

/**
 * Shares full scans of the process table between the proc checkers of every module (one per daemon). A scan reads
 * the command lines of the processes whose comm any current subscriber wants, and serves every subscriber whose
 * filter it included: checkers that ask within each other's `maxAgeMs` share one scan instead of each walking
 * /proc. The cheap per-process checks are not shared (one pread each).
 */
export class ProcScanner {
  private readonly subs = new Set<Sub>();
  private last: Entry | null = null;
  private inFlight: Entry | null = null;
  /** full scans begun, for tests and the benchmark */
  scans = 0;

  constructor(private readonly table: ProcTable, private readonly clock: Clock) {}

  subscribe(wants: (comm: string) => boolean): ScanSubscription {
    const sub: Sub = { wants };
    this.subs.add(sub);
    return {
      scan: (maxAgeMs) => this.scanFor(sub, maxAgeMs),
      watch: (p) => this.table.watch(p),
      close: () => { this.subs.delete(sub); },
    };
  }

  private scanFor(sub: Sub, maxAgeMs: number): Promise<Scan> {
    const now = this.clock.mono();
    for (const e of [this.inFlight, this.last]) {
      if (e && e.included.has(sub) && now - e.startedAt <= maxAgeMs) return e.result;
    }
    const included = new Set(this.subs).add(sub);
    const filters = [...included].map((s) => s.wants);
    this.scans++;
    const entry: Entry = {
      startedAt: now,
      included,
      result: this.table.list((comm) => filters.some((f) => f(comm))).then((procs) => ({ startedAt: now, procs })),
    };
    this.inFlight = entry;
    entry.result.then(
      () => {
        if (!this.last || this.last.startedAt <= entry.startedAt) this.last = entry;
        if (this.inFlight === entry) this.inFlight = null;
      },
      () => {
        if (this.inFlight === entry) this.inFlight = null;
      },
    );
    return entry.result;
  }
}
