// LinuxFarmFilter for real (needs root): nftables, conntrack and ARP in network namespaces, no tandem daemon. One lab:
//   node1 198.51.100.1, node2 .2, node3 .3, client .100 (+ 48 source addresses .128-.175), one bridge, eth0 everywhere
// Every node holds the VIP 198.51.100.10 (LinuxVip) behind its farm filter (module "web-1": tcp 8080 on_addr, tcp 8081
// on_port) and runs farm-peer.js, which greets each connection with the node's name. Owners come from bucketOwners,
// a client's bucket from farmBucket: a connection answered by another node than predicted, reset or timed out fails.
import { performance } from 'node:perf_hooks';
import type { ResultPromise } from 'execa';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { bucketOwners, ownedBy, type Member } from '../../src/engine/farm/buckets.js';
import { Lab } from '../../src/lab/lab.js';
import { listNetns } from '../../src/lab/netns.js';
import { farmBucket } from '../../src/platform/farm/jhash.js';
import { LinuxFarmFilter } from '../../src/platform/farm/linux.js';
import { multicastMacOf } from '../../src/platform/farm/ruleset.js';
import type { FarmFilterSpec } from '../../src/platform/farm/types.js';
import { LinuxVip } from '../../src/platform/vip/linux.js';
import { createFarmLab, FarmClient, SOURCES, spawnServer } from './farm-client.js';

const VIP = '198.51.100.10';
const AFFINITY_PORT = 8080;
const SPREAD_PORT = 8081;
const SPEC: FarmFilterSpec = {
  module: 'web-1', // a hyphen: the table name must still be valid nft syntax
  vip: VIP,
  rules: [
    { port: AFFINITY_PORT, proto: 'tcp', filter: 'on_addr' },
    { port: SPREAD_PORT, proto: 'tcp', filter: 'on_port' },
  ],
};
const NODES = ['node1', 'node2', 'node3'] as const;
type Node = (typeof NODES)[number];
const ALL: Member[] = [{ name: 'node1', power: 1 }, { name: 'node2', power: 1 }, { name: 'node3', power: 2 }];
const WITHOUT_NODE3 = ALL.filter((m) => m.name !== 'node3');
const CONNECT_TIMEOUT_MS = 3000;

let lab: Lab | undefined;
let client: FarmClient | undefined;
const servers: ResultPromise[] = [];
const filters = {} as Record<Node, LinuxFarmFilter>;
const vips = {} as Record<Node, LinuxVip>;
const logs: string[] = [];
/** answers of the last round of `askAll` on the affinity port, by source address */
let lastRound = new Map<string, string>();
let nextSport = 41000;

function predict(members: readonly Member[], src: string, filter: 'on_addr' | 'on_port' = 'on_addr', sport?: number): string {
  return bucketOwners(members)[farmBucket(filter, src, sport)]!;
}

/** Connects once from every source address to the affinity port; asserts each answer is the predicted node. */
async function askAll(members: readonly Member[]): Promise<Map<string, string>> {
  const answers = await Promise.all(SOURCES.map((s) => client!.ask(AFFINITY_PORT, s)));
  const got = new Map(SOURCES.map((s, i) => [s, answers[i]!]));
  const wrong = SOURCES.filter((s) => got.get(s) !== predict(members, s)).map((s) => `${s}: got ${got.get(s)}, predicted ${predict(members, s)}`);
  assert.equal(wrong, [], 'every connection answered by its predicted node');
  const counts: Record<string, number> = {};
  for (const n of got.values()) counts[n] = (counts[n] ?? 0) + 1;
  console.log(`    ${SOURCES.length} source addresses → ${JSON.stringify(counts)}`);
  lastRound = got;
  return got;
}

function ownerMap(members: readonly Member[]): Record<string, number[]> {
  return Object.fromEntries(members.map((m) => [m.name, ownedBy(m.name, members)]));
}

/** setOwned on every listed node, printing how long each took. */
async function setOwnedAll(members: readonly Member[], nodes: readonly Node[]): Promise<void> {
  for (const n of nodes) {
    const t0 = performance.now();
    await filters[n].setOwned(SPEC.module, ownedBy(n, members));
    console.log(`    setOwned on ${n} (${ownedBy(n, members).length} buckets): ${(performance.now() - t0).toFixed(1)} ms`);
  }
}

async function conntrackHas(node: Node, src: string, sport: number): Promise<boolean> {
  const r = await lab!.exec(node, ['cat', '/proc/net/nf_conntrack']);
  return r.stdout.split('\n').some((l) => l.includes(`src=${src} dst=${VIP} sport=${sport} dport=${AFFINITY_PORT} `));
}

