/**
 * Which local interface an IPv4 address belongs to. Pure: callers list the addresses (`ip -j -4 addr show` in the
 * VIP adapter, getifaddrs in the net probe) and these functions choose. Shared by src/platform/vip/ and
 * src/platform/net/.
 */
import { inNet, ipv4ToInt } from './ipv4.js';

/** One IPv4 address on an interface. */
export interface LocalAddr {
  ifname: string;
  local: string;
  prefixlen: number;
}

/** The most specific local subnet containing `addr`, ignoring `addr` itself (a VIP already configured). */
export function subnetInterface(addr: string, addrs: readonly LocalAddr[]): LocalAddr | undefined {
  const target = ipv4ToInt(addr);
  if (target === null) return undefined;
  let best: LocalAddr | undefined;
  for (const a of addrs) {
    const local = ipv4ToInt(a.local);
    if (local === null || a.local === addr || a.prefixlen <= 0 || a.prefixlen > 32) continue;
    if (inNet(target, { addr: local, len: a.prefixlen }) && (!best || a.prefixlen > best.prefixlen)) best = a;
  }
  return best;
}

/** The interface that holds `addr` (first in list order), else the one whose subnet contains it, else undefined. */
export function interfaceFor(addr: string, addrs: readonly LocalAddr[]): LocalAddr | undefined {
  return addrs.find((a) => a.local === addr) ?? subnetInterface(addr, addrs);
}
