// Fuzz: the control socket (src/daemon/control.ts), what a local client (anyone who can open the socket: root)
// sends. Contracts under test:
// - parseRequest never throws: a request with an integer id, a non-empty cmd, an optional string module and an
//   optional object args, or a refusal (an error, with the id when one was readable);
// - LineSplitter returns only complete lines, none longer than its limit, then 'overflow';
// - a server fed fuzzed lines answers every non-blank line exactly once and stays up.
import net from 'node:net';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { controlRequest, LineSplitter, parseRequest, startControlServer } from '../../../src/daemon/control.js';
import { failure, FUZZ_N, Fuzzer, fuzzSync } from './fuzz.js';

const lines = [
  '{"id":1,"cmd":"status","module":"web","args":{}}',
  '{"id":2,"cmd":"admin","module":"db","args":{"verb":"swap","fullsync":false}}',
  '{"id":9007199254740991,"cmd":"ping"}',
  '{"id":3,"cmd":"config","module":"m","args":{"a":[1,2,{"b":null}],"c":"\\u00e9\\n"}}',
].map((l) => Buffer.from(l));

test('parseRequest: fuzzed lines never throw; a request is well-typed, a refusal says why', () => {
  let accepted = 0;
  const stats = fuzzSync({ name: 'parseRequest', corpus: lines, maxLen: 1 << 14, allocLimit: (b) => b.length * 4 + 4096 }, (input, i) => {
    const line = input.toString('utf8');
    let r: ReturnType<typeof parseRequest>;
    try {
      r = parseRequest(line);
    } catch (e) {
      throw failure(`parseRequest threw ${String(e)}`, i, line);
    }
    if ('error' in r) {
      if (typeof r.error !== 'string' || (r.id !== null && !Number.isSafeInteger(r.id))) throw failure('a malformed refusal', i, line);
      return;
    }
    accepted++;
    const q = r.req;
    if (!Number.isSafeInteger(q.id) || typeof q.cmd !== 'string' || q.cmd === '' || (q.module !== undefined && typeof q.module !== 'string')
      || (q.args !== undefined && (typeof q.args !== 'object' || q.args === null || Array.isArray(q.args)))) {
      throw failure(`an accepted request of the wrong shape: ${JSON.stringify(q)}`, i, line);
    }
  });
  console.log(`  ${stats.inputs} lines, ${accepted} accepted; slowest ${stats.slowestMs.toFixed(2)} ms`);
  assert.ok(accepted > 0);
});

test('LineSplitter: fuzzed streams in random chunks give only complete lines within the limit, then overflow', () => {
  const streams = [Buffer.concat(lines.flatMap((l) => [l, Buffer.from('\n')])), Buffer.from('\n\n\n'), Buffer.alloc(300, 0x61)];
  let got = 0;
  let overflows = 0;
  fuzzSync({ name: 'LineSplitter', corpus: streams, maxLen: 1 << 12, allocLimit: (b) => b.length + 1024 }, (input, i, f) => {
    const max = f.pick([16, 256, 1 << 20]);
    const s = new LineSplitter(max);
    const out: string[] = [];
    for (let at = 0; at < input.length;) {
      const n = 1 + f.int(Math.min(512, input.length - at));
      const r = s.push(input.subarray(at, at + n));
      at += n;
      if (r === 'overflow') {
        overflows++;
        return;
      }
      // (a line is decoded as UTF-8: invalid bytes become U+FFFD, one UTF-16 unit per byte at most)
      for (const l of r) if (l.length > max) throw failure(`a line of ${l.length} characters over the ${max}-byte limit`, i, input);
      out.push(...r);
    }
    got += out.length;
    const want = input.toString('utf8').split('\n').slice(0, -1);
    // lines are split on bytes; a multi-byte character across chunks is joined before decoding
    if (out.join('\n') !== want.join('\n')) throw failure('lines differ from the input', i, input);
  });
  assert.ok(got > 0 && overflows > 0);
});

test('control server: fuzzed lines from several clients are each answered once; the server stays up', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-fuzz-ctl-'));
  const sock = path.join(dir, 'control.sock');
  const server = await startControlServer(sock, (req) => ({ cmd: req.cmd }), { home: dir });
  const f = new Fuzzer();
  const perClient = Math.max(500, Math.floor(FUZZ_N / 20));
  try {
    for (let c = 0; c < 10; c++) {
      const sent: Buffer[] = [];
      for (let k = 0; k < perClient; k++) {
        const l = f.input(lines, 4096);
        const nl = l.indexOf(0x0a);
        sent.push(nl >= 0 ? l.subarray(0, nl) : l); // one line each
      }
      const expected = sent.filter((l) => l.toString('utf8').trim() !== '').length;
      const answers = await new Promise<number>((resolve, reject) => {
        const s = net.connect(sock);
        const sp = new LineSplitter(1 << 24);
        let n = 0;
        s.on('connect', () => s.end(Buffer.concat(sent.flatMap((l) => [l, Buffer.from('\n')]))));
        s.on('data', (d) => {
          const r = sp.push(d);
          if (r === 'overflow') return reject(new Error('a response over 16 MiB'));
          for (const line of r) {
            const res = JSON.parse(line) as { ok: boolean };
            if (typeof res.ok !== 'boolean') reject(new Error(`a response without ok: ${line}`));
            n++;
          }
        });
        s.on('error', reject);
        s.on('close', () => resolve(n));
      });
      assert.is(answers, expected, `client ${c}: one answer per non-blank line`);
    }
    assert.equal(await controlRequest(sock, 'ping', undefined, undefined, { home: dir }), { cmd: 'ping' });
  } finally {
    await server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
