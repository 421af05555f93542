import fsp from 'node:fs/promises';
import path from 'node:path';
import { UserError } from '../../errors.js';
import { identityOf, isWithin, parseMountinfo, underlyingMount, type MountEntry } from './mountinfo.js';

/**
 * Processes that would write into a replicated directory D around tandem: once the FUSE passthrough (PRIM) or the
 * read-only bind (SECOND) covers D, a process that already holds something inside D keeps reaching the real
 * directory underneath, and its writes are neither replicated nor refused. The layout looks for them just before it
 * mounts over D and refuses to start the module, naming them (`checkNoHolders`).
 *
 * What counts, for each process but this one:
 * - its current directory or root directory is D or below it (relative paths then resolve under the mount);
 * - an open file descriptor or a file mapping (`/proc/<pid>/maps`) names a path in D;
 * - in another mount namespace, the same, with D at the paths where that namespace shows it (a container with D
 *   bind-mounted at /data: its cwd in /data counts).
 * A namespace that shows D through a mount that the mount over D will not propagate to (not a peer or slave of the
 * mount that holds D here: a container's bind of D, the host seen from inside a private namespace), but where
 * nothing holds D now, is logged, not refused: its processes could write to D later (they would not be replicated),
 * but on many systems every host process is in such a namespace without ever touching D. A namespace that does
 * receive propagation (systemd's PrivateTmp & co., `--make-rslave`) sees tandem's mount.
 * - a loop device or a swap area backed by a file in D (the kernel writes those without any process fd).
 * Pure (`findHolders`) over a seam (`ProcSource`, fake in ./fake.ts): the real one reads /proc asynchronously and
 * never looks into D itself.
 *
 * Not visible here (README "File replication"): writes through the backing path P by root; file descriptors in
 * flight (SCM_RIGHTS) or registered with io_uring; a mount namespace with no process in it (kept by an nsfs bind);
 * a process that opens something in D between this check and the mount (milliseconds); kernel users other than loop
 * and swap (an NFS export of D by knfsd, for example); a later write from a namespace that was only logged.
 */
export interface ProcessView {
  pid: number;
  /** /proc/<pid>/comm */
  command: string;
  /** readlink of /proc/<pid>/cwd and /proc/<pid>/root; null when unreadable (gone, kernel thread) */
  cwd: string | null;
  root: string | null;
  /** readlink of each /proc/<pid>/fd/<n> */
  fds: [fd: number, target: string][];
  /** the file paths of its mappings (/proc/<pid>/maps) */
  maps: string[];
  /** readlink of /proc/<pid>/ns/mnt, e.g. `mnt:[4026531841]`; null when unreadable */
  mntNs: string | null;
}

export interface ProcSource {
  /** this process: excluded, and its mount namespace is "here" */
  self(): Promise<{ pid: number; mntNs: string | null }>;
  /** every process the system shows (unreadable details left empty) */
  processes(): Promise<ProcessView[]>;
  /** /proc/<pid>/mountinfo (the mounts of that process's namespace), null when unreadable */
  mountinfo(pid: number): Promise<string | null>;
  /** files backing loop devices and swap areas */
  kernelFiles(): Promise<{ what: string; file: string }[]>;
}

export interface Holder {
  pid: number;
  command: string;
  /** what it holds, one phrase each: `its current directory /srv/data`, `fd 4 on /srv/data/db` */
  holds: string[];
}

/** Another mount namespace that shows a replicated dir where tandem's mount over it will not propagate. */
export interface Exposure {
  mntNs: string;
  pids: number[];
  /** `/srv/data is visible at /lab/node1/root/srv/data` */
  where: string[];
}

export interface HolderDir {
  /** as configured */
  dir: string;
  /** canonical */
  path: string;
}

/** Link targets of deleted files end with ` (deleted)`; they still name where the file was. */
function linkPath(target: string | null): string | null {
  if (target === null || !target.startsWith('/')) return null; // socket:[…], pipe:[…], anon_inode:…
  return target.endsWith(' (deleted)') ? target.slice(0, -' (deleted)'.length) : target;
}

/**
 * The holders of `dirs` among `procs` (pure), and the other namespaces that show a dir without getting tandem's
 * mount (`exposures`: a process there that holds nothing in the dir now can still write to it later; reported, not
 * refused). `here`: this namespace's mounts; `nsMounts`: the mounts of every other namespace a process lives in.
 * A process in another namespace is judged by the paths at which its namespace shows the dirs.
 */
