import { createHmac, timingSafeEqual } from 'node:crypto';
import { BugError } from '../errors.js';

/**
 * Heartbeat datagram codec. Pure: no I/O, no clock.
 *
 * Wire format (all integers big-endian), version 4:
 *
 *   offset    size  field
 *   0         4     magic "TDHB"
 *   4         1     version (4)
 *   5         1     F = sender name length (1..255)
 *   6         F     sender node name, UTF-8
 *   6+F       1     T = recipient name length (1..255)
 *   7+F       T     recipient node name, UTF-8: the one node this datagram is for
 *   7+F+T     4     boot: u32, the sender's daemon start counter (persisted by the sender, +1 per start)
 *   11+F+T    8     seq: u64, strictly increasing per datagram within one boot (one counter for every recipient)
 *   19+F+T    4     echo: u32, the recipient's boot counter as the sender last heard it (0: not heard yet)
 *   23+F+T    1     L = LAN name length (1..255)
 *   24+F+T    L     LAN name, UTF-8
 *   24+F+T+L  4     B = body length
 *   28+F+T+L  B     body: JSON, UTF-8 (the transport sends a JSON array of messages: src/platform/transport/udp.ts)
 *   end-32    32    HMAC-SHA256 over every byte before it, keyed with the heartbeat sub-key
 *
 * The recipient binds a datagram to one node: in a cluster of more than two nodes, a datagram node1 sent to node2
 * and replayed to node3 is refused by node3 (misdirected), even if node3's boot counter equals node2's.
 * A datagram is at most MAX_DATAGRAM bytes; the length fields must account for every byte exactly. Versions 1 and 2
 * (without `echo`, without the recipient) and 3 (this layout, one message per datagram) are refused as malformed:
 * every node must run the same tandem version.
 */
export const MAGIC = Buffer.from('TDHB', 'ascii');
export const VERSION = 4;
export const MAX_DATAGRAM = 8192;
export const MAC_BYTES = 32;
const MAX_NAME = 255;
/** magic + version + fromLen + toLen + boot + seq + echo + lanLen + bodyLen, with empty names and body */
const FIXED_BYTES = 4 + 1 + 1 + 1 + 4 + 8 + 4 + 1 + 4;
const U64_MAX = (1n << 64n) - 1n;

export interface HeartbeatFrame {
  from: string;
  /** the node this datagram is for */
  to: string;
  boot: number;
  seq: bigint;
  /** the receiver's boot counter as the sender last heard it; 0 when it has not heard the receiver (default 0) */
  echo?: number;
  lan: string;
  body: unknown;
}

export type DecodedFrame = Required<HeartbeatFrame>;

export type DecodeResult =
  | ({ ok: true } & DecodedFrame)
  | { ok: false; reason: 'malformed' | 'badMac' };

/**
 * Builds a datagram. `hbKey` is the heartbeat sub-key (`deriveKey(clusterKey, 'heartbeat')`), not the cluster key.
 * Throws BugError for caller mistakes: empty or over-long names, boot or echo outside u32, seq outside u64, a body that
 * JSON cannot represent, or a datagram over MAX_DATAGRAM.
 */
export function encode(hbKey: Buffer, frame: HeartbeatFrame): Buffer {
  return encodeJson(hbKey, frame, bodyJson(frame.body));
}

/** The JSON text of a body, as `encode` writes it; BugError when JSON cannot represent it. */
export function bodyJson(body: unknown): string {
  let json: string | undefined;
  try {
    json = JSON.stringify(body);
  } catch (e) {
    throw new BugError(`heartbeat encode: body is not representable as JSON: ${(e as Error).message}`);
  }
  if (json === undefined) throw new BugError('heartbeat encode: body is not representable as JSON');
  return json;
}

/** The bytes of a datagram besides its body: what a sender that packs bodies must leave for the frame. */
export function frameOverhead(from: string, to: string, lan: string): number {
  return FIXED_BYTES + Buffer.byteLength(from) + Buffer.byteLength(to) + Buffer.byteLength(lan) + MAC_BYTES;
}

/** `encode` with the body given as JSON text already (a sender that packs several bodies stringifies each once). */
export function encodeJson(hbKey: Buffer, frame: Omit<HeartbeatFrame, 'body'>, json: string): Buffer {
  const from = nameBytes('sender', frame.from);
  const to = nameBytes('recipient', frame.to);
  const lan = nameBytes('LAN', frame.lan);
  if (!Number.isInteger(frame.boot) || frame.boot < 0 || frame.boot > 0xffffffff) {
    throw new BugError(`heartbeat encode: boot ${frame.boot} is not a u32`);
  }
  if (typeof frame.seq !== 'bigint' || frame.seq < 0n || frame.seq > U64_MAX) {
    throw new BugError(`heartbeat encode: seq ${String(frame.seq)} is not a u64`);
  }
  const echo = frame.echo ?? 0;
  if (!Number.isInteger(echo) || echo < 0 || echo > 0xffffffff) throw new BugError(`heartbeat encode: echo ${echo} is not a u32`);
  const body = Buffer.from(json, 'utf8');
  const size = FIXED_BYTES + from.length + to.length + lan.length + body.length + MAC_BYTES;
  if (size > MAX_DATAGRAM) {
    throw new BugError(`heartbeat encode: datagram of ${size} bytes exceeds the ${MAX_DATAGRAM}-byte limit`);
  }
  const buf = Buffer.alloc(size);
  let o = 0;
  o += MAGIC.copy(buf, o);
  o = buf.writeUInt8(VERSION, o);
  o = buf.writeUInt8(from.length, o);
  o += from.copy(buf, o);
  o = buf.writeUInt8(to.length, o);
  o += to.copy(buf, o);
  o = buf.writeUInt32BE(frame.boot, o);
  o = buf.writeBigUInt64BE(frame.seq, o);
  o = buf.writeUInt32BE(echo, o);
  o = buf.writeUInt8(lan.length, o);
  o += lan.copy(buf, o);
  o = buf.writeUInt32BE(body.length, o);
  o += body.copy(buf, o);
  mac(hbKey, buf.subarray(0, o)).copy(buf, o);
  return buf;
}

