/**
 * Scenario scripts (test/scenarios/*.txt), read like the seeds: one verb per line, one handler per verb.
 *
 *   config timeout=5s pulse=500ms syncdelta=10m witness=on failover=off defaultprim=node1
 *   form node1 node2           boot, start both, prim node1, second node2: the normal PRIM/SECOND pair
 *   boot node1 node2           power-on (daemon start; modules wanted running start again)
 *   power-off node1            pull the plug: RAM, VIP and application lost, disk kept
 *   kill-daemon node1          only the daemon dies; application and VIP stay
 *   start|stop|forcestop|restart|swap node1
 *   prim node1 [fullsync]      second node2 [fullsync]
 *   cut default [node1]        cut a LAN (for one node, or all); `cut all [node]` cuts every LAN
 *   heal                       every link back
 *   witness node1 down|up      can node1 reach the split-brain witness
 *   fail-script node1 start_prim   /   fix-script node1 start_prim
 *   run 6s                     advance the clock
 *   expect node1 PRIM [ready|transient]      expect node1 OFF
 *   expect-vip node1|none      expect-app node1|none|both      expect-wait node1 REASON
 *   expect-reply node1 ok|error [text…]      expect-alarm node1 CODE      expect-no-alarm node1 CODE
 *   expect-same-data           both nodes on the same generation
 */
import { Sim, defaultSimConfig, type SimConfig } from './sim.js';
import type { AdminVerb } from '../engine/mirror/types.js';

export interface ScenarioResult {
  failures: string[];
  transcript: string[];
  sim: Sim;
}

export function parseSimDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(text);
  if (!m) throw new Error(`bad duration "${text}" (use 500ms, 5s, 10m, 1h)`);
  const mult = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h'];
  return Math.round(Number(m[1]) * mult);
}

