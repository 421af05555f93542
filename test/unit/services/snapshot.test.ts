// `tandem snapshot` as a service (src/services/snapshot.ts) over a real temporary home, with fakes for the outside
// commands and for the daemon's status: what the archive holds, what a failing command leaves in it, what -m keeps,
// that it never replaces a file, and that the cluster key is in it in no encoding, even when a file embeds it.
// Files: /tmp/tandem-snapshot-test-*; removed after each test.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { deriveKey, generateKey, writeKeyFile } from '../../../src/daemon/key.js';
import type { StatusView } from '../../../src/daemon/views.js';
import { ExternalError, UserError } from '../../../src/errors.js';
import { homePaths, type Home } from '../../../src/home.js';
import type { RunFn, RunOptions } from '../../../src/platform/exec.js';
import {
  formatSnapshot, KEY_REMOVED, keyEncodings, scrub, takeSnapshot, type SnapshotResult, type SnapshotSources,
} from '../../../src/services/snapshot.js';
import { archiveMembers, assertNoKey } from '../snapshot-archive.js';
import { expectUserError } from '../expect-reject.js';

const CLUSTER_XML = `<cluster><lans><lan name="default">
  <node name="node1" addr="198.51.100.1"/><node name="node2" addr="198.51.100.2"/>
</lan></lans></cluster>
`;
const userconfig = (extra = '') => `<safe><service mode="mirror"><heart pulse="500ms" timeout="5s"><heartbeat name="default"/></heart>${extra}</service></safe>\n`;
const NOW = new Date('2026-12-04T10:11:12.345Z');

interface Fx {
  dir: string;
  home: Home;
  key: Buffer;
  out: (name: string) => string;
}

/** A home with two modules (demo, other), their state, logs and a run marker, and a cluster key. */
function withFx(fn: (f: Fx) => Promise<void>) {
  return async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-snapshot-test-'));
    const home = { root: path.join(dir, 'home'), runDir: path.join(dir, 'run') };
    const w = (p: string, data: string | Buffer) => {
      fs.mkdirSync(path.dirname(p), { recursive: true });
      fs.writeFileSync(p, data);
    };
    w(homePaths.clusterXml(home), CLUSTER_XML);
    const key = generateKey();
    await writeKeyFile(homePaths.clusterKey(home), key);
    for (const m of ['demo', 'other']) {
      w(homePaths.userconfig(home, m), userconfig());
      w(path.join(homePaths.scriptsDir(home, m), 'start_prim'), `#!/bin/sh\necho start ${m}\n`);
      w(path.join(homePaths.scriptsDir(home, m), 'lib', 'helper'), `helper of ${m}\n`);
      w(homePaths.stateFile(home, m), `{"generation":3,"module":"${m}"}\n`);
      w(homePaths.moduleLog(home, m), `2026-12-04 log line of ${m}\n`);
    }
    w(path.join(home.root, 'state', 'demo.peer'), 'node2\n');
    w(path.join(home.root, 'state', 'demo.files', 'record', '0'), 'recorded changes of demo\n');
    w(path.join(home.root, 'state', 'boot'), '7\n');
    w(homePaths.daemonLog(home), '2026-12-04 daemon started\n');
    w(homePaths.runMarker(home, 'demo'), '');
    w(homePaths.runMarker(home, 'other'), '');
    w(path.join(home.root, 'quarantine', 'demo', '0', 'user-data'), 'not for support\n');
    try {
      await fn({ dir, home, key, out: (n) => path.join(dir, n) });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  };
}

function statusOf(modules: string[], detail = 'listening'): StatusView {
  return {
    node: 'node1', pid: 4242, heartbeats: { dropped: {} }, pending: [], invalid: [], farms: [],
    modules: modules.map((m) => ({
      module: m, node: 'node1', state: 'PRIM', ready: true,
      resources: [{ name: 'tcp.web', state: 'up', by: 'checker', active: true, detail, since: '2026-12-04T10:00:00Z' }],
      replication: { dirs: ['/srv/demo/data'], role: 'source', mode: 'live', quarantines: [], lastReintegration: null },
      reintegration: null,
    })),
  } as unknown as StatusView;
}

interface FakeRun {
  run: RunFn;
  calls: string[][];
}

/** ip works, nft exits 1 (no permission), dmesg is not installed (ExternalError with no exit code). */
function fakeRun(extra: Record<string, string> = {}): FakeRun {
  const calls: string[][] = [];
  const run: RunFn = async (cmd: string, args: string[], _o?: RunOptions) => {
    calls.push([cmd, ...args]);
    const line = [cmd, ...args].join(' ');
    if (line === 'nft list ruleset') return { code: 1, stdout: '', stderr: 'netlink: Error: Operation not permitted' };
    if (cmd === 'dmesg') throw new ExternalError('dmesg', null, '', 'command failed (spawn dmesg ENOENT): dmesg');
    return { code: 0, stdout: extra[line] ?? `output of ${line}`, stderr: '' };
  };
  return { run, calls };
}

