import { ExternalError, UserError } from '../../errors.js';
import { formatCommand, run as defaultRun, type RunFn } from '../exec.js';
import type { ProbeResult, VipAdapter } from './types.js';
import { ipv4ToInt } from '../../net/ipv4.js';
import { subnetInterface, type LocalAddr } from '../../net/local-addrs.js';
import { listIpv4Addrs, parseIpJson, type IpLink } from '../net/ip-addrs.js';

export interface LinuxVipOptions {
  log: (msg: string) => void;
  /** gratuitous ARPs sent per acquire (at least 1), the first one at once. Default 4. */
  announceCount?: number;
  /** spacing of the background announcements. Default 500 ms. */
  announceSpacingMs?: number;
  /** how long `probe` listens for an answer (3 ARP probes spread over it). Default 300 ms: on a LAN a holder answers within milliseconds. */
  probeMs?: number;
  /**
   * Prefix for every command, e.g. ['ip', 'netns', 'exec', 'tvt-x-h1'] so lab tests can act "inside" a namespace.
   * The daemon runs inside its node's namespace already and leaves this empty (default []).
   */
  cmdPrefix?: string[];
  /** the command runner; unit tests pass a fake. Default: ../exec.ts run */
  exec?: RunFn;
}

/** Probes per `probe` call; they are spaced probeMs / PROBE_COUNT apart and arping exits one spacing after the last. */
const PROBE_COUNT = 3;
const ARPING_TIMEOUT_MS = 5000;
const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

/**
 * VipAdapter over iproute2 and Thomas Habets' arping 2.23 (not iputils arping: the flags differ).
 *
 * Commands (IF is the interface whose subnet contains the VIP, PREFIX that subnet's prefix length):
 * - acquire: `ip addr add VIP/PREFIX dev IF`, then `arping -q -U -c 1 -w 0 -i IF -S VIP VIP` announceCount times.
 *   Request-form gratuitous ARP (`-U` without `-P`): Linux may ignore a reply-form one within its 1 s locktime
 *   (platform-findings §3). `-w 0` makes arping exit right after sending instead of waiting 1 s for a reply that a
 *   gratuitous ARP never gets; arping then exits 1, which is success when stderr is empty.
 * - probe: `arping -r -c 3 -W probeMs/3000 -i IF -S 0.0.0.0 VIP`, an RFC 5227 ARP probe (sender IP 0.0.0.0, so no
 *   neighbour cache learns anything from it). `-r` prints one MAC per reply. Replies from any of this host's own
 *   MACs are ignored, so a host that holds the address (on IF or on a second interface on the same LAN) never
 *   reports itself. Exit 0 = replies, exit 1 with empty stderr = no reply, anything else is an ExternalError.
 * - release: `ip addr del VIP/PREFIX dev IF` for every interface carrying it.
 *
 * Concurrency: calls for the same address must not overlap (the driver applies actions one at a time); calls for
 * different addresses may. Background announcements of an address stop at its `release` or next `acquire`.
 *
 * Timing (test/lab/vip.test.ts: veth + bridge, 2 vCPU VM, every command through `ip netns exec`):
 * - acquire ≈ `ip` list + `ip addr add`; the first arping (≈ 70 ms, nearly all start-up) runs in parallel with what
 *   the caller does next (awaiting it too made acquire 85–130 ms).
 * - move: release on the old owner + acquire on the new → the client's neighbour entry holds the new MAC after
 *   115–155 ms. Without the announcement it keeps the old MAC until its entry expires (25–30 s, findings §3).
 * - probe ≈ probeMs + ~100 ms (arping start-up and the two `ip` listings), whatever the answer: it always listens
 *   the whole window. Default 300 ms (measured with 600 ms: 680–770 ms).
 */
export class LinuxVip implements VipAdapter {
  private readonly log: (msg: string) => void;
  private readonly announceCount: number;
  private readonly announceSpacingMs: number;
  private readonly probeMs: number;
  private readonly prefix: string[];
  private readonly exec: RunFn;
  /** background announcements per address; `release` and a new `acquire` cancel them */
  private readonly announcing = new Map<string, Announcer>();

  constructor(opts: LinuxVipOptions) {
    this.log = opts.log;
    this.announceCount = Math.max(1, opts.announceCount ?? 4);
    this.announceSpacingMs = opts.announceSpacingMs ?? 500;
    this.probeMs = opts.probeMs ?? 300;
    this.prefix = opts.cmdPrefix ?? [];
    this.exec = opts.exec ?? defaultRun;
  }

  async probe(addr: string): Promise<ProbeResult> {
    checkIpv4(addr);
    const [addrs, ownMacs] = await Promise.all([this.localAddrs(), this.localMacs()]);
    const ifname = subnetInterface(addr, addrs)?.ifname ?? addrs.find((a) => a.local === addr)?.ifname;
    if (!ifname) throw noInterface(addr);
    const spacingS = (this.probeMs / PROBE_COUNT / 1000).toFixed(3);
    const args = ['-r', '-c', String(PROBE_COUNT), '-W', spacingS, '-i', ifname, '-S', '0.0.0.0', addr];
    const r = await this.cmd('arping', args, { reject: false, timeoutMs: this.probeMs + ARPING_TIMEOUT_MS });
    if (r.code > 1 || r.stderr.trim() !== '') throw new ExternalError(formatCommand('arping', args), r.code, r.stderr);
    const others = r.stdout
      .split('\n')
      .map((l) => l.trim().toLowerCase())
      .filter((l) => MAC_RE.test(l) && !ownMacs.has(l));
    return others.length > 0 ? { inUse: true, by: others[0] } : { inUse: false };
  }

