import { ReplicationError } from './errors.js';

/**
 * Splits a byte stream into u32-length-prefixed frames. A length over `max` (or, for data frames, under the tag size)
 * throws before any byte of that frame is kept beyond what already arrived.
 */
export class FrameReader {
  private chunks: Buffer[] = [];
  private size = 0;
  constructor(public max: number, private readonly min = 0) {}

  push(c: Buffer): void {
    this.chunks.push(c);
    this.size += c.length;
    if (this.size >= 4) this.peekLength(); // reject an oversized length as soon as its header is here
  }

  next(): Buffer | null {
    if (this.size < 4) return null;
    const len = this.peekLength();
    if (this.size < 4 + len) return null;
    const all = this.take(4 + len);
    return all.subarray(4);
  }

  /** everything still buffered (bytes after the handshake) */
  drain(): Buffer {
    const b = Buffer.concat(this.chunks);
    this.chunks = [];
    this.size = 0;
    return b;
  }

  private peekLength(): number {
    if (this.chunks[0]!.length < 4) this.chunks = [Buffer.concat(this.chunks)];
    const len = this.chunks[0]!.readUInt32BE(0);
    if (len > this.max) {
      throw new ReplicationError('protocol', `a ${len}-byte frame announced, the limit is ${this.max}; channel closed`);
    }
    if (len < this.min) throw new ReplicationError('protocol', `a ${len}-byte frame is shorter than its ${this.min}-byte tag; channel closed`);
    return len;
  }

  private take(n: number): Buffer {
    let out: Buffer;
    if (this.chunks[0]!.length >= n) {
      out = this.chunks[0]!.subarray(0, n);
      const rest = this.chunks[0]!.subarray(n);
      if (rest.length > 0) this.chunks[0] = rest;
      else this.chunks.shift();
    } else {
      const parts: Buffer[] = [];
      let need = n;
      while (need > 0) {
        const c = this.chunks[0]!;
        if (c.length <= need) {
          parts.push(c);
          this.chunks.shift();
          need -= c.length;
        } else {
          parts.push(c.subarray(0, need));
          this.chunks[0] = c.subarray(need);
          need = 0;
        }
      }
      out = Buffer.concat(parts, n);
    }
    this.size -= n;
    return out;
  }
}
