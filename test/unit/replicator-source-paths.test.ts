// The primary's reintegration server (FileReplicator, src/replication/files/replicator.ts; source-tree.ts) refuses
// paths from the peer that would read outside the replicated dir's backing path: `..`, absolute paths, and any
// symlink on the way (never followed, not even when a user swaps a directory for one while the peer reads). No root needed: the layout runs on FakeMountSystem (nothing is mounted; the backing path is a real
// temporary directory the test fills), the peer is a CtlPeer on an in-memory channel given to `accept`.
// Files: /tmp/tandem-srcpath-*/{data, outside, home, run}; removed in `finally`.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { MirrorModuleConfig } from '../../src/config/types.js';
import { generateKey } from '../../src/daemon/key.js';
import { CtlError, CtlPeer, type CtlReply } from '../../src/replication/files/ctl.js';
import { FileReplicator } from '../../src/replication/files/replicator.js';
import { FakeMountSystem } from '../../src/replication/layout/fake.js';
import { channelPair } from './memory-channel.js';

const GEN = '2@n1';

function moduleCfg(dir: string): MirrorModuleConfig {
  return {
    name: 'db', mode: 'mirror', defaultprim: 'alone', failover: true,
    heart: { pulseMs: 500, timeoutMs: 5000, lans: ['default'] },
    vips: [],
    rfs: { async: 'second', syncdeltaMs: 0, port: 4900, replicated: [{ dir, mode: 'read_write', notreplicated: [] }] },
    splitbrain: null,
    user: { nicestoptimeoutMs: 30_000, forcestoptimeoutMs: 30_000, vars: {} },
    maxloop: 3, loopIntervalMs: 86_400_000, errd: null, checkers: [], rules: null,
  };
}

interface Fixture {
  /** the backing path P the server reads (canonical) */
  backing: string;
  outside: string;
  /** the peer's side: a reintegration session is open on it */
  peer: CtlPeer;
  /** a new channel from the peer, accepted by the replicator (no session on it) */
  connect(): CtlPeer;
  logs: string[];
}

/**
 * An ALONE primary (recording) for module db with one replicated dir, and a peer that opened a reintegration.
 * Backing tree: a.txt, sub/b.txt, sub/up → .. (inside), escape → <outside> (a directory), leak → <outside>/secret.txt,
 * sibling → <backing>evil (a directory next to the backing whose name starts like it).
 * Outside: secret.txt, link → /etc/shadow.
 */
async function withPrimary(fn: (f: Fixture) => Promise<void>): Promise<void> {
  const base = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-srcpath-')));
  const data = path.join(base, 'data');
  const outside = path.join(base, 'outside');
  fs.mkdirSync(data);
  fs.mkdirSync(outside);
  fs.writeFileSync(path.join(outside, 'secret.txt'), 'SECRET');
  fs.symlinkSync('/etc/shadow', path.join(outside, 'link'));
  const logs: string[] = [];
  const log = { info: (m: string) => logs.push(`info ${m}`), warn: (m: string) => logs.push(`warn ${m}`), error: (m: string) => logs.push(`error ${m}`) };
  const r = new FileReplicator({
    module: 'db', self: 'n1', peer: 'n2', cfg: moduleCfg(data), home: { root: path.join(base, 'home'), runDir: path.join(base, 'run') },
    key: generateKey(), peerEndpoint: { host: '127.0.0.1', port: 1, localAddress: '127.0.0.1' }, log,
    replicationFailed: (why) => logs.push(`replication-failed ${why}`), layoutSystem: new FakeMountSystem(),
  });
  const connect = () => {
    const { a, b } = channelPair({ a: 'n1', b: 'n2', module: 'db' }); // a: the channel n1 accepted from n2
    r.accept(a);
    return new CtlPeer(b);
  };
  const peer = connect();
  try {
    await r.setRole('primary', { gen: GEN, awaitPeer: false, recordBase: '1@n1' });
    const backing = path.join(base, 'run', 'backing', 'db', '0');
    assert.ok(fs.statSync(backing).isDirectory(), 'the layout created the backing path');
    fs.writeFileSync(path.join(backing, 'a.txt'), 'hello');
    fs.mkdirSync(path.join(backing, 'sub'));
    fs.writeFileSync(path.join(backing, 'sub', 'b.txt'), 'inside');
    fs.symlinkSync('..', path.join(backing, 'sub', 'up'));
    fs.symlinkSync(outside, path.join(backing, 'escape'));
    fs.symlinkSync(path.join(outside, 'secret.txt'), path.join(backing, 'leak'));
    fs.mkdirSync(`${backing}evil`);
    fs.writeFileSync(path.join(`${backing}evil`, 'x.txt'), 'NEXT DOOR');
    fs.symlinkSync(`${backing}evil`, path.join(backing, 'sibling'));
    const begun = await peer.request({ op: 'begin', expectGen: GEN, targetGen: '1@n1', clean: false, full: false, quarantine: false });
    assert.is(begun.body.gen, GEN);
    await fn({ backing, outside, peer, connect, logs });
  } finally {
    peer.close();
    await r.setRole('off').catch((e: Error) => logs.push(`leaving: ${e.message}`));
    await fsp.rm(base, { recursive: true, force: true });
  }
}