  async acquire(addr: string): Promise<void> {
    checkIpv4(addr);
    await this.cancelAnnouncements(addr);
    const addrs = await this.localAddrs();
    const held = addrs.find((a) => a.local === addr);
    let ifname: string;
    if (held) {
      ifname = held.ifname;
    } else {
      const subnet = subnetInterface(addr, addrs);
      if (!subnet) throw noInterface(addr);
      ifname = subnet.ifname;
      await this.cmd('ip', ['addr', 'add', `${addr}/${subnet.prefixlen}`, 'dev', ifname]);
    }
    // Not awaited: the first announcement (≈ 70 ms, nearly all arping's start-up) overlaps the application's start.
    this.announcing.set(addr, new Announcer(addr, this.announceCount - 1, this.announceSpacingMs, (signal) =>
      this.announce(addr, ifname, signal),
    ));
  }

  async release(addr: string): Promise<void> {
    checkIpv4(addr);
    // No gratuitous ARP of ours may leave after release resolves: stop the timers and wait for an arping in flight.
    await this.cancelAnnouncements(addr);
    for (const a of (await this.localAddrs()).filter((x) => x.local === addr)) {
      const r = await this.cmd('ip', ['addr', 'del', `${addr}/${a.prefixlen}`, 'dev', a.ifname], { reject: false });
      if (r.code !== 0 && (await this.holds(addr))) {
        throw new ExternalError(formatCommand('ip', ['addr', 'del', `${addr}/${a.prefixlen}`, 'dev', a.ifname]), r.code, r.stderr);
      }
    }
  }

  async holds(addr: string): Promise<boolean> {
    checkIpv4(addr);
    return (await this.localAddrs()).some((a) => a.local === addr);
  }

  /** Every IPv4 address configured on a non-loopback interface of this host (VIPs included). */
  async listHeldAddrs(): Promise<string[]> {
    return (await this.localAddrs()).map((a) => a.local);
  }

  /** IPv4 addresses of non-loopback interfaces, in `ip` order. */
  async localAddrs(): Promise<LocalAddr[]> {
    const addrs = await listIpv4Addrs((c, a) => this.cmd(c, a));
    return addrs.filter((a) => !a.loopback).map(({ ifname, local, prefixlen }) => ({ ifname, local, prefixlen }));
  }

  private async localMacs(): Promise<Set<string>> {
    const r = await this.cmd('ip', ['-j', 'link', 'show']);
    const links = parseIpJson<IpLink[]>('ip -j link show', r.stdout);
    return new Set(links.map((l) => (l.address ?? '').toLowerCase()).filter((m) => MAC_RE.test(m)));
  }

  /** One request-form gratuitous ARP. Never throws: a failed announcement is logged (VipAdapter contract). */
  private async announce(addr: string, ifname: string, signal: AbortSignal): Promise<void> {
    const args = ['-q', '-U', '-c', '1', '-w', '0', '-i', ifname, '-S', addr, addr];
    try {
      const r = await this.cmd('arping', args, { reject: false, timeoutMs: ARPING_TIMEOUT_MS, signal });
      if (r.code > 1 || r.stderr.trim() !== '') {
        this.log(`vip ${addr}: gratuitous ARP failed: ${new ExternalError(formatCommand('arping', args), r.code, r.stderr).message}`);
      }
    } catch (e) {
      if (!signal.aborted) this.log(`vip ${addr}: gratuitous ARP failed: ${(e as Error).message}`);
    }
  }

  private async cancelAnnouncements(addr: string): Promise<void> {
    const a = this.announcing.get(addr);
    this.announcing.delete(addr);
    await a?.cancel();
  }

  private cmd(cmd: string, args: string[], opts?: Parameters<RunFn>[2]) {
    const [head, ...rest] = [...this.prefix, cmd, ...args];
    return this.exec(head!, rest, opts);
  }
}

/**
 * Sends one announcement now and `more` later, `spacingMs` apart, one at a time. Timers are unref'd so they never
 * keep the process alive. `cancel` stops the timers, kills an arping in flight and resolves once it has exited.
 */
class Announcer {
  private readonly abort = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<void> = Promise.resolve();

  constructor(
    readonly addr: string,
    private more: number,
    private readonly spacingMs: number,
    private readonly send: (signal: AbortSignal) => Promise<void>,
  ) {
    void this.sendOne();
  }

  async cancel(): Promise<void> {
    this.abort.abort();
    clearTimeout(this.timer);
    await this.inFlight;
  }

  private sendOne(): Promise<void> {
    this.inFlight = this.send(this.abort.signal).then(() => this.scheduleNext());
    return this.inFlight;
  }

  private scheduleNext(): void {
    if (this.abort.signal.aborted || this.more <= 0) return;
    this.more -= 1;
    this.timer = setTimeout(() => void this.sendOne(), this.spacingMs);
    this.timer.unref();
  }
}

function checkIpv4(addr: string): void {
  if (ipv4ToInt(addr) === null) {
    throw new UserError(`"${addr}" is not an IPv4 address; fix <virtual_addr addr=…> (dotted quad, e.g. 198.51.100.10)`);
  }
}

function noInterface(addr: string): UserError {
  return new UserError(
    `no local interface carries a subnet containing ${addr}; configure an address in that subnet on this node or fix <virtual_addr addr=…>`,
  );
}
