import { BugError } from '../../errors.js';
import { realClock } from '../../platform/clock/real.js';
import type { Cancel, Clock } from '../../platform/clock/types.js';
import { type Change, describeChange } from './change.js';
import type { Channel } from './channel.js';
import { decode, encodeParts, MAX_WRITE, type Message, type Mode } from './codec.js';
import { ReplicationError } from './errors.js';
import { DEFAULT_DEAD_MS, DEFAULT_HEARTBEAT_MS, keepalive } from './keepalive.js';
import { checkRelPath, checkSymlinkTarget } from './paths.js';

/**
 * PRIM's end of the replication stream of one module, over an authenticated channel to the SECOND.
 *
 * Contract of `replicate(change)`:
 * - Resolves when the SECOND acknowledged the change per the mode: `none` — applied there, and durable there when it
 *   is a `sync` or carries a `sync` flag; `second` — received there.
 * - Rejects (ReplicationError) on a nack (reason 'nack', `code` = the SECOND's errno name), link loss ('link-lost',
 *   'tampered', 'protocol'), no acknowledgement within `sendTimeoutMs` of the call ('timeout'), or after `close()`
 *   ('closed'). It rejects with BugError, without sending anything, for a change that can never be valid (unknown
 *   dir, malformed path).
 * - The caller (the daemon) must turn a rejection into the engine's `replication-failed` event, and have it handled,
 *   BEFORE acknowledging the write to the application.
 * - Failure is final: the first ReplicationError rejects every change not yet acknowledged, closes the channel,
 *   calls the `onFailure` callbacks once, and makes every later `replicate` reject at once. A new sender on a new
 *   channel starts over (after reintegration). `close()` rejects what is pending with reason 'closed' but does not
 *   call `onFailure` (stopping on purpose is not a replication failure).
 * - Ordering: changes are sent in the order of the `replicate` calls (the caller need not await one before the next),
 *   with seq 1, 2, 3…; acks are cumulative, so promises resolve in call order. At most `maxInFlightBytes` are sent
 *   and not yet acknowledged; later changes wait in order (their timeout runs from the call).
 * - Writes larger than MAX_WRITE go as several changes; the `sync` flag goes on the last one.
 */
export interface SenderOptions {
  channel: Channel;
  module: string;
  /** the generation id of PRIM's data (`<n>@<node>`); the SECOND may refuse an unexpected one */
  generation: string;
  mode: Mode;
  /** the module's replicated dirs, as in userconfig.xml */
  dirs: string[];
  /** `<rfs sendtimeout>`; default 30 s */
  sendTimeoutMs?: number;
  /** times `sendTimeoutMs` and the ack round trip (not the keepalive); default the real clock. Tests pass a FakeClock. */
  clock?: Clock;
  heartbeatMs?: number;
  deadMs?: number;
  maxInFlightBytes?: number;
}

export interface SenderStats {
  /** plaintext bytes of change messages sent */
  bytesSent: number;
  /** changes acknowledged */
  changes: number;
  /** sent, not acknowledged */
  inFlight: number;
  /** waiting for room under maxInFlightBytes */
  queued: number;
  /** ms from sending the change to the ack that covered it, for the latest ack; null before the first */
  lastRttMs: number | null;
}

export interface ReplicationSender {
  replicate(change: Change): Promise<void>;
  /** resolves when the SECOND accepted the hello; rejects like `replicate` */
  readonly ready: Promise<void>;
  readonly failure: Error | null;
  onFailure(cb: (e: Error) => void): void;
  stats(): SenderStats;
  close(): void;
}

export const DEFAULT_SEND_TIMEOUT_MS = 30_000;
export const DEFAULT_MAX_IN_FLIGHT = 64 * 1024 * 1024;

interface Entry {
  seq: number;
  /** the frame's parts (encodeParts) and their total size */
  frame: readonly Buffer[];
  bytes: number;
  desc: string;
  calledAt: number;
  sentAt: number;
  resolve: () => void;
  reject: (e: Error) => void;
}

const ROOT_OPS = new Set<Change['op']>(['chmod', 'chown', 'utimens', 'setxattr', 'removexattr', 'sync']);

