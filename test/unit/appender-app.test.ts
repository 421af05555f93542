import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { repoRoot } from '../../src/lab/spec.js';

// The appender application of examples/appender, alone on 127.0.0.1 (no lab): protocol, record format, durability
// order (record on disk before "ok"), error replies, and the exit after an I/O error.
const APP = path.join(repoRoot(), 'examples', 'appender', 'appender.mjs');
const CLIENT = path.join(repoRoot(), 'examples', 'appender', 'client.mjs');

interface Server {
  child: ChildProcess;
  /** the appender's own PID (not the wrapper's) */
  pid: number;
  port: number;
  dir: string;
  file: string;
  output: () => string;
  exited: Promise<number | null>;
}

// Every process a test starts, killed (SIGKILL) after the suite, whatever happened, with the temporary files.
const started = new Set<number>();
const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-appender-'));
let tmpCount = 0;
function tmpDir(): string {
  const d = path.join(tmpRoot, String(++tmpCount));
  fs.mkdirSync(d);
  return d;
}
test.after(() => {
  for (const pid of started) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  fs.rmSync(tmpRoot, { recursive: true, force: true });
});

function track(child: ChildProcess): Promise<number | null> {
  if (child.pid !== undefined) started.add(child.pid);
  return new Promise<number | null>((resolve) =>
    child.on('exit', (code) => {
      if (child.pid !== undefined) started.delete(child.pid);
      resolve(code);
    }),
  );
}

/**
 * Starts appender.mjs on 127.0.0.1 (a free port unless `port`), appending under `dir`, optionally under a wrapper
 * (`argvPrefix`, e.g. strace); resolves once it listens, rejects when it exits first or does not listen within 10 s.
 */
