import path from 'node:path';
import type { NotReplicated } from '../../config/types.js';
import { clipRanges, deepestFirst, shallowestFirst, type ExtentMap } from '../record/extent-map.js';
import { excludeMatcher, isExcludedPath, listTree, orderMetadata, statEntry } from './compare.js';
import { DEFAULT_BLOCK_SIZE, emptyPlan, type Manifest, type ManifestEntry, type MetaSet, type Plan } from './plan.js';

/** What the delta planner needs from the source (the node that recorded the changes). */
export interface RecordSource {
  /** the entry now at `rel`, or null */
  stat(rel: string): Promise<ManifestEntry | null>;
  /** every entry under the directory `rel` (paths relative to the tree root), excludes applied */
  listTree(rel: string): Promise<Manifest>;
}

export function localRecordSource(root: string, excludes: NotReplicated[] = []): RecordSource {
  const excluded = excludeMatcher(excludes);
  return {
    stat: (rel) => statEntry(root, rel),
    async listTree(rel) {
      const sub = await listTree(path.join(root, rel), (r, isDir) => excluded(`${rel}/${r}`, isDir));
      return new Map([...sub].map(([p, e]) => [`${rel}/${p}`, e]));
    },
  };
}

/**
 * The plan that brings a target holding the BASE of a trusted change record up to the source's current tree,
 * sending only what the record lists (delta reintegration):
 * - renames become `moves` of the target's own objects (their recorded extents are patched at the new path);
 * - deleted base objects become `deletes`;
 * - objects created while recording (or deleted and recreated, or coming from a non-replicated path) are copied
 *   whole — a directory coming from a non-replicated path is listed at the source and copied with its contents;
 * - changed files are patched with their recorded extents, clipped to their current size, then resized;
 * - everything changed, and every directory whose entries changed, gets its metadata from the source.
 * Sizes, modes and times are read from the source now (`source.stat`); the record's paths that no longer exist
 * at the source are left to the live replication that follows (except moves, which concern base objects).
 * A base path whose type the record does not know is kept if it would be excluded as a file or as a directory
 * (deleting the peer's non-replicated files would lose data; at worst an empty directory remains).
 */
export async function planFromRecord(
  map: ExtentMap, source: RecordSource, opts: { excludes?: NotReplicated[]; blockSize?: number } = {},
): Promise<Plan> {
  const matcher = excludeMatcher(opts.excludes ?? []);
  const ex = (p: string, isDir: boolean) => isExcludedPath(matcher, p, isDir);
  const exAny = (p: string) => ex(p, false) || ex(p, true);
  const plan = emptyPlan(opts.blockSize ?? DEFAULT_BLOCK_SIZE);
  const deletes = new Set(map.deletedBasePaths().filter((p) => !exAny(p)));
  const mkdirs = new Set<string>();
  const copies = new Map<string, number>();
  const symlinks = new Map<string, string>();
  const meta = new Map<string, MetaSet>();
  const setMeta = (p: string, e: ManifestEntry) => {
    meta.set(p, { path: p, type: e.type, mode: e.mode, uid: e.uid, gid: e.gid, mtimeNs: e.mtimeNs });
  };
  const createWhole = (p: string, e: ManifestEntry) => {
    if (e.type === 'dir') mkdirs.add(p);
    else if (e.type === 'file') copies.set(p, e.size);
    else if (e.type === 'symlink') symlinks.set(p, e.linkTarget ?? '');
    else { plan.skipped.push({ path: p, reason: 'special file (device, fifo or socket): not replicated' }); return; }
    setMeta(p, e);
  };

  for (const c of map.changedFiles()) {
    const st = await source.stat(c.path);
    const isDir = st ? st.type === 'dir' : c.kind === 'dir';
    const fromExcluded = c.from !== null && (c.kind === 'unknown' ? exAny(c.from) : ex(c.from, c.kind === 'dir'));
    if (ex(c.path, isDir)) {
      if (c.from !== null && !fromExcluded) deletes.add(c.from); // it left the replicated set
      continue;
    }
    const whole = c.from === null || fromExcluded;
    if (!whole && c.status === 'renamed') plan.moves.push({ from: c.from!, to: c.path });
    if (!st) continue;
    if (whole) {
      createWhole(c.path, st);
      if (st.type === 'dir' && fromExcluded) {
        for (const [p, e] of await source.listTree(c.path)) createWhole(p, e);
      }
      continue;
    }
    if (st.type === 'file' && (c.extents.length > 0 || c.truncated || c.size !== null)) {
      const ranges = c.extents.map(([s, e]) => [s, e] as [number, number]);
      clipRanges(ranges, st.size);
      plan.patches.push({ path: c.path, size: st.size, targetSize: null, ranges });
    }
    setMeta(c.path, st);
  }
  plan.deletes = [...deletes].sort(deepestFirst);
  plan.mkdirs = [...mkdirs].sort(shallowestFirst);
  plan.copies = [...copies].sort(([a], [b]) => (a < b ? -1 : 1)).map(([p, size]) => ({ path: p, size }));
  plan.symlinks = [...symlinks].sort(([a], [b]) => (a < b ? -1 : 1)).map(([p, target]) => ({ path: p, target }));
  plan.patches.sort((a, b) => (a.path < b.path ? -1 : 1));
  plan.moves.sort((a, b) => (a.to < b.to ? -1 : 1));
  plan.metadata = orderMetadata([...meta.values()]);
  return plan;
}
