/**
 * Many modules on one daemon (issue 10): the idle CPU and the memory of a node's `tandem daemon` running `mirrors`
 * mirror modules and `farms` farm modules, against the same daemon with no module, measured in the same run
 * (targets: CPU < 5 % of one core, RSS ≤ 150 MiB).
 *   node dist/bench/modules.js [mirrors=32] [farms=32] [seconds=30] [settle=20]
 *   TANDEM_BENCH_NODE_FLAGS='--cpu-prof --cpu-prof-dir=DIR'  node flags of the daemons (a V8 profile per daemon in
 *   DIR when it exits; or `--heapsnapshot-signal=SIGUSR2`, and `kill -USR2 <pid>` writes a heap snapshot in its cwd)
 *
 * The lab: node1, node2 and a client on one LAN, real daemons. The modules, each with its own VIP and port:
 *   mirror-NN  examples/demo as it is (pulse 500 ms, timeout 5 s, heartbeats on the one LAN, no <rfs>: no file
 *              replication), VIP 198.51.100.10+, DEMO_PORT 8100+; started on both nodes, `prim` on node1, `second`
 *              on node2: PRIM on node1 (which runs the 32 demo apps), SECOND on node2
 *   farm-NN    examples/farm-web as it is (pulse 200 ms, timeout 2 s, its process check every second), renamed in its
 *              scripts and check so that the copies do not take each other's PID files and processes, node1 and node2
 *              at power 1, VIP 198.51.100.50+, port 8200+; UP on both nodes (each runs its own 32 farm-web servers)
 * The verbs go to the daemons' control sockets (the request `tandem start|prim|second -m` sends), a few modules at a
 * time so that the applications' start (one Node.js each, within the scripts' 5 s) does not starve on 2 vCPUs. Every
 * module's VIP is then asked once from the client.
 *
 * Measured on both nodes at once, after `settle` seconds of nothing happening: the daemon's CPU (utime + stime of
 * /proc/<pid>/stat over `seconds`, % of one core; the applications and scripts are other processes and are not
 * counted), its VmRSS at the end and its VmHWM (peak), and the heartbeats it sent and received meanwhile (from
 * `tandem status`, asked just before and just after the window). Baseline: the same two daemons before any module is
 * installed, measured the same way; then the modules are installed and the daemons restarted (they load them at
 * start), and the per-module cost is (with − without) / modules.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { controlRequest } from '../src/daemon/control.js';
import { generateKey, writeKeyFile } from '../src/daemon/key.js';
import type { StatusView } from '../src/daemon/views.js';
import { homePaths } from '../src/home.js';
import { Lab } from '../src/lab/lab.js';
import { clusterXml, controlSocketOf, waitForDaemon } from '../src/lab/mirror-lab.js';
import { isAlive } from '../src/lab/netns.js';
import { repoRoot } from '../src/lab/spec.js';
import { CLK_TCK, machineTicks, procTicks, statusMiB } from './proc-stat.js';

const mirrors = Number(process.argv[2] ?? 32);
const farms = Number(process.argv[3] ?? 32);
const seconds = Number(process.argv[4] ?? 30);
const settle = Number(process.argv[5] ?? 20);

const NODES = ['node1', 'node2'] as const;
const CPU_TARGET_PCT = 5;
const RSS_TARGET_MIB = 150;
/** modules whose verbs are sent at once */
const BATCH = 8;

const pad = (i: number) => String(i + 1).padStart(2, '0');
interface Mod { name: string; vip: string; port: number }
const MIRRORS: Mod[] = Array.from({ length: mirrors }, (_, i) => ({ name: `mirror-${pad(i)}`, vip: `198.51.100.${10 + i}`, port: 8100 + i }));
const FARMS: Mod[] = Array.from({ length: farms }, (_, i) => ({ name: `farm-${pad(i)}`, vip: `198.51.100.${50 + i}`, port: 8200 + i }));
if (mirrors > 40 || farms > 40) throw new Error('at most 40 of each kind: their VIPs are 198.51.100.10-49 and .50-89');

/** examples/demo's userconfig.xml with the module's VIP and port, its heartbeats on the lab's one LAN. */
function mirrorXml(xml: string, m: Mod): string {
  const out = xml
    .replace(/<heartbeat name="replication"\/>\s*/, '')
    .replace(/addr="[0-9.]+"/, `addr="${m.vip}"`)
    .replace(/<user ([^>]*)\/>/, `<user $1><var name="DEMO_PORT" value="${m.port}"/></user>`);
  if (out.includes('replication') || !out.includes(m.vip) || !out.includes('DEMO_PORT')) throw new Error('could not rewrite examples/demo/userconfig.xml for the bench');
  return out;
}

