/**
 * Parsed, validated configuration. Produced only by src/config/cluster.ts and src/config/userconfig.ts; every value
 * here has been checked (durations in milliseconds, addresses are IPv4 dotted quads, names are unique).
 */

export interface LanNode {
  /** node name, unique within a LAN, same set of names in every LAN */
  name: string;
  /** IPv4 address of this node on this LAN */
  addr: string;
  /** 1-based line in cluster.xml, for error messages */
  line: number;
}

export interface Lan {
  name: string;
  nodes: LanNode[];
  line: number;
}

export interface ClusterConfig {
  /** UDP port of the heartbeat socket on every LAN (`<lans port="…">`, default 4800). */
  port: number;
  lans: Lan[];
  /** Node names in the order they first appear in cluster.xml. This order is the documented tie-break order. */
  nodes: string[];
}

export interface VirtualAddr {
  addr: string;
  where: 'one_side_alias';
  /** `<interface check="on">`: the interface that carries the VIP is monitored (resource `intf.<ifname>`) */
  check: boolean;
  /** `<virtual_addr check="on">`: the VIP is checked present while this node holds it (resource `ip.<addr>`) */
  checkAddr: boolean;
}

export interface NotReplicated {
  path?: string;
  regexpath?: string;
}

export interface ReplicatedDir {
  dir: string;
  mode: 'read_write' | 'read_only';
  notreplicated: NotReplicated[];
}

export interface RfsConfig {
  /** `none`: fsync returns when durable on both nodes; `second`: SECOND acks on receipt (default per SafeKit is second). */
  async: 'none' | 'second';
  /** a node whose last sync is younger than this may go ALONE at boot without its peer; 0 = never */
  syncdeltaMs: number;
  /**
   * TCP port of this module's replication listener (its replication host's, on this node's address of the module's
   * replication LAN; the SECOND connects to the PRIM's). Default `rfsDefaultPort(cluster port, module name)`.
   */
  port: number;
  replicated: ReplicatedDir[];
}

export interface SplitBrainConfig {
  ident: string;
  exec: 'ping';
  /** witness addresses, any one reachable is enough */
  witnesses: string[];
}

export interface UserConfig {
  nicestoptimeoutMs: number;
  forcestoptimeoutMs: number;
  /** `<var name value/>`: exported to scripts */
  vars: Record<string, string>;
}

export interface HeartConfig {
  pulseMs: number;
  timeoutMs: number;
  /** LAN names from cluster.xml that carry this module's heartbeats, in order */
  lans: string[];
}

/** When a checker or a monitored process is watched: `pre` from prestart to poststop, `prim` while PRIM/ALONE, `second`
 *  while SECOND, `both` while PRIM/ALONE or SECOND (SafeKit's `when` / errd `class`). In a farm module `prim` and
 *  `both` mean while UP; `second` is refused there (a farm has no SECOND). */
export type CheckWhen = 'pre' | 'prim' | 'both' | 'second';

/** What a failed resource makes the module do (a failover rule's action), or nothing. */
export type FailureAction = 'restart' | 'stopstart' | 'stop' | 'wait' | 'swap' | 'noaction';

/** `<errd><proc …/>`: a process that must be alive while its class applies; resource `proc.<name>`. */
export interface ProcSpec {
  name: string;
  /** matched against the process name (comm, 15 characters max); default: the name itself, exactly */
  nameregex: string | null;
  /** matched against the whole command line (arguments joined by spaces); default: any */
  argregex: string | null;
  /** fewer matching processes than this is a failure (default 1) */
  atleast: number;
  /** more than this is a failure; -1 = no limit */
  atmax: number;
  action: 'restart' | 'stopstart' | 'stop' | 'noaction';
  class: CheckWhen;
  line: number;
}

export interface ErrdConfig {
  /** how often the monitored processes are checked */
  polltimerMs: number;
  procs: ProcSpec[];
}

interface CheckerBase {
  /** the resource ident: the resource is `<type>.<ident>` */
  ident: string;
  when: CheckWhen;
  /** the action of its default rule (`t_<ident>`, `p_<ident>`, `c_<ident>`, …); noaction = no default rule */
  action: FailureAction;
  line: number;
}

