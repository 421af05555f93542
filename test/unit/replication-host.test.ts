// The replication host's wire (src/replication/host/protocol.ts), its server (server.ts, over a fake Replicator) and
// the daemon's HostedReplicator (client.ts), end to end over a real unix socket in a temporary run dir. The "host"
// runs in this process: the fake spawn starts a ReplicationHostServer here. Everything is closed in `finally`.
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { UserError } from '../../src/errors.js';
import type { Home } from '../../src/home.js';
import { realClock } from '../../src/platform/clock/real.js';
import { HostedReplicator, hostPaths, type SpawnedHost } from '../../src/replication/host/client.js';
import { decodeFromHost, decodeRequest, encodeLine, HOST_PROTOCOL_VERSION, HostProtocolError } from '../../src/replication/host/protocol.js';
import { ReplicationHostServer } from '../../src/replication/host/server.js';
import type {
  FilesRole, PrimaryFiles, ReintegrateRequest, ReplicationDirective, ReplicationStatus, Replicator,
} from '../../src/replication/types.js';
import { waitFor } from './wait-for.js';

const M = 'appx';

// ── protocol ───────────────────────────────────────────────────────────────────────────────────────────────────────

function throwsProto(fn: () => unknown, re: RegExp) {
  try {
    fn();
  } catch (e) {
    assert.instance(e, HostProtocolError);
    assert.match((e as Error).message, re);
    return;
  }
  assert.unreachable(`expected a HostProtocolError matching ${re}`);
}

test('protocol: requests round-trip; every malformed request is refused with what is wrong', () => {
  const line = encodeLine({ t: 'req', id: 3, op: 'set-role', args: { role: 'primary', primary: { gen: '2@n1', reattach: false, recordBase: null } as unknown as PrimaryFiles } });
  assert.ok(line.endsWith('\n'));
  const r = decodeRequest(line.trim());
  assert.is(r.op, 'set-role');
  assert.is(r.id, 3);
  throwsProto(() => decodeRequest('nope'), /not JSON/);
  throwsProto(() => decodeRequest('[1]'), /not a JSON object/);
  throwsProto(() => decodeRequest('{"t":"res","id":1}'), /expected a request/);
  throwsProto(() => decodeRequest('{"t":"req","op":"hello","args":{}}'), /without a numeric id/);
  throwsProto(() => decodeRequest('{"t":"req","id":1,"op":"format-disk","args":{}}'), /unknown request op "format-disk"/);
  throwsProto(() => decodeRequest('{"t":"req","id":1,"op":"hello"}'), /without an args object/);
  throwsProto(() => decodeRequest('{"t":"req","id":1,"op":"hello","args":{"version":"1"}}'), /hello: needs numeric version/);
  throwsProto(() => decodeRequest('{"t":"req","id":1,"op":"set-role","args":{"role":"boss"}}'), /set-role: needs role/);
  throwsProto(() => decodeRequest('{"t":"req","id":1,"op":"direct","args":{"directive":{}}}'), /direct: needs a directive/);
  throwsProto(() => decodeRequest('{"t":"req","id":1,"op":"reintegrate","args":{"rid":1}}'), /reintegrate: needs rid and req/);
  throwsProto(() => decodeRequest('{"t":"req","id":1,"op":"copy-answer","args":{"rid":1}}'), /copy-answer: needs rid and ok/);
  throwsProto(() => decodeRequest('{"t":"req","id":1,"op":"abort-reintegration","args":{}}'), /abort-reintegration: needs rid/);
});

test('protocol: responses and events from the host are checked', () => {
  assert.equal(decodeFromHost('{"t":"res","id":1,"ok":true,"result":null}'), { t: 'res', id: 1, ok: true, result: null });
  assert.is(decodeFromHost('{"t":"ev","ev":"replication-failed","reason":"x"}').t, 'ev');
  throwsProto(() => decodeFromHost('{"t":"res","ok":true}'), /response without id or ok/);
  throwsProto(() => decodeFromHost('{"t":"res","id":1,"ok":false}'), /error response without an error/);
  throwsProto(() => decodeFromHost('{"t":"ev","ev":"replication-failed"}'), /without a reason/);
  throwsProto(() => decodeFromHost('{"t":"ev","ev":"snapshot"}'), /without a snapshot/);
  throwsProto(() => decodeFromHost('{"t":"ev","ev":"begin-copy"}'), /without a rid/);
  throwsProto(() => decodeFromHost('{"t":"ev","ev":"party"}'), /unknown event "party"/);
  throwsProto(() => decodeFromHost('{"t":"req"}'), /expected a response or an event/);
});

