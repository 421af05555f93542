import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { UserError } from '../errors.js';
import { inNet, ipv4ToInt, parseCidr } from '../net/ipv4.js';
import { isSingleBinary } from '../platform/self.js';

/**
 * What a lab is made of, as plain data. `Lab.create(partial)` fills the missing fields from `defaultSpec` (field by
 * field, not deeply: pass a whole `lans` array to change one LAN) and validates the result before touching anything.
 */
export interface LabSpec {
  /** Starts every namespace name (`<prefix>-br`, `<prefix>-node1`, …). Default `tl` + 4 random hex chars. */
  prefix: string;
  /** Lab directory on the real filesystem: state, node homes, private dirs, daemon output. Default `/tmp/tandem-lab-<prefix>`. */
  dir: string;
  hosts: HostSpec[];
  lans: LanSpec[];
  /**
   * Absolute paths that each *node* host sees as its own copy (`<dir>/<node>/root<path>`), through bind mounts that
   * exist only in that host's mount namespace. The path itself is created on the real filesystem when missing (an
   * empty mount point) and removed again at teardown when the lab created it and no other lab uses it.
   */
  privateDirs: string[];
  /**
   * Private dirs whose node copies sit on a lossy disk (src/lab/lossy/, docs/design/lossy-disk.md): `true` for all of
   * `privateDirs`, or a list of some of them. A lossy disk keeps what was not synced in the memory of a server the lab
   * runs, and `poweroff` loses it; `boot` shows only what was durable. Default false: plain bind mounts, which keep
   * everything a node wrote across a power-off (the machine's page cache survives it).
   */
  lossyDisks: boolean | string[];
  /**
   * Bytes of unsynced data one lossy disk holds before it writes back its oldest files (as fdatasync would: data and
   * size, not names or mtime). Default 64 MiB.
   */
  lossyPendingLimitBytes: number;
  /** argv of the node daemon, run inside the node host. Default `[<repo>/bin/tandem, 'daemon']` (the single binary: itself). */
  daemonCommand: string[];
  /** argv prefix of the tandem CLI, used by `Lab.cli`. Default `[<repo>/bin/tandem]` (the single binary: itself). */
  cliCommand: string[];
  /** Extra environment for the daemon (TANDEM_HOME, TANDEM_RUN_DIR and TANDEM_NODE are always set by the lab). */
  daemonEnv: Record<string, string>;
}

/** `node` hosts get a home, a run dir, private dirs and a daemon; the others are plain machines. */
export type HostRole = 'node' | 'client' | 'witness';

export interface HostSpec {
  name: string;
  role: HostRole;
}

/** One Ethernet segment: a bridge in `<prefix>-br`, and a veth pair per member host. */
export interface LanSpec {
  name: string;
  /** IPv4 network, e.g. `198.51.100.0/24`. Must lie inside one of the documentation ranges (`ALLOWED_NETWORKS`). */
  cidr: string;
  /** Interface name inside every member host (`eth0`, `eth1`). */
  ifname: string;
  /** Member host → its base IPv4 address (no prefix length; the LAN's is used). */
  addrs: Record<string, string>;
}

/** The only networks a lab may use (RFC 5737 documentation ranges). */
export const ALLOWED_NETWORKS = ['198.51.100.0/24', '203.0.113.0/24', '192.0.2.0/24'] as const;

/** Every namespace of every lab whose prefix was generated matches this; `downAll` uses it for leftovers. */
export const GENERATED_PREFIX_NS = /^tl[0-9a-f]{4}-/;

export function randomPrefix(): string {
  return `tl${randomBytes(2).toString('hex')}`;
}

export function defaultLabDir(prefix: string): string {
  return `/tmp/tandem-lab-${prefix}`;
}

/** The repository root (the directory holding tandem's package.json), found from this file's location. */
export function repoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = path.join(dir, 'package.json');
    if (fs.existsSync(pkg)) {
      try {
        if (JSON.parse(fs.readFileSync(pkg, 'utf8')).name === 'tandem') return dir;
      } catch {
        // not ours; keep looking
      }
    }
    const up = path.dirname(dir);
    if (up === dir) return process.cwd();
    dir = up;
  }
}

/** The tandem the nodes run by default: this single binary when it is one, else the checkout's bin/tandem. */
function selfCommand(): string[] {
  return isSingleBinary() ? [process.execPath] : [path.join(repoRoot(), 'bin', 'tandem')];
}

