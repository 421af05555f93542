import type { Clock } from '../platform/clock/types.js';
import type { NetProbe } from '../platform/net/types.js';
import { PollingChecker } from './polling.js';
import { DEFAULT_CHECK_INTERVAL_MS, type Observation, type Report } from './types.js';

export interface IntfCheckerOptions {
  /** the resource is `intf.<ident>`; the factory makes it the interface name unless the configuration sets one */
  ident: string;
  /** the interface, or an address whose interface (holding it, else whose subnet contains it) is watched */
  target: { ifname: string } | { addr: string };
  /** default 10 s */
  intervalMs?: number;
  net: Pick<NetProbe, 'link' | 'interfaceFor'>;
  clock: Clock;
  report: Report;
}

/**
 * `intf.<ident>`: up while the interface has carrier and is operationally up (NetProbe.link: two reads in
 * /sys/class/net, no process started), checked every interval. With an address for target, the interface is looked
 * up (NetProbe.interfaceFor, which starts `ip`) at the first check of each start and kept; while no interface holds
 * or routes the address the resource is down and the lookup is retried at every check.
 * Detail: `<ifname>: <reason>`.
 */
export class IntfChecker extends PollingChecker {
  private readonly target: { ifname: string } | { addr: string };
  private readonly net: Pick<NetProbe, 'link' | 'interfaceFor'>;
  private ifname: string | null = null;

  constructor(opts: IntfCheckerOptions) {
    super(`intf.${opts.ident}`, { clock: opts.clock, report: opts.report, intervalMs: opts.intervalMs ?? DEFAULT_CHECK_INTERVAL_MS });
    this.target = opts.target;
    this.net = opts.net;
  }

  protected override onStart(): void {
    this.ifname = 'ifname' in this.target ? this.target.ifname : null;
  }

  protected async check(): Promise<Observation> {
    let ifname = this.ifname;
    if (ifname === null && 'addr' in this.target) {
      const run = this.currentRun;
      ifname = await this.net.interfaceFor(this.target.addr);
      if (ifname === null) return { state: 'down', detail: `no local interface holds or routes ${this.target.addr}` };
      if (this.isCurrent(run)) this.ifname = ifname;
    }
    const r = await this.net.link(ifname!);
    return { state: r.state, detail: `${ifname}: ${r.reason}` };
  }
}
