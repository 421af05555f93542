import fs from 'node:fs/promises';
import path from 'node:path';
import { BugError } from '../../errors.js';
import { writeDurably } from '../../daemon/state-store.js';
import { ExtentMap, type ExtentMapJson, type FsChange } from './extent-map.js';
import { fsChangeOf, type InterceptedChange } from './from-intercepted.js';

/**
 * The persisted change record of one module while it runs ALONE: every change since the generation its peer holds
 * (`baseGeneration`, a generation id `<n>@<node>`), so that the returning peer gets only what changed.
 *
 * TRUST MODEL. A record is trusted — reintegration may send only what it lists — only if ALL hold:
 *   1. it was started (`begin: true`) at a moment when the peer held exactly `baseGeneration` (the driver knows:
 *      PRIM losing its SECOND had every write acknowledged by it);
 *   2. every open since then was preceded by a CLEAN close: the `clean` marker is written durably at a clean close
 *      and removed durably at open, before any change is recorded. A crash (daemon, kernel, power) leaves no
 *      marker, and changes acknowledged to the application may be missing from the journal;
 *   3. the marker matches the journal it closed (same base generation, same last sequence number), so a journal
 *      truncated or replaced while the module was stopped is caught;
 *   4. the caller asks about the same base generation as the record's (the peer's generation);
 *   5. no write of the record failed while it was open, and no operation it cannot describe was reported
 *      (`invalidate`).
 * Once untrusted, a record stays untrusted (`trusted: false` is written to the snapshot at open, and no clean
 * marker is ever written for it) until the next `begin`. An untrusted record is useless: reintegration falls back
 * to comparing the trees (compare.ts).
 * NOT covered: writes to the replicated directories while the module is stopped (not through FUSE). As with
 * SafeKit's bitmaps, nobody may write there while the module is stopped; `--fullsync` is the remedy.
 *
 * Because a crash makes the record untrusted anyway, fsyncing each change is not needed for correctness; changes
 * are appended in batches (group commit every `groupCommitMs`, or `flush()`), which keeps `record()` synchronous
 * and cheap on the FUSE hot path. What makes a record trustworthy is the durable clean marker, written only after
 * the last batch is on disk.
 *
 * FORMAT (directory `dir`, one per module):
 *   snapshot.json  {"v":1,"baseGeneration":"3@node1","seq":N,"trusted":true,"map":ExtentMapJson}
 *                  written with writeDurably (temp + fsync + rename + dir fsync); the map after change number N.
 *   journal.jsonl  one line per change: {"s":<seq>,"c":<FsChange>}\n, seq strictly increasing from 1. Lines
 *                  with s <= snapshot.seq are already in the snapshot and skipped (a crash during compaction).
 *   clean          {"v":1,"baseGeneration":"…","seq":N}: present only while a trusted record is closed cleanly.
 * Compaction: when the journal exceeds `compactBytes` and twice the snapshot's size (so rewriting a large map is
 * amortized over as many bytes of journal), the current map is written as the snapshot, then the journal is
 * truncated.
 */
export interface ChangeRecordOptions {
  /** the generation the peer holds; the record lists the changes made since */
  baseGeneration: string;
  /** start a new, empty, trusted record now (the caller asserts the peer holds `baseGeneration` at this instant) */
  begin?: boolean;
  /** group commit period (ms); 0 = only on flush()/close() */
  groupCommitMs?: number;
  /** journal size that triggers compaction into the snapshot */
  compactBytes?: number;
}

interface SnapshotFile {
  v: 1;
  baseGeneration: string;
  seq: number;
  trusted: boolean;
  map: ExtentMapJson;
}

interface CleanMarker {
  v: 1;
  baseGeneration: string;
  seq: number;
}

export const SNAPSHOT_FILE = 'snapshot.json';
export const JOURNAL_FILE = 'journal.jsonl';
export const CLEAN_FILE = 'clean';

export class ChangeRecord {
  private pending: string[] = [];
  private timer: NodeJS.Timeout | null = null;
  private chain: Promise<void> = Promise.resolve();
  private closed = false;
  private failure: Error | null = null;

  private constructor(
    readonly dir: string,
    readonly baseGeneration: string,
    private map: ExtentMap,
    private seq: number,
    private isTrusted: boolean,
    private reason: string | null,
    private journal: fs.FileHandle,
    private journalBytes: number,
    private snapshotBytes: number,
    private readonly groupCommitMs: number,
    private readonly compactBytes: number,
  ) {}

