/**
 * Clock seam. `mono` is monotonic milliseconds (timeouts: immune to wall-clock jumps); `wall` is epoch
 * milliseconds (only for what must survive a reboot, such as the last sync time compared with syncdelta).
 *
 * Timers: `after` calls `fn` once, no sooner than `ms` monotonic milliseconds from now; `every` calls it every `ms`
 * until cancelled (a call that comes late does not make the next ones come sooner). Both return a cancel function:
 * after it returns, `fn` is not called again. Callbacks run on the event loop (never inside the caller) and must not
 * throw.
 */
export interface Clock {
  mono(): number;
  wall(): number;
  after(ms: number, fn: () => void): Cancel;
  every(ms: number, fn: () => void): Cancel;
}

export type Cancel = () => void;
