/**
 * A farm module under load (issue 10): HTTP throughput through the farm's VIP with 1, 2 and 3 UP nodes, each as a
 * ratio to one node serving the same application directly on its own address (no VIP, no filter), measured in the
 * same run; then the time from a farm node's power-off to its clients being served again (target ≤ timeout + 1 s).
 *   node dist/bench/farm.js [seconds=10] [rounds=3] [runs=5] [connections=32]
 *
 * The lab: node1-3 and a client on one LAN, real tandem daemons, the farm-web example (examples/farm-web: a Node.js
 * HTTP server answering its node's name, `Connection: close`) as module `farm-web` with its own pulse and timeout
 * (200 ms, 2 s), its VIP 198.51.100.20:8080 and the three nodes at power 1. Started with `tandem start -m farm-web`
 * on node1, then node2, then node3; each step is measured once every UP node counts the same members.
 *
 * Load: `wrk` in the client host, `connections` connections for `seconds`, `rounds` times per step (median). The
 * application closes every connection after its answer, so each request is a new TCP connection from a new source
 * port. The farm's rule is `filter="on_port"` (address + source port → bucket): wrk cannot bind a source address, so
 * all its load comes from the client's one address, which `on_addr` would send to a single node whatever the number
 * of nodes; with `on_port` its connections spread over the nodes' buckets, as the connections of many clients would.
 * Every client packet reaches every node (the farm's shared multicast MAC) and each node's nftables keeps its own
 * buckets: the farm's cost per packet is paid by every node.
 * The client host reuses its TIME-WAIT ports for new connections (net.ipv4.tcp_tw_reuse=1 in its namespace, as a
 * load generator is set up). Without it the one client address runs out of ports: wrk closes a third or more of the
 * connections first, each of those ports stays in TIME-WAIT for 60 s, and once they pile up (14,000 seen) connect()
 * spends its time in the kernel looking for a free one (wrk at ~90 % system time) and the rate falls to ~450 req/s,
 * whatever serves it. Seen on this lab, 3 nodes: 9,400 req/s for two 5 s runs, then 1,400, then 450.
 *
 * CPU: the lab's hosts share this machine's CPUs, so wrk (one thread), the kernel's network stack for every
 * namespace and the servers compete for the same cores. Each step prints how busy the machine was, wrk's CPU and
 * each server's; the servers together get about the same CPU whatever their number, so more nodes cannot serve more
 * here, and the ratios say so rather than show a scaling this machine cannot have.
 *
 * Power-off: the victim's clients are predicted from the farm's own hash (bucketOwners over the three members,
 * farmBucket of the client's address and a source port): source ports whose bucket the victim owns. A probe in the
 * client host (bench/farm-probe.ts) opens a connection from one of them every 20 ms, 300 ms each at most, and the
 * time is from `lab.poweroff(victim)` to the first answer by another node.
 *   expected ≈ timeout − (time since the victim's last beacon: 0 to one pulse, 200-300 ms as beacons leave on the
 *              daemon's 100 ms tick) + up to one tick (the survivors expire the peer on a tick) + `setOwned` on the
 *              survivors (one `nft` transaction) + up to the probe's 20 ms
 * so between about timeout − 300 ms and timeout + 150 ms; the power-off is not aligned with the beacons. A real client's SYN
 * retransmission (1 s, then 2 s, …) adds its own wait on top; the probe's short connect timeout leaves it out.
 * The victims rotate (node1, node2, node3, …); each comes back (boot, its daemon restarts the module) before the next.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { controlRequest } from '../src/daemon/control.js';
import { generateKey, writeKeyFile } from '../src/daemon/key.js';
import type { StatusView } from '../src/daemon/views.js';
import { bucketOwners, type Member } from '../src/engine/farm/buckets.js';
import { homePaths } from '../src/home.js';
import { median } from '../src/lab/failover.js';
import { Lab } from '../src/lab/lab.js';
import { clusterXml, controlSocketOf, waitForDaemon } from '../src/lab/mirror-lab.js';
import { isAlive, killPid } from '../src/lab/netns.js';
import { repoRoot } from '../src/lab/spec.js';
import { farmBucket } from '../src/platform/farm/jhash.js';
import { CLK_TCK, childTicksOfStat, machineTicks, procTicks } from './proc-stat.js';

const seconds = Number(process.argv[2] ?? 10);
const rounds = Number(process.argv[3] ?? 3);
const runs = Number(process.argv[4] ?? 5);
const connections = Number(process.argv[5] ?? 32);

const NODES = ['node1', 'node2', 'node3'] as const;
const CLIENT = '198.51.100.100';
/** the example's name: its scripts and process check look for farm-web/app.mjs */
const FARM = 'farm-web';
const VIP = '198.51.100.20';
const PORT = 8080;
const PULSE_MS = 200;
const TIMEOUT_MS = 2000;
const TARGET_MS = TIMEOUT_MS + 1000;
const MEMBERS: Member[] = NODES.map((name) => ({ name, power: 1 }));
/** source ports of the probe: below the ephemeral range (32768-60999), so no other socket of the client takes them */
const FIRST_PROBE_PORT = 20000;
const PROBE_PORTS = 16;
const here = path.dirname(fileURLToPath(import.meta.url));

