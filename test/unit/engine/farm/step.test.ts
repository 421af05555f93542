import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { bucketOwners, BUCKETS } from '../../../../src/engine/farm/buckets.js';
import { beacon, initialState, members, ownedNow, serving, step } from '../../../../src/engine/farm/step.js';
import type { FarmAction, FarmEngineConfig, FarmEvent, FarmState, FarmStep } from '../../../../src/engine/farm/types.js';
import type { Rule } from '../../../../src/engine/rules/types.js';

const HOSTS = [{ name: 'n1', power: 1 }, { name: 'n2', power: 1 }, { name: 'n3', power: 2 }];
const waitOnPing: Rule = {
  label: 'p_router', source: 'default', holdMs: null, line: 0, column: 0, action: 'wait',
  expr: { kind: 'cmp', ref: { side: 'local', cls: 'ping', ident: 'router' }, op: '==', state: 'down' },
};
const restartOnTcp: Rule = {
  label: 't_web', source: 'default', holdMs: 0, line: 0, column: 0, action: 'restart',
  expr: { kind: 'cmp', ref: { side: 'local', cls: 'tcp', ident: 'web' }, op: '==', state: 'down' },
};

function config(over: Partial<FarmEngineConfig> = {}): FarmEngineConfig {
  return {
    pulseMs: 200, timeoutMs: 1000, lans: ['default'], groups: [{ name: 'web', hosts: HOSTS }], hasVip: true,
    rules: [waitOnPing, restartOnTcp], handleTimeMs: 500, maxloop: 2, loopIntervalMs: 60_000,
    monitored: [{ resource: 'ping.router', when: 'pre' }, { resource: 'tcp.web', when: 'prim' }], configHash: 'c1', ...over,
  };
}

interface Node {
  s: FarmState;
  /** the buckets its filter accepts: what the last `filter` action set (null: no filter action yet) */
  filter: Record<string, number[]> | null;
  /** plans the driver runs: answered by `finish` */
  plans: { id: number; steps: FarmStep[] }[];
  actions: FarmAction[];
  down: boolean;
  failNext: boolean;
}

/** Three farm engines wired through perfect heartbeats; plans complete when `settle` says so. */
class Farm {
  nodes = new Map<string, Node>();
  mono = 0;
  constructor(cfgs: Record<string, FarmEngineConfig> = {}) {
    for (const h of HOSTS) {
      this.nodes.set(h.name, { s: initialState({ module: 'web', self: h.name, cfg: cfgs[h.name] ?? config() }), filter: null, plans: [], actions: [], down: false, failNext: false });
    }
  }
  node(n: string): Node { return this.nodes.get(n)!; }
  feed(n: string, e: FarmEvent): FarmAction[] {
    const x = this.node(n);
    const r = step(x.s, e);
    x.s = r.state;
    x.actions.push(...r.actions);
    for (const a of r.actions) {
      if (a.kind === 'filter') x.filter = a.owned;
      if (a.kind === 'execute') x.plans.push({ id: a.id, steps: a.steps });
    }
    this.checkNoDoubleOwner();
    // the buckets kept from an earlier step (same ownershipInputs) are the ones a full recomputation gives
    assert.equal(x.s.owned, ownedNow(x.s), `${n}: owned after ${e.kind} is stale`);
    return r.actions;
  }
  admin(n: string, verb: string) {
    const r = this.feed(n, { kind: 'admin', reqId: 1, verb });
    return r.find((a) => a.kind === 'reply') as Extract<FarmAction, { kind: 'reply' }>;
  }
  /** one pulse: time passes, every live node beacons to every other live node, running plans finish */
  pulse(finishPlans = true) {
    this.mono += 200;
    for (const [n, x] of this.nodes) if (!x.down) this.feed(n, { kind: 'tick', mono: this.mono });
    for (const [from, x] of this.nodes) {
      if (x.down) continue;
      const b = beacon(x.s);
      for (const [to, y] of this.nodes) if (to !== from && !y.down) this.feed(to, { kind: 'heartbeat', mono: this.mono, lan: 'default', from, beacon: b });
    }
    if (!finishPlans) return;
    for (const [n, x] of this.nodes) {
      if (x.down) continue;
      for (const p of x.plans.splice(0)) {
        const fail = x.failNext;
        x.failNext = false;
        this.feed(n, { kind: 'plan-done', id: p.id, ok: !fail, ...(fail ? { error: 'script start_both exited with 1' } : {}) });
      }
    }
  }
  run(pulses: number) { for (let i = 0; i < pulses; i++) this.pulse(); }
  /** power-off: the node neither beacons nor hears; its filter is gone with it */
  powerOff(n: string) {
    const x = this.node(n);
    x.down = true;
    x.filter = null;
    x.plans = [];
  }
  boot(n: string, run: boolean) {
    const x = this.node(n);
    x.down = false;
    x.s = initialState({ module: 'web', self: n, cfg: x.s.cfg });
    x.filter = null;
    this.feed(n, { kind: 'boot', mono: this.mono, run });
  }
  owner(b: number): string[] {
    return [...this.nodes].filter(([, x]) => !x.down && (x.filter?.web ?? []).includes(b)).map(([n]) => n);
  }
  checkNoDoubleOwner() {
    for (let b = 0; b < BUCKETS; b++) {
      const o = this.owner(b);
      if (o.length > 1) throw new Error(`bucket ${b} accepted by ${o.join(' and ')}`);
    }
  }
  assignment(): (string | null)[] {
    return Array.from({ length: BUCKETS }, (_, b) => this.owner(b)[0] ?? null);
  }
}

