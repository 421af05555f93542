import fsp from 'node:fs/promises';
import type { NotReplicated } from '../../config/types.js';
import path from 'node:path';
import { BugError, ExternalError, UserError } from '../../errors.js';
import type { AsyncChangeSink, MountPassthroughOptions } from '../fuse/index.js';
import { checkIsDirectory, resolveDirs, type DirsRequest, type ReplicatedDir } from './dirs.js';
import { checkNoHolders } from './holders.js';
import { fuseConnection, isWithin, parseMountinfo, type MountEntry } from './mountinfo.js';
import { classifyDir, describeMounts, type DirState, type LayoutKind } from './state.js';
import { linuxSystem, type LayoutFuseMount, type LayoutSystem } from './system.js';

/**
 * The mount layout of a module's replicated directories (docs/design/replication.md, step 1). Root only.
 *
 * For each replicated dir D (its path never changes for the application) and P = `<runDir>/backing/<module>/<index>`:
 * - PRIM/ALONE (`enterPrimary`): `mount --bind D P` + `--make-private P`, then the FUSE passthrough serves P at D. The
 *   application works on D through FUSE (every change reaches the sink); the replication server works on P.
 * - SECOND (`enterSecondary`): the same private bind at P for the applier, and D bound onto itself read-only, so
 *   applications read D (EROFS on writes) while the applier writes P.
 * - `<runDir>/backing` is made mode 0700: nobody but root reaches P, so nothing bypasses the interception.
 *
 * Contract:
 * - Every mount and umount goes through the system seam's async `run` (`mount`/`umount --no-canonicalize`); this
 *   module never does synchronous I/O, and never any I/O on D while a FUSE mount is on it.
 * - `enterPrimary`/`enterSecondary` either complete for every dir or undo what they mounted and throw. They throw
 *   `UserError` before mounting anything when a dir is missing, not a directory, a symlink, the root, nested in another
 *   replicated dir, overlapping the run dir, a mount point of something else, holds mount points of something else
 *   below it, still carries tandem mounts from an earlier run (then: `recover` first), or is held by a process that
 *   would keep writing to the real directory under the mount (its cwd, root, an open file or mapping in it:
 *   holders.ts; the message names each pid, command and what it holds).
 * - `leave()` unmounts, per dir (last dir first), D's top mount (FUSE or read-only bind) and then P. It tolerates
 *   partial state (whatever is already gone is skipped), goes on through every dir when one step fails, and throws
 *   the first failure at the end. Calling it again returns the same promise.
 * - `recover` removes tandem's leftovers for the module from the mount table; see its comment.
 * - Callers serialize enter/leave/recover for one module. A process holds at most one layout per dir; `recover` and a
 *   second `enter*` for a dir this process holds throw `BugError`.
 */
export interface LayoutRequest extends DirsRequest {
  /** default: the real Linux system */
  system?: LayoutSystem;
  log?: (line: string) => void;
}

export interface PrimaryRequest extends LayoutRequest {
  /** the sink for one replicated dir (called with the dir as configured); undefined: no change is sent anywhere */
  sinkFor(dir: string): AsyncChangeSink | undefined;
  /** the `<notreplicated>` rules of one replicated dir (renames across them are refused with EXDEV) */
  notReplicatedFor?(dir: string): NotReplicated[];
  /** the dir's activity log (mountPassthrough `activity`), if any */
  activityFor?(dir: string): { dir: string; epoch: SharedArrayBuffer } | undefined;
  /** passed on to mountPassthrough for every dir (sinkTimeoutMs, maxWrite, cache settings, …) */
  fuse?: Omit<MountPassthroughOptions, 'backing' | 'mountpoint' | 'sink' | 'log'>;
}

export interface LayoutDir {
  /** as configured */
  dir: string;
  /** canonical path of D */
  path: string;
  /** P: the private bind of D, where the FUSE server or the applier works */
  backing: string;
}

export interface PrimaryLayout {
  readonly kind: 'primary';
  readonly dirs: ReadonlyArray<LayoutDir & { mount: LayoutFuseMount }>;
  describe(): Promise<DirStatus[]>;
  leave(): Promise<void>;
}