/** examples/farm-web's userconfig.xml: on_port, the three nodes at power 1, the pulse and timeout above. */
function farmUserconfig(xml: string): string {
  return xml
    .replace(/<farm[^>]*>/, `<farm pulse="${PULSE_MS}ms" timeout="${TIMEOUT_MS}ms">`)
    .replace(/addr="[0-9.]+"( where="alias")/, `addr="${VIP}"$1`)
    .replace(/<cluster>[\s\S]*?<\/cluster>/, `<cluster>${NODES.map((n) => `<host name="${n}" power="1"/>`).join('')}</cluster>`)
    .replace(/port="\d+"/, `port="${PORT}"`)
    .replace(/(<rule [^>]*)filter="on_addr"/, '$1filter="on_port"')
    .replace(/(<var name="FARM_WEB_PORT" value=")\d+/, `$1${PORT}`);
}

async function provision(lab: Lab): Promise<void> {
  const key = generateKey();
  const source = path.join(repoRoot(), 'examples', FARM);
  const xml = farmUserconfig(await fs.readFile(path.join(source, 'userconfig.xml'), 'utf8'));
  if (!/<rule [^>]*filter="on_port"/.test(xml) || !xml.includes(`addr="${VIP}"`)) throw new Error(`could not rewrite examples/${FARM}/userconfig.xml for the bench`);
  for (const n of NODES) {
    const home = { root: lab.paths(n).home, runDir: lab.paths(n).run };
    await fs.mkdir(home.root, { recursive: true });
    await fs.writeFile(homePaths.clusterXml(home), clusterXml(lab, [...NODES]));
    await writeKeyFile(homePaths.clusterKey(home), key, { force: true });
    await fs.cp(source, homePaths.moduleDir(home, FARM), { recursive: true });
    await fs.writeFile(homePaths.userconfig(home, FARM), xml);
  }
}

async function farmOf(lab: Lab, node: string): Promise<StatusView['farms'][number] | null> {
  try {
    const v = (await controlRequest(controlSocketOf(lab, node), 'status', FARM, undefined, { timeoutMs: 2000 })) as StatusView;
    return v.farms[0] ?? null;
  } catch {
    return null;
  }
}

/** Every node of `members` is UP, ready, accepts its buckets and counts exactly `members`; returns node1's shares. */
async function farmIs(lab: Lab, members: readonly string[]): Promise<Record<string, number>> {
  return lab.waitFor(`${FARM} UP on ${members.join(', ')}`, async () => {
    let shares: Record<string, number> | undefined;
    for (const n of members) {
      const f = await farmOf(lab, n);
      if (!f || f.state !== 'UP' || !f.ready || f.holdBack !== null || f.members.join() !== members.join()) return undefined;
      shares ??= f.groups[0]?.shares;
    }
    return shares;
  }, 60_000, 100);
}

/** How busy the machine is over `ms`, % of all CPUs. */
async function busyOver(ms: number): Promise<number> {
  const a = machineTicks();
  await sleep(ms);
  const b = machineTicks();
  return ((b.busy - a.busy) / (b.total - a.total)) * 100;
}

interface Load {
  rps: number;
  errors: string;
  /** % of all CPUs */
  machine: number;
  /** % of one core */
  wrk: number;
  /** % of one core, per server */
  servers: Record<string, number>;
}

/** One wrk run from the client against `url`, with the CPU of the machine and of each server (by PID) meanwhile. */
async function wrk(lab: Lab, url: string, servers: Record<string, number>): Promise<Load> {
  const m0 = machineTicks();
  const s0 = Object.fromEntries(Object.entries(servers).map(([n, pid]) => [n, procTicks(pid)]));
  const t0 = performance.now();
  // the shell prints its own /proc stat once wrk has exited: its children's CPU (cutime, cstime) is wrk's
  const r = await lab.exec('client', ['sh', '-c', 'wrk "$@"; s=$?; echo; cat /proc/$$/stat; exit $s', 'sh',
    '-t1', `-c${connections}`, `-d${seconds}s`, '--timeout', '2s', url], { timeoutMs: (seconds + 30) * 1000 });
  const wallS = (performance.now() - t0) / 1000;
  const wrkPct = (childTicksOfStat(r.stdout.trimEnd().split('\n').at(-1)!) / CLK_TCK / wallS) * 100;
  const m1 = machineTicks();
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(r.stdout)?.[1]);
  if (!(rps > 0)) throw new Error(`wrk printed no rate:\n${r.stdout}${r.stderr}`);
  const socket = /Socket errors: (.*)/.exec(r.stdout)?.[1];
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(r.stdout)?.[1];
  const errors = [socket ? `socket errors ${socket}` : '', non2xx ? `${non2xx} non-2xx` : ''].filter(Boolean).join(', ') || 'no errors';
  const serverPct: Record<string, number> = {};
  for (const [n, pid] of Object.entries(servers)) {
    const a = s0[n];
    const b = procTicks(pid);
    serverPct[n] = a === null || a === undefined || b === null ? NaN : ((b - a) / CLK_TCK / wallS) * 100;
  }
  return { rps, errors, machine: ((m1.busy - m0.busy) / (m1.total - m0.total)) * 100, wrk: wrkPct, servers: serverPct };
}

/** `rounds` wrk runs; prints each, returns the median one (by rate; the upper middle for an even count). */
async function measure(lab: Lab, what: string, url: string, servers: Record<string, number>): Promise<Load> {
  const loads: Load[] = [];
  for (let i = 0; i < rounds; i++) {
    const l = await wrk(lab, url, servers);
    loads.push(l);
    const per = Object.entries(l.servers).map(([n, p]) => `${n} ${p.toFixed(0)} %`).join(', ');
    console.log(`  ${what} round ${i + 1}: ${l.rps.toFixed(0)} req/s (${l.errors}); machine ${l.machine.toFixed(0)} % busy; % of one core: wrk ${l.wrk.toFixed(0)} %, ${per}`);
  }
  return [...loads].sort((a, b) => a.rps - b.rps)[Math.floor(loads.length / 2)]!;
}

/** One summary line: the rate, and where the CPU went. */
function cpuNote(l: Load): string {
  const servers = Object.values(l.servers).reduce((a, b) => a + b, 0);
  return `machine ${l.machine.toFixed(0)} % busy of ${os.cpus().length} vCPUs; wrk ${l.wrk.toFixed(0)} %, servers ${servers.toFixed(0)} % of one core`;
}

/** Processes the bench starts in the lab's hosts (not the daemons, which the lab owns), killed by PID. */
class Started {
  private readonly children: ChildProcess[] = [];

  spawn(lab: Lab, host: string, argv: string[], env: Record<string, string> = {}): ChildProcess {
    const [file, ...args] = lab.hostArgv(host, argv);
    const child = spawn(file!, args, { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...env } });
    child.on('error', () => undefined);
    if (child.pid === undefined) throw new Error(`could not start ${argv.join(' ')} on ${host}`);
    this.children.push(child);
    return child;
  }

  async kill(child: ChildProcess): Promise<void> {
    if (child.pid !== undefined) killPid(child.pid, 'SIGKILL');
    for (let i = 0; i < 50 && child.pid !== undefined && isAlive(child.pid); i++) await sleep(20);
    this.children.splice(this.children.indexOf(child), 1);
  }

  async killAll(): Promise<void> {
    for (const c of [...this.children]) await this.kill(c);
  }
}

