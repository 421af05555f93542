import type { ManifestEntry } from '../reintegrate/plan.js';

/**
 * The compact form of a manifest page (the `manifest` answer's data when asked with `format: 'bin'`), instead of
 * per-entry JSON: a tree of a million entries is listed, sent and taken in without a JSON text per entry.
 *
 * One record per entry, little-endian, back to back:
 *   u8 type (0 file, 1 dir, 2 symlink, 3 other) | u8 flags (1: logged) | u32 mode | u32 uid | u32 gid |
 *   u48 size | i64 mtimeNs | u32 path bytes | path (UTF-8) | for a symlink: u32 target bytes | target (UTF-8)
 * The decoder checks every length and field against the buffer and refuses (`ManifestCodecError`) anything else:
 * a malformed page never becomes entries.
 */
export const FLAG_LOGGED = 1;
const TYPES: ManifestEntry['type'][] = ['file', 'dir', 'symlink', 'other'];
const TYPE_CODE: Record<ManifestEntry['type'], number> = { file: 0, dir: 1, symlink: 2, other: 3 };
const HEADER = 1 + 1 + 4 + 4 + 4 + 6 + 8 + 4;
const MAX_SIZE = 2 ** 48 - 1;

export class ManifestCodecError extends Error {}

/** Appends entries to a growing buffer; `bytes` is the encoded length so far. */
export class ManifestWriter {
  private buf = Buffer.allocUnsafe(64 << 10);
  private at = 0;
  count = 0;

  get bytes(): number {
    return this.at;
  }

  add(rel: string, e: ManifestEntry, flags = 0): void {
    const link = e.type === 'symlink' ? e.linkTarget ?? '' : null;
    const need = HEADER + 3 * rel.length + (link === null ? 0 : 4 + 3 * link.length);
    if (this.at + need > this.buf.length) {
      const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.at + need));
      this.buf.copy(next, 0, 0, this.at);
      this.buf = next;
    }
    const b = this.buf;
    let o = this.at;
    b[o++] = TYPE_CODE[e.type];
    b[o++] = flags;
    b.writeUInt32LE(e.mode >>> 0, o); o += 4;
    b.writeUInt32LE(e.uid >>> 0, o); o += 4;
    b.writeUInt32LE(e.gid >>> 0, o); o += 4;
    b.writeUIntLE(Math.min(e.size, MAX_SIZE), o, 6); o += 6;
    b.writeBigInt64LE(e.mtimeNs, o); o += 8;
    const n = b.write(rel, o + 4, 'utf8');
    b.writeUInt32LE(n, o); o += 4 + n;
    if (link !== null) {
      const m = b.write(link, o + 4, 'utf8');
      b.writeUInt32LE(m, o); o += 4 + m;
    }
    this.at = o;
    this.count++;
  }

  /** The encoded page (a copy sized to fit: the writer's buffer may be much larger). */
  finish(): Buffer {
    return Buffer.from(this.buf.subarray(0, this.at));
  }
}

/**
 * Calls `fn` for each of the `count` entries of an encoded page, in order; throws ManifestCodecError if the page does
 * not hold exactly `count` well-formed entries.
 */
export function decodeManifestPage(data: Buffer, count: number, fn: (rel: string, e: ManifestEntry, flags: number) => void): void {
  let o = 0;
  for (let k = 0; k < count; k++) {
    if (o + HEADER > data.length) throw new ManifestCodecError(`manifest page: entry ${k} of ${count} cut short`);
    const t = data[o]!;
    const flags = data[o + 1]!;
    const type = TYPES[t];
    if (type === undefined || (flags & ~FLAG_LOGGED) !== 0) throw new ManifestCodecError(`manifest page: entry ${k} has type ${t}, flags ${flags}`);
    const mode = data.readUInt32LE(o + 2);
    const uid = data.readUInt32LE(o + 6);
    const gid = data.readUInt32LE(o + 10);
    const size = data.readUIntLE(o + 14, 6);
    const mtimeNs = data.readBigInt64LE(o + 20);
    const n = data.readUInt32LE(o + 28);
    o += HEADER;
    if (n === 0 || o + n > data.length) throw new ManifestCodecError(`manifest page: entry ${k} has a path of ${n} bytes`);
    const rel = data.toString('utf8', o, o + n);
    o += n;
    const e: ManifestEntry = { type, size: type === 'file' ? size : 0, mtimeNs, mode, uid, gid };
    if (type === 'symlink') {
      if (o + 4 > data.length) throw new ManifestCodecError(`manifest page: symlink ${JSON.stringify(rel.slice(0, 200))} cut short`);
      const m = data.readUInt32LE(o);
      o += 4;
      if (o + m > data.length) throw new ManifestCodecError(`manifest page: symlink ${JSON.stringify(rel.slice(0, 200))} has a target of ${m} bytes`);
      e.linkTarget = data.toString('utf8', o, o + m);
      o += m;
    } else if (size !== 0 && type !== 'file') {
      throw new ManifestCodecError(`manifest page: ${type} ${JSON.stringify(rel.slice(0, 200))} has size ${size}`);
    }
    fn(rel, e, flags);
  }
  if (o !== data.length) throw new ManifestCodecError(`manifest page: ${data.length - o} bytes after its ${count} entries`);
}

/** Sets the `logged` flag, in place, of the page's entries whose path is in `logged`. */
export function markLogged(data: Buffer, count: number, logged: ReadonlySet<string>): void {
  let o = 0;
  for (let k = 0; k < count; k++) {
    const start = o;
    const n = data.readUInt32LE(o + 28);
    o += HEADER;
    const rel = data.toString('utf8', o, o + n);
    o += n;
    if (data[start] === TYPE_CODE.symlink) o += 4 + data.readUInt32LE(o);
    if (logged.has(rel)) data[start + 1] = data[start + 1]! | FLAG_LOGGED;
  }
}
