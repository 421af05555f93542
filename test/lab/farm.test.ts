/**
 * A farm module on real daemons (issue 10, tests 1 to 4 and 8), one lab for the file:
 *   node1 198.51.100.1, node2 .2, node3 .3 (powers 1 / 1 / 2), client .100 with 48 more source addresses .128-.175
 * Module `web` (written here, installed with `tandem install` on every node): its start_both runs farm-peer.js, which
 * greets every connection on 8080 (on_addr) and 8081 (on_port) with the node's name and answers each line it receives
 * again with it, so a held connection shows which node keeps serving it. A tcp checker (`when="pre"`, action wait) on
 * 127.0.0.1:9100 watches a dependency the test runs on each node itself, so a test can fail one node's checker.
 * Every answer is compared with the prediction of bucketOwners (the daemon's bucket function) and farmBucket (the
 * kernel's hash): a connection answered by another node than predicted, reset or timed out fails the test.
 * Sequence: bad input refused → all three UP → node3 power-off → node3 back → node2's checker down and up again.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { ResultPromise } from 'execa';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { controlRequest } from '../../src/daemon/control.js';
import type { FarmView } from '../../src/daemon/farm-view.js';
import type { StatusView } from '../../src/daemon/views.js';
import { bucketOwners, type Member } from '../../src/engine/farm/buckets.js';
import { generateKey, writeKeyFile } from '../../src/daemon/key.js';
import { homePaths } from '../../src/home.js';
import { Lab } from '../../src/lab/lab.js';
import { clusterXml, controlSocketOf, waitForDaemon } from '../../src/lab/mirror-lab.js';
import { repoRoot } from '../../src/lab/spec.js';
import { farmBucket } from '../../src/platform/farm/jhash.js';
import { createFarmLab, FarmClient, SOURCES, PEER, spawnServer } from './farm-client.js';

const NODES = ['node1', 'node2', 'node3'];
const ALL: Member[] = [{ name: 'node1', power: 1 }, { name: 'node2', power: 1 }, { name: 'node3', power: 2 }];
const VIP = '198.51.100.20';
const AFFINITY_PORT = 8080;
const SPREAD_PORT = 8081;
const DEP_PORT = 9100;
const TIMEOUT_MS = 1500;
/** a connect that takes longer than this counts as a timeout (the lab answers in milliseconds) */
const CONNECT_TIMEOUT_MS = 2000;
const MODULE = 'web';

const userconfig = (hosts: string, rules: string, vip = VIP) => `<safe>
  <service mode="farm">
    <farm pulse="200ms" timeout="${TIMEOUT_MS}ms"><lan name="default"/></farm>
    <vip>
      <interface_list><interface><virtual_interface type="vmac_directed"><virtual_addr addr="${vip}" where="alias"/></virtual_interface></interface></interface_list>
      <loadbalancing_list><group name="web"><cluster>${hosts}</cluster>${rules}</group></loadbalancing_list>
    </vip>
    <user nicestoptimeout="5s" forcestoptimeout="5s"/>
    <check><tcp ident="dep" when="pre" action="wait"><to addr="127.0.0.1" port="${DEP_PORT}" interval="300ms" timeout="200ms"/></tcp></check>
  </service>
</safe>
`;
const mirrorXml = (vip: string) => `<safe>
  <service mode="mirror">
    <heart pulse="200ms" timeout="${TIMEOUT_MS}ms"><heartbeat name="default"/></heart>
    <vip><interface_list><interface><real_interface><virtual_addr addr="${vip}" where="one_side_alias"/></real_interface></interface></interface_list></vip>
  </service>
</safe>
`;
const HOSTS = ALL.map((m) => `<host name="${m.name}" power="${m.power}"/>`).join('');
const RULES = `<rule port="${AFFINITY_PORT}" proto="tcp" filter="on_addr"/><rule port="${SPREAD_PORT}" proto="tcp" filter="on_port"/>`;

/** start_both: farm-peer.js in the background, ready once it says so; stop_both ends it by its PID. */
const START_BOTH = `#!/bin/sh
set -eu
run=\${TANDEM_RUN_DIR:-/run/tandem}
mkdir -p "$run"
out="$run/web-peer.out"
: > "$out"
cd /
nohup '${process.execPath}' '${PEER}' server "$TANDEM_NODE" ${AFFINITY_PORT} ${SPREAD_PORT} > "$out" 2>&1 &
pid=$!
echo $pid > "$run/web-peer.pid"
i=0
while [ $i -lt 250 ]; do
  if grep -q '^ready$' "$out"; then echo "web started (pid $pid)"; exit 0; fi
  if ! kill -0 $pid 2>/dev/null; then echo "web exited at start:" >&2; cat "$out" >&2; exit 1; fi
  i=$((i+1)); sleep 0.02
done
echo "web did not listen within 5 s" >&2
exit 1
`;
const STOP_BOTH = `#!/bin/sh
run=\${TANDEM_RUN_DIR:-/run/tandem}
pidfile="$run/web-peer.pid"
[ -f "$pidfile" ] || exit 0
pid=$(cat "$pidfile")
if grep -q "farm-peer.js" "/proc/$pid/cmdline" 2>/dev/null; then
  kill "$pid"
  i=0
  while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do i=$((i+1)); sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
fi
rm -f "$pidfile"
echo "web stopped"
`;

