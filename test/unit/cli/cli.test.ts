/**
 * The real CLI (`node bin/tandem …`, as a user runs it) against temporary homes: help, exit codes and messages of
 * the offline commands, and two real daemons on loopback driven through the CLI.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { controlRequest } from '../../../src/daemon/control.js';
import { generateKey, writeKeyFile } from '../../../src/daemon/key.js';
import { waitFor } from '../wait-for.js';
import { BIN, cliEnv, ROOT, runTandem, type Run } from './run.js';

// dist/test/unit/cli → repository root
const tandem = (args: string[], env: Record<string, string> = {}): Promise<Run> => runTandem(args, { env });

const EXIT_USER_ERROR = 10;



function show(r: Run): string {
  return `exit ${r.code}\n--- stdout\n${r.stdout}--- stderr\n${r.stderr}`;
}

function expectUserError(r: Run, ...patterns: RegExp[]): void {
  assert.is(r.code, EXIT_USER_ERROR, show(r));
  for (const p of patterns) assert.match(r.stderr, p, show(r));
}

const dirs: string[] = [];
function tmp(prefix = 'tdcli-'): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  dirs.push(d);
  return d;
}
test.after(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

const cluster = (a1: string, a2: string, port?: number) => `<?xml version="1.0"?>
<cluster>
  <lans${port ? ` port="${port}"` : ''}>
    <lan name="default">
      <node name="node1" addr="${a1}"/>
      <node name="node2" addr="${a2}"/>
    </lan>
  </lans>
</cluster>
`;

const USERCONFIG = `<?xml version="1.0"?>
<safe>
  <service mode="mirror">
    <heart pulse="100ms" timeout="600ms"/>
  </service>
</safe>
`;

/** A home with cluster.xml (TEST-NET addresses: offline commands never use them). */
function offlineHome(): { root: string; env: Record<string, string> } {
  const root = tmp();
  fs.writeFileSync(path.join(root, 'cluster.xml'), cluster('198.51.100.1', '198.51.100.2'));
  return { root, env: { TANDEM_HOME: root, TANDEM_RUN_DIR: path.join(root, 'run'), TANDEM_NODE: 'node1' } };
}

/** A module source directory: userconfig.xml and bin/start_prim. */
function moduleSource(userconfig = USERCONFIG): string {
  const d = tmp('tdmod-');
  fs.writeFileSync(path.join(d, 'userconfig.xml'), userconfig);
  fs.mkdirSync(path.join(d, 'bin'));
  fs.writeFileSync(path.join(d, 'bin', 'start_prim'), '#!/bin/sh\necho "$TANDEM_NODE $*" >> "$TANDEM_HOME/app.log"\n', { mode: 0o755 });
  return d;
}

// ───────────────────────── offline commands ─────────────────────────

test('--help lists the commands', async () => {
  const r = await tandem(['--help']);
  assert.is(r.code, 0, show(r));
  for (const c of ['config', 'daemon', 'forcestop', 'install', 'list', 'log', 'prim', 'restart', 'second', 'start', 'state', 'status', 'stop', 'swap', 'uninstall', 'cluster']) {
    assert.match(r.stdout, new RegExp(`^\\s+${c}\\s`, 'm'), `help lists ${c}\n${r.stdout}`);
  }
});

test('status without a daemon: exit 10, says none runs and how to start it', async () => {
  const { env } = offlineHome();
  const r = await tandem(['status'], env);
  expectUserError(r, /no tandem daemon is running/, /tandem daemon/);
  assert.is(r.stdout, '');
});

test('install: missing source, no userconfig.xml, invalid userconfig (with its line)', async () => {
  const { root, env } = offlineHome();
  const missing = path.join(tmp(), 'nope');
  expectUserError(await tandem(['install', '-m', 'demo', missing], env), /does not exist/);

  const empty = tmp('tdmod-');
  expectUserError(await tandem(['install', '-m', 'demo', empty], env), /has no userconfig\.xml/);

  const bad = moduleSource(USERCONFIG.replace('timeout="600ms"', 'timeout="5x"'));
  expectUserError(await tandem(['install', '-m', 'demo', bad], env), /userconfig\.xml line 4/, /"5x" is not a duration/);

  assert.not.ok(fs.existsSync(path.join(root, 'modules', 'demo')), 'nothing installed by a failed install');
});

