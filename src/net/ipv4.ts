/** IPv4 helpers shared by config validation, the VIP adapter and the lab. Pure. */

/** The address as an unsigned 32-bit integer, or null when `s` is not a dotted quad. */
export function ipv4ToInt(s: string): number | null {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return null;
  const parts = m.slice(1).map(Number);
  if (parts.some((p) => p > 255)) return null;
  return ((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0;
}

/** `a.b.c.d/len` → address and prefix length, or undefined. */
export function parseCidr(s: string): { addr: number; len: number } | undefined {
  const [ip, lenS] = s.split('/');
  const addr = ipv4ToInt(ip ?? '');
  const len = Number(lenS);
  if (addr === null || !Number.isInteger(len) || len < 0 || len > 32) return undefined;
  return { addr, len };
}

/** The netmask of a prefix length (JavaScript shifts are mod 32, so 0 and 32 are spelled out). */
export function prefixMask(len: number): number {
  if (len <= 0) return 0;
  if (len >= 32) return 0xffffffff;
  return (~(0xffffffff >>> len)) >>> 0;
}

/** Whether `addr` lies in the network `net`. */
export function inNet(addr: number, net: { addr: number; len: number }): boolean {
  const mask = prefixMask(net.len);
  return ((addr & mask) >>> 0) === ((net.addr & mask) >>> 0);
}