let lab: Lab;
let client: FarmClient;
/** the dependency the tcp checker watches, per node (dies with its node's power-off) */
const deps = new Map<string, ResultPromise>();

/** Writes a module directory (userconfig.xml + the scripts) under the lab's directory; returns its path. */
async function moduleSource(name: string, xml: string): Promise<string> {
  const dir = path.join(lab.dir, 'sources', name);
  await fs.mkdir(path.join(dir, 'bin'), { recursive: true });
  await fs.writeFile(path.join(dir, 'userconfig.xml'), xml);
  await fs.writeFile(path.join(dir, 'bin', 'start_both'), START_BOTH, { mode: 0o755 });
  await fs.writeFile(path.join(dir, 'bin', 'stop_both'), STOP_BOTH, { mode: 0o755 });
  return dir;
}

async function status(node: string): Promise<StatusView | null> {
  try {
    return (await controlRequest(controlSocketOf(lab, node), 'status', undefined, undefined, { timeoutMs: 2000 })) as StatusView;
  } catch {
    return null;
  }
}

async function farm(node: string): Promise<FarmView | undefined> {
  return (await status(node))?.farms.find((f) => f.module === MODULE);
}

async function until(what: string, fn: () => Promise<boolean>, ms = 30_000) {
  await lab.waitFor(what, async () => (await fn()) || undefined, ms, 100);
}

/** Every node of `members` is UP, ready, accepts its buckets and counts exactly `members`. */
async function settled(members: readonly Member[]) {
  const names = members.map((m) => m.name);
  await until(`${MODULE} balanced over ${names.join(', ')}`, async () => {
    for (const n of names) {
      const f = await farm(n);
      if (!f || f.state !== 'UP' || !f.ready || f.holdBack !== null || f.members.join() !== names.join()) return false;
    }
    return true;
  });
}

function predict(members: readonly Member[], src: string, filter: 'on_addr' | 'on_port' = 'on_addr', sport?: number): string {
  return bucketOwners(members)[farmBucket(filter, src, sport)]!;
}

/** One connection from every source address to the affinity port: every answer from its predicted node. */
async function askAll(members: readonly Member[]): Promise<Map<string, string>> {
  const answers = await Promise.all(SOURCES.map((s) => client.ask(AFFINITY_PORT, s)));
  const got = new Map(SOURCES.map((s, i) => [s, answers[i]!]));
  const wrong = SOURCES.filter((s) => got.get(s) !== predict(members, s)).map((s) => `${s}: got ${got.get(s)}, predicted ${predict(members, s)}`);
  assert.equal(wrong, [], 'every connection answered by its predicted node, none reset or timed out');
  return got;
}

function counts(answers: Iterable<string>): Record<string, number> {
  const c: Record<string, number> = {};
  for (const n of answers) c[n] = (c[n] ?? 0) + 1;
  return c;
}

/** Sources whose predicted owner is `node` among `members`. */
const clientsOf = (node: string, members: readonly Member[]) => SOURCES.filter((s) => predict(members, s) === node);

/** Waits until every source in `sources` is answered by its owner among `members`; returns how long it took. */
async function servedAgain(sources: string[], members: readonly Member[], since: number): Promise<number> {
  await until(`${sources.length} moved clients served by their new owners`, async () => {
    const answers = await Promise.all(sources.map((s) => client.ask(AFFINITY_PORT, s)));
    return answers.every((a, i) => a === predict(members, sources[i]!));
  });
  return performance.now() - since;
}

async function startDep(node: string): Promise<void> {
  const dep = spawnServer(lab, node, 'dep', [DEP_PORT]);
  deps.set(node, dep.child);
  await dep.ready;
}

function stopDep(node: string): void {
  deps.get(node)?.kill('SIGKILL');
  deps.delete(node);
}

test.before(async () => {
  lab = await createFarmLab(SOURCES);
  const key = generateKey();
  for (const n of NODES) {
    const home = { root: lab.paths(n).home, runDir: lab.paths(n).run };
    await fs.mkdir(home.root, { recursive: true });
    await fs.writeFile(homePaths.clusterXml(home), clusterXml(lab, NODES));
    await writeKeyFile(homePaths.clusterKey(home), key, { force: true });
  }
  for (const n of NODES) lab.spawnDaemon(n);
  for (const n of NODES) await waitForDaemon(lab, n);
  for (const n of NODES) await startDep(n);
  client = FarmClient.spawn(lab, 'client', VIP, CONNECT_TIMEOUT_MS);
});

