/**
 * Scenario scripts (test/scenarios/*.txt for the simulator, test/lab/scenarios/*.txt for the real lab), read like
 * the seeds: one verb per line, one handler per verb, run against a ScenarioTarget.
 *
 *   config timeout=5s pulse=500ms syncdelta=10m witness=on failover=off defaultprim=node1 resync=5s
 *   form node1 node2           boot, start both, prim node1, second node2: the normal PRIM/SECOND pair
 *   boot node1 node2           power-on (daemon start; modules wanted running start again); after
 *                              kill-daemon: the daemon alone starts again (it reattaches)
 *   power-off node1            pull the plug: RAM, VIP and application lost, disk kept
 *   kill-daemon node1          only the daemon dies; application and VIP stay
 *   start|stop|forcestop|restart|swap node1
 *   prim node1 [fullsync]      second node2 [fullsync]
 *   cut default [node1]        cut a LAN (for one node, or all); `cut all [node]` cuts every LAN
 *   heal                       every link back
 *   witness node1 down|up      can node1 reach the split-brain witness
 *   fail-script node1 start_prim   /   fix-script node1 start_prim
 *   run 6s                     let time pass
 *   at 33110ms                 let time pass until the scenario's clock reads that (no-op if it is later already)
 *   checker proc.app prim restart errd   (simulator, before boot) a checker and its default rule: resource, when,
 *                              action, and `errd` for a process (acts at once) or nothing for a checker (handle time)
 *   rule r1: if (ping.gw == down && remote.ping.gw == up) then stopstart();   (simulator, before boot)
 *   report node1 ping.router down        (simulator) a checker's report
 *   kill-app node1             (simulator) the application's process dies; errd sees it if proc.app is monitored
 *   copy-behind node2          (simulator) the SECOND could not apply a change it acknowledged on receipt
 *   expect-resource node1 proc.app up
 *   resetloop|errd-on|errd-off|checker-on|checker-off|failover-on|failover-off node1
 *   writes on|off              (simulator) the model application writes every 100 ms on the node that runs it
 *   expect-no-lost-writes      (simulator) every acknowledged write is on the node running the application (or in a
 *                              split-brain quarantine), and the other node's copy is identical when it is SECOND
 *   expect node1 PRIM [ready|transient]      expect node1 OFF
 *   expect-vip node1|none|both      expect-app node1|none|both      expect-wait node1 REASON
 *   expect-reply node1 ok|error [text…]      expect-alarm node1 CODE      expect-no-alarm node1 CODE
 *   expect-same-data           both nodes on the same generation
 */
import type { CheckWhen } from '../config/types.js';
import type { AdminVerb } from '../engine/mirror/types.js';
import type { ResourceState, RuleAction } from '../engine/rules/types.js';
import type { NodeObservation, Reply, ScenarioTarget } from './target.js';

export interface ScenarioResult {
  failures: string[];
  transcript: string[];
}

/** How long an expectation may take to come true on a target whose clock runs (the lab). */
export const EXPECT_WITHIN_MS = 8000;

export function parseSimDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(text);
  if (!m) throw new Error(`bad duration "${text}" (use 500ms, 5s, 10m, 1h)`);
  const mult = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h'];
  return Math.round(Number(m[1]) * mult);
}

export async function runScenario(target: ScenarioTarget, text: string, file = 'scenario'): Promise<ScenarioResult> {
  const failures: string[] = [];
  const transcript: string[] = [];
  const replies = new Map<string, Reply>();
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.replace(/#.*$/, '').trim();
    if (!raw) continue;
    const [verb, ...args] = raw.split(/\s+/) as [string, ...string[]];
    const where = `${file}:${i + 1}: ${raw}`;
    let failed = false;
    const fail = async (msg: string) => {
      failed = true;
      failures.push(`${where}\n    ${msg}\n    ${await target.describe()}`);
    };
    transcript.push(`> ${raw}`);
    try {
      const handler = handlers[verb];
      if (!handler) throw new Error(`unknown verb "${verb}"`);
      await handler({ t: target, args, fail, replies });
    } catch (err) {
      failures.push(`${where}\n    ${(err as Error).message}`);
      break;
    }
    if (failed) break; // later lines assume this one held
  }
  for (const v of target.violations()) failures.push(`${file}: invariant violated: ${v}`);
  return { failures, transcript };
}

interface Ctx {
  t: ScenarioTarget;
  args: string[];
  fail: (msg: string) => Promise<void>;
  replies: Map<string, Reply>;
}

const admin = (verb: AdminVerb) => async ({ t, args, replies }: Ctx) => {
  const fullsync = args.includes('fullsync');
  for (const n of args.filter((a) => a !== 'fullsync')) replies.set(n, await t.admin(n, verb, fullsync));
};

