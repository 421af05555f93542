import { performance } from 'node:perf_hooks';
import type { Cancel, Clock } from './types.js';

const bootOrigin = performance.timeOrigin;

export const realClock: Clock = {
  mono: () => performance.timeOrigin + performance.now() - bootOrigin,
  wall: () => Date.now(),
  after(ms: number, fn: () => void): Cancel {
    // setTimeout may fire a millisecond early against performance.now(): wait out the rest, so "no sooner" holds
    const due = realClock.mono() + Math.max(0, ms);
    let t: NodeJS.Timeout;
    const arm = (wait: number) => {
      t = setTimeout(() => {
        const left = due - realClock.mono();
        if (left > 0) arm(Math.ceil(left));
        else fn();
      }, wait);
    };
    arm(Math.max(0, ms));
    return () => clearTimeout(t);
  },
  every(ms: number, fn: () => void): Cancel {
    const t = setInterval(fn, Math.max(1, ms));
    return () => clearInterval(t);
  },
};
