// Reintegration of trees of any size (files/remote-compare.ts, source-tree.ts): the primary's manifest and pass plans
// are answered in pages, block sums page by page. End to end on two FileReplicators (FakeMountSystem: nothing is
// mounted, the backing paths are real temporary directories) over a real authenticated TCP channel on 127.0.0.1.
// Files: /tmp/tandem-large-*; removed in `finally`, with the listener and both replicators.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Worker } from 'node:worker_threads';
import { generateKey } from '../../src/daemon/key.js';
import { CtlPeer } from '../../src/replication/files/ctl.js';
import { fetchManifest, passAnswer, passPlans, planChunk, PLAN_CHUNK, remoteBlockRanges, SUMS_PAGE } from '../../src/replication/files/remote-compare.js';
import { CtlError } from '../../src/replication/files/ctl.js';
import { decodeManifestPage } from '../../src/replication/files/manifest-codec.js';
import { emptyPlan, planFromJson, planToJson } from '../../src/replication/reintegrate/plan.js';
import { listTree } from '../../src/replication/reintegrate/compare.js';
import { channelPair } from './memory-channel.js';
import type { FileReplicator } from '../../src/replication/files/replicator.js';
import { backingOf, testReplicator } from './replicator-fixture.js';

const GEN = '2@n1';
const KEY = generateKey();

/** An ALONE primary in a worker thread (replicator-primary-worker.ts): its listener's port, and how to stop it. */
async function primaryInWorker(base: string): Promise<{ port: number; stop(): Promise<string[]> }> {
  const w = new Worker(new URL('./replicator-primary-worker.js', import.meta.url), { workerData: { base, key: KEY, gen: GEN } });
  const exited = new Promise<void>((r) => w.once('exit', () => r()));
  const first = await new Promise<{ port: number }>((resolve, reject) => {
    w.once('message', resolve);
    w.once('error', reject);
  });
  return {
    port: first.port,
    async stop() {
      const done = new Promise<{ logs: string[] }>((r) => w.once('message', r));
      w.postMessage('stop');
      const { logs } = await Promise.race([done, exited.then(() => ({ logs: ['(worker exited)'] }))]);
      await w.terminate();
      await exited;
      return logs;
    },
  };
}

/** A temporary directory with the module's replicated dir `data` in it; removed by withWorkerPair / withLocalPrimary. */
function tempBase(): string {
  const base = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-large-')));
  fs.mkdirSync(path.join(base, 'data'));
  return base;
}

/** An ALONE primary in a worker over `base`, and a SECOND here (its logs shown when `fn` fails); all ended after. */
async function withWorkerPair(base: string, fn: (second: FileReplicator, logs: string[]) => Promise<void>): Promise<void> {
  const logs: string[] = [];
  const prim = await primaryInWorker(base);
  const second = testReplicator({ base, self: 'n2', peer: 'n1', port: prim.port, key: KEY, logs });
  try {
    await fn(second, logs);
  } catch (e) {
    console.log([...logs, ...(await prim.stop())].slice(-30).join('\n'));
    throw e;
  } finally {
    await second.setRole('off').catch(() => {});
    await prim.stop();
    await fsp.rm(base, { recursive: true, force: true });
  }
}

/** A primary in this thread over a new base, answering `peer` (a ctl client on an in-memory channel); all ended after. */
async function withLocalPrimary(fn: (base: string, peer: CtlPeer) => Promise<void>): Promise<void> {
  const base = tempBase();
  const prim = testReplicator({ base, self: 'n1', peer: 'n2', port: 1, key: KEY, logs: [] });
  const { a, b } = channelPair({ a: 'n1', b: 'n2', module: 'db' });
  prim.accept(a);
  const peer = new CtlPeer(b);
  try {
    await prim.setRole('primary', { gen: GEN, awaitPeer: false, recordBase: '1@n1' });
    await fn(base, peer);
  } finally {
    peer.close();
    await prim.setRole('off').catch(() => {});
    await fsp.rm(base, { recursive: true, force: true });
  }
}

/** The SECOND's reintegration from n1 of generation GEN (compare, no quarantine). */
const reintegrateFromN1 = (second: FileReplicator) => second.reintegrate({
  module: 'db', from: 'n1', full: false, quarantine: false, sourceGen: GEN, signal: new AbortController().signal,
  beginCopy: async () => {}, targetGen: null,
});