test.after(async () => {
  for (const c of [...deps.values(), ...(client ? [client.child] : [])]) if (c.pid !== undefined) c.kill('SIGKILL');
  await lab?.down();
});

test('bad input: tandem install refuses it with a clear error and installs nothing', async () => {
  const refused = async (name: string, xml: string, want: RegExp) => {
    const r = await lab.cli('node1', ['install', '-m', name, await moduleSource(name, xml)], { reject: false });
    assert.is.not(r.code, 0, `${name}: refused`);
    assert.match(r.stderr, want);
    assert.is(await fs.stat(homePaths.moduleDir({ root: lab.paths('node1').home, runDir: lab.paths('node1').run }, name)).then(() => true, () => false), false, `${name}: nothing installed`);
  };
  await refused('zero', userconfig(HOSTS.replace('power="2"', 'power="0"'), RULES), /power="0".*(positive|> ?0|at least 1)/i);
  await refused('noport', userconfig(HOSTS, '<rule proto="tcp" filter="on_addr"/>'), /rule.*port/i);
  // the farm's VIP taken by a mirror module: refused against the module installed first
  const web = await moduleSource(MODULE, userconfig(HOSTS, RULES));
  for (const n of NODES) await lab.cli(n, ['install', '-m', MODULE, web]);
  const demo = path.join(repoRoot(), 'examples', 'demo');
  const mirrorSource = async (name: string, vip: string) => {
    const dir = path.join(lab.dir, 'sources', name);
    await fs.cp(demo, dir, { recursive: true });
    await fs.writeFile(path.join(dir, 'userconfig.xml'), mirrorXml(vip));
    return dir;
  };
  const clash = await mirrorSource('clash', VIP);
  const installed = (node: string, name: string) => fs.stat(homePaths.moduleDir({ root: lab.paths(node).home, runDir: lab.paths(node).run }, name)).then(() => true, () => false);
  const r = await lab.cli('node1', ['install', '-m', 'clash', clash], { reject: false });
  assert.is.not(r.code, 0);
  assert.match(r.stderr, new RegExp(`virtual IP ${VIP.replace(/\./g, '\\.')} is also module ${MODULE}'s`));
  assert.is(await installed('node1', 'clash'), false, 'clash: nothing installed');
  // a mirror module on a third node: node1 and node2 run it as a pair, node3's install is refused
  const trio = await mirrorSource('trio', '198.51.100.30');
  for (const n of ['node1', 'node2']) await lab.cli(n, ['install', '-m', 'trio', trio]);
  for (const [self, peer] of [['node1', 'node2'], ['node2', 'node1']] as const) {
    await until(`${self} runs trio with ${peer}`, async () => (await status(self))?.modules.find((m) => m.module === 'trio')?.peer.node === peer);
  }
  await until('node3 hears that node1 and node2 hold trio', async () => {
    const third = await lab.cli('node3', ['install', '-m', 'trio', trio], { reject: false });
    if (third.code === 0) throw new Error(`node3 installed trio: ${third.stdout}`);
    return /mirror module trio is already installed on node1 and node2: a mirror module runs on exactly two nodes/.test(third.stderr);
  });
  assert.is(await installed('node3', 'trio'), false, 'trio: nothing installed on node3');
  const start = await lab.cli('node3', ['start', '-m', 'trio'], { reject: false });
  assert.is.not(start.code, 0);
  assert.match(start.stderr, /trio/);
  for (const n of ['node1', 'node2']) await lab.cli(n, ['uninstall', '-m', 'trio']);
});

test('three nodes UP, powers 1/1/2: every source answered by its predicted node, shares as the powers say', async () => {
  for (const n of NODES) await lab.cli(n, ['start', '-m', MODULE]);
  await settled(ALL);
  const got = await askAll(ALL);
  const c = counts(got.values());
  // shares of the 256 buckets, each node's view
  const shares = (await farm('node1'))!.groups[0]!.shares;
  console.log(`    buckets ${JSON.stringify(shares)}; ${SOURCES.length} source addresses → ${JSON.stringify(c)}`);
  // power 2 of 4: half the buckets; the rendezvous hash keeps each share within ±8 of 256 × power / total here
  // (weighted rendezvous over 256 buckets; bucketOwners' own unit test bounds it)
  assert.ok(Math.abs(shares.node3! - 128) <= 16 && Math.abs(shares.node1! - 64) <= 16 && Math.abs(shares.node2! - 64) <= 16, JSON.stringify(shares));
  // 48 addresses hashed into those buckets: binomial, p = share / 256; ±3 standard deviations (3 × √(48 × ½ × ½) ≈ 10
  // for node3, 3 × √(48 × ¼ × ¾) ≈ 9 for the others) fails by chance once in ~370 draws, and the draw is fixed anyway
  for (const m of ALL) {
    const p = shares[m.name]! / 256;
    const expected = SOURCES.length * p;
    const tolerance = 3 * Math.sqrt(SOURCES.length * p * (1 - p));
    assert.ok(Math.abs((c[m.name] ?? 0) - expected) <= tolerance, `${m.name}: ${c[m.name] ?? 0} of ${SOURCES.length}, expected ${expected.toFixed(1)} ± ${tolerance.toFixed(1)}`);
  }
});