export function createSender(opts: SenderOptions): ReplicationSender {
  const { channel: ch } = opts;
  const timeoutMs = opts.sendTimeoutMs ?? DEFAULT_SEND_TIMEOUT_MS;
  const clock = opts.clock ?? realClock;
  const maxInFlight = opts.maxInFlightBytes ?? DEFAULT_MAX_IN_FLIGHT;
  const dirs = new Set(opts.dirs);
  const ka = keepalive(ch, opts.heartbeatMs ?? DEFAULT_HEARTBEAT_MS, opts.deadMs ?? DEFAULT_DEAD_MS);
  const st: SenderStats = { bytesSent: 0, changes: 0, inFlight: 0, queued: 0, lastRttMs: null };
  /** every entry not yet acknowledged, in seq order; the first `sent` of them are on the wire */
  const entries: Entry[] = [];
  let sent = 0;
  let inFlightBytes = 0;
  let lastSeq = 0;
  let ackedUpTo = -1;
  let failure: Error | null = null;
  let timer: Cancel | null = null;
  const failureCbs: Array<(e: Error) => void> = [];

  const fail = (e: Error, notify = true) => {
    if (failure) return;
    failure = e;
    if (timer) timer();
    ka.stop();
    for (const x of entries.splice(0)) x.reject(e);
    sent = 0;
    inFlightBytes = 0;
    ch.close();
    if (notify) for (const cb of failureCbs) cb(e);
  };
  const protocolError = (what: string) =>
    fail(new ReplicationError('protocol', `replication of ${opts.module} to ${ch.peer}: ${what}; channel closed`));

  const transmit = () => {
    while (sent < entries.length && !failure) {
      const e = entries[sent]!;
      if (inFlightBytes > 0 && inFlightBytes + e.bytes > maxInFlight) break;
      e.sentAt = clock.mono();
      inFlightBytes += e.bytes;
      sent++;
      if (e.seq > 0) st.bytesSent += e.bytes;
      ka.sent();
      ch.send(e.frame).catch((err: Error) => fail(err));
    }
  };

  const arm = () => {
    if (timer) timer();
    timer = null;
    const head = entries[0];
    if (!head || failure) return;
    timer = clock.after(Math.max(0, head.calledAt + timeoutMs - clock.mono()), () => {
      if (entries[0] !== head || failure) return;
      fail(new ReplicationError('timeout', `${ch.peer} did not acknowledge ${head.desc} of ${opts.module} within ${timeoutMs} ms`));
    });
  };

  const push = (frame: readonly Buffer[], seq: number, desc: string): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      entries.push({ seq, frame, bytes: frame.reduce((n, p) => n + p.length, 0), desc, calledAt: clock.mono(), sentAt: 0, resolve, reject });
    });

  const onAck = (upTo: number) => {
    const highestSent = sent > 0 ? entries[sent - 1]!.seq : ackedUpTo;
    if (upTo > highestSent) return protocolError(`ack for ${upTo}, but only up to ${highestSent} was sent`);
    if (upTo < ackedUpTo) return protocolError(`ack for ${upTo} after an ack for ${ackedUpTo}`);
    const now = clock.mono();
    while (entries.length > 0 && entries[0]!.seq <= upTo) {
      const e = entries.shift()!;
      sent--;
      inFlightBytes -= e.bytes;
      st.lastRttMs = now - e.sentAt;
      if (e.seq > 0) st.changes++;
      e.resolve();
    }
    ackedUpTo = upTo;
    transmit();
    arm();
  };

  const onNack = (m: Extract<Message, { type: 'nack' }>) => {
    if (m.seq === 0) {
      return fail(new ReplicationError('nack', `${ch.peer} refused to replicate ${opts.module}: ${m.message}`, m.code));
    }
    fail(new ReplicationError('nack', `${ch.peer} could not apply ${m.message} [${m.code}]`, m.code));
  };

  ch.onFrame((f) => {
    ka.received();
    if (failure) return;
    const d = decode(f);
    if (!d.ok) return protocolError(`undecodable message (${d.error})`);
    switch (d.msg.type) {
      case 'ack':
        return onAck(d.msg.upTo);
      case 'nack':
        return onNack(d.msg);
      case 'heartbeat':
        return;
      default:
        return protocolError(`unexpected ${d.msg.type} message from the SECOND`);
    }
  });
  void ch.closed.then((reason) => fail(reason ?? new ReplicationError('closed', `replication channel of ${opts.module} to ${ch.peer} closed`)));

  const ready = push(encodeParts({ type: 'hello', module: opts.module, generation: opts.generation, mode: opts.mode, dirs: opts.dirs }), 0, 'the hello');
  ready.catch(() => {});
  transmit();
  arm();

  const toMessages = (c: Change): Message[] => {
    if (!dirs.has(c.dir)) throw new BugError(`replicate: ${JSON.stringify(c.dir)} is not a replicated dir of ${opts.module}`);
    for (const p of c.op === 'rename' || c.op === 'link' ? [c.from, c.to] : [c.path]) {
      const r = checkRelPath(p, { allowRoot: ROOT_OPS.has(c.op) });
      if (!r.ok) throw new BugError(`replicate: ${c.op}: ${r.reason}`);
    }
    const bad = c.op === 'symlink' ? checkSymlinkTarget(c.target) : null;
    if (bad) throw new BugError(`replicate: symlink: ${bad}`);
    if (c.op === 'sync') return [{ type: 'sync', seq: 0, dir: c.dir, path: c.path, datasync: c.datasync, ...(c.syncfs ? { syncfs: true } : {}) }];
    if (c.op !== 'write' || c.data.length <= MAX_WRITE) return [{ type: 'change', seq: 0, change: c }];
    const out: Message[] = [];
    for (let o = 0; o < c.data.length; o += MAX_WRITE) {
      const last = o + MAX_WRITE >= c.data.length;
      const { sync: _drop, ...rest } = c;
      const part = { ...rest, offset: c.offset + o, data: c.data.subarray(o, o + MAX_WRITE) };
      out.push({ type: 'change', seq: 0, change: last && c.sync ? { ...part, sync: c.sync } : part });
    }
    return out;
  };

  return {
    ready,
    get failure() {
      return failure;
    },
    replicate(change) {
      if (failure) return Promise.reject(failure);
      let frames: Buffer[][];
      try {
        frames = toMessages(change).map((m, i) => encodeParts(m.type === 'sync' || m.type === 'change' ? { ...m, seq: lastSeq + 1 + i } : m));
      } catch (e) {
        return Promise.reject(e);
      }
      const desc = `change ${lastSeq + frames.length} (${describeChange(change)})`;
      let last!: Promise<void>;
      for (const f of frames) {
        last = push(f, ++lastSeq, desc);
        last.catch(() => {});
      }
      transmit();
      if (entries.length === frames.length) arm();
      return last;
    },
    onFailure(cb) {
      failureCbs.push(cb);
    },
    stats() {
      return { ...st, inFlight: entries.slice(0, sent).filter((e) => e.seq > 0).length, queued: entries.length - sent };
    },
    close() {
      fail(new ReplicationError('closed', `replication sender of ${opts.module} closed`), false);
    },
  };
}
