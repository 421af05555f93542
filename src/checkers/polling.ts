import type { Cancel, Clock } from '../platform/clock/types.js';
import type { Checker, Observation, Report } from './types.js';

export interface PollingOptions {
  clock: Clock;
  /** time between the starts of two checks */
  intervalMs: number;
  report: Report;
  /**
   * A check still running this long after it began makes the checker report `unknown` (its result is still
   * reported when it comes). Default: `expectedMs` + max(3 × intervalMs, 5 s).
   */
  stallMs?: number;
  /** how long a check may legitimately take (a probe's own timeout), for the default stallMs. Default 0. */
  expectedMs?: number;
}

/**
 * The Checker contract for checkers that run one asynchronous `check()` at start and then every `intervalMs`, at
 * the multiples of `intervalMs` on the monotonic clock. On that shared grid every checker with the same interval
 * (the proc checkers of all modules, whenever each was started) ticks in the same event-loop turn: on an idle node
 * the cost of a poll is mostly the process waking up (≈ 0.2–0.3 ms of CPU per wake-up measured on a 2-vCPU VM), so
 * fewer, shared wake-ups matter more than the checks themselves. A slow check does not shift the next ones.
 *
 * - Checks never overlap: a tick that finds the previous check still running is skipped (after `stallMs` it reports
 *   `unknown`, `no result within <stallMs> ms`).
 * - A check that throws or rejects is observed as `unknown` with the error's message.
 * - Each start() begins a new run; a check of an older run may still finish after a restart, but its result is
 *   dropped, and it does not hold back the new run's first check.
 * - Subclasses may override `onStart` (called by start() before the init report) and `onStop` (called by stop()
 *   after the checker is silenced; it may return a promise that stop() waits for).
 */
export abstract class PollingChecker implements Checker {
  protected readonly clock: Clock;
  private readonly intervalMs: number;
  private readonly reportFn: Report;
  private readonly stallMs: number;
  private run = 0;
  private running = false;
  private timers: Cancel[] = [];
  private busy: { run: number; since: number } | null = null;
  private readonly pending = new Set<Promise<void>>();
  private last: string | null = null;

  constructor(readonly resource: string, opts: PollingOptions) {
    this.clock = opts.clock;
    this.intervalMs = Math.max(1, opts.intervalMs);
    this.reportFn = opts.report;
    this.stallMs = opts.stallMs ?? (opts.expectedMs ?? 0) + Math.max(3 * this.intervalMs, 5000);
  }

  /** one observation; may throw */
  protected abstract check(): Promise<Observation>;

  protected onStart(): void {}

  protected onStop(): Promise<void> | void {}

  /** whether `run` is the current run of a started checker: results of any other run are dropped */
  protected isCurrent(run: number): boolean {
    return this.running && run === this.run;
  }

  /** the current run, for subclasses that keep per-run state */
  protected get currentRun(): number {
    return this.run;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    const run = ++this.run;
    this.last = null;
    this.onStart();
    // timers before the report: a report that calls stop() must find them to cancel (they fire only later)
    this.timers = [this.clock.after(0, () => this.tick(run))];
    this.scheduleNext(run);
    this.emit(run, { state: 'init', detail: 'not checked yet' });
  }

  async stop(): Promise<void> {
    if (this.running) {
      this.running = false;
      this.run++;
      this.busy = null;
      for (const cancel of this.timers) cancel();
      this.timers = [];
      let stopping: Promise<void> | void = undefined;
      try {
        stopping = this.onStop();
      } catch {
        // onStop must not throw; stopping goes on
      }
      await Promise.all([...this.pending, Promise.resolve(stopping).catch(() => {})]);
    } else {
      await Promise.all([...this.pending]);
    }
  }

  /**
   * The next grid point at least half an interval away (a timer that fires a little early or late by the
   * monotonic clock must not tick twice), then again from there.
   */
  private scheduleNext(run: number): void {
    const now = this.clock.mono();
    const next = (Math.floor((now + this.intervalMs / 2) / this.intervalMs) + 1) * this.intervalMs;
    this.timers[1] = this.clock.after(next - now, () => {
      if (!this.isCurrent(run)) return;
      this.scheduleNext(run);
      this.tick(run);
    });
  }

  private tick(run: number): void {
    if (!this.isCurrent(run)) return;
    if (this.busy?.run === run) {
      if (this.clock.mono() - this.busy.since >= this.stallMs) this.emit(run, { state: 'unknown', detail: `no result within ${this.stallMs} ms` });
      return;
    }
    const busy = { run, since: this.clock.mono() };
    this.busy = busy;
    const p: Promise<void> = this.safeCheck()
      .then((o) => this.emit(run, o))
      .finally(() => {
        if (this.busy === busy) this.busy = null;
        this.pending.delete(p);
      });
    this.pending.add(p);
  }

  private async safeCheck(): Promise<Observation> {
    try {
      return await this.check();
    } catch (e) {
      return { state: 'unknown', detail: e instanceof Error ? e.message : String(e) };
    }
  }

  private emit(run: number, o: { state: Observation['state'] | 'init'; detail: string }): void {
    if (!this.isCurrent(run)) return;
    const key = `${o.state}\n${o.detail}`;
    if (key === this.last) return;
    this.last = key;
    try {
      this.reportFn(o.state, o.detail);
    } catch {
      // the Report contract forbids throwing; a checker must not die of it
    }
  }
}