/** The baseline: node1 runs the farm-web app by itself on its own address, no tandem involved. */
async function baseline(lab: Lab, started: Started): Promise<Load> {
  const ready = path.join(lab.paths('node1').run, 'bench-farm-web.ready');
  await fs.rm(ready, { force: true });
  const app = started.spawn(lab, 'node1', [process.execPath, path.join(repoRoot(), 'examples', FARM, 'app.mjs')],
    { TANDEM_NODE: 'node1', FARM_WEB_PORT: String(PORT), FARM_WEB_READY: ready });
  try {
    await lab.waitFor('the baseline app listening', async () => fs.access(ready).then(() => true), 10_000, 50);
    return await measure(lab, 'direct, node1', `http://${lab.addr('node1')}:${PORT}/`, { node1: app.pid! });
  } finally {
    await started.kill(app);
  }
}

async function serverPids(lab: Lab, nodes: readonly string[]): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const n of nodes) out[n] = Number((await fs.readFile(path.join(lab.paths(n).run, `${FARM}.pid`), 'utf8')).trim());
  return out;
}

/** Lines of a running farm-probe, each with the instant it arrived. */
class Probe {
  private readonly lines: { at: number; ok: boolean; word: string }[] = [];
  private buf = '';

  constructor(readonly child: ChildProcess) {
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (d: string) => {
      const at = performance.now();
      this.buf += d;
      for (let i = this.buf.indexOf('\n'); i >= 0; i = this.buf.indexOf('\n')) {
        const [kind, word] = this.buf.slice(0, i).split(' ');
        this.buf = this.buf.slice(i + 1);
        this.lines.push({ at, ok: kind === 'ok', word: word ?? '' });
      }
    });
  }

  /** The arrival instant of the first answer after `since` that `pred` accepts. */
  async answer(since: number, pred: (node: string) => boolean, what: string, timeoutMs = 30_000): Promise<number> {
    const l = await waitForValue(what, () => this.lines.find((x) => x.at >= since && x.ok && pred(x.word)), timeoutMs);
    return l.at;
  }

  /** Answers since `since`, by node, and the failures by reason. */
  tally(since: number): string {
    const count: Record<string, number> = {};
    for (const l of this.lines.filter((x) => x.at >= since)) count[l.ok ? l.word : `fail ${l.word}`] = (count[l.ok ? l.word : `fail ${l.word}`] ?? 0) + 1;
    return Object.entries(count).map(([k, v]) => `${k} ${v}`).join(', ');
  }
}

