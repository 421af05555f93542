import { BugError, ExternalError, UserError } from '../../errors.js';
import { interfaceFor } from '../../net/local-addrs.js';
import { formatCommand, run as defaultRun, type RunFn, type RunOptions } from '../exec.js';
import { listIpv4Addrs, parseIpJson } from '../net/ip-addrs.js';
import {
  checkOwned,
  checkSpec,
  farmTableName,
  installScript,
  moduleOfTable,
  multicastMacOf,
  ownedScript,
  parseTableComment,
  removeScript,
} from './ruleset.js';
import type { FarmFilter, FarmFilterSpec } from './types.js';

export interface LinuxFarmFilterOptions {
  /**
   * Prefix for every command, e.g. ['ip', 'netns', 'exec', 'tl1a2b-node1'] so lab tests can act "inside" a namespace
   * (sysctls are per network namespace too). The daemon leaves it empty (default []).
   */
  cmdPrefix?: string[];
  /** the command runner; unit tests pass a fake. Default: ../exec.ts run */
  exec?: RunFn;
}

/**
 * FarmFilter over nftables 1.0.6+ (kernel ≥ 5.16 for the netdev egress hook), iproute2 and sysctl.
 *
 * Commands (IF: `spec.ifname`, else the interface that holds the VIP or whose subnet contains it, the VIP adapter's
 * rule from src/net/local-addrs.ts; X: multicastMacOf(VIP); T: tandem_farm_<module>):
 * - install: `sysctl -w net.ipv4.conf.IF.arp_announce=2`, `ip maddr add X dev IF`, then `nft -f -` with
 *   ./ruleset.ts installScript (both tables, replacing any earlier ones, one transaction).
 *   arp_announce=2 makes the node's own ARP requests carry its primary address, never the VIP with its own MAC,
 *   which would pull every client to that node (platform-findings §2). It is left at 2 by `remove`: it only
 *   chooses the best local source address for ARP requests, which is harmless, and the previous value is not kept.
 *   `ip maddr add` subscribes a real NIC to X (veth and bridges accept it anyway); it is idempotent.
 * - setOwned: `nft -f -` with ownedScript (flush + add element in one transaction).
 * - remove: `nft list table netdev T` to read IF and X back from the table's comment (so remove works after a
 *   restart), `nft -f -` with removeScript, `ip maddr del X dev IF` unless another farm table records X on IF (two
 *   VIPs with equal low 23 bits share X; `nft -j list tables` and each other farm's `nft list table netdev`).
 * - list: `nft -j list tables`.
 *
 * Timing: each call is one to three short commands; test/lab/farm-filter.test.ts prints what setOwned takes.
 * Concurrency: as the FarmFilter contract says; the adapter itself keeps no state.
 */
export class LinuxFarmFilter implements FarmFilter {
  private readonly prefix: string[];
  private readonly exec: RunFn;

  constructor(opts: LinuxFarmFilterOptions = {}) {
    this.prefix = opts.cmdPrefix ?? [];
    this.exec = opts.exec ?? defaultRun;
  }

  async install(spec: FarmFilterSpec, owned: readonly number[]): Promise<void> {
    checkSpec(spec);
    checkOwned(owned);
    const ifname = spec.ifname ?? (await this.interfaceOf(spec));
    const mac = multicastMacOf(spec.vip);
    const before = await this.installedLink(spec.module);
    await this.cmd('sysctl', ['-q', '-w', `net.ipv4.conf.${ifname.replace(/\./g, '/')}.arp_announce=2`]);
    await this.cmd('ip', ['maddr', 'add', mac, 'dev', ifname]);
    await this.nft(installScript({ ...spec, ifname }, owned));
    if (before && (before.ifname !== ifname || before.mac !== mac)) await this.dropMaddrUnlessShared(before, spec.module);
  }

  async setOwned(module: string, owned: readonly number[]): Promise<void> {
    const script = ownedScript(module, owned);
    try {
      await this.nft(script);
    } catch (e) {
      if (!(await this.list()).includes(module)) {
        throw new BugError(`farm filter: setOwned(${module}) before install: the module has no filter on this node`);
      }
      throw e;
    }
  }

  async remove(module: string): Promise<void> {
    const link = await this.installedLink(module);
    await this.nft(removeScript(module));
    if (link) await this.dropMaddrUnlessShared(link, module);
  }

  async list(): Promise<string[]> {
    const r = await this.cmd('nft', ['-j', 'list', 'tables']);
    const out = parseIpJson<{ nftables?: { table?: { family: string; name: string } }[] }>('nft -j list tables', r.stdout);
    const modules = new Set<string>();
    for (const item of out.nftables ?? []) {
      const m = item.table && (item.table.family === 'ip' || item.table.family === 'netdev') ? moduleOfTable(item.table.name) : null;
      if (m !== null) modules.add(m);
    }
    return [...modules].sort();
  }

  private async interfaceOf(spec: FarmFilterSpec): Promise<string> {
    const addrs = (await listIpv4Addrs((c, a) => this.cmd(c, a))).filter((a) => !a.loopback);
    const found = interfaceFor(spec.vip, addrs);
    if (!found) {
      throw new UserError(
        `farm module "${spec.module}": no local interface carries a subnet containing ${spec.vip}; configure an address in that subnet on this node or fix <virtual_addr addr=…>`,
      );
    }
    return found.ifname;
  }

  /** The interface and MAC recorded in the module's netdev table, or undefined when it has none. */
  private async installedLink(module: string): Promise<{ ifname: string; mac: string } | undefined> {
    const r = await this.cmd('nft', ['list', 'table', 'netdev', farmTableName(module)], { reject: false });
    return r.code === 0 ? parseTableComment(r.stdout) : undefined;
  }

  /**
   * Unsubscribes `link` unless another farm module's table records the same MAC on the same interface: two VIPs whose
   * low 23 bits are equal map to one multicast MAC, and dropping it for one module would make a real NIC stop
   * receiving the other's clients.
   */
  private async dropMaddrUnlessShared(link: { ifname: string; mac: string }, module: string): Promise<void> {
    for (const other of await this.list()) {
      if (other === module) continue;
      const l = await this.installedLink(other);
      if (l && l.ifname === link.ifname && l.mac === link.mac) return;
    }
    await this.dropMaddr(link);
  }

  /** `ip maddr del`; an address already gone (or an interface deleted since) is not an error. */
  private async dropMaddr(link: { ifname: string; mac: string }): Promise<void> {
    const args = ['maddr', 'del', link.mac, 'dev', link.ifname];
    const r = await this.cmd('ip', args, { reject: false });
    if (r.code !== 0 && !/No such (file|device)|Cannot find device/i.test(r.stderr)) {
      throw new ExternalError(formatCommand('ip', args), r.code, r.stderr);
    }
  }

  private nft(script: string) {
    return this.cmd('nft', ['-f', '-'], { input: script });
  }

  private cmd(cmd: string, args: string[], opts?: RunOptions) {
    const [head, ...rest] = [...this.prefix, cmd, ...args];
    return this.exec(head!, rest, opts);
  }
}
