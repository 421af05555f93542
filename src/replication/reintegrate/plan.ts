import crypto from 'node:crypto';
import { BugError } from '../../errors.js';
import type { Range } from '../record/extent-map.js';

export type { Range } from '../record/extent-map.js';

export type EntryType = 'file' | 'dir' | 'symlink' | 'other';

/**
 * What a tree holds at one path (lstat, never following symlinks). `mode` is the permission bits (& 0o7777);
 * `size` is 0 for directories; `linkTarget` only for symlinks.
 */
export interface ManifestEntry {
  type: EntryType;
  size: number;
  mtimeNs: bigint;
  mode: number;
  uid: number;
  gid: number;
  linkTarget?: string;
}

/** Relative path ('/'-separated, no leading '/') → entry. The root itself is not in it. */
export type Manifest = Map<string, ManifestEntry>;

export interface MetaSet {
  path: string;
  type: EntryType;
  mode: number;
  uid: number;
  gid: number;
  mtimeNs: bigint;
}

/**
 * What to do to the TARGET tree so that it equals the SOURCE tree. Protocol-agnostic: content is read through a
 * SourceReader when the plan is applied (apply-plan.ts), locally or over the network.
 *
 * Paths in `quarantine`, `moves[].from` and `deletes` are in the target's coordinates BEFORE the plan runs;
 * every other path is in the final (source) coordinates. `apply-plan.ts` runs the lists in this order:
 *   quarantine → moves (staged out, deepest source first) → deletes (deepest first) → moves placed (shallowest
 *   destination first) → mkdirs (shallowest first) → copies and patches (each ends by setting the file's size)
 *   → symlinks → metadata (non-directories, then directories deepest first, so a directory's mtime is set after
 *   its contents changed).
 */
export interface Plan {
  v: 1;
  blockSize: number;
  /** target files/symlinks that differ from the source: moved aside before being overwritten or deleted */
  quarantine: string[];
  /**
   * renames: the target's base object `from` goes to `to`. Record plans: the renames the source made while ALONE;
   * comparison plans: a file found under a new name at the source (then patched from itself, `base`)
   */
  moves: { from: string; to: string }[];
  /** target paths to remove (recursively), deepest first */
  deletes: string[];
  /** directories to create, shallowest first */
  mkdirs: string[];
  /** files to copy whole from the source */
  copies: { path: string; size: number }[];
  /**
   * files to bring up to date by copying `ranges` from the source, then setting the size to `size`; `ranges` null
   * until block checksums are compared (withBlockRanges); `targetSize` the target's size when known; `base`: the
   * target file whose blocks are compared when it is not `path` (a file the source renamed, in `moves` to `path`)
   */
  patches: { path: string; size: number; targetSize: number | null; ranges: Range[] | null; base?: string }[];
  /** symlinks to (re)create; `target` as planned (the applier reads the link from the source when it applies) */
  symlinks: { path: string; target: string }[];
  /** mode, owner, mtime to set last */
  metadata: MetaSet[];
  /** source entries the plan cannot reproduce (device nodes, fifos, sockets) */
  skipped: { path: string; reason: string }[];
}

export const DEFAULT_BLOCK_SIZE = 64 * 1024;

export function emptyPlan(blockSize = DEFAULT_BLOCK_SIZE): Plan {
  return {
    v: 1, blockSize, quarantine: [], moves: [], deletes: [], mkdirs: [], copies: [], patches: [], symlinks: [], metadata: [],
    skipped: [],
  };
}

/** Bytes the plan reads from the source: whole copies plus patched ranges. */
export function planBytes(plan: Plan): number {
  let n = 0;
  for (const c of plan.copies) n += c.size;
  for (const p of plan.patches) {
    if (p.ranges === null) throw new BugError(`patch of ${p.path} has no ranges yet (call withBlockRanges)`);
    for (const [s, e] of p.ranges) n += e - s;
  }
  return n;
}

/** JSON with bigints (mtimeNs) as decimal strings. */
export function planToJson(plan: Plan): string {
  return JSON.stringify(plan, (k, v) => (typeof v === 'bigint' ? v.toString() : v));
}

export function planFromJson(text: string): Plan {
  const p = JSON.parse(text, (k, v) => (k === 'mtimeNs' && typeof v === 'string' ? BigInt(v) : v)) as Plan;
  if (!p || p.v !== 1 || !Array.isArray(p.copies) || !Array.isArray(p.metadata)) throw new BugError('not a reintegration plan (v1)');
  return p;
}

/** Identity of a plan (checkpoints belong to one plan). */
export function planId(plan: Plan): string {
  return crypto.createHash('sha256').update(planToJson(plan)).digest('hex').slice(0, 32);
}