// ── a fake Replicator behind a real server, a HostedReplicator in front ────────────────────────────────────────────

class FakeReplicator implements Replicator {
  calls: string[] = [];
  role: FilesRole = 'off';
  reint: { req: ReintegrateRequest; finish: (e?: Error) => void } | null = null;
  closed = 0;
  async reattach() { return null; }
  async refresh() {}
  async setRole(role: FilesRole, p?: PrimaryFiles) {
    this.calls.push(`setRole ${role}${p ? ` ${JSON.stringify(p)}` : ''}`);
    if (role === 'secondary' && this.calls.includes('fail secondary')) throw new UserError('the secondary layout cannot be set up: /srv/x is busy', 'stop pid 7');
    this.role = role;
  }
  direct(d: ReplicationDirective) { this.calls.push(`direct ${d.kind}`); }
  reintegrate(req: ReintegrateRequest): Promise<void> {
    return new Promise((resolve, reject) => {
      this.reint = { req, finish: (e) => (e ? reject(e) : resolve()) };
    });
  }
  progress() { return this.reint ? { bytesDone: 5, bytesTotal: 10, rateBytesPerS: 1 } : null; }
  alarm() { return this.role === 'secondary' ? 'copy outdated' : null; }
  status(): ReplicationStatus {
    return { role: this.role, mode: this.role === 'off' ? 'off' : 'live', dirs: ['/srv/x'], quarantines: [], lastReintegration: null };
  }
  async close() { this.closed++; this.role = 'off'; }
}

interface World {
  home: Home;
  fake: FakeReplicator;
  server: () => ReplicationHostServer | null;
  shutdowns: number;
  lost: string[];
  failed: string[];
  behind: string[];
  logs: string[];
  killed: number[];
  spawns: number;
  client: (o?: Partial<ConstructorParameters<typeof HostedReplicator>[0]>) => HostedReplicator;
}

async function withWorld(fn: (w: World) => Promise<void>): Promise<void> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-host-'));
  const home: Home = { root, runDir: path.join(root, 'run') };
  fs.mkdirSync(home.runDir);
  const servers: ReplicationHostServer[] = [];
  const clients: HostedReplicator[] = [];
  const log = { info: (m: string) => w.logs.push(m), warn: (m: string) => w.logs.push(m), error: (m: string) => w.logs.push(m) };
  const w: World = {
    home, fake: new FakeReplicator(), shutdowns: 0, lost: [], failed: [], behind: [], logs: [], killed: [], spawns: 0,
    server: () => servers.at(-1) ?? null,
    client: (o = {}) => {
      const c = new HostedReplicator({
        module: M, home, dirs: ['/srv/x'], log,
        replicationFailed: (r) => w.failed.push(r), copyBehind: (r) => w.behind.push(r), hostLost: (r) => w.lost.push(r),
        spawn: () => {
          w.spawns++;
          const s = new ReplicationHostServer({
            socketPath: hostPaths.socket(home, M), module: M, home: root, log, clock: realClock,
            onShutdown: () => { w.shutdowns++; void s.close(); },
          });
          servers.push(s);
          void s.listen().then(() => {
            fs.writeFileSync(hostPaths.pid(home, M), `${process.pid}\n`);
            s.serve(w.fake);
          });
          return { pid: process.pid, exited: new Promise<string>(() => {}) } satisfies SpawnedHost;
        },
        kill: async (pid) => { w.killed.push(pid); },
        ...o,
      });
      clients.push(c);
      return c;
    },
  };
  try {
    await fn(w);
  } finally {
    for (const s of servers) await s.close();
    fs.rmSync(root, { recursive: true, force: true });
  }
}

