// The SECOND's side of a comparison (files/remote-compare.ts) against a fake primary on an in-memory channel: block
// ranges of many files worked out several at a time give what one file after the other gives; manifest pages are
// taken in the encoded form and in the JSON form of earlier versions; malformed pages are refused. Files:
// /tmp/tandem-rc-*.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CtlError, CtlPeer, type CtlReply } from '../../../src/replication/files/ctl.js';
import { ManifestWriter } from '../../../src/replication/files/manifest-codec.js';
import { fetchManifest, remoteBlockRanges, remoteRangesOf } from '../../../src/replication/files/remote-compare.js';
import { SourceTree } from '../../../src/replication/files/source-tree.js';
import { inlineLister } from '../../../src/replication/files/tree-walk.js';
import type { Range } from '../../../src/replication/reintegrate/plan.js';
import { channelPair } from '../memory-channel.js';

/** A fake primary serving `handler` and the SECOND's ctl client; both closed and `dirs` removed after `fn`. */
async function withPeer(handler: (b: Record<string, unknown>) => Promise<CtlReply>, fn: (peer: CtlPeer) => Promise<void>, dirs: string[] = []) {
  const { a, b } = channelPair();
  const server = new CtlPeer(a);
  server.serve(handler);
  const peer = new CtlPeer(b);
  try {
    await fn(peer);
  } finally {
    peer.close();
    server.close();
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  }
}

const tmp = () => fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-rc-')));

test('block ranges of many files, several at a time: what one file after the other gives; a failure rejects', async () => {
  const src = tmp();
  const dst = tmp();
  const files: { path: string; size: number }[] = [];
  for (let k = 0; k < 60; k++) {
    const size = 4096 * (1 + (k % 7)) + k;
    const data = Buffer.alloc(size, k);
    fs.writeFileSync(path.join(src, `f${k}`), data);
    if (k % 3 !== 0) data[(k * 4099) % size] ^= 1; // two files in three differ in one block
    if (k % 5 !== 4) fs.writeFileSync(path.join(dst, `f${k}`), data.subarray(0, k % 4 === 0 ? size - 100 : size)); // some missing, some shorter
    files.push({ path: `f${k}`, size });
  }
  files.push({ path: 'gone', size: 10 }); // gone at the source since the manifest: the whole file
  const tree = new SourceTree(src, inlineLister);
  let inFlight = 0;
  let most = 0;
  await withPeer(async (b) => {
    inFlight++;
    most = Math.max(most, inFlight);
    try {
      await new Promise((r) => setTimeout(r, 1));
      if (b.op !== 'sums') throw new CtlError('unexpected', 'EPROTO');
      if (b.path === 'broken') throw new CtlError('disk on fire', 'EIO');
      const sums = await tree.blockSums(b.path, b.blockSize as number, b.first as number, b.count as number).catch((e: NodeJS.ErrnoException) => {
        throw new CtlError(e.message, e.code);
      });
      return { body: { first: b.first, count: sums.length, eof: sums.length < (b.count as number) }, data: Buffer.concat(sums) };
    } finally {
      inFlight--;
    }
  }, async (peer) => {
    const one = new Map<string, Range[]>();
    for (const f of files) one.set(f.path, await remoteBlockRanges(peer, 0, dst, f.path, 4096, f.size));
    most = 0;
    const many = await remoteRangesOf(peer, 0, dst, files, 4096, new AbortController().signal, 8);
    assert.equal(many, one);
    assert.ok(most > 1 && most <= 8, `${most} requests in flight at most`);
    assert.equal(many.get('gone'), [[0, 10]]);
    assert.ok(files.some((f) => (one.get(f.path) ?? []).length === 0) && files.some((f) => (one.get(f.path) ?? []).length > 0));

    const e = await remoteRangesOf(peer, 0, dst, [...files.slice(0, 10), { path: 'broken', size: 5 }, ...files.slice(10)], 4096, new AbortController().signal, 4)
      .then(() => null, (x: unknown) => x);
    assert.instance(e, CtlError);
    assert.is((e as CtlError).code, 'EIO');
    const ac = new AbortController();
    ac.abort();
    await remoteRangesOf(peer, 0, dst, files, 4096, ac.signal).then(() => assert.unreachable('aborted'), (x: Error) => assert.match(x.message, /aborted/));
  }, [src, dst]);
});

