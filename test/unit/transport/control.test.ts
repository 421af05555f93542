import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  controlRequest,
  controlStream,
  MAX_REQUEST_LINE,
  startControlServer,
  type ControlHandler,
  type ControlRequest,
  type ControlServer,
} from '../../../src/daemon/control.js';
import { BugError, ExternalError, UserError } from '../../../src/errors.js';
import { gate } from '../gate.js';

const dirs: string[] = [];
const servers: ControlServer[] = [];
function home(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'tdctl-'));
  dirs.push(d);
  return d;
}
test.after(async () => {
  for (const s of servers) await s.close();
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

async function serve(handler: ControlHandler, root = home()): Promise<{ root: string; sock: string; server: ControlServer }> {
  const sock = path.join(root, 'control.sock');
  const server = await startControlServer(sock, handler);
  servers.push(server);
  return { root, sock, server };
}

async function rejects(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a rejection');
}

/** Leaves a socket file nobody listens on, as a daemon killed with SIGKILL does. */
function staleSocket(p: string): void {
  spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(p)}, () => process.kill(process.pid, 'SIGKILL'))`]);
  assert.ok(fs.lstatSync(p).isSocket(), 'stale socket was created');
}

async function until(what: string, cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** A raw client: writes `data`, collects response lines until the server closes or `n` lines arrived. */
function rawExchange(sock: string, data: string | Buffer, n = Infinity): Promise<{ lines: unknown[]; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const c = net.connect(sock);
    let buf = '';
    const lines: unknown[] = [];
    const done = (closed: boolean) => {
      c.destroy();
      resolve({ lines, closed });
    };
    c.on('error', (e: NodeJS.ErrnoException) => (e.code === 'EPIPE' || e.code === 'ECONNRESET' ? undefined : reject(e)));
    c.on('data', (d) => {
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        lines.push(JSON.parse(buf.slice(0, i)));
        buf = buf.slice(i + 1);
        if (lines.length >= n) return done(false);
      }
    });
    c.on('close', () => done(true));
    c.write(data);
  });
}

test('request/response round-trip: cmd, module and args reach the handler; undefined result arrives as null', async () => {
  const seen: ControlRequest[] = [];
  const { sock } = await serve(async (req) => {
    seen.push(req);
    return req.cmd === 'nothing' ? undefined : { echo: req.args, module: req.module };
  });
  assert.equal(await controlRequest(sock, 'status', 'web', { verbose: true }), { echo: { verbose: true }, module: 'web' });
  assert.is(await controlRequest(sock, 'nothing'), null);
  assert.is(seen[0]!.cmd, 'status');
  assert.is(typeof seen[0]!.id, 'number');
  assert.not.ok('module' in seen[1]!);
});

test('the socket file is created with mode 0600 and removed by close()', async () => {
  const { sock, server } = await serve(async () => 1);
  assert.is(fs.statSync(sock).mode & 0o777, 0o600);
  await server.close();
  assert.not.ok(fs.existsSync(sock));
  await server.close(); // idempotent
});

test('handler errors are mapped: UserError → user (with hint), ExternalError → external, anything else → bug with stack', async () => {
  const { sock } = await serve(async (req) => {
    if (req.cmd === 'user') throw new UserError('module "web" is not installed', 'run `tandem module install web.tgz`');
    if (req.cmd === 'external') throw new ExternalError('ip addr add 192.0.2.10/24 dev eth0', 2, 'RTNETLINK answers: File exists');
    if (req.cmd === 'string') throw 'plain string'; // eslint-disable-line no-throw-literal
    return (undefined as unknown as { x: { y: number } }).x.y;
  });
  const u = await rejects(controlRequest(sock, 'user'));
  assert.instance(u, UserError);
  assert.is(u.message, 'module "web" is not installed');
  assert.is((u as UserError).hint, 'run `tandem module install web.tgz`');

  const x = await rejects(controlRequest(sock, 'external'));
  assert.instance(x, ExternalError);
  assert.is((x as ExternalError).command, 'ip addr add 192.0.2.10/24 dev eth0');
  assert.is((x as ExternalError).exitCode, 2);
  assert.match(x.message, /exit 2/);
  assert.match(x.message, /File exists/);

  const b = await rejects(controlRequest(sock, 'bug'));
  assert.instance(b, BugError);
  assert.match(b.message, /TypeError: Cannot read properties of undefined/);
  assert.match(b.message, /\n\s+at /); // the daemon's stack travels in the message

  const s = await rejects(controlRequest(sock, 'string'));
  assert.instance(s, BugError);
  assert.match(s.message, /non-Error thrown: plain string/);
});

test('a result that is not JSON-serializable becomes a bug response, not a hung client', async () => {
  const { sock } = await serve(async () => ({ n: 1n }));
  const e = await rejects(controlRequest(sock, 'status'));
  assert.instance(e, BugError);
  assert.match(e.message, /not JSON-serializable/);
});

test('no daemon: missing socket and stale socket both say how to start one', async () => {
  const root = home();
  const sock = path.join(root, 'control.sock');
  for (const setup of [() => {}, () => staleSocket(sock)]) {
    setup();
    const e = await rejects(controlRequest(sock, 'status'));
    assert.instance(e, UserError);
    assert.is(e.message, `no tandem daemon is running for TANDEM_HOME=${root} (socket ${sock}). ` +
      'Start it with `tandem daemon` (or `systemctl start tandem`).');
  }
});

test('a second daemon on the same home is refused, and the first keeps working', async () => {
  const { root, sock } = await serve(async () => 'first');
  const e = await rejects(startControlServer(sock, async () => 'second'));
  assert.instance(e, UserError);
  assert.match(e.message, new RegExp(`a daemon is already running for TANDEM_HOME=${root}`));
  assert.is(await controlRequest(sock, 'x'), 'first');
});

test('two daemons starting at the same moment: exactly one wins, the other is told one is running', async () => {
  const root = home();
  const sock = path.join(root, 'control.sock');
  const results = await Promise.allSettled([startControlServer(sock, async () => 'a'), startControlServer(sock, async () => 'b')]);
  const won = results.filter((r): r is PromiseFulfilledResult<ControlServer> => r.status === 'fulfilled');
  const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
  assert.is(won.length, 1);
  assert.is(lost.length, 1);
  servers.push(won[0]!.value);
  assert.instance(lost[0]!.reason, UserError);
  assert.match((lost[0]!.reason as Error).message, /a daemon is already running for TANDEM_HOME=/);
  assert.ok(['a', 'b'].includes(await controlRequest(sock, 'x') as string));
});

test('a request whose args are not JSON is a BugError before anything is sent', async () => {
  const { sock } = await serve(async () => 1);
  const e = await rejects(controlRequest(sock, 'x', undefined, { n: 1n }));
  assert.instance(e, BugError);
  assert.match(e.message, /not JSON-serializable/);
});

test('a stale socket left by a killed daemon is removed and the server starts', async () => {
  const root = home();
  const sock = path.join(root, 'control.sock');
  staleSocket(sock);
  const { server } = await serve(async () => 'fresh', root);
  assert.is(await controlRequest(sock, 'x'), 'fresh');
  await server.close();
});

test('a non-socket file at the socket path is refused and left alone', async () => {
  const root = home();
  const sock = path.join(root, 'control.sock');
  fs.writeFileSync(sock, 'precious');
  const e = await rejects(startControlServer(sock, async () => 1));
  assert.instance(e, UserError);
  assert.match(e.message, /exists and is not a socket/);
  assert.is(fs.readFileSync(sock, 'utf8'), 'precious');
});

test('socket path errors: missing directory and over-long path', async () => {
  const missing = path.join(home(), 'nope', 'control.sock');
  const e1 = await rejects(startControlServer(missing, async () => 1));
  assert.instance(e1, UserError);
  assert.match(e1.message, /does not exist/);
  const long = path.join(home(), 'x'.repeat(120), 'control.sock');
  const e2 = await rejects(startControlServer(long, async () => 1));
  assert.instance(e2, UserError);
  assert.match(e2.message, /Use a shorter TANDEM_HOME/);
  const e3 = await rejects(controlRequest(long, 'status'));
  assert.instance(e3, UserError);
});

test('timeout: a daemon that does not answer gives a UserError naming the command and the delay', async () => {
  // the daemon answers only once the gate opens: the test opens it after the rejection, or a fallback does after 20 s
  // so that a request that ignores its timeout resolves (and fails the test) instead of hanging
  const g = gate();
  const fallback = setTimeout(() => g.open(), 20_000);
  const { sock, root } = await serve(async () => { await g.pass(); return 'late'; });
  try {
    const e = await rejects(controlRequest(sock, 'prim', 'web', undefined, { timeoutMs: 200 }));
    assert.not.ok(g.isOpen, 'the request gave up before the daemon answered');
    assert.instance(e, UserError);
    assert.match(e.message, new RegExp(`TANDEM_HOME=${root} did not answer \`prim\` within 0\\.2 s`));
    assert.match(e.message, /daemon\.log/);
  } finally {
    clearTimeout(fallback);
    g.open();
  }
});

