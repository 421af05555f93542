import type { Applier } from './apply.js';
import type { Change } from './change.js';
import type { Channel } from './channel.js';
import { decode, encode, type Message, type Mode } from './codec.js';
import { ERRNO, errnoOf } from './errno.js';
import { ReplicationError } from './errors.js';
import { DEFAULT_DEAD_MS, DEFAULT_HEARTBEAT_MS, keepalive } from './keepalive.js';

/**
 * The SECOND's end of the replication stream for one module: reads messages from an authenticated channel, hands
 * the changes to the applier in seq order and answers with acks and nacks.
 *
 * Protocol and contract (messages in ./codec.ts):
 * - One receiver per applier at a time: the daemon waits for the previous receiver's `done` before it attaches a new
 *   channel for the same module (the applier also serializes `apply` calls, but only this keeps sessions in order).
 * - The first message must be `hello`. It is refused (`nack 0` with EPROTO, then the channel closes) when its module
 *   is not the channel's, the applier is failed (not reset since), its replicated dirs differ from the applier's, its
 *   mode differs from `mode` (if given), or `acceptHello` returns a reason (the daemon checks the generation there).
 *   Accepted: `ack 0`.
 * - Then `change`/`sync` with seq 1, 2, 3…: any other seq, an undecodable message, or a message PRIM must not send
 *   closes the channel (ReplicationError 'protocol'). Nothing received after that is applied.
 * - Mode `none`: `ack n` means changes ≤ n are applied, and every `sync` (or sync-flagged change) ≤ n is durable
 *   here. Acks are cumulative; one goes out when the queue empties, after every durable change, and at least every
 *   ACK_EVERY changes.
 * - Mode `second`: `ack n` means changes ≤ n were received (acked as they arrive, at most once per event-loop turn);
 *   they are applied after. While more than `maxBacklogBytes` wait to be applied, acks wait too (memory bound).
 * - A change that cannot be applied gets `nack seq` (errno, code, message) — in mode `none` after an ack for
 *   everything applied before it. The applier is then failed: every later change gets a nack too, and no ack ever
 *   covers a change that failed.
 * - When the channel closes, changes already received are still applied in order; `done` resolves after that.
 */
export interface ReceiverOptions {
  channel: Channel;
  applier: Applier;
  /** the mode this node expects (from its userconfig); a hello with another mode is refused */
  mode?: Mode;
  /** returns why to refuse the PRIM's hello (e.g. an unexpected generation), or null to accept */
  acceptHello?: (h: Extract<Message, { type: 'hello' }>) => string | null;
  heartbeatMs?: number;
  deadMs?: number;
  maxBacklogBytes?: number;
  log?: (msg: string) => void;
  /**
   * A change could not be applied (the first one: the applier is failed after it). `acknowledged`: it had already
   * been acknowledged on receipt (mode `second`), so the PRIM counts it as replicated while this copy lacks it.
   * Called before anything else is acknowledged; must not throw.
   */
  onApplyFailed?: (error: Error, acknowledged: boolean) => void;
}

export interface ReceiverStats {
  received: number;
  applied: number;
  nacked: number;
  ackedUpTo: number;
  backlog: number;
  backlogBytes: number;
}

export interface Receiver {
  /** the hello once accepted */
  readonly hello: Extract<Message, { type: 'hello' }> | null;
  /** the channel's close reason (null: closed by this side), once every received change was applied or refused */
  readonly done: Promise<Error | null>;
  stats(): ReceiverStats;
  close(): void;
}

export const ACK_EVERY = 64;
export const DEFAULT_MAX_BACKLOG = 64 * 1024 * 1024;

