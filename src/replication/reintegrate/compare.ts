import crypto from 'node:crypto';
import type { BigIntStats } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { UserError } from '../../errors.js';
import type { NotReplicated } from '../../config/types.js';
import { deepestFirst, insertRange, parentOf, shallowestFirst } from '../record/extent-map.js';
import { DEFAULT_BLOCK_SIZE, emptyPlan, type Manifest, type ManifestEntry, type MetaSet, type Plan, type Range } from './plan.js';

/**
 * Reintegration by comparison, for when no trusted change record exists (crash while ALONE, first sync,
 * `--fullsync`, split brain): walk both trees, list what differs, and for files that exist on both sides compare
 * fixed-size block checksums so only differing blocks cross the network (rsync without the rolling checksum:
 * tandem's changes are in place — databases, logs — not insertions that shift content).
 *
 * Hash: SHA-256 over 64 KiB blocks. Collision resistance matters here: a block whose checksum matches is NOT
 * sent, so a collision is silent divergence, and file content may be chosen by an adversary (users of the
 * application); MD5 and SHA-1 have practical collisions. SHA-256 is also the FASTEST hash node:crypto offers on
 * CPUs with SHA extensions (measured on the dev VM, 64 KiB blocks: sha256 1607 MiB/s, sha1 1741, blake2b512 1232,
 * sha512-256 976, md5 718 MiB/s), well above disk read speed, so checksumming costs about one read of each file.
 * 64 KiB blocks: 32 bytes of checksum per block (0.05% of the data on the wire) and at most 64 KiB sent per
 * changed 4 KiB page.
 *
 * The pieces are protocol-agnostic: each side runs `listTree` and `blockSums` on its own disk; the planner is pure.
 * `planTrees` composes them for two local trees (tests, and the reference for the networked caller).
 */

/** Reintegration's own scratch directory at the top of a target tree (staging, restores); never compared. */
export const STAGING_DIR = '.tandem-reintegrate';

/**
 * Compiles `<notreplicated>` rules into a predicate over relative paths:
 *   path="p"          excludes p and everything under it;
 *   regexpath="re"    excludes any entry whose relative path matches re (a matching directory excludes its subtree);
 *   regexpath="!re"   replicates only non-directories whose relative path matches one of the `!` expressions
 *                     (directories are still walked).
 * `.tandem-reintegrate` at the top is always excluded.
 */
export function excludeMatcher(rules: NotReplicated[]): ExcludeFn {
  const paths = rules.flatMap((r) => (r.path !== undefined ? [r.path] : []));
  const neg: RegExp[] = [];
  const pos: RegExp[] = [];
  for (const r of rules) {
    if (r.regexpath === undefined) continue;
    if (r.regexpath.startsWith('!')) neg.push(new RegExp(r.regexpath.slice(1)));
    else pos.push(new RegExp(r.regexpath));
  }
  return (rel, isDir) => {
    if (rel === STAGING_DIR || rel.startsWith(`${STAGING_DIR}/`)) return true;
    for (const p of paths) if (rel === p || rel.startsWith(`${p}/`)) return true;
    for (const re of pos) if (re.test(rel)) return true;
    if (!isDir && neg.length > 0 && !neg.some((re) => re.test(rel))) return true;
    return false;
  };
}

/** True if `rel` or one of its ancestors is excluded (for paths not reached by a walk). */
export function isExcludedPath(excluded: ExcludeFn, rel: string, isDir: boolean): boolean {
  const parts = rel.split('/');
  for (let i = 1; i < parts.length; i++) if (excluded(parts.slice(0, i).join('/'), true)) return true;
  return excluded(rel, isDir);
}

export function entryOf(st: BigIntStats, linkTarget?: string): ManifestEntry {
  const type = st.isFile() ? 'file' : st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : 'other';
  const e: ManifestEntry = {
    type,
    size: type === 'file' ? Number(st.size) : 0,
    mtimeNs: st.mtimeNs,
    mode: Number(st.mode) & 0o7777,
    uid: Number(st.uid),
    gid: Number(st.gid),
  };
  if (type === 'symlink') e.linkTarget = linkTarget ?? '';
  return e;
}

