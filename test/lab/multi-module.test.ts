/**
 * Several modules on one cluster of four nodes, real daemons (issue 10, tests 5, 6 and 7), one lab for the file:
 *   alpha, beta  mirror modules on node1 + node2, primary on different nodes (defaultprim node1 / node2): active/active
 *   farm-web     a farm module on node1, node2 and node3 (examples/farm-web)
 *   n1, n2, n3   mirror modules on node1 + node4, node2 + node4, node3 + node4: N-1, node4 the shared backup
 * The mirror modules are the demo application (examples/demo), each on its own port behind its own VIP; no module
 * replicates files here (the replication has its own lab tests). Every node's cluster.xml lists all four nodes: each
 * mirror module learns its peer from where it is installed.
 * Sequence: all up → node1 power-off (alpha and beta both on node2, web rebalanced at once, n1 on node4) → node1
 * back (alpha back to node1: defaultprim; web takes node1 back) → node2 and node3 power-off (n2 and n3 on node4).
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { controlRequest } from '../../src/daemon/control.js';
import { generateKey, writeKeyFile } from '../../src/daemon/key.js';
import type { StatusView } from '../../src/daemon/views.js';
import { homePaths } from '../../src/home.js';
import { Lab } from '../../src/lab/lab.js';
import { clusterXml, controlSocketOf, waitForDaemon } from '../../src/lab/mirror-lab.js';
import { repoRoot } from '../../src/lab/spec.js';

const NODES = ['node1', 'node2', 'node3', 'node4'];
const WEB_VIP = '198.51.100.20';
const WEB_PORT = 8090;

interface MirrorSpec { name: string; nodes: [string, string]; vip: string; port: number; defaultprim: string }
const MIRRORS: MirrorSpec[] = [
  { name: 'alpha', nodes: ['node1', 'node2'], vip: '198.51.100.31', port: 8081, defaultprim: 'node1' },
  { name: 'beta', nodes: ['node2', 'node1'], vip: '198.51.100.32', port: 8082, defaultprim: 'node2' },
  { name: 'n1', nodes: ['node1', 'node4'], vip: '198.51.100.41', port: 8091, defaultprim: 'alone' },
  { name: 'n2', nodes: ['node2', 'node4'], vip: '198.51.100.42', port: 8092, defaultprim: 'alone' },
  { name: 'n3', nodes: ['node3', 'node4'], vip: '198.51.100.43', port: 8093, defaultprim: 'alone' },
];
const FARM_NODES = ['node1', 'node2', 'node3'];
/** the example's name: its process check (errd argregex) looks for farm-web/app.mjs */
const FARM = 'farm-web';

const mirrorXml = (m: MirrorSpec) => `<safe>
  <service mode="mirror" defaultprim="${m.defaultprim}">
    <heart pulse="200ms" timeout="1500ms"><heartbeat name="default"/></heart>
    <vip><interface_list><interface><real_interface><virtual_addr addr="${m.vip}" where="one_side_alias"/></real_interface></interface></interface_list></vip>
    <user nicestoptimeout="10s" forcestoptimeout="5s"><var name="DEMO_PORT" value="${m.port}"/></user>
  </service>
</safe>
`;

let lab: Lab;

type View = StatusView;
async function status(node: string): Promise<View | null> {
  try {
    return (await controlRequest(controlSocketOf(lab, node), 'status', undefined, undefined, { timeoutMs: 2000 })) as View;
  } catch {
    return null;
  }
}

async function mirrorState(node: string, module: string): Promise<string> {
  const m = (await status(node))?.modules.find((x) => x.module === module);
  return m ? `${m.state}${m.ready ? '' : '?'}` : 'OFF';
}

/** The node that answers the client on the module's VIP (the demo app and farm-web both say `"node":"…"`). */
async function servedBy(vip: string, port: number): Promise<string | null> {
  const r = await lab.httpGet('client', `http://${vip}:${port}/`, 800);
  if (!r.ok) return null;
  return /"node":"([^"]+)"/.exec(r.body ?? '')?.[1] ?? (r.body?.trim() || null);
}