  /**
   * Opens (or, with `begin`, starts) the record in `dir`. Returns only after the clean marker is durably removed:
   * from then on, a crash leaves the record untrusted. Never throws for an untrusted or unreadable record (that is
   * a domain outcome: `trusted()` is false and `untrustedReason()` says why); throws on I/O errors.
   */
  static async open(dir: string, opts: ChangeRecordOptions): Promise<ChangeRecord> {
    if (typeof opts.baseGeneration !== 'string' || opts.baseGeneration === '') throw new BugError('baseGeneration is required');
    await fs.mkdir(dir, { recursive: true });
    const groupCommitMs = opts.groupCommitMs ?? 50;
    const compactBytes = opts.compactBytes ?? 8 * 1024 * 1024;
    let map = new ExtentMap();
    let seq = 0;
    let trusted = true;
    let reason: string | null = null;
    if (!opts.begin) {
      const loaded = await load(dir, opts.baseGeneration);
      ({ map, seq, trusted, reason } = loaded);
    }
    if (opts.begin || !trusted) {
      // a new record, or an untrusted one: its content is worthless, keep only the (persisted) verdict
      if (!trusted) map = new ExtentMap();
      seq = 0;
      const snap: SnapshotFile = { v: 1, baseGeneration: opts.baseGeneration, seq, trusted, map: map.toJSON() };
      await fs.rm(path.join(dir, JOURNAL_FILE), { force: true }); // whatever it was, even not a regular file
      const empty = await fs.open(path.join(dir, JOURNAL_FILE), 'wx');
      try {
        await empty.sync();
      } finally {
        await empty.close();
      }
      await writeDurably(path.join(dir, SNAPSHOT_FILE), JSON.stringify(snap));
    }
    await fs.rm(path.join(dir, CLEAN_FILE), { force: true });
    await syncDir(dir);
    const journal = await fs.open(path.join(dir, JOURNAL_FILE), 'a');
    const bytes = (await journal.stat()).size;
    const snapBytes = (await fs.stat(path.join(dir, SNAPSHOT_FILE)).catch(() => ({ size: 0 }))).size;
    return new ChangeRecord(dir, opts.baseGeneration, map, seq, trusted, reason, journal, bytes, snapBytes, groupCommitMs, compactBytes);
  }

  /** The base generation of the record stored in `dir`, or null when there is none (or it is unreadable). */
  static async storedBase(dir: string): Promise<string | null> {
    try {
      const s = JSON.parse(await fs.readFile(path.join(dir, SNAPSHOT_FILE), 'utf8')) as { baseGeneration?: unknown };
      return typeof s.baseGeneration === 'string' ? s.baseGeneration : null;
    } catch {
      return null;
    }
  }

  /** Removes a record (after a completed reintegration: the peer holds everything). */
  static async discard(dir: string): Promise<void> {
    for (const f of [CLEAN_FILE, JOURNAL_FILE, SNAPSHOT_FILE]) await fs.rm(path.join(dir, f), { force: true });
    await syncDir(dir).catch((e: NodeJS.ErrnoException) => { if (e.code !== 'ENOENT') throw e; });
  }

  /**
   * Records one change that succeeded on the local data. Synchronous: the change is in the in-memory map at
   * return and on disk after the next group commit. Throws BugError after close or for a malformed change.
   */
  record(change: FsChange): void {
    if (this.closed) throw new BugError(`change record ${this.dir} is closed`);
    this.map.apply(change);
    this.seq++;
    if (!this.isTrusted) return; // nothing on disk can make it trusted again
    this.pending.push(`${JSON.stringify({ s: this.seq, c: change })}\n`);
    if (this.timer === null && this.groupCommitMs > 0) {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.flush().catch(() => undefined); // the failure is kept and reported by trusted()/flush()/close()
      }, this.groupCommitMs);
      this.timer.unref();
    }
  }

  /**
   * Records a change as the FUSE interception or the replication stream reports it (see from-intercepted.ts). An
   * operation the record cannot describe invalidates it (reintegration will compare) instead of failing the
   * application's system call.
   */
  recordIntercepted(change: InterceptedChange): void {
    const c = fsChangeOf(change);
    if (c === 'none') return;
    if (c === 'unknown') {
      if (this.closed) throw new BugError(`change record ${this.dir} is closed`);
      this.invalidate(`an operation the change record cannot describe (${change.op})`);
      return;
    }
    this.record(c);
  }

  /** Makes the record untrusted for good (until the next `begin`): no clean marker will be written. */
  invalidate(reason: string): void {
    if (!this.isTrusted) return;
    this.isTrusted = false;
    this.reason = reason;
    this.pending = [];
  }

  /** Resolves when every change recorded before the call is on disk (fsync'd). Rejects if a write failed. */
  flush(): Promise<void> {
    const run = this.chain.then(() => this.writeBatch());
    this.chain = run.catch(() => undefined);
    return run;
  }

  /**
   * Flushes and closes. With `clean`, writes the clean marker durably (only if everything before it was written):
   * the next open may trust the record. Without it, the next open will not (the same as a crash).
   */
  async close(opts: { clean: boolean }): Promise<void> {
    if (this.closed) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    try {
      await this.flush();
    } catch {
      // kept in this.failure: the record stays untrusted (no marker below), which is all a failure means
    }
    this.closed = true;
    await this.journal.close();
    if (opts.clean && this.trusted()) {
      const marker: CleanMarker = { v: 1, baseGeneration: this.baseGeneration, seq: this.seq };
      await writeDurably(path.join(this.dir, CLEAN_FILE), JSON.stringify(marker));
    }
  }

  /** True when the record lists every change since `baseGeneration` (see the trust model above). */
  trusted(): boolean {
    return this.isTrusted && this.failure === null;
  }

  untrustedReason(): string | null {
    if (this.failure) return `a write of the change record failed: ${this.failure.message}`;
    return this.isTrusted ? null : this.reason;
  }

  /** A copy of the changes recorded so far (including those not yet flushed). */
  snapshot(): ExtentMap {
    return this.map.clone();
  }

  private async writeBatch(): Promise<void> {
    if (this.failure) throw this.failure;
    if (this.pending.length === 0) return;
    const batch = this.pending.join('');
    this.pending = [];
    try {
      await this.journal.appendFile(batch);
      await this.journal.sync();
      this.journalBytes += Buffer.byteLength(batch);
      // amortized: a snapshot is rewritten only once the journal outgrows it (twice its size)
      if (this.journalBytes >= Math.max(this.compactBytes, 2 * this.snapshotBytes)) await this.compact();
    } catch (e) {
      this.failure = e instanceof Error ? e : new Error(String(e));
      this.isTrusted = false;
      throw this.failure;
    }
  }

  /** Writes the map as the snapshot, then empties the journal (lines it covers are skipped if the truncation is lost). */
  private async compact(): Promise<void> {
    const snap: SnapshotFile = { v: 1, baseGeneration: this.baseGeneration, seq: this.seq, trusted: true, map: this.map.toJSON() };
    // changes recorded during the awaits below carry seq > snap.seq and stay pending for the next batch
    this.pending = this.pending.filter((line) => (JSON.parse(line) as { s: number }).s > snap.seq);
    const text = JSON.stringify(snap);
    await writeDurably(path.join(this.dir, SNAPSHOT_FILE), text);
    this.snapshotBytes = Buffer.byteLength(text);
    await this.journal.truncate(0);
    await this.journal.sync();
    this.journalBytes = 0;
  }
}

