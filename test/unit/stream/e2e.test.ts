import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { generateKey } from '../../../src/daemon/key.js';
import { BugError, UserError } from '../../../src/errors.js';
import { FakeClock } from '../../../src/platform/clock/fake.js';
import { Applier } from '../../../src/replication/stream/apply.js';
import type { Change } from '../../../src/replication/stream/change.js';
import { type Channel, connectChannel, type Listener, listenChannels } from '../../../src/replication/stream/channel.js';
import { decode, encode, type Message, type Mode } from '../../../src/replication/stream/codec.js';
import { ReplicationError } from '../../../src/replication/stream/errors.js';
import type { ApplyFs } from '../../../src/replication/stream/fs.js';
import { type Receiver, receiveChanges } from '../../../src/replication/stream/receiver.js';
import { createSender, type ReplicationSender, type SenderOptions } from '../../../src/replication/stream/sender.js';
import { fsError, hookedFs, listAll, rmrf, snapshot, tmpDir, until } from './helpers.js';
import { type Direction, startProxy } from './proxy.js';
import { within } from '../wait-for.js';

// PRIM is n1 (127.0.0.2, or 127.0.0.1 behind the test's proxy), SECOND is n2 listening on 127.0.0.1.
const KEY = generateKey();
const D = '/srv/app/data';

interface PairOptions {
  mode?: Mode;
  /** the SECOND's configured mode, if it differs */
  secondMode?: Mode;
  fs?: ApplyFs;
  tamper?: (dir: Direction, index: number, frame: Buffer, seen: Buffer[]) => Buffer[];
  acceptHello?: (h: Extract<Message, { type: 'hello' }>) => string | null;
  sender?: Partial<SenderOptions>;
  /** connect a raw channel instead of a sender */
  raw?: boolean;
}

interface Pair {
  prim: string;
  copy: string;
  outside: string;
  applier: Applier;
  sender: ReplicationSender;
  ch: Channel;
  receivers: Receiver[];
  listener: Listener;
  proxyClose: () => Promise<void>;
  logs: string[];
  close(): Promise<void>;
}

async function pair(o: PairOptions = {}): Promise<Pair> {
  const prim = await tmpDir('prim');
  const copy = await tmpDir('copy');
  const outside = await tmpDir('outside');
  const applier = new Applier({ dirs: [{ dir: D, root: copy }], fs: o.fs });
  const receivers: Receiver[] = [];
  const logs: string[] = [];
  const proxied = o.tamper !== undefined;
  const listener = await listenChannels({
    host: '127.0.0.1',
    port: 0,
    self: 'n2',
    allowedPeers: [{ name: 'n1', addr: proxied ? '127.0.0.1' : '127.0.0.2' }],
    module: 'db',
    key: KEY,
    log: (m) => logs.push(m),
    onChannel: (ch) =>
      receivers.push(receiveChanges({ channel: ch, applier, mode: o.secondMode ?? o.mode ?? 'none', acceptHello: o.acceptHello, log: (m) => logs.push(m) })),
  });
  let port = listener.port;
  let proxyClose = async () => {};
  if (proxied) {
    const proxy = await startProxy({ target: { host: '127.0.0.1', port }, localAddress: '127.0.0.1', tamper: o.tamper });
    port = proxy.port;
    proxyClose = () => proxy.close();
  }
  const ch = await connectChannel({ host: '127.0.0.1', port, localAddress: proxied ? undefined : '127.0.0.2', self: 'n1', peer: 'n2', module: 'db', key: KEY });
  await until('the SECOND accepted the channel', () => receivers.length === 1);
  const sender = o.raw
    ? (null as unknown as ReplicationSender)
    : createSender({ channel: ch, module: 'db', generation: '3@n1', mode: o.mode ?? 'none', dirs: [D], ...o.sender });
  return {
    prim, copy, outside, applier, sender, ch, receivers, listener, proxyClose, logs,
    async close() {
      sender?.close();
      ch.close();
      await proxyClose();
      await listener.close();
      for (const r of receivers) r.close();
      await Promise.all(receivers.map((r) => r.done));
      await applier.close();
      for (const d of [prim, copy, outside]) await rmrf(d);
    },
  };
}