/** Packets the node's farm filter dropped so far (the counters of its drop rules). */
async function dropped(node: Node): Promise<number> {
  const r = await lab!.exec(node, ['nft', 'list', 'chain', 'ip', `tandem_farm_${SPEC.module}`, 'vip']);
  return [...r.stdout.matchAll(/counter packets (\d+) bytes \d+ drop/g)].reduce((n, m) => n + Number(m[1]), 0);
}

async function neighOfVip(): Promise<string | undefined> {
  const r = await lab!.exec('client', ['ip', '-j', 'neigh', 'show', VIP]);
  return (JSON.parse(r.stdout || '[]') as { lladdr?: string }[])[0]?.lladdr;
}

async function farmTables(node: Node): Promise<string[]> {
  return (await lab!.exec(node, ['nft', 'list', 'tables'])).stdout.split('\n').filter((l) => l.includes('tandem_farm_'));
}

test.before(async () => {
  lab = await createFarmLab(SOURCES);
  for (const n of NODES) {
    const prefix = lab.hostArgv(n, []);
    filters[n] = new LinuxFarmFilter({ cmdPrefix: prefix });
    vips[n] = new LinuxVip({ cmdPrefix: prefix, announceCount: 1, log: (m) => logs.push(`${n}: ${m}`) });
    const server = spawnServer(lab, n, n, [AFFINITY_PORT, SPREAD_PORT]);
    servers.push(server.child);
    await server.ready;
  }
  client = FarmClient.spawn(lab, 'client', VIP, CONNECT_TIMEOUT_MS);
});

test.after(async () => {
  for (const c of [...servers, ...(client ? [client.child] : [])]) if (c.pid !== undefined) c.kill('SIGKILL');
  await lab?.down();
});

test('install + VIP on all three, powers 1/1/2: every source address is answered by its predicted node', async () => {
  const shares = ownerMap(ALL);
  console.log(`    buckets: ${Object.entries(shares).map(([n, b]) => `${n} ${b.length}`).join(', ')}`);
  for (const n of NODES) {
    const t0 = performance.now();
    await filters[n].install(SPEC, shares[n]!); // filter first, then the VIP (FarmFilter contract)
    console.log(`    install on ${n}: ${(performance.now() - t0).toFixed(1)} ms`);
    await vips[n].acquire(VIP);
  }
  for (const n of NODES) assert.equal(await filters[n].list(), ['web-1']);
  const got = await askAll(ALL);
  assert.ok(new Set(got.values()).size === 3, 'every node serves someone');
  assert.is(await neighOfVip(), multicastMacOf(VIP), "the client's neighbour entry is the shared MAC");
  console.log(`    vectors (on_addr, seed ${'0x74616e64'}): ${SOURCES.slice(0, 4).map((s) => `${s}→${farmBucket('on_addr', s)}`).join(' ')}`);
});

test('on_port: one address, many source ports spread over the nodes, each to its predicted node', async () => {
  const src = SOURCES[0]!;
  const ports = Array.from({ length: 24 }, () => nextSport++);
  const answers = await Promise.all(ports.map((p) => client!.ask(SPREAD_PORT, src, p)));
  const wrong = ports.flatMap((p, i) => {
    const want = predict(ALL, src, 'on_port', p);
    return answers[i] === want ? [] : [`${src}:${p}: got ${answers[i]}, predicted ${want}`];
  });
  assert.equal(wrong, []);
  const nodes = new Set(answers);
  console.log(`    ${ports.length} source ports of ${src} → ${[...nodes].sort().join(', ')}; vectors (on_port): ${ports
    .slice(0, 3).map((p) => `${src}:${p}→${farmBucket('on_port', src, p)}`).join(' ')}`);
  assert.ok(nodes.size > 1, 'more than one node');
});

test('setOwned swaps the set in one step: connections during 20 swaps all reach node1, which drops none', async () => {
  const src = SOURCES.find((s) => lastRound.get(s) === 'node1')!;
  const full = ownedBy('node1', ALL);
  const other = full.find((b) => b !== farmBucket('on_addr', src))!;
  const smaller = full.filter((b) => b !== other); // still holds src's bucket: a gap would show as a drop
  const dropsBefore = await dropped('node1');
  let swapping = true;
  const answers: string[] = [];
  const connecting = (async () => {
    while (swapping) answers.push(await client!.ask(AFFINITY_PORT, src));
  })();
  const t0 = performance.now();
  for (let i = 0; i < 20; i++) await filters.node1.setOwned(SPEC.module, i % 2 === 0 ? smaller : full);
  const swapMs = (performance.now() - t0) / 20;
  swapping = false;
  await connecting;
  console.log(`    ${answers.length} connections during 20 swaps (${swapMs.toFixed(1)} ms per setOwned of ~${full.length} buckets)`);
  assert.equal(answers.filter((a) => a !== 'node1'), []);
  assert.is(await dropped('node1'), dropsBefore, 'node1 dropped nothing meanwhile');
});

