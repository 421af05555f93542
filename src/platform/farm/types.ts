/**
 * FarmFilter: the packet filter of a farm module on one node. Every UP node of the farm holds the module's VIP and
 * receives every packet sent to it; the filter makes each node keep only the clients whose bucket it owns
 * (src/engine/farm/buckets.ts computes the owners; a client's bucket is ./jhash.ts `farmBucket`). Real: ./linux.ts
 * (nftables, docs/design/farm.md); fake: ./fake.ts.
 *
 * Contract:
 * - `install(spec, owned)` creates the module's filter, or replaces the one installed, in one step (no packet sees
 *   a half-installed filter). Afterwards, for traffic to `spec.vip` on this node:
 *   - a packet matching a rule (proto, and port unless the rule's port is null; a rule with a port takes precedence
 *     over its proto's `port: null` rule) that opens a new connection (a TCP SYN without ACK) or is a UDP datagram:
 *     accepted when its bucket is in `owned`, else dropped;
 *   - a TCP packet of a connection this node accepted (or opened) earlier is accepted whatever its bucket's owner
 *     is now: established connections stay where they are when buckets move (conntrack);
 *   - any other TCP or UDP packet is dropped silently (a flow another node holds, or a port no rule balances, which
 *     every node would otherwise answer at once);
 *   - other protocols (ICMP: ping, errors) are left alone: every node answers a ping to the VIP.
 *   The node also answers ARP for the VIP with the farm's shared MAC (derived from the VIP), and accepts frames sent
 *   to it. UDP has no connection to keep: a datagram goes to its bucket's owner of the moment.
 * - `setOwned(module, owned)` replaces the owned buckets in one step (a packet sees the old set or the new one,
 *   never an empty or partial one). Established TCP connections are not affected.
 * - `remove(module)` removes everything `install` made. Idempotent: removing a module without a filter is a no-op.
 * - `list()` names the modules that have a filter on this node now, sorted (to clean up after a crash).
 * - `owned`: bucket numbers, whole numbers in [0, BUCKETS); duplicates are ignored, order does not matter. An empty
 *   list makes the node accept no new client (its established connections continue).
 * - `install` and `setOwned` on a module throw a UserError for a spec the user can fix (module name, VIP, interface,
 *   rules) and a BugError for bad bucket numbers or `setOwned` on a module not installed (the driver broke the order);
 *   outside commands that fail throw ExternalError.
 * - Calls for the same module must not overlap (the driver applies its actions one at a time); calls for different
 *   modules may.
 *
 * Order the driver must keep:
 * - start: `install` before the VIP is added (LinuxVip.acquire): a node that holds the VIP without its filter answers
 *   every client and announces its own MAC for the VIP. The filter's ARP rewrite also turns the VIP adapter's
 *   gratuitous ARPs into announcements of the shared MAC.
 * - stop: release the VIP, then `remove`.
 * - buckets move (a node joins or leaves): every node calls `setOwned` with its new share. A bucket owned by two nodes
 *   at once breaks the new connections arriving meanwhile (both answer the SYN); a bucket owned by none only delays
 *   them (the client sends its SYN again after 1 s). So a node that loses buckets should apply before one that gains
 *   them, when the engine can order it.
 */
export interface FarmFilter {
  install(spec: FarmFilterSpec, owned: readonly number[]): Promise<void>;
  setOwned(module: string, owned: readonly number[]): Promise<void>;
  remove(module: string): Promise<void>;
  list(): Promise<string[]>;
}

/** One `<rule port proto filter/>` of the module's group. */
export interface FarmFilterRule {
  /** null: every port of `proto` */
  port: number | null;
  proto: 'tcp' | 'udp';
  /** `on_addr`: the client address decides (affinity); `on_port`: its address and source port */
  filter: 'on_addr' | 'on_port';
}

export interface FarmFilterSpec {
  /** the module name: a letter, then up to 30 letters, digits, `_` or `-` */
  module: string;
  /** the farm's virtual IPv4 address */
  vip: string;
  /** the interface that carries the VIP's subnet; default: found from the local addresses (as the VIP adapter does) */
  ifname?: string;
  /** at least one; at most one per (proto, port) */
  rules: readonly FarmFilterRule[];
}