/** What the FUSE layer's pass-through does on PRIM for the same change, with plain node:fs. */
async function onPrim(root: string, c: Change): Promise<void> {
  const p = (r: string) => (r === '.' ? root : path.join(root, r));
  // as PRIM's kernel keeps it, seen to the microsecond (libuv truncates a double to microseconds: centre the
  // microsecond so the double's rounding cannot cross it, as the applier does)
  const secs = (t: [number, number] | null) => (t ? t[0] + (Math.floor(t[1] / 1000) + 0.5) / 1e6 : 0);
  switch (c.op) {
    case 'write': {
      const h = await fsp.open(p(c.path), 'r+');
      await h.write(c.data, 0, c.data.length, c.offset);
      await h.close();
      return;
    }
    case 'truncate':
      return fsp.truncate(p(c.path), c.size);
    case 'create': {
      const h = await fsp.open(p(c.path), 'wx');
      await h.chmod(c.mode);
      await h.close();
      return;
    }
    case 'mkdir':
      await fsp.mkdir(p(c.path));
      return fsp.chmod(p(c.path), c.mode);
    case 'unlink':
      return fsp.unlink(p(c.path));
    case 'rmdir':
      return fsp.rmdir(p(c.path));
    case 'rename':
      return fsp.rename(p(c.from), p(c.to));
    case 'symlink':
      return fsp.symlink(c.target, p(c.path));
    case 'link':
      return fsp.link(p(c.from), p(c.to));
    case 'chmod':
      return fsp.chmod(p(c.path), c.mode);
    case 'chown':
      return fsp.lchown(p(c.path), c.uid, c.gid);
    case 'utimens':
      return fsp.lutimes(p(c.path), secs(c.atime), secs(c.mtime));
    case 'sync': {
      const h = await fsp.open(p(c.path), 'r');
      await (c.datasync ? h.datasync() : h.sync());
      await h.close();
      return;
    }
    default:
      throw new Error(`onPrim: ${c.op} not scripted`);
  }
}

type NoDir<T> = T extends unknown ? Omit<T, 'dir'> : never;
const ch = (c: NoDir<Change>): Change => ({ dir: D, ...c }) as Change;

/** Does each change on PRIM, then replicates it without waiting (pipelined); resolves when all are acknowledged. */
async function run(p: Pair, changes: Change[]): Promise<void> {
  const done: Promise<void>[] = [];
  for (const c of changes) {
    await onPrim(p.prim, c);
    done.push(p.sender.replicate(c));
  }
  await Promise.all(done);
}

/** The FUSE layer's closing utimens: PRIM's times on every entry, contents before their directory, the root last. */
async function stampTimes(root: string): Promise<Change[]> {
  const out: Change[] = [];
  let i = 0;
  const walk = async (rel: string) => {
    const abs = rel === '.' ? root : path.join(root, rel);
    const st = await fsp.lstat(abs);
    if (st.isDirectory()) for (const n of (await fsp.readdir(abs)).sort()) await walk(rel === '.' ? n : `${rel}/${n}`);
    i++;
    out.push(ch({ op: 'utimens', path: rel, atime: [1_650_000_000 + i, 0], mtime: [1_700_000_000 + i, (i * 123_457) % 1e9] }));
  };
  await walk('.');
  return out;
}

