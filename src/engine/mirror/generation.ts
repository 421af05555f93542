import type { Gen, ModState } from './types.js';

/** Generations kept in a node's history; older ones are forgotten (a peer older than that gets a full compare). */
export const HISTORY_LIMIT = 32;

export const genId = (g: Gen): string => `${g.n}@${g.node}`;

export interface DataView {
  gen: Gen | null;
  history: string[];
}

/**
 * How two nodes' data relate, from their generations (DRBD's generation UUIDs are the model):
 * - `same`: same generation, nothing was written by one without the other;
 * - `self-newer` / `peer-newer`: one's current generation is in the other's history: it wrote while the other was away;
 * - `diverged`: both wrote after a common ancestor (split brain);
 * - `unrelated`: no common generation at all (another cluster's data, or histories too old to compare);
 * - `self-empty` / `peer-empty` / `both-empty`: a node that never had data for the module.
 */
export type Relation =
  | 'same'
  | 'self-newer'
  | 'peer-newer'
  | 'diverged'
  | 'unrelated'
  | 'self-empty'
  | 'peer-empty'
  | 'both-empty';

export function relation(self: DataView, peer: DataView): Relation {
  if (!self.gen && !peer.gen) return 'both-empty';
  if (!self.gen) return 'self-empty';
  if (!peer.gen) return 'peer-empty';
  const s = genId(self.gen);
  const p = genId(peer.gen);
  if (s === p) return 'same';
  if (peer.history.includes(s)) return 'peer-newer';
  if (self.history.includes(p)) return 'self-newer';
  const mine = new Set([s, ...self.history]);
  if (peer.history.some((h) => mine.has(h))) return 'diverged';
  return 'unrelated';
}

/** The generation a node starts when it becomes ALONE: numbered above both nodes' known generations. */
export function nextGen(self: string, from: ModState, mine: Gen | null, peers: Gen | null): Gen {
  const n = Math.max(mine?.n ?? 0, peers?.n ?? 0) + 1;
  return { n, node: self, from };
}

export function pushHistory(history: string[], old: Gen | null): string[] {
  return old ? [genId(old), ...history.filter((h) => h !== genId(old))].slice(0, HISTORY_LIMIT) : history;
}

/** History adopted by a SECOND that finished reintegrating from `peer`. */
export function adoptHistory(peerHistory: string[]): string[] {
  return peerHistory.slice(0, HISTORY_LIMIT);
}

export interface Contender {
  node: string;
  gen: Gen | null;
  running: boolean;
  /** false while its copy is incomplete (a reintegration was interrupted) */
  consistent: boolean;
}

/**
 * Who keeps its data after a split brain (both wrote). Documented rule (README, "Split brain"):
 *   0. a node whose copy is incomplete (it was already resyncing from the other) never wins;
 *   1. the node whose generation started from PRIM (it kept the application when the link broke) wins over the node
 *      that took over (SafeKit: "the former SECOND is sacrificed");
 *   2. otherwise the node running the application (ALONE/PRIM) wins over one that is not;
 *   3. otherwise the node listed first in cluster.xml wins.
 * The loser resyncs from the winner and keeps its divergent files in quarantine.
 */
export function splitBrainWinner(a: Contender, b: Contender, nodeOrder: string[]): string {
  if (a.consistent !== b.consistent) return a.consistent ? a.node : b.node;
  const fromPrim = (c: Contender) => c.gen?.from === 'PRIM';
  if (fromPrim(a) !== fromPrim(b)) return fromPrim(a) ? a.node : b.node;
  if (a.running !== b.running) return a.running ? a.node : b.node;
  return nodeOrder.indexOf(a.node) <= nodeOrder.indexOf(b.node) ? a.node : b.node;
}