export function findHolders(
  dirs: HolderDir[], procs: ProcessView[], self: { pid: number; mntNs: string | null },
  here: MountEntry[], nsMounts: Map<string, MountEntry[]>, kernelFiles: { what: string; file: string }[] = [],
): { holders: Holder[]; exposures: Exposure[] } {
  const out = new Map<number, Holder>();
  const add = (p: { pid: number; command: string }, what: string) => {
    let h = out.get(p.pid);
    if (!h) out.set(p.pid, (h = { pid: p.pid, command: p.command, holds: [] }));
    if (!h.holds.includes(what)) h.holds.push(what);
  };
  const views = new Map<string, { inside: string[]; bypass: string[] }>();
  for (const [ns, mounts] of nsMounts) {
    const v = dirs.map((d) => viewOf(d, here, mounts));
    views.set(ns, { inside: v.flatMap((x) => x.inside), bypass: v.flatMap((x) => x.bypass) });
  }
  const exposures = new Map<string, Exposure>();
  for (const p of procs) {
    if (p.pid === self.pid) continue;
    const elsewhere = p.mntNs !== null && self.mntNs !== null && p.mntNs !== self.mntNs;
    const view = elsewhere ? views.get(p.mntNs!) : undefined;
    const inside = elsewhere ? view?.inside ?? [] : dirs.map((d) => d.path);
    const inDir = (t: string | null) => {
      const f = linkPath(t);
      return f !== null && inside.some((a) => isWithin(f, a));
    };
    if (inDir(p.cwd)) add(p, `its current directory ${p.cwd}`);
    if (inDir(p.root)) add(p, `its root directory ${p.root}`);
    for (const [fd, target] of p.fds) if (inDir(target)) add(p, `fd ${fd} on ${target}`);
    for (const m of new Set(p.maps)) if (inDir(m)) add(p, `a mapping of ${m}`);
    const h = out.get(p.pid);
    if (h && elsewhere) h.holds.push(`(in mount namespace ${p.mntNs})`);
    if (elsewhere && view && view.bypass.length > 0) {
      let e = exposures.get(p.mntNs!);
      if (!e) exposures.set(p.mntNs!, (e = { mntNs: p.mntNs!, pids: [], where: view.bypass }));
      e.pids.push(p.pid);
    }
  }
  const holders = [...out.values()].sort((a, b) => a.pid - b.pid);
  for (const k of kernelFiles) {
    if (dirs.some((d) => isWithin(k.file, d.path))) holders.push({ pid: 0, command: 'kernel', holds: [`${k.what} backed by ${k.file}`] });
  }
  return { holders, exposures: [...exposures.values()] };
}

/**
 * How another namespace's mounts (`there`) show D: `inside`, the paths in that namespace that lie in D; `bypass`, a
 * description of each mount that shows D, or a part of it, and will not get the mount made over D here
 * (`/srv/data is visible at /data`). A mount shows D when it has D's filesystem (`dev`) and its root is D or above
 * it (D is visible below its mount point), or below D (a part of D). It gets the mount over D only when it shows D
 * whole and is a peer (`shared:N`) or slave (`master:N`) of the peer group of the mount that holds D here.
 */
export function viewOf(d: HolderDir, here: MountEntry[], there: MountEntry[]): { inside: string[]; bypass: string[] } {
  const id = identityOf(here, d.path);
  const holder = underlyingMount(here, d.path);
  if (!id || !holder) return { inside: [], bypass: [] };
  const group = holder.optional.find((o) => o.startsWith('shared:'))?.slice('shared:'.length);
  const inside: string[] = [];
  const bypass: string[] = [];
  for (const e of there) {
    if (e.dev !== id.dev) continue;
    const whole = isWithin(id.root, e.root);
    if (!whole && !isWithin(e.root, id.root)) continue;
    const at = whole ? path.join(e.mountPoint, path.relative(e.root, id.root)) : e.mountPoint;
    inside.push(at);
    const propagates = whole && group !== undefined && e.optional.some((o) => o === `shared:${group}` || o === `master:${group}`);
    if (propagates) continue;
    bypass.push(whole ? `${d.path} is visible at ${at}` : `${path.join(d.path, path.relative(id.root, e.root))} is mounted at ${at}`);
  }
  return { inside, bypass };
}

/**
 * Reads /proc, then `findHolders`: throws a UserError naming every holder and what to do; logs each exposure (a
 * namespace that shows a dir without tandem's mount, where nothing holds the dir now).
 */
