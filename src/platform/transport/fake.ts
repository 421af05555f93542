import { decode, encode, ReplayGuard } from '../../daemon/heartbeat-codec.js';
import { BugError } from '../../errors.js';
import type { HeartbeatMessage, HeartbeatTransport, TransportStats } from './types.js';

/**
 * An in-memory network of FakeTransports for unit and simulation tests (the fake beside ./udp.ts).
 *
 * Same contract as the real transport (./types.ts): datagrams are encoded and decoded with the real codec, so bodies
 * must be JSON (received bodies are copies, never the sender's objects), the 8 KiB limit applies, and the receiver's
 * ReplayGuard drops duplicates (counted as `replay`). `send` never delivers synchronously.
 *
 * Faults, all decided when a datagram is delivered (so datagrams in flight when a link is cut are lost):
 * - `cut(lan)`: the whole LAN is down; `cut(lan, node, dir)`: that node's link on that LAN is down, in both
 *   directions or only 'in' (it hears nothing) or 'out' (nobody hears it: an asymmetric failure).
 * - `heal(...)` removes cuts; `setLoss` / `setDuplicate` set per-LAN (or all-LAN) probabilities, drawn from `random`.
 * Datagrams lost by the network are counted nowhere on the receiver, as with UDP; `networkStats()` counts them.
 */
export interface FakeNetworkOptions {
  /** 'microtask' (default): queued datagrams are delivered on a microtask after `send`; 'manual': only by `flush()`. */
  delivery?: 'microtask' | 'manual';
  /** [0,1) source for loss and duplication; pass a seeded PRNG for reproducible runs. Default Math.random. */
  random?: () => number;
}

export type CutDirection = 'both' | 'in' | 'out';

interface InFlight {
  lan: string;
  from: string;
  to: string;
  datagram: Buffer;
}

const FAKE_KEY = Buffer.alloc(32, 0x5a);

export class FakeNetwork {
  private readonly transports = new Map<string, FakeTransport>(); // key: lan \0 node
  private queue: InFlight[] = [];
  private flushScheduled = false;
  private readonly lanCuts = new Set<string>();
  private readonly linkCuts = new Map<string, CutDirection>(); // key: lan \0 node
  private readonly loss = new Map<string | undefined, number>(); // undefined key = every LAN
  private readonly dup = new Map<string | undefined, number>();
  private readonly delivery: 'microtask' | 'manual';
  private readonly random: () => number;
  private readonly counters = { lost: 0, duplicated: 0, delivered: 0 };

  constructor(opts: FakeNetworkOptions = {}) {
    this.delivery = opts.delivery ?? 'microtask';
    this.random = opts.random ?? Math.random;
  }

  /** Attaches `node` to `lans`. One open transport per (node, LAN); close it before attaching that node again. */
  transport(node: string, lans: string[], opts: { boot?: number } = {}): FakeTransport {
    for (const lan of lans) {
      if (this.transports.has(key(lan, node))) throw new BugError(`FakeNetwork: ${node} is already attached to LAN ${lan}`);
    }
    const t = new FakeTransport(this, node, lans, opts.boot ?? 1);
    for (const lan of lans) this.transports.set(key(lan, node), t);
    return t;
  }

  cut(lan: string, node?: string, dir: CutDirection = 'both'): void {
    if (node === undefined) this.lanCuts.add(lan);
    else this.linkCuts.set(key(lan, node), dir);
  }

  /** No arguments: removes every cut. `heal(lan)`: every cut on that LAN. `heal(lan, node)`: that node's link only. */
  heal(lan?: string, node?: string): void {
    if (lan === undefined) {
      this.lanCuts.clear();
      this.linkCuts.clear();
      return;
    }
    if (node !== undefined) {
      this.linkCuts.delete(key(lan, node));
      return;
    }
    this.lanCuts.delete(lan);
    for (const k of [...this.linkCuts.keys()]) if (k.startsWith(`${lan}\u0000`)) this.linkCuts.delete(k);
  }

  /** Probability in [0,1] that a datagram on `lan` (or on any LAN without its own setting) is lost. */
  setLoss(rate: number, lan?: string): void {
    this.loss.set(lan, checkRate(rate));
  }

  /** Probability in [0,1] that a datagram on `lan` (or any LAN) is delivered twice (the copy is dropped as a replay). */
  setDuplicate(rate: number, lan?: string): void {
    this.dup.set(lan, checkRate(rate));
  }

  /** Datagrams sent and not yet delivered or lost. */
  pending(): number {
    return this.queue.length;
  }

