import type { Clock } from '../platform/clock/types.js';
import type { NetProbe } from '../platform/net/types.js';
import { PollingChecker } from './polling.js';
import { DEFAULT_CHECK_INTERVAL_MS, DEFAULT_TCP_TIMEOUT_MS, type Observation, type Report } from './types.js';

export interface TcpCheckerOptions {
  ident: string;
  addr: string;
  port: number;
  /** default 10 s */
  intervalMs?: number;
  /** default 5 s */
  timeoutMs?: number;
  net: Pick<NetProbe, 'tcp'>;
  clock: Clock;
  report: Report;
  /** written once connected; then a reply is required (see NetProbe.tcp) */
  send?: Buffer | null;
}

/**
 * `tcp.<ident>`: up while a TCP connection to addr:port is established within the timeout, checked every interval
 * (SafeKit `<tcp ident><to addr port interval timeout/></tcp>`). With `send` (tandem's `<to send="…">`), the server
 * must also reply: a connect alone succeeds against a hung process. Detail: `<addr>:<port> <reason>`, e.g.
 * `127.0.0.1:80 ECONNREFUSED`. Detection of a dead server: at most interval + timeout.
 */
export class TcpChecker extends PollingChecker {
  private readonly target: { addr: string; port: number; timeoutMs: number; net: Pick<NetProbe, 'tcp'>; send: Buffer | null };

  constructor(opts: TcpCheckerOptions) {
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TCP_TIMEOUT_MS;
    super(`tcp.${opts.ident}`, { clock: opts.clock, report: opts.report, intervalMs: opts.intervalMs ?? DEFAULT_CHECK_INTERVAL_MS, expectedMs: timeoutMs });
    this.target = { addr: opts.addr, port: opts.port, timeoutMs, net: opts.net, send: opts.send ?? null };
  }

  protected async check(): Promise<Observation> {
    const { addr, port, timeoutMs, net, send } = this.target;
    const r = await (send ? net.tcp(addr, port, timeoutMs, send) : net.tcp(addr, port, timeoutMs));
    return { state: r.state, detail: `${addr}:${port} ${r.reason}` };
  }
}