export interface SecondaryLayout {
  readonly kind: 'secondary';
  readonly dirs: ReadonlyArray<LayoutDir>;
  /** P for replicated dir D (as configured or canonical): where the applier writes. Throws BugError for another path. */
  writableRoot(dir: string): string;
  describe(): Promise<DirStatus[]>;
  leave(): Promise<void>;
}

/** One replicated dir as `tandem status` shows it. */
export interface DirStatus extends LayoutDir {
  layout: LayoutKind;
  /** e.g. `fuse on /data`, `bind of the dir on /run/tandem/…/backing/db/0` */
  mounts: string[];
  /** this process holds the layout (and, for primary, serves the FUSE mount) */
  servedHere: boolean;
}

export interface RecoveryStep {
  dir: string;
  did: string;
}

const UMOUNT_TIMEOUT_MS = 20_000;

/** canonical D paths whose layout this process holds */
const held = new Set<string>();

export async function enterPrimary(r: PrimaryRequest): Promise<PrimaryLayout> {
  const sys = r.system ?? linuxSystem;
  const log = r.log ?? (() => {});
  const dirs = await prepare(r, sys);
  const done: Array<LayoutDir & { mount: LayoutFuseMount }> = [];
  try {
    for (const d of dirs) {
      await bindBacking(sys, d);
      const notReplicated = r.notReplicatedFor?.(d.dir) ?? [];
      // scratchDir: the fuseblk loop device's image goes next to P, in tandem's private run directory
      const mount = await sys.mountPassthrough({
        scratchDir: path.dirname(d.backing), ...r.fuse, backing: d.backing, mountpoint: d.path, sink: r.sinkFor(d.dir), notReplicated, log,
        ...(r.activityFor?.(d.dir) ? { activity: r.activityFor(d.dir)! } : {}),
      });
      done.push({ dir: d.dir, path: d.path, backing: d.backing, mount });
      log(`primary layout for ${d.dir}: FUSE on ${d.path}, backing ${d.backing}`);
    }
  } catch (err) {
    await undo(sys, dirs, new Map(done.map((x) => [x.path, x.mount])), log).catch((e: Error) => log(`undoing the primary layout failed: ${e.message}`));
    throw err;
  }
  const fuse = new Map(done.map((x) => [x.path, x.mount]));
  let leaving: Promise<void> | null = null;
  return {
    kind: 'primary',
    dirs: done,
    describe: () => describeLayout(r),
    leave: () => (leaving ??= undo(sys, dirs, fuse, log)),
  };
}

export async function enterSecondary(r: LayoutRequest): Promise<SecondaryLayout> {
  const sys = r.system ?? linuxSystem;
  const log = r.log ?? (() => {});
  const dirs = await prepare(r, sys);
  try {
    for (const d of dirs) {
      await bindBacking(sys, d);
      await mountCmd(sys, ['--bind', d.path, d.path]);
      await mountCmd(sys, ['-o', 'remount,bind,ro', d.path]);
      log(`secondary layout for ${d.dir}: read-only on ${d.path}, writable at ${d.backing}`);
    }
  } catch (err) {
    await undo(sys, dirs, new Map(), log).catch((e: Error) => log(`undoing the secondary layout failed: ${e.message}`));
    throw err;
  }
  let leaving: Promise<void> | null = null;
  const list = dirs.map(({ dir, path: p, backing }) => ({ dir, path: p, backing }));
  return {
    kind: 'secondary',
    dirs: list,
    writableRoot(dir) {
      const d = list.find((x) => x.dir === dir || x.path === dir || x.path === path.resolve(dir));
      if (!d) throw new BugError(`${dir} is not a replicated dir of module ${r.module} (${list.map((x) => x.dir).join(', ')})`);
      return d.backing;
    },
    describe: () => describeLayout(r),
    leave: () => (leaving ??= undo(sys, dirs, new Map(), log)),
  };
}

/**
 * Removes every leftover of both layouts for the module, e.g. after the replication process or the daemon died:
 * - on each D, from the top down while the mount is tandem's: a FUSE passthrough (`fuse.tandem`, `fuseblk.tandem`) has its connection
 *   aborted through fusectl (freeing anything blocked on a dead or hung server) and is detached with `umount -l`; a
 *   bind of D onto itself is unmounted (`umount`, else `umount -l`);
 * - everything mounted on or below `<runDir>/backing/<module>` (tandem's private path, so all of it is tandem's, also
 *   for dirs no longer configured), deepest first.
 * A mount on D that is not tandem's is left alone and reported as kept. Reads /proc/self/mountinfo again after each
 * round until nothing changes, so it is idempotent: on a clean table it does nothing and returns [].
 * Call it only when no process serves the module's layout any more: a live FUSE server is cut off.
 */
