/**
 * Helpers for tests of `tandem snapshot`: an archive's members, and the check that the cluster key is in none of
 * them in any form tandem stores it in or derives from it.
 */
import fs from 'node:fs';
import zlib from 'node:zlib';
import * as tar from 'tar';
import * as assert from 'uvu/assert';
import { deriveKey } from '../../src/daemon/key.js';

/** Every regular file of the archive by name (without the top directory), decompressed. */
export async function archiveMembers(file: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  const pending: Promise<void>[] = [];
  await tar.t({
    file,
    onReadEntry: (e) => {
      const chunks: Buffer[] = [];
      pending.push(new Promise((resolve) => {
        e.on('data', (c: Buffer) => chunks.push(c));
        e.on('end', () => {
          if (e.type === 'File') out.set(e.path.split('/').slice(1).join('/'), Buffer.concat(chunks));
          resolve();
        });
      }));
    },
  });
  await Promise.all(pending);
  return out;
}

/**
 * The forms of the key that must never be in a snapshot: cluster.key as genkey writes it (hex + newline, and the hex
 * the daemon parses), and the key and each HKDF sub-key the daemon derives (heartbeat, control, replication) raw,
 * in hex (both cases), base64 (padded and not) and base64url. Written out here, not taken from the product.
 */
export function keyForms(key: Buffer): { what: string; bytes: Buffer }[] {
  const out: { what: string; bytes: Buffer }[] = [{ what: 'cluster.key file', bytes: Buffer.from(`${key.toString('hex')}\n`) }];
  const keys: [string, Buffer][] = [['key', key], ...(['heartbeat', 'control', 'replication'] as const).map((p) => [`${p} sub-key`, deriveKey(key, p)] as [string, Buffer])];
  for (const [name, k] of keys) {
    out.push({ what: `${name} raw`, bytes: k }, { what: `${name} hex`, bytes: Buffer.from(k.toString('hex')) },
      { what: `${name} HEX`, bytes: Buffer.from(k.toString('hex').toUpperCase()) }, { what: `${name} base64`, bytes: Buffer.from(k.toString('base64')) },
      { what: `${name} base64 unpadded`, bytes: Buffer.from(k.toString('base64').replace(/=+$/, '')) },
      { what: `${name} base64url`, bytes: Buffer.from(k.toString('base64url')) });
  }
  return out;
}

/** Fails if the decompressed tar stream (names, headers, bodies) or any member holds a form of `key`. */
export function assertNoKey(archive: string, members: Map<string, Buffer>, key: Buffer): void {
  const whole = zlib.gunzipSync(fs.readFileSync(archive));
  for (const { what, bytes } of keyForms(key)) {
    assert.is(whole.indexOf(bytes), -1, `the archive holds the ${what}`);
    for (const [n, b] of members) assert.is(b.indexOf(bytes), -1, `member ${n} holds the ${what}`);
  }
}
