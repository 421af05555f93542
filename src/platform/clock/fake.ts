import type { Cancel, Clock } from './types.js';

interface Timer {
  id: number;
  due: number;
  period: number | null;
  fn: () => void;
}

/**
 * A clock moved only by the test. Timers fire inside `advance`, in due order (ties in creation order), each with
 * `mono()` reading its due time; a timer created by a callback fires in the same `advance` if it falls due within it.
 */
export class FakeClock implements Clock {
  private timers: Timer[] = [];
  private seq = 0;
  constructor(private monoMs = 0, private wallMs = 1_800_000_000_000) {}
  mono() { return this.monoMs; }
  wall() { return this.wallMs; }

  after(ms: number, fn: () => void): Cancel {
    return this.add(ms, null, fn);
  }

  every(ms: number, fn: () => void): Cancel {
    return this.add(ms, Math.max(1, ms), fn);
  }

  /** timers not yet fired or cancelled */
  get pending(): number {
    return this.timers.length;
  }

  advance(ms: number) {
    const end = this.monoMs + ms;
    for (;;) {
      const next = this.timers.reduce<Timer | null>((a, t) => (!a || t.due < a.due || (t.due === a.due && t.id < a.id) ? t : a), null);
      if (!next || next.due > end) break;
      this.moveTo(next.due);
      if (next.period === null) this.timers = this.timers.filter((t) => t !== next);
      else next.due += next.period;
      next.fn();
    }
    this.moveTo(end);
  }

  /** a wall-clock jump (NTP step, admin): the monotonic clock does not move */
  jumpWall(ms: number) { this.wallMs += ms; }

  private moveTo(mono: number) {
    this.wallMs += mono - this.monoMs;
    this.monoMs = mono;
  }

  private add(ms: number, period: number | null, fn: () => void): Cancel {
    const t: Timer = { id: this.seq++, due: this.monoMs + Math.max(0, ms), period, fn };
    this.timers.push(t);
    return () => { this.timers = this.timers.filter((x) => x !== t); };
  }
}
