import type { LocalAddr } from '../../net/local-addrs.js';
import { interfaceFor } from '../../net/local-addrs.js';
import type { Clock } from '../clock/types.js';
import type { NetProbe, NetResult } from './types.js';

/** A TCP endpoint's behaviour: a result at once, or `silent` (no answer: the probe times out on the clock). */
export type FakeTcp = NetResult | 'silent';

/**
 * NetProbe over tables the test fills. An endpoint not set refuses (`down`, ECONNREFUSED); an interface not set
 * does not exist. `silent` endpoints resolve `timed out after <timeoutMs> ms` when the FakeClock given to the
 * constructor reaches the deadline (without a clock they never resolve). Every call is recorded in `calls` as
 * `tcp <addr>:<port>`, `link <if>` or `interfaceFor <addr>`. Other results resolve on a microtask.
 */
export class FakeNet implements NetProbe {
  readonly calls: string[] = [];
  addrs: LocalAddr[] = [];
  private readonly endpoints = new Map<string, FakeTcp>();
  private readonly links = new Map<string, NetResult>();

  constructor(private readonly clock?: Clock) {}

  setTcp(addr: string, port: number, behaviour: FakeTcp): void {
    this.endpoints.set(`${addr}:${port}`, behaviour);
  }

  /** `up` sets carrier and operstate up; `down` a link without carrier; `missing` removes the interface */
  setLink(ifname: string, state: 'up' | 'down' | 'missing'): void {
    if (state === 'missing') this.links.delete(ifname);
    else this.links.set(ifname, state === 'up' ? { state, reason: 'carrier 1, operstate up' } : { state, reason: 'no carrier (operstate down)' });
  }

  tcp(addr: string, port: number, timeoutMs: number): Promise<NetResult> {
    this.calls.push(`tcp ${addr}:${port}`);
    const b = this.endpoints.get(`${addr}:${port}`) ?? { state: 'down', reason: 'ECONNREFUSED' };
    if (b !== 'silent') return Promise.resolve({ ...b });
    return new Promise((resolve) => this.clock?.after(timeoutMs, () => resolve({ state: 'down', reason: `timed out after ${timeoutMs} ms` })));
  }

  async link(ifname: string): Promise<NetResult> {
    this.calls.push(`link ${ifname}`);
    return { ...(this.links.get(ifname) ?? { state: 'down', reason: `no interface ${ifname}` }) };
  }

  async interfaceFor(addr: string): Promise<string | null> {
    this.calls.push(`interfaceFor ${addr}`);
    return interfaceFor(addr, this.addrs)?.ifname ?? null;
  }
}