export function runScenario(text: string, file = 'scenario'): ScenarioResult {
  const cfg: SimConfig = defaultSimConfig();
  let sim = new Sim(cfg);
  const failures: string[] = [];
  const transcript: string[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.replace(/#.*$/, '').trim();
    if (!raw) continue;
    const [verb, ...args] = raw.split(/\s+/) as [string, ...string[]];
    const where = `${file}:${i + 1}: ${raw}`;
    const fail = (msg: string) => failures.push(`${where}\n    ${msg}\n    node1: ${sim.describe('node1')}, node2: ${sim.describe('node2')}`);
    try {
      transcript.push(`> ${raw}`);
      const handler = handlers[verb];
      if (!handler) throw new Error(`unknown verb "${verb}"`);
      const r = handler({ sim, cfg, args, fail, reset: () => { sim = new Sim(cfg); return sim; } });
      if (r instanceof Sim) sim = r;
      transcript.push(`  node1 ${sim.describe('node1')} vip=${sim.node('node1').vip} | node2 ${sim.describe('node2')} vip=${sim.node('node2').vip}`);
    } catch (err) {
      failures.push(`${where}\n    ${(err as Error).message}`);
      break;
    }
  }
  for (const v of sim.violations) failures.push(`${file}: invariant violated: ${v}`);
  return { failures, transcript, sim };
}

interface Ctx {
  sim: Sim;
  cfg: SimConfig;
  args: string[];
  fail: (msg: string) => void;
  reset: () => Sim;
}

const admin = (verb: AdminVerb) => ({ sim, args }: Ctx) => {
  const fullsync = args.includes('fullsync');
  for (const n of args.filter((a) => a !== 'fullsync')) sim.admin(n, verb, fullsync);
};

const handlers: Record<string, (c: Ctx) => Sim | void> = {
  config: ({ cfg, args, reset }) => {
    for (const kv of args) {
      const [k, v] = kv.split('=') as [string, string];
      if (k === 'timeout') cfg.timeoutMs = parseSimDuration(v);
      else if (k === 'pulse') cfg.pulseMs = parseSimDuration(v);
      else if (k === 'syncdelta') cfg.syncdeltaMs = v === '0' ? 0 : parseSimDuration(v);
      else if (k === 'witness') cfg.witness = v === 'on';
      else if (k === 'failover') cfg.failover = v === 'on';
      else if (k === 'defaultprim') cfg.defaultprim = v;
      else if (k === 'resync') cfg.resyncMs = parseSimDuration(v);
      else throw new Error(`unknown config key ${k}`);
    }
    return reset();
  },
  boot: ({ sim, args }) => args.forEach((n) => sim.boot(n)),
  /** Bring the pair to the normal state: first node PRIM, second node SECOND (boot, start, prim, second). */
  form: ({ sim, args }) => {
    const [a, b] = args as [string, string];
    for (const n of [a, b]) if (!sim.node(n).alive) sim.boot(n);
    sim.admin(a, 'start');
    sim.admin(b, 'start');
    sim.run(sim.cfg.timeoutMs + 1000);
    sim.admin(a, 'prim');
    sim.run(2000);
    sim.admin(b, 'second');
    sim.run(2000 + sim.cfg.resyncMs);
    if (sim.describe(a) !== 'PRIM' || sim.describe(b) !== 'SECOND') {
      throw new Error(`form: expected ${a} PRIM and ${b} SECOND, got ${sim.describe(a)} and ${sim.describe(b)}`);
    }
  },
  'power-off': ({ sim, args }) => args.forEach((n) => sim.powerOff(n)),
  'kill-daemon': ({ sim, args }) => args.forEach((n) => sim.killDaemon(n)),
  start: admin('start'),
  stop: admin('stop'),
  forcestop: admin('forcestop'),
  restart: admin('restart'),
  swap: admin('swap'),
  prim: admin('prim'),
  second: admin('second'),
  cut: ({ sim, args }) => {
    const [lan, node] = args;
    const lans = lan === 'all' ? sim.cfg.lans : [lan!];
    for (const l of lans) for (const n of node ? [node] : sim.names) sim.cut.add(`${l}:${n}`);
  },
  heal: ({ sim }) => sim.cut.clear(),
  witness: ({ sim, args }) => { sim.node(args[0]!).witnessOk = args[1] === 'up'; },
  'fail-script': ({ sim, args }) => { sim.node(args[0]!).failScripts.add(args[1]!); },
  'fix-script': ({ sim, args }) => { sim.node(args[0]!).failScripts.delete(args[1]!); },
  run: ({ sim, args }) => sim.run(parseSimDuration(args[0]!)),
  expect: ({ sim, args, fail }) => {
    const [node, state, readiness] = args as [string, string, string | undefined];
    const n = sim.node(node);
    if (state === 'OFF') return void (n.alive && fail(`expected ${node} OFF`));
    const e = n.engine;
    if (!e) return fail(`expected ${node} ${state}, but it is powered off`);
    if (e.state !== state) return fail(`expected ${node} ${state}, got ${e.state}${e.waitReason ? ` (${e.waitReason})` : ''}`);
    const want = readiness ?? 'ready';
    if (want === 'ready' && !e.ready) fail(`expected ${node} ${state} ready, but it is transient`);
    if (want === 'transient' && e.ready) fail(`expected ${node} ${state} transient, but it is ready`);
  },
  'expect-vip': ({ sim, args, fail }) => {
    const holders = sim.names.filter((n) => sim.node(n).vip);
    const want = args[0] === 'none' ? [] : args[0] === 'both' ? sim.names : [args[0]!];
    if (holders.join() !== want.join()) fail(`expected VIP on ${want.join(' and ') || 'no node'}, held by ${holders.join(' and ') || 'no node'}`);
  },
  'expect-app': ({ sim, args, fail }) => {
    const runs = sim.names.filter((n) => sim.node(n).app);
    const want = args[0] === 'none' ? [] : args[0] === 'both' ? sim.names : [args[0]!];
    if (runs.join() !== want.join()) fail(`expected the application on ${want.join(' and ') || 'no node'}, runs on ${runs.join(' and ') || 'no node'}`);
  },
  'expect-wait': ({ sim, args, fail }) => {
    const e = sim.node(args[0]!).engine;
    if (e?.state !== 'WAIT' || e.waitReason !== args[1]) fail(`expected ${args[0]} WAIT (${args[1]}), got ${e?.state ?? 'OFF'} (${e?.waitReason ?? '-'})`);
  },
  'expect-reply': ({ sim, args, fail }) => {
    const [node, okText, ...words] = args as [string, string, ...string[]];
    const r = sim.node(node).replies.at(-1);
    if (!r) return fail(`no reply on ${node}`);
    if (r.ok !== (okText === 'ok')) fail(`expected ${okText} reply, got ${r.ok ? 'ok' : 'error'}: ${r.message}`);
    const text = words.join(' ');
    if (text && !r.message.includes(text)) fail(`reply "${r.message}" does not contain "${text}"`);
  },
  'expect-alarm': ({ sim, args, fail }) => {
    const e = sim.node(args[0]!).engine;
    if (!e?.alarms.some((a) => a.code === args[1])) fail(`expected alarm ${args[1]} on ${args[0]}; alarms: ${e?.alarms.map((a) => a.code).join(', ') || 'none'}`);
  },
  'expect-no-alarm': ({ sim, args, fail }) => {
    const e = sim.node(args[0]!).engine;
    if (e?.alarms.some((a) => a.code === args[1])) fail(`unexpected alarm ${args[1]} on ${args[0]}`);
  },
  'expect-same-data': ({ sim, fail }) => {
    const [a, b] = sim.names.map((n) => sim.node(n).disk?.gen);
    if (!a || !b || a.n !== b.n || a.node !== b.node) fail(`expected the same generation, got ${JSON.stringify(a)} and ${JSON.stringify(b)}`);
  },
};
