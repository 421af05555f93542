import type { Clock } from '../platform/clock/types.js';
import type { NetProbe, NetResult } from '../platform/net/types.js';
import { JoinRecent } from './join-recent.js';

/**
 * `link` for the intf checkers of every module (one per daemon): the checkers watching one interface share its
 * reads of /sys/class/net (./join-recent.ts), as the ip checkers share their address listings (./shared-holds.ts).
 * Every mirror and farm module with `<interface check="on">` watches the interface of its VIP, nearly always the
 * same one: 64 modules made 128 file reads a second (open, fstat, read, close each), about 10 % of the busy time of an
 * idle daemon (profiled, bench/modules.ts). An answer may be up to `maxAgeMs` older than the call (default 100 ms,
 * a tenth of the intf checkers' default interval). `tcp` and `interfaceFor` are not shared.
 */
export class SharedLinks implements NetProbe {
  private readonly links = new Map<string, JoinRecent<NetResult>>();

  constructor(
    private readonly net: NetProbe,
    private readonly clock: Pick<Clock, 'mono'>,
    private readonly maxAgeMs = 100,
  ) {}

  /** reads begun per interface, for tests and the benchmark */
  reads(ifname: string): number {
    return this.links.get(ifname)?.runs ?? 0;
  }

  link(ifname: string): Promise<NetResult> {
    let j = this.links.get(ifname);
    if (!j) this.links.set(ifname, j = new JoinRecent(() => this.net.link(ifname), this.clock, this.maxAgeMs));
    return j.get();
  }

  tcp(addr: string, port: number, timeoutMs: number, send?: Buffer): Promise<NetResult> {
    return this.net.tcp(addr, port, timeoutMs, send);
  }

  interfaceFor(addr: string): Promise<string | null> {
    return this.net.interfaceFor(addr);
  }
}