test('install: copies the module; a second install needs --force', async () => {
  const { root, env } = offlineHome();
  const src = moduleSource();
  const r = await tandem(['install', '-m', 'demo', src], env);
  assert.is(r.code, 0, show(r));
  assert.match(r.stdout, /module demo: installed; the daemon is not running/);
  const dir = path.join(root, 'modules', 'demo');
  assert.is(fs.readFileSync(path.join(dir, 'userconfig.xml'), 'utf8'), USERCONFIG);
  const script = path.join(dir, 'bin', 'start_prim');
  assert.is(fs.readFileSync(script, 'utf8'), fs.readFileSync(path.join(src, 'bin', 'start_prim'), 'utf8'));
  assert.ok(fs.statSync(script).mode & 0o100, 'the script keeps its execute bit');

  expectUserError(await tandem(['install', '-m', 'demo', src], env), /module demo is already installed/, /--force/);

  fs.writeFileSync(path.join(src, 'bin', 'stop_prim'), '#!/bin/sh\n', { mode: 0o755 });
  const forced = await tandem(['install', '-m', 'demo', src, '--force'], env);
  assert.is(forced.code, 0, show(forced));
  assert.ok(fs.existsSync(path.join(dir, 'bin', 'stop_prim')), '--force replaced the module');
  assert.not.ok(fs.existsSync(`${dir}.new`), 'no staging directory left');
});

test('config -m demo on an invalid userconfig.xml: exit 10 naming the line', async () => {
  const { root, env } = offlineHome();
  fs.mkdirSync(path.join(root, 'modules', 'demo'), { recursive: true });
  fs.writeFileSync(path.join(root, 'modules', 'demo', 'userconfig.xml'), USERCONFIG.replace('  </service>', '    <frobnicate/>\n  </service>'));
  const r = await tandem(['config', '-m', 'demo'], env);
  expectUserError(r, /userconfig\.xml line 5/, /frobnicate/);

  fs.writeFileSync(path.join(root, 'modules', 'demo', 'userconfig.xml'), USERCONFIG);
  const ok = await tandem(['config', '-m', 'demo'], env);
  assert.is(ok.code, 0, show(ok));
  assert.match(ok.stdout, /configuration of demo is valid/);
});

test('cluster genkey: a 0600 hex key, refused a second time without --force', async () => {
  const { root, env } = offlineHome();
  const file = path.join(root, 'cluster.key');
  const r = await tandem(['cluster', 'genkey'], env);
  assert.is(r.code, 0, show(r));
  assert.match(r.stdout, /Copy this same file to every node/);
  assert.is(fs.statSync(file).mode & 0o777, 0o600);
  const key = fs.readFileSync(file, 'utf8');
  assert.match(key, /^[0-9a-f]{64}\n$/);

  expectUserError(await tandem(['cluster', 'genkey'], env), /a cluster key already exists/, /--force/);
  assert.is(fs.readFileSync(file, 'utf8'), key, 'the key is untouched');

  const forced = await tandem(['cluster', 'genkey', '--force'], env);
  assert.is(forced.code, 0, show(forced));
  const key2 = fs.readFileSync(file, 'utf8');
  assert.match(key2, /^[0-9a-f]{64}\n$/);
  assert.is.not(key2, key);
  assert.is(fs.statSync(file).mode & 0o777, 0o600);
});

test('state without a module: exit 10 "needs a module"', async () => {
  const { env } = offlineHome();
  const r = await tandem(['state'], env);
  expectUserError(r, /needs a module/);
});

