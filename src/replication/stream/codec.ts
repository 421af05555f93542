import { BugError } from '../../errors.js';
import type { Change, Timespec } from './change.js';

/**
 * Replication protocol messages: the plaintext of one channel frame (./channel.ts encrypts and frames it).
 * Pure: no I/O, no clock. `decode` never throws: hostile bytes give `{ ok: false, error }`.
 *
 * Wire format, version 1. Integers big-endian. str8 = u8 length + UTF-8, str16 = u16 length + UTF-8 (strict UTF-8;
 * an invalid sequence is an error). u64 fields must be ≤ 2^53 - 1. Every message must be consumed exactly: trailing
 * bytes are an error.
 *
 *   0  u8  version (1)
 *   1  u8  type: 1 hello, 2 change, 3 sync, 4 ack, 5 nack, 6 heartbeat
 *   2  …   body:
 *
 *   hello      str8 module | str8 generation | u8 mode (0 none, 1 second) | u8 n | n × str16 replicated dir
 *   change     u64 seq | str16 dir | u8 sync (0 -, 1 data, 2 full) | u8 op | op body
 *   sync       u64 seq | str16 dir | u8 kind (0 fsync, 1 fdatasync, 2 syncfs: the whole copy) | str16 path
 *              (kind 2 came after version 1 first shipped: an older SECOND refuses it as malformed)
 *   ack        u64 upTo
 *   nack       u64 seq | u16 errno | str8 code | str16 message
 *   heartbeat  (empty)
 *
 *   op bodies (P = str16 relative path):
 *    1 write       P | u64 offset | u32 n | n bytes (n ≤ MAX_WRITE)
 *    2 truncate    P | u64 size
 *    3 create      P | u32 mode
 *    4 mknod       P | u32 mode | u64 rdev
 *    5 mkdir       P | u32 mode
 *    6 unlink      P
 *    7 rmdir       P
 *    8 rename      P from | P to | u32 flags
 *    9 symlink     str16 target | P
 *   10 link        P from | P to
 *   11 chmod       P | u32 mode
 *   12 chown       P | u32 uid | u32 gid (0xffffffff = -1, unchanged)
 *   13 utimens     P | time atime | time mtime; time = i64 sec | u32 nsec (< 10^9; omit = sec 0, nsec 0xffffffff)
 *   14 setxattr    P | str8 name | u32 n | n bytes (n ≤ XATTR_SIZE_MAX) | u32 flags
 *   15 removexattr P | str8 name
 *   16 fallocate   P | u32 mode | u64 offset | u64 length
 *
 * Protocol (./sender.ts, ./receiver.ts): PRIM sends `hello` first; SECOND answers `ack 0` (accepted) or `nack 0`
 * and closes. Then PRIM sends `change`/`sync` with seq 1, 2, 3… (per channel, no gaps); SECOND answers with
 * cumulative `ack upTo` and `nack seq` for a change it could not apply (and for every later one until it is reset).
 * Either side sends `heartbeat` when it has sent nothing for a while.
 */

export const CODEC_VERSION = 1;
/** the largest write payload in one `change` message; larger writes are split by the sender */
export const MAX_WRITE = 4 * 1024 * 1024;
export const XATTR_SIZE_MAX = 65536;
export const MAX_DIRS = 255;
const MAX_MESSAGE_TEXT = 1024;
const OMIT_NSEC = 0xffffffff;
const U32_MINUS_ONE = 0xffffffff;

export type Mode = 'none' | 'second';

/** A change on the wire: everything but `sync`, which is its own message. */
export type WireChange = Exclude<Change, { op: 'sync' }>;

export type Message =
  | { type: 'hello'; module: string; generation: string; mode: Mode; dirs: string[] }
  | { type: 'change'; seq: number; change: WireChange }
  | { type: 'sync'; seq: number; dir: string; path: string; datasync: boolean; syncfs?: boolean }
  | { type: 'ack'; upTo: number }
  | { type: 'nack'; seq: number; errno: number; code: string; message: string }
  | { type: 'heartbeat' }
  /**
   * Reintegration control (src/replication/files/ctl.ts, replicator.ts): a JSON body (an object) and optional raw bytes. Only
   * exchanged before the live stream starts on a channel.
   */
  | { type: 'ctl'; body: Record<string, unknown>; data?: Buffer };