const read = (f: Fixture, p: unknown, dir: unknown = 0) => f.peer.request({ op: 'read', dir, path: p, offset: 0, length: 100 });

async function refusal(p: Promise<CtlReply>): Promise<CtlError> {
  let got: CtlReply;
  try {
    got = await p;
  } catch (e) {
    assert.instance(e, CtlError, `a CtlError, got ${String(e)}`);
    return e as CtlError;
  }
  assert.unreachable(`expected a refusal, got ${JSON.stringify(got.body)} ${JSON.stringify(got.data?.toString())}`);
  throw new Error('unreachable');
}

test('read and sums serve files inside the backing path', () => withPrimary(async (f) => {
  assert.is((await read(f, 'a.txt')).data?.toString(), 'hello');
  assert.is((await read(f, 'sub/b.txt')).data?.toString(), 'inside');
  const s = await f.peer.request({ op: 'sums', dir: 0, path: 'a.txt', blockSize: 65536 });
  assert.equal([s.body.count, s.body.eof, s.data?.length], [1, true, 32]);
}));

test('a parent symlink is never followed, even one that stays inside the backing path (ENOENT: no such file in the tree)', () => withPrimary(async (f) => {
  // the SECOND copies `sub/up` as the symlink it is (readlink) and `a.txt` under its own path; following the link
  // would serve the same bytes under a second name
  const e = await refusal(read(f, 'sub/up/a.txt'));
  assert.is(e.code, 'ENOENT', e.message);
  assert.match(e.message, /"sub\/up" is a symlink \(never followed\)/);
}));

test('paths with `..`, absolute paths and malformed paths are refused with EINVAL before touching the disk', () => withPrimary(async (f) => {
  const bad: unknown[] = [
    '..', '../outside/secret.txt', 'sub/../../outside/secret.txt', 'sub/../a.txt', '/etc/passwd', `${f.outside}/secret.txt`,
    '', '.', './a.txt', 'sub//b.txt', 'sub/', 'a\0b', 42, null, { p: 'a.txt' },
  ];
  for (const p of bad) {
    for (const op of ['read', 'sums']) {
      const e = await refusal(f.peer.request({ op, dir: 0, path: p, offset: 0, length: 10, blockSize: 65536 }));
      assert.is(e.code, 'EINVAL', `${op} ${JSON.stringify(p)}: ${e.message}`);
      assert.match(e.message, /bad path/);
    }
  }
}));