test('daemon start errors: no cluster.xml, no key, no local address of the cluster (exit 10, what to do)', async () => {
  const empty = tmp();
  const env = { TANDEM_HOME: empty, TANDEM_RUN_DIR: path.join(empty, 'run') };
  expectUserError(await tandem(['daemon'], env), /cluster\.xml/, /README/);

  const home = offlineHome();
  expectUserError(await tandem(['daemon'], home.env), /no cluster key/, /tandem cluster genkey/);

  // key present, but none of the cluster's addresses is configured here and TANDEM_NODE is not set
  await writeKeyFile(path.join(home.root, 'cluster.key'), generateKey());
  const { TANDEM_NODE: _unused, ...noNode } = home.env;
  expectUserError(await tandem(['daemon'], noNode), /198\.51\.100\.1/, /TANDEM_NODE/);
  assert.not.ok(fs.existsSync(path.join(home.root, 'control.sock')), 'no control socket left behind');
});

test('log of an unknown module: exit 10', async () => {
  const { env } = offlineHome();
  const r = await tandem(['log', '-m', 'nosuch'], env);
  expectUserError(r, /no log for module nosuch/);
});

// ───────────────────────── two real daemons on loopback ─────────────────────────

function bindUdp(address: string, port: number): Promise<dgram.Socket> {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4');
    s.once('error', reject);
    s.bind({ address, port, exclusive: true }, () => {
      s.off('error', reject);
      resolve(s);
    });
  });
}

/** A UDP port free on 127.0.0.1 and 127.0.0.2 (bound on both, then released). */
async function freePort(): Promise<number> {
  for (let i = 0; ; i++) {
    const a = await bindUdp('127.0.0.1', 0);
    const port = a.address().port;
    const b = await bindUdp('127.0.0.2', port).catch(() => null);
    await new Promise<void>((r) => a.close(() => r()));
    if (b) {
      await new Promise<void>((r) => b.close(() => r()));
      return port;
    }
    if (i > 20) throw new Error('no UDP port free on both 127.0.0.1 and 127.0.0.2');
  }
}

interface DaemonProc {
  name: string;
  env: Record<string, string>;
  child: ChildProcess;
  out: string;
}