/** `<check>` children (SafeKit vocabulary) and the checkers created by `<interface check>` / `<virtual_addr check>`. */
export type CheckerConfig =
  /** a TCP connect to addr:port must succeed within timeout, every interval; with `send`, a reply too */
  | (CheckerBase & { type: 'tcp'; addr: string; port: number; intervalMs: number; timeoutMs: number; send: string | null })
  /** one of the addresses must answer a ping within timeout, every interval */
  | (CheckerBase & { type: 'ping'; addrs: string[]; intervalMs: number; timeoutMs: number })
  /** link (carrier) of the interface that holds `localAddr` (or the VIP's subnet); ident = interface name unless set */
  | (CheckerBase & { type: 'intf'; localAddr: string | null; vip: string | null; intervalMs: number })
  /** the VIP `addr` is configured on this node while it holds it */
  | (CheckerBase & { type: 'ip'; addr: string; intervalMs: number })
  /** a user executable, run in a loop by tandem, that reports with `tandem set -r custom.<ident> -v up|down` */
  | (CheckerBase & { type: 'custom'; exec: string; args: string[] })
  /** module `module` runs (ALONE/PRIM ready) on node `node` (null: this node) */
  | (CheckerBase & { type: 'module'; module: string; node: string | null; intervalMs: number });

/** `<failover>`: rules from resources to actions (src/engine/rules/). */
export interface FailoverConfig {
  /** `extends="yes"` (default): the user's rules are added to the default ones (a same label replaces one) */
  extends: boolean;
  /** how often the rules are evaluated */
  periodMs: number;
  /** a decided action must stay decided this long before it is taken */
  handleTimeMs: number;
  /** the rules' text (CDATA or text of <failover>), and where it starts in userconfig.xml */
  text: string;
  line: number;
  column: number;
}

export interface MirrorModuleConfig {
  name: string;
  mode: 'mirror';
  /** `alone` (no preference) or a node name that should be primary when both are up */
  defaultprim: string;
  failover: boolean;
  heart: HeartConfig;
  vips: VirtualAddr[];
  rfs: RfsConfig | null;
  splitbrain: SplitBrainConfig | null;
  user: UserConfig;
  /** `<service maxloop loop_interval>`: automatic restarts allowed in a sliding window before the node gives up */
  maxloop: number;
  loopIntervalMs: number;
  errd: ErrdConfig | null;
  checkers: CheckerConfig[];
  rules: FailoverConfig | null;
}

/** `<virtual_interface type="vmac_directed"><virtual_addr addr="…" where="alias"/>`: a farm VIP, held by every UP node. */
export interface FarmVirtualAddr {
  addr: string;
  where: 'alias';
  /** `<interface check="on">`: the interface that carries the VIP is monitored (resource `intf.<ifname>`) */
  check: boolean;
  /** `<virtual_addr check="on">`: the VIP is checked present while this node is UP (resource `ip.<addr>`) */
  checkAddr: boolean;
}

/** `<host name power/>` of a load-balancing group: a node of cluster.xml and its share (`power` ≥ 1, a whole number). */
export interface FarmHost {
  name: string;
  power: number;
}

/**
 * `<rule virtual_addr port proto filter/>`: which traffic to the module's VIPs is balanced. `on_addr` hashes the client
 * address (session affinity), `on_port` the client address and port. `port` null: `port="*"`, every port of `proto`;
 * `vip` null: `virtual_addr="*"` (or none), every VIP of the module. No two rules of a module overlap (same proto,
 * overlapping vip and port), so a packet belongs to one rule and one group at most.
 */
export interface FarmRule {
  /** one of the module's VIPs, or null for all of them */
  vip: string | null;
  port: number | null;
  proto: 'tcp' | 'udp';
  filter: 'on_addr' | 'on_port';
  line: number;
}

/** `<group name><cluster><host …/></cluster><rule …/></group>`: nodes and their powers, and the rules they balance. */
export interface FarmGroup {
  name: string;
  hosts: FarmHost[];
  rules: FarmRule[];
  line: number;
}

/**
 * A farm module: every node where it is installed runs the application (`start_both` / `stop_both`) and holds the
 * VIPs; each client is served by exactly one UP node, chosen by its bucket (src/engine/farm/buckets.ts).
 */
export interface FarmModuleConfig {
  name: string;
  mode: 'farm';
  /** `<farm pulse timeout><lan name/></farm>`: the membership heartbeats of this module and the LANs they use */
  heart: HeartConfig;
  vips: FarmVirtualAddr[];
  groups: FarmGroup[];
  user: UserConfig;
  maxloop: number;
  loopIntervalMs: number;
  errd: ErrdConfig | null;
  checkers: CheckerConfig[];
  rules: FailoverConfig | null;
}

export type ModuleConfig = MirrorModuleConfig | FarmModuleConfig;
