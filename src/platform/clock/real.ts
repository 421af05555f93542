import { performance } from 'node:perf_hooks';
import type { Clock } from './types.js';

export const realClock: Clock = {
  mono: () => performance.timeOrigin + performance.now() - bootOrigin,
  wall: () => Date.now(),
};
const bootOrigin = performance.timeOrigin;
