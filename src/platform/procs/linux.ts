import fs from 'node:fs';
import path from 'node:path';
import type { ProcId, ProcInfo, ProcTable, ProcWatch } from './types.js';

export interface LinuxProcTableOptions {
  /** where procfs is mounted; tests point it at a directory tree of their own. Default /proc */
  procRoot?: string;
  /**
   * List only processes in this process's network namespace (`<procRoot>/<pid>/ns/net` equal to `self/ns/net`).
   * The lab runs every node's daemon in its own network namespace but one pid namespace, so without this a node's
   * checker would count the other node's application. Default false: on a real host an application in a container
   * is still this node's.
   */
  ownNetnsOnly?: boolean;
  /** per-process reads a scan keeps in flight (libuv has 4 threads; a scan must not starve other I/O). Default 8 */
  concurrency?: number;
}

/**
 * ProcTable over procfs, with asynchronous reads only: reading `/proc/<pid>/cmdline` takes the target's mmap lock
 * and can block for as long as that process is stuck in a page fault (on a FUSE mount this daemon serves, say), so
 * nothing here reads synchronously on the event loop.
 *
 * - `list` reads `<pid>/stat` of every process (comm, state, start time) and `<pid>/cmdline` only of those whose comm
 *   `wants` accepts: one scan of 100 processes costs about 4 ms of CPU, most of it libuv round trips. A process whose
 *   files vanish between readdir and read (ENOENT, ESRCH) is skipped, as are zombies (state Z or X).
 * - `watch(p).alive()` opens `<pid>/stat` once and then re-reads that descriptor at offset 0: one pread on the
 *   thread pool (15–30 µs of CPU when hot; polled cold on an idle node, mostly the wake-up: bench/checkers.ts). Not
 *   a synchronous read, although cheaper: a stat read holds a reference on the target's memory map, and if the
 *   target exits meanwhile the reader's release may be the last and tear its address space down inside the
 *   reader's system call, which must not be the daemon's event loop. The descriptor stays bound to the process it was opened for: once that process is gone the read fails
 *   with ESRCH even if its pid was given to a new process, so a reused pid cannot pass. The start time is compared
 *   at the first read (the pid may have been reused between the scan and the open) and at every read after; state
 *   Z or X counts as dead.
 */
export class LinuxProcTable implements ProcTable {
  private readonly root: string;
  private readonly ownNetnsOnly: boolean;
  private readonly concurrency: number;
  private selfNetns: Promise<string | null> | null = null;

  constructor(opts: LinuxProcTableOptions = {}) {
    this.root = opts.procRoot ?? '/proc';
    this.ownNetnsOnly = opts.ownNetnsOnly ?? false;
    this.concurrency = Math.max(1, opts.concurrency ?? 8);
  }

  async list(wants?: (comm: string) => boolean): Promise<ProcInfo[]> {
    const names = await fs.promises.readdir(this.root);
    const pids = names.filter((n) => /^[1-9]\d*$/.test(n)).map(Number);
    const netns = this.ownNetnsOnly ? await this.ownNetns() : null;
    const out: ProcInfo[] = [];
    let next = 0;
    const worker = async () => {
      while (next < pids.length) {
        const p = await this.readProc(pids[next++]!, wants, netns);
        if (p) out.push(p);
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.concurrency, pids.length) }, worker));
    return out.sort((a, b) => a.pid - b.pid);
  }

  watch(p: ProcId): ProcWatch {
    return new StatWatch(path.join(this.root, String(p.pid), 'stat'), p.startTime);
  }

  private async readProc(pid: number, wants: ((comm: string) => boolean) | undefined, netns: string | null): Promise<ProcInfo | null> {
    const dir = path.join(this.root, String(pid));
    const text = await readOnce(path.join(dir, 'stat'), STAT_MAX);
    const st = text === null ? null : parseStat(text);
    if (!st || isDead(st.state)) return null;
    if (wants && !wants(st.comm)) return null;
    if (netns !== null && (await readlink(path.join(dir, 'ns', 'net'))) !== netns) return null;
    const cmdline = await readText(path.join(dir, 'cmdline'), CMDLINE_MAX);
    if (cmdline === null) return null;
    return { pid, startTime: st.startTime, comm: st.comm, argv: splitCmdline(cmdline) };
  }

  private ownNetns(): Promise<string | null> {
    this.selfNetns ??= readlink(path.join(this.root, 'self', 'ns', 'net'));
    return this.selfNetns;
  }
}