test('a tree of 100,000+ entries is compared and copied (manifest and plan in pages); the copy equals the source', async () => {
  const base = tempBase();
  await withWorkerPair(base, async (second) => {
    await second.setRole('secondary');
    const src = backingOf(base, 'n1');
    const dst = backingOf(base, 'n2');
    // 200 directories × 500 files, names long enough that one manifest answer would be far over the 8 MiB ctl limit;
    // two days old (a file changed in the last hour is always block-compared), and the SECOND holds the same tree
    // but for a few differences: what a comparison after a crash typically finds. Files are hard links to the 500 of
    // the first directory (on both sides: `cp -al`), to keep the setup cheap; a file the test changes on the SECOND
    // is replaced there, never written through a shared inode.
    const pad = 'x'.repeat(60);
    const old = Date.now() / 1000 - 2 * 86_400;
    const dirName = (d: number) => path.join(src, `directory-${String(d).padStart(3, '0')}-${pad}`);
    for (let d = 0; d < 200; d++) {
      fs.mkdirSync(dirName(d));
      for (let f = 0; f < 500; f++) {
        const file = path.join(dirName(d), `file-${f}-${pad}`);
        if (d > 0) {
          fs.linkSync(path.join(dirName(0), `file-${f}-${pad}`), file);
          continue;
        }
        fs.writeFileSync(file, f % 100 === 0 ? `content ${f}` : '');
        fs.utimesSync(file, old, old);
      }
    }
    for (let d = 0; d < 200; d++) fs.utimesSync(dirName(d), old, old);
    fs.mkdirSync(path.join(src, 'skip'));
    fs.writeFileSync(path.join(src, 'skip', 'not-replicated'), 'local');
    fs.utimesSync(src, old, old);
    execFileSync('cp', ['-al', `${src}/.`, dst]);
    fs.rmSync(path.join(dst, 'skip'), { recursive: true });
    const d0 = path.join(dst, `directory-000-${pad}`);
    fs.rmSync(path.join(d0, `file-0-${pad}`));
    fs.writeFileSync(path.join(d0, `file-0-${pad}`), 'stale content, longer');
    fs.rmSync(path.join(d0, `file-1-${pad}`));
    fs.writeFileSync(path.join(dst, 'extra'), 'gone at the source');
    fs.rmSync(path.join(dst, `directory-199-${pad}`), { recursive: true });
    for (const d of [d0, dst]) fs.utimesSync(d, old, old);

    const entries = (await listTree(src, [{ path: 'skip' }])).size;
    assert.ok(entries >= 100_000, `${entries} entries`);
    await reintegrateFromN1(second);
    const [a, b] = await Promise.all([listTree(src, [{ path: 'skip' }]), listTree(dst)]);
    assert.is(b.size, a.size, 'as many entries on both sides');
    for (const [p, e] of a) {
      const t = b.get(p);
      if (!t || t.type !== e.type || t.size !== e.size) assert.unreachable(`${p}: ${JSON.stringify(t)} ≠ ${JSON.stringify(e)}`);
    }
    assert.is(fs.readFileSync(path.join(d0, `file-0-${pad}`), 'utf8'), 'content 0');
    assert.is(fs.readFileSync(path.join(src, `directory-000-${pad}`, `file-0-${pad}`), 'utf8'), 'content 0', 'the source is intact');
    assert.ok(fs.existsSync(path.join(d0, `file-1-${pad}`)));
    assert.is(fs.readdirSync(path.join(dst, `directory-199-${pad}`)).length, 500);
    assert.not.ok(fs.existsSync(path.join(dst, 'extra')));
    assert.not.ok(fs.existsSync(path.join(dst, 'skip')), 'the <notreplicated> path is not copied');
    assert.is(second.status().mode, 'live');
    console.log(`  ${entries} entries reintegrated: ${second.status().lastReintegration?.ms} ms`);
  });
});