async function startServer(dir: string, o: { port?: number; argvPrefix?: string[] } = {}): Promise<Server> {
  const argv = [...(o.argvPrefix ?? []), process.execPath, APP];
  const child = spawn(argv[0]!, argv.slice(1), {
    env: { ...process.env, APPENDER_DIR: dir, APPENDER_PORT: String(o.port ?? 0), APPENDER_HOST: '127.0.0.1', TANDEM_NODE: 'unit' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = track(child);
  let gone = false;
  void exited.then(() => (gone = true));
  const deadline = Date.now() + 10_000;
  for (;;) {
    const m = /\(pid (\d+)\) listening on 127\.0\.0\.1:(\d+)/.exec(out);
    if (m) {
      const pid = Number(m[1]);
      started.add(pid);
      return { child, pid, port: Number(m[2]), dir, file: path.join(dir, 'records.log'), output: () => out, exited };
    }
    if (gone) throw new Error(`appender exited ${child.exitCode} at start:\n${out}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`appender did not listen within 10 s:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** SIGTERM to the appender itself (its wrapper, if any, exits with it); SIGKILL after 5 s. Resolves with the exit code. */
async function stopServer(s: Server): Promise<number | null> {
  if (s.child.exitCode === null && s.child.signalCode === null) {
    try {
      process.kill(s.pid, 'SIGTERM');
    } catch {
      // already gone
    }
    const timer = setTimeout(() => {
      for (const pid of [s.pid, s.child.pid!]) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }, 5000);
    await s.exited;
    clearTimeout(timer);
  }
  started.delete(s.pid);
  return s.exited;
}

/** Polls `cond` every 20 ms; throws naming `what` after `ms`. */
async function until(what: string, cond: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A line-oriented client: `ask` writes lines and resolves with as many reply lines. */
async function connect(port: number): Promise<{ ask: (lines: string[]) => Promise<string[]>; close: () => void; socket: net.Socket }> {
  const socket = net.connect({ host: '127.0.0.1', port });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  socket.setEncoding('utf8');
  let buf = '';
  const lines: string[] = [];
  let wake: (() => void) | null = null;
  socket.on('data', (d: string) => {
    buf += d;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      lines.push(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
    }
    wake?.();
  });
  socket.on('close', () => wake?.());
  socket.on('error', () => undefined);
  const ask = async (req: string[]): Promise<string[]> => {
    socket.write(req.map((l) => `${l}\n`).join(''));
    const deadline = Date.now() + 5000;
    while (lines.length < req.length) {
      if (socket.destroyed || Date.now() > deadline) throw new Error(`${lines.length}/${req.length} replies: ${lines.join(' | ')}`);
      await new Promise<void>((r) => {
        wake = r;
        setTimeout(r, 50);
      });
    }
    return lines.splice(0, req.length);
  };
  return { ask, close: () => socket.destroy(), socket };
}

test('100 appends one at a time: "ok <id>" each, after the record line is in the file', async () => {
  const s = await startServer(path.join(tmpDir(), 'data'));
  try {
    const c = await connect(s.port);
    for (let i = 1; i <= 100; i++) {
      assert.equal(await c.ask([`append ${i}`]), [`ok ${i}`]);
      // the record is written before the reply (fdatasync in between: see the strace test)
      assert.ok(`\n${fs.readFileSync(s.file, 'utf8')}`.endsWith(`\n${i}\n`), `record ${i} in the file when acknowledged`);
    }
    c.close();
    const want = Array.from({ length: 100 }, (_, i) => `${i + 1}\n`).join('');
    assert.is(fs.readFileSync(s.file, 'utf8'), want);
  } finally {
    assert.is(await stopServer(s), 0, s.output());
  }
  assert.match(s.output(), /SIGTERM, 100 record\(s\) appended/);
});

test('pipelined requests are answered in order; two clients interleave whole lines; the file is appended, never truncated', async () => {
  const dir = tmpDir();
  fs.writeFileSync(path.join(dir, 'records.log'), 'earlier\n');
  const s = await startServer(dir);
  try {
    const a = await connect(s.port);
    const b = await connect(s.port);
    const reqA = Array.from({ length: 50 }, (_, i) => `append a${i}`);
    const reqB = Array.from({ length: 50 }, (_, i) => `append b${i}`);
    const [ra, rb] = await Promise.all([a.ask(reqA), b.ask(reqB)]);
    assert.equal(ra, reqA.map((r) => `ok ${r.slice(7)}`));
    assert.equal(rb, reqB.map((r) => `ok ${r.slice(7)}`));
    a.close();
    b.close();
    const lines = fs.readFileSync(s.file, 'utf8').split('\n');
    assert.is(lines.shift(), 'earlier');
    assert.is(lines.pop(), '');
    assert.equal(lines.filter((l) => l.startsWith('a')), reqA.map((r) => r.slice(7)), 'client a in order');
    assert.equal(lines.filter((l) => l.startsWith('b')), reqB.map((r) => r.slice(7)), 'client b in order');
    assert.is(lines.length, 100);
  } finally {
    await stopServer(s);
  }
});

test('bad requests get "err <message>" and the connection stays usable', async () => {
  const s = await startServer(tmpDir());
  try {
    const c = await connect(s.port);
    const r = await c.ask(['hello', 'append', 'append a/b', `append ${'x'.repeat(65)}`, 'append 7 8', 'append ok-1']);
    assert.is(r.length, 6);
    for (const line of r.slice(0, 5)) assert.match(line, /^err /);
    assert.is(r[5], 'ok ok-1');
    c.close();
    assert.is(fs.readFileSync(s.file, 'utf8'), 'ok-1\n', 'nothing but the good record written');
  } finally {
    await stopServer(s);
  }
});

test('an I/O error is replied as "err …" and ends the server (exit 1) without acknowledging anything after it', async () => {
  const dir = tmpDir();
  fs.symlinkSync('/dev/full', path.join(dir, 'records.log')); // every write fails with ENOSPC
  const s = await startServer(dir);
  const c = await connect(s.port);
  c.socket.write('append 1\nappend 2\n');
  let replies = '';
  c.socket.on('data', (d: string) => (replies += d));
  await until('the server to close the connection', () => c.socket.destroyed || c.socket.readableEnded);
  assert.match(replies, /^err .*ENOSPC/);
  assert.not.match(replies, /ok/);
  assert.is(await s.exited, 1, s.output());
  assert.match(s.output(), /nothing more can be acknowledged/);
});

test('every acknowledged record was fdatasynced first (strace: write, fdatasync, then the reply)', async () => {
  if (spawnSync('strace', ['-V']).status !== 0) {
    console.log('  (strace not installed: skipped)');
    return;
  }
  const log = path.join(tmpDir(), 'strace.out');
  const s = await startServer(tmpDir(), { argvPrefix: ['strace', '-f', '-qq', '-e', 'trace=write,fdatasync,writev', '-o', log] });
  try {
    const c = await connect(s.port);
    for (let i = 1; i <= 20; i++) assert.equal(await c.ask([`append r${i}`]), [`ok r${i}`]);
    c.close();
  } finally {
    await stopServer(s);
  }
  const calls = fs.readFileSync(log, 'utf8').split('\n').map((l) => l.replace(/^\d+\s+/, ''));
  for (let i = 1; i <= 20; i++) {
    const rec = calls.findIndex((l) => /^write\(\d+, "r\d+\\n"/.test(l) && l.includes(`"r${i}\\n"`));
    const reply = calls.findIndex((l) => /^(write|writev)\(/.test(l) && l.includes(`ok r${i}\\n`));
    assert.ok(rec >= 0 && reply > rec, `record r${i} written before its reply`);
    assert.ok(calls.slice(rec + 1, reply).some((l) => l.startsWith('fdatasync(')), `fdatasync between record r${i} and its reply`);
  }
});

test('client.mjs: prints sent/ok per id, reconnects after the server goes away, stops when stdin ends', async () => {
  const dir = tmpDir();
  let s = await startServer(dir);
  const port = s.port;
  const child = spawn(process.execPath, [CLIENT, '127.0.0.1', String(port), '1', '1000', '500', '50'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  const exited = track(child);
  const oks = () => out.split('\n').filter((l) => l.startsWith('ok ')).length;
  try {
    await until('50 acknowledgements', () => oks() >= 50);
    await stopServer(s);
    const okBefore = oks();
    // same port again (the client keeps using it); retried while the kernel still holds it
    for (let i = 0; ; i++) {
      try {
        s = await startServer(dir, { port });
        break;
      } catch (e) {
        if (i > 50) throw e;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    await until('50 acknowledgements after the restart', () => oks() >= okBefore + 50);
    child.stdin!.end();
    await until('the client to exit', () => child.exitCode !== null);
    assert.is(await exited, 0);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    await stopServer(s);
  }
  const lines = out.trim().split('\n');
  assert.match(lines[lines.length - 1]!, /^done \d+$/);
  assert.ok(lines.some((l) => /^err (\d+|-) /.test(l)), 'the outage was reported');
  const acked = lines.filter((l) => l.startsWith('ok ')).map((l) => Number(l.slice(3)));
  const sent = lines.filter((l) => l.startsWith('sent ')).map((l) => Number(l.slice(5)));
  assert.equal(sent, Array.from({ length: sent.length }, (_, i) => i + 1), 'ids increase by one, never reused');
  const inFile = new Set(fs.readFileSync(path.join(dir, 'records.log'), 'utf8').split('\n').filter(Boolean).map(Number));
  assert.equal(acked.filter((id) => !inFile.has(id)), [], 'every acknowledged id is in the file');
});

test.run();
