import os from 'node:os';
import { UserError } from '../errors.js';
import type { ClusterConfig } from './types.js';

/**
 * Which node of `cluster` this machine is.
 * - `override` (the TANDEM_NODE environment variable; '' counts as unset) wins and must be a node name of cluster.xml.
 * - Otherwise the one node having an addr, on any LAN, among `localAddrs`.
 * Throws a UserError when the override is unknown, no node matches, or several nodes match.
 */
export function whoami(cluster: ClusterConfig, localAddrs: string[], override?: string): string {
  if (override !== undefined && override !== '') {
    if (cluster.nodes.includes(override)) return override;
    throw new UserError(`TANDEM_NODE="${override}" is not a node of cluster.xml. Set it to one of: ${cluster.nodes.join(', ')}.`);
  }
  const matches = new Map<string, string[]>();
  for (const lan of cluster.lans) {
    for (const n of lan.nodes) {
      if (localAddrs.includes(n.addr)) matches.set(n.name, [...(matches.get(n.name) ?? []), n.addr]);
    }
  }
  if (matches.size === 1) return [...matches.keys()][0];
  if (matches.size === 0) {
    const known = cluster.lans.flatMap((l) => l.nodes.map((n) => `${n.name}=${n.addr}`));
    throw new UserError(
      `this machine is no node of cluster.xml: its addresses (${localAddrs.join(', ') || 'none'}) match no node address ` +
        `(${known.join(', ')}). Set TANDEM_NODE=<node name> or fix the addresses in cluster.xml.`,
    );
  }
  const found = [...matches].map(([name, addrs]) => `${name} (${addrs.join(', ')})`);
  throw new UserError(
    `this machine has the addresses of several nodes of cluster.xml: ${found.join(', ')}. ` +
      `Set TANDEM_NODE=<node name> to say which node it is, or fix cluster.xml.`,
  );
}

/** Every IPv4 address configured on this machine's interfaces, loopback included, in interface order. */
export function localIPv4Addrs(): string[] {
  const out: string[] = [];
  for (const addrs of Object.values(os.networkInterfaces())) {
    for (const a of addrs ?? []) {
      // Node 18.0–18.3 reported family as the number 4.
      if ((a.family as string | number) === 'IPv4' || (a.family as string | number) === 4) out.push(a.address);
    }
  }
  return out;
}