const PRIMARY = { gen: '4@node1', reattach: false } as unknown as PrimaryFiles;

test('hosted: setRole starts the host and forwards the role; direct and status go through; off ends the host', () => withWorld(async (w) => {
  const c = w.client();
  await c.setRole('primary', PRIMARY);
  assert.is(w.spawns, 1);
  assert.equal(w.fake.calls, [`setRole primary ${JSON.stringify(PRIMARY)}`]);
  assert.is(c.hostPid, process.pid);
  await waitFor(() => c.status().mode === 'live', 2000, 'the snapshot after set-role');
  assert.is(c.status().role, 'primary');
  c.direct({ kind: 'outdated', gen: '5@node1', peerHolds: null });
  await waitFor(() => w.fake.calls.includes('direct outdated'), 2000, 'the directive reached the host');
  await c.setRole('primary', PRIMARY);
  assert.is(w.spawns, 1, 'one host for the module');
  await c.setRole('off');
  assert.is(w.shutdowns, 1, 'the host was told to end');
  assert.is(w.fake.closed, 1, 'and left its layout');
  assert.is(c.hostPid, null);
  assert.equal(c.status(), { role: 'off', mode: 'off', dirs: ['/srv/x'], quarantines: [], lastReintegration: null });
  assert.equal(w.lost, [], 'ending the host on purpose is no loss');
}));

test('hosted: a host error keeps its kind and hint (UserError), and the host stays attached', () => withWorld(async (w) => {
  const c = w.client();
  await c.setRole('primary', PRIMARY);
  w.fake.calls.push('fail secondary');
  try {
    await c.setRole('secondary');
    assert.unreachable('setRole should have failed');
  } catch (e) {
    assert.instance(e, UserError);
    assert.match((e as Error).message, /cannot be set up: \/srv\/x is busy/);
    assert.is((e as UserError).hint, 'stop pid 7');
  }
  assert.is(c.hostPid, process.pid);
}));

test('hosted: a replication failure reaches the daemon; with no daemon attached it is held and given at reattach until `outdated`', () => withWorld(async (w) => {
  const c = w.client();
  await c.setRole('primary', PRIMARY);
  w.server()!.replicationFailed('link lost');
  await waitFor(() => w.failed.length === 1, 2000, 'the event');
  assert.equal(w.failed, ['link lost']);
  await c.close(); // daemon shutdown: the host keeps serving
  assert.is(w.shutdowns, 0, 'a host serving a layout is left running');
  await waitFor(() => !w.server()!.daemonAttached, 2000, 'the host saw the daemon go');
  w.server()!.replicationFailed('ENOSPC on node2');
  w.server()!.copyBehind('EIO');
  assert.ok(w.logs.some((l) => /held, unacknowledged, until a daemon reattaches/.test(l)), w.logs.join('\n'));

  const c2 = w.client();
  const r = await c2.reattach();
  assert.equal(r, { role: 'primary', pid: process.pid, failed: 'ENOSPC on node2', behind: 'EIO' });
  assert.is(w.spawns, 1, 'reattached, not started again');
  await c2.close();
  const r2 = await w.client().reattach();
  assert.is(r2?.failed, 'ENOSPC on node2', 'repeated until the engine persisted (the daemon may have died first)');
  assert.is(r2?.behind, null, 'copy-behind is given once');
}));

test('hosted: `outdated` clears the held failure', () => withWorld(async (w) => {
  const c = w.client();
  await c.setRole('primary', PRIMARY);
  w.server()!.replicationFailed('link lost');
  c.direct({ kind: 'outdated', gen: '5@node1', peerHolds: null });
  await waitFor(() => w.fake.calls.includes('direct outdated'), 2000, 'the directive');
  await c.close();
  assert.is((await w.client().reattach())?.failed, null);
}));

