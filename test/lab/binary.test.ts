// The single binary (issue #11, item 4): built with `bun build --compile` (scripts/build-binary.mjs) from this
// checkout's dist/, copied ALONE into an empty directory, and used as the lab nodes' tandem (CLI and daemon; the
// daemon starts the replication hosts and their FUSE worker threads from the same file). With it: the demo cluster
// (replicated data directory), a PRIM power-off (the other node becomes ALONE and serves, its count going on), and
// the reintegration of the powered-off node (it becomes SECOND after a resync and both copies are equal).
// Every process that serves the module is checked to be the binary (/proc/PID/exe), so the node entry cannot be used
// by accident. Printed, not asserted (timing belongs to benchmarks): size, `--version` start-up against bin/tandem,
// and dd write throughput on the replicated directory, the binary's against the node entry's in the same lab.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { median, waitForPair } from '../../src/lab/failover.js';
import type { Lab } from '../../src/lab/lab.js';
import { createMirrorLab, DEMO_PORT, DEMO_VIP, moduleLogOf, waitForDaemon } from '../../src/lab/mirror-lab.js';
import { moduleState, waitForStates } from '../../src/lab/postgres.js';
import { repoRoot, type LabSpec } from '../../src/lab/spec.js';
import { digestDiff, treeDigest } from '../../src/lab/tree-digest.js';

const REPO = repoRoot();
const NODE_ENTRY = path.join(REPO, 'bin', 'tandem');
const M = 'demo';
const DATA = '/srv/demo/data';

let binDir = '';
let bin = '';
let lab: Lab | null = null;