/** examples/farm-web's userconfig.xml (or a script) renamed to the module, with its VIP, port and the two nodes. */
function farmText(text: string, m: Mod): string {
  return text
    .replace(/farm-web/g, m.name)
    .replace(/addr="[0-9.]+"( where="alias")/, `addr="${m.vip}"$1`)
    .replace(/<cluster>[\s\S]*?<\/cluster>/, `<cluster>${NODES.map((n) => `<host name="${n}" power="1"/>`).join('')}</cluster>`)
    .replace(/(<rule [^>]*)port="\d+"/, `$1port="${m.port}"`)
    .replace(/(<var name="FARM_WEB_PORT" value=")\d+/, `$1${m.port}`);
}

async function provisionCluster(lab: Lab): Promise<void> {
  const key = generateKey();
  for (const n of NODES) {
    const home = { root: lab.paths(n).home, runDir: lab.paths(n).run };
    await fs.mkdir(home.root, { recursive: true });
    await fs.writeFile(homePaths.clusterXml(home), clusterXml(lab, [...NODES]));
    await writeKeyFile(homePaths.clusterKey(home), key, { force: true });
  }
}

async function installModules(lab: Lab): Promise<void> {
  const demo = path.join(repoRoot(), 'examples', 'demo');
  const farm = path.join(repoRoot(), 'examples', 'farm-web');
  const demoXml = await fs.readFile(path.join(demo, 'userconfig.xml'), 'utf8');
  for (const n of NODES) {
    const home = { root: lab.paths(n).home, runDir: lab.paths(n).run };
    for (const m of MIRRORS) {
      await fs.cp(demo, homePaths.moduleDir(home, m.name), { recursive: true });
      await fs.writeFile(homePaths.userconfig(home, m.name), mirrorXml(demoXml, m));
    }
    for (const m of FARMS) {
      const dir = homePaths.moduleDir(home, m.name);
      await fs.cp(farm, dir, { recursive: true });
      for (const f of ['userconfig.xml', 'bin/start_both', 'bin/stop_both']) {
        await fs.writeFile(path.join(dir, f), farmText(await fs.readFile(path.join(dir, f), 'utf8'), m));
      }
    }
  }
}

async function status(lab: Lab, node: string): Promise<StatusView> {
  return (await controlRequest(controlSocketOf(lab, node), 'status', undefined, undefined, { timeoutMs: 10_000 })) as StatusView;
}

async function admin(lab: Lab, node: string, module: string, verb: string): Promise<void> {
  await controlRequest(controlSocketOf(lab, node), 'admin', module, { verb, fullsync: false }, { timeoutMs: 60_000 });
}

/** Resolves when `pred` holds for every module of `mods` in both nodes' status. */
async function allAre(lab: Lab, what: string, mods: Mod[], pred: (node: string, state: string, ready: boolean, members?: string[]) => boolean, timeoutMs = 120_000): Promise<void> {
  await lab.waitFor(what, async () => {
    for (const n of NODES) {
      const v = await status(lab, n);
      for (const m of mods) {
        const x = v.modules.find((y) => y.module === m.name) ?? v.farms.find((y) => y.module === m.name);
        if (!x) return false;
        const members = 'members' in x ? x.members : undefined;
        if (!pred(n, x.state, x.ready, members)) return false;
      }
    }
    return true;
  }, timeoutMs, 250);
}

async function startMirrors(lab: Lab, mods: Mod[]): Promise<void> {
  for (const n of NODES) for (const m of mods) await admin(lab, n, m.name, 'start');
  await allAre(lab, `${mods.length} mirror modules WAIT on both nodes`, mods, (_n, s, r) => s === 'WAIT' && r);
  for (const m of mods) await admin(lab, 'node1', m.name, 'prim');
  await allAre(lab, `${mods.length} mirror modules ALONE on node1`, mods, (n, s, r) => n !== 'node1' || (s === 'ALONE' && r));
  for (const m of mods) await admin(lab, 'node2', m.name, 'second');
  await allAre(lab, `${mods.length} mirror modules PRIM on node1, SECOND on node2`, mods, (n, s, r) => r && s === (n === 'node1' ? 'PRIM' : 'SECOND'));
}

async function startFarms(lab: Lab, mods: Mod[]): Promise<void> {
  for (const n of NODES) for (const m of mods) await admin(lab, n, m.name, 'start');
  await allAre(lab, `${mods.length} farm modules UP on both nodes`, mods, (_n, s, r, members) => s === 'UP' && r && members?.join() === NODES.join());
}

/** Every module's VIP answers the client once (the demo and farm-web both name the node that served). */
async function askEveryVip(lab: Lab): Promise<string> {
  const served: Record<string, number> = {};
  const failed: string[] = [];
  for (const m of [...MIRRORS, ...FARMS]) {
    const r = await lab.httpGet('client', `http://${m.vip}:${m.port}/`, 2000);
    const by = r.ok ? /"node":"([^"]+)"/.exec(r.body ?? '')?.[1] ?? r.body?.trim() : undefined;
    if (by) served[by] = (served[by] ?? 0) + 1;
    else failed.push(`${m.name} (${r.error ?? `HTTP ${r.status}`})`);
  }
  if (failed.length > 0) throw new Error(`not served on their VIP: ${failed.join(', ')}`);
  return Object.entries(served).map(([n, c]) => `${n} ${c}`).join(', ');
}