test('hosted: reintegration: beginCopy is a round trip through the daemon; abort reaches the host; both outcomes', () => withWorld(async (w) => {
  const c = w.client();
  await c.setRole('secondary');
  const ac = new AbortController();
  let begun = 0;
  const req = { module: M, from: 'node1', full: false, quarantine: true, sourceGen: '4@node1', targetGen: '3@node1', signal: ac.signal, beginCopy: async () => { begun++; } };
  const done = c.reintegrate(req);
  await waitFor(() => w.fake.reint, 2000, 'the host runs the reintegration');
  assert.is(w.fake.reint!.req.sourceGen, '4@node1');
  assert.is(w.fake.reint!.req.quarantine, true);
  await waitFor(() => c.progress()?.bytesDone === 5, 2000, 'progress from the snapshot');
  await w.fake.reint!.req.beginCopy();
  assert.is(begun, 1, 'the daemon was asked');
  w.fake.reint!.finish();
  w.fake.reint = null;
  await done;

  // the engine abandons: beginCopy rejects on the host
  const done2 = c.reintegrate({ ...req, beginCopy: () => Promise.reject(new Error('abandoned')) });
  await waitFor(() => w.fake.reint, 2000, 'the second reintegration on the host');
  const second = w.fake.reint!;
  let refused = '';
  await second.req.beginCopy().catch((e: Error) => { refused = e.message; });
  assert.match(refused, /abandoned/);
  ac.abort();
  await waitFor(() => second.req.signal.aborted, 2000, 'the abort reached the host');
  second.finish(new Error('reintegration aborted'));
  await done2.then(() => assert.unreachable('should reject'), (e: Error) => assert.match(e.message, /aborted/));
}));

test('hosted: the host dies while serving a layout → pending requests reject, hostLost once; dying while off is no loss', () => withWorld(async (w) => {
  const c = w.client();
  await c.setRole('secondary');
  const pending = c.reintegrate({ module: M, from: 'node1', full: false, quarantine: false, sourceGen: null, targetGen: null, signal: new AbortController().signal, beginCopy: async () => {} })
    .then(() => 'resolved', (e: Error) => e.message);
  await waitFor(() => w.fake.reint, 2000, 'reintegration running');
  await w.server()!.close(); // the host process ending: its end of the socket closes
  assert.match(await pending, /went away during reintegrate/);
  await waitFor(() => w.lost.length === 1, 2000, 'hostLost');
  assert.match(w.lost[0]!, new RegExp(`replication host of ${M} \\(pid ${process.pid}\\) died while serving the secondary layout`));
  assert.ok(w.logs.some((l) => /dead mount; the module is stopped here \(forced\)/.test(l)));
  assert.is(c.hostPid, null);
  assert.is(c.status().role, 'off');
  // a new role starts a new host (recovering the dead one's leftovers)
  await c.setRole('off');
  assert.is(w.spawns, 2);
  assert.equal(w.lost.length, 1);
}));

test('hosted: a host that sends garbage is dropped as lost', () => withWorld(async (w) => {
  const c = w.client();
  await c.setRole('primary', PRIMARY);
  // the host's side of the connection, from the server's internals: write through a raw second server is not
  // possible, so reach the socket the server holds
  const conn = (w.server() as unknown as { attached: { sock: net.Socket } }).attached;
  conn.sock.write('this is not json\n');
  await waitFor(() => w.lost.length === 1, 2000, 'hostLost');
  assert.match(w.lost[0]!, /unreadable message from the host: not JSON/);
}));

