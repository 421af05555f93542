// The FUSE passthrough's freeze gate (freeze-gate.ts), first as a pure state machine, then on a real /dev/fuse mount
// (root). Each mount test mounts a fresh temp backing dir (/tmp/tandem-fuse-freeze-*/backing at …/mnt) and unmounts
// it in `finally`. The server runs in this process's worker thread, so this thread touches the mount only with async
// fs calls; every write to the mount runs in a child process (sh, node). The backing dir is not the mount: this
// thread reads it directly to see what has reached the backing store.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { run, type RunResult } from '../../src/platform/exec.js';
import { mutates } from '../../src/replication/fuse/dispatch.js';
import { FreezeControl, FreezeGate, freezeGateBuffer } from '../../src/replication/fuse/freeze-gate.js';
import { type AsyncChangeSink, type Change, mountPassthrough, type PassthroughMount } from '../../src/replication/fuse/index.js';
import { encodeRequest, Op, OpenIn, ReadIn } from '../../src/replication/fuse/protocol.js';
import { within } from './wait-for.js';

const PREFIX = '/tmp/tandem-fuse-freeze-';

// ── the gate alone ─────────────────────────────────────────────────────────────────────────────────────────────────

test('mutates: changes, fsync and truncating or creating opens are held; reads and plain opens are not', () => {
  const b = Buffer.alloc(256);
  const h = (opcode: number) => ({ opcode, unique: 2, nodeid: 1, uid: 0, gid: 0, pid: 1 });
  const open = (flags: number) => encodeRequest(b, h(Op.OPEN), { struct: OpenIn, value: { flags, openFlags: 0 } });
  assert.ok(mutates(b, open(fs.constants.O_WRONLY | fs.constants.O_TRUNC)), 'O_TRUNC');
  assert.ok(mutates(b, open(fs.constants.O_WRONLY | fs.constants.O_CREAT)), 'O_CREAT');
  assert.not.ok(mutates(b, open(fs.constants.O_RDWR | fs.constants.O_APPEND)), 'a plain open for writing');
  const plain = (op: number) => encodeRequest(b, h(op), { struct: ReadIn, value: { fh: 1, offset: 0, size: 1, readFlags: 0, lockOwner: 0, flags: 0 } });
  for (const op of [Op.WRITE, Op.SETATTR, Op.CREATE, Op.MKNOD, Op.MKDIR, Op.UNLINK, Op.RMDIR, Op.RENAME, Op.RENAME2, Op.SYMLINK, Op.LINK, Op.FALLOCATE, Op.FSYNC, Op.FSYNCDIR]) {
    assert.ok(mutates(b, plain(op)), `op ${op}`);
  }
  for (const op of [Op.LOOKUP, Op.GETATTR, Op.READ, Op.READDIR, Op.READDIRPLUS, Op.OPENDIR, Op.STATFS, Op.FLUSH, Op.RELEASE, Op.RELEASEDIR, Op.FORGET, Op.ACCESS, Op.LSEEK, Op.READLINK, Op.NOTIFY_REPLY, Op.INIT]) {
    assert.not.ok(mutates(b, plain(op)), `op ${op}`);
  }
});

test('gate: freeze waits for the operation in progress; held requests run in order after thaw, which wakes the worker', async () => {
  const sab = freezeGateBuffer();
  let wakes = 0;
  const control = new FreezeControl(sab, () => wakes++);
  const waits: number[] = [];
  const gate = new FreezeGate(sab, (ms) => waits.push(ms));
  assert.ok(gate.enter(), 'open gate');
  let quiet = false;
  const p = control.freeze().then(() => { quiet = true; });
  assert.is(control.freeze(), control.freeze(), 'freeze while frozen: the same promise');
  await sleep(20);
  assert.not.ok(quiet, 'an operation is in progress');
  gate.leave();
  await p;
  assert.ok(quiet);
  assert.not.ok(gate.enter(), 'closed');
  gate.hold(Buffer.from('first'), 5, 0);
  assert.not.ok(gate.runnable);
  assert.is(control.held, 1);
  control.thaw();
  assert.is(wakes, 1, 'thaw with a held request wakes the worker');
  control.thaw();
  assert.is(wakes, 1, 'thaw when not frozen is a no-op');
  assert.not.ok(gate.enter(), 'a newer request waits behind the held one');
  gate.hold(Buffer.from('second'), 6, 0);
  assert.ok(gate.runnable);
  const order: string[] = [];
  for (let r = gate.next(); r; r = gate.next()) {
    order.push(r.req.toString());
    gate.leave();
  }
  assert.equal(order, ['first', 'second']);
  assert.is(waits.length, 2);
  assert.is(control.held, 0);
  assert.ok(gate.enter(), 'open again once the held ones ran');
  gate.leave();
  assert.is(control.freezes, 1);
});

