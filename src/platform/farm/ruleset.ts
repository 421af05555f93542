/**
 * The nftables text of a farm module's filter (the FarmFilter contract in ./types.ts), and the checks shared by the
 * real adapter and the fake. Pure: ./linux.ts feeds these scripts to `nft -f -`. docs/design/farm.md explains every
 * line; in short, for module M, VIP V on interface IF, shared MAC X (multicastMacOf(V)):
 *
 *   table netdev tandem_farm_M      the link layer, bound to IF
 *     ingress: frames to X for V are marked PACKET_HOST, else TCP/UDP discard them as multicast
 *     egress:  every ARP packet whose sender IP is V carries X as sender MAC (replies and gratuitous ARPs alike), so
 *              clients send V's traffic to X, which reaches every node
 *   table ip tandem_farm_M          the decision, in prerouting at priority -150: after conntrack (-200), before DNAT
 *     set owned                     the buckets this node owns (`typeof meta cpu`: see OWNED_SET_TYPE)
 *     TCP of a flow conntrack knows (established, related) → accept: it stays on the node that accepted it
 *     per rule: a TCP SYN (without ACK) / a UDP datagram whose bucket is owned → accept; anything else of the rule → drop
 *     other TCP/UDP to V → drop, except UDP replies to what this node sent from V; other protocols → accepted
 *   Every drop rule counts (`nft list chain ip tandem_farm_M vip`): what this node dropped, rule by rule.
 *
 * A packet dropped in prerouting never has its conntrack entry confirmed (that happens at the end of input, in
 * nf_conntrack_confirm at the last hook priority), so a node never adopts a flow it dropped: the entry made for the
 * packet is freed with it. The lab test checks that no entry is left for a flow another node holds.
 */
import { BugError, UserError } from '../../errors.js';
import { validateModuleName } from '../../config/userconfig.js';
import { BUCKETS } from '../../engine/farm/buckets.js';
import { ipv4ToInt } from '../../net/ipv4.js';
import { FARM_HASH_SEED } from './jhash.js';
import type { FarmFilterRule, FarmFilterSpec } from './types.js';

/** Every farm table is named `tandem_farm_<module>`, in both families. Module names are valid nft identifiers after it. */
export const FARM_TABLE_PREFIX = 'tandem_farm_';

/**
 * The key type of the `owned` set: a 32-bit integer in host byte order, what `jhash` yields. `typeof jhash …` would
 * say it directly but makes `nft list ruleset` segfault in nft 1.0.6, and `type mark` does not match the hash's
 * integer type (platform-findings §2, which therefore went through `meta mark`). `meta cpu` has exactly the hash's
 * type, so the set is looked up with the hash itself and the packet mark stays untouched for other users.
 */
export const OWNED_SET_TYPE = 'typeof meta cpu';

const IFNAME_RE = /^[a-zA-Z0-9_.-]{1,15}$/;

export function farmTableName(module: string): string {
  validateModuleName(module);
  return `${FARM_TABLE_PREFIX}${module}`;
}

/** The module of a farm table name, or null for a table that is not a farm table. */
export function moduleOfTable(table: string): string | null {
  if (!table.startsWith(FARM_TABLE_PREFIX)) return null;
  const m = table.slice(FARM_TABLE_PREFIX.length);
  return /^[a-zA-Z][a-zA-Z0-9_-]{0,30}$/.test(m) ? m : null;
}

/** The IPv4 multicast MAC of the VIP (RFC 1112: 01:00:5e and the address's low 23 bits), the farm's shared MAC. */
export function multicastMacOf(vip: string): string {
  const a = ipv4ToInt(vip);
  if (a === null) throw new UserError(`"${vip}" is not an IPv4 address; fix <virtual_addr addr=…> (dotted quad, e.g. 198.51.100.10)`);
  const low = a & 0x7fffff;
  return ['01', '00', '5e', (low >>> 16).toString(16), ((low >>> 8) & 0xff).toString(16), (low & 0xff).toString(16)]
    .map((b) => b.padStart(2, '0'))
    .join(':');
}

/** Throws a UserError naming what is wrong with the spec (the parts install needs besides the interface). */
export function checkSpec(spec: FarmFilterSpec): void {
  validateModuleName(spec.module);
  multicastMacOf(spec.vip);
  const where = `farm module "${spec.module}"`;
  if (spec.ifname !== undefined && !IFNAME_RE.test(spec.ifname)) {
    throw new UserError(`${where}: interface name "${spec.ifname}" is not valid; use the name \`ip link\` shows (at most 15 characters)`);
  }
  if (spec.rules.length === 0) throw new UserError(`${where} has no <rule>; add e.g. <rule port="80" proto="tcp" filter="on_addr"/>`);
  const seen = new Set<string>();
  for (const r of spec.rules) {
    const port = r.port === null ? '*' : String(r.port);
    if (r.proto !== 'tcp' && r.proto !== 'udp') throw new UserError(`${where}: rule proto "${String(r.proto)}" is not tcp or udp`);
    if (r.filter !== 'on_addr' && r.filter !== 'on_port') throw new UserError(`${where}: rule filter "${String(r.filter)}" is not on_addr or on_port`);
    if (r.port !== null && (!Number.isInteger(r.port) || r.port < 1 || r.port > 65535)) {
      throw new UserError(`${where}: rule port ${port} is not 1-65535 or "*"`);
    }
    const key = `${r.proto}/${port}`;
    if (seen.has(key)) throw new UserError(`${where} has two rules for ${r.proto} port ${port}; keep one`);
    seen.add(key);
  }
}