test('manifest pages resume after any cursor, also one that vanished; sums are answered a page at a time', async () => {
  await withLocalPrimary(async (base, peer) => {
    const src = backingOf(base, 'n1');
    for (const p of ['a/b/c', 'a/b/d', 'a/e', 'a-z/f', 'b', 'skip/x']) {
      fs.mkdirSync(path.dirname(path.join(src, p)), { recursive: true });
      fs.writeFileSync(path.join(src, p), p);
    }
    await peer.request({ op: 'begin', expectGen: GEN, targetGen: null, clean: false, full: false, quarantine: false });
    const whole = [...(await fetchManifest(peer, 0)).manifest.keys()];
    assert.equal(whole, ['a', 'a/b', 'a/b/c', 'a/b/d', 'a/e', 'a-z', 'a-z/f', 'b'], 'depth first, sorted, <notreplicated> left out');
    for (const [after, rest] of [['a/b', ['a/b/c', 'a/b/d', 'a/e', 'a-z', 'a-z/f', 'b']], ['a/b/c', ['a/b/d', 'a/e', 'a-z', 'a-z/f', 'b']],
      ['a/b/cc', ['a/b/d', 'a/e', 'a-z', 'a-z/f', 'b']], ['a/e', ['a-z', 'a-z/f', 'b']], ['a-y', ['a-z', 'a-z/f', 'b']], ['b', []]] as const) {
      const r = await peer.request({ op: 'manifest', dir: 0, after });
      assert.equal((r.body.entries as [string][]).map((e) => e[0]), rest, `after ${after}`);
      assert.is(r.body.next, null);
    }
    // pages asked in any order, in either form: each is the page after its cursor (the one read ahead is used only
    // when it is the page asked for)
    for (const [after, format] of [['a/b', 'bin'], [null, 'bin'], ['a/e', undefined], ['a/b', 'bin'], ['a/b', undefined]] as const) {
      const r = await peer.request({ op: 'manifest', dir: 0, after, ...(format ? { format } : {}) });
      const rels: string[] = [];
      if (format) decodeManifestPage(r.data ?? Buffer.alloc(0), r.body.count as number, (rel) => rels.push(rel));
      else rels.push(...(r.body.entries as [string][]).map((e) => e[0]));
      assert.equal(rels, whole.slice(after === null ? 0 : whole.indexOf(after) + 1), `after ${after}, ${format ?? 'json'}`);
    }

    // an 80 MiB file in 4 KiB blocks: 20480 sums, over one page; blocks changed on both sides of the page boundary
    const big = Buffer.alloc(80 << 20, 7);
    fs.writeFileSync(path.join(src, 'big'), big);
    const local = path.join(base, 'local');
    fs.mkdirSync(local);
    const mine = Buffer.from(big);
    const changed = [3, SUMS_PAGE - 1, SUMS_PAGE, 20_000];
    for (const blk of changed) mine[blk * 4096 + 5] = 0;
    fs.writeFileSync(path.join(local, 'big'), mine.subarray(0, 79 << 20)); // and shorter
    const page = await peer.request({ op: 'sums', dir: 0, path: 'big', blockSize: 4096, first: 0 });
    assert.equal([page.data?.length, page.body.count, page.body.eof], [SUMS_PAGE * 32, SUMS_PAGE, false], 'one page only');
    const last = await peer.request({ op: 'sums', dir: 0, path: 'big', blockSize: 4096, first: SUMS_PAGE });
    assert.equal([last.body.count, last.body.eof], [20480 - SUMS_PAGE, true]);
    const ranges = await remoteBlockRanges(peer, 0, local, 'big', 4096, big.length);
    // blocks 20224.. are missing locally (the local file is 1 MiB shorter): one range to the end covers block 20000 too
    assert.equal(ranges, [[3 * 4096, 4 * 4096], [(SUMS_PAGE - 1) * 4096, (SUMS_PAGE + 1) * 4096], [20_000 * 4096, 20_001 * 4096], [79 << 20, 80 << 20]]);
    const gone = await remoteBlockRanges(peer, 0, local, 'no-such-file', 4096, 10);
    assert.equal(gone, [[0, 10]], 'a source file gone since the manifest: copy it whole (the applier then finds it gone)');
  });
});

test('the source\'s activity log reaches the comparison: a file it changed in place under its old size and mtime is compared and copied', async () => {
  // The primary crashed (or an application put an old mtime back) after changing `table` in place: its own activity
  // log names the file, the SECOND's copy is clean (its log is empty) and holds the same size and the same two-day-old
  // mtime with other content. Only the source's log can say that the file must be block-compared.
  const base = tempBase();
  const src = backingOf(base, 'n1');
  const dst = backingOf(base, 'n2');
  const old = Date.now() / 1000 - 2 * 86_400;
  for (const [root, content] of [[src, 'NEW!'.repeat(1024)], [dst, 'old.'.repeat(1024)]] as const) {
    fs.mkdirSync(root, { recursive: true });
    fs.writeFileSync(path.join(root, 'table'), content);
    fs.writeFileSync(path.join(root, 'same'), 'same');
    for (const f of ['table', 'same', '.']) fs.utimesSync(path.join(root, f), old, old);
  }
  const activity = path.join(base, 'n1', 'home', 'state', 'db.files', 'activity', '0');
  fs.mkdirSync(activity, { recursive: true });
  fs.writeFileSync(path.join(activity, '3'), `${JSON.stringify('table')}\n`);
  await withWorkerPair(base, async (second, logs) => {
    await second.setRole('secondary');
    await reintegrateFromN1(second);
    const got = fs.readFileSync(path.join(dst, 'table'), 'utf8');
    assert.ok(got === 'NEW!'.repeat(1024), `the logged file was compared by blocks and copied (the copy holds ${got.slice(0, 8)}…)`);
    assert.is(second.status().mode, 'live');
    assert.ok(logs.some((l) => /reintegration from n1 done: 4096 bytes copied/.test(l)), 'only the logged file was copied (the other one is trusted by size and mtime)');
  });
});

