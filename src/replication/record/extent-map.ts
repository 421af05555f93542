import { BugError } from '../../errors.js';

/**
 * What changed while a node ran ALONE, relative to the data its peer holds (the "base"): per file, the byte ranges
 * that may differ, and per path, what happened to the namespace. Pure: no I/O, no clock. Fed by the FUSE
 * interception (one `FsChange` per operation that succeeded), persisted by `ChangeRecord`, read by the reintegration
 * planner (`planFromRecord`).
 *
 * Paths are relative, '/'-separated, normalized (`a/b`, never `/a`, `a/./b`, `a/../b` or ``).
 *
 * Model. Each object (file, directory, symlink, node) now at a path has an ORIGIN: the base path it had when
 * recording started, or null if it was created while recording. An untouched path is its own origin; a path under a
 * renamed directory takes its origin from that directory (`b/x` after `rename a b` comes from `a/x`). Base objects
 * that no longer exist anywhere (unlinked, or overwritten by a rename) are listed in base coordinates
 * (`deletedBasePaths`).
 *
 * Extents. For each object with a base origin the map keeps the byte ranges [start, end) that may differ from the
 * base content, sorted, merged on insert (overlapping and adjacent ranges coalesce). A receiver holding the base
 * object gets the new content by writing those ranges from the source and then setting the file size to the
 * source's size. To keep that exact, sizes are tracked when known (after a truncate, or for a new file):
 *   - truncate(size): ranges at or beyond `size` are dropped (cut off); if the size before is known and smaller,
 *     the growth [old, size) is recorded (it may hide base bytes cut by an earlier shrink);
 *   - write(offset) beyond a known size: the hole [size, offset) is recorded too (same reason);
 *   - with the size unknown (no truncate yet), growth needs no range: the receiver's own size change zero-fills it,
 *     exactly as the source's did.
 * Objects created while recording (origin null) are copied whole; their ranges are kept only for statistics.
 * A file with more than MAX_RANGES_PER_FILE ranges has them coarsened (merged across small gaps): memory stays
 * bounded, at the price of sending some unchanged bytes.
 *
 * `deletedBasePaths` may name paths that never existed in the base: a rename's destination is assumed to have held
 * an object (the interception cannot tell); deleting an absent path is a no-op for the receiver.
 */
export type FsChange =
  | { op: 'write'; path: string; offset: number; length: number }
  | { op: 'truncate'; path: string; size: number }
  | { op: 'create' | 'mkdir' | 'mknod' | 'symlink'; path: string }
  | { op: 'unlink' | 'rmdir'; path: string }
  | { op: 'rename'; from: string; to: string }
  | { op: 'chmod' | 'chown' | 'utimens' | 'xattr'; path: string };

/** A byte range [start, end), end exclusive. */
export type Range = readonly [start: number, end: number];

export type NodeKind = 'file' | 'dir' | 'symlink' | 'node' | 'unknown';

/**
 * One changed path as the planner sees it:
 * - `created`: a new object (nothing was at this path in the base, or the map cannot tell): copy it whole;
 * - `replaced`: a new object where a base object was deleted (deleted and recreated): copy it whole;
 * - `modified`: the base object still at its own place (possibly under a renamed directory, see `from`);
 * - `renamed`: a base object now at a new path, `from` its base path; `extents` were carried with it.
 */
export interface ChangedPath {
  path: string;
  status: 'created' | 'replaced' | 'modified' | 'renamed';
  /** base path of the object (null for created/replaced) */
  from: string | null;
  kind: NodeKind;
  extents: Range[];
  /** size known to the map (null = unknown: no truncate and not created while recording) */
  size: number | null;
  /** truncated at least once: the receiver must set the size even without extents */
  truncated: boolean;
  /** mode, owner, times or xattrs changed (namespace operations mark the parent directory too) */
  meta: boolean;
}

interface Entry {
  origin: string | null;
  kind: NodeKind;
  ranges: [number, number][];
  size: number | null;
  truncated: boolean;
  meta: boolean;
}

/** JSON form (ChangeRecord snapshots). */
export interface ExtentMapJson {
  v: 1;
  entries: [string, Entry][];
  vacant: string[];
  deleted: string[];
}

export function parentOf(p: string): string {
  const i = p.lastIndexOf('/');
  return i < 0 ? '' : p.slice(0, i);
}

export function isUnder(p: string, dir: string): boolean {
  return p.length > dir.length && p.startsWith(dir) && p.charCodeAt(dir.length) === 47; // '/'
}

