import type { Clock } from './types.js';

/** A clock moved only by the test. */
export class FakeClock implements Clock {
  constructor(private monoMs = 0, private wallMs = 1_800_000_000_000) {}
  mono() { return this.monoMs; }
  wall() { return this.wallMs; }
  advance(ms: number) { this.monoMs += ms; this.wallMs += ms; }
  /** a wall-clock jump (NTP step, admin): the monotonic clock does not move */
  jumpWall(ms: number) { this.wallMs += ms; }
}
