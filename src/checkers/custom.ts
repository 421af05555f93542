import type { Cancel, Clock } from '../platform/clock/types.js';
import { DEFAULT_STOP_GRACE_MS, type Launched, type Launcher } from '../platform/launcher/types.js';
import type { Checker, Report } from './types.js';

/** Restart delays of a custom checker's program: 1 s, doubling up to 30 s; back to 1 s after a run of 60 s. */
export interface Backoff {
  firstMs: number;
  maxMs: number;
  /** a run at least this long resets the delay to firstMs */
  resetAfterMs: number;
}

export const DEFAULT_BACKOFF: Backoff = { firstMs: 1000, maxMs: 30_000, resetAfterMs: 60_000 };

export interface CustomCheckerOptions {
  ident: string;
  exec: string;
  args: string[];
  /** the program's whole environment (the daemon's choice: PATH, TANDEM_HOME, TANDEM_MODULE, user vars, …) */
  env: Record<string, string>;
  /** its stdout and stderr are appended here */
  logFile: string;
  launcher: Launcher;
  clock: Clock;
  report: Report;
  /** one line per exit, failed start and restart (the module log) */
  log: (msg: string) => void;
  backoff?: Backoff;
  /** SIGTERM → SIGKILL grace when stopping it. Default 5 s */
  stopGraceMs?: number;
}

/**
 * `custom.<ident>` (SafeKit `<custom ident exec arg>`): keeps the user's program running; the program reports the
 * resource itself, in a loop, with `tandem set -r custom.<ident> -v up|down`.
 *
 * - start(): reports `init`, then launches the program (on the event loop, as the other checkers' first checks).
 * - When it exits, the exit is logged, what is left of its process group is killed, and it is launched again after
 *   the backoff delay (1 s, 2 s, 4 s … 30 s; a run of 60 s or more resets it to 1 s). The resource keeps the state
 *   the program last set: the checker itself reports nothing for an exit.
 * - When it cannot be started (Launcher rejects), the checker reports `unknown` with the reason and retries on the
 *   same backoff; once a launch succeeds again it reports `init` (waiting for the program's own report).
 * - stop(): silences at once, cancels a pending restart and stops the process group (Launcher.stop: SIGTERM, then
 *   SIGKILL after the grace); its promise resolves once the group is gone.
 */
export class CustomChecker implements Checker {
  readonly resource: string;
  private readonly opts: CustomCheckerOptions;
  private readonly backoff: Backoff;
  private run = 0;
  private running = false;
  private proc: Launched | null = null;
  private timer: Cancel | null = null;
  private delayMs: number;
  private last: string | null = null;
  private readonly pending = new Set<Promise<unknown>>();

  constructor(opts: CustomCheckerOptions) {
    this.resource = `custom.${opts.ident}`;
    this.opts = opts;
    this.backoff = opts.backoff ?? DEFAULT_BACKOFF;
    this.delayMs = this.backoff.firstMs;
  }

  /** the program's pid while it runs (for status and tests) */
  get pid(): number | null {
    return this.proc?.pid ?? null;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    const run = ++this.run;
    this.last = null;
    this.delayMs = this.backoff.firstMs;
    this.timer = this.opts.clock.after(0, () => this.launch(run));
    this.emit(run, 'init', `waiting for ${this.opts.exec} to report`);
  }

  async stop(): Promise<void> {
    if (this.running) {
      this.running = false;
      this.run++;
      this.timer?.();
      this.timer = null;
      const p = this.proc;
      this.proc = null;
      if (p) this.track(p.stop(this.grace));
    }
    await Promise.all([...this.pending]);
  }

  private get grace(): number {
    return this.opts.stopGraceMs ?? DEFAULT_STOP_GRACE_MS;
  }

  private current(run: number): boolean {
    return this.running && run === this.run;
  }

  private launch(run: number): void {
    this.timer = null;
    if (!this.current(run)) return;
    const { exec, args, env, logFile, launcher } = this.opts;
    this.track(
      launcher.launch({ exec, args, env, logFile, title: this.resource }).then(
        (proc) => {
          // stopped while it was being launched: this launch, which stop() awaits, ends only once the group is gone
          if (!this.current(run)) return proc.stop(this.grace);
          this.proc = proc;
          const startedAt = this.opts.clock.mono();
          if (this.last?.startsWith('unknown')) this.emit(run, 'init', `${exec} started again; waiting for it to report`);
          void proc.exited.then((e) => this.exited(run, proc, startedAt, e.code ?? e.signal ?? 'unknown'));
        },
        (err: unknown) => {
          if (!this.current(run)) return;
          const why = err instanceof Error ? err.message : String(err);
          this.emit(run, 'unknown', why);
          this.opts.log(`${this.resource}: ${why}; trying again in ${this.delayMs} ms`);
          this.scheduleLaunch(run);
        },
      ),
    );
  }

  private exited(run: number, proc: Launched, startedAt: number, how: number | string): void {
    if (!this.current(run) || this.proc !== proc) return;
    this.proc = null;
    const ranMs = this.opts.clock.mono() - startedAt;
    if (ranMs >= this.backoff.resetAfterMs) this.delayMs = this.backoff.firstMs;
    this.opts.log(`${this.resource}: ${this.opts.exec} (pid ${proc.pid}) exited ${how} after ${Math.round(ranMs)} ms; starting it again in ${this.delayMs} ms`);
    this.track(proc.stop(this.grace)); // what it left in its process group
    this.scheduleLaunch(run);
  }

  private scheduleLaunch(run: number): void {
    const delay = this.delayMs;
    this.delayMs = Math.min(delay * 2, this.backoff.maxMs);
    this.timer = this.opts.clock.after(delay, () => this.launch(run));
  }

  private track(p: Promise<unknown>): void {
    const t: Promise<unknown> = p.catch(() => {}).finally(() => this.pending.delete(t));
    this.pending.add(t);
  }

  private emit(run: number, state: 'init' | 'unknown', detail: string): void {
    if (!this.current(run)) return;
    const key = `${state}\n${detail}`;
    if (key === this.last) return;
    this.last = key;
    try {
      this.opts.report(state, detail);
    } catch {
      // the Report contract forbids throwing; the checker goes on
    }
  }
}
