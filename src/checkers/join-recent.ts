import type { Clock } from '../platform/clock/types.js';

/**
 * One observation shared by the checkers of every module: a call joins the run begun by an earlier call at most
 * `maxAgeMs` before it (in flight or done), otherwise it begins a new run; an answer may therefore be up to
 * `maxAgeMs` older than the call. A run that fails rejects the calls that joined it and is not joined by later ones.
 * On the shared poll grid (./polling.ts) the checkers of every module with the same interval ask in the same
 * event-loop turn, so 64 modules cost one run per interval instead of 64.
 */
export class JoinRecent<V> {
  private last: { startedAt: number; value: Promise<V> } | null = null;
  /** runs begun, for tests and the benchmark */
  runs = 0;

  constructor(
    private readonly run: () => Promise<V>,
    private readonly clock: Pick<Clock, 'mono'>,
    private readonly maxAgeMs: number,
  ) {}

  get(): Promise<V> {
    const now = this.clock.mono();
    if (!this.last || now - this.last.startedAt > this.maxAgeMs) {
      const entry = { startedAt: now, value: this.run() };
      this.last = entry;
      this.runs++;
      entry.value.catch(() => { if (this.last === entry) this.last = null; });
    }
    return this.last.value;
  }
}
