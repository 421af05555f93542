import path from 'node:path';

/**
 * /proc/<pid>/mountinfo, parsed (proc(5)). Pure: no I/O.
 *
 * Contract:
 * - `root`, `mountPoint` and `source` are unescaped: the kernel writes space, tab, newline and backslash as `\040`,
 *   `\011`, `\012`, `\134`; any `\NNN` octal escape is decoded.
 * - Lines that do not have the documented shape (at least 6 fields, a ` - ` separator, fstype after it) are skipped:
 *   a malformed line never throws and never becomes a half-filled entry.
 * - Entries keep the file's order; stacking at one mount point is recovered from parent ids (`stackAt`), not order.
 */
export interface MountEntry {
  id: number;
  parentId: number;
  /** `major:minor` of the superblock; for FUSE the fusectl connection is `(major << 20) | minor` */
  dev: string;
  /** the directory of the filesystem shown at the mount point (not `/` for bind mounts) */
  root: string;
  mountPoint: string;
  /** per-mount options: `ro`/`rw`, `nosuid`, … */
  options: string[];
  /** `shared:N`, `master:N`, `propagate_from:N`, `unbindable`; empty for a private mount */
  optional: string[];
  fstype: string;
  source: string;
  superOptions: string[];
}

export function parseMountinfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    const sep = f.indexOf('-', 6);
    if (f.length < 10 || sep < 0 || sep + 2 >= f.length) continue;
    const id = Number(f[0]);
    const parentId = Number(f[1]);
    if (!Number.isInteger(id) || !Number.isInteger(parentId) || !/^\d+:\d+$/.test(f[2]!)) continue;
    out.push({
      id,
      parentId,
      dev: f[2]!,
      root: unescapeMountinfo(f[3]!),
      mountPoint: unescapeMountinfo(f[4]!),
      options: f[5]!.split(','),
      optional: f.slice(6, sep),
      fstype: f[sep + 1]!,
      source: unescapeMountinfo(f[sep + 2]!),
      superOptions: (f[sep + 3] ?? '').split(',').filter(Boolean),
    });
  }
  return out;
}

export function unescapeMountinfo(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** The inverse of `unescapeMountinfo` for the characters the kernel escapes (used by the fake and tests). */
export function escapeMountinfo(s: string): string {
  return s.replace(/[ \t\n\\]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, '0')}`);
}

export function formatMountinfo(entries: MountEntry[]): string {
  return entries.map((e) => [
    e.id, e.parentId, e.dev, escapeMountinfo(e.root), escapeMountinfo(e.mountPoint), e.options.join(','),
    ...e.optional, '-', e.fstype, escapeMountinfo(e.source), e.superOptions.join(','),
  ].join(' ')).join('\n') + '\n';
}

/** The fusectl connection number of a FUSE mount (the superblock's device number). */
export function fuseConnection(e: MountEntry): number {
  const [major, minor] = e.dev.split(':').map(Number);
  return (major! << 20) | minor!;
}

/** any FUSE mount: `fuse`, `fuseblk`, or either with a subtype */
export function isFuse(e: MountEntry): boolean {
  return /^fuse(blk)?(\.|$)/.test(e.fstype);
}

/** tandem's own FUSE passthrough: `fuse.tandem`, or `fuseblk.tandem` (mounted over a loop device for syncfs) */
export function isTandemFuse(e: MountEntry): boolean {
  return e.fstype === 'fuse.tandem' || e.fstype === 'fuseblk.tandem';
}

export function isReadOnly(e: MountEntry): boolean {
  return e.options.includes('ro');
}

/** Mounts whose mount point is exactly `p`, bottom first (each one's parent is the one below it). */
export function stackAt(entries: MountEntry[], p: string): MountEntry[] {
  const here = entries.filter((e) => e.mountPoint === p);
  const ids = new Set(here.map((e) => e.id));
  const out: MountEntry[] = [];
  for (let e = here.find((x) => !ids.has(x.parentId)); e; e = here.find((x) => x.parentId === e!.id && !out.includes(x))) {
    out.push(e);
  }
  for (const e of here) if (!out.includes(e)) out.push(e); // a broken chain: keep the rest in file order
  return out;
}

/** True when `child` is `parent` or lies below it (path segments, not string prefixes). */
export function isWithin(child: string, parent: string): boolean {
  const rel = path.relative(parent, child);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/**
 * The mount that holds `p` itself when nothing is mounted exactly at `p`: the topmost mount at the nearest proper
 * ancestor of `p` that is a mount point.
 */
export function underlyingMount(entries: MountEntry[], p: string): MountEntry | null {
  let best: MountEntry[] = [];
  let bestLen = -1;
  for (const e of entries) {
    if (e.mountPoint === p || !isWithin(p, e.mountPoint)) continue;
    const len = e.mountPoint.length;
    if (len > bestLen) {
      bestLen = len;
      best = stackAt(entries, e.mountPoint);
    }
  }
  return best.at(-1) ?? null;
}

/**
 * Where directory `p` lives in its filesystem: the device and the path from that filesystem's root. Two mounts show the
 * same directory exactly when their `dev` and `root` equal this (a bind mount of `p` anywhere has it).
 */
export function identityOf(entries: MountEntry[], p: string): { dev: string; root: string } | null {
  const base = underlyingMount(entries, p);
  if (!base) return null;
  return { dev: base.dev, root: path.posix.join(base.root, path.posix.relative(base.mountPoint, p)) };
}