test('on_port: the connections of one source address spread over the nodes, each to its predicted node', async () => {
  const src = SOURCES[0]!;
  const ports = Array.from({ length: 24 }, (_, i) => 42000 + i);
  const answers = await Promise.all(ports.map((p) => client.ask(SPREAD_PORT, src, p)));
  const wrong = ports.flatMap((p, i) => (answers[i] === predict(ALL, src, 'on_port', p) ? [] : [`${src}:${p}: got ${answers[i]}, predicted ${predict(ALL, src, 'on_port', p)}`]));
  assert.equal(wrong, []);
  console.log(`    ${ports.length} source ports of ${src} → ${JSON.stringify(counts(answers))}`);
  assert.ok(new Set(answers).size > 1, 'more than one node');
});

const WITHOUT_NODE3 = ALL.filter((m) => m.name !== 'node3');
/** a source of node1's and one of node3's, held open across the power-off and the return */
let keptSrc = '';
let movedSrc = '';

test('node3 power-off: only its clients move, served again by node1/node2; a connection held to node1 keeps working', async () => {
  keptSrc = clientsOf('node1', ALL).find((s) => predict(WITHOUT_NODE3, s) === 'node1')!;
  assert.is(await client.open('kept', AFFINITY_PORT, keptSrc), 'node1');
  const before = await askAll(ALL);
  const moved = clientsOf('node3', ALL);
  const t0 = performance.now();
  await lab.poweroff('node3');
  deps.delete('node3'); // died with its node
  const ms = await servedAgain(moved, WITHOUT_NODE3, t0);
  console.log(`    ${moved.length} clients of node3 served again ${ms.toFixed(0)} ms after its power-off (timeout ${TIMEOUT_MS} ms; the issue asks ≤ timeout + 1 s)`);
  await settled(WITHOUT_NODE3);
  const after = await askAll(WITHOUT_NODE3);
  const stayed = SOURCES.filter((s) => before.get(s) !== 'node3');
  assert.equal(stayed.filter((s) => after.get(s) !== before.get(s)), [], 'the clients of node1 and node2 stay where they were');
  assert.is(await client.ping('kept'), 'node1', 'the held connection to node1 still answers');
});

test('node3 back: it takes its buckets back; a connection opened while it was away keeps working where it was accepted', async () => {
  movedSrc = clientsOf('node3', ALL)[0]!;
  const during = predict(WITHOUT_NODE3, movedSrc);
  assert.is(await client.open('during', AFFINITY_PORT, movedSrc), during);
  await lab.boot('node3');
  await waitForDaemon(lab, 'node3');
  await startDep('node3');
  // started before the power-off: the module starts again by itself
  await settled(ALL);
  await askAll(ALL);
  assert.is(await client.ask(AFFINITY_PORT, movedSrc), 'node3', 'a new connection from that address goes to node3 again');
  assert.is(await client.ping('during'), during, `the connection opened during the absence still answers from ${during}`);
  assert.is(await client.ping('kept'), 'node1', 'the connection held since before the power-off still answers');
  for (const k of ['kept', 'during']) await client.close(k);
});

test("node2's checker fails: it gives up its buckets (WAIT), and takes them back once the checker is up", async () => {
  const WITHOUT_NODE2 = ALL.filter((m) => m.name !== 'node2');
  const t0 = performance.now();
  stopDep('node2');
  await until('node2 WAIT on its checker', async () => (await farm('node2'))?.state === 'WAIT');
  const ms = await servedAgain(clientsOf('node2', ALL), WITHOUT_NODE2, t0);
  console.log(`    node2's clients served by node1/node3 ${ms.toFixed(0)} ms after its dependency stopped (checker every 300 ms, then the failover rule's handle_time, 5 s by default)`);
  await settled(WITHOUT_NODE2);
  await askAll(WITHOUT_NODE2);
  const f = (await farm('node2'))!;
  assert.match(f.waitReason ?? '', /tcp\.dep/);
  assert.is(f.groups[0]!.owned, 0, 'node2 accepts no bucket while it waits');
  await startDep('node2');
  await settled(ALL);
  await askAll(ALL);
});

test.run();