test('gate: thaw or close resolves a pending freeze; after close freeze resolves at once', async () => {
  const sab = freezeGateBuffer();
  const control = new FreezeControl(sab, () => {});
  const gate = new FreezeGate(sab);
  assert.ok(gate.enter());
  const p = control.freeze();
  control.thaw();
  await p;
  const q = control.freeze();
  control.close();
  await q;
  await control.freeze();
  assert.not.ok(control.isFrozen, 'closed for good');
  gate.leave();
});

// ── on a real mount ────────────────────────────────────────────────────────────────────────────────────────────────

interface Fx {
  base: string;
  backing: string;
  mnt: string;
  m: PassthroughMount;
  logs: string[];
  /** a shell script in the mount (cwd = mount), in a child process; code -1 if it timed out */
  sh(script: string): Promise<RunResult>;
  M(rel: string): string;
  B(rel: string): string;
}

interface FxOptions {
  sink?: AsyncChangeSink;
  writebackCache?: boolean;
}

async function withMount(fn: (f: Fx) => Promise<void>, o: FxOptions = {}): Promise<void> {
  const base = fs.mkdtempSync(PREFIX);
  fs.chmodSync(base, 0o755);
  const backing = path.join(base, 'backing');
  const mnt = path.join(base, 'mnt');
  fs.mkdirSync(backing);
  fs.mkdirSync(mnt);
  const logs: string[] = [];
  let m: PassthroughMount | null = null;
  try {
    m = await mountPassthrough({ backing, mountpoint: mnt, sink: o.sink, writebackCache: o.writebackCache, log: (l) => logs.push(l) });
    const fx: Fx = {
      base, backing, mnt, m, logs,
      // never rejects: a child still running when a test fails must not become an unhandled rejection
      sh: (script) => run('sh', ['-c', `cd '${mnt}' && umask 022 && ${script}`], { reject: false, timeoutMs: 60_000 })
        .catch((err: Error) => ({ code: -1, stdout: '', stderr: err.message })),
      M: (rel) => path.join(mnt, rel),
      B: (rel) => path.join(backing, rel),
    };
    current = fx;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      fn(fx),
      new Promise((_, rej) => { timer = setTimeout(() => rej(new Error('test timed out; unmounting')), 90_000); }),
    ]).finally(() => clearTimeout(timer));
  } catch (err) {
    if (logs.length) console.error(`server log:\n  ${logs.join('\n  ')}`);
    throw err;
  } finally {
    await m?.unmount();
    const left = mountedUnder(base);
    if (left.length === 0) await fsp.rm(base, { recursive: true, force: true }); // never recurse into a live mount
    assert.equal(left, [], `nothing left mounted under ${base}`);
  }
}

function mountedUnder(base: string): string[] {
  return fs.readFileSync('/proc/mounts', 'utf8').split('\n').filter((l) => l.split(' ')[1]?.startsWith(base));
}

let current: Fx | null = null;

