// POSIX conformance of the FUSE mount, differentially (root): the table of test/lab/posix/cases.ts runs, case by
// case, step by step, on two plain directories (a, b) and on the FUSE passthrough mount of a primary (m, over
// backing/), all on the same filesystem and with paths of the same length. Every step's outcome (value or errno) and
// each case's final tree must be equal on a and b (the control: the comparison itself is deterministic) and on a and
// m, except for the differences listed, with their reason, in ALLOWED. Steps run in child processes
// (test/lab/posix/runner.ts), one per directory and user; this process serves the mount and touches it only through
// them. The changes the mount reports are applied, as the SECOND would, to a copy (replica/) with the stream's
// applier: no change may fail there, and the copy must end equal to the backing directory apart from local-only
// nodes (FIFOs, sockets, devices).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { run } from '../../src/platform/exec.js';
import { toStream } from '../../src/replication/files/wire.js';
import { mountPassthrough, type PassthroughMount } from '../../src/replication/fuse/index.js';
import type { AsyncChangeSink, Change } from '../../src/replication/fuse/sink.js';
import { Applier } from '../../src/replication/stream/apply.js';
import { ALLOWED, CASES, type Case, USERS, type Who } from './posix/cases.js';
import type { Answer, Value } from './posix/runner.js';

const RUNNER = fileURLToPath(new URL('./posix/runner.js', import.meta.url));
/** short on purpose: the mount's backing path (/proc/self/fd/N/…) is then longer than the mount's own paths */
const PREFIX = '/tmp/tc';
const STEP_TIMEOUT_MS = 30_000;

class Runner {
  private readonly child: ChildProcess;
  private readonly pending = new Map<number, (a: Answer) => void>();
  private nextId = 1;
  private readonly exited: Promise<void>;
  stderr = '';

  constructor(readonly who: Who, cwd: string) {
    const node = [process.execPath, RUNNER];
    const u = who === 'root' ? null : USERS[who];
    const [cmd, ...args] = u
      ? ['setpriv', `--reuid=${u.uid}`, `--regid=${u.gid}`, `--groups=${u.groups.join(',')}`, '--', ...node]
      : node;
    this.child = spawn(cmd!, args, { cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stderr!.on('data', (d: Buffer) => { this.stderr += d.toString(); });
    const rl = readline.createInterface({ input: this.child.stdout! });
    rl.on('line', (line) => {
      const a = JSON.parse(line) as Answer;
      this.pending.get(a.id)?.(a);
      this.pending.delete(a.id);
    });
    this.exited = new Promise((r) => this.child.once('exit', () => r()));
  }

  call(op: string, args: Value[]): Promise<Answer> {
    const id = this.nextId++;
    return new Promise<Answer>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`${this.who}: ${op} did not answer within ${STEP_TIMEOUT_MS} ms; stderr: ${this.stderr}`)), STEP_TIMEOUT_MS);
      this.pending.set(id, (a) => { clearTimeout(t); resolve(a); });
      this.child.stdin!.write(`${JSON.stringify({ id, op, args })}\n`);
    });
  }

  async close(): Promise<void> {
    this.child.stdin!.end();
    const t = setTimeout(() => { if (this.child.pid) process.kill(this.child.pid, 'SIGKILL'); }, 5000);
    await this.exited;
    clearTimeout(t);
  }
}

interface Target {
  name: string;
  root: string;
  runners: Record<Who, Runner>;
}

interface Outcome {
  steps: string[];
  tree: string;
}

function show(a: Answer): string {
  return a.ok ? JSON.stringify(a.value) : a.code;
}

