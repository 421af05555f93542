/**
 * VipAdapter: the virtual IP seam. Real: src/platform/vip/linux.ts (ip + arping); fake: src/platform/vip/fake.ts.
 *
 * Contract:
 * - `probe` asks the LAN whether any *other* host answers for `addr` (ARP duplicate-address detection). It never
 *   reports this host itself. It takes about `probeMs`.
 * - `acquire` adds `addr` on the local interface whose subnet contains it (same prefix length) and resolves once it
 *   is configured; the address is announced with gratuitous ARP at once and again a few times, spaced, in the
 *   background (announcement failures are logged, not thrown), so the first announcement overlaps what the caller
 *   does next (the application's start). Idempotent: acquiring an address already held only re-announces.
 * - `release` removes it; idempotent. After `release` resolves the address is no longer configured here.
 * - `holds` says whether the address is configured on a local interface now.
 */
export interface VipAdapter {
  probe(addr: string): Promise<ProbeResult>;
  acquire(addr: string): Promise<void>;
  release(addr: string): Promise<void>;
  holds(addr: string): Promise<boolean>;
}

export interface ProbeResult {
  /** true when another host answered ARP for the address */
  inUse: boolean;
  /** the MAC address that answered, when known */
  by?: string;
}
