import type { Clock } from '../platform/clock/types.js';
import type { VipAdapter } from '../platform/vip/types.js';
import { JoinRecent } from './join-recent.js';

/**
 * `holds` for the ip checkers of every module (one per daemon): calls share address listings, as the proc checkers
 * share /proc scans (./proc-scanner.ts). On the shared poll grid (./polling.ts) every ip checker asks in the same
 * event-loop turn, and through `LinuxVip.holds` each asking ran its own `ip -j -4 addr show`: about 3 ms of the
 * daemon's CPU per run (profiled with 16 runs a second), so 64 modules holding their VIPs would spend 20 % of a core
 * listing the same addresses.
 *
 * Contract (./join-recent.ts): a call joins the listing begun by an earlier call at most `maxAgeMs` before it (in
 * flight or done), otherwise it begins a new one; an answer may therefore be up to `maxAgeMs` older than the call
 * (default 100 ms, a tenth of the ip checkers' default interval). A listing that fails rejects the calls that joined
 * it and is not joined by later ones.
 */
export class SharedHolds implements Pick<VipAdapter, 'holds'> {
  private readonly addrs: JoinRecent<ReadonlySet<string>>;

  constructor(
    /** the addresses `holds` looks among (`LinuxVip.listHeldAddrs`: every non-loopback IPv4 address) */
    list: () => Promise<string[]>,
    clock: Pick<Clock, 'mono'>,
    maxAgeMs = 100,
  ) {
    this.addrs = new JoinRecent(() => list().then((a) => new Set(a)), clock, maxAgeMs);
  }

  /** listings begun, for tests and the benchmark */
  get listings(): number {
    return this.addrs.runs;
  }

  async holds(addr: string): Promise<boolean> {
    return (await this.addrs.get()).has(addr);
  }
}