async function load(dir: string, want: string): Promise<{ map: ExtentMap; seq: number; trusted: boolean; reason: string | null }> {
  const untrusted = (reason: string) => ({ map: new ExtentMap(), seq: 0, trusted: false, reason });
  const marker = await readJson<CleanMarker>(path.join(dir, CLEAN_FILE));
  const snap = await readJson<SnapshotFile>(path.join(dir, SNAPSHOT_FILE));
  if (snap === undefined) return untrusted('no change record (it was never started for this generation)');
  if (snap === null || snap.v !== 1 || typeof snap.seq !== 'number') return untrusted('the change record snapshot is unreadable');
  if (snap.baseGeneration !== want) {
    return untrusted(`the change record is relative to generation ${snap.baseGeneration}, the peer holds ${want}`);
  }
  if (!snap.trusted) return untrusted('the change record was already untrusted (an earlier crash or write failure)');
  if (marker === undefined) return untrusted('the change record was not closed cleanly (crash while ALONE)');
  if (marker === null || marker.v !== 1) return untrusted('the clean marker of the change record is unreadable');
  if (marker.baseGeneration !== snap.baseGeneration) return untrusted('the clean marker does not match the change record');
  let map: ExtentMap;
  try {
    map = ExtentMap.fromJSON(snap.map);
  } catch (e) {
    return untrusted(`the change record snapshot is invalid: ${(e as Error).message}`);
  }
  let seq = snap.seq;
  let text = '';
  const journalFile = path.join(dir, JOURNAL_FILE);
  const st = await fs.lstat(journalFile).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return null;
    throw e;
  });
  if (st && !st.isFile()) return untrusted('the change record journal is not a regular file');
  if (st) text = await fs.readFile(journalFile, 'utf8');
  const lines = text.split('\n');
  if (lines.pop() !== '') return untrusted('the change record journal ends with a partial line');
  for (const line of lines) {
    let rec: { s: number; c: FsChange };
    try {
      rec = JSON.parse(line) as { s: number; c: FsChange };
      if (rec.s <= snap.seq) continue;
      if (rec.s !== seq + 1) return untrusted(`the change record journal skips from ${seq} to ${rec.s}`);
      map.apply(rec.c);
    } catch (e) {
      return untrusted(`the change record journal is corrupt at change ${seq + 1}: ${(e as Error).message}`);
    }
    seq = rec.s;
  }
  if (marker.seq !== seq) return untrusted(`the change record journal ends at ${seq}, its clean marker says ${marker.seq}`);
  return { map, seq, trusted: true, reason: null };
}

/** undefined: absent; null: present but not JSON. */
async function readJson<T>(file: string): Promise<T | null | undefined> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  try {
    return JSON.parse(text) as T;
  } catch {
    return null;
  }
}

async function syncDir(dir: string): Promise<void> {
  const fh = await fs.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
