/**
 * The activity log of a replicated directory (DRBD's idea, per file): before the FUSE worker changes a file's data
 * in place (write, truncate, fallocate), the file's path is durable in a log on the node's own disk. After a crash
 * the node's copy may hold such a change that never reached the peer, and, an fdatasync persisting data but not
 * mtime, with the size and mtime it had before: reintegration block-compares every path in the log
 * (crash-markers.ts) instead of trusting size and mtime.
 *
 * The log is a directory of epochs, `<dir>/<epoch>` (one path per line, the epoch number in decimal). The epoch is
 * a counter shared with the main thread (a SharedArrayBuffer): the main thread moves it on at a sync point (every
 * change sent before it is durable on the peer) and deletes the files of epochs two behind, which only name files
 * whose changes are all on both nodes. The worker notes a path once per epoch: a write to an already noted path
 * costs a Set lookup; the first one an append and an fdatasync of the log file.
 *
 * Contract (worker side): `beforeChange(rel)` returns only when `rel` is durable in the current epoch's file; it
 * throws if it cannot (the change then fails with EIO: a change the log cannot cover is not made). Synchronous I/O
 * here is on the state directory, never on the mount.
 */
import fs from 'node:fs';
import path from 'node:path';

export function newEpochCounter(start = 1): SharedArrayBuffer {
  const sab = new SharedArrayBuffer(4);
  Atomics.store(new Int32Array(sab), 0, start);
  return sab;
}

export class ActivityLogWriter {
  private readonly epoch: Int32Array;
  private current = -1;
  private noted = new Set<string>();
  private fd: number | null = null;

  constructor(private readonly dir: string, epoch: SharedArrayBuffer) {
    this.epoch = new Int32Array(epoch);
    fs.mkdirSync(dir, { recursive: true });
  }

  beforeChange(rel: string): void {
    const e = Atomics.load(this.epoch, 0);
    if (e !== this.current) this.open(e);
    if (this.noted.has(rel)) return;
    fs.writeSync(this.fd!, `${JSON.stringify(rel)}\n`);
    fs.fdatasyncSync(this.fd!);
    this.noted.add(rel);
  }

  close(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }

  private open(e: number) {
    this.close();
    const fresh = !fs.existsSync(path.join(this.dir, String(e)));
    this.fd = fs.openSync(path.join(this.dir, String(e)), fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_APPEND, 0o600);
    if (fresh) {
      // the new file's entry in the directory must survive a crash too
      const d = fs.openSync(this.dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
      try {
        fs.fsyncSync(d);
      } finally {
        fs.closeSync(d);
      }
    }
    this.current = e;
    this.noted = new Set();
  }
}

/** Main-thread side: the epochs of one directory's log. */
export class ActivityLog {
  private readonly epoch: Int32Array;

  constructor(readonly dir: string, readonly counter: SharedArrayBuffer) {
    this.epoch = new Int32Array(counter);
  }

  /** A new epoch begins now; returns it. Paths noted from now on go to it. */
  advance(): number {
    return Atomics.add(this.epoch, 0, 1) + 1;
  }

  get current(): number {
    return Atomics.load(this.epoch, 0);
  }

  /** Deletes the files of epochs before `before` (their changes are known to be on both nodes). */
  async forget(before: number): Promise<void> {
    for (const f of await fs.promises.readdir(this.dir).catch(() => [] as string[])) {
      if (/^\d+$/.test(f) && Number(f) < before) await fs.promises.rm(path.join(this.dir, f), { force: true });
    }
  }
}

/**
 * The SECOND's activity log of one replicated directory (main thread, asynchronous): the applier notes a file here
 * before it changes its data in place in the copy. Until the copy's filesystem is synced, a power loss may drop that
 * change while keeping the file's size and mtime (or the mtime the primary restored), so after a crash every noted
 * file is block-compared, as on the primary. `durable()` is called once a syncfs of the copy made every change
 * applied so far durable: the epochs noted until then are forgotten and later notes go to a new one. The applier is
 * serial, so nothing is noted while a syncfs runs.
 */
export class AppliedActivityLog {
  private epoch = 0;
  private next = 1;
  private noted = new Set<string>();
  private fh: fs.promises.FileHandle | null = null;

  constructor(readonly dir: string) {}

  /** Resolves once `rel` is durable in the current epoch's file; rejects if it cannot be (the change is then not made). */
  async beforeChange(rel: string): Promise<void> {
    if (this.fh === null) await this.open();
    if (this.noted.has(rel)) return;
    await this.fh!.write(`${JSON.stringify(rel)}\n`);
    await this.fh!.datasync();
    this.noted.add(rel);
  }

  /** Every change applied so far is durable: forget what was noted (this epoch and every earlier one on disk). */
  async durable(): Promise<void> {
    const upTo = Math.max(this.epoch, await lastEpoch(this.dir));
    await this.close();
    for (const f of await fs.promises.readdir(this.dir).catch(() => [] as string[])) {
      if (/^\d+$/.test(f) && Number(f) <= upTo) await fs.promises.rm(path.join(this.dir, f), { force: true });
    }
    this.next = upTo + 1;
  }

  async close(): Promise<void> {
    const fh = this.fh;
    this.fh = null;
    this.epoch = 0;
    this.noted = new Set();
    await fh?.close().catch(() => {});
  }

  private async open() {
    await fs.promises.mkdir(this.dir, { recursive: true });
    const e = Math.max(this.next, (await lastEpoch(this.dir)) + 1);
    this.fh = await fs.promises.open(path.join(this.dir, String(e)), fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_APPEND, 0o600);
    // the new file's entry in the directory must survive a crash too
    const d = await fs.promises.open(this.dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
    try {
      await d.sync();
    } finally {
      await d.close();
    }
    this.epoch = e;
  }
}

/** Every path the log of `dir` names (all epochs): what may hold changes the peer never got. */
export async function loggedPaths(dir: string): Promise<Set<string>> {
  const out = new Set<string>();
  for (const f of await fs.promises.readdir(dir).catch(() => [] as string[])) {
    if (!/^\d+$/.test(f)) continue;
    const text = await fs.promises.readFile(path.join(dir, f), 'utf8').catch(() => '');
    for (const line of text.split('\n')) {
      if (!line) continue;
      try {
        const p = JSON.parse(line) as unknown;
        if (typeof p === 'string') out.add(p);
      } catch {
        // a torn last line (the crash came mid-append): its change was not made, nothing to compare
      }
    }
  }
  return out;
}

/** The highest epoch found in `dir` (0 when none): a restarted writer continues above it. */
export async function lastEpoch(dir: string): Promise<number> {
  let max = 0;
  for (const f of await fs.promises.readdir(dir).catch(() => [] as string[])) if (/^\d+$/.test(f)) max = Math.max(max, Number(f));
  return max;
}