/** Builds the binary into a scratch directory, then copies it alone into an empty one. */
function buildBinary(): string {
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-bin-build-'));
  try {
    const t0 = performance.now();
    const r = spawnSync(path.join(REPO, 'node_modules', '.bin', 'bun'), ['scripts/build-binary.mjs', path.join(scratch, 'tandem')],
      { cwd: REPO, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`build-binary failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
    console.log(`  ${r.stdout.trim()} (build ${((performance.now() - t0) / 1000).toFixed(1)} s with bun start-up)`);
    binDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-bin-'));
    const out = path.join(binDir, 'tandem');
    fs.copyFileSync(path.join(scratch, 'tandem'), out);
    fs.chmodSync(out, 0o755);
    return out;
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}

const exeOf = (pid: number) => fs.readlinkSync(`/proc/${pid}/exe`);

/** PIDs of the replication hosts of module M serving `home` (their cmdline names the hidden command). */
function hostPids(home: string): number[] {
  return fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d)).map(Number).filter((pid) => {
    try {
      const argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      if (!argv.includes('__replication-host')) return false;
      return fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').includes(`TANDEM_HOME=${home}`);
    } catch {
      return false;
    }
  });
}

/** The daemon and the replication host of `node` are the binary, not node. */
async function assertServedByBinary(l: Lab, node: string, exe: string): Promise<void> {
  const pid = l.daemonPid(node);
  assert.ok(pid !== undefined, `${node} runs a daemon`);
  assert.is(exeOf(pid!), exe, `${node}'s daemon (pid ${pid}) runs ${exe}`);
  let hosts: number[] = [];
  await l.waitFor(`${node}'s replication host`, async () => (hosts = hostPids(l.paths(node).home)).length > 0, 20_000, 100);
  for (const h of hosts) assert.is(exeOf(h), exe, `${node}'s replication host (pid ${h}) runs ${exe}`);
}

async function hits(l: Lab, expect: string): Promise<number> {
  let n = -1;
  await l.waitFor(`the demo on ${expect} answers on the VIP`, async () => {
    const r = await l.httpGet('client', `http://${DEMO_VIP}:${DEMO_PORT}/`, 1000);
    if (!r.ok || !r.body?.includes(`"node":"${expect}"`)) return false;
    n = (JSON.parse(r.body) as { hits: number }).hits;
    return true;
  }, 30_000, 100);
  return n;
}

/** MB/s of `dd` writing `mb` MiB in blocks of `bs` bytes (fsync at the end) into the replicated directory on `node`. */
async function ddWrite(l: Lab, node: string, mb: number, bs: number): Promise<number> {
  const file = `${DATA}/dd.bin`;
  const count = (mb * 1024 * 1024) / bs;
  const r = await l.exec(node, ['dd', 'if=/dev/zero', `of=${file}`, `bs=${bs}`, `count=${count}`, 'conv=fsync'], { timeoutMs: 120_000 });
  await l.exec(node, ['rm', '-f', file]);
  const m = /([\d.,]+) s, ([\d.,]+) ([kMG]?B)\/s/.exec(r.stderr);
  assert.ok(m, `dd's summary: ${r.stderr}`);
  const secs = Number(m![1]!.replace(',', '.'));
  return (mb * 1024 * 1024) / secs / 1e6;
}

/** dd runs on the PRIM: 1 MiB blocks (the data path) and 4 KiB blocks (one FUSE request each: the per-request cost) */
const DD_RUNS = [{ mb: 128, bs: 1 << 20 }, { mb: 16, bs: 4096 }] as const;
const DD_ROUNDS = 3;

async function ddRounds(l: Lab, node: string): Promise<number[][]> {
  const out: number[][] = [];
  for (const d of DD_RUNS) {
    const r: number[] = [];
    for (let i = 0; i < DD_ROUNDS; i++) r.push(await ddWrite(l, node, d.mb, d.bs));
    out.push(r);
  }
  return out;
}

test.before(async () => {
  bin = buildBinary();
  lab = await createMirrorLab({
    pulse: '200ms', timeout: '1s', replicate: true,
    spec: { cliCommand: [bin], daemonCommand: [bin, 'daemon'] },
  });
});

test.after(async () => {
  await lab?.down();
  if (binDir) fs.rmSync(binDir, { recursive: true, force: true });
});

const dump = (l: Lab | null) => {
  if (l) for (const n of ['node1', 'node2']) console.log(`--- ${n}\n${moduleLogOf(l, n, M).split('\n').slice(-40).join('\n')}`);
};

test('the binary stands alone: one file in its directory, every command of src/commands in it, errors as with node (start-up printed)', () => {
  assert.equal(fs.readdirSync(binDir), ['tandem'], 'the binary is alone in its directory');
  const size = fs.statSync(bin).size;
  const commandsDir = path.join(REPO, 'dist', 'src', 'commands');
  const walk = (d: string): string[] => fs.readdirSync(d, { withFileTypes: true })
    .flatMap((e) => e.isDirectory() ? walk(path.join(d, e.name)) : e.name.endsWith('.js') ? [path.join(d, e.name)] : []);
  const ids = walk(commandsDir).map((f) => path.relative(commandsDir, f).replace(/\.js$/, '').split(path.sep));
  assert.ok(ids.length > 20, `found the commands (${ids.length})`);
  for (const id of ids) {
    const r = spawnSync(bin, [...id, '--help'], { cwd: binDir, encoding: 'utf8' });
    assert.is(r.status, 0, `tandem ${id.join(' ')} --help: ${r.stderr}`);
    assert.match(r.stdout, /USAGE/, `tandem ${id.join(' ')} --help prints its usage`);
  }
  // an error goes through tandem's own handler as with node: the same exit code (10) and the same words
  const env = { ...process.env, TANDEM_HOME: path.join(binDir, 'no-home') };
  const r = spawnSync(bin, ['state', '-m', 'demo'], { cwd: binDir, encoding: 'utf8', env });
  const n = spawnSync(NODE_ENTRY, ['state', '-m', 'demo'], { cwd: binDir, encoding: 'utf8', env });
  assert.is(r.status, 10, `a user error exits 10: ${r.stderr}`);
  assert.match(r.stderr, /no tandem daemon is running .* Start it with/);
  assert.is(r.stderr, n.stderr, 'the binary says what the node entry says');

  const version = execFileSync(bin, ['--version'], { encoding: 'utf8' });
  assert.is(version.split(' ')[0], execFileSync(NODE_ENTRY, ['--version'], { encoding: 'utf8' }).split(' ')[0]);
  assert.match(version, /^tandem\/\S+ linux-x64 bun-\d+\.\d+\.\d+ \(single binary\)\n$/, 'the runtime it runs on, not bun\'s node emulation');
  const times: Record<string, number[]> = { binary: [], node: [] };
  for (let i = 0; i < 10; i++) {
    for (const [k, argv] of [['binary', [bin]], ['node', [NODE_ENTRY]]] as const) {
      const t0 = performance.now();
      execFileSync(argv[0], ['--version'], { stdio: 'ignore' });
      times[k]!.push(performance.now() - t0);
    }
  }
  console.log(`  binary: ${(size / 1e6).toFixed(1)} MB; tandem --version median of 10: binary ${median(times.binary!.map(Math.round))} ms, ` +
    `bin/tandem (node) ${median(times.node!.map(Math.round))} ms`);
});

test('with the binary alone: demo cluster, PRIM power-off (node2 ALONE serves, the count goes on), reintegration', async () => {
  let ok = false;
  const l = lab!;
  try {
    for (const n of ['node1', 'node2']) assert.is(exeOf(l.daemonPid(n)!), bin, `${n}'s daemon is the binary`);
    for (const n of ['node1', 'node2']) await l.cli(n, ['start', '-m', M]);
    await waitForStates(l, { node1: 'WAIT', node2: 'WAIT' }, 30_000, M);
    await l.cli('node1', ['prim', '-m', M]);
    await waitForStates(l, { node1: 'ALONE' }, 30_000, M);
    await l.cli('node2', ['second', '-m', M]);
    await waitForPair(l, 'node1', 'node2');
    for (const n of ['node1', 'node2']) await assertServedByBinary(l, n, bin);
    // the binary's CLI reads the state too (exit code = state, README)
    const st = await l.cli('node1', ['state', '-m', M], { reject: false });
    assert.match(st.stdout, /PRIM/);

    // data written through the binary's FUSE mount on the PRIM: the demo's count, and files
    let before = 0;
    for (let i = 0; i < 5; i++) before = await hits(l, 'node1');
    await l.exec('node1', ['sh', '-c', `mkdir -p ${DATA}/tree && for i in 1 2 3 4 5 6 7 8; do head -c 300000 /dev/urandom > ${DATA}/tree/f$i; done && sync`]);

    await l.poweroff('node1');
    await waitForStates(l, { node2: 'ALONE' }, 30_000, M);
    const after = await hits(l, 'node2');
    assert.ok(after > before, `the count went on after the failover (${before} on node1, then ${after} on node2)`);
    // node2 goes on writing while node1 is off: the reintegration has something to copy
    await l.exec('node2', ['sh', '-c', `head -c 500000 /dev/urandom > ${DATA}/tree/f3 && rm ${DATA}/tree/f5 && echo new > ${DATA}/tree/g && sync`]);

    await l.boot('node1');
    await waitForDaemon(l, 'node1');
    assert.is(exeOf(l.daemonPid('node1')!), bin, 'the booted node1 runs the binary again');
    await waitForStates(l, { node1: 'SECOND', node2: 'PRIM' }, 60_000, M);
    assert.is(await moduleState(l, 'node1', M), 'SECOND');
    await assertServedByBinary(l, 'node1', bin);
    // the copies are equal (read beside the mounts, from this process's mount namespace)
    await l.waitFor('node1\'s copy equal to node2\'s', async () => {
      const [a, b] = await Promise.all(['node1', 'node2'].map((n) => treeDigest(path.join(l.paths(n).root, DATA))));
      return a!.digest === b!.digest;
    }, 30_000, 200).catch(async (e) => {
      const [a, b] = await Promise.all(['node1', 'node2'].map((n) => treeDigest(path.join(l.paths(n).root, DATA))));
      throw new Error(`${(e as Error).message}: ${digestDiff(a!.entries, b!.entries).join('; ')}`);
    });
    const g = fs.readFileSync(path.join(l.paths('node1').root, DATA, 'tree', 'g'), 'utf8');
    assert.is(g, 'new\n', 'node1 got what node2 wrote while it was off');
    assert.ok(!fs.existsSync(path.join(l.paths('node1').root, DATA, 'tree', 'f5')), 'and lost what node2 removed');
    assert.ok(await hits(l, 'node2') > after, 'node2 still serves, its count going on');
    ok = true;
  } finally {
    if (!ok) dump(lab);
  }
});

test('FUSE write throughput on the replicated directory: the binary against the node entry (printed)', async () => {
  let ok = false;
  const l = lab!;
  try {
    await waitForPair(l, 'node2', 'node1');
    await assertServedByBinary(l, 'node2', bin);
    const viaBinary = await ddRounds(l, 'node2');
    // the same lab with the node entry: stop the module (its replication hosts end), restart both daemons with node
    for (const n of ['node2', 'node1']) await l.cli(n, ['stop', '-m', M]);
    await waitForStates(l, { node1: 'STOP', node2: 'STOP' }, 30_000, M);
    for (const n of ['node1', 'node2']) {
      await l.waitFor(`${n}'s replication host ended`, async () => hostPids(l.paths(n).home).length === 0, 20_000, 100);
      l.killDaemon(n, 'SIGTERM');
      await l.waitFor(`${n}'s daemon ended`, async () => l.daemonPid(n) === undefined, 20_000, 100);
    }
    (l.spec as LabSpec).daemonCommand = [NODE_ENTRY, 'daemon'];
    (l.spec as LabSpec).cliCommand = [NODE_ENTRY];
    for (const n of ['node1', 'node2']) l.spawnDaemon(n);
    for (const n of ['node1', 'node2']) await waitForDaemon(l, n);
    await l.cli('node2', ['start', '-m', M]);
    await waitForStates(l, { node2: 'ALONE' }, 30_000, M);
    await l.cli('node1', ['start', '-m', M]);
    await waitForPair(l, 'node2', 'node1');
    const nodeExe = fs.realpathSync(process.execPath);
    const hosts = hostPids(l.paths('node2').home);
    assert.ok(hosts.length > 0 && hosts.every((h) => exeOf(h) === nodeExe), 'node2\'s replication host now runs node');
    const viaNode = await ddRounds(l, 'node2');
    const fmt = (xs: number[]) => xs.map((x) => x.toFixed(1)).join(', ');
    DD_RUNS.forEach((d, i) => {
      const [b, n] = [median(viaBinary[i]!), median(viaNode[i]!)];
      console.log(`  dd ${d.mb} MiB, bs=${d.bs}, conv=fsync into the replicated directory of the PRIM (SECOND attached), median of ${DD_ROUNDS}: ` +
        `binary ${b.toFixed(1)} MB/s [${fmt(viaBinary[i]!)}], node ${n.toFixed(1)} MB/s [${fmt(viaNode[i]!)}] (binary/node = ${(b / n).toFixed(2)})`);
      assert.ok(b > 0 && n > 0);
    });
    ok = true;
  } finally {
    if (!ok) dump(lab);
  }
});

test.run();