function script(): Change[] {
  const big = randomBytes(5 * 1024 * 1024 + 123); // over MAX_WRITE: goes as two changes
  return [
    ch({ op: 'chmod', path: '.', mode: 0o755 }),
    ch({ op: 'mkdir', path: 'app', mode: 0o755 }),
    ch({ op: 'mkdir', path: 'app/db', mode: 0o700 }),
    ch({ op: 'create', path: 'app/db/data.bin', mode: 0o600 }),
    ch({ op: 'write', path: 'app/db/data.bin', offset: 0, data: big }),
    ch({ op: 'write', path: 'app/db/data.bin', offset: 4096, data: Buffer.from('patched in place') }),
    ch({ op: 'write', path: 'app/db/data.bin', offset: 10 * 1024 * 1024, data: Buffer.from('sparse tail') }),
    ch({ op: 'truncate', path: 'app/db/data.bin', size: 9 * 1024 * 1024 }),
    ch({ op: 'create', path: 'app/db/wal', mode: 0o644 }),
    ch({ op: 'write', path: 'app/db/wal', offset: 0, data: Buffer.alloc(1000, 0x77), sync: 'data' }),
    ch({ op: 'sync', path: 'app/db/wal', datasync: true }),
    ch({ op: 'create', path: 'caf\u00e9', mode: 0o644 }),
    ch({ op: 'write', path: 'caf\u00e9', offset: 0, data: Buffer.from('NFC') }),
    ch({ op: 'create', path: 'cafe\u0301', mode: 0o644 }),
    ch({ op: 'write', path: 'cafe\u0301', offset: 0, data: Buffer.from('NFD') }),
    ch({ op: 'create', path: 'README', mode: 0o644 }),
    ch({ op: 'create', path: 'readme', mode: 0o600 }),
    ch({ op: 'create', path: 'line\nbreak', mode: 0o640 }),
    ch({ op: 'mkdir', path: '日本語', mode: 0o750 }),
    ch({ op: 'create', path: '日本語/ファイル', mode: 0o644 }),
    ch({ op: 'write', path: '日本語/ファイル', offset: 0, data: Buffer.from('こんにちは') }),
    ch({ op: 'symlink', target: 'app/db/data.bin', path: 'current' }),
    ch({ op: 'symlink', target: '/etc/hostname', path: 'abs-link' }),
    ch({ op: 'symlink', target: 'nowhere', path: 'dangling' }),
    ch({ op: 'link', from: 'app/db/wal', to: 'wal-hardlink' }),
    ch({ op: 'chmod', path: 'app/db/wal', mode: 0o4751 }),
    ch({ op: 'mkdir', path: 'tmp', mode: 0o1777 }),
    ch({ op: 'chown', path: 'app/db/wal', uid: 1000, gid: 1000 }),
    ch({ op: 'chown', path: 'current', uid: 2000, gid: 2001 }),
    ch({ op: 'mkdir', path: 'old', mode: 0o755 }),
    ch({ op: 'mkdir', path: 'old/inner', mode: 0o755 }),
    ch({ op: 'create', path: 'old/inner/a', mode: 0o644 }),
    ch({ op: 'write', path: 'old/inner/a', offset: 0, data: Buffer.from('moved with its directory') }),
    ch({ op: 'rename', from: 'old', to: 'new', flags: 0 }),
    ch({ op: 'rename', from: 'README', to: 'app/README', flags: 0 }),
    ch({ op: 'create', path: 'replaced', mode: 0o644 }),
    ch({ op: 'rename', from: 'readme', to: 'replaced', flags: 0 }),
    ch({ op: 'create', path: 'gone', mode: 0o644 }),
    ch({ op: 'unlink', path: 'gone' }),
    ch({ op: 'mkdir', path: 'gonedir', mode: 0o755 }),
    ch({ op: 'rmdir', path: 'gonedir' }),
    ch({ op: 'truncate', path: 'app/db/wal', size: 10 }),
    ch({ op: 'create', path: 'empty', mode: 0o400 }),
  ];
}

for (const mode of ['none', 'second'] as const) {
  test(`mode ${mode}: a scripted set of changes gives byte-identical trees (contents, modes, owners, links, mtimes)`, async () => {
    const p = await pair({ mode });
    try {
      await p.sender.ready;
      await run(p, script());
      await run(p, await stampTimes(p.prim));
      if (mode === 'second') await until('applied', () => p.receivers[0]!.stats().backlog === 0);
      const a = await snapshot(p.prim, { dirMtimes: true });
      const b = await snapshot(p.copy, { dirMtimes: true });
      assert.ok(a.length > 20);
      assert.equal(b, a);
      const st = p.sender.stats();
      assert.is(st.inFlight, 0);
      assert.ok(st.changes >= script().length + 1, `changes ${st.changes}`);
      assert.ok(st.bytesSent > 5 * 1024 * 1024);
      assert.type(st.lastRttMs, 'number');
      assert.is(p.applier.failed, null);
    } finally {
      await p.close();
    }
  });
}

test('pipelining: 2000 changes in flight under a small in-flight limit resolve in call order', async () => {
  const p = await pair({ sender: { maxInFlightBytes: 32 * 1024 } });
  try {
    await fsp.writeFile(path.join(p.copy, 'f'), '');
    const order: number[] = [];
    const all: Promise<void>[] = [];
    let maxQueued = 0;
    for (let i = 0; i < 2000; i++) {
      all.push(p.sender.replicate(ch({ op: 'write', path: 'f', offset: i * 100, data: Buffer.alloc(100, i % 256) })).then(() => void order.push(i)));
      maxQueued = Math.max(maxQueued, p.sender.stats().queued);
    }
    await Promise.all(all);
    assert.equal(order, [...Array(2000).keys()]);
    assert.ok(maxQueued > 0, 'the in-flight limit held changes back');
    const data = await fsp.readFile(path.join(p.copy, 'f'));
    assert.is(data.length, 200_000);
    assert.is(data[150_000], 1500 % 256);
    assert.equal([p.sender.stats().inFlight, p.sender.stats().queued, p.sender.stats().changes], [0, 0, 2000]);
  } finally {
    await p.close();
  }
});

// ── durability ordering ────────────────────────────────────────────────────────────────────────────────────────

function gate() {
  let open!: () => void;
  const opened = new Promise<void>((r) => (open = r));
  return { open, opened };
}