async function runCase(t: Target, c: Case, dir: string): Promise<Outcome> {
  const abs = path.join(t.root, dir);
  const mk = await t.runners.root.call('mkdir', [abs, 0o755]);
  if (!mk.ok) throw new Error(`${t.name}: cannot make ${abs}: ${mk.code}`);
  for (const r of Object.values(t.runners)) {
    const a = await r.call('case', [abs]);
    if (!a.ok) throw new Error(`${t.name}/${r.who}: cannot enter ${abs}: ${a.code}`);
  }
  const steps: string[] = [];
  for (const s of c.steps) {
    const a = await t.runners[s.as].call(s.op, s.args);
    if (!a.ok && a.code.startsWith('BUG')) throw new Error(`${t.name}: case "${c.name}", ${s.op}: ${a.code}`);
    steps.push(`${s.as} ${s.op}: ${show(a)}`);
  }
  await t.runners.root.call('chdir', [abs]);
  const tree = await t.runners.root.call('tree', ['.']);
  return { steps, tree: show(tree) };
}

function differences(x: Outcome, y: Outcome): string[] {
  const out: string[] = [];
  for (let i = 0; i < Math.max(x.steps.length, y.steps.length); i++) {
    if (x.steps[i] !== y.steps[i]) out.push(`step ${i + 1}: ${x.steps[i]}  ≠  ${y.steps[i]}`);
  }
  if (x.tree !== y.tree) out.push(`tree: ${x.tree}  ≠  ${y.tree}`);
  return out;
}

/** the SECOND's side: applies what the mount reports to replica/, in order, with the stream's applier */
function replicaSink(root: string, failures: string[]): AsyncChangeSink {
  const applier = new Applier({ dirs: [{ dir: '/conformance', root }] });
  const apply = async (cs: Parameters<Applier['apply']>[0][]) => {
    for (const x of cs) {
      await applier.apply(x).catch(async (e: Error) => {
        failures.push(e.message);
        await applier.reset();
      });
    }
  };
  return {
    onChange: (c: Change) => apply(toStream('/conformance', c)),
    onSync: (p, datasync) => apply([{ dir: '/conformance', op: 'sync', path: p || '.', datasync }]),
  };
}

const LOCAL_ONLY = new Set(['fifo', 'socket', 'char', 'block']);

/** the tree without local-only nodes and times, for the replica comparison */
async function replicatedTree(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string) => {
    for (const n of (await fsp.readdir(path.join(root, rel))).sort()) {
      const r = rel ? `${rel}/${n}` : n;
      const st = await fsp.lstat(path.join(root, r));
      const type = { 0o100000: 'file', 0o040000: 'dir', 0o120000: 'symlink', 0o010000: 'fifo', 0o140000: 'socket', 0o020000: 'char', 0o060000: 'block' }[st.mode & 0o170000] ?? '?';
      if (LOCAL_ONLY.has(type)) continue;
      let extra = '';
      if (st.isFile()) extra = ` ${(await fsp.readFile(path.join(root, r))).toString('base64').slice(0, 40)}`;
      if (st.isSymbolicLink()) extra = ` → ${(await fsp.readlink(path.join(root, r))).slice(0, 40)}`;
      out.push(`${r.slice(0, 60)} ${type} ${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid} ${st.isFile() ? st.size : ''}${extra}`);
      if (st.isDirectory()) await walk(r);
    }
  };
  await walk('');
  return out;
}

function mountedUnder(base: string): string[] {
  return fs.readFileSync('/proc/mounts', 'utf8').split('\n').filter((l) => l.split(' ')[1]?.startsWith(base));
}