const describeObs = (o: NodeObservation) =>
  o.up ? `${o.state}${o.ready ? '' : ' (transient)'}${o.waitReason ? ` [${o.waitReason}]` : ''}` : 'OFF';

/** True once `cond` holds: polled on a running clock, or after moving a frozen one forward by `ms`. */
async function waitUntil(t: ScenarioTarget, ms: number, cond: () => Promise<boolean>): Promise<boolean> {
  if (await t.eventually(ms, cond)) return true;
  await t.run(ms);
  return cond();
}

/** Wait for `cond` on the target; on failure report what was seen last. */
async function expectThat(c: Ctx, cond: () => Promise<boolean>, failure: () => Promise<string>) {
  if (!(await c.t.eventually(EXPECT_WITHIN_MS, cond))) await c.fail(await failure());
}

function simCheckers(t: ScenarioTarget) {
  const c = t.checkers();
  if (!c) throw new Error('this target takes its checkers from the module configuration: checker verbs run in the simulator only');
  return c;
}

function modelWrites(t: ScenarioTarget) {
  const w = t.writes();
  if (!w) throw new Error('this target has no model application: write verbs run in the simulator only (the lab tests durability with test/lab/appender.test.ts)');
  return w;
}

const whoList = (t: ScenarioTarget, arg: string) => (arg === 'none' ? [] : arg === 'both' ? [...t.nodes] : [arg]);