async function waitForValue<T>(what: string, fn: () => T | undefined, timeoutMs: number): Promise<T> {
  const t0 = performance.now();
  for (;;) {
    const v = fn();
    if (v !== undefined) return v;
    if (performance.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(5);
  }
}

/** Source ports of the client whose bucket (on_port) `victim` owns among all three nodes. */
function portsOwnedBy(victim: string): number[] {
  const owners = bucketOwners(MEMBERS);
  const out: number[] = [];
  for (let p = FIRST_PROBE_PORT; out.length < PROBE_PORTS; p++) if (owners[farmBucket('on_port', CLIENT, p)] === victim) out.push(p);
  return out;
}

async function powerOffRun(lab: Lab, started: Started, victim: string): Promise<number> {
  const ports = portsOwnedBy(victim);
  const child = started.spawn(lab, 'client', [process.execPath, path.join(here, 'farm-probe.js'), VIP, String(PORT), CLIENT, ports.join(','), '20', '300']);
  const probe = new Probe(child);
  try {
    const start = performance.now();
    // the prediction first: its clients are answered by the victim, and by no other node
    await probe.answer(start, (n) => n === victim, `an answer from ${victim} to its predicted clients`);
    await sleep(500);
    const strays = probe.tally(start);
    if (!new RegExp(`^${victim} \\d+$`).test(strays)) throw new Error(`the victim's predicted clients were not all answered by ${victim}: ${strays}`);
    const t0 = performance.now();
    await lab.poweroff(victim);
    const at = await probe.answer(t0, (n) => n !== victim, `an answer from another node after ${victim}'s power-off`);
    const ms = Math.round(at - t0);
    await sleep(300);
    console.log(`  ${victim} power-off → its clients served again: ${ms} ms (probe since the power-off: ${probe.tally(t0)})`);
    return ms;
  } finally {
    await started.kill(child);
  }
}

async function bench(): Promise<void> {
  let lab: Lab | null = null;
  const started = new Started();
  try {
    console.log(`farm bench: ${os.cpus().length} vCPUs shared by wrk, the three servers and every namespace's network stack; ` +
      `wrk -t1 -c${connections}, ${rounds} × ${seconds} s per step, median`);
    console.log(`  before the lab: machine ${(await busyOver(2000)).toFixed(0)} % busy over 2 s (other work on this machine skews every figure)`);
    lab = await Lab.create({
      hosts: [...NODES.map((name) => ({ name, role: 'node' as const })), { name: 'client', role: 'client' }],
      lans: [{
        name: 'default', cidr: '198.51.100.0/24', ifname: 'eth0',
        addrs: { node1: '198.51.100.1', node2: '198.51.100.2', node3: '198.51.100.3', client: CLIENT },
      }],
      privateDirs: [],
    });
    lab.autoTeardownOnExit();
    await lab.exec('client', ['sysctl', '-qw', 'net.ipv4.tcp_tw_reuse=1']);
    await provision(lab);
    for (const n of NODES) lab.spawnDaemon(n);
    for (const n of NODES) await waitForDaemon(lab, n);

    const direct = await baseline(lab, started);
    const rates: Load[] = [];
    for (let k = 1; k <= NODES.length; k++) {
      const up = NODES.slice(0, k);
      await lab.cli(up[k - 1]!, ['start', '-m', FARM]);
      const shares = await farmIs(lab, up);
      console.log(`  farm on ${up.join(', ')}: buckets ${Object.entries(shares).map(([n, b]) => `${n} ${b}`).join(', ')}`);
      rates.push(await measure(lab, `farm VIP, ${k} node${k > 1 ? 's' : ''}`, `http://${VIP}:${PORT}/`, await serverPids(lab, up)));
    }

    const times: number[] = [];
    for (let i = 0; i < runs; i++) {
      const victim = NODES[i % NODES.length]!;
      times.push(await powerOffRun(lab, started, victim));
      await lab.boot(victim);
      await waitForDaemon(lab, victim);
      await farmIs(lab, NODES);
    }

    console.log(`\nthroughput (median of ${rounds} × ${seconds} s, wrk -t1 -c${connections}, a new connection per request):`);
    console.log(`  direct: node1 on its own address, no farm: ${direct.rps.toFixed(0)} req/s (baseline; ${cpuNote(direct)})`);
    rates.forEach((r, i) => console.log(`  farm VIP, ${i + 1} UP node${i ? 's' : ' '} (on_port):     ${r.rps.toFixed(0)} req/s = ${(r.rps / direct.rps).toFixed(2)} × direct (${cpuNote(r)})`));
    const sum = (l: Load) => Object.values(l.servers).reduce((a, b) => a + b, 0).toFixed(0);
    console.log(`  every host runs on the same ${os.cpus().length} vCPUs: the servers together got ${sum(direct)} % of one core direct and ` +
      `${rates.map(sum).join(' / ')} % at 1 / 2 / 3 nodes, and every node filters every packet (the shared MAC) on those CPUs; ` +
      'a node added here splits the same CPU instead of adding some, so the ratios show the farm\'s overhead on one machine, ' +
      'not how it scales over real servers');
    const m = median(times);
    console.log(`power-off → clients served: runs ${times.join(', ')} ms; median ${m} ms; farm timeout ${TIMEOUT_MS} ms (pulse ${PULSE_MS} ms)`);
    console.log(`verdict: farm throughput with 1 / 2 / 3 UP nodes = ${rates.map((r) => (r.rps / direct.rps).toFixed(2)).join(' / ')} × one node serving directly (every host on the same ${os.cpus().length} vCPUs: no scaling measurable here)`);
    console.log(`verdict: farm node power-off → its clients served again in ${m} ms (median of ${times.length}; target ≤ timeout ${TIMEOUT_MS} + 1000 ms: ${m <= TARGET_MS ? 'met' : 'NOT met'})`);
  } finally {
    await started.killAll();
    await lab?.down();
  }
}

await bench();