test('a path whose parent is a symlink leading out of the backing path is refused (ENOENT; read, sums, readlink)', () => withPrimary(async (f) => {
  for (const op of ['read', 'sums', 'readlink']) {
    const e = await refusal(f.peer.request({ op, dir: 0, path: 'escape/secret.txt', offset: 0, length: 10, blockSize: 65536 }));
    assert.is(e.code, 'ENOENT', `${op}: ${e.message}`);
    assert.match(e.message, /"escape" is a symlink \(never followed\)/);
  }
  // a directory next to the backing path whose name merely starts with it is outside too
  const e = await refusal(read(f, 'sibling/x.txt'));
  assert.is(e.code, 'ENOENT', e.message);
  // symlinked parent further down
  fs.mkdirSync(path.join(f.backing, 'deep', 'er'), { recursive: true });
  fs.symlinkSync(f.outside, path.join(f.backing, 'deep', 'er', 'out'));
  assert.is((await refusal(read(f, 'deep/er/out/secret.txt'))).code, 'ENOENT');
}));

test('a missing parent is an error with its errno code, not a crash', () => withPrimary(async (f) => {
  const e = await refusal(read(f, 'nope/x.txt'));
  assert.is(e.code, 'ENOENT');
  const e2 = await refusal(read(f, 'a.txt/x'));
  assert.is(e2.code, 'ENOTDIR');
}));

test('a replicated dir index that does not exist is refused with EINVAL', () => withPrimary(async (f) => {
  for (const dir of [1, -1, 0.5, 'x', 1e9]) {
    const e = await refusal(read(f, 'a.txt', dir));
    assert.is(e.code, 'EINVAL', `dir ${JSON.stringify(dir)}: ${e.message}`);
    assert.match(e.message, /no replicated dir/);
  }
  const missing = await refusal(f.peer.request({ op: 'read', path: 'a.txt', offset: 0, length: 10 }));
  assert.is(missing.code, 'EINVAL', 'no dir at all');
}));

test('requests on a channel without a reintegration session are refused (EAGAIN)', () => withPrimary(async (f) => {
  const other = f.connect();
  const e = await refusal(other.request({ op: 'read', dir: 0, path: 'a.txt', offset: 0, length: 10 }));
  assert.is(e.code, 'EAGAIN');
  other.close();
  assert.is((await read(f, 'a.txt')).data?.toString(), 'hello', 'the session on the first channel goes on');
}));

test('read of a path whose LAST component is a symlink to a file outside is refused (it is not a file of the replicated dir)', () => withPrimary(async (f) => {
  // sourcePath only resolves the parent; fs.open() then follows `leak` → <outside>/secret.txt (and sums likewise).
  // Real trigger: an application (or a user with write access to the dir) makes a symlink to any file root can read,
  // e.g. /etc/shadow; a file replaced by a symlink between the manifest and the read has the same effect.
  const r = await read(f, 'leak').then((x) => `served ${JSON.stringify(x.data?.toString())}`, (e: CtlError) => `refused ${e.code}`);
  const s = await f.peer.request({ op: 'sums', dir: 0, path: 'leak', blockSize: 65536 })
    .then((x) => `served ${String(x.body.count)} sums`, (e: CtlError) => `refused ${e.code}`);
  assert.equal({ read: r.startsWith('refused') ? 'refused' : r, sums: s.startsWith('refused') ? 'refused' : s }, { read: 'refused', sums: 'refused' });
}));

test('readlink of a path whose parent is a symlink leading out is refused like read (ENOENT)', () => withPrimary(async (f) => {
  const inside = await f.peer.request({ op: 'readlink', dir: 0, path: 'escape' });
  assert.is(inside.body.target, f.outside, 'a symlink inside the backing path is read');
  const r = await f.peer.request({ op: 'readlink', dir: 0, path: 'escape/link' })
    .then((x) => `served ${JSON.stringify(x.body.target)}`, (e: CtlError) => `refused ${e.code}`);
  assert.is(r, 'refused ENOENT');
  assert.is((await refusal(f.peer.request({ op: 'readlink', dir: 0, path: '../outside/link' }))).code, 'EINVAL');
  assert.is((await refusal(f.peer.request({ op: 'readlink', dir: 0, path: 'a.txt' }))).code, 'EINVAL', 'not a symlink');
}));