test('the daemon closing the connection without answering is reported', async () => {
  const root = home();
  const sock = path.join(root, 'control.sock');
  const rude = net.createServer((c) => c.on('data', () => c.destroy()));
  await new Promise<void>((r) => rude.listen(sock, () => r()));
  try {
    const e = await rejects(controlRequest(sock, 'status'));
    assert.instance(e, UserError);
    assert.match(e.message, /closed the connection without answering `status`/);
  } finally {
    await new Promise((r) => rude.close(r));
  }
});

test('a malformed response is a BugError', async () => {
  const root = home();
  const sock = path.join(root, 'control.sock');
  const bad = net.createServer((c) => c.on('data', () => c.write('this is not json\n')));
  await new Promise<void>((r) => bad.listen(sock, () => r()));
  try {
    const e = await rejects(controlRequest(sock, 'status'));
    assert.instance(e, BugError);
    assert.match(e.message, /malformed response line: this is not json/);
  } finally {
    await new Promise((r) => bad.close(r));
  }
});

test('a request line over 1 MiB gets an error response and the connection is closed', async () => {
  let calls = 0;
  const { sock } = await serve(async () => ++calls);
  const r1 = await rawExchange(sock, Buffer.alloc(MAX_REQUEST_LINE + 10, 0x61)); // no newline at all
  assert.is(r1.closed, true);
  assert.equal(r1.lines, [{ id: null, ok: false, error: { kind: 'user', message: `request line longer than ${MAX_REQUEST_LINE} bytes; the connection is closed` } }]);
  const big = `{"id":1,"cmd":"x","args":{"pad":"${'p'.repeat(MAX_REQUEST_LINE)}"}}\n`; // complete, but too long
  const r2 = await rawExchange(sock, big);
  assert.is(r2.closed, true);
  assert.is((r2.lines[0] as { ok: boolean }).ok, false);
  assert.is(calls, 0);
  // a line of exactly the limit is still served
  const pad = MAX_REQUEST_LINE - '{"id":2,"cmd":"x","args":{"p":""}}'.length;
  const exact = `{"id":2,"cmd":"x","args":{"p":"${'p'.repeat(pad)}"}}\n`;
  assert.is(exact.length - 1, MAX_REQUEST_LINE);
  const r3 = await rawExchange(sock, exact, 1);
  assert.equal(r3.lines, [{ id: 2, ok: true, result: 1 }]);
});