function sources(o: Partial<SnapshotSources> & { statusCalls?: (string | undefined)[] } = {}): SnapshotSources {
  return {
    run: o.run ?? fakeRun().run,
    status: o.status ?? (async (m) => { o.statusCalls?.push(m); return statusOf(m ? [m] : ['demo', 'other']); }),
    now: NOW,
  };
}

async function snap(f: Fx, src: SnapshotSources, module?: string, name = 'snap.tar.gz'): Promise<{ r: SnapshotResult; m: Map<string, Buffer> }> {
  const r = await takeSnapshot(f.home, src, { module, file: f.out(name), tandemVersion: '9.8.7' });
  return { r, m: await archiveMembers(r.file) };
}

const userError = expectUserError;

test('the archive holds logs, configs, scripts, state, status, resources, replication, commands, mounts, versions', withFx(async (f) => {
  const { r, m } = await snap(f, sources());
  const text = (n: string) => {
    const b = m.get(n);
    assert.ok(b, `member ${n} missing; members: ${[...m.keys()].join(', ')}`);
    return b!.toString('utf8');
  };
  assert.is(text('home/cluster.xml'), CLUSTER_XML);
  for (const mod of ['demo', 'other']) {
    assert.is(text(`home/modules/${mod}/userconfig.xml`), userconfig());
    assert.match(text(`home/modules/${mod}/bin/start_prim`), `echo start ${mod}`);
    assert.is(text(`home/modules/${mod}/bin/lib/helper`), `helper of ${mod}\n`);
    assert.match(text(`home/state/${mod}.json`), '"generation":3');
    assert.match(text(`home/log/${mod}.log`), `log line of ${mod}`);
    assert.is(text(`run/${mod}.running`), '');
  }
  assert.is(text('home/state/demo.peer'), 'node2\n');
  assert.is(text('home/state/demo.files/record/0'), 'recorded changes of demo\n');
  assert.is(text('home/state/boot'), '7\n');
  assert.match(text('home/log/daemon.log'), 'daemon started');
  const status = JSON.parse(text('daemon/status.json')) as StatusView;
  assert.equal(status.modules.map((x) => x.module), ['demo', 'other']);
  assert.is(JSON.parse(text('daemon/modules/demo/resources.json'))[0].name, 'tcp.web');
  assert.is(JSON.parse(text('daemon/modules/demo/replication.json')).replication.mode, 'live');
  assert.match(text('commands/ip-addr.txt'), /^\$ ip addr\noutput of ip addr/);
  assert.match(text('commands/ip-route.txt'), 'output of ip route');
  assert.match(text('system/mountinfo.txt'), / \/ /); // the root mount
  const versions = text('system/versions.txt');
  assert.match(versions, 'tandem 9.8.7');
  assert.match(versions, `node ${process.version}`);
  assert.match(versions, `kernel Linux ${os.release()}`);
  // never the key file, never user data from the quarantine, never a socket
  for (const n of m.keys()) assert.not.match(n, /cluster\.key|quarantine|\.sock$/, n);
  // the manifest says what is inside (every other member, with its size) and what failed
  const manifest = JSON.parse(text('manifest.json')) as SnapshotResult;
  assert.is(manifest.file, 'snap.tar.gz');
  const listed = new Map(manifest.members.map((x) => [x.name, x.size]));
  for (const [n, b] of m) if (n !== 'manifest.json') assert.is(listed.get(n), b.length, n);
  assert.is(r.node, 'node1');
  assert.ok(r.daemon);
  assert.is((fs.statSync(r.file).mode & 0o777), 0o600);
}));

test('a failing command is recorded (command, exit code, stderr) and the snapshot goes on', withFx(async (f) => {
  const { r, m } = await snap(f, sources());
  const nft = r.failed.find((x) => x.command === 'nft list ruleset');
  assert.equal(nft, { command: 'nft list ruleset', exitCode: 1, stderr: 'netlink: Error: Operation not permitted' });
  const dmesg = r.failed.find((x) => x.command === 'dmesg');
  assert.ok(dmesg, JSON.stringify(r.failed));
  assert.is(dmesg!.exitCode, null);
  assert.match(dmesg!.stderr, 'ENOENT');
  const nftFile = m.get('commands/nft-ruleset.failed.txt')?.toString('utf8') ?? '';
  assert.match(nftFile, '$ nft list ruleset\nexit code: 1\nstderr:\nnetlink: Error: Operation not permitted');
  assert.match(m.get('commands/dmesg-tail.failed.txt')?.toString('utf8') ?? '', 'exit code: none');
  assert.not.ok(m.has('commands/nft-ruleset.txt'));
  // what came after the failures is there
  assert.ok(m.has('system/versions.txt'));
  assert.equal(JSON.parse(m.get('manifest.json')!.toString()).failed, r.failed);
  const shown = formatSnapshot(r);
  assert.match(shown, 'not collected: nft list ruleset (exit 1: netlink: Error: Operation not permitted)');
  assert.match(shown, 'not collected: dmesg (exit none');
}));

