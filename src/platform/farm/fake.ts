import { BugError } from '../../errors.js';
import { farmBucket } from './jhash.js';
import { checkOwned, checkSpec, farmTableName } from './ruleset.js';
import type { FarmFilter, FarmFilterRule, FarmFilterSpec } from './types.js';

/** What a FakeFarmFilter holds for one module: the spec as installed (ifname resolved) and the owned buckets. */
export interface FakeFarmTable {
  spec: FarmFilterSpec & { ifname: string };
  /** sorted, without duplicates */
  owned: number[];
}

export type FakeFarmOp = 'install' | 'setOwned' | 'remove' | 'list';

/**
 * FarmFilter in memory, with the real adapter's checks (./ruleset.ts checkSpec, checkOwned: the same UserError and
 * BugError) and its contract: `install` replaces, `setOwned` on a module not installed throws a BugError, `remove`
 * is idempotent. It records every call in `calls` as `"<op> <module>"` (`"install web 0,3,7"`, `"list"`; failed calls
 * too), and `failNext(op, error)` makes the next call of `op` reject with `error` without changing anything.
 * Resolves on the next microtask: no timers.
 */
export class FakeFarmFilter implements FarmFilter {
  readonly calls: string[] = [];
  private readonly tables = new Map<string, FakeFarmTable>();
  private readonly failures = new Map<FakeFarmOp, Error>();

  /** `defaultIfname`: the interface an install without `ifname` gets (the real one looks it up). */
  constructor(readonly node: string, private readonly defaultIfname = 'eth0') {}

  failNext(op: FakeFarmOp, error: Error): void {
    this.failures.set(op, error);
  }

  async install(spec: FarmFilterSpec, owned: readonly number[]): Promise<void> {
    this.enter('install', `${spec.module} ${[...owned].join(',')}`);
    checkSpec(spec);
    const sorted = checkOwned(owned);
    this.tables.set(spec.module, { spec: { ...spec, rules: [...spec.rules], ifname: spec.ifname ?? this.defaultIfname }, owned: sorted });
  }

  async setOwned(module: string, owned: readonly number[]): Promise<void> {
    this.enter('setOwned', `${module} ${[...owned].join(',')}`);
    farmTableName(module);
    const sorted = checkOwned(owned);
    const t = this.tables.get(module);
    if (!t) throw new BugError(`farm filter: setOwned(${module}) before install: the module has no filter on this node`);
    t.owned = sorted;
  }

  async remove(module: string): Promise<void> {
    this.enter('remove', module);
    farmTableName(module);
    this.tables.delete(module);
  }

  async list(): Promise<string[]> {
    this.enter('list');
    return [...this.tables.keys()].sort();
  }

  /** The module's table as installed now (a copy), or undefined. */
  table(module: string): FakeFarmTable | undefined {
    const t = this.tables.get(module);
    return t && { spec: { ...t.spec, rules: [...t.spec.rules] }, owned: [...t.owned] };
  }

  /**
   * Whether this node would accept a new connection (TCP SYN) or a datagram from `saddr`:`sport` to the module's VIP
   * on `proto`/`port`, as the real ruleset decides: the rule for that port, else the proto's `port: null` rule; no
   * rule → dropped.
   */
  acceptsNew(module: string, proto: 'tcp' | 'udp', port: number, saddr: string, sport: number): boolean {
    const t = this.tables.get(module);
    if (!t) return false;
    const rule: FarmFilterRule | undefined =
      t.spec.rules.find((r) => r.proto === proto && r.port === port) ?? t.spec.rules.find((r) => r.proto === proto && r.port === null);
    return rule !== undefined && t.owned.includes(farmBucket(rule.filter, saddr, sport));
  }

  private enter(op: FakeFarmOp, what?: string): void {
    this.calls.push(what === undefined ? op : `${op} ${what}`);
    const err = this.failures.get(op);
    if (err) {
      this.failures.delete(op);
      throw err;
    }
  }
}
