import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { abortFuseConnection, isFuseType } from '../replication/fuse/mount.js';
import { findLossyServers, killLossyServer, lossyMarker } from './lossy/lab-disk.js';
import { defaultLabDir, GENERATED_PREFIX_NS } from './spec.js';
import {
  environ,
  findHolders,
  killNetnsProcesses,
  killPid,
  listNetns,
  netnsInode,
  pidNetnsInode,
  run,
} from './netns.js';
import {
  isMarkedCreated,
  listIndex,
  loadStateFromDir,
  removeIndex,
  stateFile,
  unmarkCreatedDir,
  type LabState,
} from './state.js';

/** What a teardown did not manage to remove. Empty `problems` means nothing of the lab is left. */
export interface DownReport {
  prefix: string;
  problems: string[];
}

export interface DownOptions {
  /** Keep the lab directory (node homes, daemon.out) for inspection. Default: env TANDEM_LAB_KEEP=1. */
  keepDir?: boolean;
}

/** A recorded lab, or leftover namespaces of a generated prefix that no index entry describes. */
export interface LabInfo {
  prefix: string;
  dir: string;
  recorded: boolean;
  createdAt?: string;
  ownerPid?: number;
  /** The lab's namespaces that exist now. */
  namespaces: string[];
}

/**
 * Removes everything of lab `prefix`, from its state when there is one and from what the machine shows otherwise:
 * its lossy disk servers first (found by argv[0]; a node process blocked on a disk then fails instead of hanging, and
 * the disks' mounts go with the holders' mount namespaces), every process in its namespaces (also namespaces whose
 * name was already deleted, reached through their holder), its holders, its namespaces, the mount points it created that no other lab uses, its index entry and (when it owns
 * it) its directory. Idempotent; never throws: whatever could not be removed is listed in `problems`.
 */
export async function teardownLab(prefix: string, dir: string, opts: DownOptions = {}): Promise<DownReport> {
  const problems: string[] = [];
  const attempt = async (what: string, fn: () => unknown) => {
    try {
      await fn();
    } catch (e) {
      problems.push(`${what}: ${(e as Error).message}`);
    }
  };
  let state: LabState | undefined;
  try {
    state = loadStateFromDir(dir);
  } catch {
    state = undefined;
  }
  const nsPrefix = `${prefix}-`;
  await attempt('kill lossy disk servers', async () => {
    const left: number[] = [];
    for (const s of findLossyServers(nsPrefix)) if (!(await killLossyServer(s.pid, lossyMarker(s.ns, s.index)))) left.push(s.pid);
    if (left.length) throw new Error(`still alive after SIGKILL: ${left.join(', ')}`);
  });
  const names = new Set(listNetns().filter((n) => n.startsWith(nsPrefix)));
  for (const n of state?.namespaces ?? []) if (netnsInode(n) !== undefined) names.add(n);

  const inodes = new Set<number>();
  for (const n of names) {
    const ino = netnsInode(n);
    if (ino !== undefined) inodes.add(ino);
  }
  const holders = findHolders(nsPrefix);
  for (const h of holders) {
    const ino = pidNetnsInode(h.pid);
    if (ino !== undefined) inodes.add(ino);
  }
  // A daemon whose namespace lost both its name and its holder is found by its recorded PID, checked by environment.
  for (const pid of Object.values(state?.daemons ?? {})) {
    if (environ(pid)?.some((v) => v.startsWith(`TANDEM_HOME=${dir}/`))) {
      const ino = pidNetnsInode(pid);
      if (ino !== undefined) inodes.add(ino);
      killPid(pid);
    }
  }
  // The FUSE mounts of tandem in the nodes' mount namespaces are aborted before their servers die: killed together,
  // the last process of a namespace unmounts what is left in it, and a fuseblk unmount waits for the server's answer
  // to DESTROY; when that last process is the server itself (a replication host), it waits for itself forever, in
  // D state, holding the superblock, and every later sync(2) on the machine hangs behind it.
  await attempt('abort FUSE connections', async () => {
    for (const h of holders) for (const c of tandemFuseConnections(h.pid)) await abortFuseConnection(c);
  });
  await attempt('kill processes', async () => {
    const left = await killNetnsProcesses(inodes);
    if (left.length) throw new Error(`still alive after SIGKILL: ${left.join(', ')}`);
  });
  for (const h of holders) killPid(h.pid);

  for (const n of names) {
    await attempt(`delete namespace ${n}`, async () => {
      for (let i = 0; ; i++) {
        const r = await run('ip', ['netns', 'del', n], { reject: false });
        if (r.code === 0 || netnsInode(n) === undefined) return;
        if (i >= 3) throw new Error(r.stderr.trim() || `ip netns del exited ${r.code}`);
        await sleep(100);
      }
    });
  }

  const privateDirs = state?.spec.privateDirs ?? [];
  await attempt('remove mount points', () => removeCreatedMountPoints(prefix, privateDirs, problems));

  await attempt('remove index entry', () => removeIndex(prefix));
  const keepDir = opts.keepDir ?? process.env.TANDEM_LAB_KEEP === '1';
  const ownsDir = state?.ownsDir ?? dir === defaultLabDir(prefix);
  await attempt(`remove ${dir}`, () => {
    if (ownsDir && !keepDir) fs.rmSync(dir, { recursive: true, force: true });
    else fs.rmSync(stateFile(dir), { force: true });
  });
  return { prefix, problems };
}