/** The default topology: node1, node2, client and witness on `default`; node1 and node2 on `replication`. */
export function defaultSpec(prefix: string = randomPrefix()): LabSpec {
  return {
    prefix,
    dir: defaultLabDir(prefix),
    hosts: [
      { name: 'node1', role: 'node' },
      { name: 'node2', role: 'node' },
      { name: 'client', role: 'client' },
      { name: 'witness', role: 'witness' },
    ],
    lans: [
      {
        name: 'default',
        cidr: '198.51.100.0/24',
        ifname: 'eth0',
        addrs: { node1: '198.51.100.1', node2: '198.51.100.2', client: '198.51.100.100', witness: '198.51.100.254' },
      },
      {
        name: 'replication',
        cidr: '203.0.113.0/24',
        ifname: 'eth1',
        addrs: { node1: '203.0.113.1', node2: '203.0.113.2' },
      },
    ],
    privateDirs: ['/srv/demo'],
    lossyDisks: false,
    lossyPendingLimitBytes: 64 << 20,
    daemonCommand: [...selfCommand(), 'daemon'],
    cliCommand: selfCommand(),
    // the nodes share one kernel: a node's process monitoring must not count another node's application
    daemonEnv: { TANDEM_ERRD_OWN_NETNS: '1' },
  };
}

/** Fills `partial` from the defaults and validates it; throws UserError naming the bad field. */
export function resolveSpec(partial: Partial<LabSpec> = {}): LabSpec {
  const prefix = partial.prefix ?? randomPrefix();
  const base = defaultSpec(prefix);
  const spec: LabSpec = {
    prefix,
    dir: path.resolve(partial.dir ?? base.dir),
    hosts: partial.hosts ?? base.hosts,
    lans: partial.lans ?? base.lans,
    privateDirs: (partial.privateDirs ?? base.privateDirs).map((d) => path.normalize(d)),
    lossyDisks: Array.isArray(partial.lossyDisks) ? partial.lossyDisks.map((d) => path.normalize(d)) : partial.lossyDisks ?? base.lossyDisks,
    lossyPendingLimitBytes: partial.lossyPendingLimitBytes ?? base.lossyPendingLimitBytes,
    daemonCommand: partial.daemonCommand ?? base.daemonCommand,
    cliCommand: partial.cliCommand ?? base.cliCommand,
    daemonEnv: partial.daemonEnv ?? base.daemonEnv,
  };
  validateSpec(spec);
  return spec;
}

const NAME = /^[a-z][a-z0-9]*$/;

export function validateSpec(spec: LabSpec): void {
  const bad = (what: string, hint: string) => {
    throw new UserError(`lab spec: ${what}.`, hint);
  };
  if (!/^[a-z][a-z0-9]{1,11}$/.test(spec.prefix)) {
    bad(`prefix "${spec.prefix}" is not 2-12 lowercase letters/digits starting with a letter`, 'Leave it out to get a random `tlXXXX` prefix.');
  }
  if (!path.isAbsolute(spec.dir) || spec.dir === '/') bad(`dir "${spec.dir}" is not an absolute directory below /`, 'Use e.g. /tmp/tandem-lab-<prefix>.');
  const hosts = new Set<string>();
  for (const h of spec.hosts) {
    if (!NAME.test(h.name) || h.name.length > 15 || h.name === 'br') bad(`host name "${h.name}" is invalid`, 'Use 1-15 lowercase letters/digits, starting with a letter, not "br".');
    if (hosts.has(h.name)) bad(`host "${h.name}" is listed twice`, 'Give every host a distinct name.');
    if (!['node', 'client', 'witness'].includes(h.role)) bad(`host "${h.name}" has role "${h.role}"`, 'Use node, client or witness.');
    hosts.add(h.name);
  }
  const lanNames = new Set<string>();
  const ifnames = new Map<string, Set<string>>();
  for (const lan of spec.lans) {
    if (!NAME.test(lan.name) || lan.name.length > 12) bad(`LAN name "${lan.name}" is invalid`, 'Use 1-12 lowercase letters/digits, starting with a letter.');
    if (lanNames.has(lan.name)) bad(`LAN "${lan.name}" is listed twice`, 'Give every LAN a distinct name.');
    lanNames.add(lan.name);
    const net = parseCidr(lan.cidr);
    if (!net) bad(`LAN "${lan.name}" has cidr "${lan.cidr}", not an IPv4 network`, 'Write it like 198.51.100.0/24.');
    const allowed = ALLOWED_NETWORKS.map((c) => parseCidr(c)!);
    if (!allowed.some((a) => net!.len >= a.len && inNet(net!.addr, a))) {
      bad(`LAN "${lan.name}" uses ${lan.cidr}, outside the documentation ranges`, `Use a network inside ${ALLOWED_NETWORKS.join(', ')}.`);
    }
    if (!/^[a-zA-Z0-9_.-]{1,15}$/.test(lan.ifname)) bad(`LAN "${lan.name}" has ifname "${lan.ifname}"`, 'Use an interface name of at most 15 characters.');
    const seen = new Set<string>();
    for (const [host, ip] of Object.entries(lan.addrs)) {
      if (!hosts.has(host)) bad(`LAN "${lan.name}" gives an address to unknown host "${host}"`, 'Add the host to hosts or remove the address.');
      const a = ipv4ToInt(ip);
      if (a === null || !inNet(a, net!)) bad(`LAN "${lan.name}": ${host}'s address "${ip}" is not inside ${lan.cidr}`, 'Pick an address inside the LAN.');
      if (seen.has(ip)) bad(`LAN "${lan.name}": address ${ip} is used twice`, 'Give every host its own address.');
      seen.add(ip);
      const ifs = ifnames.get(host) ?? new Set<string>();
      if (ifs.has(lan.ifname)) bad(`host "${host}" would get interface ${lan.ifname} twice`, 'Give each LAN its own ifname.');
      ifs.add(lan.ifname);
      ifnames.set(host, ifs);
    }
  }
  for (const d of spec.privateDirs) {
    if (!path.isAbsolute(d) || d === '/') bad(`private dir "${d}" is not an absolute path below /`, 'Use e.g. /srv/demo.');
    if (/^\/(proc|sys|dev|run\/netns)(\/|$)/.test(d)) bad(`private dir "${d}" is inside a kernel filesystem`, 'Use a path such as /srv/<module>.');
  }
  for (const d of Array.isArray(spec.lossyDisks) ? spec.lossyDisks : []) {
    if (!spec.privateDirs.includes(d)) bad(`lossy disk "${d}" is not one of the private dirs (${spec.privateDirs.join(', ')})`, 'List private dirs only, or pass lossyDisks: true for all of them.');
  }
  if (!Number.isSafeInteger(spec.lossyPendingLimitBytes) || spec.lossyPendingLimitBytes < 1 << 20) {
    bad(`lossyPendingLimitBytes ${spec.lossyPendingLimitBytes} is not a whole number of at least 1 MiB`, 'Leave it out for 64 MiB.');
  }
  if (spec.cliCommand.length === 0) bad('cliCommand is empty', 'Give the argv prefix of the CLI, e.g. ["bin/tandem"].');
  if (spec.daemonCommand.length === 0) bad('daemonCommand is empty', 'Give the argv of the daemon, e.g. ["bin/tandem", "daemon"].');
}

