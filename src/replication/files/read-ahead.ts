import type { ReadChunk } from '../reintegrate/apply-plan.js';

/** Reads `length` bytes at `offset` of `path` from the source (fewer at its end). */
export type FetchChunk = (path: string, offset: number, length: number) => Promise<Buffer>;

export interface ReadAheadLimits {
  /** fetches in flight at most */
  requests: number;
  /** no further fetch ahead once the fetches in flight ask for this many bytes (so at most this plus one chunk) */
  bytes: number;
}

const keyOf = (path: string, offset: number, length: number) => `${offset}:${length}:${path}`;

/**
 * Read-ahead along the sequence of chunks the applier announced it will read (`announce`), across files: fetches
 * are issued in the sequence's order, within `limits`, and each is taken by the `read` of the same chunk, so the
 * copy of many small files does not wait a round trip per file. A read of a chunk further along the sequence drops
 * the fetches before it (the applier skipped them: the file is gone at the source); a read of a chunk not yet
 * fetched scans the sequence forward to it. A read that is not in the sequence at all is fetched on its own, and
 * then nothing more is read ahead. Nothing outside the announced sequence is ever fetched. Data fetched ahead was
 * read from the source after the announcement, so within the same pass as the read that takes it.
 */
export class ReadAhead {
  private seq: Iterator<ReadChunk> | null = null;
  /** fetched ahead, in the sequence's order */
  private ahead: { key: string; length: number; data: Promise<Buffer> }[] = [];
  private aheadBytes = 0;

  constructor(private readonly fetch: FetchChunk, private readonly limits: ReadAheadLimits) {}

  /** The chunks the applier reads next, in order; replaces the earlier sequence and drops what was fetched for it. */
  announce(chunks: Iterator<ReadChunk>): void {
    this.seq = chunks;
    this.ahead = [];
    this.aheadBytes = 0;
    this.topUp();
  }

  read(path: string, offset: number, length: number): Promise<Buffer> {
    const key = keyOf(path, offset, length);
    const k = this.ahead.findIndex((a) => a.key === key);
    let data: Promise<Buffer> | null = null;
    if (k >= 0) {
      data = this.ahead[k]!.data;
      for (const a of this.ahead.splice(0, k + 1)) this.aheadBytes -= a.length;
    } else {
      this.ahead = [];
      this.aheadBytes = 0;
      // not fetched yet: further along the sequence (skipped chunks are passed over) or not in it at all
      for (let c = this.seq?.next(); c && !c.done; c = this.seq!.next()) {
        if (keyOf(c.value.path, c.value.offset, c.value.length) === key) break;
      }
    }
    const got = data ?? this.fetch(path, offset, length);
    this.topUp();
    return got;
  }

  private topUp(): void {
    while (this.seq && this.ahead.length < this.limits.requests) {
      if (this.ahead.length > 0 && this.aheadBytes >= this.limits.bytes) return;
      const c = this.seq.next();
      if (c.done) {
        this.seq = null;
        return;
      }
      const { path, offset, length } = c.value;
      const data = this.fetch(path, offset, length);
      data.catch(() => {}); // a fetch ahead nobody takes must not be an unhandled rejection; the taker sees the error
      this.ahead.push({ key: keyOf(path, offset, length), length, data });
      this.aheadBytes += length;
    }
  }
}