export function assertRelPath(p: unknown): asserts p is string {
  if (typeof p !== 'string' || p === '' || p.startsWith('/') || p.endsWith('/')
    || p.split('/').some((c) => c === '' || c === '.' || c === '..') || p.includes('\0')) {
    throw new BugError(`not a normalized relative path: ${JSON.stringify(p)}`);
  }
}

/** Inserts [s, e) into sorted, disjoint, non-adjacent ranges, merging what it touches. */
export function insertRange(rs: [number, number][], s: number, e: number): void {
  if (e <= s) return;
  let lo = 0;
  let hi = rs.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (rs[mid]![1] < s) lo = mid + 1;
    else hi = mid;
  }
  let j = lo;
  let ns = s;
  let ne = e;
  while (j < rs.length && rs[j]![0] <= e) {
    ns = Math.min(ns, rs[j]![0]);
    ne = Math.max(ne, rs[j]![1]);
    j++;
  }
  rs.splice(lo, j - lo, [ns, ne]);
}

/** Above this many ranges a file's ranges are coarsened (memory stays bounded under random writes). */
export const MAX_RANGES_PER_FILE = 4096;

/**
 * Merges neighbouring ranges across gaps up to g bytes, doubling g (from 4 KiB) until at most half the cap remain.
 * Over-recording is always safe: a few unchanged bytes are sent again.
 */
export function coarsen(rs: [number, number][]): void {
  for (let gap = 4096; rs.length > MAX_RANGES_PER_FILE / 2; gap *= 2) {
    let w = 0;
    for (let r = 1; r < rs.length; r++) {
      if (rs[r]![0] - rs[w]![1] <= gap) rs[w]![1] = rs[r]![1];
      else rs[++w] = rs[r]!;
    }
    rs.length = w + 1;
  }
}

/** Drops what lies at or beyond `size`. */
export function clipRanges(rs: [number, number][], size: number): void {
  while (rs.length > 0 && rs[rs.length - 1]![0] >= size) rs.pop();
  const last = rs[rs.length - 1];
  if (last && last[1] > size) last[1] = size;
}

function checkCount(n: unknown, what: string): asserts n is number {
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) {
    throw new BugError(`${what} must be a non-negative integer, got ${String(n)}`);
  }
}

export class ExtentMap {
  private entries = new Map<string, Entry>();
  /** current paths where no base object is any more (moved away or deleted), unless an entry shadows them */
  private vacant = new Set<string>();
  /** base paths whose object no longer exists */
  private deleted = new Set<string>();
  private kids = new Map<string, Set<string>>();

  /** Records one successful operation. Throws BugError for a malformed change (a bug in the caller). */
  apply(c: FsChange): void {
    switch (c.op) {
      case 'write': {
        assertRelPath(c.path);
        checkCount(c.offset, 'write offset');
        checkCount(c.length, 'write length');
        if (c.length === 0) return;
        const e = this.ensure(c.path, 'file');
        if (e.size !== null && c.offset > e.size) insertRange(e.ranges, e.size, c.offset);
        insertRange(e.ranges, c.offset, c.offset + c.length);
        if (e.size !== null) e.size = Math.max(e.size, c.offset + c.length);
        if (e.ranges.length > MAX_RANGES_PER_FILE) coarsen(e.ranges);
        return;
      }
      case 'truncate': {
        assertRelPath(c.path);
        checkCount(c.size, 'truncate size');
        const e = this.ensure(c.path, 'file');
        clipRanges(e.ranges, c.size);
        if (e.size !== null && c.size > e.size) insertRange(e.ranges, e.size, c.size);
        e.size = c.size;
        e.truncated = true;
        return;
      }
      case 'create':
      case 'mknod':
      case 'mkdir':
      case 'symlink': {
        assertRelPath(c.path);
        const kind: NodeKind = c.op === 'create' ? 'file' : c.op === 'mkdir' ? 'dir' : c.op === 'symlink' ? 'symlink' : 'node';
        // create/mkdir/mknod/symlink succeed only on an empty path: a base object that was there is already deleted
        this.dropAt(c.path);
        this.setEntry(c.path, { origin: null, kind, ranges: [], size: kind === 'file' ? 0 : null, truncated: false, meta: true });
        this.touchParent(c.path);
        return;
      }
      case 'unlink':
      case 'rmdir': {
        assertRelPath(c.path);
        const o = this.originOf(c.path);
        if (typeof o === 'string') this.deleted.add(o);
        this.dropAt(c.path);
        this.addVacant(c.path);
        this.touchParent(c.path);
        return;
      }
      case 'rename': {
        assertRelPath(c.from);
        assertRelPath(c.to);
        if (c.from === c.to) return;
        if (isUnder(c.to, c.from)) throw new BugError(`rename of ${c.from} into itself (${c.to})`);
        const fromOrigin = this.originOf(c.from);
        const overwritten = this.originOf(c.to);
        const moved: Entry = this.entries.get(c.from)
          ?? { origin: fromOrigin ?? null, kind: 'unknown', ranges: [], size: null, truncated: false, meta: false };
        const carried: [string, Entry][] = [];
        const carriedVacant: string[] = [];
        for (const p of this.nodesUnder(c.from)) {
          const e = this.entries.get(p);
          if (e) carried.push([p.slice(c.from.length), e]);
          if (this.vacant.has(p)) carriedVacant.push(p.slice(c.from.length));
        }
        if (typeof overwritten === 'string') this.deleted.add(overwritten);
        this.dropAt(c.from);
        this.dropAt(c.to);
        this.setEntry(c.to, moved);
        for (const [suffix, e] of carried) this.setEntry(c.to + suffix, e);
        for (const suffix of carriedVacant) this.addVacant(c.to + suffix);
        this.addVacant(c.from);
        this.touchParent(c.from);
        this.touchParent(c.to);
        return;
      }
      case 'chmod':
      case 'chown':
      case 'utimens':
      case 'xattr': {
        assertRelPath(c.path);
        const e = this.ensure(c.path, 'unknown');
        e.meta = true;
        return;
      }
      default:
        throw new BugError(`unknown change ${JSON.stringify(c)}`);
    }
  }

