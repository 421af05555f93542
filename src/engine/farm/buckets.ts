/**
 * Bucket ownership of a farm group: which UP node serves each of the BUCKETS buckets a client hashes into. Pure: no
 * I/O, no clock; the same members always give the same owners (recent results are memoized, invisibly to callers).
 *
 * Weighted rendezvous hashing (highest random weight): for every bucket, every member gets a score from a hash of
 * (node name, bucket) and its power, and the best score owns the bucket. So
 *   - every node computes the same owner for every bucket from the same members, without a leader or a vote;
 *   - when a member leaves, only its buckets move (the others' scores did not change, so each keeps its best);
 *     when one joins, only the buckets it wins move, each to it; the same members give back the same owners;
 *   - each member's expected share is power / (sum of powers). With 256 buckets the share is exact only on
 *     average: one member of a 1/1/2 farm owns 64 ± 7 buckets (one standard deviation), i.e. 25 % ± 2.7 % of the
 *     clients. Exact shares would have to move buckets between members that stay, which is what this avoids.
 * The score is -power / ln(u), u in (0, 1) the hash's first 52 bits: the minimum of exponential variables of rate
 * `power`, whose winner is member i with probability power_i / Σ power.
 */
import { createHash } from 'node:crypto';

export const BUCKETS = 256;

export interface Member {
  name: string;
  /** a whole number ≥ 1 (config-checked) */
  power: number;
}

/**
 * The owners of the memberships asked last, keyed by their sorted names and powers. bucketOwners is a pure function
 * of its members, and the farm engine asks it on every event (each 100 ms tick and each beacon, for its own view and
 * each peer's) with the same few memberships; computed each time (256 SHA-256 per member), it took about 10 % of a
 * core per 4 farm modules of two nodes (a CPU profile of bench/modules.ts's daemon). Bounded: emptied when full
 * (memberships change rarely). Callers cannot tell it is there: every call returns a new array.
 */
const memo = new Map<string, readonly (string | null)[]>();
const MEMO_MAX = 64;

/** Owner of every bucket (index = bucket), or null for all of them when there are no members. A new array per call. */
export function bucketOwners(members: readonly Member[]): (string | null)[] {
  if (members.length === 0) return new Array<string | null>(BUCKETS).fill(null);
  const sorted = [...members].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const key = JSON.stringify(sorted.map((m) => [m.name, m.power]));
  let owners = memo.get(key);
  if (!owners) {
    owners = computeOwners(sorted);
    if (memo.size >= MEMO_MAX) memo.clear();
    memo.set(key, owners);
  }
  return [...owners];
}

function computeOwners(sorted: readonly Member[]): (string | null)[] {
  const owners: (string | null)[] = new Array<string | null>(BUCKETS).fill(null);
  for (let b = 0; b < BUCKETS; b++) {
    let best: string | null = null;
    let bestScore = -Infinity;
    for (const m of sorted) {
      const s = score(m, b);
      if (s > bestScore) { // ties (never seen in practice) go to the first name in sort order
        best = m.name;
        bestScore = s;
      }
    }
    owners[b] = best;
  }
  return owners;
}

/** The buckets `node` owns among `members`, ascending. */
export function ownedBy(node: string, members: readonly Member[]): number[] {
  const out: number[] = [];
  bucketOwners(members).forEach((o, b) => { if (o === node) out.push(b); });
  return out;
}

/** How many buckets each member owns, by name (members that own none are listed with 0). */
export function shares(members: readonly Member[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of members) out[m.name] = 0;
  for (const o of bucketOwners(members)) if (o !== null) out[o]++;
  return out;
}

function score(m: Member, bucket: number): number {
  const h = createHash('sha256').update(`tandem-farm\0${m.name}\0${bucket}`).digest();
  // 52 bits → (0, 1): never 0 (ln 0) nor 1 (ln 1 = 0)
  const x = (h.readUInt32BE(0) * 2 ** 20 + (h.readUInt32BE(4) >>> 12) + 0.5) / 2 ** 52;
  return -m.power / Math.log(x);
}
