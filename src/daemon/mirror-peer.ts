/**
 * Which other node a mirror module runs with. A mirror module runs on the two nodes where it is installed: in a
 * cluster of two nodes that is the other node; in a larger cluster the daemons tell each other which modules they
 * have installed (`Inventory`, a heartbeat body) and the peer is the one other node that has it. Once learnt, the
 * peer is kept in state/<module>.peer, so that a node that boots alone still knows whom it waits for, and the
 * module's replication host reads it there.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { ClusterConfig } from '../config/types.js';
import { UserError } from '../errors.js';
import type { Home } from '../home.js';
import { writeDurably } from './state-store.js';

export function peerFile(home: Home, module: string): string {
  return path.join(home.root, 'state', `${module}.peer`);
}

/** The mirror module's peer if known: the other node of a two-node cluster, else the recorded one (null: not yet). */
export function knownPeer(home: Home, cluster: ClusterConfig, self: string, module: string): string | null {
  if (cluster.nodes.length === 2) return cluster.nodes.find((n) => n !== self)!;
  let text: string;
  try {
    text = fs.readFileSync(peerFile(home, module), 'utf8').trim();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  if (text === self || !cluster.nodes.includes(text)) {
    throw new UserError(`${peerFile(home, module)} names "${text}", which is not another node of cluster.xml.`,
      `remove the file: the daemon learns again which other node has ${module} installed`);
  }
  return text;
}

export async function savePeer(home: Home, module: string, peer: string): Promise<void> {
  await writeDurably(peerFile(home, module), `${peer}\n`);
}

/** What a daemon tells every other node of a cluster of more than two nodes, every second: its installed modules. */
export interface Inventory {
  kind: 'inventory';
  /** installed mirror modules (loaded or waiting for their peer) */
  mirrors: string[];
}

export function isInventory(x: unknown): x is Inventory {
  if (typeof x !== 'object' || x === null) return false;
  const b = x as Record<string, unknown>;
  return b.kind === 'inventory' && Array.isArray(b.mirrors) && b.mirrors.length <= 512 && b.mirrors.every((m) => typeof m === 'string' && m.length <= 64);
}

/** How long an inventory counts after it was heard. */
export const INVENTORY_FRESH_MS = 3000;
export const INVENTORY_EVERY_MS = 1000;
/** How long a daemon waits to hear every other node before it settles a peer with the nodes it heard. */
export const PEER_GRACE_MS = 10_000;

/**
 * Why a mirror module's defaultprim cannot hold with the pair it runs on (null when it can): in a cluster of more than
 * two nodes, cluster.xml accepts any of its nodes, but only `self` and `peer` run the module.
 */
export function defaultprimProblem(module: string, defaultprim: string, self: string, peer: string): string | null {
  if (defaultprim === 'alone' || defaultprim === self || defaultprim === peer) return null;
  const pair = [self, peer].sort();
  return `mirror module ${module}: <service defaultprim="${defaultprim}"> names ${defaultprim}, which does not run it: it runs on ${pair.join(' and ')}. ` +
    `Set defaultprim to ${pair.join(', ')} or "alone" and apply it (\`tandem config -m ${module}\`); nothing is started until then.`;
}

/**
 * Whom a mirror module without a known peer runs with, from the inventories heard (`heard`: node → its mirror
 * modules and when heard): `{ peer }` when exactly one other node has it and every other node of `others` was heard
 * (or `waitedMs` ≥ PEER_GRACE_MS: a node that is down does not hold the others back for ever), else why not yet
 * (`wait`) or never (`error`: on more than one other node).
 */
export function resolvePeer(
  module: string, self: string, heard: ReadonlyMap<string, { mirrors: readonly string[]; at: number }>, now: number,
  others: readonly string[], waitedMs: number,
): { peer: string } | { wait: string } | { error: string } {
  const fresh = [...heard].filter(([, h]) => now - h.at < INVENTORY_FRESH_MS);
  const holders = fresh.filter(([, h]) => h.mirrors.includes(module)).map(([n]) => n).sort();
  const silent = others.filter((n) => !fresh.some(([h]) => h === n));
  if (holders.length === 1 && (silent.length === 0 || waitedMs >= PEER_GRACE_MS)) return { peer: holders[0]! };
  if (holders.length === 1) {
    return { wait: `${holders[0]} has ${module} installed; waiting to hear ${silent.join(', ')} too (at most ${PEER_GRACE_MS / 1000} s), in case it has it as well` };
  }
  if (holders.length > 1) {
    return { error: `mirror module ${module} is installed on ${[self, ...holders].sort().join(', ')}: a mirror module runs on exactly two nodes. Uninstall it from all but two (\`tandem uninstall -m ${module}\` on the others); nothing is started until then.` };
  }
  const nodes = fresh.map(([n]) => n).sort();
  return { wait: `waiting to learn which other node has ${module} installed (${nodes.length ? `heard ${nodes.join(', ')}, none has it` : 'no other node heard yet'}); install it on one other node` };
}
