/**
 * The bucket the kernel's nftables `jhash` expression gives a packet, computed in TypeScript, so that tandem and its
 * tests can tell which node a client lands on. Pure.
 *
 * What the kernel does (net/netfilter/nft_hash.c, include/linux/jhash.h, lookup3 by Bob Jenkins):
 *   bucket = reciprocal_scale(jhash(register bytes, len, seed), modulus)      reciprocal_scale(h, m) = (h · m) >> 32
 * The register bytes are the expression's operands as nft loads them (`nft --debug=netlink` shows the layout):
 *   - `jhash ip saddr`             → 4 bytes, the address in network order                   (`jhash(reg 2, 4, seed)`)
 *   - `jhash ip saddr . th sport`  → 8 bytes: the address, then the port in network order, then 2 zero bytes: each
 *     field of a concatenation takes whole 32-bit registers, and a 2-byte payload load zeroes the rest of its
 *     register                                                                                (`jhash(reg 2, 8, seed)`)
 * Keys of at most 12 bytes go through jhash's tail only, which reads bytes one by one as a little-endian word, so
 * the result does not depend on the CPU's byte order. (Longer keys read full words in CPU order: this code reads them
 * little-endian, as on x86 and arm64.)
 *
 * test/unit/platform/farm-jhash.test.ts holds vectors the real kernel produced (test/lab/farm-filter.test.ts).
 */
import { ipv4ToInt } from '../../net/ipv4.js';
import { BUCKETS } from '../../engine/farm/buckets.js';

/**
 * The seed of every farm rule. Fixed, and the same on every node: without an explicit seed the kernel picks a random
 * one per rule, and two nodes would then both accept some clients (platform-findings §2). Changing it moves every
 * client at once on a rolling upgrade: do not.
 */
export const FARM_HASH_SEED = 0x74616e64; // "tand"

const JHASH_INITVAL = 0xdeadbeef;

/** The kernel's `jhash(key, key.length, initval)`, an unsigned 32-bit integer. */
export function jhash(key: Uint8Array, initval: number): number {
  let length = key.length;
  let a = (JHASH_INITVAL + length + initval) >>> 0;
  let b = a;
  let c = a;
  let k = 0;
  const le32 = (i: number) => (key[i]! | (key[i + 1]! << 8) | (key[i + 2]! << 16) | (key[i + 3]! << 24)) >>> 0;
  while (length > 12) {
    a = (a + le32(k)) >>> 0;
    b = (b + le32(k + 4)) >>> 0;
    c = (c + le32(k + 8)) >>> 0;
    [a, b, c] = mix(a, b, c);
    length -= 12;
    k += 12;
  }
  if (length === 0) return c;
  // the tail: byte i of the last block lands in word ⌊i/4⌋, at bit 8·(i mod 4)
  const words = [a, b, c];
  for (let i = 0; i < length; i++) words[i >> 2] = (words[i >> 2]! + key[k + i]! * 2 ** (8 * (i & 3))) >>> 0;
  return final(words[0]!, words[1]!, words[2]!);
}

/** `(h · modulus) >> 32` on 64 bits: the kernel's reciprocal_scale, which nft_hash uses instead of `h % modulus`. */
export function reciprocalScale(h: number, modulus: number): number {
  return Number((BigInt(h >>> 0) * BigInt(modulus)) >> 32n);
}

/**
 * The bucket (0 … BUCKETS-1) of a client for a farm rule: `on_addr` hashes its address, `on_port` its address and
 * source port, as the rules of ./ruleset.ts do with FARM_HASH_SEED.
 */
export function farmBucket(filter: 'on_addr' | 'on_port', saddr: string, sport?: number, seed = FARM_HASH_SEED): number {
  return reciprocalScale(jhash(farmHashKey(filter, saddr, sport), seed), BUCKETS);
}

/** The register bytes nft hashes for a farm rule (see the file comment). */
export function farmHashKey(filter: 'on_addr' | 'on_port', saddr: string, sport?: number): Uint8Array {
  const addr = ipv4ToInt(saddr);
  if (addr === null) throw new RangeError(`farmBucket: "${saddr}" is not an IPv4 address`);
  const key = new Uint8Array(filter === 'on_addr' ? 4 : 8);
  const view = new DataView(key.buffer);
  view.setUint32(0, addr); // DataView is big-endian by default: network order
  if (filter === 'on_port') {
    if (sport === undefined || !Number.isInteger(sport) || sport < 0 || sport > 0xffff) {
      throw new RangeError(`farmBucket: on_port needs a source port 0-65535, got ${String(sport)}`);
    }
    view.setUint16(4, sport);
  }
  return key;
}

function rol32(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

function mix(a: number, b: number, c: number): [number, number, number] {
  a = (a - c) >>> 0; a = (a ^ rol32(c, 4)) >>> 0; c = (c + b) >>> 0;
  b = (b - a) >>> 0; b = (b ^ rol32(a, 6)) >>> 0; a = (a + c) >>> 0;
  c = (c - b) >>> 0; c = (c ^ rol32(b, 8)) >>> 0; b = (b + a) >>> 0;
  a = (a - c) >>> 0; a = (a ^ rol32(c, 16)) >>> 0; c = (c + b) >>> 0;
  b = (b - a) >>> 0; b = (b ^ rol32(a, 19)) >>> 0; a = (a + c) >>> 0;
  c = (c - b) >>> 0; c = (c ^ rol32(b, 4)) >>> 0; b = (b + a) >>> 0;
  return [a, b, c];
}

function final(a: number, b: number, c: number): number {
  c = (c ^ b) >>> 0; c = (c - rol32(b, 14)) >>> 0;
  a = (a ^ c) >>> 0; a = (a - rol32(c, 11)) >>> 0;
  b = (b ^ a) >>> 0; b = (b - rol32(a, 25)) >>> 0;
  c = (c ^ b) >>> 0; c = (c - rol32(b, 16)) >>> 0;
  a = (a ^ c) >>> 0; a = (a - rol32(c, 4)) >>> 0;
  b = (b ^ a) >>> 0; b = (b - rol32(a, 14)) >>> 0;
  c = (c ^ b) >>> 0; c = (c - rol32(b, 24)) >>> 0;
  return c;
}
