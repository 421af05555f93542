import type { Channel } from './channel.js';
import { encode } from './codec.js';
import { ReplicationError } from './errors.js';

export const DEFAULT_HEARTBEAT_MS = 1000;
export const DEFAULT_DEAD_MS = 10_000;

export interface Keepalive {
  /** call after every frame sent */
  sent(): void;
  /** call after every frame received */
  received(): void;
  stop(): void;
}

/**
 * Liveness of one channel, used the same way by both ends: a `heartbeat` goes out when nothing was sent for
 * `heartbeatMs`; the channel is closed with ReplicationError('timeout') when nothing arrived for `deadMs`.
 * Detection of a silent peer: deadMs ≤ t ≤ deadMs + heartbeatMs / 2. Stops by itself when the channel closes.
 */
export function keepalive(ch: Channel, heartbeatMs = DEFAULT_HEARTBEAT_MS, deadMs = DEFAULT_DEAD_MS): Keepalive {
  const hb = encode({ type: 'heartbeat' });
  let lastSent = performance.now();
  let lastReceived = lastSent;
  const timer = setInterval(() => {
    const now = performance.now();
    if (now - lastReceived >= deadMs) {
      ch.close(new ReplicationError('timeout', `no frame from ${ch.peer} on the replication channel of ${ch.module} for ${deadMs} ms; channel closed`));
      return;
    }
    if (now - lastSent >= heartbeatMs) {
      lastSent = now;
      ch.send(hb).catch(() => {}); // a failed send closes the channel, which is reported through `closed`
    }
  }, Math.max(1, Math.floor(heartbeatMs / 2)));
  timer.unref();
  const stop = () => clearInterval(timer);
  void ch.closed.then(stop);
  return {
    sent() {
      lastSent = performance.now();
    },
    received() {
      lastReceived = performance.now();
    },
    stop,
  };
}