/** The owned buckets, checked (BugError: they come from the engine), deduplicated and sorted. */
export function checkOwned(owned: readonly number[]): number[] {
  for (const b of owned) {
    if (!Number.isInteger(b) || b < 0 || b >= BUCKETS) throw new BugError(`farm filter: bucket ${b} is not a whole number in [0, ${BUCKETS})`);
  }
  return [...new Set(owned)].sort((x, y) => x - y);
}

/**
 * The `nft -f -` script that installs the module's two tables or replaces them, in one transaction: `add table` +
 * `delete table` first removes an existing one without failing when there is none (nft 1.0.6 has no `destroy`).
 */
export function installScript(spec: FarmFilterSpec & { ifname: string }, owned: readonly number[]): string {
  checkSpec(spec);
  const t = farmTableName(spec.module);
  const mac = multicastMacOf(spec.vip);
  const elements = checkOwned(owned);
  // specific ports first: a rule with a port takes precedence over its proto's `port: null` rule
  const rules = [...spec.rules].sort((a, b) => Number(a.port === null) - Number(b.port === null));
  return [
    ...dropTables(t),
    `table netdev ${t} {`,
    `\tcomment "tandem farm ${spec.module}: vip ${spec.vip} dev ${spec.ifname} mac ${mac}"`,
    `\tchain ingress {`,
    `\t\ttype filter hook ingress device "${spec.ifname}" priority -500; policy accept;`,
    `\t\tether daddr ${mac} ip daddr ${spec.vip} meta pkttype set host`,
    `\t}`,
    `\tchain egress {`,
    `\t\ttype filter hook egress device "${spec.ifname}" priority 0; policy accept;`,
    `\t\tarp saddr ip ${spec.vip} arp saddr ether set ${mac}`,
    `\t}`,
    `}`,
    `table ip ${t} {`,
    `\tset owned {`,
    `\t\t${OWNED_SET_TYPE}`,
    ...(elements.length ? [`\t\telements = { ${elements.join(', ')} }`] : []),
    `\t}`,
    `\tchain prerouting {`,
    `\t\ttype filter hook prerouting priority -150; policy accept;`,
    `\t\tip daddr ${spec.vip} jump vip`,
    `\t}`,
    `\tchain vip {`,
    `\t\tmeta l4proto tcp ct state established,related accept`,
    ...rules.flatMap(ruleLines),
    ...uncoveredLines(rules),
    `\t}`,
    `}`,
    '',
  ].join('\n');
}

/** The script that replaces the owned set in one transaction (flush + add: a packet sees the old set or the new). */
export function ownedScript(module: string, owned: readonly number[]): string {
  const t = farmTableName(module);
  const elements = checkOwned(owned);
  return [`flush set ip ${t} owned`, ...(elements.length ? [`add element ip ${t} owned { ${elements.join(', ')} }`] : []), ''].join('\n');
}

/** The script that removes the module's tables; succeeds when they do not exist. */
export function removeScript(module: string): string {
  return [...dropTables(farmTableName(module)), ''].join('\n');
}

/** `dev IF mac X` from the netdev table's comment (`nft list table netdev T`), or undefined. */
export function parseTableComment(listing: string): { ifname: string; mac: string } | undefined {
  const m = /comment "tandem farm \S+: vip \S+ dev (\S+) mac ([0-9a-f:]{17})"/.exec(listing);
  return m ? { ifname: m[1]!, mac: m[2]! } : undefined;
}

function dropTables(t: string): string[] {
  return [`add table netdev ${t}`, `delete table netdev ${t}`, `add table ip ${t}`, `delete table ip ${t}`];
}

function ruleLines(r: FarmFilterRule): string[] {
  const match = r.port === null ? `meta l4proto ${r.proto}` : `${r.proto} dport ${r.port}`;
  const key = r.filter === 'on_addr' ? 'ip saddr' : `ip saddr . ${r.proto} sport`;
  const opens = r.proto === 'tcp' ? ' tcp flags syn / fin,syn,rst,ack' : '';
  return [`\t\t${match}${opens} jhash ${key} mod ${BUCKETS} seed 0x${FARM_HASH_SEED.toString(16)} @owned accept`, `\t\t${match} counter drop`];
}

/**
 * TCP and UDP to the VIP that no rule covers: dropped (every node would answer it at once), except UDP replies to
 * what this node sent from the VIP (TCP ones were accepted by the chain's first line). Nothing for a proto whose
 * `port: null` rule covers every port.
 */
function uncoveredLines(rules: readonly FarmFilterRule[]): string[] {
  const open = (['tcp', 'udp'] as const).filter((p) => !rules.some((r) => r.proto === p && r.port === null));
  if (open.length === 0) return [];
  return [
    ...(open.includes('udp') ? ['\t\tmeta l4proto udp ct state established,related accept'] : []),
    `\t\tmeta l4proto ${open.length === 2 ? '{ tcp, udp }' : open[0]} counter drop`,
  ];
}