test('hosted: refresh fetches the status now; a host that does not answer leaves the last one after the timeout', () => withWorld(async (w) => {
  const c = w.client();
  await c.refresh(100); // no host: nothing to fetch
  await c.setRole('primary', PRIMARY);
  await c.refresh(1000);
  assert.is(c.status().mode, 'live');
  w.fake.role = 'secondary'; // changes between two pushes
  await c.refresh(1000);
  assert.is(c.status().role, 'secondary', 'fresh, not the last pushed snapshot');
  await c.close();
  await w.server()!.close();

  // a host that answers hello and then nothing
  const sockPath = hostPaths.socket(w.home, M);
  const mute = net.createServer((sock) => {
    sock.on('data', (b) => {
      for (const line of b.toString().split('\n').filter(Boolean)) {
        const req = JSON.parse(line) as { id: number; op: string };
        if (req.op !== 'hello') continue;
        sock.write(encodeLine({ t: 'res', id: req.id, ok: true, result: {
          version: HOST_PROTOCOL_VERSION, pid: process.pid, module: M, home: w.home.root, role: 'primary', failed: null, behind: null,
          snapshot: { progress: null, alarm: 'old alarm', status: null },
        } }));
      }
    });
  });
  await new Promise<void>((r) => mute.listen(sockPath, r));
  fs.writeFileSync(hostPaths.pid(w.home, M), `${process.pid}\n`);
  try {
    const c2 = w.client();
    assert.is((await c2.reattach())?.role, 'primary');
    await c2.refresh(100);
    assert.is(c2.alarm(), 'old alarm', 'the last snapshot stays');
    await c2.close();
  } finally {
    await new Promise<void>((r) => mute.close(() => r()));
  }
}));

test('reattach: no host → null; a socket nobody answers on is stale: removed', () => withWorld(async (w) => {
  assert.is(await w.client().reattach(), null);
  fs.writeFileSync(hostPaths.socket(w.home, M), '');
  fs.writeFileSync(hostPaths.pid(w.home, M), '4242\n');
  assert.is(await w.client().reattach(), null);
  assert.not.ok(fs.existsSync(hostPaths.socket(w.home, M)));
  assert.not.ok(fs.existsSync(hostPaths.pid(w.home, M)));
  assert.ok(w.logs.some((l) => /does not answer \(the host is gone\); removed/.test(l)));
  assert.equal(w.killed, []);
}));

test('reattach: a host whose pid is not the recorded one is not ours: ended, reported as not found', () => withWorld(async (w) => {
  const c = w.client();
  await c.setRole('primary', PRIMARY);
  await c.close();
  fs.writeFileSync(hostPaths.pid(w.home, M), '4242\n');
  assert.is(await w.client().reattach(), null);
  assert.equal(w.killed, [4242]);
  assert.ok(w.logs.some((l) => /cannot be reattached: it serves module appx .* as pid \d+ \(expected appx .*, pid 4242\)/.test(l)), w.logs.join('\n'));
}));

test('reattach: a host of another protocol version is ended', () => withWorld(async (w) => {
  const sockPath = hostPaths.socket(w.home, M);
  const old = net.createServer((s) => {
    s.on('data', (b) => {
      const req = JSON.parse(b.toString().trim()) as { id: number };
      s.write(encodeLine({ t: 'res', id: req.id, ok: false, error: { kind: 'user', message: `this replication host speaks version ${HOST_PROTOCOL_VERSION + 1}` } }));
    });
  });
  await new Promise<void>((r) => old.listen(sockPath, r));
  fs.writeFileSync(hostPaths.pid(w.home, M), '4343\n');
  try {
    assert.is(await w.client().reattach(), null);
    assert.equal(w.killed, [4343]);
    assert.ok(w.logs.some((l) => new RegExp(`speaks version ${HOST_PROTOCOL_VERSION + 1}`).test(l)));
  } finally {
    await new Promise<void>((r) => old.close(() => r()));
  }
}));

test('start: a host that exits before serving, or never answers, is a UserError pointing at the module log', () => withWorld(async (w) => {
  const dies = w.client({ spawn: () => ({ pid: 99, exited: Promise.resolve('exited with 1') }) });
  await dies.setRole('primary', PRIMARY).then(() => assert.unreachable('should fail'), (e: Error) => {
    assert.instance(e, UserError);
    assert.match(e.message, /replication host of appx \(pid 99\) exited with 1 before it served/);
    assert.match((e as UserError).hint ?? '', /tandem log -m appx/);
  });
  const silent = w.client({ spawn: () => ({ pid: 98, exited: new Promise(() => {}) }), startTimeoutMs: 200 });
  await silent.setRole('primary', PRIMARY).then(() => assert.unreachable('should fail'), (e: Error) => {
    assert.match(e.message, /\(pid 98\) did not answer on .* within 0.2 s/);
  });
  assert.is(w.lost.length, 0);
}));