async function until(what: string, cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}; gateHeld ${current?.m.stats().gateHeld}`);
    await sleep(5);
  }
}

/** whether `p` is still pending after `ms` */
async function pendingAfter(p: Promise<unknown>, ms: number): Promise<boolean> {
  let settled = false;
  void p.then(() => { settled = true; }, () => { settled = true; });
  await sleep(ms);
  return !settled;
}

async function ok(p: Promise<RunResult>, what: string): Promise<string> {
  const r = await p;
  assert.is(r.code, 0, `${what}: ${r.stderr}`);
  return r.stdout;
}

const read = (f: string) => fs.readFileSync(f, 'utf8'); // the backing dir only, never the mount

for (const wc of [false, true]) {
  const mode = wc ? ' [writeback cache]' : '';
  test(`a write started during a freeze reaches the backing file only after thaw; reads are served meanwhile${mode}`, () => withMount(async (f) => {
    await ok(f.sh('echo a > f && mkdir d && echo inside > d/g'), 'setup');
    await f.m.freeze();
    assert.ok(f.m.frozen);
    const writer = f.sh('echo b >> f && sync f');
    await until('the write held at the gate', () => f.m.stats().gateHeld >= 1);
    const heldSince = performance.now(); // the write was held already, and stays held until thaw
    assert.ok(await pendingAfter(writer, 300), 'the writer waits');
    assert.is(read(f.B('f')), 'a\n', 'nothing reached the backing file');
    // reads from this process (async) and from a child, while a write is held
    assert.is(await fsp.readFile(f.M('d/g'), 'utf8'), 'inside\n');
    assert.equal((await fsp.readdir(f.M('.'))).sort(), ['d', 'f']);
    assert.is(await ok(f.sh('cat d/g && ls d && stat -c %s d/g && df . >/dev/null && echo done'), 'reads'), 'inside\ng\n7\ndone');
    assert.is(read(f.B('f')), 'a\n');
    await f.m.freeze(); // idempotent
    const heldAtLeast = performance.now() - heldSince;
    f.m.thaw();
    assert.not.ok(f.m.frozen);
    await ok(writer, 'writer');
    assert.is(read(f.B('f')), 'a\nb\n');
    const s = f.m.stats();
    assert.is(s.freezes, 1);
    assert.is(s.gateHeld, 0);
    assert.ok(s.gateWaits >= 1, 'counted');
    // the stat covers at least the span the test saw the write held (1 ms for the stats' whole milliseconds)
    assert.ok(s.gateWaitMaxMs >= heldAtLeast - 1 && s.gateWaitMs >= s.gateWaitMaxMs, `waited ${s.gateWaitMaxMs} ms, held at least ${heldAtLeast.toFixed(1)} ms`);
    f.m.thaw(); // not frozen: a no-op
  }, { writebackCache: wc }));
}

// The kernel keeps a directory locked while a change of a name in it is with the server, so two name changes in one
// directory would meet in the kernel, never both reaching the gate, and a listing or an uncached lookup there would
// wait for the thaw (as behind any slow change). So each name change runs in its own directory, the reads in r/ and
// in w/ on files whose change is held.
test('every kind of change waits at the gate, all at once, and each is applied after thaw', () => withMount(async (f) => {
  const NAMES = ['mv', 'rm', 'rmdir', 'mkdir', 'touch', 'ln', 'mkfifo'];
  await ok(f.sh(`mkdir w r ${NAMES.join(' ')} && echo x > r/x && cd w && echo t > trunc && echo c > chmod && echo s > size && echo k > keep && cd .. && echo m > mv/a && echo r > rm/a && mkdir rmdir/a`), 'setup');
  const W = (rel: string) => f.B(`w/${rel}`);
  const ls = (d: string) => fs.readdirSync(f.B(d)).sort();
  const before = Object.fromEntries(NAMES.map((d) => [d, ls(d)]));
  await f.m.freeze();
  const changes = [
    'cd w && : > trunc', 'cd w && chmod 600 chmod', 'cd w && truncate -s 1 size', 'cd w && printf more >> keep',
    'mv mv/a mv/b', 'rm rm/a', 'rmdir rmdir/a', 'mkdir mkdir/a', 'touch touch/a', 'ln -s x ln/a', 'mkfifo mkfifo/a',
  ].map((c) => f.sh(c));
  await until(`${changes.length} changes held`, () => f.m.stats().gateHeld === changes.length);
  // not w/keep: the kernel keeps the pages of a write locked until the server answers it
  assert.is(await ok(f.sh('cat r/x && ls r && cat w/chmod && stat -c %s w/size && ls | wc -l'), 'reads'), 'x\nx\nc\n2\n9');
  for (const d of NAMES) assert.equal(ls(d), before[d], `${d}: no name changed`);
  assert.is(read(W('trunc')), 't\n');
  assert.is(fs.statSync(W('chmod')).mode & 0o777, 0o644);
  assert.is(fs.statSync(W('size')).size, 2);
  assert.is(read(W('keep')), 'k\n');
  f.m.thaw();
  for (const c of changes) await ok(c, 'change');
  assert.equal(Object.fromEntries(NAMES.map((d) => [d, ls(d)])), { mv: ['b'], rm: [], rmdir: [], mkdir: ['a'], touch: ['a'], ln: ['a'], mkfifo: ['a'] });
  assert.is(read(W('trunc')), '');
  assert.is(fs.statSync(W('chmod')).mode & 0o777, 0o600);
  assert.is(fs.statSync(W('size')).size, 1);
  assert.is(read(W('keep')), 'k\nmore');
  assert.is(f.m.stats().gateWaits, changes.length);
}));

test('held name changes alone (no open file to wake the server through) also run after thaw', () => withMount(async (f) => {
  await f.m.freeze();
  // the second mkdir waits in the kernel for the directory the first one (held) keeps locked
  const changes = ['mkdir a', 'sleep 0.1; mkdir d'].map((c) => f.sh(c));
  await until('a change held', () => f.m.stats().gateHeld === 1);
  await sleep(200);
  assert.is(f.m.stats().gateHeld, 1);
  assert.equal(fs.readdirSync(f.backing), []);
  f.m.thaw();
  await ok(changes[0]!, 'mkdir');
  await ok(changes[1]!, 'mkdir');
  assert.equal(fs.readdirSync(f.backing).sort(), ['a', 'd']);
  for (let i = 0; i < 5; i++) {
    await f.m.freeze();
    const c = f.sh(`mkdir e${i}`);
    await until('held', () => f.m.stats().gateHeld === 1);
    f.m.thaw();
    await ok(c, `mkdir e${i}`);
  }
  assert.is(fs.readdirSync(f.backing).length, 7);
}));

test('freeze waits for an operation blocked in a slow sink and resolves once it has completed', async () => {
  let release!: () => void;
  const released = new Promise<void>((r) => { release = r; });
  const seen: Change[] = [];
  const sink: AsyncChangeSink = {
    async onChange(c) {
      seen.push(c);
      if (c.op === 'write' && Buffer.from(c.data).toString() === 'slow') await released;
    },
    async onSync() {},
  };
  await withMount(async (f) => {
    await ok(f.sh('echo a > f'), 'setup');
    const slow = f.sh('printf slow >> f');
    await until('the slow write in the sink', () => seen.some((c) => c.op === 'write' && Buffer.from(c.data).toString() === 'slow'));
    const frozen = f.m.freeze();
    assert.ok(await pendingAfter(frozen, 300), 'freeze waits for the write in the sink');
    assert.ok(await pendingAfter(slow, 0), 'the write has not returned');
    release();
    await frozen;
    await ok(slow, 'slow writer');
    assert.is(read(f.B('f')), 'a\nslow');
    const next = f.sh('printf next >> f');
    await until('the next write held', () => f.m.stats().gateHeld === 1);
    assert.is(read(f.B('f')), 'a\nslow');
    f.m.thaw();
    await ok(next, 'next writer');
    assert.is(read(f.B('f')), 'a\nslownext');
  }, { sink });
});

test('unmount while frozen completes; the held write finishes first', async () => {
  let unmounted = false;
  await withMount(async (f) => {
    await ok(f.sh('echo a > f'), 'setup');
    await f.m.freeze();
    const writer = f.sh('echo z >> f');
    await until('the write held', () => f.m.stats().gateHeld === 1);
    await within(f.m.unmount(), 15_000, 'unmount while a write is held by the freeze');
    unmounted = true;
    assert.equal(mountedUnder(f.base), []);
    await writer;
    assert.is(read(f.B('f')), 'a\nz\n', 'the held write ran when the gate opened');
    await f.m.freeze(); // after unmount: resolves at once
  });
  assert.ok(unmounted);
});

/** Appends numbered lines to <mnt>/log with one write each (fsync every 50th) until <stop> exists; prints the count. */
const WRITER = `
const fs = require('node:fs');
const [mnt, stop] = process.argv.slice(1);
const fd = fs.openSync(mnt + '/log', 'a');
let i = 0;
while (!fs.existsSync(stop)) {
  fs.writeSync(fd, 'line ' + i + '\\n');
  if (++i % 50 === 0) fs.fsyncSync(fd);
}
fs.closeSync(fd);
process.stdout.write(String(i));
`;

for (const wc of [false, true]) {
  const mode = wc ? ' [writeback cache]' : '';
  test(`100 freeze/thaw cycles under a concurrent writer: nothing passes a freeze, nothing is lost or reordered${mode}`, () => withMount(async (f) => {
    const stop = path.join(f.base, 'stop'); // outside the mount: the writer polls it directly
    const writer = run(process.execPath, ['-e', WRITER, f.mnt, stop], { reject: false, timeoutMs: 60_000 })
      .catch((err: Error) => ({ code: -1, stdout: '', stderr: err.message }));
    await until('the writer started', () => fs.existsSync(f.B('log')) && fs.statSync(f.B('log')).size > 0);
    for (let i = 0; i < 100; i++) {
      await f.m.freeze();
      const size = fs.statSync(f.B('log')).size;
      await sleep(i % 10 === 0 ? 20 : 2);
      assert.is(fs.statSync(f.B('log')).size, size, `cycle ${i}: the backing file changed while frozen`);
      f.m.thaw();
      await sleep(i % 3);
    }
    fs.writeFileSync(stop, '');
    const r = await writer;
    assert.is(r.code, 0, r.stderr);
    const n = Number(r.stdout);
    assert.ok(n > 100, `the writer made progress (${n} lines)`);
    const want = Array.from({ length: n }, (_, i) => `line ${i}\n`).join('');
    assert.ok(read(f.B('log')) === want, `the backing file holds exactly the ${n} lines in order`);
    const s = f.m.stats();
    assert.is(s.freezes, 100);
    assert.is(s.gateHeld, 0);
    assert.ok(s.gateWaits > 0, 'some writes were held');
  }, { writebackCache: wc }));
}

test.run();