const handlers: Record<string, (c: Ctx) => Promise<void>> = {
  config: async ({ t, args }) => {
    const settings: Record<string, string> = {};
    for (const kv of args) {
      const [k, v] = kv.split('=');
      if (!k || v === undefined) throw new Error(`config takes key=value pairs, got "${kv}"`);
      settings[k] = v;
    }
    await t.configure(settings);
  },
  form: async ({ t, args }) => {
    const [a, b] = args as [string, string];
    for (const n of [a, b]) if (!(await t.observe(n)).up) await t.boot(n);
    await t.admin(a, 'start', false);
    await t.admin(b, 'start', false);
    const obs = async () => [await t.observe(a), await t.observe(b)] as const;
    if (!(await waitUntil(t, 8000, async () => (await obs()).every((o) => o.state === 'WAIT' && o.ready)))) {
      throw new Error(`form: both nodes should WAIT after start; ${await t.describe()}`);
    }
    await t.admin(a, 'prim', false);
    if (!(await waitUntil(t, 3000, async () => (await t.observe(a)).state === 'ALONE'))) {
      throw new Error(`form: ${a} should go ALONE after prim; ${await t.describe()}`);
    }
    await t.admin(b, 'second', false);
    const paired = async () => {
      const [x, y] = await obs();
      return x.state === 'PRIM' && !!x.ready && y.state === 'SECOND' && !!y.ready;
    };
    if (!(await waitUntil(t, 15_000, paired))) throw new Error(`form: expected ${a} PRIM and ${b} SECOND; ${await t.describe()}`);
  },
  boot: async ({ t, args }) => { for (const n of args) await t.boot(n); },
  'power-off': async ({ t, args }) => { for (const n of args) await t.powerOff(n); },
  'kill-daemon': async ({ t, args }) => { for (const n of args) await t.killDaemon(n); },
  start: admin('start'),
  stop: admin('stop'),
  forcestop: admin('forcestop'),
  restart: admin('restart'),
  swap: admin('swap'),
  prim: admin('prim'),
  second: admin('second'),
  cut: async ({ t, args }) => {
    const [lan, node] = args;
    for (const l of lan === 'all' ? t.lans() : [lan!]) await t.cut(l, node);
  },
  heal: async ({ t }) => t.heal(),
  witness: async ({ t, args }) => t.witness(args[0]!, args[1] === 'up'),
  'fail-script': async ({ t, args }) => t.failScript(args[0]!, args[1]!, true),
  'fix-script': async ({ t, args }) => t.failScript(args[0]!, args[1]!, false),
  run: async ({ t, args }) => t.run(parseSimDuration(args[0]!)),
  at: async ({ t, args }) => {
    const wait = parseSimDuration(args[0]!) - t.elapsedMs();
    if (wait > 0) await t.run(wait);
  },
  checker: async ({ t, args }) => {
    const [resource, when, action, by] = args as [string, CheckWhen, RuleAction | 'noaction', string | undefined];
    simCheckers(t).add(resource, when, action, by === 'errd' ? 'errd' : 'checker');
  },
  report: async ({ t, args }) => simCheckers(t).report(args[0]!, args[1]!, args[2] as ResourceState),
  rule: async ({ t, args }) => simCheckers(t).rule(args.join(' ')),
  'kill-app': async ({ t, args }) => { for (const n of args) simCheckers(t).killApp(n); },
  'copy-behind': async ({ t, args }) => { for (const n of args) simCheckers(t).copyBehind(n); },
  'expect-resource': async (c) => {
    const [node, resource, state] = c.args as [string, string, string];
    let got: string | null = null;
    await expectThat(c, async () => (got = simCheckers(c.t).resource(node, resource)) === state,
      async () => `expected ${resource} ${state} on ${node}, got ${got ?? 'no such resource'}`);
  },
  resetloop: admin('resetloop'),
  'errd-on': admin('errd-on'),
  'errd-off': admin('errd-off'),
  'checker-on': admin('checker-on'),
  'checker-off': admin('checker-off'),
  'failover-on': admin('failover-on'),
  'failover-off': admin('failover-off'),
  writes: async ({ t, args }) => {
    if (args[0] !== 'on' && args[0] !== 'off') throw new Error('writes takes on or off');
    modelWrites(t).enable(args[0] === 'on');
  },
  'expect-no-lost-writes': async (c) => {
    const w = modelWrites(c.t);
    const obs = await Promise.all(c.t.nodes.map(async (n) => [n, await c.t.observe(n)] as const));
    const prim = obs.find(([, o]) => o.state === 'ALONE' || o.state === 'PRIM');
    if (!prim) return c.fail('no node runs the application, so no copy holds the writes for sure');
    const lost = w.lost(prim[0]);
    if (lost.length) return c.fail(`${lost.length} acknowledged write(s) lost on ${prim[0]}: ${lost.slice(0, 8).join(', ')}${lost.length > 8 ? ', …' : ''}`);
    for (const [n, o] of obs) {
      if (n === prim[0] || o.state !== 'SECOND' || !o.ready) continue;
      const [a, b] = [w.held(prim[0]).sort().join(), w.held(n).sort().join()];
      if (a !== b) await c.fail(`the copies of ${prim[0]} and ${n} differ (${w.held(prim[0]).length} and ${w.held(n).length} writes)`);
    }
  },
  expect: async (c) => {
    const [node, state, readiness] = c.args as [string, string, string | undefined];
    const want = readiness ?? 'ready';
    let last: NodeObservation = { up: false };
    await expectThat(c, async () => {
      last = await c.t.observe(node);
      if (state === 'OFF') return !last.up;
      return last.up && last.state === state && (want === 'any' || (want === 'ready') === last.ready);
    }, async () => `expected ${node} ${state}${state === 'OFF' ? '' : ` ${want}`}, got ${describeObs(last)}`);
  },
  'expect-wait': async (c) => {
    const [node, reason] = c.args as [string, string];
    let last: NodeObservation = { up: false };
    await expectThat(c, async () => {
      last = await c.t.observe(node);
      return last.state === 'WAIT' && last.waitReason === reason;
    }, async () => `expected ${node} WAIT [${reason}], got ${describeObs(last)}`);
  },
  'expect-vip': async (c) => {
    const want = whoList(c.t, c.args[0]!).join();
    let got = '';
    await expectThat(c, async () => (got = (await c.t.vipHolders()).join()) === want,
      async () => `expected the VIP on ${want || 'no node'}, held by ${got || 'no node'}`);
  },
  'expect-app': async (c) => {
    const want = whoList(c.t, c.args[0]!).join();
    let got = '';
    await expectThat(c, async () => (got = (await c.t.appNodes()).join()) === want,
      async () => `expected the application on ${want || 'no node'}, runs on ${got || 'no node'}`);
  },
  'expect-reply': async ({ args, replies, fail }) => {
    const [node, okText, ...words] = args as [string, string, ...string[]];
    const r = replies.get(node);
    if (!r) return fail(`no reply on ${node}`);
    if (r.ok !== (okText === 'ok')) return fail(`expected ${okText} reply, got ${r.ok ? 'ok' : 'error'}: ${r.message}`);
    const text = words.join(' ');
    if (text && !r.message.includes(text)) await fail(`reply "${r.message}" does not contain "${text}"`);
  },
  'expect-alarm': async (c) => {
    const [node, code] = c.args as [string, string];
    let got: string[] = [];
    await expectThat(c, async () => (got = (await c.t.observe(node)).alarms ?? []).includes(code),
      async () => `expected alarm ${code} on ${node}; alarms: ${got.join(', ') || 'none'}`);
  },
  'expect-no-alarm': async (c) => {
    const [node, code] = c.args as [string, string];
    await expectThat(c, async () => !((await c.t.observe(node)).alarms ?? []).includes(code), async () => `unexpected alarm ${code} on ${node}`);
  },
  'expect-same-data': async (c) => {
    let got = '';
    await expectThat(c, async () => {
      const gens = await Promise.all(c.t.nodes.map(async (n) => (await c.t.observe(n)).generation ?? null));
      got = gens.join(' and ');
      return gens.every((g) => g !== null && g === gens[0]);
    }, async () => `expected the same generation on every node, got ${got}`);
  },
};
