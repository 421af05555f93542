// Fuzz: the replication channel's handshake (src/replication/stream/handshake.ts, channel.ts), what a host that
// can reach the listener sends before any authentication. Contracts under test:
// - decodeHello never throws; it returns null or a hello whose raw bytes are the input and whose fields re-encode to
//   it (version aside);
// - a listener fed fuzzed handshakes over TCP (from an allowed address) refuses them, counts them, stays up, and
//   then accepts a real client.
import net from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { generateKey } from '../../../src/daemon/key.js';
import { connectChannel, listenChannels } from '../../../src/replication/stream/channel.js';
import { decodeHello, encodeHello, frameClear, NONCE } from '../../../src/replication/stream/handshake.js';
import { waitFor } from '../wait-for.js';
import { failure, FUZZ_N, Fuzzer, fuzzSync } from './fuzz.js';

const nonce = Buffer.alloc(NONCE, 9);
const corpus = [
  encodeHello({ role: 1, status: 0, nonce, node: 'node1', module: 'db' }),
  encodeHello({ role: 2, status: 4, nonce, node: 'nœud', module: 'a-module-with-a-long-name' }),
  encodeHello({ role: 1, status: 0, nonce, node: '', module: '' }),
];

test('decodeHello: fuzzed hellos never throw; what is accepted is the input', () => {
  let ok = 0;
  const stats = fuzzSync({ name: 'decodeHello', corpus, maxLen: 2048, allocLimit: (b) => b.length + 1024 }, (input, i) => {
    let h: ReturnType<typeof decodeHello>;
    try {
      h = decodeHello(input);
    } catch (e) {
      throw failure(`decodeHello threw ${String(e)}`, i, input);
    }
    if (!h) return;
    ok++;
    const again = encodeHello(h);
    again[4] = h.version;
    if (!h.raw.equals(input) || !again.equals(input)) throw failure('an accepted hello that is not its input', i, input);
  });
  console.log(`  ${stats.inputs} inputs, ${ok} well-formed; slowest ${stats.slowestMs.toFixed(2)} ms, largest allocation ${stats.largestAlloc} B`);
  assert.ok(ok > 0);
});

test('listener: fuzzed handshakes over TCP are refused and counted; a real client still gets in', async () => {
  const key = generateKey();
  const channels: unknown[] = [];
  const l = await listenChannels({
    host: '127.0.0.1', port: 0, self: 'n2', allowedPeers: [{ name: 'n1', addr: '127.0.0.2' }], module: 'db', key,
    onChannel: (ch) => { channels.push(ch); ch.close(); }, handshakeTimeoutMs: 2000,
  });
  const f = new Fuzzer();
  const n = Math.max(200, Math.floor(FUZZ_N / 250)); // one TCP connection each: 200 in CI
  try {
    for (let i = 0; i < n; i += 8) {
      await Promise.all(Array.from({ length: Math.min(8, n - i) }, () => new Promise<void>((resolve) => {
        const hello = f.input(corpus, 1200);
        const bytes = f.chance(0.7) ? frameClear(hello) : f.mutate(frameClear(hello), corpus, 1300);
        const c = net.connect({ host: '127.0.0.1', port: l.port, localAddress: '127.0.0.2' }, () => {
          c.write(bytes);
          if (f.chance(0.5)) c.write(f.bytes(f.len(64))); // a forged "proof"
          c.end();
        });
        c.on('data', () => {});
        c.on('error', () => {});
        c.on('close', () => resolve());
      })));
    }
    // every fuzzed connection has closed (a cut-off hello is closed without a count); none got a channel
    const refused = Object.values(l.stats().refused).reduce((a, b) => a + b, 0);
    assert.ok(refused > n / 4, `${refused} refusals counted`);
    assert.is(channels.length, 0);
    const ch = await connectChannel({ host: '127.0.0.1', port: l.port, localAddress: '127.0.0.2', self: 'n1', peer: 'n2', module: 'db', key });
    ch.close();
    await waitFor(() => channels.length === 1, 5000, 'the real client accepted');
    console.log(`  ${n} fuzzed connections: ${JSON.stringify(l.stats().refused)}`);
  } finally {
    await l.close();
  }
});

test.run();