export type DecodeResult = { ok: true; msg: Message } | { ok: false; error: string };

const TYPE = { hello: 1, change: 2, sync: 3, ack: 4, nack: 5, heartbeat: 6, ctl: 7 } as const;
/** bytes of a ctl message's JSON body */
export const MAX_CTL_JSON = 8 * 1024 * 1024;
const OPS = [
  'write', 'truncate', 'create', 'mknod', 'mkdir', 'unlink', 'rmdir', 'rename', 'symlink', 'link', 'chmod', 'chown',
  'utimens', 'setxattr', 'removexattr', 'fallocate',
] as const;
type WireOp = (typeof OPS)[number];
const SYNC_FLAG = [undefined, 'data', 'full'] as const;

// ── encode ───────────────────────────────────────────────────────────────────────────────────────────────────────

/**
 * Encodes a message. Throws BugError for a message the caller should never build (bad integers, over-long strings
 * or data, invalid Unicode); paths are not checked for meaning here (see ./paths.ts).
 */
export function encode(m: Message): Buffer {
  return Buffer.concat(encodeParts(m));
}

/**
 * The encoding of `m` as parts to be sent one after the other (Channel.send takes them as one frame): a large data
 * payload stays a part of its own, the small fields around it are joined, so that a MiB of file data is not copied
 * once more only to put a header in front of it.
 */
export function encodeParts(m: Message): Buffer[] {
  const w = new Writer();
  w.u8(CODEC_VERSION);
  w.u8(TYPE[m.type]);
  switch (m.type) {
    case 'hello':
      w.str8(m.module);
      w.str8(m.generation);
      w.u8(m.mode === 'none' ? 0 : m.mode === 'second' ? 1 : fail(`mode ${String(m.mode)}`));
      if (m.dirs.length > MAX_DIRS) fail(`${m.dirs.length} replicated dirs (max ${MAX_DIRS})`);
      w.u8(m.dirs.length);
      for (const d of m.dirs) w.str16(d);
      break;
    case 'change':
      w.u64(m.seq);
      encodeChange(w, m.change);
      break;
    case 'sync':
      w.u64(m.seq);
      w.str16(m.dir);
      w.u8(m.syncfs ? 2 : m.datasync ? 1 : 0);
      w.str16(m.path);
      break;
    case 'ack':
      w.u64(m.upTo);
      break;
    case 'nack':
      w.u64(m.seq);
      w.u16(m.errno);
      w.str8(m.code);
      w.str16(truncateText(m.message, MAX_MESSAGE_TEXT));
      break;
    case 'heartbeat':
      break;
    case 'ctl': {
      const json = Buffer.from(JSON.stringify(m.body), 'utf8');
      if (json.length > MAX_CTL_JSON) fail(`ctl body of ${json.length} bytes (max ${MAX_CTL_JSON})`);
      const data = m.data ?? Buffer.alloc(0);
      if (data.length > MAX_WRITE) fail(`ctl data of ${data.length} bytes (max ${MAX_WRITE})`);
      w.u32(json.length);
      w.bytes(json);
      w.u32(data.length);
      w.bytes(data);
      break;
    }
  }
  return w.finish();
}