/**
 * Removes the private-dir mount points (and their parents) that some lab created on the real filesystem, deepest
 * first, when empty and used by no other recorded lab. Removing a directory that is a mount point in another mount
 * namespace would detach that mount, hence the check.
 */
function removeCreatedMountPoints(prefix: string, privateDirs: string[], problems: string[]): void {
  const candidates = new Set<string>();
  for (const d of privateDirs) {
    for (let p = d; p !== '/'; p = path.dirname(p)) candidates.add(p);
  }
  const usedByOthers = (dir: string) =>
    listIndex().some((e) => {
      if (e.prefix === prefix) return false;
      try {
        return loadStateFromDir(e.dir).spec.privateDirs.some((p) => p === dir || p.startsWith(`${dir}/`));
      } catch {
        return false;
      }
    });
  for (const dir of [...candidates].sort((a, b) => b.length - a.length)) {
    if (!isMarkedCreated(dir) || usedByOthers(dir)) continue;
    try {
      fs.rmdirSync(dir);
      unmarkCreatedDir(dir);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') unmarkCreatedDir(dir);
      else if (code !== 'ENOTEMPTY' && code !== 'EEXIST') problems.push(`remove mount point ${dir}: ${(e as Error).message}`);
    }
  }
}

function generatedPrefixesOnMachine(): string[] {
  const prefixes = new Set<string>();
  for (const n of listNetns()) if (GENERATED_PREFIX_NS.test(n)) prefixes.add(n.split('-')[0]!);
  for (const h of findHolders('tl')) if (GENERATED_PREFIX_NS.test(h.ns)) prefixes.add(h.ns.split('-')[0]!);
  for (const s of findLossyServers('tl')) if (GENERATED_PREFIX_NS.test(s.ns)) prefixes.add(s.ns.split('-')[0]!);
  return [...prefixes];
}

/** Every recorded lab, plus leftover namespaces of generated prefixes (`tlXXXX-…`) that no index entry describes. */
export function listLabs(): LabInfo[] {
  const netns = listNetns();
  const infos: LabInfo[] = listIndex().map((e) => ({
    prefix: e.prefix,
    dir: e.dir,
    recorded: true,
    createdAt: e.createdAt,
    ownerPid: e.ownerPid,
    namespaces: netns.filter((n) => n.startsWith(`${e.prefix}-`)),
  }));
  for (const prefix of generatedPrefixesOnMachine()) {
    if (infos.some((i) => i.prefix === prefix)) continue;
    infos.push({ prefix, dir: defaultLabDir(prefix), recorded: false, namespaces: netns.filter((n) => n.startsWith(`${prefix}-`)) });
  }
  return infos;
}

/**
 * Tears down every lab on the machine: the recorded ones and every namespace matching `tlXXXX-`. Meant for cleaning
 * up after crashed runs by hand; a test must not call it, since it also removes labs that other runs are using.
 */
export async function downAll(opts: DownOptions = {}): Promise<DownReport[]> {
  const reports: DownReport[] = [];
  for (const info of listLabs()) reports.push(await teardownLab(info.prefix, info.dir, opts));
  return reports;
}

/** The fusectl connection numbers (the superblock's device number) of tandem's FUSE mounts seen by process `pid`. */
export function tandemFuseConnections(pid: number): number[] {
  try {
    return tandemFuseConnectionsIn(fs.readFileSync(`/proc/${pid}/mountinfo`, 'utf8'));
  } catch {
    return [];
  }
}

/** The same, from the text of a mountinfo file. */
export function tandemFuseConnectionsIn(mountinfo: string): number[] {
  const out = new Set<number>();
  for (const line of mountinfo.split('\n')) {
    const f = line.split(' ');
    const fstype = f[f.indexOf('-') + 1] ?? '';
    const dev = /^(\d+):(\d+)$/.exec(f[2] ?? '');
    if (dev && isFuseType(fstype) && fstype.endsWith('.tandem')) out.add((Number(dev[1]) << 20) | Number(dev[2]));
  }
  return [...out];
}