test('a file the primary renamed: its blocks are compared with the local file under its old name (base), narrowed to 4 KiB', async () => {
  const src = tmp();
  const dst = tmp();
  const data = Buffer.alloc(200_000, 3);
  fs.writeFileSync(path.join(dst, 'old-name'), data);
  data.fill(9, 70_000, 70_010); // one 4 KiB page differs
  fs.writeFileSync(path.join(src, 'new-name'), data);
  const tree = new SourceTree(src, inlineLister);
  await withPeer(async (b) => {
    const sums = await tree.blockSums(b.path, b.blockSize as number, b.first as number, b.count as number);
    return { body: { first: b.first, count: sums.length, eof: sums.length < (b.count as number) }, data: Buffer.concat(sums) };
  }, async (peer) => {
    const r = await remoteRangesOf(peer, 0, dst, [{ path: 'new-name', size: data.length, base: 'old-name' }], 65536, new AbortController().signal);
    assert.equal(r.get('new-name'), [[69632, 73728]]);
    const without = await remoteRangesOf(peer, 0, dst, [{ path: 'new-name', size: data.length }], 65536, new AbortController().signal);
    assert.equal(without.get('new-name'), [[0, data.length]], 'without a base there is no local file to compare: the whole file');
  }, [src, dst]);
});

test('manifest pages: encoded, or JSON from an earlier version; logged flags kept; malformed or stuck pages refused', async () => {
  const w1 = new ManifestWriter();
  w1.add('a', { type: 'dir', size: 0, mtimeNs: 5n, mode: 0o755, uid: 0, gid: 0 });
  w1.add('a/x', { type: 'file', size: 3, mtimeNs: 1_700_000_000_000_000_001n, mode: 0o644, uid: 7, gid: 8 }, 1);
  const page1 = w1.finish();
  const json = { entries: [['b', { type: 'symlink', size: 0, mtimeNs: '9', mode: 0o777, uid: 0, gid: 0, linkTarget: 't', logged: true }]], next: null };
  const asked: unknown[] = [];
  await withPeer(async (b) => {
    asked.push(b.after);
    if (b.format !== 'bin') throw new CtlError('the SECOND asks for the encoded form', 'EPROTO');
    return b.after === null ? { body: { count: 2, next: 'a/x' }, data: page1 } : { body: json };
  }, async (peer) => {
    const { manifest, logged } = await fetchManifest(peer, 0);
    assert.equal([...manifest.keys()], ['a', 'a/x', 'b']);
    assert.equal(manifest.get('a/x'), { type: 'file', size: 3, mtimeNs: 1_700_000_000_000_000_001n, mode: 0o644, uid: 7, gid: 8 });
    assert.is(manifest.get('b')!.linkTarget, 't');
    assert.equal([...logged].sort(), ['a/x', 'b']);
    assert.equal(asked, [null, 'a/x']);
  });
  for (const [what, reply] of [
    ['a count that does not match the data', { body: { count: 3, next: null }, data: page1 }],
    ['no count', { body: { next: null }, data: page1 }],
    ['a cursor that does not advance', { body: { count: 0, next: 'x' } }],
    ['a cursor of the wrong type', { body: { count: 2, next: 5 }, data: page1 }],
  ] as const) {
    await withPeer(async () => reply as CtlReply, async (peer) => {
      const e = await fetchManifest(peer, 0).then(() => null, (x: unknown) => x);
      assert.instance(e, CtlError, what);
      assert.is((e as CtlError).code, 'EPROTO', what);
    });
  }
});

test.run();