test('the kernel log keeps its last 500 lines', withFx(async (f) => {
  const lines = Array.from({ length: 800 }, (_, i) => `[${i}] kernel line`).join('\n');
  const run: RunFn = async (cmd, args) => ({ code: 0, stdout: cmd === 'dmesg' ? lines : `${cmd} ${args.join(' ')}`, stderr: '' });
  const { m } = await snap(f, sources({ run }));
  const body = m.get('commands/dmesg-tail.txt')!.toString('utf8').split('\n').slice(1).filter(Boolean);
  assert.is(body.length, 500);
  assert.is(body[0], '[300] kernel line');
  assert.is(body.at(-1), '[799] kernel line');
}));

test('-m keeps only that module (plus cluster.xml, daemon.log, the boot counter, commands and versions)', withFx(async (f) => {
  const statusCalls: (string | undefined)[] = [];
  const { r, m } = await snap(f, sources({ statusCalls }), 'demo');
  assert.equal(statusCalls, ['demo']);
  assert.is(r.module, 'demo');
  const names = [...m.keys()];
  for (const n of ['home/modules/demo/userconfig.xml', 'home/modules/demo/bin/start_prim', 'home/state/demo.json', 'home/state/demo.peer',
    'home/state/demo.files/record/0', 'home/log/demo.log', 'run/demo.running', 'home/cluster.xml', 'home/log/daemon.log', 'home/state/boot',
    'daemon/status.json', 'daemon/modules/demo/resources.json', 'commands/ip-addr.txt', 'system/versions.txt']) {
    assert.ok(m.has(n), `${n} missing; members: ${names.join(', ')}`);
  }
  const others = names.filter((n) => n.includes('other'));
  assert.equal(others, [], 'files of module other');
}));

test('-m of a module that is not installed: UserError naming the installed ones', withFx(async (f) => {
  const e = await userError(takeSnapshot(f.home, sources(), { module: 'nosuch', file: f.out('x.tar.gz'), tandemVersion: '1' }), /module nosuch is not installed/);
  assert.match(e.hint ?? '', 'demo, other');
  assert.not.ok(fs.existsSync(f.out('x.tar.gz')));
}));

test('no daemon: the archive says so and has everything else', withFx(async (f) => {
  const { r, m } = await snap(f, sources({ status: async () => null }));
  assert.not.ok(r.daemon);
  assert.not.ok(m.has('daemon/status.json'));
  // no address of cluster.xml is on this machine and TANDEM_NODE is unset: the host name names the node
  assert.is(r.node, os.hostname());
  assert.match(m.get('daemon/NO-STATUS.txt')!.toString(), `no tandem daemon was running on ${os.hostname()}`);
  assert.ok(m.has('home/log/demo.log') && m.has('commands/ip-addr.txt'));
  assert.match(formatSnapshot(r), 'no status from the daemon');
}));

test('a daemon that does not answer is recorded as a failure; the node name then comes from cluster.xml', withFx(async (f) => {
  const saved = process.env.TANDEM_NODE;
  process.env.TANDEM_NODE = 'node2';
  try {
    const { r, m } = await snap(f, sources({ status: async () => { throw new UserError('the tandem daemon did not answer `status` within 5000 ms'); } }));
    assert.is(r.node, 'node2');
    assert.equal(r.failed[0], { command: 'tandem status --json', exitCode: null, stderr: 'the tandem daemon did not answer `status` within 5000 ms' });
    assert.match(m.get('daemon/NO-STATUS.txt')!.toString(), '`tandem status --json` failed: the tandem daemon did not answer');
  } finally {
    if (saved === undefined) delete process.env.TANDEM_NODE;
    else process.env.TANDEM_NODE = saved;
  }
}));

test('default file: ./tandem-snapshot-<node>-<UTC timestamp>.tar.gz in the current directory', withFx(async (f) => {
  const cwd = process.cwd();
  process.chdir(f.dir);
  try {
    const r = await takeSnapshot(f.home, sources(), { tandemVersion: '1' });
    assert.is(r.file, path.join(fs.realpathSync(f.dir), 'tandem-snapshot-node1-20261204T101112Z.tar.gz'));
    assert.ok(fs.existsSync(r.file));
    assert.equal(fs.readdirSync(f.dir).filter((n) => n.includes('partial')), [], 'no partial file left');
  } finally {
    process.chdir(cwd);
  }
}));

