/**
 * CPU cost of the checkers on an idle node, and how fast a monitored process's death is reported.
 *
 * Monitored: 10 `sleep` processes (one proc checker each, default polltimer, one shared ProcScanner) and 5 checkers:
 * tcp to a listener on 127.0.0.1 (in this process, so both ends of each connect are counted), ping 127.0.0.1,
 * intf lo, ip 127.0.0.1 (VipAdapter.holds, non-loopback interfaces only: it reads down, at the same cost), and a
 * custom program that sleeps in a loop. CPU is this process's user+system time plus that of the children it reaped
 * (`ping`, `ip`; /proc/self/stat cutime+cstime), over `seconds` after a 2 s warm-up, as % of one core. Measured in
 * the same run, after 10 s of warm-up (V8 settles its heap after start-up), in `rounds` rounds of one phase after
 * the other (the machine is shared and noisy), each figure the median:
 *   idle      this process doing nothing (the baseline of the ratios)
 *   procs     the 10 proc checkers alone (polltimer 500 ms)
 *   defaults  all 15 checkers at their defaults (polltimer 500 ms; tcp/ping/intf/ip every 10 s)
 *   fast      the same with tcp/ping/intf/ip every 1 s
 *   naive     no checker: a full /proc scan with every command line, every second (the design's baseline)
 * Then `kills` times: SIGKILL one monitored sleep, time until its checker reports down (median).
 *   node dist/bench/checkers.js [seconds=20] [rounds=3] [kills=5]
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { CustomChecker } from '../src/checkers/custom.js';
import { IntfChecker } from '../src/checkers/intf.js';
import { IpChecker } from '../src/checkers/ip.js';
import { PingChecker } from '../src/checkers/ping.js';
import { ProcChecker } from '../src/checkers/proc.js';
import { ProcScanner } from '../src/checkers/proc-scanner.js';
import { TcpChecker } from '../src/checkers/tcp.js';
import type { Checker, Report } from '../src/checkers/types.js';
import type { ResourceState } from '../src/engine/rules/types.js';
import { realClock } from '../src/platform/clock/real.js';
import { LinuxLauncher } from '../src/platform/launcher/linux.js';
import { LinuxNetProbe } from '../src/platform/net/linux.js';
import { LinuxProcTable } from '../src/platform/procs/linux.js';
import { LinuxVip } from '../src/platform/vip/linux.js';
import { LinuxWitness } from '../src/platform/witness/linux.js';

const seconds = Number(process.argv[2] ?? 20);
const rounds = Number(process.argv[3] ?? 3);
const kills = Number(process.argv[4] ?? 5);
const TICKS = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
const PROCS = 10;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** CPU milliseconds of this process and its reaped children */
function cpuMs(): number {
  const u = process.cpuUsage();
  const stat = fs.readFileSync('/proc/self/stat', 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const children = (Number(f[13]) + Number(f[14])) * (1000 / TICKS); // fields 16 and 17
  return (u.user + u.system) / 1000 + children;
}

async function measure(what: string, ms: number): Promise<number> {
  const c0 = cpuMs();
  const t0 = performance.now();
  await sleep(ms);
  const pct = ((cpuMs() - c0) / (performance.now() - t0)) * 100;
  console.log(`${what.padEnd(20)} ${pct.toFixed(3)} % of one core`);
  return pct;
}

function spawnSleep(i: number): Promise<ChildProcess> {
  const c = spawn('sleep', [String(100_000 + i)], { stdio: 'ignore' });
  return new Promise((resolve, reject) => c.once('spawn', () => resolve(c)).once('error', reject));
}

/** the last state each resource reported, and waiters for a given one */
class States {
  private readonly states = new Map<string, ResourceState>();
  private readonly waiters: { resource: string; state: ResourceState; resolve: () => void }[] = [];
  report(resource: string): Report {
    return (state) => {
      this.states.set(resource, state);
      for (const w of this.waiters.filter((x) => x.resource === resource && x.state === state)) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve();
      }
    };
  }
  get(resource: string): ResourceState | undefined {
    return this.states.get(resource);
  }
  until(resource: string, state: ResourceState): Promise<void> {
    if (this.states.get(resource) === state) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ resource, state, resolve }));
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tvt-bench-checkers-'));
const children: ChildProcess[] = [];
const server = net.createServer((s) => s.on('error', () => {}).resume());
let checkers: Checker[] = [];
try {
  console.log(`checkers bench: ${rounds} rounds of ${seconds} s per phase, ${os.cpus().length} CPUs, ${fs.readdirSync('/proc').filter((n) => /^\d+$/.test(n)).length} processes`);
  for (let i = 0; i < PROCS; i++) children.push(await spawnSleep(i));
  await new Promise<void>((r) => server.listen({ host: '127.0.0.1', port: 0 }, () => r()));
  const port = (server.address() as net.AddressInfo).port;
  const custom = path.join(dir, 'custom-check');
  fs.writeFileSync(custom, '#!/bin/sh\nwhile :; do sleep 5; done\n', { mode: 0o755 });

  const clock = realClock;
  const table = new LinuxProcTable();
  const scanner = new ProcScanner(table, clock);
  const states = new States();
  const netProbe = new LinuxNetProbe();
  const witness = new LinuxWitness({ log: () => {} });
  const vip = new LinuxVip({ log: () => {} });
  const launcher = new LinuxLauncher();

  const procCheckers = Array.from({ length: PROCS }, (_, i) =>
    new ProcChecker({ spec: { name: `s${i}`, nameregex: '^sleep$', argregex: `^sleep ${100_000 + i}$`, atleast: 1, atmax: -1 }, scanner, clock, report: states.report(`proc.s${i}`) }));
  const others = (intervalMs: number): Checker[] => [
    new TcpChecker({ ident: 'local', addr: '127.0.0.1', port, intervalMs, net: netProbe, clock, report: states.report('tcp.local') }),
    new PingChecker({ ident: 'lo', addrs: ['127.0.0.1'], intervalMs, witness, clock, report: states.report('ping.lo') }),
    new IntfChecker({ ident: 'lo', target: { ifname: 'lo' }, intervalMs, net: netProbe, clock, report: states.report('intf.lo') }),
    new IpChecker({ addr: '127.0.0.1', intervalMs, vip, clock, report: states.report('ip.127.0.0.1') }),
    new CustomChecker({ ident: 'sleeper', exec: custom, args: [], env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, logFile: path.join(dir, 'custom.log'), launcher, clock, log: (m) => console.log(`  ${m}`), report: states.report('custom.sleeper') }),
  ];

  await sleep(10_000); // V8's memory reducer runs its start-up collections in the first ~9 s
  const start = async (list: Checker[]) => {
    checkers = list;
    for (const c of list) c.start();
    await Promise.all(procCheckers.map((c) => states.until(c.resource, 'up')));
    await sleep(2000);
  };
  const stopAll = async () => {
    for (const c of checkers) await c.stop();
    checkers = [];
  };
  const phases: { name: string; setup: () => Promise<() => Promise<void>> }[] = [
    { name: 'idle', setup: async () => async () => {} },
    { name: 'procs', setup: async () => { await start(procCheckers); return stopAll; } },
    { name: 'defaults', setup: async () => { await start([...procCheckers, ...others(10_000)]); return stopAll; } },
    { name: 'fast', setup: async () => { await start([...procCheckers, ...others(1000)]); return stopAll; } },
    { name: 'naive', setup: async () => { const t = setInterval(() => void table.list(), 1000); return async () => clearInterval(t); } },
  ];
  const results = new Map<string, number[]>(phases.map((p) => [p.name, []]));
  let scans = 0;
  for (let round = 0; round < rounds; round++) {
    for (const phase of phases) {
      const teardown = await phase.setup();
      const scans0 = scanner.scans;
      results.get(phase.name)!.push(await measure(`${phase.name} (round ${round + 1})`, seconds * 1000));
      if (phase.name === 'defaults') {
        scans += scanner.scans - scans0;
        if (round === 0) console.log(`  states: ${checkers.filter((c) => !c.resource.startsWith('proc.')).map((c) => `${c.resource}=${states.get(c.resource)}`).join(' ')}`);
      }
      await teardown();
    }
  }
  const idle = median(results.get('idle')!);
  console.log(`\nmedians of ${rounds} rounds of ${seconds} s (% of one core; ratio to idle; added over idle):`);
  for (const [name, xs] of results) {
    const m = median(xs);
    console.log(`  ${name.padEnd(9)} ${m.toFixed(3)} %  ${name === 'idle' ? '' : `ratio ${(m / idle).toFixed(1)}  added ${(m - idle).toFixed(3)} %`}`);
  }
  console.log(`  full /proc scans while 'defaults' ran: ${scans} in ${rounds * seconds} s (besides the one at each start)`);

  // the median kill → down latency, with the default checkers running
  await start([...procCheckers, ...others(10_000)]);
  const latencies: number[] = [];
  for (let k = 0; k < kills; k++) {
    const i = k % PROCS;
    const resource = `proc.s${i}`;
    await sleep(137 * (k + 1)); // a different phase of the poll grid each time
    const down = states.until(resource, 'down');
    const t0 = performance.now();
    children[i]!.kill('SIGKILL');
    await down;
    latencies.push(performance.now() - t0);
    children[i] = await spawnSleep(i);
    await states.until(resource, 'up');
  }
  console.log(`kill -9 → down: ${latencies.map((x) => x.toFixed(0)).join(', ')} ms; median ${median(latencies).toFixed(0)} ms (polltimer 500 ms)`);
} finally {
  for (const c of checkers) await c.stop();
  for (const c of children) c.kill('SIGKILL');
  server.close();
  fs.rmSync(dir, { recursive: true, force: true });
}