async function until(what: string, fn: () => Promise<boolean>, ms = 60_000) {
  await lab.waitFor(what, async () => (await fn()) || undefined, ms, 100);
}

/**
 * Waits for the pair. A return to the defaultprim runs a reintegration and then a swap, on four busy nodes: up to
 * 120 s on a loaded 2-vCPU CI machine. On a timeout the error says what was seen last.
 */
async function pair(m: MirrorSpec, prim: string, second: string) {
  let seen = 'nothing yet';
  try {
    await until(`${m.name}: ${prim} PRIM, ${second} SECOND, client served by ${prim}`, async () => {
      const [p, s, by] = [await mirrorState(prim, m.name), await mirrorState(second, m.name), await servedBy(m.vip, m.port)];
      seen = `${prim} ${p}, ${second} ${s}, client served by ${by ?? 'nobody'}`;
      return p === 'PRIM' && s === 'SECOND' && by === prim;
    }, 120_000);
  } catch (e) {
    throw new Error(`${(e as Error).message}; last seen: ${seen}`);
  }
}

async function alone(m: MirrorSpec, node: string) {
  await until(`${m.name} ALONE on ${node} and served by it`, async () =>
    (await mirrorState(node, m.name)) === 'ALONE' && (await servedBy(m.vip, m.port)) === node);
}

async function farmMembers(node: string): Promise<string[] | null> {
  const f = (await status(node))?.farms.find((x) => x.module === FARM);
  return f && f.state === 'UP' && f.ready && f.holdBack === null ? f.members : null;
}

/** Every up farm node counts exactly `members`, and the client is served on the farm VIP by one of them. */
async function farmIs(members: string[]) {
  await until(`${FARM} served by ${members.join(', ')}`, async () => {
    for (const n of members) if ((await farmMembers(n))?.join() !== members.join()) return false;
    const by = await servedBy(WEB_VIP, WEB_PORT);
    return by !== null && members.includes(by);
  });
}

test.before(async () => {
  lab = await Lab.create({
    hosts: [...NODES.map((name) => ({ name, role: 'node' as const })), { name: 'client', role: 'client' }],
    lans: [{
      name: 'default', cidr: '198.51.100.0/24', ifname: 'eth0',
      addrs: { node1: '198.51.100.1', node2: '198.51.100.2', node3: '198.51.100.3', node4: '198.51.100.4', client: '198.51.100.100' },
    }],
    privateDirs: [],
  });
  const key = generateKey();
  const demo = path.join(repoRoot(), 'examples', 'demo');
  const farm = path.join(repoRoot(), 'examples', 'farm-web');
  const farmXml = (await fs.readFile(path.join(farm, 'userconfig.xml'), 'utf8'));
  for (const n of NODES) {
    const home = { root: lab.paths(n).home, runDir: lab.paths(n).run };
    await fs.mkdir(home.root, { recursive: true });
    await fs.writeFile(homePaths.clusterXml(home), clusterXml(lab, NODES));
    await writeKeyFile(homePaths.clusterKey(home), key, { force: true });
    for (const m of MIRRORS.filter((x) => x.nodes.includes(n))) {
      await fs.cp(demo, homePaths.moduleDir(home, m.name), { recursive: true });
      await fs.writeFile(homePaths.userconfig(home, m.name), mirrorXml(m));
    }
    if (FARM_NODES.includes(n)) {
      await fs.cp(farm, homePaths.moduleDir(home, FARM), { recursive: true });
      await fs.writeFile(homePaths.userconfig(home, FARM), farmUserconfig(farmXml));
    }
  }
  for (const n of NODES) lab.spawnDaemon(n);
  for (const n of NODES) await waitForDaemon(lab, n);
});