export async function checkNoHolders(dirs: HolderDir[], proc: ProcSource, here: MountEntry[], log: (l: string) => void = () => {}): Promise<void> {
  if (dirs.length === 0) return;
  const [self, procs, kernelFiles] = await Promise.all([proc.self(), proc.processes(), proc.kernelFiles()]);
  const nsMounts = new Map<string, MountEntry[]>();
  for (const p of procs) {
    if (!p.mntNs || p.mntNs === self.mntNs || nsMounts.has(p.mntNs)) continue;
    const text = await proc.mountinfo(p.pid);
    if (text !== null) nsMounts.set(p.mntNs, parseMountinfo(text));
  }
  const { holders, exposures } = findHolders(dirs, procs, self, here, nsMounts, kernelFiles);
  for (const e of exposures) {
    const pids = `${e.pids.slice(0, 5).join(', ')}${e.pids.length > 5 ? ` and ${e.pids.length - 5} more` : ''}`;
    log(`mount namespace ${e.mntNs} (processes ${pids}) does not get tandem's mount: ${e.where.join('; ')}; ` +
      'a write there would not be replicated (nothing there holds the directory now)');
  }
  if (holders.length === 0) return;
  const shown = holders.slice(0, 20).map((h) => `${h.pid ? `pid ${h.pid} (${h.command})` : 'the kernel'}: ` +
    `${h.holds.slice(0, 4).join('; ')}${h.holds.length > 4 ? `; and ${h.holds.length - 4} more` : ''}`);
  const more = holders.length > 20 ? ` (and ${holders.length - 20} more)` : '';
  throw new UserError(
    `replicated dir${dirs.length > 1 ? 's' : ''} ${dirs.map((d) => d.dir).join(', ')} ${dirs.length > 1 ? 'are' : 'is'} in use by processes that would ` +
    `keep writing to the real directory under tandem's mount, unreplicated: ${shown.join(' | ')}${more}.`,
    'Stop them before starting the module, or start them from the module\'s start script (start_prim) so that they ' +
    'use the directory through tandem. A loop device or swap file in the directory must be detached first.',
  );
}

/** The real /proc (Linux). Reads in batches; a process that ends meanwhile is skipped or left half-read. */
export const linuxProcSource: ProcSource = {
  async self() {
    return { pid: process.pid, mntNs: await fsp.readlink('/proc/self/ns/mnt').catch(() => null) };
  },
  async processes() {
    const pids = (await fsp.readdir('/proc')).filter((n) => /^\d+$/.test(n)).map(Number);
    const out: ProcessView[] = [];
    for (let i = 0; i < pids.length; i += 32) {
      const batch = await Promise.all(pids.slice(i, i + 32).map(readProcess));
      for (const p of batch) if (p) out.push(p);
    }
    return out;
  },
  mountinfo: (pid) => fsp.readFile(`/proc/${pid}/mountinfo`, 'utf8').catch(() => null),
  async kernelFiles() {
    const out: { what: string; file: string }[] = [];
    const loops = await fsp.readdir('/sys/block').catch(() => [] as string[]);
    for (const l of loops.filter((n) => n.startsWith('loop'))) {
      const f = await fsp.readFile(`/sys/block/${l}/loop/backing_file`, 'utf8').catch(() => null);
      if (f?.trim()) out.push({ what: `loop device /dev/${l}`, file: linkPath(f.trim()) ?? f.trim() });
    }
    const swaps = await fsp.readFile('/proc/swaps', 'utf8').catch(() => '');
    for (const line of swaps.split('\n').slice(1)) {
      const [file, type] = line.split(/\s+/);
      if (file && type === 'file') out.push({ what: 'a swap area', file: file.replace(/\\040/g, ' ') });
    }
    return out;
  },
};

async function readProcess(pid: number): Promise<ProcessView | null> {
  const base = `/proc/${pid}`;
  const link = (p: string) => fsp.readlink(p).catch(() => null);
  const command = await fsp.readFile(`${base}/comm`, 'utf8').then((s) => s.trim(), () => null);
  if (command === null) return null;
  const [cwd, root, mntNs, fdNames, maps] = await Promise.all([
    link(`${base}/cwd`), link(`${base}/root`), link(`${base}/ns/mnt`),
    fsp.readdir(`${base}/fd`).catch(() => [] as string[]),
    fsp.readFile(`${base}/maps`, 'utf8').catch(() => ''),
  ]);
  const fds: [number, string][] = [];
  const targets = await Promise.all(fdNames.map((n) => link(`${base}/fd/${n}`)));
  fdNames.forEach((n, i) => { if (targets[i]) fds.push([Number(n), targets[i]!]); });
  const mapped = new Set<string>();
  for (const line of maps.split('\n')) {
    const i = line.indexOf(' /'); // address perms offset dev inode, then the path (none for [heap], anonymous…)
    if (i > 0) mapped.add(line.slice(i + 1));
  }
  return { pid, command, cwd, root, fds, maps: [...mapped], mntNs };
}