function nameBytes(what: string, s: string): Buffer {
  const b = Buffer.from(s, 'utf8');
  if (b.length === 0 || b.length > MAX_NAME) {
    throw new BugError(`heartbeat encode: ${what} name must be 1..${MAX_NAME} bytes, got ${b.length}`);
  }
  return b;
}

function mac(hbKey: Buffer, data: Buffer): Buffer {
  return createHmac('sha256', hbKey).update(data).digest();
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Parses and authenticates a datagram. Never throws, whatever `buf` holds.
 * - `malformed`: wrong size, magic or version, or length fields that do not account for every byte exactly. Also
 *   for an authenticated datagram whose names or body are not valid UTF-8/JSON (a sender bug, not an attack).
 * - `badMac`: well-formed but the HMAC does not verify with `hbKey` (wrong cluster key, or tampered).
 * The body is parsed only after the MAC verifies, so unauthenticated bytes never reach the JSON parser.
 */
export function decode(hbKey: Buffer, buf: Buffer): DecodeResult {
  try {
    return decodeUnsafe(hbKey, buf);
  } catch {
    return MALFORMED; // defence in depth: every bound is checked below, this is not expected to run
  }
}

const MALFORMED = { ok: false, reason: 'malformed' } as const;
const BAD_MAC = { ok: false, reason: 'badMac' } as const;

function decodeUnsafe(hbKey: Buffer, buf: Buffer): DecodeResult {
  if (!Buffer.isBuffer(buf) || buf.length < FIXED_BYTES + 3 + MAC_BYTES || buf.length > MAX_DATAGRAM) return MALFORMED;
  if (!buf.subarray(0, 4).equals(MAGIC) || buf[4] !== VERSION) return MALFORMED;
  const end = buf.length - MAC_BYTES; // first byte of the MAC
  let o = 5;
  const fromLen = buf.readUInt8(o++);
  if (fromLen === 0 || o + fromLen + 1 > end) return MALFORMED;
  const fromRaw = buf.subarray(o, o + fromLen);
  o += fromLen;
  const toLen = buf.readUInt8(o++);
  if (toLen === 0 || o + toLen + 4 + 8 + 4 + 1 > end) return MALFORMED;
  const toRaw = buf.subarray(o, o + toLen);
  o += toLen;
  const boot = buf.readUInt32BE(o);
  o += 4;
  const seq = buf.readBigUInt64BE(o);
  o += 8;
  const echo = buf.readUInt32BE(o);
  o += 4;
  const lanLen = buf.readUInt8(o++);
  if (lanLen === 0 || o + lanLen + 4 > end) return MALFORMED;
  const lanRaw = buf.subarray(o, o + lanLen);
  o += lanLen;
  const bodyLen = buf.readUInt32BE(o);
  o += 4;
  if (o + bodyLen !== end) return MALFORMED;
  const bodyRaw = buf.subarray(o, end);

  const expected = mac(hbKey, buf.subarray(0, end));
  if (!timingSafeEqual(expected, buf.subarray(end))) return BAD_MAC;

  let from: string;
  let to: string;
  let lan: string;
  let body: unknown;
  try {
    from = utf8.decode(fromRaw);
    to = utf8.decode(toRaw);
    lan = utf8.decode(lanRaw);
    body = JSON.parse(utf8.decode(bodyRaw));
  } catch {
    return MALFORMED;
  }
  return { ok: true, from, to, boot, seq, echo, lan, body };
}

/**
 * Remembers, per (sender, LAN), the highest (boot, seq) accepted, and accepts only datagrams strictly newer:
 * a later boot, or the same boot with a higher seq. Duplicates, replays and datagrams reordered behind a newer one
 * are refused (fine for heartbeats: only the newest matters).
 *
 * Call `accept` only for authenticated datagrams from known senders: it records what it accepts, and its memory
 * grows with the number of distinct (sender, LAN) pairs.
 *
 * A sender whose boot counter went backwards (its persisted state was wiped) is refused until the receiver restarts
 * or `forget(from)` is called; the drop is counted as a replay.
 */
export class ReplayGuard {
  private readonly last = new Map<string, { boot: number; seq: bigint }>();

  accept(from: string, lan: string, boot: number, seq: bigint): boolean {
    const k = `${from}\u0000${lan}`;
    const prev = this.last.get(k);
    if (prev && (boot < prev.boot || (boot === prev.boot && seq <= prev.seq))) return false;
    this.last.set(k, { boot, seq });
    return true;
  }

  /** The highest (boot, seq) accepted from `from` on `lan`, if any. */
  lastAccepted(from: string, lan: string): { boot: number; seq: bigint } | undefined {
    return this.last.get(`${from}\u0000${lan}`);
  }

  /** Forgets everything about `from` (every LAN). */
  forget(from: string): void {
    for (const k of this.last.keys()) if (k.startsWith(`${from}\u0000`)) this.last.delete(k);
  }
}
