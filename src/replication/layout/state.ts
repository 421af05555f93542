import { identityOf, isReadOnly, isTandemFuse, isWithin, stackAt, type MountEntry } from './mountinfo.js';

/**
 * What the mount table says about one replicated directory. Pure: derived from parsed mountinfo only.
 *
 * Layouts (docs/design/replication.md, step 1), with P = `<runDir>/backing/<module>/<index>`:
 * - `primary`: P is a bind of D, and the topmost mount on D is the tandem FUSE passthrough (`fuse.tandem`, or
 *   `fuseblk.tandem` when mounted over a loop device so that syncfs reaches it).
 * - `secondary`: P is a bind of D, and the topmost mount on D is a read-only bind of D onto itself.
 * - `none`: nothing is mounted on D, and nothing on or under P.
 * - `partial`: only tandem's own mounts, but not one of the complete layouts (a crash between two steps, or a
 *   leave that stopped half way). `recover` removes them.
 * - `foreign`: something that is not tandem's is mounted on D. tandem never unmounts it.
 */
export type LayoutKind = 'primary' | 'secondary' | 'none' | 'partial' | 'foreign';

export type DirMountKind = 'fuse' | 'self-bind' | 'foreign';

export interface DirState {
  dir: string;
  backing: string;
  layout: LayoutKind;
  /** mounts stacked on D, bottom first */
  onDir: Array<{ entry: MountEntry; kind: DirMountKind }>;
  /** mounts on P or below it, in mount-table order; all of them are tandem's (P is tandem's private path) */
  onBacking: MountEntry[];
  /** the bottom mount on P when it is a bind of D, else null */
  backingBind: MountEntry | null;
}

export function classifyDir(entries: MountEntry[], dir: string, backing: string): DirState {
  const id = identityOf(entries, dir);
  const same = (e: MountEntry) => id !== null && e.dev === id.dev && e.root === id.root;
  const onDir = stackAt(entries, dir).map((entry) => ({
    entry,
    // a bind of D onto itself shows D's own device and root, also when D lives on a FUSE filesystem (sshfs, the lab's
    // lossy disk); another filesystem mounted on D, FUSE or not, has a device of its own
    kind: (isTandemFuse(entry) ? 'fuse' : same(entry) ? 'self-bind' : 'foreign') as DirMountKind,
  }));
  const onBacking = entries.filter((e) => isWithin(e.mountPoint, backing));
  const bottomOfP = stackAt(entries, backing)[0];
  const backingBind = bottomOfP !== undefined && same(bottomOfP) ? bottomOfP : null;
  const top = onDir.at(-1);
  const exactlyP = onBacking.length === 1 && backingBind !== null;
  let layout: LayoutKind;
  if (onDir.some((m) => m.kind === 'foreign')) layout = 'foreign';
  else if (onDir.length === 0 && onBacking.length === 0) layout = 'none';
  else if (exactlyP && onDir.length === 1 && top!.kind === 'fuse') layout = 'primary';
  else if (exactlyP && onDir.length === 1 && top!.kind === 'self-bind' && isReadOnly(top!.entry)) layout = 'secondary';
  else layout = 'partial';
  return { dir, backing, layout, onDir, onBacking, backingBind };
}

/** One line per mount for status and logs: `fuse.tandem on /data`. */
export function describeMounts(s: DirState): string[] {
  return [
    ...s.onDir.map(({ entry, kind }) => `${kind === 'foreign' ? `${entry.fstype} ${entry.source}` : kind}${kind === 'self-bind' && isReadOnly(entry) ? ' (ro)' : ''} on ${s.dir}`),
    ...s.onBacking.map((e) => `${e === s.backingBind ? 'bind of the dir' : `${e.fstype} ${e.source}`} on ${e.mountPoint}`),
  ];
}