  /**
   * Base path of the object now at `path`: `path` itself when untouched, null when it was created while recording,
   * undefined when the map knows of no object there (deleted, moved away, or under a new directory without an entry).
   */
  originOf(path: string): string | null | undefined {
    let q = path;
    for (;;) {
      const e = this.entries.get(q);
      if (e) {
        if (e.origin === null) return q === path ? null : undefined;
        return e.origin + path.slice(q.length);
      }
      if (this.vacant.has(q)) return undefined;
      const up = parentOf(q);
      if (up === '') return path;
      q = up;
    }
  }

  /** Every path with a recorded change, sorted by path. */
  changedFiles(): ChangedPath[] {
    return [...this.entries.keys()].sort().map((p) => this.describe(p));
  }

  /** Changed byte ranges of the object now at `path` ([] if none recorded). */
  extentsOf(path: string): Range[] {
    return (this.entries.get(path)?.ranges ?? []).map(([s, e]) => [s, e] as const);
  }

  /** Base paths whose object no longer exists, sorted deepest first. */
  deletedBasePaths(): string[] {
    return [...this.deleted].sort(deepestFirst);
  }

  /** Sum of the lengths of all recorded ranges ("bytes changed"). */
  totalBytes(): number {
    let n = 0;
    for (const e of this.entries.values()) for (const [s, t] of e.ranges) n += t - s;
    return n;
  }

  isEmpty(): boolean {
    return this.entries.size === 0 && this.deleted.size === 0 && this.vacant.size === 0;
  }

  /**
   * The part of the map under `prefix` with the prefix removed (one replicated directory of a module whose paths
   * are `<dir>/<path>`). Renames never cross replicated directories (they are separate mounts).
   */
  within(prefix: string): ExtentMap {
    assertRelPath(prefix);
    const m = new ExtentMap();
    const cut = prefix.length + 1;
    for (const [p, e] of this.entries) {
      if (!isUnder(p, prefix)) continue;
      if (e.origin !== null && !isUnder(e.origin, prefix)) throw new BugError(`${p} came from ${e.origin}, outside ${prefix}`);
      m.setEntry(p.slice(cut), cloneEntry({ ...e, origin: e.origin === null ? null : e.origin.slice(cut) }));
    }
    for (const p of this.vacant) if (isUnder(p, prefix)) m.addVacant(p.slice(cut));
    for (const p of this.deleted) if (isUnder(p, prefix)) m.deleted.add(p.slice(cut));
    return m;
  }

  clone(): ExtentMap {
    return ExtentMap.fromJSON(this.toJSON());
  }

  toJSON(): ExtentMapJson {
    return {
      v: 1,
      entries: [...this.entries].map(([p, e]) => [p, cloneEntry(e)]),
      vacant: [...this.vacant],
      deleted: [...this.deleted],
    };
  }

  static fromJSON(j: ExtentMapJson): ExtentMap {
    if (!j || j.v !== 1 || !Array.isArray(j.entries) || !Array.isArray(j.vacant) || !Array.isArray(j.deleted)) {
      throw new BugError('not an extent map (v1)');
    }
    const m = new ExtentMap();
    for (const [p, e] of j.entries) {
      assertRelPath(p);
      m.setEntry(p, cloneEntry(e));
    }
    for (const p of j.vacant) {
      assertRelPath(p);
      m.addVacant(p);
    }
    for (const p of j.deleted) m.deleted.add(p);
    return m;
  }

