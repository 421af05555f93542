// Fuzz: the heartbeat datagram codec (src/daemon/heartbeat-codec.ts), what any host on a heartbeat LAN can send.
// Contract under test: decode never throws; it returns { ok: false, reason: 'malformed' | 'badMac' } or a frame whose
// fields have their documented types; half of the mutated inputs are re-signed with the key, so the checks after
// authentication (names, JSON body) are reached too. See fuzz.ts for the knobs.
import { createHmac } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { decode, encode, MAC_BYTES, MAX_DATAGRAM } from '../../../src/daemon/heartbeat-codec.js';
import { deriveKey, generateKey } from '../../../src/daemon/key.js';
import { failure, fuzzSync } from './fuzz.js';

const KEY = deriveKey(generateKey(), 'heartbeat');
const remac = (b: Buffer) => b.length <= MAC_BYTES ? b
  : Buffer.concat([b.subarray(0, b.length - MAC_BYTES), createHmac('sha256', KEY).update(b.subarray(0, b.length - MAC_BYTES)).digest()]);

const corpus = [
  encode(KEY, { from: 'node1', to: 'node2', boot: 7, seq: 42n, echo: 3, lan: 'default', body: { module: 'db', state: 'PRIM', gen: { n: 2, node: 'node1' } } }),
  encode(KEY, { from: 'n', to: 'm', boot: 0, seq: 0n, lan: 'l', body: null }),
  encode(KEY, { from: 'nœud-ü', to: 'nœud-ö', boot: 0xffffffff, seq: (1n << 64n) - 1n, echo: 0xffffffff, lan: 'réplication', body: ['x'.repeat(2000)] }),
];

test(`heartbeat decode: fuzzed datagrams never throw and fail only as malformed or badMac`, () => {
  const reasons = { ok: 0, malformed: 0, badMac: 0 };
  const stats = fuzzSync({ name: 'heartbeat decode', corpus, maxLen: MAX_DATAGRAM + 64, allocLimit: (b) => b.length + 4096 }, (raw, i, f) => {
    const input = f.chance(0.5) ? remac(raw) : raw;
    let d: ReturnType<typeof decode>;
    try {
      d = decode(KEY, input);
    } catch (e) {
      throw failure(`heartbeat decode threw ${String(e)}`, i, input);
    }
    if (!d.ok) {
      if (d.reason !== 'malformed' && d.reason !== 'badMac') throw failure(`unknown reason ${String(d.reason)}`, i, input);
      reasons[d.reason]++;
      return;
    }
    reasons.ok++;
    if (typeof d.from !== 'string' || typeof d.lan !== 'string' || !Number.isInteger(d.boot) || typeof d.seq !== 'bigint' || !Number.isInteger(d.echo)) {
      throw failure(`a frame with fields of the wrong types: ${JSON.stringify({ ...d, seq: String(d.seq) })}`, i, input);
    }
    if (input.length > MAX_DATAGRAM) throw failure('an oversized datagram was accepted', i, input);
  });
  console.log(`  ${stats.inputs} inputs: ${JSON.stringify(reasons)}; slowest ${stats.slowestMs.toFixed(2)} ms, largest allocation ${stats.largestAlloc} B`);
  assert.ok(reasons.malformed > 0 && reasons.badMac > 0 && reasons.ok > 0, 'the inputs reach every outcome');
});

test.run();