function startAll(f: Farm) {
  for (const n of ['n1', 'n2', 'n3']) assert.is(f.admin(n, 'start').ok, true);
  f.run(4);
}

test('three nodes started: all UP ready, every bucket accepted by exactly the node bucketOwners names', () => {
  const f = new Farm();
  startAll(f);
  for (const n of ['n1', 'n2', 'n3']) {
    assert.is(f.node(n).s.state, 'UP');
    assert.ok(serving(f.node(n).s), n);
    assert.equal(members(f.node(n).s), ['n1', 'n2', 'n3']);
  }
  assert.equal(f.assignment(), bucketOwners(HOSTS));
  const plan = f.node('n1').actions.find((a) => a.kind === 'execute') as Extract<FarmAction, { kind: 'execute' }>;
  assert.equal(plan.steps.map((s) => s.kind === 'script' ? s.script : s.kind), ['prestart', 'filter-install', 'acquire-vips', 'start_both']);
  assert.ok(f.node('n1').actions.some((a) => a.kind === 'persist' && a.run), 'start is persisted');
});

test('a power-off: after the timeout the others take exactly its buckets and keep their own; back, it gets them again', () => {
  const f = new Farm();
  startAll(f);
  const before = f.assignment();
  f.powerOff('n3');
  f.run(2); // within the timeout: its clients are not served (nobody owns its buckets), nobody else's move
  assert.equal(f.assignment(), before.map((o) => (o === 'n3' ? null : o)));
  f.run(5);
  const after = f.assignment();
  for (let b = 0; b < BUCKETS; b++) {
    if (before[b] === 'n3') assert.ok(after[b] === 'n1' || after[b] === 'n2', `bucket ${b}: ${after[b]}`);
    else assert.is(after[b], before[b], `bucket ${b} moved from ${before[b]} to ${after[b]}`);
  }
  assert.equal(after, bucketOwners(HOSTS.filter((h) => h.name !== 'n3')));
  assert.ok(f.node('n1').actions.some((a) => a.kind === 'log' && /n3 is no longer heard/.test(a.msg)));
  f.boot('n3', true); // the start was persisted: the node starts again at boot
  f.run(6);
  assert.equal(f.assignment(), before);
});

test('admin stop: the node empties its buckets before stop_both runs; the others take them; stop is persisted', () => {
  const f = new Farm();
  startAll(f);
  f.node('n2').actions.length = 0;
  const r = f.admin('n2', 'stop');
  assert.is(r.ok, true);
  const acts = f.node('n2').actions;
  const fi = acts.findIndex((a) => a.kind === 'filter');
  const ex = acts.findIndex((a) => a.kind === 'execute');
  assert.ok(fi >= 0 && fi < ex, 'the filter is emptied first');
  assert.equal((acts[fi] as Extract<FarmAction, { kind: 'filter' }>).owned, {});
  assert.equal((acts[ex] as Extract<FarmAction, { kind: 'execute' }>).steps.map((s) => s.kind === 'script' ? s.script : s.kind),
    ['stop_both', 'release-vips', 'filter-remove', 'poststop']);
  assert.ok(acts.some((a) => a.kind === 'persist' && !a.run));
  f.run(3);
  assert.is(f.node('n2').s.state, 'STOP');
  assert.equal(f.assignment(), bucketOwners(HOSTS.filter((h) => h.name !== 'n2')));
});

