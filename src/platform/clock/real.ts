import { performance } from 'node:perf_hooks';
import type { Cancel, Clock } from './types.js';

const bootOrigin = performance.timeOrigin;

export const realClock: Clock = {
  mono: () => performance.timeOrigin + performance.now() - bootOrigin,
  wall: () => Date.now(),
  after(ms: number, fn: () => void): Cancel {
    const t = setTimeout(fn, Math.max(0, ms));
    return () => clearTimeout(t);
  },
  every(ms: number, fn: () => void): Cancel {
    const t = setInterval(fn, Math.max(1, ms));
    return () => clearInterval(t);
  },
};