test('a differing 64 KiB block is narrowed to its differing 4 KiB blocks; a block the local file lacks is copied whole', async () => {
  await withLocalPrimary(async (base, peer) => {
    await peer.request({ op: 'begin', expectGen: GEN, targetGen: null, clean: false, full: false, quarantine: false });
    const src = backingOf(base, 'n1');
    fs.mkdirSync(src, { recursive: true });
    const K = 4096;
    const B = 16 * K;
    // 40 blocks of 64 KiB and a partial one (3 × 4 KiB + 100 B) at the source
    const size = 40 * B + 3 * K + 100;
    const source = Buffer.alloc(size);
    for (let i = 0; i < size; i++) source[i] = (i * 7 + (i >> 12)) & 0xff;
    fs.writeFileSync(path.join(src, 'f'), source);
    const local = path.join(base, 'local');
    fs.mkdirSync(local);
    const mine = Buffer.from(source.subarray(0, 38 * B + 5 * K)); // shorter: blocks 38 (partly) and 39, 40 missing
    mine[2 * B + 3 * K + 1] ^= 1; // one 4 KiB block inside block 2
    mine[7 * B + 15 * K] ^= 1; // the last 4 KiB of block 7 and the first of block 8: a run of two differing blocks
    mine[8 * B] ^= 1;
    mine[20 * B + 4 * K] ^= 1; // two 4 KiB blocks of block 20
    mine[20 * B + 9 * K + 4095] ^= 1;
    mine[38 * B + 2 * K] ^= 1; // in the block the local file holds in part
    fs.writeFileSync(path.join(local, 'f'), mine);
    const ranges = await remoteBlockRanges(peer, 0, local, 'f', B, size);
    assert.equal(ranges, [
      [2 * B + 3 * K, 2 * B + 4 * K],
      [7 * B + 15 * K, 8 * B + K],
      [20 * B + 4 * K, 20 * B + 5 * K], [20 * B + 9 * K, 20 * B + 10 * K],
      [38 * B + 2 * K, 38 * B + 3 * K], // block 38: the local file has its first 5 × 4 KiB; the rest is missing
      [38 * B + 5 * K, size],
    ]);
    const sent = ranges.reduce((n, [s0, e0]) => n + e0 - s0, 0);
    assert.is(sent, 6 * K + (size - 38 * B - 5 * K), 'only the differing 4 KiB blocks and what the local file lacks');
    // patched with those ranges, the local file equals the source
    const patched = Buffer.alloc(size);
    mine.copy(patched);
    for (const [s0, e0] of ranges) source.copy(patched, s0, s0, e0);
    assert.ok(patched.equals(source), 'the narrowed ranges make the copy equal');
  });
});

test('pass plans over the inline limit are sent by size and fetched in chunks; a hostile size is refused', async () => {
  const big = { ...emptyPlan(), copies: Array.from({ length: 120_000 }, (_, i) => ({ path: `dir/${"n".repeat(80)}-${i}`, size: i })) };
  const plans = [planToJson(emptyPlan()), planToJson(big)];
  const answer = passAnswer(plans);
  assert.ok(answer.paged && Buffer.byteLength(plans[1]!) > 2 * PLAN_CHUNK, 'over one chunk: paged');
  assert.equal(answer.body, { planBytes: answer.paged!.map((t) => t.length) });
  const { a, b } = channelPair();
  const server = new CtlPeer(a);
  const client = new CtlPeer(b);
  const served: number[] = [];
  server.serve(async (req) => {
    if (req.op !== 'plan') throw new CtlError('unexpected', 'EPROTO');
    const data = planChunk(answer.paged!, req.dir as number, req.offset);
    served.push(data.length);
    return { body: {}, data };
  });
  try {
    const got = await passPlans(client, answer.body, 2);
    assert.equal(got, plans);
    assert.is(planFromJson(got![1]!).copies.length, 120_000);
    assert.ok(served.every((n) => n <= PLAN_CHUNK) && served.length >= 3, `chunks ${served.join(', ')}`);
    assert.equal(passAnswer(['{"v":1}', '{"v":1}']).body, { plans: ['{"v":1}', '{"v":1}'] }, 'small plans stay inline');
    assert.is(await passPlans(client, { compare: true }, 2), null);
    for (const bad of [{ planBytes: [1 << 31, 0] }, { planBytes: [1] }, { planBytes: [-1, 0] }, { plans: ['x'] }]) {
      const e = await passPlans(client, bad, 2).then(() => null, (x: unknown) => x);
      assert.instance(e, CtlError, JSON.stringify(bad));
      assert.is((e as CtlError).code, 'EPROTO');
    }
  } finally {
    client.close();
  }
});

test.run();
