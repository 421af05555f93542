import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { ExternalError } from '../../errors.js';
import { cmdline, isAlive, killPid, mounts, run } from '../netns.js';
import type { LossyServerConfig } from './main.js';

/**
 * The lab's side of a lossy disk: start its server, cut its power, find leftovers. One server process per (node,
 * private dir), started detached so it outlives the process that drives the lab (a `tandem lab up` exits).
 *
 * A server runs with argv[0] `tandem-lab-lossy:<ns>:<index>` (`ns` the host's namespace, `index` the dir's index in
 * the spec's privateDirs), so teardown finds it without any state. Its files live in `<lab dir>/<node>/lossy/`:
 * `<index>.staging/` (durable inodes with no durable name), `<index>.sock` (control), `<index>.log`.
 */
const MARKER = 'tandem-lab-lossy:';

export function lossyMarker(ns: string, index: number): string {
  return `${MARKER}${ns}:${index}`;
}

export interface LossyDiskFiles {
  staging: string;
  socket: string;
  log: string;
}

export function lossyFiles(nodeDir: string, index: number): LossyDiskFiles {
  const base = path.join(nodeDir, 'lossy');
  return { staging: path.join(base, `${index}.staging`), socket: path.join(base, `${index}.sock`), log: path.join(base, `${index}.log`) };
}

export interface StartLossyDisk {
  /** argv[0] of the server (lossyMarker) */
  marker: string;
  holderPid: number;
  /** the private dir, where the host sees the disk */
  mountpoint: string;
  /** the durable tree on the host */
  backing: string;
  files: LossyDiskFiles;
  /** mount source `lossy:<name>` */
  name: string;
  pendingLimitBytes: number;
  timeoutMs?: number;
}

/**
 * Starts a server and resolves with its PID once its mount is served (the kernel's INIT answered). On failure the
 * server is killed and ExternalError carries the end of its log.
 */
export async function startLossyDisk(o: StartLossyDisk): Promise<number> {
  fs.mkdirSync(path.dirname(o.files.socket), { recursive: true });
  const cfg: LossyServerConfig = {
    backing: o.backing, staging: o.files.staging, mountpoint: o.mountpoint, holderPid: o.holderPid,
    socket: o.files.socket, name: o.name, pendingLimitBytes: o.pendingLimitBytes,
  };
  const main = fileURLToPath(new URL('./main.js', import.meta.url));
  const logFd = fs.openSync(o.files.log, 'a');
  const argv = ['-c', 'exec -a "$0" "$@"', o.marker, process.execPath, '--enable-source-maps', main, JSON.stringify(cfg)];
  const child = spawn('bash', argv, { detached: true, stdio: ['ignore', 'pipe', logFd] });
  fs.closeSync(logFd);
  const command = `${o.marker} (${main}) for ${o.mountpoint}`;
  const pid = child.pid;
  try {
    if (pid === undefined) throw new ExternalError(command, null, 'could not start the lossy disk server');
    const line = await new Promise<string>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`no answer within ${o.timeoutMs ?? 20_000} ms`)), o.timeoutMs ?? 20_000);
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        const nl = out.indexOf('\n');
        if (nl >= 0) {
          clearTimeout(timer);
          resolve(out.slice(0, nl));
        }
      });
      child.on('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`exited ${code ?? signal}`));
      });
      child.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    }).catch((err: Error) => `error: ${err.message}`);
    if (line !== 'ready') throw new ExternalError(command, null, tail(o.files.log), `lossy disk for ${o.mountpoint} did not start: ${line}`);
  } catch (err) {
    if (pid !== undefined) await killLossyServer(pid, o.marker);
    throw err;
  } finally {
    child.stdout!.destroy();
    child.removeAllListeners();
    child.unref();
  }
  return pid!;
}

/** SIGKILLs a server (only if it still runs under `marker`) and waits until it is gone. Its memory is lost. */
export async function killLossyServer(pid: number, marker: string, timeoutMs = 5000): Promise<boolean> {
  if (cmdline(pid)?.[0] !== marker) return true;
  killPid(pid, 'SIGKILL');
  const deadline = Date.now() + timeoutMs;
  while (isAlive(pid)) {
    if (Date.now() > deadline) return false;
    await sleep(10);
  }
  return true;
}

/** Detaches whatever lossy mount is left at `mountpoint` in the holder's mount namespace (after its server died). */
export async function dropLossyMount(holderPid: number, mountpoint: string): Promise<void> {
  while (mounts(holderPid).some((m) => m.mountPoint === mountpoint && isLossyMount(holderPid, m.id))) {
    const r = await run('nsenter', ['-t', String(holderPid), '-m', '--', 'umount', '-l', '--no-canonicalize', mountpoint], { reject: false, timeoutMs: 20_000 });
    if (r.code !== 0) throw new ExternalError(`[holder ${holderPid}] umount -l ${mountpoint}`, r.code, r.stderr);
  }
}

/** Mount IDs of the lossy disks in the holder's mount namespace. */
export function lossyMountIds(holderPid: number): number[] {
  return mounts(holderPid).filter((m) => isLossyMount(holderPid, m.id)).map((m) => m.id);
}

function isLossyMount(holderPid: number, id: number): boolean {
  try {
    const line = fs.readFileSync(`/proc/${holderPid}/mountinfo`, 'utf8').split('\n').find((l) => l.startsWith(`${id} `));
    return line !== undefined && / - fuse\.tandem-lossy /.test(line);
  } catch {
    return false;
  }
}

/** Live lossy disk servers whose host namespace starts with `nsPrefix` (e.g. `tl1a2b-`), found by argv[0]. */
export function findLossyServers(nsPrefix: string): { pid: number; ns: string; index: number }[] {
  const found: { pid: number; ns: string; index: number }[] = [];
  let pids: number[];
  try {
    pids = fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d)).map(Number);
  } catch {
    return [];
  }
  for (const pid of pids) {
    const a0 = cmdline(pid)?.[0];
    if (!a0?.startsWith(`${MARKER}${nsPrefix}`)) continue;
    const m = /^tandem-lab-lossy:(.+):(\d+)$/.exec(a0);
    if (m) found.push({ pid, ns: m[1]!, index: Number(m[2]) });
  }
  return found;
}

function tail(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').slice(-15).join('\n');
  } catch {
    return '';
  }
}