test('mode none: a sync resolves only after the SECOND fsync\'d the data', async () => {
  const events: string[] = [];
  const g = gate();
  let entered = false;
  const fs = hookedFs({
    fsync: async (target) => {
      if (!target.endsWith('/wal')) return;
      entered = true;
      events.push('fsync started');
      await g.opened;
      events.push('fsync done');
    },
  });
  const p = await pair({ mode: 'none', fs });
  try {
    await fsp.writeFile(path.join(p.copy, 'wal'), '');
    await p.sender.replicate(ch({ op: 'write', path: 'wal', offset: 0, data: Buffer.from('commit record') }));
    const s = p.sender.replicate(ch({ op: 'sync', path: 'wal', datasync: true })).then(() => void events.push('sync resolved'));
    await until('fsync entered', () => entered);
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    assert.equal(events, ['fsync started']);
    assert.is(p.receivers[0]!.stats().ackedUpTo, 1, 'the sync (seq 2) is not acknowledged');
    assert.is(p.sender.stats().inFlight, 1);
    g.open();
    await s;
    assert.equal(events, ['fsync started', 'fsync done', 'sync resolved']);
  } finally {
    g.open();
    await p.close();
  }
});

test('mode none: a syncfs resolves only after the SECOND\'s syncfs of its copy', async () => {
  const events: string[] = [];
  const g = gate();
  let entered = false;
  const fs: ApplyFs = {
    ...hookedFs({}),
    syncfs: async (root) => {
      entered = true;
      events.push(`syncfs ${root}`);
      await g.opened;
      events.push('syncfs done');
    },
  };
  const p = await pair({ mode: 'none', fs });
  try {
    await fsp.writeFile(path.join(p.copy, 'f'), '');
    await p.sender.replicate(ch({ op: 'write', path: 'f', offset: 0, data: Buffer.from('unsynced') }));
    const s = p.sender.replicate(ch({ op: 'sync', path: '.', datasync: false, syncfs: true })).then(() => void events.push('syncfs resolved'));
    await until('syncfs entered', () => entered);
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    assert.equal(events, [`syncfs ${p.copy}`]);
    g.open();
    await s;
    assert.equal(events, [`syncfs ${p.copy}`, 'syncfs done', 'syncfs resolved']);
  } finally {
    g.open();
    await p.close();
  }
});

test('mode none: an O_DSYNC write resolves only after its fdatasync', async () => {
  const events: string[] = [];
  const g = gate();
  const fs = hookedFs({
    fsync: async (_t, kind) => {
      events.push(`${kind} started`);
      await g.opened;
    },
  });
  const p = await pair({ mode: 'none', fs });
  try {
    await fsp.writeFile(path.join(p.copy, 'f'), '');
    const w = p.sender.replicate(ch({ op: 'write', path: 'f', offset: 0, data: Buffer.from('x'), sync: 'data' })).then(() => void events.push('resolved'));
    await until('fdatasync entered', () => events.length === 1);
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    assert.equal(events, ['datasync started']);
    g.open();
    await w;
    assert.equal(events, ['datasync started', 'resolved']);
  } finally {
    g.open();
    await p.close();
  }
});

test('mode second: a sync resolves on receipt, before the SECOND\'s fsync; the fsync still happens after', async () => {
  const g = gate();
  let fsyncs = 0;
  const fs = hookedFs({
    fsync: async () => {
      await g.opened;
      fsyncs++;
    },
  });
  const p = await pair({ mode: 'second', fs });
  try {
    await fsp.writeFile(path.join(p.copy, 'wal'), '');
    await p.sender.replicate(ch({ op: 'write', path: 'wal', offset: 0, data: Buffer.from('r') }));
    await p.sender.replicate(ch({ op: 'sync', path: 'wal', datasync: false }));
    assert.is(fsyncs, 0, 'acknowledged while the fsync is still blocked');
    g.open();
    await until('fsync done', () => fsyncs > 0 && p.receivers[0]!.stats().backlog === 0);
  } finally {
    g.open();
    await p.close();
  }
});

// ── storage errors ─────────────────────────────────────────────────────────────────────────────────────────────

