// An in-memory pair of replication channels (the `Channel` contract of src/replication/stream/channel.ts) for unit
// tests of what runs on top of a channel (CtlPeer, the reintegration server). Like the TCP channel:
// - frames arrive in order, each exactly once, on the event loop (never inside `send`);
// - frames sent in the same tick arrive in ONE synchronous delivery loop, as frames of one TCP chunk do: a callback
//   that replaces `onFrame` while handling a frame makes the very next frame go to the new callback;
// - frames that arrive before a callback is set are kept for it; a callback that throws closes the channel with
//   that error, and the other end then sees `link-lost`;
// - `close()` flushes what was sent before it, then the other end sees `link-lost`; `close(reason)` stops at once.
import { BugError } from '../../src/errors.js';
import type { Channel, ChannelStats } from '../../src/replication/stream/channel.js';
import { ReplicationError } from '../../src/replication/stream/errors.js';

export interface MemoryChannel extends Channel {
  /** every frame this end sent, in order */
  readonly sentFrames: Buffer[];
  /** the reason this end closed with (null: close() without reason), undefined while open */
  readonly reason: Error | null | undefined;
}

class End implements MemoryChannel {
  readonly closed: Promise<Error | null>;
  readonly remote: string;
  readonly sentFrames: Buffer[] = [];
  reason: Error | null | undefined = undefined;
  other!: End;
  private resolveClosed!: (e: Error | null) => void;
  private handler: ((f: Buffer) => void) | null = null;
  private readonly early: Buffer[] = [];
  private inbox: Buffer[] = [];
  private scheduled = false;
  private readonly counters: ChannelStats = { framesSent: 0, framesReceived: 0, bytesSent: 0, bytesReceived: 0 };

  constructor(readonly peer: string, readonly module: string, remote: string) {
    this.remote = remote;
    this.closed = new Promise((r) => (this.resolveClosed = r));
  }

  send(parts: Buffer | readonly Buffer[]): Promise<void> {
    if (this.reason !== undefined) return Promise.reject(this.reason ?? new ReplicationError('closed', `channel to ${this.peer} was closed`));
    if (!Buffer.isBuffer(parts) && !(Array.isArray(parts) && parts.every((p) => Buffer.isBuffer(p)))) {
      return Promise.reject(new BugError('memory channel: a frame must be a Buffer or Buffers'));
    }
    const frame = Buffer.isBuffer(parts) ? parts : Buffer.concat(parts);
    this.sentFrames.push(frame);
    this.counters.framesSent++;
    this.counters.bytesSent += frame.length;
    this.other.arrive(Buffer.from(frame));
    return Promise.resolve();
  }

  onFrame(cb: (frame: Buffer) => void): void {
    this.handler = cb;
    while (this.early.length > 0 && this.reason === undefined) this.deliver(this.early.shift()!);
  }

  close(reason?: Error): void {
    if (this.reason !== undefined) return;
    if (reason) {
      this.fail(reason);
      return;
    }
    this.reason = null;
    this.resolveClosed(null);
    this.other.hangUp(); // after what was sent before close() (queued behind it)
  }

  stats(): ChannelStats {
    return { ...this.counters };
  }

  private arrive(f: Buffer) {
    if (this.reason !== undefined) return;
    this.inbox.push(f);
    this.schedule();
  }

  private hangUp() {
    this.inbox.push(HANG_UP);
    this.schedule();
  }

  private schedule() {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      const batch = this.inbox;
      this.inbox = [];
      for (const f of batch) {
        if (this.reason !== undefined) return;
        if (f === HANG_UP) {
          this.fail(new ReplicationError('link-lost', `${this.peer} closed the replication channel of ${this.module}`));
          return;
        }
        this.counters.framesReceived++;
        this.counters.bytesReceived += f.length;
        if (this.handler) this.deliver(f);
        else this.early.push(f);
      }
    });
  }

  private deliver(f: Buffer) {
    try {
      this.handler!(f);
    } catch (e) {
      this.fail(e instanceof Error ? e : new BugError(String(e)));
    }
  }

  private fail(e: Error) {
    if (this.reason !== undefined) return;
    this.reason = e;
    this.resolveClosed(e);
    this.early.length = 0;
    this.other.hangUp();
  }
}

const HANG_UP = Buffer.from('hang up');

/** Two connected ends: `a` talks to `b` (a.peer is b's node name and vice versa), both for `module`. */
export function channelPair(o: { a?: string; b?: string; module?: string } = {}): { a: MemoryChannel; b: MemoryChannel } {
  const nameA = o.a ?? 'n1';
  const nameB = o.b ?? 'n2';
  const module = o.module ?? 'db';
  const a = new End(nameB, module, '127.0.0.3:4800');
  const b = new End(nameA, module, '127.0.0.2:40000');
  a.other = b;
  b.other = a;
  return { a, b };
}