test('malformed requests get an error with the id when known, and the connection stays usable', async () => {
  const { sock } = await serve(async (req) => `ok ${req.cmd}`);
  const r = await rawExchange(sock, [
    'not json',
    '[1,2]',
    '{"cmd":"x"}',
    '{"id":7}',
    '{"id":8,"cmd":"x","module":3}',
    '{"id":9,"cmd":"x","args":[1]}',
    '',
    '{"id":10,"cmd":"fine"}',
  ].join('\n') + '\n', 7);
  const byId = r.lines as Array<{ id: number | null; ok: boolean; error?: { kind: string; message: string }; result?: unknown }>;
  assert.equal(byId.map((l) => [l.id, l.ok]), [[null, false], [null, false], [null, false], [7, false], [8, false], [9, false], [10, true]]);
  assert.match(byId[3]!.error!.message, /"cmd" must be a non-empty string/);
  assert.is(byId[6]!.result, 'ok fine');
  assert.ok(byId.slice(0, 6).every((l) => l.error!.kind === 'user'));
});

test('several requests on one connection are answered independently', async () => {
  const { sock } = await serve(async (req) => {
    await new Promise((r) => setTimeout(r, req.cmd === 'slow' ? 50 : 0));
    return req.cmd;
  });
  const r = await rawExchange(sock, '{"id":1,"cmd":"slow"}\n{"id":2,"cmd":"fast"}\n', 2);
  assert.equal(r.lines, [{ id: 2, ok: true, result: 'fast' }, { id: 1, ok: true, result: 'slow' }]);
});