interface Usage {
  cpuPct: number;
  rssMiB: number;
  hwmMiB: number;
  sentPerS: number;
  receivedPerS: number;
  datagramsPerS: number;
}

/** Both daemons over `seconds`, after `settle` seconds; the machine's busy share printed alongside. */
async function measure(lab: Lab, what: string): Promise<Record<string, Usage>> {
  await sleep(settle * 1000);
  const pids = Object.fromEntries(NODES.map((n) => [n, lab.daemonPid(n)!]));
  const hb0 = Object.fromEntries(await Promise.all(NODES.map(async (n) => [n, (await status(lab, n)).heartbeats] as const)));
  const c0 = Object.fromEntries(NODES.map((n) => [n, procTicks(pids[n]!)!]));
  const m0 = machineTicks();
  const t0 = performance.now();
  await sleep(seconds * 1000);
  const wallS = (performance.now() - t0) / 1000;
  const c1 = Object.fromEntries(NODES.map((n) => [n, procTicks(pids[n]!)]));
  const m1 = machineTicks();
  const hb1 = Object.fromEntries(await Promise.all(NODES.map(async (n) => [n, (await status(lab, n)).heartbeats] as const)));
  const out: Record<string, Usage> = {};
  for (const n of NODES) {
    if (c1[n] === null) throw new Error(`the daemon of ${n} (pid ${pids[n]}) died during the measurement`);
    out[n] = {
      cpuPct: ((c1[n]! - c0[n]!) / CLK_TCK / wallS) * 100,
      rssMiB: statusMiB(pids[n]!, 'VmRSS')!,
      hwmMiB: statusMiB(pids[n]!, 'VmHWM')!,
      sentPerS: (hb1[n]!.sent - hb0[n]!.sent) / wallS,
      receivedPerS: (hb1[n]!.received - hb0[n]!.received) / wallS,
      datagramsPerS: (hb1[n]!.datagrams.sent - hb0[n]!.datagrams.sent) / wallS,
    };
    const u = out[n]!;
    console.log(`  ${what}, ${n} (pid ${pids[n]}): CPU ${u.cpuPct.toFixed(2)} % of one core over ${wallS.toFixed(0)} s; ` +
      `VmRSS ${u.rssMiB.toFixed(1)} MiB (peak ${u.hwmMiB.toFixed(1)}); heartbeats ${u.sentPerS.toFixed(0)} sent/s (in ${u.datagramsPerS.toFixed(0)} datagrams/s), ${u.receivedPerS.toFixed(0)} received/s`);
  }
  console.log(`  ${what}: machine ${(((m1.busy - m0.busy) / (m1.total - m0.total)) * 100).toFixed(0)} % busy of ${os.cpus().length} vCPUs meanwhile`);
  return out;
}

async function stopDaemon(lab: Lab, node: string): Promise<void> {
  const pid = lab.daemonPid(node);
  lab.killDaemon(node, 'SIGTERM');
  await lab.waitFor(`the daemon of ${node} gone`, async () => pid === undefined || !isAlive(pid), 30_000, 100);
}