test('never replaces an existing file; a missing directory is a UserError too', withFx(async (f) => {
  fs.writeFileSync(f.out('old.tar.gz'), 'an earlier snapshot');
  const e = await userError(takeSnapshot(f.home, sources(), { file: f.out('old.tar.gz'), tandemVersion: '1' }), /already exists; a snapshot never replaces a file/);
  assert.match(e.hint ?? '', 'give another FILE');
  assert.is(fs.readFileSync(f.out('old.tar.gz'), 'utf8'), 'an earlier snapshot');
  await userError(takeSnapshot(f.home, sources(), { file: f.out('no/such/dir/s.tar.gz'), tandemVersion: '1' }), /directory .*no\/such\/dir does not exist/);
}));

test('a file that appears while the snapshot is taken is not replaced', withFx(async (f) => {
  const target = f.out('race.tar.gz');
  // the file appears after the existence check, while the outside commands run
  const run: RunFn = async (cmd, args) => {
    if (cmd === 'dmesg') fs.writeFileSync(target, 'someone else');
    return { code: 0, stdout: `${cmd} ${args.join(' ')}`, stderr: '' };
  };
  await userError(takeSnapshot(f.home, sources({ run }), { file: target, tandemVersion: '1' }), /already exists/);
  assert.is(fs.readFileSync(target, 'utf8'), 'someone else');
  assert.equal(fs.readdirSync(f.dir).filter((n) => n.includes('partial')), []);
}));

test('the cluster key is in no member in any encoding, even where a file or the daemon embeds it', withFx(async (f) => {
  const k = f.key;
  const hb = deriveKey(k, 'heartbeat');
  // plant the key (and a sub-key) in every kind of member, in each encoding
  fs.writeFileSync(homePaths.userconfig(f.home, 'demo'), userconfig(`<user><var name="SECRET" value="${k.toString('hex')}"/></user>`));
  fs.appendFileSync(homePaths.moduleLog(f.home, 'demo'), `leaked ${k.toString('base64')} and ${k.toString('base64url')}\n`);
  fs.appendFileSync(homePaths.daemonLog(f.home), `sub-key ${hb.toString('hex')} ${deriveKey(k, 'replication').toString('base64').replace(/=+$/, '')}\n`);
  fs.writeFileSync(path.join(homePaths.scriptsDir(f.home, 'demo'), 'start_prim'), `#!/bin/sh\nKEY=${k.toString('hex').toUpperCase()}\n`);
  fs.writeFileSync(path.join(f.home.root, 'state', 'demo.files', 'record', '0'), Buffer.concat([Buffer.from('bin'), k, Buffer.from('ary'), deriveKey(k, 'control')]));
  const run: RunFn = async (cmd, args) => ({ code: 0, stdout: cmd === 'ip' && args[0] === 'addr' ? `inet 10.0.0.1 ${k.toString('hex')}` : 'ok', stderr: '' });
  const { r, m } = await snap(f, sources({ run, status: async () => statusOf(['demo'], `key ${k.toString('hex')}`) }));
  assertNoKey(r.file, m, k);
  assert.equal([...r.redacted].sort(), ['commands/ip-addr.txt', 'daemon/modules/demo/resources.json', 'daemon/status.json', 'home/log/daemon.log',
    'home/log/demo.log', 'home/modules/demo/bin/start_prim', 'home/modules/demo/userconfig.xml', 'home/state/demo.files/record/0']);
  assert.match(m.get('home/modules/demo/userconfig.xml')!.toString(), `value="${KEY_REMOVED}"`);
  assert.is(m.get('home/state/demo.files/record/0')!.toString('latin1'), `bin${KEY_REMOVED}ary${KEY_REMOVED}`);
  assert.match(formatSnapshot(r), 'warning: the cluster key was found in');
  // the node's files themselves are left as they were
  assert.match(fs.readFileSync(homePaths.userconfig(f.home, 'demo'), 'utf8'), k.toString('hex'));
}));

test('scrub: every occurrence of every needle; the same buffer when there is none', () => {
  const k = generateKey();
  const needles = keyEncodings(k);
  const clean = Buffer.from('nothing secret here');
  assert.ok(scrub(clean, needles) === clean);
  const dirty = Buffer.from(`a ${k.toString('hex')} b ${k.toString('hex')} c ${k.toString('base64')}`);
  assert.is(scrub(dirty, needles).toString(), `a ${KEY_REMOVED} b ${KEY_REMOVED} c ${KEY_REMOVED}`);
});

test.run();