test('disk full on the SECOND: nack → the sender rejects with ENOSPC; nothing after it is applied or acknowledged', async () => {
  const fs = hookedFs({
    write: (target) => {
      if (target.endsWith('/big')) throw fsError('ENOSPC', 28, 'no space left on device');
    },
  });
  const p = await pair({ mode: 'none', fs });
  const failures: Error[] = [];
  p.sender.onFailure((e) => failures.push(e));
  try {
    const results: Array<string> = [];
    const track = (i: number, pr: Promise<void>) => pr.then(() => (results[i] = 'ok'), (e: Error) => (results[i] = (e as ReplicationError).reason ?? e.name));
    const changes = [
      ch({ op: 'create', path: 'before', mode: 0o644 }),
      ch({ op: 'create', path: 'big', mode: 0o644 }),
      ch({ op: 'write', path: 'big', offset: 0, data: Buffer.alloc(1000) }),
      ch({ op: 'create', path: 'after', mode: 0o644 }),
      ch({ op: 'sync', path: 'after', datasync: false }),
    ];
    const all = changes.map((c, i) => track(i, p.sender.replicate(c)));
    const err = await p.sender.replicate(ch({ op: 'mkdir', path: 'later', mode: 0o755 })).catch((e: Error) => e);
    await Promise.all(all);
    assert.equal(results, ['ok', 'ok', 'nack', 'nack', 'nack']);
    assert.ok(err instanceof ReplicationError && err.reason === 'nack' && err.code === 'ENOSPC', String(err));
    assert.match(err.message, /n2 could not apply change 3 \(write "big" @0 \+1000 in \/srv\/app\/data\).*no space left on device \[ENOSPC\]/);
    assert.equal(await listAll(p.copy), ['before', 'big']);
    assert.is(p.receivers[0]!.stats().ackedUpTo, 2, 'never an ack covering the failed change');
    assert.is(failures.length, 1);
    assert.is(p.applier.failed?.code, 'ENOSPC');
    const late = await p.sender.replicate(ch({ op: 'mkdir', path: 'x', mode: 0o755 })).catch((e: Error) => e);
    assert.is(late, failures[0], 'every later replicate rejects with the same failure');
    assert.match(p.logs.join('\n'), /ENOSPC.*the replica is marked failed/);
  } finally {
    await p.close();
  }
});

test('EIO from the SECOND\'s fsync: the sync is rejected, never reported as durable', async () => {
  const fs = hookedFs({ fsync: () => { throw fsError('EIO', 5, 'input/output error'); } });
  const p = await pair({ mode: 'none', fs });
  try {
    await fsp.writeFile(path.join(p.copy, 'f'), '');
    await p.sender.replicate(ch({ op: 'write', path: 'f', offset: 0, data: Buffer.from('x') }));
    const e = await p.sender.replicate(ch({ op: 'sync', path: 'f', datasync: false })).catch((x: Error) => x);
    assert.ok(e instanceof ReplicationError && e.code === 'EIO', String(e));
  } finally {
    await p.close();
  }
});

