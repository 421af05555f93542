import type { Channel } from '../stream/channel.js';
import { decode, encodeParts } from '../stream/codec.js';
import { ReplicationError } from '../stream/errors.js';
import { keepalive, type Keepalive } from '../stream/keepalive.js';

/**
 * Request/response over a replication channel's `ctl` messages, used by reintegration before the live stream starts
 * (replicator.ts). Requests carry `{id, op, …}`, responses `{re: id, ok: true, …}` or `{re: id, ok: false, error, code}`.
 * A keepalive runs while the peer owns the channel. `handoff()` gives the channel to the live stream: frames that
 * arrive after the call are kept and delivered to whatever `onFrame` the new owner sets on the returned channel.
 */
export interface CtlReply {
  body: Record<string, unknown>;
  data?: Buffer;
}

export type CtlHandler = (body: Record<string, unknown>, data: Buffer | undefined) => Promise<CtlReply>;

export class CtlError extends Error {
  constructor(message: string, readonly code: string | undefined) {
    super(message);
  }
}

export class CtlPeer {
  private nextId = 1;
  private pending = new Map<number, { resolve: (r: CtlReply) => void; reject: (e: Error) => void; sync?: (r: CtlReply) => void }>();
  private handler: CtlHandler | null = null;
  private ka: Keepalive;
  private handedOff: Buffer[] | null = null;
  private failure: Error | null = null;

  constructor(readonly ch: Channel, liveness: { heartbeatMs?: number; deadMs?: number } = {}) {
    this.ka = keepalive(ch, liveness.heartbeatMs, liveness.deadMs);
    ch.onFrame((f) => this.onFrame(f));
    void ch.closed.then((e) => {
      this.failure = e ?? new ReplicationError('link-lost', `the replication channel to ${ch.peer} closed`);
      for (const p of this.pending.values()) p.reject(this.failure);
      this.pending.clear();
    });
  }

  serve(h: CtlHandler): void {
    this.handler = h;
  }

  /**
   * Sends a request and resolves with the peer's answer; rejects with CtlError when the peer answered an error, or
   * the channel's failure. `sync` runs inside the frame callback that delivered the answer, before any later frame
   * (to take the channel over without a gap).
   */
  request(body: Record<string, unknown>, data?: Buffer, sync?: (r: CtlReply) => void): Promise<CtlReply> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise<CtlReply>((resolve, reject) => {
      this.pending.set(id, { resolve, reject, ...(sync ? { sync } : {}) });
      try {
        this.send({ ...body, id }, data);
      } catch (e) {
        this.pending.delete(id);
        reject(e as Error);
      }
    });
  }

  /** Stops reading frames: later frames are kept for the channel returned (give it to the new owner). */
  handoff(): Channel {
    this.ka.stop();
    this.handedOff = [];
    const kept = this.handedOff;
    const ch = this.ch;
    return {
      peer: ch.peer, module: ch.module, remote: ch.remote, closed: ch.closed,
      send: (f) => ch.send(f),
      close: (r) => ch.close(r),
      stats: () => ch.stats(),
      onFrame(cb) {
        ch.onFrame(cb);
        for (const f of kept.splice(0)) cb(f);
      },
    };
  }

  close(reason?: Error): void {
    this.ka.stop();
    this.ch.close(reason);
  }

  private send(body: Record<string, unknown>, data?: Buffer) {
    this.ka.sent();
    this.ch.send(encodeParts({ type: 'ctl', body, ...(data && data.length > 0 ? { data } : {}) })).catch(() => {});
  }

  private onFrame(f: Buffer) {
    if (this.handedOff) {
      this.handedOff.push(f);
      return;
    }
    this.ka.received();
    const d = decode(f);
    if (!d.ok) throw new ReplicationError('protocol', `reintegration channel with ${this.ch.peer}: ${d.error}`);
    const m = d.msg;
    if (m.type === 'heartbeat') return;
    if (m.type !== 'ctl') throw new ReplicationError('protocol', `reintegration channel with ${this.ch.peer}: unexpected ${m.type} message`);
    const b = m.body;
    if (typeof b.re === 'number') {
      const p = this.pending.get(b.re);
      if (!p) return;
      this.pending.delete(b.re);
      if (b.ok === true) {
        const r: CtlReply = { body: b, ...(m.data ? { data: m.data } : {}) };
        try {
          p.sync?.(r);
        } catch (e) {
          p.reject(e as Error);
          throw e; // closes the channel
        }
        p.resolve(r);
      } else {
        p.reject(new CtlError(String(b.error ?? 'refused'), typeof b.code === 'string' ? b.code : undefined));
      }
      return;
    }
    if (typeof b.id !== 'number') throw new ReplicationError('protocol', `reintegration channel with ${this.ch.peer}: a ctl message without id`);
    const id = b.id;
    const h = this.handler;
    if (!h) {
      this.send({ re: id, ok: false, error: 'this node does not serve reintegration requests on this channel' });
      return;
    }
    const refuse = (e: Error & { code?: string }) =>
      this.send({ re: id, ok: false, error: e.message, ...(typeof e.code === 'string' ? { code: e.code } : {}) });
    h(b, m.data).then(
      (r) => {
        if (r.body.answered === true) return;
        try {
          this.send({ ...r.body, re: id, ok: true }, r.data);
        } catch (e) {
          // an answer the codec refuses (too large): the requester gets an error, the node does not crash
          refuse(new Error(`cannot send the answer to ${String(b.op)}: ${(e as Error).message}`));
        }
      },
      refuse,
    );
  }

  /**
   * Answers a request from inside its handler, at once (when the answer must precede what the handler sends next, e.g.
   * the live stream); the handler then returns `{ body: { answered: true } }`.
   */
  answerNow(id: number, body: Record<string, unknown>): void {
    this.send({ ...body, re: id, ok: true });
  }
}
