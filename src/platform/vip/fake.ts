import type { ProbeResult, VipAdapter } from './types.js';

/**
 * An in-memory LAN shared by FakeVip nodes. It keeps, per address, the set of nodes that have it configured (a set,
 * not one holder, so a split brain where two nodes both acquire is visible instead of silently overwritten), and
 * which node's MAC a client would use: the last one to announce the address.
 */
export class FakeLan {
  private readonly configured = new Map<string, Set<string>>();
  private readonly arpOwners = new Map<string, string>();

  /** nodes that have `addr` configured now, in the order they acquired it */
  holders(addr: string): string[] {
    return [...(this.configured.get(addr) ?? [])];
  }

  /** the node whose MAC clients have for `addr` (last announcer), or undefined */
  arpOwner(addr: string): string | undefined {
    return this.arpOwners.get(addr);
  }

  /** @internal used by FakeVip */
  add(addr: string, node: string): void {
    const set = this.configured.get(addr) ?? new Set<string>();
    set.add(node);
    this.configured.set(addr, set);
    this.arpOwners.set(addr, node);
  }

  /** @internal used by FakeVip; clients keep a stale entry, as real neighbour caches do */
  remove(addr: string, node: string): void {
    const set = this.configured.get(addr);
    set?.delete(node);
    if (set && set.size === 0) this.configured.delete(addr);
  }
}

export type FakeVipOp = 'probe' | 'acquire' | 'release' | 'holds';

/**
 * VipAdapter over a FakeLan. Each node has the MAC `fake:<node>`. It records every call, in order, in `calls` as
 * `"<op> <addr>"` (a failed call is recorded too), and `failNext(op, error)` makes the next call of `op` reject
 * with `error` without changing the LAN. Resolves on the next microtask: no timers.
 */
export class FakeVip implements VipAdapter {
  readonly calls: string[] = [];
  private readonly failures = new Map<FakeVipOp, Error>();

  constructor(
    readonly lan: FakeLan,
    readonly node: string,
  ) {}

  static macOf(node: string): string {
    return `fake:${node}`;
  }

  failNext(op: FakeVipOp, error: Error): void {
    this.failures.set(op, error);
  }

  async probe(addr: string): Promise<ProbeResult> {
    this.enter('probe', addr);
    const other = this.lan.holders(addr).find((n) => n !== this.node);
    return other ? { inUse: true, by: FakeVip.macOf(other) } : { inUse: false };
  }

  async acquire(addr: string): Promise<void> {
    this.enter('acquire', addr);
    this.lan.add(addr, this.node);
  }

  async release(addr: string): Promise<void> {
    this.enter('release', addr);
    this.lan.remove(addr, this.node);
  }

  async holds(addr: string): Promise<boolean> {
    this.enter('holds', addr);
    return this.lan.holders(addr).includes(this.node);
  }

  private enter(op: FakeVipOp, addr: string): void {
    this.calls.push(`${op} ${addr}`);
    const err = this.failures.get(op);
    if (err) {
      this.failures.delete(op);
      throw err;
    }
  }
}