test('a replica failed in an earlier session refuses the next session\'s changes until reset', async () => {
  const fs = hookedFs({ write: (t) => { if (t.endsWith('/bad')) throw fsError('EIO', 5); } });
  const p = await pair({ mode: 'none', fs });
  try {
    await p.sender.replicate(ch({ op: 'create', path: 'bad', mode: 0o644 }));
    await p.sender.replicate(ch({ op: 'write', path: 'bad', offset: 0, data: Buffer.from('x') })).catch(() => {});
    const ch2 = await connectChannel({ host: '127.0.0.1', port: p.listener.port, localAddress: '127.0.0.2', self: 'n1', peer: 'n2', module: 'db', key: KEY });
    const s2 = createSender({ channel: ch2, module: 'db', generation: '3@n1', mode: 'none', dirs: [D] });
    const refused = await s2.ready.catch((x: Error) => x);
    assert.ok(refused instanceof ReplicationError && refused.reason === 'nack', String(refused));
    assert.match(refused.message, /n2 refused to replicate db: this node's replica failed earlier \(change 2 \(write "bad".*must be reintegrated/);
    const e = await s2.replicate(ch({ op: 'mkdir', path: 'new-session', mode: 0o755 })).catch((x: Error) => x);
    assert.is(e, refused);
    assert.not.ok((await listAll(p.copy)).includes('new-session'));
    await p.applier.reset();
    const ch3 = await connectChannel({ host: '127.0.0.1', port: p.listener.port, localAddress: '127.0.0.2', self: 'n1', peer: 'n2', module: 'db', key: KEY });
    const s3 = createSender({ channel: ch3, module: 'db', generation: '3@n1', mode: 'none', dirs: [D] });
    await s3.replicate(ch({ op: 'mkdir', path: 'after-reset', mode: 0o755 }));
    assert.ok((await listAll(p.copy)).includes('after-reset'));
    s3.close();
  } finally {
    await p.close();
  }
});

// ── link loss, timeouts ────────────────────────────────────────────────────────────────────────────────────────

test('link cut mid-stream: every pending replicate rejects; the failure is reported once', async () => {
  const g = gate();
  const fs = hookedFs({ write: () => g.opened });
  const p = await pair({ mode: 'none', fs, tamper: (_d, _i, f) => [f] });
  const failures: Error[] = [];
  p.sender.onFailure((e) => failures.push(e));
  try {
    await fsp.writeFile(path.join(p.copy, 'f'), '');
    await p.sender.ready;
    const pending = Array.from({ length: 50 }, (_, i) => p.sender.replicate(ch({ op: 'write', path: 'f', offset: i, data: Buffer.from('z') })).catch((e: Error) => e));
    await until('some in flight', () => p.receivers[0]!.stats().received > 0);
    await p.proxyClose(); // the cable is pulled
    const errs = await Promise.all(pending);
    for (const e of errs) assert.ok(e instanceof ReplicationError && e.reason === 'link-lost', String(e));
    assert.is(failures.length, 1);
    assert.ok(p.sender.failure instanceof ReplicationError);
  } finally {
    g.open();
    await p.close();
  }
});

test('sendtimeout: a SECOND that never acknowledges → the pending change rejects with a timeout, not sooner', async () => {
  const g = gate();
  let reached = false;
  const fs = hookedFs({ open: async (t) => { if (t.endsWith('/stuck')) { reached = true; await g.opened; } } });
  const clock = new FakeClock();
  const p = await pair({ mode: 'none', fs, sender: { sendTimeoutMs: 200, clock } });
  try {
    await p.sender.ready;
    let settled = false;
    const pending = p.sender.replicate(ch({ op: 'create', path: 'stuck', mode: 0o644 })).catch((x: Error) => x).finally(() => { settled = true; });
    await until('the SECOND holds the change', () => reached);
    clock.advance(199);
    await new Promise((r) => setImmediate(r));
    assert.not.ok(settled, 'still waiting 1 ms before the send timeout');
    clock.advance(1);
    const e = await within(pending, 10_000, 'the change to reject once the fake clock reached the send timeout');
    assert.ok(e instanceof ReplicationError && e.reason === 'timeout', String(e));
    assert.match(e.message, /n2 did not acknowledge change 1 \(create "stuck"\) of db within 200 ms/);
  } finally {
    g.open();
    await p.close();
  }
});

test('a silent link (frames swallowed) is detected by the keepalive even with nothing to send', async () => {
  let blackhole = false;
  const p = await pair({ tamper: (_d, _i, f) => (blackhole ? [] : [f]), sender: { heartbeatMs: 20, deadMs: 150 } });
  try {
    await p.sender.ready;
    blackhole = true;
    const e = await new Promise<Error>((r) => p.sender.onFailure(r));
    assert.ok(e instanceof ReplicationError && e.reason === 'timeout', String(e));
    assert.match(e.message, /no frame from n2 .* for 150 ms/);
  } finally {
    await p.close();
  }
});

// ── a man in the middle on the replication LAN ─────────────────────────────────────────────────────────────────

// c2s frames: 0 hello, 1 proof, 2 the replication hello, 3… change 1, 2, 3…
const mitm: Array<[string, (d: Direction, i: number, f: Buffer, seen: Buffer[]) => Buffer[]]> = [
  ['flips a byte of change 3', (d, i, f) => {
    if (d === 'c2s' && i === 5) f[10]! ^= 0x20;
    return [f];
  }],
  ['drops change 3', (d, i, f) => (d === 'c2s' && i === 5 ? [] : [f])],
  ['duplicates change 2', (d, i, f) => (d === 'c2s' && i === 4 ? [f, f] : [f])],
  ['replays change 1 in place of change 3', (d, i, f, seen) => (d === 'c2s' && i === 5 ? [seen[3]!] : [f])],
  ['forges an ack for the PRIM (s2c, flipped)', (d, i, f) => {
    if (d === 's2c' && i === 3) f[6]! ^= 0x01;
    return [f];
  }],
];

for (const [name, tamper] of mitm) {
  test(`man in the middle ${name}: the channel closes with a clear error, nothing after it is applied or acknowledged`, async () => {
    const p = await pair({ mode: 'none', tamper });
    try {
      await p.sender.ready.catch(() => {});
      const names = ['c1', 'c2', 'c3', 'c4', 'c5'];
      const res = await Promise.all(names.map((n) => p.sender.replicate(ch({ op: 'mkdir', path: n, mode: 0o755 })).then(() => 'ok', (e: Error) => e)));
      const failed = res.filter((r) => r !== 'ok') as Error[];
      assert.ok(failed.length >= 1, 'some change must fail');
      for (const e of failed) assert.instance(e, ReplicationError);
      const applied = await listAll(p.copy);
      const acked = res.filter((r) => r === 'ok').length;
      assert.equal(res.slice(0, acked), Array(acked).fill('ok'), 'acknowledged changes are a prefix');
      assert.ok(applied.length >= acked, 'everything acknowledged was applied');
      assert.equal(applied, names.slice(0, applied.length), 'what was applied is a prefix, in order');
      if (name.includes('s2c')) {
        assert.match(String(p.sender.failure?.message), /failed authentication/);
      } else {
        const reason = await p.receivers[0]!.done;
        assert.ok(reason instanceof ReplicationError && reason.reason === 'tampered', String(reason));
        assert.match(reason.message, /failed authentication \(tampered, forged, replayed, reordered or dropped on the way\)/);
        assert.ok(applied.length <= 2, `changes after the tampered frame were applied: ${applied}`);
      }
    } finally {
      await p.close();
    }
  });
}

test('wrong cluster key and wrong source address: refused, nothing applied', async () => {
  const p = await pair();
  try {
    const e1 = await connectChannel({ host: '127.0.0.1', port: p.listener.port, localAddress: '127.0.0.2', self: 'n1', peer: 'n2', module: 'db', key: generateKey() })
      .catch((e: Error) => e);
    assert.ok(e1 instanceof UserError && /cluster key differs/.test(e1.message), String(e1));
    const e2 = await connectChannel({ host: '127.0.0.1', port: p.listener.port, localAddress: '127.0.0.3', self: 'n1', peer: 'n2', module: 'db', key: KEY })
      .catch((e: Error) => e);
    // an address that is no node's in cluster.xml is closed before the handshake: the client only sees the close
    assert.ok(e2 instanceof ReplicationError && e2.reason === 'link-lost' && /address not in cluster.xml/.test(e2.message), String(e2));
    await until('both refusals counted', () => p.listener.stats().refused.badKey === 1 && p.listener.stats().refused.badAddress === 1);
    assert.is(p.listener.stats().accepted, 1);
    assert.is(p.receivers.length, 1);
    assert.equal(await listAll(p.copy), []);
  } finally {
    await p.close();
  }
});

// ── a malicious or broken PRIM (raw channel, no sender-side checks) ────────────────────────────────────────────

function rawPeer(c: Channel) {
  const got: Message[] = [];
  c.onFrame((f) => {
    const d = decode(f);
    if (d.ok) got.push(d.msg);
  });
  return { got, send: (m: Message) => c.send(encode(m)) };
}

const hello: Message = { type: 'hello', module: 'db', generation: '3@n1', mode: 'none', dirs: [D] };

test('path traversal from a malicious PRIM: nack with the errno, nothing written outside the root', async () => {
  const p = await pair({ raw: true });
  try {
    const r = rawPeer(p.ch);
    await r.send(hello);
    await r.send({ type: 'change', seq: 1, change: { dir: D, op: 'symlink', target: p.outside, path: 'esc' } });
    await r.send({ type: 'change', seq: 2, change: { dir: D, op: 'create', path: 'esc/pwned', mode: 0o644 } });
    await r.send({ type: 'change', seq: 3, change: { dir: D, op: 'create', path: '../pwned', mode: 0o644 } });
    await until('answers', () => r.got.filter((m) => m.type === 'nack').length === 2);
    assert.equal(r.got.map((m) => m.type), ['ack', 'ack', 'nack', 'nack']);
    const [n1, n2] = r.got.filter((m) => m.type === 'nack') as Array<Extract<Message, { type: 'nack' }>>;
    assert.ok(['ENOTDIR', 'ELOOP'].includes(n1!.code), n1!.code);
    assert.is(n1!.seq, 2);
    assert.is(n2!.seq, 3);
    assert.match(n2!.message, /refused: the replica failed earlier/);
    assert.equal(await listAll(p.outside), []);
    assert.not.ok(await fsp.access(path.join(path.dirname(p.copy), 'pwned')).then(() => true, () => false));
  } finally {
    await p.close();
  }
});

test('a PRIM that skips a seq, or sends an undecodable message, is cut off; nothing after is applied', async () => {
  for (const bad of [
    (r: ReturnType<typeof rawPeer>) => r.send({ type: 'change', seq: 3, change: { dir: D, op: 'mkdir', path: 'skipped', mode: 0o755 } }),
    (r: ReturnType<typeof rawPeer>, c: Channel) => c.send(Buffer.from([1, 99])),
    (r: ReturnType<typeof rawPeer>) => r.send({ type: 'ack', upTo: 1 }),
  ]) {
    const p = await pair({ raw: true });
    try {
      const r = rawPeer(p.ch);
      await r.send(hello);
      await r.send({ type: 'change', seq: 1, change: { dir: D, op: 'mkdir', path: 'first', mode: 0o755 } });
      await bad(r, p.ch);
      await r.send({ type: 'change', seq: 2, change: { dir: D, op: 'mkdir', path: 'after', mode: 0o755 } }).catch(() => {});
      const reason = await p.receivers[0]!.done;
      assert.ok(reason instanceof ReplicationError && reason.reason === 'protocol', String(reason));
      assert.equal(await listAll(p.copy), ['first']);
    } finally {
      await p.close();
    }
  }
});

test('hello refused: another module mode, other replicated dirs, or a generation the SECOND does not accept', async () => {
  const cases: Array<[PairOptions, Partial<SenderOptions>, RegExp]> = [
    [{ mode: 'none', secondMode: 'second' }, {}, /async="none", this node is configured with async="second"/],
    [{}, { dirs: [D, '/srv/other'] }, /replicated dirs differ.*\/srv\/other not replicated here/],
    [{}, { dirs: [] }, /\/srv\/app\/data not replicated by n1/],
    [{ acceptHello: (h) => (h.generation === '3@n1' ? 'generation 3@n1 is older than this node\'s 4@n2' : null) }, {}, /older than this node's 4@n2/],
  ];
  for (const [po, so, re] of cases) {
    const p = await pair({ ...po, sender: so });
    try {
      const e = await p.sender.ready.then(() => null, (x: Error) => x);
      assert.ok(e instanceof ReplicationError && e.reason === 'nack', String(e));
      assert.match(e.message, /n2 refused to replicate db/);
      assert.match(e.message, re);
      assert.match(p.logs.join('\n'), re);
    } finally {
      await p.close();
    }
  }
});

test('a SECOND that acknowledges what was never sent is cut off (protocol)', async () => {
  const l = await listenChannels({
    host: '127.0.0.1', port: 0, self: 'n2', allowedPeers: [{ name: 'n1', addr: '127.0.0.2' }], module: 'db', key: KEY,
    onChannel: (c) => {
      c.onFrame(() => {});
      void c.send(encode({ type: 'ack', upTo: 0 }));
      void c.send(encode({ type: 'ack', upTo: 5 }));
    },
  });
  try {
    const c = await connectChannel({ host: '127.0.0.1', port: l.port, localAddress: '127.0.0.2', self: 'n1', peer: 'n2', module: 'db', key: KEY });
    const s = createSender({ channel: c, module: 'db', generation: 'g', mode: 'none', dirs: [D] });
    const e = await new Promise<Error>((r) => s.onFailure(r));
    assert.ok(e instanceof ReplicationError && e.reason === 'protocol', String(e));
    assert.match(e.message, /ack for 5, but only up to 0 was sent/);
  } finally {
    await l.close();
  }
});

test('mode second: a change that fails after it was acknowledged still fails the sender (→ replication-failed)', async () => {
  const g = gate();
  const fs = hookedFs({
    write: async () => {
      await g.opened;
      throw fsError('ENOSPC', 28);
    },
  });
  const p = await pair({ mode: 'second', fs });
  try {
    await fsp.writeFile(path.join(p.copy, 'f'), '');
    const failed = new Promise<Error>((r) => p.sender.onFailure(r));
    await p.sender.replicate(ch({ op: 'write', path: 'f', offset: 0, data: Buffer.from('x') }));
    g.open();
    const e = await failed;
    assert.ok(e instanceof ReplicationError && e.code === 'ENOSPC', String(e));
  } finally {
    g.open();
    await p.close();
  }
});

test('the sender refuses, without sending, a change that can never be valid', async () => {
  const p = await pair();
  try {
    for (const c of [
      { dir: '/not/replicated', op: 'mkdir', path: 'a', mode: 0o755 },
      { dir: D, op: 'mkdir', path: '../a', mode: 0o755 },
      { dir: D, op: 'unlink', path: '.' },
      { dir: D, op: 'rename', from: 'a', to: '/abs', flags: 0 },
      { dir: D, op: 'symlink', target: '', path: 'l' },
      { dir: D, op: 'symlink', target: 'a\0b', path: 'l' },
    ] as Change[]) {
      const e = await p.sender.replicate(c).catch((x: Error) => x);
      assert.instance(e, BugError);
    }
    assert.is(p.sender.failure, null, 'the stream is still usable');
    await p.sender.replicate(ch({ op: 'mkdir', path: 'ok', mode: 0o755 }));
    assert.equal(await listAll(p.copy), ['ok']);
  } finally {
    await p.close();
  }
});

test('close() rejects what is pending with reason closed, without reporting a replication failure', async () => {
  const g = gate();
  const fs = hookedFs({ open: async (t) => { if (t.endsWith('/slow')) await g.opened; } });
  const p = await pair({ mode: 'none', fs });
  const failures: Error[] = [];
  p.sender.onFailure((e) => failures.push(e));
  try {
    const pending = p.sender.replicate(ch({ op: 'create', path: 'slow', mode: 0o644 })).catch((e: Error) => e);
    await until('received', () => p.receivers[0]!.stats().received === 1);
    p.sender.close();
    const e = await pending;
    assert.ok(e instanceof ReplicationError && e.reason === 'closed', String(e));
    assert.equal(failures, []);
  } finally {
    g.open();
    await p.close();
  }
});

test.run();