/** The entry at `root/rel` (lstat), or null if nothing is there. */
export async function statEntry(root: string, rel: string): Promise<ManifestEntry | null> {
  const abs = path.join(root, rel);
  try {
    const st = await fs.lstat(abs, { bigint: true });
    return entryOf(st, st.isSymbolicLink() ? await fs.readlink(abs) : undefined);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

/**
 * Walks `root` (never following symlinks) and lists every entry not excluded. Entries that vanish during the walk
 * (the application keeps writing) are left out. Throws UserError if `root` is not a directory.
 */
export type ExcludeFn = (rel: string, isDir: boolean) => boolean;

export async function listTree(root: string, excludes: NotReplicated[] | ExcludeFn = []): Promise<Manifest> {
  const excluded = typeof excludes === 'function' ? excludes : excludeMatcher(excludes);
  const st = await fs.stat(root).catch(() => null);
  if (!st?.isDirectory()) {
    throw new UserError(`replicated directory ${root} does not exist or is not a directory.`,
      'Create it (same path on both nodes) or fix <replicated dir="…"> in userconfig.xml.');
  }
  const out: Manifest = new Map();
  const queue: string[] = [''];
  while (queue.length > 0) {
    const rel = queue.shift()!;
    let names: string[];
    try {
      names = (await fs.readdir(path.join(root, rel))).sort();
    } catch (e) {
      if (rel !== '' && ['ENOENT', 'ENOTDIR'].includes((e as NodeJS.ErrnoException).code ?? '')) continue;
      throw e;
    }
    for (let i = 0; i < names.length; i += 64) {
      const batch = await Promise.all(names.slice(i, i + 64).map(async (name) => {
        const child = rel === '' ? name : `${rel}/${name}`;
        return [child, await statEntry(root, child)] as const;
      }));
      for (const [child, e] of batch) {
        if (!e || excluded(child, e.type === 'dir')) continue;
        out.set(child, e);
        if (e.type === 'dir') queue.push(child);
      }
    }
  }
  return out;
}

/** SHA-256 of each `blockSize` block of `file` (the last one may be short). */
export async function blockSums(file: string, blockSize = DEFAULT_BLOCK_SIZE): Promise<Buffer[]> {
  const fh = await fs.open(file, 'r');
  try {
    return await blockSumsOf(fh, blockSize);
  } finally {
    await fh.close();
  }
}

/** SHA-256 of each `blockSize` block of an open file from block `first`, at most `count` blocks. */
export async function blockSumsOf(fh: fs.FileHandle, blockSize: number, first = 0, count = Number.MAX_SAFE_INTEGER): Promise<Buffer[]> {
  const buf = Buffer.allocUnsafe(blockSize);
  const sums: Buffer[] = [];
  let pos = first * blockSize;
  while (sums.length < count) {
    let got = 0;
    while (got < blockSize) {
      const { bytesRead } = await fh.read(buf, got, blockSize - got, pos + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    if (got === 0) break;
    sums.push(crypto.createHash('sha256').update(buf.subarray(0, got)).digest());
    pos += got;
    if (got < blockSize) break;
  }
  return sums;
}

/**
 * The byte ranges of the source to copy so that the target's blocks equal the source's: every block whose
 * checksum differs or that the target lacks, adjacent blocks merged, the last one clipped to `sourceSize`. The
 * caller then sets the target's size to `sourceSize` (which drops the target's extra blocks).
 */
export function planBlocks(sourceSums: Buffer[], targetSums: Buffer[], blockSize: number, sourceSize: number): Range[] {
  const rs: [number, number][] = [];
  for (let i = 0; i < sourceSums.length; i++) {
    const t = targetSums[i];
    if (t && t.equals(sourceSums[i]!)) continue;
    insertRange(rs, i * blockSize, Math.min((i + 1) * blockSize, sourceSize));
  }
  return rs;
}

export interface CompareOptions {
  /**
   * skip files whose size and mtime are equal (default true; false for `--fullsync`). File times have the
   * kernel's tick granularity (a few ms), so two writes in the same tick leave the same mtime: see `checkSince`.
   */
  trustMtime?: boolean;
  /**
   * with trustMtime: still compare the blocks of files whose mtime (either side) is at or after this time (ns since
   * the epoch). Pass the last moment both nodes were known in sync minus a margin (SafeKit uses about one hour): a
   * file written just before and just after that moment may show the same size and mtime on both sides.
   */
  checkSince?: bigint;
  /** list target files that differ for quarantine (the node resyncs after a split brain); no renames are paired then */
  quarantine?: boolean;
  blockSize?: number;
  /**
   * files whose blocks are compared whatever their size and mtime: both activity logs (the files either side changed
   * in place and may hold changes of that the other never got, e.g. an fdatasync'ed overwrite whose mtime was lost
   * in a crash, or whose old mtime was put back)
   */
  mustCheck?: ReadonlySet<string>;
}

/** tandem sets times with microsecond precision (libuv), so times are compared in microseconds. */
export function sameMtime(a: bigint, b: bigint): boolean {
  return a / 1000n === b / 1000n;
}

function metaOf(p: string, e: ManifestEntry): MetaSet {
  return { path: p, type: e.type, mode: e.mode, uid: e.uid, gid: e.gid, mtimeNs: e.mtimeNs };
}

/**
 * The plan that turns `target` into `source`, from their manifests. Files present on both sides with a different
 * size or mtime (or every such file without `trustMtime`) become patches with `ranges: null`: compare their block
 * checksums (`blockSums` on each side, `planBlocks`) and fill them in with `withBlockRanges`.
 */
export function planFromManifests(source: Manifest, target: Manifest, opts: CompareOptions = {}): Plan {
  const trustMtime = opts.trustMtime ?? true;
  const plan = emptyPlan(opts.blockSize ?? DEFAULT_BLOCK_SIZE);
  const meta = new Map<string, MetaSet>();
  const touched = new Set<string>();
  const quarantine = new Set<string>();
  const deletes: string[] = [];
  const setMeta = (p: string, e: ManifestEntry) => { if (e.type !== 'other') meta.set(p, metaOf(p, e)); };
  const remove = (p: string, t: ManifestEntry) => {
    deletes.push(p);
    if (t.type !== 'dir') quarantine.add(p);
    touched.add(parentOf(p));
  };
  const create = (p: string, s: ManifestEntry) => {
    touched.add(parentOf(p));
    setMeta(p, s);
    if (s.type === 'dir') plan.mkdirs.push(p);
    else if (s.type === 'file') plan.copies.push({ path: p, size: s.size });
    else if (s.type === 'symlink') plan.symlinks.push({ path: p, target: s.linkTarget ?? '' });
    else plan.skipped.push({ path: p, reason: 'special file (device, fifo or socket): not replicated' });
  };

  const renamed = opts.quarantine ? new Map<string, string>() : pairRenames(source, target);
  const movedFrom = new Set(renamed.values());
  for (const [p, t] of target) if (!source.has(p) && !movedFrom.has(p)) remove(p, t);
  for (const [p, s] of source) {
    const t = target.get(p);
    const base = t ? undefined : renamed.get(p);
    if (base !== undefined) {
      plan.moves.push({ from: base, to: p });
      plan.patches.push({ path: p, size: s.size, targetSize: s.size, ranges: null, base });
      touched.add(parentOf(base));
      touched.add(parentOf(p));
      setMeta(p, s);
      continue;
    }
    if (!t || t.type !== s.type) {
      if (t) remove(p, t);
      create(p, s);
      continue;
    }
    const ownerOrMode = s.mode !== t.mode || s.uid !== t.uid || s.gid !== t.gid;
    const mtime = !sameMtime(s.mtimeNs, t.mtimeNs);
    if (s.type === 'file') {
      const recent = opts.checkSince !== undefined && (s.mtimeNs >= opts.checkSince || t.mtimeNs >= opts.checkSince);
      if (!trustMtime || recent || s.size !== t.size || mtime || opts.mustCheck?.has(p)) {
        plan.patches.push({ path: p, size: s.size, targetSize: t.size, ranges: null });
        quarantine.add(p);
        setMeta(p, s);
      } else if (ownerOrMode) {
        setMeta(p, s);
      }
    } else if (s.type === 'symlink') {
      if (s.linkTarget !== t.linkTarget) {
        plan.symlinks.push({ path: p, target: s.linkTarget ?? '' });
        quarantine.add(p);
        touched.add(parentOf(p));
        setMeta(p, s);
      } else if (ownerOrMode || mtime) {
        setMeta(p, s);
      }
    } else if (s.type === 'dir') {
      if (ownerOrMode || mtime) setMeta(p, s);
    } else if (ownerOrMode || mtime || s.size !== t.size) {
      plan.skipped.push({ path: p, reason: 'special file (device, fifo or socket) differs: not replicated' });
    }
  }
  for (const d of touched) {
    const s = d === '' ? undefined : source.get(d);
    if (s?.type === 'dir') setMeta(d, s);
  }
  plan.deletes = deletes.sort(deepestFirst);
  plan.mkdirs.sort(shallowestFirst);
  plan.copies.sort((a, b) => cmp(a.path, b.path));
  plan.patches.sort((a, b) => cmp(a.path, b.path));
  plan.symlinks.sort((a, b) => cmp(a.path, b.path));
  plan.quarantine = opts.quarantine ? [...quarantine].sort() : [];
  plan.metadata = orderMetadata([...meta.values()]);
  return plan;
}

/** Files smaller than this are not paired as renames: copying them costs little more than comparing them. */
export const RENAME_MIN_SIZE = 64 * 1024;

/**
 * Renames the source made that the target did not (a crash lost them, or the target never got them): a file the
 * source has at a path the target lacks, and the target at a path the source lacks, with the same size and mtime,
 * each the only file of that size and mtime among those paths on its side. Returns source path → target path.
 * Rename keeps the mtime, so the pair is very likely the same file; the plan still compares its blocks (`base`),
 * so a wrong pairing costs checksums, never content (rsync's --fuzzy, limited to exact size and time).
 */
export function pairRenames(source: Manifest, target: Manifest): Map<string, string> {
  const key = (e: ManifestEntry) => `${e.size}:${e.mtimeNs / 1000n}`;
  const candidates = (from: Manifest, other: Manifest) => {
    const by = new Map<string, string | null>(); // null: more than one
    for (const [p, e] of from) {
      if (e.type !== 'file' || e.size < RENAME_MIN_SIZE || other.has(p)) continue;
      const k = key(e);
      by.set(k, by.has(k) ? null : p);
    }
    return by;
  };
  const news = candidates(source, target);
  const olds = candidates(target, source);
  const pairs = new Map<string, string>();
  for (const [k, p] of news) {
    const q = olds.get(k);
    if (p !== null && q !== undefined && q !== null) pairs.set(p, q);
  }
  return pairs;
}

/** Non-directories first (by path), then directories deepest first. */
export function orderMetadata(ms: MetaSet[]): MetaSet[] {
  const files = ms.filter((m) => m.type !== 'dir').sort((a, b) => cmp(a.path, b.path));
  const dirs = ms.filter((m) => m.type === 'dir').sort((a, b) => deepestFirst(a.path, b.path));
  return [...files, ...dirs];
}

/**
 * Fills in the block ranges of the plan's patches. A patch left with no range and the same size is content-
 * identical (only its mtime differed): it is dropped from the patches and from the quarantine; its metadata stays.
 */
export function withBlockRanges(plan: Plan, ranges: Map<string, Range[]>): Plan {
  const identical = new Set<string>();
  const patches: Plan['patches'] = [];
  for (const p of plan.patches) {
    const r = p.ranges ?? ranges.get(p.path);
    if (!r) { patches.push(p); continue; }
    if (r.length === 0 && p.targetSize === p.size) identical.add(p.path);
    else patches.push({ ...p, ranges: r });
  }
  return { ...plan, patches, quarantine: plan.quarantine.filter((q) => !identical.has(q)) };
}

export interface TreeComparison {
  plan: Plan;
  source: Manifest;
  target: Manifest;
  /** bytes read on each side to compute block checksums */
  bytesHashed: number;
}

/** Compares two local trees end to end: manifests, then block checksums of the files that may differ. */
export async function planTrees(
  sourceRoot: string, targetRoot: string, excludes: NotReplicated[] = [], opts: CompareOptions = {},
): Promise<TreeComparison> {
  const [source, target] = await Promise.all([listTree(sourceRoot, excludes), listTree(targetRoot, excludes)]);
  let plan = planFromManifests(source, target, opts);
  const ranges = new Map<string, Range[]>();
  let bytesHashed = 0;
  for (const p of plan.patches) {
    const [s, t] = await Promise.all([
      blockSums(path.join(sourceRoot, p.path), plan.blockSize),
      blockSums(path.join(targetRoot, p.base ?? p.path), plan.blockSize),
    ]);
    bytesHashed += p.size + (p.targetSize ?? 0);
    ranges.set(p.path, planBlocks(s, t, plan.blockSize, p.size));
  }
  plan = withBlockRanges(plan, ranges);
  return { plan, source, target, bytesHashed };
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