test('node3 leaves: only its clients move; a long-lived connection to node1 keeps working', async () => {
  const before = lastRound;
  const src = SOURCES.find((s) => before.get(s) === 'node1')!;
  const held = await client!.request({ op: 'open', key: 'to-node1', host: VIP, port: AFFINITY_PORT, src, timeoutMs: CONNECT_TIMEOUT_MS });
  assert.equal(held.ok && held.name, 'node1');

  await vips.node3.release(VIP); // stop order: the VIP first, then the filter
  await filters.node3.remove(SPEC.module);
  await setOwnedAll(WITHOUT_NODE3, ['node1', 'node2']);

  const after = await askAll(WITHOUT_NODE3);
  const moved = SOURCES.filter((s) => after.get(s) !== before.get(s));
  assert.ok(moved.length > 0);
  assert.equal(moved.filter((s) => before.get(s) !== 'node3'), [], 'only node3\'s clients moved');
  console.log(`    moved: ${moved.length} (all of node3's)`);
  const ping = await client!.request({ op: 'ping', key: 'to-node1', timeoutMs: CONNECT_TIMEOUT_MS });
  assert.equal(ping.ok && ping.name, 'node1', 'the held connection still answers');
});

test('node3 joins back: a connection made to the old owner of a moved bucket stays there; new ones go to node3', async () => {
  // a source node3 wins back, connected now (to node1 or node2) while node3 is away
  const src = SOURCES.find((s) => predict(ALL, s) === 'node3')!;
  const oldOwner = predict(WITHOUT_NODE3, src);
  const held = await client!.request({ op: 'open', key: 'moving', host: VIP, port: AFFINITY_PORT, src, timeoutMs: CONNECT_TIMEOUT_MS });
  assert.ok(held.ok, JSON.stringify(held));
  assert.is(held.ok && held.name, oldOwner);
  const sport = held.ok ? held.localPort : 0;

  // the nodes that lose buckets first, then the one that gains them (a gap delays a SYN, an overlap breaks it)
  await setOwnedAll(ALL, ['node1', 'node2']);
  await filters.node3.install(SPEC, ownedBy('node3', ALL));
  await vips.node3.acquire(VIP);

  for (let i = 0; i < 3; i++) {
    const ping = await client!.request({ op: 'ping', key: 'moving', timeoutMs: CONNECT_TIMEOUT_MS });
    assert.equal(ping.ok ? ping.name : ping.error, oldOwner, `the established connection stays on ${oldOwner} (ping ${i + 1})`);
  }
  assert.is(await client!.ask(AFFINITY_PORT, src), 'node3', 'a new connection from the same address goes to node3');
  assert.is(await conntrackHas(oldOwner as Node, src, sport), true, `${oldOwner} tracks the held connection`);
  assert.is(await conntrackHas('node3', src, sport), false, 'node3 dropped its packets without adopting the flow');
  await askAll(ALL);
  const ping = await client!.request({ op: 'ping', key: 'to-node1', timeoutMs: CONNECT_TIMEOUT_MS });
  assert.equal(ping.ok && ping.name, 'node1', 'the first held connection too');
});

test('remove leaves no table; teardown leaves no namespace', async () => {
  for (const c of ['to-node1', 'moving']) await client!.request({ op: 'close', key: c });
  for (const n of NODES) {
    await vips[n].release(VIP);
    await filters[n].remove(SPEC.module);
    await filters[n].remove(SPEC.module); // idempotent
    assert.equal(await farmTables(n), [], `${n}: nft list tables`);
    assert.equal(await filters[n].list(), []);
    const maddr = (await lab!.exec(n, ['ip', 'maddr', 'show', 'dev', 'eth0'])).stdout;
    assert.not.ok(maddr.includes(multicastMacOf(VIP)), `${n}: the shared MAC is unsubscribed`);
  }
  assert.is(await neighOfVip(), multicastMacOf(VIP), 'the gratuitous ARPs announced the shared MAC too');
  assert.equal(logs, []);
  for (const c of [...servers, client!.child]) c.kill('SIGKILL');
  const prefix = lab!.prefix;
  const report = await lab!.down();
  lab = undefined;
  assert.equal(report.problems, []);
  assert.equal(listNetns().filter((n) => n.startsWith(`${prefix}-`)), []);
});

test.run();