/** examples/farm-web's userconfig.xml with this lab's nodes, VIP, port and a short heartbeat timeout. */
function farmUserconfig(xml: string): string {
  return xml
    .replace(/<farm[^>]*>/, '<farm pulse="200ms" timeout="1500ms">')
    .replace(/addr="[0-9.]+"( where="alias")/, `addr="${WEB_VIP}"$1`)
    .replace(/<cluster>[\s\S]*?<\/cluster>/, `<cluster>${FARM_NODES.map((n) => `<host name="${n}" power="1"/>`).join('')}</cluster>`)
    .replace(/port="\d+"/, `port="${WEB_PORT}"`)
    .replace(/(<var name="FARM_WEB_PORT" value=")\d+/, `$1${WEB_PORT}`);
}

test.after(async () => {
  await lab?.down();
});

test('all modules up: two mirrors primary on different nodes, a farm on three nodes, three N-1 mirrors', async () => {
  // each mirror module learnt its peer from where it is installed
  for (const m of MIRRORS) {
    for (const [self, peer] of [m.nodes, [m.nodes[1], m.nodes[0]]] as const) {
      await until(`${self} runs ${m.name} with ${peer}`, async () => (await status(self))?.modules.find((x) => x.module === m.name)?.peer.node === peer, 30_000);
    }
  }
  for (const m of MIRRORS) {
    for (const n of m.nodes) await lab.cli(n, ['start', '-m', m.name]);
    await until(`${m.name} WAIT on both`, async () => (await mirrorState(m.nodes[0], m.name)) === 'WAIT' && (await mirrorState(m.nodes[1], m.name)) === 'WAIT', 30_000);
    await lab.cli(m.nodes[0], ['prim', '-m', m.name]);
    await until(`${m.name} ALONE on ${m.nodes[0]}`, async () => (await mirrorState(m.nodes[0], m.name)) === 'ALONE', 30_000);
    await lab.cli(m.nodes[1], ['second', '-m', m.name]);
  }
  for (const n of FARM_NODES) await lab.cli(n, ['start', '-m', FARM]);
  for (const m of MIRRORS) await pair(m, m.nodes[0], m.nodes[1]);
  await farmIs(FARM_NODES);
  const text = (await lab.cli('node2', ['status'])).stdout;
  console.log(`  tandem status on node2:\n${text.replace(/\x1b\[[0-9;]*m/g, '').split('\n').map((l) => `    ${l}`).join('\n')}`);
  assert.match(text, /alpha/);
  assert.match(text, /farm-web/);
});

test('node1 power-off: alpha and beta both run on node2, the farm rebalances at once, n1 runs on the backup', async () => {
  const [alpha, beta, n1] = [MIRRORS[0]!, MIRRORS[1]!, MIRRORS[2]!];
  await lab.poweroff('node1');
  await alone(alpha, 'node2');
  await alone(beta, 'node2');
  await farmIs(['node2', 'node3']);
  await alone(n1, 'node4');
});

test('node1 back: alpha returns to node1 (its defaultprim), beta stays on node2, the farm takes node1 back', async () => {
  const [alpha, beta, n1] = [MIRRORS[0]!, MIRRORS[1]!, MIRRORS[2]!];
  await lab.boot('node1');
  await waitForDaemon(lab, 'node1');
  // its modules were started before the power-off: they start again and reintegrate as SECOND
  await pair(alpha, 'node1', 'node2');
  await pair(beta, 'node2', 'node1');
  await pair(n1, 'node4', 'node1');
  await farmIs(FARM_NODES);
});

test('N-1: node2 and node3 power-off, their modules n2 and n3 both run on the shared backup node4', async () => {
  const [n2, n3] = [MIRRORS[3]!, MIRRORS[4]!];
  await lab.poweroff('node2');
  await lab.poweroff('node3');
  await alone(n2, 'node4');
  await alone(n3, 'node4');
  await alone(MIRRORS[1]!, 'node1'); // beta: its other node is node1
  await farmIs(['node1']);
});

test.run();