  private describe(path: string): ChangedPath {
    const e = this.entries.get(path)!;
    const base = { path, kind: e.kind, extents: this.extentsOf(path), size: e.size, truncated: e.truncated, meta: e.meta };
    if (e.origin === null) {
      const up = parentOf(path);
      const natural = up === '' ? path : (() => {
        const o = this.originOf(up);
        return typeof o === 'string' ? `${o}${path.slice(up.length)}` : undefined;
      })();
      const replaced = natural !== undefined && this.deleted.has(natural);
      return { ...base, status: replaced ? 'replaced' : 'created', from: null };
    }
    return { ...base, status: e.origin === this.naturalOrigin(path) ? 'modified' : 'renamed', from: e.origin };
  }

  /** The base path an object at `path` would have if only its ancestors had moved. */
  private naturalOrigin(path: string): string | undefined {
    const up = parentOf(path);
    if (up === '') return path;
    const o = this.originOf(up);
    return typeof o === 'string' ? o + path.slice(up.length) : undefined;
  }

  private ensure(path: string, kind: NodeKind): Entry {
    let e = this.entries.get(path);
    if (!e) {
      const o = this.originOf(path);
      // undefined: an operation on a path the map believes empty (events out of order); a whole copy is always safe
      e = { origin: o ?? null, kind, ranges: [], size: o === undefined ? 0 : null, truncated: false, meta: false };
      this.setEntry(path, e);
    } else if (e.kind === 'unknown') {
      e.kind = kind;
    }
    return e;
  }

  /** A namespace change in a directory changes its times: its metadata goes to the peer. */
  private touchParent(path: string): void {
    const up = parentOf(path);
    if (up === '') return;
    if (this.originOf(up) === undefined) return;
    this.ensure(up, 'dir').meta = true;
  }

  /** Forgets everything at and under `path` (entries and vacancies). Costs the size of that subtree. */
  private dropAt(path: string): void {
    const doomed = [path, ...this.nodesUnder(path)];
    for (const p of doomed) {
      this.entries.delete(p);
      this.vacant.delete(p);
    }
    for (const p of doomed) this.prune(p);
  }

  // The keys of `entries` and `vacant` are indexed as a tree (`kids`: node → child nodes, intermediate directories
  // included) so that subtree operations (rename, rmdir) cost the subtree, not the whole map.

  private setEntry(p: string, e: Entry): void {
    this.entries.set(p, e);
    this.index(p);
  }

  private addVacant(p: string): void {
    this.vacant.add(p);
    this.index(p);
  }

  private index(p: string): void {
    for (let c = p; c !== '';) {
      const up = parentOf(c);
      let s = this.kids.get(up);
      if (!s) this.kids.set(up, (s = new Set()));
      if (s.has(c)) return;
      s.add(c);
      c = up;
    }
  }

  /** Removes index nodes that hold no key and no child, from `p` upwards. */
  private prune(p: string): void {
    for (let c = p; c !== '';) {
      if (this.entries.has(c) || this.vacant.has(c) || (this.kids.get(c)?.size ?? 0) > 0) return;
      this.kids.delete(c);
      const up = parentOf(c);
      const s = this.kids.get(up);
      if (!s?.delete(c)) return;
      c = up;
    }
  }

  /** Every index node strictly under `p` (keys or not). */
  private nodesUnder(p: string): string[] {
    const out: string[] = [];
    const stack = [...(this.kids.get(p) ?? [])];
    while (stack.length > 0) {
      const c = stack.pop()!;
      out.push(c);
      for (const k of this.kids.get(c) ?? []) stack.push(k);
    }
    return out;
  }
}

function cloneEntry(e: Entry): Entry {
  return { origin: e.origin, kind: e.kind, ranges: e.ranges.map(([s, t]) => [s, t]), size: e.size, truncated: e.truncated, meta: e.meta };
}

/** Sort order: deeper paths first, then by name (children before their directory). */
export function deepestFirst(a: string, b: string): number {
  const da = a.split('/').length;
  const db = b.split('/').length;
  return db - da || (a < b ? -1 : a > b ? 1 : 0);
}

/** Sort order: shallower paths first, then by name (parents before their children). */
export function shallowestFirst(a: string, b: string): number {
  const da = a.split('/').length;
  const db = b.split('/').length;
  return da - db || (a < b ? -1 : a > b ? 1 : 0);
}