/** a stat line is well under 1 KiB up to field 22 (the rest may be cut) */
const STAT_MAX = 1024;
/** command lines longer than this are cut (the kernel's own limit for execve is far larger; matching needs less) */
const CMDLINE_MAX = 64 * 1024;

/** Fields of `/proc/<pid>/stat` the checkers use. comm is between the first '(' and the LAST ')': it may hold both. */
export function parseStat(text: string): { comm: string; state: string; startTime: number } | null {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < open) return null;
  const rest = text.slice(close + 2).split(' ');
  // rest[0] is field 3 (state), so field 22 (starttime) is rest[19]
  const startTime = Number(rest[19]);
  if (!rest[0] || !Number.isSafeInteger(startTime)) return null;
  return { comm: text.slice(open + 1, close), state: rest[0], startTime };
}

/** `/proc/<pid>/cmdline`: arguments separated and ended by NUL */
export function splitCmdline(raw: string): string[] {
  if (raw === '') return [];
  const parts = raw.split('\0');
  if (parts[parts.length - 1] === '') parts.pop();
  return parts;
}

function isDead(state: string): boolean {
  return state === 'Z' || state === 'X' || state === 'x';
}

class StatWatch implements ProcWatch {
  private fd: number | null = null;
  private dead = false;
  private inFlight: Promise<boolean> | null = null;
  private readonly buf = Buffer.allocUnsafe(STAT_MAX);

  constructor(private readonly file: string, private readonly startTime: number) {}

  alive(): Promise<boolean> {
    if (this.dead) return Promise.resolve(false);
    this.inFlight ??= this.check().finally(() => {
      this.inFlight = null;
      if (this.dead) this.release();
    });
    return this.inFlight;
  }

  close(): void {
    this.dead = true;
    if (!this.inFlight) this.release();
  }

  private async check(): Promise<boolean> {
    if (this.fd === null) {
      const fd = await openFd(this.file);
      if (fd === null) return this.die();
      this.fd = fd;
      if (this.dead) return false; // closed while opening: the finally releases fd
    }
    const n = await pread(this.fd, this.buf);
    const st = n === null ? null : parseStat(this.buf.toString('utf8', 0, n));
    if (!st || isDead(st.state) || st.startTime !== this.startTime) return this.die();
    return true;
  }

  private die(): false {
    this.dead = true;
    return false;
  }

  /** only when no read is in flight: a closed descriptor number may be reused by the next open */
  private release(): void {
    if (this.fd === null) return;
    fs.close(this.fd, () => {});
    this.fd = null;
  }
}

// Callback-style fs: a third of the CPU of fs.promises.readFile for these tiny files (no FileHandle, no fstat).

function openFd(file: string): Promise<number | null> {
  return new Promise((resolve) => fs.open(file, 'r', (err, fd) => resolve(err ? null : fd)));
}

function pread(fd: number, buf: Buffer, position = 0): Promise<number | null> {
  return new Promise((resolve) => fs.read(fd, buf, 0, buf.length, position, (err, n) => resolve(err ? null : n)));
}

function closeFd(fd: number): Promise<void> {
  return new Promise((resolve) => fs.close(fd, () => resolve()));
}

/** One read of up to `size` bytes: a procfs stat file comes whole in the first read. Null when it cannot be read. */
async function readOnce(file: string, size: number): Promise<string | null> {
  const fd = await openFd(file);
  if (fd === null) return null;
  const buf = Buffer.allocUnsafe(size);
  const n = await pread(fd, buf);
  await closeFd(fd);
  return n === null ? null : buf.toString('utf8', 0, n);
}

/** The whole file (up to `max` bytes) as UTF-8, or null when it cannot be opened or read (the process vanished). */
async function readText(file: string, max: number): Promise<string | null> {
  const fd = await openFd(file);
  if (fd === null) return null;
  try {
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const buf = Buffer.allocUnsafe(Math.min(4096, max - total));
      if (buf.length === 0) break;
      const n = await pread(fd, buf, total);
      if (n === null) return null;
      if (n === 0) break;
      chunks.push(buf.subarray(0, n));
      total += n;
    }
    return Buffer.concat(chunks, total).toString('utf8');
  } finally {
    await closeFd(fd);
  }
}

function readlink(file: string): Promise<string | null> {
  return new Promise((resolve) => fs.readlink(file, (err, target) => resolve(err ? null : target)));
}