/** SIGTERM (modules left as they are, none here yet), then a new daemon that loads what is installed. */
async function restartDaemon(lab: Lab, node: string): Promise<void> {
  await stopDaemon(lab, node);
  lab.spawnDaemon(node);
  await waitForDaemon(lab, node, 60_000);
}

async function bench(): Promise<void> {
  let lab: Lab | null = null;
  try {
    console.log(`modules bench: ${mirrors} mirror + ${farms} farm modules on 2 nodes, ${os.cpus().length} vCPUs; ${settle} s settle, ${seconds} s per measurement`);
    lab = await Lab.create({
      hosts: [...NODES.map((name) => ({ name, role: 'node' as const })), { name: 'client', role: 'client' }],
      lans: [{ name: 'default', cidr: '198.51.100.0/24', ifname: 'eth0', addrs: { node1: '198.51.100.1', node2: '198.51.100.2', client: '198.51.100.100' } }],
      privateDirs: [],
      ...(process.env.TANDEM_BENCH_NODE_FLAGS ? {
        daemonCommand: [process.execPath, ...process.env.TANDEM_BENCH_NODE_FLAGS.split(/\s+/).filter(Boolean), path.join(repoRoot(), 'bin', 'tandem'), 'daemon'],
      } : {}),
    });
    lab.autoTeardownOnExit();
    await provisionCluster(lab);
    for (const n of NODES) lab.spawnDaemon(n);
    for (const n of NODES) await waitForDaemon(lab, n);
    const none = await measure(lab, 'no module');

    await installModules(lab);
    const t0 = performance.now();
    for (const n of NODES) await restartDaemon(lab, n);
    const loadedS = (performance.now() - t0) / 1000;
    for (let i = 0; i < Math.max(MIRRORS.length, FARMS.length); i += BATCH) {
      await startMirrors(lab, MIRRORS.slice(i, i + BATCH));
      await startFarms(lab, FARMS.slice(i, i + BATCH));
    }
    const startedS = (performance.now() - t0) / 1000;
    console.log(`  daemons restarted with ${mirrors + farms} modules in ${loadedS.toFixed(1)} s; all started in ${startedS.toFixed(0)} s; every VIP served, by ${await askEveryVip(lab)}`);
    const many = await measure(lab, `${mirrors + farms} modules`);

    const count = mirrors + farms;
    console.log(`\nidle daemon, ${count} modules (${mirrors} mirror PRIM on node1 / SECOND on node2, ${farms} farm UP on both) against none:`);
    for (const n of NODES) {
      const [a, b] = [none[n]!, many[n]!];
      console.log(`  ${n}: CPU ${b.cpuPct.toFixed(2)} % vs ${a.cpuPct.toFixed(2)} % (${(b.cpuPct / a.cpuPct).toFixed(1)} ×, +${((b.cpuPct - a.cpuPct) / count).toFixed(3)} % per module); ` +
        `VmRSS ${b.rssMiB.toFixed(1)} vs ${a.rssMiB.toFixed(1)} MiB (${(b.rssMiB / a.rssMiB).toFixed(1)} ×, +${(((b.rssMiB - a.rssMiB) * 1024) / count).toFixed(0)} KiB per module)`);
    }
    const worst = (f: (u: Usage) => number) => NODES.map((n) => ({ n, v: f(many[n]!) })).sort((x, y) => y.v - x.v)[0]!;
    const cpu = worst((u) => u.cpuPct);
    const rss = worst((u) => u.rssMiB);
    console.log(`verdict: ${count} modules, idle daemon CPU ${cpu.v.toFixed(2)} % of one core (${cpu.n}; ${(cpu.v / none[cpu.n]!.cpuPct).toFixed(1)} × no module; target < ${CPU_TARGET_PCT} %: ${cpu.v < CPU_TARGET_PCT ? 'met' : 'NOT met'})`);
    console.log(`verdict: ${count} modules, daemon VmRSS ${rss.v.toFixed(0)} MiB (${rss.n}; ${(rss.v / none[rss.n]!.rssMiB).toFixed(1)} × no module; target ≤ ${RSS_TARGET_MIB} MiB: ${rss.v <= RSS_TARGET_MIB ? 'met' : 'NOT met'})`);
  } finally {
    // the daemons end first, so that profiles (TANDEM_BENCH_NODE_FLAGS) are written
    if (lab) for (const n of NODES) await stopDaemon(lab, n).catch(() => {});
    await lab?.down();
  }
}

await bench();