export function receiveChanges(opts: ReceiverOptions): Receiver {
  const { channel: ch, applier } = opts;
  const log = opts.log ?? (() => {});
  const maxBacklog = opts.maxBacklogBytes ?? DEFAULT_MAX_BACKLOG;
  const ka = keepalive(ch, opts.heartbeatMs ?? DEFAULT_HEARTBEAT_MS, opts.deadMs ?? DEFAULT_DEAD_MS);
  const queue: Array<{ seq: number; change: Change; size: number }> = [];
  const st: ReceiverStats = { received: 0, applied: 0, nacked: 0, ackedUpTo: 0, backlog: 0, backlogBytes: 0 };
  let hello: Extract<Message, { type: 'hello' }> | null = null;
  let open = true;
  let closeReason: Error | null = null;
  let refusal: Error | null = null;
  let nextSeq = 1;
  let lastApplied = 0;
  let pumping = false;
  let ackScheduled = false;
  let resolveDone!: (e: Error | null) => void;
  const done = new Promise<Error | null>((r) => (resolveDone = r));

  const send = (m: Message) => {
    if (!open) return;
    ka.sent();
    ch.send(encode(m)).catch(() => {}); // a failed send closes the channel: reported through ch.closed
  };
  const ack = (upTo: number) => {
    if (upTo <= st.ackedUpTo) return;
    st.ackedUpTo = upTo;
    send({ type: 'ack', upTo });
  };
  const protocolError = (what: string) => {
    log(`replication of ${ch.module} from ${ch.peer}: ${what}; channel closed`);
    ch.close(new ReplicationError('protocol', `replication of ${ch.module} from ${ch.peer}: ${what}; channel closed`));
  };
  const refuse = (why: string) => {
    log(`replication of ${ch.module}: refused ${ch.peer}'s stream: ${why}`);
    refusal = new ReplicationError('protocol', `refused ${ch.peer}'s replication stream of ${ch.module}: ${why}`);
    send({ type: 'nack', seq: 0, errno: ERRNO.EPROTO!, code: 'EPROTO', message: why });
    ch.close();
  };
  /** mode second: ack everything received, once per event-loop turn, unless failed or over the backlog */
  const ackReceipt = () => {
    if (ackScheduled) return;
    ackScheduled = true;
    setImmediate(() => {
      ackScheduled = false;
      if (applier.failed || st.backlogBytes > maxBacklog) return;
      ack(nextSeq - 1);
    });
  };

  const onHello = (m: Message) => {
    if (m.type !== 'hello') return protocolError(`expected hello, got ${m.type}`);
    if (m.module !== ch.module) return refuse(`hello for module "${m.module}" on a channel for "${ch.module}"`);
    if (applier.failed) {
      return refuse(`this node's replica failed earlier (${applier.failed.message}); it must be reintegrated before it takes changes again`);
    }
    const unknown = m.dirs.filter((d) => !applier.hasDir(d));
    const missing = applier.dirNames().filter((d) => !m.dirs.includes(d));
    if (unknown.length > 0 || missing.length > 0) {
      return refuse(`replicated dirs differ between the nodes (${[...unknown.map((d) => `${d} not replicated here`),
        ...missing.map((d) => `${d} not replicated by ${ch.peer}`)].join('; ')}); use the same userconfig.xml on both nodes`);
    }
    if (opts.mode !== undefined && m.mode !== opts.mode) {
      return refuse(`${ch.peer} replicates with async="${m.mode}", this node is configured with async="${opts.mode}"; use the same userconfig.xml`);
    }
    let why: string | null;
    try {
      why = opts.acceptHello?.(m) ?? null;
    } catch (e) {
      why = `hello check failed: ${(e as Error).message}`;
    }
    if (why !== null) return refuse(why);
    hello = m;
    send({ type: 'ack', upTo: 0 });
  };

  const onMessage = (m: Message, size: number) => {
    if (m.type === 'heartbeat') return;
    if (m.type !== 'change' && m.type !== 'sync') return protocolError(`unexpected ${m.type} message`);
    if (m.seq !== nextSeq) return protocolError(`change seq ${m.seq}, expected ${nextSeq}`);
    nextSeq++;
    const change: Change = m.type === 'sync'
      ? { op: 'sync', dir: m.dir, path: m.path, datasync: m.datasync, ...(m.syncfs ? { syncfs: true } : {}) }
      : m.change;
    queue.push({ seq: m.seq, change, size });
    st.received++;
    st.backlog++;
    st.backlogBytes += size;
    if (hello!.mode === 'second') ackReceipt();
    void pump();
  };

  const pump = async () => {
    if (pumping) return;
    pumping = true;
    while (queue.length > 0) {
      const item = queue[0]!;
      try {
        await applier.apply(item.change, `change ${item.seq}`);
        lastApplied = item.seq;
        st.applied++;
        if (hello!.mode === 'none') {
          const durable = item.change.op === 'sync' || item.change.sync !== undefined;
          if (queue.length === 1 || durable || item.seq - st.ackedUpTo >= ACK_EVERY) ack(lastApplied);
        }
      } catch (e) {
        const { errno, code } = errnoOf(e);
        const message = (e as Error).message;
        if (st.nacked === 0) {
          log(`replication of ${ch.module}: ${message}; the replica is marked failed`);
          try {
            opts.onApplyFailed?.(e as Error, item.seq <= st.ackedUpTo);
          } catch {
            // a callback error must not stop the pump
          }
        }
        if (hello!.mode === 'none') ack(lastApplied);
        st.nacked++;
        send({ type: 'nack', seq: item.seq, errno, code, message });
      }
      queue.shift();
      st.backlog--;
      st.backlogBytes -= item.size;
      if (hello!.mode === 'second' && open) ackReceipt();
    }
    pumping = false;
    if (!open) resolveDone(refusal ?? closeReason);
  };

  ch.onFrame((f) => {
    ka.received();
    if (!open) return;
    const d = decode(f);
    if (!d.ok) return protocolError(`undecodable message (${d.error})`);
    if (hello === null) {
      if (refusal === null) onHello(d.msg);
      return;
    }
    onMessage(d.msg, f.length);
  });
  void ch.closed.then((reason) => {
    open = false;
    closeReason = reason;
    ka.stop();
    if (!pumping) resolveDone(refusal ?? closeReason);
  });

  return {
    get hello() {
      return hello;
    },
    done,
    stats: () => ({ ...st }),
    close: () => ch.close(),
  };
}