export async function recover(r: LayoutRequest): Promise<RecoveryStep[]> {
  const sys = r.system ?? linuxSystem;
  const log = r.log ?? (() => {});
  const dirs = await resolveDirs(r);
  for (const d of dirs) {
    if (held.has(d.path)) throw new BugError(`recover() called for ${d.dir} while this process holds its layout; call leave() instead`);
  }
  const root = path.dirname(dirs[0]!.backing); // <runDir>/backing/<module>, canonical
  const steps: RecoveryStep[] = [];
  const kept = new Set<string>();
  for (let round = 0; ; round++) {
    const entries = await mountTable(sys);
    let changed = false;
    for (const d of dirs) {
      const s = classifyDir(entries, d.path, d.backing);
      for (const m of [...s.onDir].reverse()) {
        if (m.kind === 'foreign') {
          const line = `kept ${m.entry.fstype} ${m.entry.source} on ${d.path}: it is not tandem's`;
          if (!kept.has(line)) steps.push({ dir: d.dir, did: line });
          kept.add(line);
          break;
        }
        steps.push({ dir: d.dir, did: m.kind === 'fuse' ? await dropFuse(sys, d.path, m.entry, log) : await umount(sys, d.path, log) });
        changed = true;
      }
    }
    for (const e of deepestFirst(entries.filter((e) => isWithin(e.mountPoint, root)))) {
      const owner = dirs.find((d) => d.backing === e.mountPoint)?.dir ?? e.mountPoint;
      steps.push({ dir: owner, did: await umount(sys, e.mountPoint, log) });
      changed = true;
    }
    if (!changed) return steps;
    if (round === 4) {
      const left = dirs.flatMap((d) => describeMounts(classifyDir(entries, d.path, d.backing)));
      throw new ExternalError('umount', null, '', `tandem mounts of module ${r.module} are still there after recovery: ${left.join('; ')}`);
    }
  }
}

/** Which layout the mount table shows for each replicated dir of the module. Touches no replicated dir. */
export async function describeLayout(r: LayoutRequest): Promise<DirStatus[]> {
  const sys = r.system ?? linuxSystem;
  const dirs = await resolveDirs(r);
  const entries = await mountTable(sys);
  return dirs.map((d) => {
    const s = classifyDir(entries, d.path, d.backing);
    return { dir: d.dir, path: d.path, backing: d.backing, layout: s.layout, mounts: describeMounts(s), servedHere: held.has(d.path) };
  });
}

/** Resolves and checks every dir, then claims them for this process; nothing is mounted yet. */
async function prepare(r: LayoutRequest, sys: LayoutSystem): Promise<ReplicatedDir[]> {
  const dirs = await resolveDirs(r);
  const entries = await mountTable(sys);
  for (const d of dirs) {
    if (held.has(d.path)) throw new BugError(`this process already holds a layout for ${d.dir}; leave() it first`);
    const s = classifyDir(entries, d.path, d.backing);
    const foreign = s.onDir.find((m) => m.kind === 'foreign');
    if (foreign) {
      throw new UserError(`replicated dir ${d.dir} is itself a mount point (${foreign.entry.fstype} ${foreign.entry.source}). ` +
        `tandem mounts over the replicated dir; replicate a directory inside that filesystem instead, e.g. ${path.join(d.dir, 'data')}.`);
    }
    if (s.layout !== 'none') {
      throw new UserError(`replicated dir ${d.dir} still carries tandem mounts from an earlier run (${describeMounts(s).join('; ')}). ` +
        `Run the layout recovery first (the daemon does it when it starts the module), or by hand: umount -l ${d.path}; umount -l ${d.backing}.`);
    }
    const inside = entries.filter((e) => e.mountPoint !== d.path && isWithin(e.mountPoint, d.path));
    if (inside.length > 0) {
      throw new UserError(`replicated dir ${d.dir} has mount points inside it (${inside.map((e) => `${e.mountPoint}: ${e.fstype} ${e.source}`).join(', ')}), ` +
        'which the replication would not see. Unmount them, or replicate them as separate dirs and keep them out of this one.');
    }
    await checkIsDirectory(d);
  }
  await checkNoHolders(dirs, sys.proc, entries, r.log);
  for (const d of dirs) held.add(d.path);
  const root = path.dirname(dirs[0]!.backing);
  try {
    await fsp.mkdir(path.dirname(root), { recursive: true, mode: 0o700 });
    await fsp.chmod(path.dirname(root), 0o700);
    for (const d of dirs) await fsp.mkdir(d.backing, { recursive: true, mode: 0o700 });
  } catch (err) {
    for (const d of dirs) held.delete(d.path);
    throw new UserError(`cannot create the private mount points under ${root}: ${(err as Error).message}. Check TANDEM_RUN_DIR.`);
  }
  return dirs;
}