function encodeChange(w: Writer, c: WireChange): void {
  w.str16(c.dir);
  const sync = SYNC_FLAG.indexOf(c.sync);
  if (sync < 0) fail(`sync flag ${String(c.sync)}`);
  w.u8(sync);
  const op = OPS.indexOf(c.op as WireOp);
  if (op < 0) fail(`op ${String(c.op)}`);
  w.u8(op + 1);
  switch (c.op) {
    case 'write':
      w.str16(c.path);
      w.u64(c.offset);
      if (!Buffer.isBuffer(c.data) || c.data.length > MAX_WRITE) fail(`write data must be a Buffer of at most ${MAX_WRITE} bytes`);
      w.u32(c.data.length);
      w.bytes(c.data);
      break;
    case 'truncate':
      w.str16(c.path);
      w.u64(c.size);
      break;
    case 'create':
    case 'mkdir':
    case 'chmod':
      w.str16(c.path);
      w.u32(c.mode);
      break;
    case 'mknod':
      w.str16(c.path);
      w.u32(c.mode);
      w.u64(c.rdev);
      break;
    case 'unlink':
    case 'rmdir':
      w.str16(c.path);
      break;
    case 'rename':
      w.str16(c.from);
      w.str16(c.to);
      w.u32(c.flags);
      break;
    case 'symlink':
      w.str16(c.target);
      w.str16(c.path);
      break;
    case 'link':
      w.str16(c.from);
      w.str16(c.to);
      break;
    case 'chown':
      w.str16(c.path);
      w.u32(c.uid === -1 ? U32_MINUS_ONE : c.uid);
      w.u32(c.gid === -1 ? U32_MINUS_ONE : c.gid);
      break;
    case 'utimens':
      w.str16(c.path);
      w.time(c.atime);
      w.time(c.mtime);
      break;
    case 'setxattr':
      w.str16(c.path);
      w.str8(c.name);
      if (!Buffer.isBuffer(c.value) || c.value.length > XATTR_SIZE_MAX) fail(`xattr value must be a Buffer of at most ${XATTR_SIZE_MAX} bytes`);
      w.u32(c.value.length);
      w.bytes(c.value);
      w.u32(c.flags);
      break;
    case 'removexattr':
      w.str16(c.path);
      w.str8(c.name);
      break;
    case 'fallocate':
      w.str16(c.path);
      w.u32(c.mode);
      w.u64(c.offset);
      w.u64(c.length);
      break;
  }
}

function fail(what: string): never {
  throw new BugError(`replication codec: cannot encode ${what}`);
}

function truncateText(s: string, maxBytes: number): string {
  if (Buffer.byteLength(s, 'utf8') <= maxBytes) return s;
  let out = s.slice(0, maxBytes);
  while (Buffer.byteLength(out, 'utf8') > maxBytes - 3) out = out.slice(0, -1);
  if (/[\ud800-\udbff]$/.test(out)) out = out.slice(0, -1);
  return `${out}…`;
}

/** payloads from this size on are not copied into the frame's other bytes (encodeParts) */
const SEPARATE_PART = 16 * 1024;

class Writer {
  private readonly parts: Buffer[] = [];

  u8(v: number) {
    this.int(v, 0xff, 1);
  }
  u16(v: number) {
    this.int(v, 0xffff, 2);
  }
  u32(v: number) {
    this.int(v, 0xffffffff, 4);
  }
  u64(v: number) {
    if (!Number.isSafeInteger(v) || v < 0) fail(`${String(v)} as a u64 (must be an integer 0..2^53-1)`);
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(BigInt(v));
    this.parts.push(b);
  }
  time(t: Timespec | null) {
    const b = Buffer.alloc(12);
    if (t === null) {
      b.writeUInt32BE(OMIT_NSEC, 8);
    } else {
      const [sec, nsec] = t;
      if (!Number.isSafeInteger(sec)) fail(`time seconds ${String(sec)}`);
      if (!Number.isInteger(nsec) || nsec < 0 || nsec >= 1e9) fail(`time nanoseconds ${String(nsec)}`);
      b.writeBigInt64BE(BigInt(sec));
      b.writeUInt32BE(nsec, 8);
    }
    this.parts.push(b);
  }
  str8(s: string) {
    this.str(s, 0xff, 1);
  }
  str16(s: string) {
    this.str(s, 0xffff, 2);
  }
  bytes(b: Buffer) {
    this.parts.push(b);
  }
  /** the parts, small ones joined (a part of SEPARATE_PART bytes or more is kept as it is) */
  finish(): Buffer[] {
    const out: Buffer[] = [];
    let run: Buffer[] = [];
    for (const p of this.parts) {
      if (p.length < SEPARATE_PART) {
        run.push(p);
        continue;
      }
      if (run.length > 0) out.push(run.length === 1 ? run[0]! : Buffer.concat(run));
      run = [];
      out.push(p);
    }
    if (run.length > 0 || out.length === 0) out.push(run.length === 1 ? run[0]! : Buffer.concat(run));
    return out;
  }

  private int(v: number, max: number, size: 1 | 2 | 4) {
    if (!Number.isInteger(v) || v < 0 || v > max) fail(`${String(v)} as a ${size * 8}-bit unsigned integer`);
    const b = Buffer.alloc(size);
    b.writeUIntBE(v, 0, size);
    this.parts.push(b);
  }
  private str(s: string, max: number, size: 1 | 2) {
    if (typeof s !== 'string') fail(`${typeof s} as a string`);
    const b = Buffer.from(s, 'utf8');
    if (b.toString('utf8') !== s) fail(`a string that is not valid Unicode: ${JSON.stringify(s.slice(0, 80))}`);
    if (b.length > max) fail(`a ${b.length}-byte string (max ${max})`);
    this.int(b.length, max, size);
    this.parts.push(b);
  }
}