  /**
   * Delivers every datagram queued before this call (datagrams sent by receive callbacks wait for the next flush, so
   * two nodes answering each other never loop). Returns how many reached a transport.
   */
  flush(): number {
    const batch = this.queue;
    this.queue = [];
    let n = 0;
    for (const d of batch) {
      const target = this.transports.get(key(d.lan, d.to));
      if (!target || !this.linkUp(d.lan, d.from, d.to)) {
        this.counters.lost++;
        continue;
      }
      n++;
      this.counters.delivered++;
      target.receive(d.lan, d.datagram);
    }
    return n;
  }

  networkStats(): { delivered: number; lost: number; duplicated: number } {
    return { ...this.counters };
  }

  /** @internal used by FakeTransport */
  enqueue(d: InFlight): void {
    if (this.random() < this.rate(this.loss, d.lan)) {
      this.counters.lost++;
      return;
    }
    this.queue.push(d);
    if (this.random() < this.rate(this.dup, d.lan)) {
      this.counters.duplicated++;
      this.queue.push(d);
    }
    if (this.delivery === 'microtask' && !this.flushScheduled) {
      this.flushScheduled = true;
      queueMicrotask(() => {
        this.flushScheduled = false; // datagrams sent while flushing schedule the next flush
        this.flush();
      });
    }
  }

  /** @internal used by FakeTransport */
  detach(node: string, lans: string[], t: FakeTransport): void {
    for (const lan of lans) if (this.transports.get(key(lan, node)) === t) this.transports.delete(key(lan, node));
  }

  /** @internal the codec key every fake transport shares */
  get key(): Buffer {
    return FAKE_KEY;
  }

  private linkUp(lan: string, from: string, to: string): boolean {
    if (this.lanCuts.has(lan)) return false;
    const out = this.linkCuts.get(key(lan, from));
    if (out === 'both' || out === 'out') return false;
    const inn = this.linkCuts.get(key(lan, to));
    return !(inn === 'both' || inn === 'in');
  }

  private rate(m: Map<string | undefined, number>, lan: string): number {
    return m.get(lan) ?? m.get(undefined) ?? 0;
  }
}

/** A node's endpoint on a FakeNetwork. Created by `FakeNetwork.transport`. */
export class FakeTransport implements HeartbeatTransport {
  private readonly listeners: Array<(m: HeartbeatMessage) => void> = [];
  private readonly guard = new ReplayGuard();
  private readonly counters: TransportStats = {
    sent: 0,
    received: 0,
    datagrams: { sent: 0, received: 0 }, // one message per datagram: the fake does not pack
    dropped: { badMac: 0, replay: 0, stale: 0, badSource: 0, malformed: 0, unknownNode: 0, misdirected: 0 },
    sendErrors: 0,
  };
  private seq = 0n;
  private closed = false;

  constructor(
    private readonly net: FakeNetwork,
    readonly node: string,
    readonly lans: readonly string[],
    private readonly boot: number,
  ) {}

  send(lan: string, to: string, body: unknown): void {
    if (this.closed) return;
    if (!this.lans.includes(lan)) throw new BugError(`heartbeat send on LAN "${lan}", which ${this.node} is not attached to`);
    if (to === this.node) throw new BugError(`heartbeat send from ${this.node} to itself`);
    this.seq++;
    const datagram = encode(this.net.key, { from: this.node, to, boot: this.boot, seq: this.seq, lan, body });
    this.counters.sent++;
    this.counters.datagrams.sent++;
    this.net.enqueue({ lan, from: this.node, to, datagram });
  }

  onMessage(cb: (m: HeartbeatMessage) => void): void {
    this.listeners.push(cb);
  }

  stats(): TransportStats {
    return { ...this.counters, datagrams: { ...this.counters.datagrams }, dropped: { ...this.counters.dropped } };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.net.detach(this.node, this.lans as string[], this);
  }

  /** @internal called by FakeNetwork.flush */
  receive(lan: string, datagram: Buffer): void {
    if (this.closed) return;
    const d = decode(this.net.key, datagram);
    if (!d.ok) {
      this.counters.dropped[d.reason]++;
      return;
    }
    if (d.lan !== lan) {
      this.counters.dropped.badSource++;
      return;
    }
    if (d.to !== this.node) {
      this.counters.dropped.misdirected++;
      return;
    }
    if (!this.guard.accept(d.from, lan, d.boot, d.seq)) {
      this.counters.dropped.replay++;
      return;
    }
    this.counters.received++;
    this.counters.datagrams.received++;
    const m: HeartbeatMessage = { lan, from: d.from, body: d.body };
    for (const cb of this.listeners) cb(m);
  }
}

function key(lan: string, node: string): string {
  return `${lan}\u0000${node}`;
}

function checkRate(rate: number): number {
  if (!(rate >= 0 && rate <= 1)) throw new BugError(`FakeNetwork: rate ${rate} is not in [0,1]`);
  return rate;
}
