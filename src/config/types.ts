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
  /** `<interface check="on">`: the interface is monitored */
  check: boolean;
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
}

export type ModuleConfig = MirrorModuleConfig;
