/** Bytes per page of pending data: the unit a partial write reads in from the durable copy, and the unit of memory. */
export const PAGE = 4096;

/**
 * Reads the durable copy of a file: bytes [off, off + len) into buf[bufOff…]; returns how many it read (short at the
 * durable end of file).
 */
export type DurableRead = (buf: Buffer, bufOff: number, len: number, off: number) => number;

/** What `PendingData.take` hands to the durable store, applied in this order. */
export interface DataPlan {
  /** cut the durable copy to this many bytes first (bytes past it were truncated away since the last sync) */
  keep: number;
  /** then write these pages at `index * PAGE`, each clipped to `size` */
  pages: Array<[index: number, page: Buffer]>;
  /** then set the file size */
  size: number;
}

/**
 * A file's data above its durable copy, like a page cache that never writes back by itself: the pages written since
 * the last data sync, the current size, and how much of the durable copy still belongs to the file.
 *
 * Invariants: `keep <= size`; a byte at or past `size` reads as zero (pages are zeroed past it); bytes below `keep`
 * that no page covers read from the durable copy, bytes at or past `keep` that no page covers read as zeros. A write
 * into a page not held yet reads that page's durable bytes in first (read-modify-write), so a page always holds the
 * whole current content of its range. Pure apart from the `DurableRead` callback it is given.
 */
export class PendingData {
  private readonly pages = new Map<number, Buffer>();
  /** durable bytes [0, keep) are still part of the file */
  keep: number;
  size: number;

  constructor(durableSize: number) {
    this.keep = durableSize;
    this.size = durableSize;
  }

  /** memory held for pending bytes */
  get bytes(): number {
    return this.pages.size * PAGE;
  }

  get pageCount(): number {
    return this.pages.size;
  }

  write(off: number, data: Buffer, durable: DurableRead): void {
    const end = off + data.length;
    for (let i = Math.floor(off / PAGE); i * PAGE < end; i++) {
      const start = i * PAGE;
      const from = Math.max(off, start);
      const to = Math.min(end, start + PAGE);
      const page = this.page(i, from === start && to === start + PAGE ? null : durable);
      data.copy(page, from - start, from - off, to - off);
    }
    if (end > this.size) this.size = end;
  }

  /** Sets the size: pages past it are dropped, the tail of its page zeroed; growing adds zeros. */
  truncate(size: number): void {
    if (size < this.size) {
      for (const i of [...this.pages.keys()]) if (i * PAGE >= size) this.pages.delete(i);
      const last = this.pages.get(Math.floor(size / PAGE));
      if (last) last.fill(0, size % PAGE);
      if (size < this.keep) this.keep = size;
    }
    this.size = size;
  }

  /** Reads [off, off + len) clipped to the size into out[outOff…]; returns the byte count. */
  read(off: number, len: number, out: Buffer, outOff: number, durable: DurableRead): number {
    const end = Math.min(off + len, this.size);
    if (end <= off) return 0;
    for (let p = off; p < end;) {
      const i = Math.floor(p / PAGE);
      const to = Math.min(end, (i + 1) * PAGE);
      const page = this.pages.get(i);
      if (page) page.copy(out, outOff + p - off, p - i * PAGE, to - i * PAGE);
      else readBase(durable, this.keep, out, outOff + p - off, p, to);
      p = to;
    }
    return end - off;
  }

  /** What makes the current content durable; the caller applies it to the durable copy and drops this object. */
  plan(): DataPlan {
    return { keep: this.keep, pages: [...this.pages.entries()].sort((a, b) => a[0] - b[0]), size: this.size };
  }

  /** The page held for index i; a new one is read in from the durable copy unless `durable` is null (overwritten whole). */
  private page(i: number, durable: DurableRead | null): Buffer {
    let page = this.pages.get(i);
    if (!page) {
      const start = i * PAGE;
      if (durable && start < this.size) {
        page = Buffer.allocUnsafe(PAGE);
        readBase(durable, this.keep, page, 0, start, start + PAGE);
      } else {
        page = durable ? Buffer.alloc(PAGE) : Buffer.allocUnsafe(PAGE);
      }
      this.pages.set(i, page);
    }
    return page;
  }
}

/** Durable bytes [from, to) that are still part of the file (below `keep`), zeros for the rest. */
function readBase(durable: DurableRead, keep: number, out: Buffer, outOff: number, from: number, to: number): void {
  const upto = Math.min(to, keep);
  let got = 0;
  if (upto > from) got = durable(out, outOff, upto - from, from);
  out.fill(0, outOff + Math.max(got, 0), outOff + (to - from));
}
