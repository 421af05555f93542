/**
 * NetProbe: what the `tcp` and `intf` checkers observe of the network, from this process's network namespace.
 * Real: ./linux.ts (sockets, /sys/class/net, `ip`); fake: ./fake.ts.
 *
 * Contract: `tcp` and `link` never reject; every failure is a `down` result whose reason says why.
 * - `tcp` connects to addr:port and resolves `up` once the connection is established, `down` with the socket error
 *   code (`ECONNREFUSED`, `EHOSTUNREACH`, …) or `timed out after <timeoutMs> ms`. It resolves within about
 *   `timeoutMs`, and the socket is closed before it resolves, whatever the outcome (it sends nothing).
 * - `link` reads the interface's link state: `up` when it has carrier and its operstate is `up` or `unknown` (what
 *   loopback, tun and dummy devices report); else `down`, also when the interface does not exist.
 * - `interfaceFor` names the local interface holding `addr`, else the one whose subnet contains it (the rule of
 *   src/net/local-addrs.ts), else null; interfaces that are down count. It may start a process and may reject when
 *   the host's addresses cannot be listed at all: call it to set a checker up, not every poll.
 */
export interface NetProbe {
  /**
   * With `send`, those bytes are written once connected and `up` needs at least one byte back within the timeout:
   * a stopped or hung server still completes the TCP handshake (the kernel does it), but it does not answer.
   */
  tcp(addr: string, port: number, timeoutMs: number, send?: Buffer): Promise<NetResult>;
  link(ifname: string): Promise<NetResult>;
  interfaceFor(addr: string): Promise<string | null>;
}

export interface NetResult {
  state: 'up' | 'down';
  /** `connected`, `ECONNREFUSED`, `timed out after 5000 ms`, `carrier 1, operstate up`, `no interface eth9`, … */
  reason: string;
}