test('start: a daemon that attaches while the host still binds its port waits for it (it is not refused as a failed start)', () => withWorld(async (w) => {
  let serveNow!: () => void;
  const bound = new Promise<void>((r) => { serveNow = r; });
  const log = { info() {}, warn() {}, error() {} };
  const runs: { op: string; p: Promise<unknown> }[] = [];
  let host: ReplicationHostServer | null = null;
  const c = w.client({
    spawn: () => {
      const s = new ReplicationHostServer({ socketPath: hostPaths.socket(w.home, M), module: M, home: w.home.root, log, clock: realClock, onShutdown() {} });
      host = s;
      const spy = s as unknown as { run: (c: unknown, req: { op: string }) => Promise<unknown> };
      const run = spy.run.bind(s);
      spy.run = (conn, req) => { const p = run(conn, req); runs.push({ op: req.op, p }); return p; };
      void s.listen().then(async () => { await bound; s.serve(w.fake); });
      return { pid: process.pid, exited: new Promise<string>(() => {}) };
    },
  });
  try {
    let settled: string | null = null;
    const asked = c.setRole('primary', PRIMARY).then(() => { settled = 'ok'; }, (e: Error) => { settled = e.message; });
    await waitFor(() => runs.some((r) => r.op === 'set-role'), 2000, 'the set-role reached the host before it served');
    const setRole = runs.find((r) => r.op === 'set-role')!.p;
    // a settled request would win this race: its reactions run before any macrotask
    const state = await Promise.race([setRole.then(() => 'answered', () => 'refused'), new Promise((r) => setImmediate(() => r('waiting')))]);
    assert.is(state, 'waiting', 'the host holds the request until it serves');
    serveNow();
    await asked;
    assert.is(settled, 'ok');
    assert.equal(w.fake.calls, [`setRole primary ${JSON.stringify(PRIMARY)}`]);
  } finally {
    await (host as ReplicationHostServer | null)?.close();
  }
}));

test('server: hello first, this version only; a second daemon takes over the host; an unreadable line ends the connection', () => withWorld(async (w) => {
  const c = w.client();
  await c.setRole('primary', PRIMARY);
  const sockPath = hostPaths.socket(w.home, M);
  const talk = (lines: string[]) => new Promise<string>((resolve) => {
    const s = net.connect(sockPath);
    let got = '';
    s.on('connect', () => s.write(lines.join('')));
    s.on('data', (b) => { got += b.toString(); });
    s.on('close', () => resolve(got));
    setTimeout(() => s.end(), 300).unref();
  });
  const before = await talk([encodeLine({ t: 'req', id: 1, op: 'set-role', args: { role: 'off' } })]);
  assert.match(before, /"ok":false.*before hello/);
  const wrong = await talk([encodeLine({ t: 'req', id: 1, op: 'hello', args: { version: HOST_PROTOCOL_VERSION + 1, daemonPid: 1 } })]);
  assert.match(wrong, /speaks version 1 of the host protocol, the daemon 2/);
  assert.is(w.lost.length, 0, 'refused hellos do not disturb the attached daemon');
  const garbage = await talk(['{"t":"req"\n']);
  assert.is(garbage, '');
  assert.ok(w.logs.some((l) => /unreadable request from the daemon/.test(l)));

  const c2 = w.client();
  assert.is((await c2.reattach())?.role, 'primary');
  await waitFor(() => w.logs.some((l) => /the previous connection is closed/.test(l)), 2000, 'takeover logged');
  assert.is(c2.hostPid, process.pid);
}));

test('server: a second host for the same module refuses to start', () => withWorld(async (w) => {
  const c = w.client();
  await c.setRole('primary', PRIMARY);
  const other = new ReplicationHostServer({ socketPath: hostPaths.socket(w.home, M), module: M, home: w.home.root, log: { info() {}, warn() {}, error() {} }, clock: realClock, onShutdown() {} });
  await other.listen().then(() => assert.unreachable('should refuse'), (e: Error) => assert.match(e.message, /another replication host already serves module appx/));
}));

test.run();
