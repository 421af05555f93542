import type { Clock } from '../platform/clock/types.js';
import type { VipAdapter } from '../platform/vip/types.js';
import { PollingChecker } from './polling.js';
import { DEFAULT_CHECK_INTERVAL_MS, type Observation, type Report } from './types.js';

export interface IpCheckerOptions {
  addr: string;
  /** default 10 s */
  intervalMs?: number;
  /** the VIP adapter's view of which addresses this node holds */
  vip: Pick<VipAdapter, 'holds'>;
  clock: Clock;
  report: Report;
}

/**
 * `ip.<addr>`: up while the address is configured on a local interface (VipAdapter.holds; the Linux adapter runs
 * `ip -j -4 addr show` and looks at non-loopback interfaces only, where VIPs live), checked every interval. The
 * daemon runs it while the node holds the VIP (`<virtual_addr check="on">`): someone removing the address shows
 * as down.
 */
export class IpChecker extends PollingChecker {
  private readonly addr: string;
  private readonly vip: Pick<VipAdapter, 'holds'>;

  constructor(opts: IpCheckerOptions) {
    super(`ip.${opts.addr}`, { clock: opts.clock, report: opts.report, intervalMs: opts.intervalMs ?? DEFAULT_CHECK_INTERVAL_MS });
    this.addr = opts.addr;
    this.vip = opts.vip;
  }

  protected async check(): Promise<Observation> {
    return (await this.vip.holds(this.addr))
      ? { state: 'up', detail: `${this.addr} is configured here` }
      : { state: 'down', detail: `${this.addr} is not configured on any local interface` };
  }
}