// ── decode ───────────────────────────────────────────────────────────────────────────────────────────────────────

class Malformed extends Error {}

/** Decodes one message. Never throws: anything that is not exactly a valid version-1 message is `{ ok: false }`. */
export function decode(buf: Buffer): DecodeResult {
  try {
    if (!Buffer.isBuffer(buf)) return { ok: false, error: 'not a buffer' };
    const r = new Reader(buf);
    const version = r.u8('version');
    if (version !== CODEC_VERSION) throw new Malformed(`unsupported protocol version ${version} (this node speaks ${CODEC_VERSION})`);
    const msg = decodeBody(r, r.u8('type'));
    r.end();
    return { ok: true, msg };
  } catch (e) {
    return { ok: false, error: e instanceof Malformed ? e.message : `malformed message (${(e as Error)?.message ?? String(e)})` };
  }
}

function decodeBody(r: Reader, type: number): Message {
  switch (type) {
    case TYPE.hello: {
      const module = r.str8('module');
      const generation = r.str8('generation');
      const m = r.u8('mode');
      if (m > 1) throw new Malformed(`hello: unknown mode ${m}`);
      const n = r.u8('dir count');
      const dirs: string[] = [];
      for (let i = 0; i < n; i++) dirs.push(r.str16('dir'));
      return { type: 'hello', module, generation, mode: m === 0 ? 'none' : 'second', dirs };
    }
    case TYPE.change: {
      const seq = r.u64('seq');
      return { type: 'change', seq, change: decodeChange(r) };
    }
    case TYPE.sync: {
      const seq = r.u64('seq');
      const dir = r.str16('dir');
      const d = r.u8('sync kind');
      if (d > 2) throw new Malformed(`sync: kind must be 0, 1 or 2, got ${d}`);
      return { type: 'sync', seq, dir, datasync: d === 1, ...(d === 2 ? { syncfs: true } : {}), path: r.str16('path') };
    }
    case TYPE.ack:
      return { type: 'ack', upTo: r.u64('upTo') };
    case TYPE.nack:
      return { type: 'nack', seq: r.u64('seq'), errno: r.u16('errno'), code: r.str8('code'), message: r.str16('message') };
    case TYPE.heartbeat:
      return { type: 'heartbeat' };
    case TYPE.ctl: {
      const n = r.u32('ctl body length');
      if (n > MAX_CTL_JSON) throw new Malformed(`ctl: body of ${n} bytes (max ${MAX_CTL_JSON})`);
      const text = r.bytes(n, 'ctl body').toString('utf8');
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        throw new Malformed('ctl: body is not JSON');
      }
      if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new Malformed('ctl: body is not an object');
      const d = r.u32('ctl data length');
      if (d > MAX_WRITE) throw new Malformed(`ctl: data of ${d} bytes (max ${MAX_WRITE})`);
      const data = r.bytes(d, 'ctl data');
      return d > 0 ? { type: 'ctl', body: body as Record<string, unknown>, data } : { type: 'ctl', body: body as Record<string, unknown> };
    }
    default:
      throw new Malformed(`unknown message type ${type}`);
  }
}

