/**
 * Clock seam. `mono` is monotonic milliseconds (timeouts: immune to wall-clock jumps); `wall` is epoch
 * milliseconds (only for what must survive a reboot, such as the last sync time compared with syncdelta).
 */
export interface Clock {
  mono(): number;
  wall(): number;
}