test('a checker whose rule says wait: the node gives up its buckets (WAIT) and takes them back once it is up again', () => {
  const f = new Farm();
  startAll(f);
  const before = f.assignment();
  f.feed('n1', { kind: 'resource', name: 'ping.router', state: 'up' });
  f.feed('n1', { kind: 'resource', name: 'ping.router', state: 'down', detail: 'no answer' });
  f.run(1);
  assert.is(f.node('n1').s.state, 'UP', 'not before handle_time');
  f.run(3);
  assert.is(f.node('n1').s.state, 'WAIT');
  assert.match(f.node('n1').s.waitReason ?? '', /p_router \(ping.router=down\)/);
  assert.equal(f.assignment(), bucketOwners(HOSTS.filter((h) => h.name !== 'n1')));
  f.feed('n1', { kind: 'resource', name: 'ping.router', state: 'up' });
  f.run(4);
  assert.is(f.node('n1').s.state, 'UP');
  assert.equal(f.assignment(), before);
  const plans = f.node('n1').actions.filter((a) => a.kind === 'execute') as Extract<FarmAction, { kind: 'execute' }>[];
  assert.equal(plans.at(-2)!.steps.map((s) => s.kind === 'script' ? s.script : s.kind), ['stop_both', 'release-vips'], 'WAIT keeps the (empty) filter');
  assert.equal(plans.at(-1)!.steps.map((s) => s.kind === 'script' ? s.script : s.kind), ['acquire-vips', 'start_both']);
});

test('restart rule: the application restarts in place (the node leaves the members meanwhile); past maxloop it stops', () => {
  const f = new Farm();
  startAll(f);
  for (let i = 0; i < 2; i++) {
    f.feed('n3', { kind: 'resource', name: 'tcp.web', state: 'down' });
    f.pulse(false);
    assert.is(f.node('n3').s.pending?.purpose.kind, 'restart');
    assert.equal(f.node('n3').filter, {}, 'no buckets while restarting');
    f.run(2);
    assert.ok(serving(f.node('n3').s));
    f.feed('n3', { kind: 'resource', name: 'tcp.web', state: 'up' });
  }
  f.feed('n3', { kind: 'resource', name: 'tcp.web', state: 'down' });
  f.run(3);
  assert.is(f.node('n3').s.state, 'STOP');
  assert.is(f.node('n3').s.run, false);
  assert.ok(f.node('n3').actions.some((a) => a.kind === 'log' && a.level === 'error' && /restarted 2 times within loop_interval \(maxloop 2\)/.test(a.msg)));
});

test('start_both fails: the node stops (best effort) and stays stopped; the others serve everything', () => {
  const f = new Farm();
  f.node('n2').failNext = true;
  startAll(f);
  f.run(2);
  assert.is(f.node('n2').s.state, 'STOP');
  assert.is(f.node('n2').s.run, false);
  assert.ok(f.node('n2').actions.some((a) => a.kind === 'log' && a.level === 'error' && /start failed on n2: script start_both exited with 1/.test(a.msg)));
  assert.equal(f.assignment(), bucketOwners(HOSTS.filter((h) => h.name !== 'n2')));
});

test('mirror verbs and unknown verbs are refused with what to use instead', () => {
  const f = new Farm();
  for (const v of ['prim', 'second', 'swap']) assert.match(f.admin('n1', v).message, /farm module: every node runs it, there is no primary/);
  assert.match(f.admin('n1', 'dance').message, /not a command for the farm module web/);
  assert.is(f.admin('n1', 'restart').ok, false, 'restart needs UP');
});

test('nodes with different configurations never serve side by side: the one whose fingerprint sorts last gives way', () => {
  const f = new Farm({ n3: config({ configHash: 'c2' }) });
  startAll(f);
  assert.equal(members(f.node('n1').s), ['n1', 'n2']);
  assert.equal(f.assignment(), bucketOwners(HOSTS.filter((h) => h.name !== 'n3')), 'n3 (c2 > c1) serves nothing');
  assert.ok(f.node('n1').actions.some((a) => a.kind === 'log' && /n3 runs web with another configuration/.test(a.msg)));
  f.powerOff('n1');
  f.powerOff('n2');
  f.run(7);
  assert.equal(f.assignment(), bucketOwners([{ name: 'n3', power: 2 }]), 'alone, it serves every bucket');
});

test('two nodes ready in the same pulse: neither takes a bucket until each counts the other (never a bucket twice)', () => {
  const f = new Farm();
  f.admin('n1', 'start');
  f.admin('n2', 'start');
  f.run(6); // the harness throws as soon as any bucket is accepted by two nodes
  assert.equal(f.assignment(), bucketOwners(HOSTS.filter((h) => h.name !== 'n3')));
});

test.run();
