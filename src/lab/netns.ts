import fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { ExternalError } from '../errors.js';

/**
 * Low-level Linux helpers for the lab: running `ip`, finding and killing the processes of a network namespace, and
 * the per-host "holder" process that owns a host's private mount namespace. Everything here is async (execa) except
 * small /proc reads.
 */

export interface RunResult {
  stdout: string;
  stderr: string;
  code: number;
  timedOut: boolean;
}

/** Runs a command on the real machine; throws ExternalError when it exits non-zero (unless `reject: false`). */
export async function run(
  file: string,
  args: string[],
  opts: { input?: string; reject?: boolean; timeoutMs?: number; env?: Record<string, string | undefined>; cwd?: string } = {},
): Promise<RunResult> {
  const r = await execa(file, args, {
    reject: false,
    input: opts.input,
    timeout: opts.timeoutMs,
    env: opts.env,
    cwd: opts.cwd,
    stripFinalNewline: false,
    ...(opts.input === undefined ? { stdin: 'ignore' as const } : {}),
  });
  const result: RunResult = {
    stdout: String(r.stdout ?? ''),
    stderr: String(r.stderr ?? ''),
    code: r.exitCode ?? -1,
    timedOut: r.timedOut === true,
  };
  if ((opts.reject ?? true) && (result.code !== 0 || result.timedOut)) {
    const cmd = [file, ...args].join(' ');
    throw new ExternalError(
      cmd,
      r.exitCode ?? null,
      result.stderr,
      result.timedOut ? `command timed out after ${opts.timeoutMs} ms: ${cmd}` : undefined,
    );
  }
  return result;
}

/** `ip` with arguments; throws ExternalError on failure. */
export async function ip(...args: string[]): Promise<string> {
  return (await run('ip', args)).stdout;
}

/** Names of the network namespaces mounted under /run/netns (what `ip netns list` shows). */
export function listNetns(): string[] {
  try {
    return fs.readdirSync('/run/netns');
  } catch {
    return [];
  }
}

/** Inode number of a named network namespace, or undefined when it does not exist. */
export function netnsInode(name: string): number | undefined {
  try {
    return fs.statSync(`/run/netns/${name}`).ino;
  } catch {
    return undefined;
  }
}

/** Inode number of a process's network namespace, or undefined when the process is gone (or a zombie). */
export function pidNetnsInode(pid: number): number | undefined {
  try {
    const m = /\[(\d+)\]/.exec(fs.readlinkSync(`/proc/${pid}/ns/net`));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

export function pidMntnsInode(pid: number): number | undefined {
  try {
    const m = /\[(\d+)\]/.exec(fs.readlinkSync(`/proc/${pid}/ns/mnt`));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

function allPids(): number[] {
  return fs
    .readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .map(Number);
}

/** Live (non-zombie) processes whose network namespace is one of `inodes`. */
export function pidsInNetns(inodes: Set<number>): number[] {
  if (inodes.size === 0) return [];
  return allPids().filter((pid) => {
    const ino = pidNetnsInode(pid);
    return ino !== undefined && inodes.has(ino);
  });
}

export function cmdline(pid: number): string[] | undefined {
  try {
    const raw = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return raw.length ? raw.replace(/\0$/, '').split('\0') : undefined;
  } catch {
    return undefined;
  }
}

export function environ(pid: number): string[] | undefined {
  try {
    return fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
  } catch {
    return undefined;
  }
}

export function isAlive(pid: number): boolean {
  return pidNetnsInode(pid) !== undefined;
}

export function killPid(pid: number, signal: NodeJS.Signals = 'SIGKILL'): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

/**
 * SIGKILLs every process in the given network namespaces except `except`, repeating until none is left (a process
 * may fork while we kill). Returns the PIDs still alive at the deadline (normally none).
 */
export async function killNetnsProcesses(inodes: Set<number>, except: Set<number> = new Set(), timeoutMs = 5000): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const pids = pidsInNetns(inodes).filter((p) => !except.has(p) && p !== process.pid);
    if (pids.length === 0) return [];
    if (Date.now() > deadline) return pids;
    for (const p of pids) killPid(p);
    await sleep(20);
  }
}

/** The argv[0] a holder runs under, so `ps` shows it and teardown can recognise it: `tandem-lab-holder:<ns>`. */
export function holderMarker(ns: string): string {
  return `tandem-lab-holder:${ns}`;
}

/**
 * Starts the holder of a host: a `sleep infinity` inside the namespace `ns` and inside a fresh mount namespace with
 * private propagation, detached so it outlives the creating process. Resolves with its PID once it has entered both
 * namespaces. Everything later run "in the host" joins this process's net and mount namespaces with nsenter.
 */
export async function startHolder(ns: string, timeoutMs = 5000): Promise<number> {
  const nsIno = netnsInode(ns);
  if (nsIno === undefined) throw new ExternalError(`ip netns exec ${ns} …`, null, `namespace ${ns} does not exist`);
  const child = execa(
    'ip',
    ['netns', 'exec', ns, 'unshare', '--mount', '--propagation', 'private', 'bash', '-c', `exec -a ${holderMarker(ns)} sleep infinity`],
    { detached: true, stdio: 'ignore', cleanup: false, reject: false },
  );
  child.catch(() => undefined);
  child.unref();
  const pid = child.pid;
  if (pid === undefined) throw new ExternalError(`ip netns exec ${ns} unshare …`, null, 'could not start the holder process');
  const ownMnt = pidMntnsInode(process.pid);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const args = cmdline(pid);
    if (args?.[0] === holderMarker(ns) && pidNetnsInode(pid) === nsIno && pidMntnsInode(pid) !== ownMnt) return pid;
    if (child.exitCode !== null || Date.now() > deadline) {
      killPid(pid);
      throw new ExternalError(`ip netns exec ${ns} unshare --mount --propagation private sleep infinity`, child.exitCode, 'the holder did not come up');
    }
    await sleep(10);
  }
}

/** Live holders whose namespace name starts with `nsPrefix` (e.g. `tl1a2b-`), found by their argv[0]. */
export function findHolders(nsPrefix: string): { pid: number; ns: string }[] {
  const marker = holderMarker(nsPrefix);
  const found: { pid: number; ns: string }[] = [];
  for (const pid of allPids()) {
    const a0 = cmdline(pid)?.[0];
    if (a0?.startsWith(marker)) found.push({ pid, ns: a0.slice('tandem-lab-holder:'.length) });
  }
  return found;
}

/** argv that runs `argv` inside the holder's network and mount namespaces, with `cwd` as working directory. */
export function nsenterArgv(holderPid: number, cwd: string, argv: string[]): string[] {
  return ['nsenter', '-t', String(holderPid), '-m', '-n', `--wdns=${cwd}`, '--', ...argv];
}

export interface MountEntry {
  id: number;
  mountPoint: string;
}

/** The mounts visible to `pid` (from /proc/<pid>/mountinfo). */
export function mounts(pid: number): MountEntry[] {
  const text = fs.readFileSync(`/proc/${pid}/mountinfo`, 'utf8');
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const f = line.split(' ');
      return { id: Number(f[0]), mountPoint: unescapeMount(f[4] ?? '') };
    });
}

function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}