test('stream: each yielded item is an event, the return value is the result', async () => {
  const { sock } = await serve(async function* (req) {
    for (let i = 1; i <= 3; i++) yield { n: i, module: req.module };
    return 'done';
  });
  const events: unknown[] = [];
  const result = await controlStream(sock, 'status', 'web', { watch: true }, (e) => events.push(e));
  assert.equal(events, [{ n: 1, module: 'web' }, { n: 2, module: 'web' }, { n: 3, module: 'web' }]);
  assert.is(result, 'done');
  // controlRequest on a streaming command ignores the events and returns the result
  assert.is(await controlRequest(sock, 'status', 'web'), 'done');
});

test('stream: an async handler may resolve to an iterable; an error mid-stream ends it with that error', async () => {
  const { sock } = await serve(async () => (async function* () {
    yield 1;
    throw new UserError('module stopped while watching');
  })());
  const events: unknown[] = [];
  const e = await rejects(controlStream(sock, 'watch', undefined, undefined, (ev) => events.push(ev)));
  assert.instance(e, UserError);
  assert.is(e.message, 'module stopped while watching');
  assert.equal(events, [1]);
});

test('stream: aborting the client stops the server-side stream (signal aborted, generator closed)', async () => {
  let cleanedUp = false;
  let signalAborted = false;
  const { sock } = await serve(async function* (_req, ctx) {
    ctx.signal.addEventListener('abort', () => { signalAborted = true; });
    try {
      for (let i = 0; ; i++) {
        yield i;
        await new Promise((r) => setTimeout(r, 5));
      }
    } finally {
      cleanedUp = true;
    }
  });
  const ac = new AbortController();
  const events: unknown[] = [];
  const result = await controlStream(sock, 'status', undefined, { watch: true }, (e) => {
    events.push(e);
    if (events.length === 3) ac.abort();
  }, { signal: ac.signal });
  assert.is(result, undefined);
  assert.equal(events, [0, 1, 2]);
  await until('server stream closed', () => cleanedUp && signalAborted);
});

test('stream: a throwing onEvent rejects with its error and closes the stream', async () => {
  let cleanedUp = false;
  const { sock } = await serve(async function* () {
    try {
      for (let i = 0; ; i++) {
        yield i;
        await new Promise((r) => setTimeout(r, 5));
      }
    } finally {
      cleanedUp = true;
    }
  });
  const e = await rejects(controlStream(sock, 'status', undefined, undefined, () => {
    throw new Error('render failed');
  }));
  assert.is(e.message, 'render failed');
  await until('server stream closed', () => cleanedUp);
});

test('stream: a quiet stream does not time out once it has answered; an already-aborted signal does not connect', async () => {
  const { sock } = await serve(async function* () {
    yield 'first';
    await new Promise((r) => setTimeout(r, 300));
    return 'late';
  });
  const events: unknown[] = [];
  assert.is(await controlStream(sock, 'watch', undefined, undefined, (e) => events.push(e), { timeoutMs: 150 }), 'late');
  assert.equal(events, ['first']);
  const ac = new AbortController();
  ac.abort();
  assert.is(await controlStream(path.join(home(), 'none.sock'), 'watch', undefined, undefined, () => {}, { signal: ac.signal }), undefined);
});

test('server close drops open streams and aborts their handlers', async () => {
  let aborted = false;
  const root = home();
  const sock = path.join(root, 'control.sock');
  const server = await startControlServer(sock, async function* (_req, ctx) {
    yield 'hello';
    await new Promise<void>((r) => ctx.signal.addEventListener('abort', () => { aborted = true; r(); }));
  });
  let got = false;
  const p = rejects(controlStream(sock, 'watch', undefined, undefined, () => { got = true; }));
  await until('stream running', () => got);
  await server.close();
  const e = await p;
  assert.instance(e, UserError);
  assert.match(e.message, /closed the connection/);
  assert.ok(aborted);
  assert.not.ok(fs.existsSync(sock));
});

test.run();