function spawnDaemon(name: string, env: Record<string, string>): DaemonProc {
  const child = spawn(process.execPath, [BIN, 'daemon'], { cwd: ROOT, env: cliEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  const d: DaemonProc = { name, env, child, out: '' };
  child.stdout!.on('data', (c) => { d.out += c; });
  child.stderr!.on('data', (c) => { d.out += c; });
  return d;
}

async function killDaemon(d: DaemonProc): Promise<void> {
  if (d.child.exitCode !== null || d.child.signalCode !== null) return;
  const exited = new Promise<void>((r) => d.child.once('exit', () => r()));
  process.kill(d.child.pid!, 'SIGKILL');
  await exited;
}

/** Polls `tandem state -m demo` until it exits `code` with a settled (not transient) state. */
async function stateIs(d: DaemonProc, code: number, label: string): Promise<void> {
  await waitFor(async () => {
    const r = await tandem(['state', '-m', 'demo'], d.env);
    return r.code === code && r.stdout.trim() === label;
  }, 15_000, `${d.name}: tandem state -m demo exits ${code} (${label})`, 50);
}

test('two real daemons on loopback: prim, second, state exit codes, failover after SIGKILL', async () => {
  const base = tmp('tdlo-');
  const port = await freePort();
  const key = generateKey();
  const src = moduleSource();
  const daemons: DaemonProc[] = [];
  try {
    const envs: Record<string, Record<string, string>> = {};
    for (const name of ['node1', 'node2']) {
      const root = path.join(base, name);
      fs.mkdirSync(root);
      fs.writeFileSync(path.join(root, 'cluster.xml'), cluster('127.0.0.1', '127.0.0.2', port));
      await writeKeyFile(path.join(root, 'cluster.key'), key);
      const env = { TANDEM_HOME: root, TANDEM_RUN_DIR: path.join(base, `${name}-run`), TANDEM_NODE: name };
      envs[name] = env;
      const inst = await tandem(['install', '-m', 'demo', src], env);
      assert.is(inst.code, 0, show(inst));
      daemons.push(spawnDaemon(name, env));
    }
    const [d1, d2] = daemons as [DaemonProc, DaemonProc];
    for (const d of daemons) {
      await waitFor(async () => {
        if (d.child.exitCode !== null) throw new Error(`daemon exited ${d.child.exitCode}:\n${d.out}`);
        return controlRequest(path.join(d.env.TANDEM_HOME!, 'control.sock'), 'ping', undefined, undefined, { timeoutMs: 1000 });
      }, 15_000, `${d.name} daemon answering ping`).catch((e: Error) => {
        throw new Error(`${e.message}\n${d.out}`);
      });
    }

    for (const d of daemons) {
      const r = await tandem(['start', '-m', 'demo'], d.env);
      assert.is(r.code, 0, show(r));
    }
    await stateIs(d1, 1, 'WAIT');
    await stateIs(d2, 1, 'WAIT');

    const prim = await tandem(['prim', '-m', 'demo'], d1.env);
    assert.is(prim.code, 0, show(prim));
    await stateIs(d1, 2, 'ALONE');

    const second = await tandem(['second', '-m', 'demo'], d2.env);
    assert.is(second.code, 0, show(second));
    await stateIs(d1, 3, 'PRIM');
    await stateIs(d2, 4, 'SECOND');
    assert.is(fs.readFileSync(path.join(d1.env.TANDEM_HOME!, 'app.log'), 'utf8'), 'node1 WAIT ALONE start\n', 'start_prim ran on node1');

    await killDaemon(d1);
    await stateIs(d2, 2, 'ALONE');
    const st = await tandem(['status', '-m', 'demo', '--json'], d2.env);
    assert.is(st.code, 0, show(st));
    const m = (JSON.parse(st.stdout) as { modules: { state: string; peer: { reachable: boolean } }[] }).modules[0]!;
    assert.is(m.state, 'ALONE');
    assert.is(m.peer.reachable, false);
    assert.is(fs.readFileSync(path.join(d2.env.TANDEM_HOME!, 'app.log'), 'utf8'), 'node2 SECOND ALONE start\n', 'start_prim ran on node2');

    // the machine-readable surface (README), from a real daemon: state --json keeps the state as its exit code
    const sj = await tandem(['state', '-m', 'demo', '--json'], d2.env);
    assert.is(sj.code, 2, show(sj));
    assert.equal(JSON.parse(sj.stdout), { module: 'demo', mode: 'mirror', state: 'ALONE', ready: true, exitCode: 2 });
    const lj = await tandem(['list', '--json'], d2.env);
    assert.is(lj.code, 0, show(lj));
    assert.equal(JSON.parse(lj.stdout), { daemon: true, modules: [{ module: 'demo', state: 'ALONE', ready: true }] });
    const gj = await tandem(['get', '-m', 'demo', '-r', 'heartbeat.default', '--json'], d2.env);
    assert.is(gj.code, 1, show(gj));
    const res = JSON.parse(gj.stdout) as Record<string, unknown>;
    assert.equal([res.name, res.state, res.by], ['heartbeat.default', 'down', 'derived']);
    const logj = await tandem(['log', '-m', 'demo', '-n', '5', '--json'], d2.env);
    assert.is(logj.code, 0, show(logj));
    const lines = logj.stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as { module: string; at: string | null; level: string | null; line: string });
    assert.is(lines.length, 5, show(logj));
    for (const l of lines) {
      assert.equal(Object.keys(l), ['module', 'at', 'level', 'line']);
      assert.is(l.module, 'demo');
      if (l.at !== null) assert.ok(l.line.startsWith(l.at) && !Number.isNaN(Date.parse(l.at)), l.line);
    }
    assert.ok(lines.some((l) => l.at !== null && l.level !== null), 'the daemon\'s lines carry their time and level');
  } finally {
    for (const d of daemons) await killDaemon(d);
  }
});

test.run();