test('a FIFO or other non-regular file is not read (O_NONBLOCK: the daemon never blocks on it)', () => withPrimary(async (f) => {
  const mk = spawn('mkfifo', [path.join(f.backing, 'fifo')]);
  await new Promise<void>((r) => mk.once('exit', () => r()));
  for (const op of ['read', 'sums']) {
    const e = await refusal(f.peer.request({ op, dir: 0, path: 'fifo', offset: 0, length: 10, blockSize: 65536 }));
    assert.is(e.code, 'ENOENT', `${op}: ${e.message}`);
    assert.match(e.message, /not a regular file/);
  }
  assert.is((await refusal(read(f, 'sub'))).code, 'ENOENT', 'a directory is not a file');
}));

test('a directory swapped for a symlink in a loop while the peer reads never leaks a file from outside', () => withPrimary(async (f) => {
  // The attack: a user who can write in the replicated dir swaps sub-directory `d` for a symlink to a directory of
  // root-readable files, over and over, while the SECOND reads `d/f.txt`. A server that checks the parent (realpath)
  // and then opens by name again copies the outside file into the SECOND's copy whenever the swap falls between.
  fs.mkdirSync(path.join(f.backing, 'd'));
  fs.writeFileSync(path.join(f.backing, 'd', 'f.txt'), 'inside');
  fs.symlinkSync('../inside-target', path.join(f.backing, 'd', 'ln'));
  fs.writeFileSync(path.join(f.outside, 'f.txt'), 'SECRET');
  fs.symlinkSync('/etc/shadow', path.join(f.outside, 'ln'));
  fs.symlinkSync(f.outside, path.join(f.backing, 'd.link'));
  // d (a directory) → d.real, d.link (a symlink) → d, d → d.link, d.real → d: `d` is a symlink a quarter of the time
  const swapper = spawn(process.execPath, ['-e', `
    const fs = require('fs');
    const [d, real, link] = process.argv.slice(1);
    for (;;) { fs.renameSync(d, real); fs.renameSync(link, d); fs.renameSync(d, link); fs.renameSync(real, d); }
  `, path.join(f.backing, 'd'), path.join(f.backing, 'd.real'), path.join(f.backing, 'd.link')], { stdio: 'ignore' });
  const exited = new Promise<void>((r) => swapper.once('exit', () => r()));
  const seen = { inside: 0, refused: 0, leaked: [] as string[] };
  try {
    for (let n = 0; n < 3000 && seen.leaked.length === 0; n++) {
      const op = n % 3;
      const r = op === 0 ? await read(f, 'd/f.txt').then((x) => x.data?.toString() ?? '', () => null)
        : op === 1 ? await f.peer.request({ op: 'sums', dir: 0, path: 'd/f.txt', blockSize: 65536 })
          .then((x) => (x.data?.equals(sha256('SECRET')) ? 'SECRET' : 'inside'), () => null)
        : await f.peer.request({ op: 'readlink', dir: 0, path: 'd/ln' }).then((x) => String(x.body.target), () => null);
      if (r === null) seen.refused++;
      else if (r === 'inside' || r === '../inside-target') seen.inside++;
      else seen.leaked.push(`${['read', 'sums', 'readlink'][op]} → ${r}`);
    }
  } finally {
    swapper.kill('SIGKILL');
    await exited;
  }
  assert.equal(seen.leaked, [], `nothing from outside the replicated dir is ever served (${seen.inside} served, ${seen.refused} refused)`);
  assert.ok(seen.inside > 0 && seen.refused > 0, `the swap raced the reads: ${JSON.stringify(seen)}`);
}));

function sha256(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

test.run();