test('the mount behaves like the filesystem under it (differential POSIX suite)', async () => {
  const base = fs.mkdtempSync(PREFIX);
  fs.chmodSync(base, 0o755);
  const [a, b, m, backing, replica] = ['a', 'b', 'm', 'backing', 'replica'].map((d) => path.join(base, d)) as [string, string, string, string, string];
  for (const d of [a, b, m, backing, replica]) {
    fs.mkdirSync(d);
    fs.chmodSync(d, 0o755);
  }
  const logs: string[] = [];
  const replicaFailures: string[] = [];
  let mount: PassthroughMount | null = null;
  const targets: Target[] = [];
  try {
    mount = await mountPassthrough({ backing, mountpoint: m, sink: replicaSink(replica, replicaFailures), log: (l) => logs.push(l) });
    for (const [name, root] of [['a', a], ['b', b], ['m', m]] as const) {
      targets.push({ name, root, runners: { root: new Runner('root', root), u1: new Runner('u1', root), u2: new Runner('u2', root) } });
    }
    let ops = 0;
    const control: string[] = [];
    const onMount = new Map<string, string[]>();
    for (const [i, c] of CASES.entries()) {
      const dir = `c${String(i).padStart(3, '0')}`;
      const outcomes: Outcome[] = [];
      for (const t of targets) {
        const t0 = performance.now();
        outcomes.push(await runCase(t, c, dir));
        if (process.env.CONFORMANCE_TIMES) console.log(`${t.name} ${(performance.now() - t0).toFixed(0)} ms ${c.name}`);
      }
      ops += c.steps.length;
      const ab = differences(outcomes[0]!, outcomes[1]!);
      if (ab.length) control.push(`${c.name}:\n    ${ab.join('\n    ')}`);
      const am = differences(outcomes[0]!, outcomes[2]!);
      if (am.length) onMount.set(c.name, am);
    }
    const unexpected = [...onMount].filter(([n]) => !(n in ALLOWED));
    const stale = Object.keys(ALLOWED).filter((n) => !onMount.has(n));
    const unknown = Object.keys(ALLOWED).filter((n) => !CASES.some((c) => c.name === n));
    await mount.sinkDrained();
    const [backingTree, replicaTree] = await Promise.all([replicatedTree(backing), replicatedTree(replica)]);
    const replicaDiff = backingTree.filter((l) => !replicaTree.includes(l)).concat(replicaTree.filter((l) => !backingTree.includes(l)).map((l) => `replica only: ${l}`));

    console.log(`conformance: ${CASES.length} cases, ${ops} operations per directory, as root and as users ${Object.keys(USERS).join(', ')}; ` +
      `the mount is ${mount.syncfs ? 'fuseblk (syncfs reaches the server)' : 'plain fuse (no loop device: syncfs does not reach the server)'}`);
    console.log(`  plain directory vs plain directory: ${control.length} cases differ`);
    console.log(`  plain directory vs mount: ${onMount.size} cases differ (${onMount.size - unexpected.length} allowed, ${unexpected.length} not)`);
    for (const [n, d] of onMount) console.log(`    ${n in ALLOWED ? 'allowed' : 'DIFFERS'}: ${n}${n in ALLOWED ? ` (${ALLOWED[n]})` : ''}\n      ${d.join('\n      ')}`);
    console.log(`  replica: ${replicaFailures.length} changes the applier refused, ${replicaDiff.length} entries differ from the backing directory`);
    for (const f of replicaFailures) console.log(`    refused: ${f}`);
    for (const d of replicaDiff.slice(0, 40)) console.log(`    ${d}`);

    if (fs.existsSync('/dev/loop-control')) assert.ok(mount.syncfs, 'mounted as fuseblk, as the layout mounts it');
    assert.equal(control, [], 'the plain directories agree (the comparison is deterministic)');
    assert.equal(unexpected.map(([n]) => n), [], 'every difference on the mount is allowed');
    assert.equal(stale, [], 'every allowed difference still occurs');
    assert.equal(unknown, [], 'every allowed difference names a case');
    assert.equal(replicaFailures, [], 'the replica applied every change');
    assert.equal(replicaDiff, [], 'the replica equals the backing directory (local-only nodes aside)');
  } catch (err) {
    if (logs.length) console.error(`server log:\n  ${logs.slice(-30).join('\n  ')}`);
    throw err;
  } finally {
    for (const t of targets) for (const r of Object.values(t.runners)) await r.close();
    await mount?.unmount();
    const left = mountedUnder(base);
    // rm(1), not fsp.rm: a case that failed half-way may leave a tree deeper than PATH_MAX, which rm walks by fd
    if (left.length === 0) await run('rm', ['-rf', '--', base], { reject: false });
    assert.equal(left, [], `nothing left mounted under ${base}`);
  }
});

test.run();