function decodeChange(r: Reader): WireChange {
  const dir = r.str16('dir');
  const s = r.u8('sync flag');
  if (s >= SYNC_FLAG.length) throw new Malformed(`change: unknown sync flag ${s}`);
  const base = SYNC_FLAG[s] === undefined ? { dir } : { dir, sync: SYNC_FLAG[s] };
  const code = r.u8('op');
  const op = OPS[code - 1];
  if (op === undefined) throw new Malformed(`change: unknown op ${code}`);
  switch (op) {
    case 'write': {
      const path = r.str16('path');
      const offset = r.u64('offset');
      const n = r.u32('length');
      if (n > MAX_WRITE) throw new Malformed(`write: ${n} bytes (max ${MAX_WRITE})`);
      return { ...base, op, path, offset, data: r.bytes(n, 'data') };
    }
    case 'truncate':
      return { ...base, op, path: r.str16('path'), size: r.u64('size') };
    case 'create':
    case 'mkdir':
    case 'chmod':
      return { ...base, op, path: r.str16('path'), mode: r.u32('mode') };
    case 'mknod':
      return { ...base, op, path: r.str16('path'), mode: r.u32('mode'), rdev: r.u64('rdev') };
    case 'unlink':
    case 'rmdir':
      return { ...base, op, path: r.str16('path') };
    case 'rename':
      return { ...base, op, from: r.str16('from'), to: r.str16('to'), flags: r.u32('flags') };
    case 'symlink':
      return { ...base, op, target: r.str16('target'), path: r.str16('path') };
    case 'link':
      return { ...base, op, from: r.str16('from'), to: r.str16('to') };
    case 'chown': {
      const path = r.str16('path');
      const uid = r.u32('uid');
      const gid = r.u32('gid');
      return { ...base, op, path, uid: uid === U32_MINUS_ONE ? -1 : uid, gid: gid === U32_MINUS_ONE ? -1 : gid };
    }
    case 'utimens':
      return { ...base, op, path: r.str16('path'), atime: r.time('atime'), mtime: r.time('mtime') };
    case 'setxattr': {
      const path = r.str16('path');
      const name = r.str8('name');
      const n = r.u32('value length');
      if (n > XATTR_SIZE_MAX) throw new Malformed(`setxattr: ${n}-byte value (max ${XATTR_SIZE_MAX})`);
      return { ...base, op, path, name, value: r.bytes(n, 'value'), flags: r.u32('flags') };
    }
    case 'removexattr':
      return { ...base, op, path: r.str16('path'), name: r.str8('name') };
    case 'fallocate':
      return { ...base, op, path: r.str16('path'), mode: r.u32('mode'), offset: r.u64('offset'), length: r.u64('length') };
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

class Reader {
  private o = 0;
  constructor(private readonly b: Buffer) {}

  u8(what: string): number {
    this.need(1, what);
    return this.b.readUInt8(this.o++);
  }
  u16(what: string): number {
    this.need(2, what);
    const v = this.b.readUInt16BE(this.o);
    this.o += 2;
    return v;
  }
  u32(what: string): number {
    this.need(4, what);
    const v = this.b.readUInt32BE(this.o);
    this.o += 4;
    return v;
  }
  u64(what: string): number {
    this.need(8, what);
    const v = this.b.readBigUInt64BE(this.o);
    this.o += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new Malformed(`${what} ${v} is larger than 2^53 - 1`);
    return Number(v);
  }
  time(what: string): Timespec | null {
    this.need(12, what);
    const sec = this.b.readBigInt64BE(this.o);
    const nsec = this.b.readUInt32BE(this.o + 8);
    this.o += 12;
    if (nsec === OMIT_NSEC) {
      if (sec !== 0n) throw new Malformed(`${what}: omitted time with seconds ${sec}`);
      return null;
    }
    if (nsec >= 1e9) throw new Malformed(`${what}: ${nsec} nanoseconds`);
    if (sec > BigInt(Number.MAX_SAFE_INTEGER) || sec < BigInt(Number.MIN_SAFE_INTEGER)) throw new Malformed(`${what}: seconds out of range`);
    return [Number(sec), nsec];
  }
  str8(what: string): string {
    return this.text(this.u8(`${what} length`), what);
  }
  str16(what: string): string {
    return this.text(this.u16(`${what} length`), what);
  }
  bytes(n: number, what: string): Buffer {
    this.need(n, what);
    const v = Buffer.from(this.b.subarray(this.o, this.o + n)); // a copy: the frame buffer may be reused
    this.o += n;
    return v;
  }
  end(): void {
    if (this.o !== this.b.length) throw new Malformed(`${this.b.length - this.o} trailing bytes`);
  }

  private text(n: number, what: string): string {
    this.need(n, what);
    let s: string;
    try {
      s = utf8.decode(this.b.subarray(this.o, this.o + n));
    } catch {
      throw new Malformed(`${what} is not valid UTF-8`);
    }
    this.o += n;
    return s;
  }
  private need(n: number, what: string): void {
    if (this.b.length - this.o < n) throw new Malformed(`truncated message: ${what} needs ${n} bytes, ${this.b.length - this.o} left`);
  }
}