/** The private dirs on lossy disks, with their index in `privateDirs` (a lab.json from before lossy disks: none). */
export function lossyDirs(spec: LabSpec): { dir: string; index: number }[] {
  const on = spec.lossyDisks ?? false;
  return spec.privateDirs.map((dir, index) => ({ dir, index })).filter(({ dir }) => on === true || (Array.isArray(on) && on.includes(dir)));
}

/** Namespace name of a host (or of the bridge namespace, host `br`). */
export function nsName(spec: LabSpec, host: string): string {
  return `${spec.prefix}-${host}`;
}

/** Every namespace of the lab, bridge namespace first. */
export function allNamespaces(spec: LabSpec): string[] {
  return [nsName(spec, 'br'), ...spec.hosts.map((h) => nsName(spec, h.name))];
}

export function bridgeName(spec: LabSpec, lan: string): string {
  const i = spec.lans.findIndex((l) => l.name === lan);
  const name = `br-${lan}`;
  return name.length <= 15 ? name : `br${i}`;
}

/**
 * Name of a host's veth end inside the bridge namespace: a short host tag and the LAN index (`n1-0` = node1 on the
 * first LAN). Tags are the first letter plus trailing digits (`node1` → `n1`, `client` → `c`), or `h<index>` on a clash.
 */
export function portName(spec: LabSpec, host: string, lan: string): string {
  return `${hostTags(spec).get(host)}-${spec.lans.findIndex((l) => l.name === lan)}`;
}

function hostTags(spec: LabSpec): Map<string, string> {
  const tags = new Map<string, string>();
  const used = new Set<string>();
  spec.hosts.forEach((h, i) => {
    let tag = h.name[0]! + (/(\d+)$/.exec(h.name)?.[1] ?? '');
    if (used.has(tag) || tag.length > 10) tag = `h${i}`;
    used.add(tag);
    tags.set(h.name, tag);
  });
  return tags;
}

export function hostSpec(spec: LabSpec, host: string): HostSpec {
  const h = spec.hosts.find((x) => x.name === host);
  if (!h) throw new UserError(`lab ${spec.prefix} has no host "${host}"`, `Use one of: ${spec.hosts.map((x) => x.name).join(', ')}.`);
  return h;
}

export function nodeNames(spec: LabSpec): string[] {
  return spec.hosts.filter((h) => h.role === 'node').map((h) => h.name);
}

/** The LANs a host is on, with its interface name and base address (`a.b.c.d/len`). */
export function hostInterfaces(spec: LabSpec, host: string): { lan: string; ifname: string; address: string }[] {
  return spec.lans
    .filter((l) => l.addrs[host] !== undefined)
    .map((l) => ({ lan: l.name, ifname: l.ifname, address: `${l.addrs[host]}/${parseCidr(l.cidr)!.len}` }));
}

export function lanSpec(spec: LabSpec, lan: string): LanSpec {
  const l = spec.lans.find((x) => x.name === lan);
  if (!l) throw new UserError(`lab ${spec.prefix} has no LAN "${lan}"`, `Use one of: ${spec.lans.map((x) => x.name).join(', ')}.`);
  return l;
}