async function bindBacking(sys: LayoutSystem, d: ReplicatedDir): Promise<void> {
  await mountCmd(sys, ['--bind', d.path, d.backing]);
  await mountCmd(sys, ['--make-private', d.backing]);
}

/**
 * Takes the layout of `dirs` down, last dir first: the FUSE mount this process serves (its own unmount), then
 * whatever tandem mount the table still shows on D and P. Releases the dirs even when a step fails.
 */
async function undo(sys: LayoutSystem, dirs: ReplicatedDir[], fuse: Map<string, LayoutFuseMount>, log: (l: string) => void): Promise<void> {
  const errors: Error[] = [];
  for (const d of [...dirs].reverse()) {
    try {
      const m = fuse.get(d.path);
      if (m) {
        await m.unmount().catch((err: Error) => {
          log(`unmounting the FUSE mount on ${d.path} failed: ${err.message}; aborting it`);
          errors.push(err);
        });
      }
      const s = classifyDir(await mountTable(sys), d.path, d.backing);
      for (const x of [...s.onDir].reverse()) {
        if (x.kind === 'foreign') break;
        await (x.kind === 'fuse' ? dropFuse(sys, d.path, x.entry, log) : umount(sys, d.path, log));
      }
      for (const e of deepestFirst(s.onBacking)) await umount(sys, e.mountPoint, log);
    } catch (err) {
      log(`leaving the layout of ${d.dir} failed: ${(err as Error).message}`);
      errors.push(err as Error);
    } finally {
      held.delete(d.path);
    }
  }
  if (errors.length > 0) throw errors[0];
}

async function dropFuse(sys: LayoutSystem, p: string, e: MountEntry, log: (l: string) => void): Promise<string> {
  const connection = fuseConnection(e);
  await sys.abortFuseConnection(connection).catch((err: Error) => log(`fusectl abort of connection ${connection} failed: ${err.message}`));
  await sys.run('umount', ['-l', '--no-canonicalize', p], { timeoutMs: UMOUNT_TIMEOUT_MS });
  return `aborted FUSE connection ${connection} and detached ${e.fstype} from ${p}`;
}

/** `umount`, else `umount -l` (something still has files open there). */
async function umount(sys: LayoutSystem, p: string, log: (l: string) => void): Promise<string> {
  const r = await sys.run('umount', ['--no-canonicalize', p], { reject: false, timeoutMs: UMOUNT_TIMEOUT_MS });
  if (r.code === 0) return `unmounted ${p}`;
  log(`umount ${p} failed (${r.stderr.trim()}); detaching it with umount -l`);
  await sys.run('umount', ['-l', '--no-canonicalize', p], { timeoutMs: UMOUNT_TIMEOUT_MS });
  return `detached ${p} (umount -l)`;
}

async function mountCmd(sys: LayoutSystem, args: string[]): Promise<void> {
  await sys.run('mount', ['--no-canonicalize', ...args], { timeoutMs: UMOUNT_TIMEOUT_MS });
}

async function mountTable(sys: LayoutSystem): Promise<MountEntry[]> {
  return parseMountinfo(await sys.readMountinfo());
}

/** unmount order for mounts under one path: deeper mount points first, then the top of each stack first */
function deepestFirst(entries: MountEntry[]): MountEntry[] {
  return [...entries].reverse().sort((a, b) => b.mountPoint.length - a.mountPoint.length);
}
