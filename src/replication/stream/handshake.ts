import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';
import { deriveKey } from '../../daemon/key.js';

/** Handshake and key schedule of the replication channel; the wire format is documented in ./channel.ts. */

export const PROTOCOL_VERSION = 1;
export const NONCE = 32;
export const MAGIC = Buffer.from('TDRP', 'ascii');
/** Server answers in hello_S. */
export const STATUS = { ok: 0, version: 1, unknownNode: 2, badAddress: 3, unknownModule: 4 } as const;

export interface Hello {
  version: number;
  role: number;
  status: number;
  nonce: Buffer;
  node: string;
  module: string;
  raw: Buffer;
}

export function encodeHello(h: { role: number; status: number; nonce: Buffer; node: string; module: string }): Buffer {
  const node = Buffer.from(h.node, 'utf8');
  const module = Buffer.from(h.module, 'utf8');
  return Buffer.concat([MAGIC, Buffer.from([PROTOCOL_VERSION, h.role, h.status]), h.nonce, Buffer.from([node.length]), node,
    Buffer.from([module.length]), module]);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

export function decodeHello(b: Buffer): Hello | null {
  try {
    if (b.length < 4 + 3 + NONCE + 2 || !b.subarray(0, 4).equals(MAGIC)) return null;
    let o = 4;
    const version = b[o++]!;
    const role = b[o++]!;
    const status = b[o++]!;
    const nonce = Buffer.from(b.subarray(o, o + NONCE));
    o += NONCE;
    const nl = b[o++]!;
    if (o + nl + 1 > b.length) return null;
    const node = utf8.decode(b.subarray(o, o + nl));
    o += nl;
    const ml = b[o++]!;
    if (o + ml !== b.length) return null;
    const module = utf8.decode(b.subarray(o, o + ml));
    return { version, role, status, nonce, node, module, raw: Buffer.from(b) };
  } catch {
    return null;
  }
}

export interface SessionKeys {
  c2s: Buffer;
  s2c: Buffer;
  macC: Buffer;
  macS: Buffer;
}

export function sessionKeys(clusterKey: Buffer, nonceC: Buffer, nonceS: Buffer, client: string, server: string, module: string): SessionKeys {
  const str8 = (s: string) => {
    const b = Buffer.from(s, 'utf8');
    return Buffer.concat([Buffer.from([b.length]), b]);
  };
  const info = Buffer.concat([Buffer.from('tandem repl v1\0', 'utf8'), str8(client), str8(server), str8(module)]);
  const okm = Buffer.from(hkdfSync('sha256', deriveKey(clusterKey, 'replication'), Buffer.concat([nonceC, nonceS]), info, 128));
  return { c2s: okm.subarray(0, 32), s2c: okm.subarray(32, 64), macC: okm.subarray(64, 96), macS: okm.subarray(96, 128) };
}

export function proof(macKey: Buffer, helloC: Buffer, helloS: Buffer): Buffer {
  return createHmac('sha256', macKey).update(helloC).update(helloS).digest();
}

export function timingSafeEqualLen(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

export function frameClear(body: Buffer): Buffer {
  const h = Buffer.alloc(4);
  h.writeUInt32BE(body.length);
  return Buffer.concat([h, body]);
}

export function iv(counter: bigint): Buffer {
  const b = Buffer.alloc(12);
  b.writeBigUInt64BE(counter, 4);
  return b;
}
