/**
 * The farm engine: one farm module on one node. Pure `step(state, event) → {state, actions}`; the driver feeds it
 * events one at a time and applies the actions in order (src/daemon/farm-driver.ts).
 *
 * States: STOP (not running here), WAIT (the rules said wait: the application is stopped until they no longer do),
 * UP (the application runs, this node holds the VIPs). Each is transient while a plan runs, ready once settled.
 *
 * Membership has no leader: every node beacons to every other node of the cluster each pulse; a peer counts while
 * one of its beacons arrived within `timeoutMs` on some LAN of the module. The serving members are the ready UP
 * nodes (this one included when it is); each group's buckets are owned among them by `bucketOwners` (buckets.ts).
 * A node's filter accepts the buckets it owns among ITS members once every peer it hears counts it too (`holdBack`):
 * while views differ a bucket has no owner, never two. A node with another farm configuration (configHash) is not
 * counted, and the side whose fingerprint sorts last serves nothing while it hears the other.
 *
 * Plans: start = prestart, filter-install (nothing accepted yet), acquire-vips, start_both → UP ready, then the
 * buckets are set. stop = the buckets are emptied first (an action before the plan), then stop_both, release-vips,
 * filter-remove, poststop. restart = buckets emptied, stop_both, start_both.
 */
import { evaluate } from '../rules/evaluate.js';
import { hold } from '../rules/hold.js';
import type { ResourceState } from '../rules/types.js';
import { activeIn, type MonitorPhase } from '../mirror/health.js';
import { bucketOwners, BUCKETS, type Member } from './buckets.js';
import type {
  FarmAction, FarmBeacon, FarmEngineConfig, FarmEvent, FarmPurpose, FarmState, FarmStep, FarmStepResult,
} from './types.js';

export function initialState(o: { module: string; self: string; cfg: FarmEngineConfig }): FarmState {
  return {
    module: o.module, self: o.self, cfg: o.cfg, state: 'STOP', ready: true, run: false, waitReason: null, peers: {},
    owned: {}, ownedFrom: null, pending: null, resources: {}, hold: null, loops: [], nextId: 1, mono: 0, phase: 'off',
  };
}

class Tx {
  readonly actions: FarmAction[] = [];
  constructor(public s: FarmState) {}
  log(level: 'info' | 'warn' | 'error', msg: string) {
    this.actions.push({ kind: 'log', level, msg });
  }
}

export function step(prev: FarmState, e: FarmEvent): FarmStepResult {
  const t = new Tx({ ...prev });
  const { s } = t;
  if ('mono' in e) s.mono = Math.max(s.mono, e.mono);
  switch (e.kind) {
    case 'boot':
      s.run = e.run;
      if (e.run && e.reattach) {
        s.state = 'UP';
        s.ready = true;
        t.log('info', `${s.module} is UP on ${s.self} (reattached after a daemon restart)`);
      } else if (e.run) t.log('info', `${s.module} was started on ${s.self} before this boot: it starts again`);
      break;
    case 'tick':
      break;
    case 'heartbeat': onHeartbeat(t, e.from, e.lan, e.beacon);
      break;
    case 'admin': onAdmin(t, e.reqId, e.verb);
      break;
    case 'plan-done': onPlanDone(t, e.id, e.ok, e.error);
      break;
    case 'resource': onResource(t, e.name, e.state, e.detail ?? '');
      break;
  }
  expirePeers(t, prev);
  applyRules(t);
  decide(t);
  setBuckets(t);
  announceMonitoring(t);
  return { state: s, actions: t.actions };
}

/** What this node announces now. */
export function beacon(s: FarmState): FarmBeacon {
  return { kind: 'farm', module: s.module, state: s.state, ready: s.ready, members: members(s), configHash: s.cfg.configHash };
}

/** A ready UP node that runs no plan: it serves its buckets. */
export function serving(s: Pick<FarmState, 'state' | 'ready' | 'pending'>): boolean {
  return s.state === 'UP' && s.ready && s.pending === null;
}

/** The serving nodes as this node sees them, sorted (itself included when it serves). */
export function members(s: FarmState): string[] {
  const out = Object.entries(s.peers).filter(([, p]) => servingBeacon(s, p.beacon)).map(([n]) => n);
  if (serving(s)) out.push(s.self);
  return out.sort();
}

/** The peers heard within the timeout, sorted. */
export function alivePeers(s: FarmState): string[] {
  return Object.keys(s.peers).sort();
}

function servingBeacon(s: FarmState, b: FarmBeacon): boolean {
  return b.state === 'UP' && b.ready && b.configHash === s.cfg.configHash;
}

/**
 * Why this node accepts no bucket although it serves, or null. It waits for
 *   - every peer it hears with the same configuration to count it (the peer's beacon lists it among its members):
 *     two nodes count each other before either takes a bucket, so two views that differ never both claim one (with
 *     rendezvous ownership a bucket can be claimed twice only by two nodes of which one does not count the other);
 *   - no peer it hears to run another configuration whose fingerprint sorts first: nodes with different farm
 *     configurations never serve side by side (during a rolling reconfiguration one side serves, then the other).
 */
export function holdBack(s: FarmState): string | null {
  for (const [name, p] of Object.entries(s.peers).sort(([a], [b]) => a.localeCompare(b))) {
    if (p.beacon.configHash !== s.cfg.configHash) {
      if (p.beacon.configHash < s.cfg.configHash) return `${name} runs another configuration of ${s.module}`;
      continue;
    }
    if (!p.beacon.members.includes(s.self)) return `${name} does not count ${s.self} yet`;
  }
  return null;
}

/** The buckets this node should accept now, per group (see the file comment); empty when it does not serve. */
export function ownedNow(s: FarmState): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  if (!serving(s) || holdBack(s) !== null) return out;
  const mine = members(s);
  for (const g of s.cfg.groups) {
    const inGroup = (names: readonly string[]): Member[] => g.hosts.filter((h) => names.includes(h.name));
    const owners = bucketOwners(inGroup(mine));
    // the buckets a serving peer claims by its own view (never one of ours once both count each other: a safeguard)
    const claimed = new Set<number>();
    for (const [name, p] of Object.entries(s.peers)) {
      if (!servingBeacon(s, p.beacon)) continue;
      bucketOwners(inGroup(p.beacon.members)).forEach((o, b) => { if (o === name) claimed.add(b); });
    }
    const owned: number[] = [];
    for (let b = 0; b < BUCKETS; b++) if (owners[b] === s.self && !claimed.has(b)) owned.push(b);
    out[g.name] = owned;
  }
  return out;
}

/** Buckets owned by each serving node, per group, as this node computes them from its members (for status). */
export function shareView(s: FarmState): Record<string, Record<string, number>> {
  const out: Record<string, Record<string, number>> = {};
  const mine = members(s);
  for (const g of s.cfg.groups) {
    const counts: Record<string, number> = {};
    for (const h of g.hosts) counts[h.name] = 0;
    for (const o of bucketOwners(g.hosts.filter((h) => mine.includes(h.name)))) if (o !== null) counts[o]!++;
    out[g.name] = counts;
  }
  return out;
}

function onHeartbeat(t: Tx, from: string, lan: string, b: FarmBeacon) {
  const { s } = t;
  if (from === s.self || !s.cfg.lans.includes(lan)) return;
  const prev = s.peers[from];
  if (!prev) t.log('info', `${from} is heard (${b.state}${b.ready ? '' : ', transient'})`);
  else if (prev.beacon.state !== b.state || prev.beacon.ready !== b.ready) t.log('info', `${from}: ${prev.beacon.state} → ${b.state}${b.ready ? '' : ' (transient)'}`);
  if (b.configHash !== s.cfg.configHash && prev?.beacon.configHash !== b.configHash) {
    t.log('warn', `${from} runs ${s.module} with another configuration: it shares no buckets with this node until both run the same userconfig.xml (tandem config -m ${s.module} on each node)`);
  }
  s.peers = { ...s.peers, [from]: { heard: { ...prev?.heard, [lan]: s.mono }, beacon: b } };
}

function expirePeers(t: Tx, prev: FarmState) {
  const { s } = t;
  let peers: FarmState['peers'] | null = null;
  for (const [name, p] of Object.entries(s.peers)) {
    const last = Math.max(...Object.values(p.heard));
    if (s.mono - last < s.cfg.timeoutMs) continue;
    peers ??= { ...s.peers };
    delete peers[name];
    if (prev.peers[name]) t.log('warn', `${name} is no longer heard (no heartbeat for ${s.cfg.timeoutMs} ms): its buckets go to the nodes left`);
  }
  if (peers) s.peers = peers;
}

function reply(t: Tx, reqId: number, ok: boolean, message: string) {
  t.actions.push({ kind: 'reply', reqId, ok, message });
}

function onAdmin(t: Tx, reqId: number, verb: string) {
  const { s } = t;
  switch (verb) {
    case 'start':
      if (s.run && s.state !== 'STOP') return reply(t, reqId, true, `${s.module} is already ${s.state} on ${s.self}`);
      if (s.pending) return reply(t, reqId, false, `${s.module} is busy on ${s.self} (${describe(s.pending.purpose)}); try again when it is ready`);
      persistRun(t, true);
      s.waitReason = null;
      s.loops = [];
      start(t);
      return reply(t, reqId, true, `${s.module} starting on ${s.self}`);
    case 'stop':
      persistRun(t, false);
      if (s.state === 'STOP' && !s.pending) return reply(t, reqId, true, `${s.module} is already stopped on ${s.self}`);
      if (s.pending?.purpose.kind === 'stop') {
        s.pending = { ...s.pending, purpose: { kind: 'stop', to: 'STOP' } };
        return reply(t, reqId, true, `${s.module} stopping on ${s.self}`);
      }
      if (s.pending) return reply(t, reqId, false, `${s.module} is busy on ${s.self} (${describe(s.pending.purpose)}); stop it when it is ready`);
      stop(t, 'STOP');
      return reply(t, reqId, true, `${s.module} stopping on ${s.self}: its clients go to the other nodes`);
    case 'restart':
      if (!serving(s)) return reply(t, reqId, false, `${s.module} is ${s.state}${s.ready ? '' : ' (transient)'} on ${s.self}: restart needs it UP and ready`);
      restart(t);
      return reply(t, reqId, true, `${s.module} restarting on ${s.self} (stop_both, start_both)`);
    case 'prim': case 'second': case 'swap':
      return reply(t, reqId, false, `${s.module} is a farm module: every node runs it, there is no primary. Use start, stop or restart.`);
    default:
      return reply(t, reqId, false, `"${verb}" is not a command for the farm module ${s.module} (start, stop, restart)`);
  }
}

function describe(p: FarmPurpose): string {
  return p.kind === 'start' ? 'starting' : p.kind === 'restart' ? 'restarting' : p.to === 'WAIT' ? 'stopping to wait' : 'stopping';
}

function persistRun(t: Tx, run: boolean) {
  if (t.s.run === run) return;
  t.s.run = run;
  t.actions.push({ kind: 'persist', run });
}

function execute(t: Tx, purpose: FarmPurpose, steps: FarmStep[], bestEffort: boolean) {
  const id = t.s.nextId++;
  t.s.pending = { id, purpose };
  t.s.ready = false;
  setBuckets(t); // a node that leaves empties its buckets before anything else of the plan runs
  t.actions.push({ kind: 'execute', id, steps, bestEffort });
}

function start(t: Tx) {
  const { s } = t;
  const from = s.state;
  s.state = 'UP';
  const args = (action: string) => [from, 'UP', action];
  const steps: FarmStep[] = [];
  if (from === 'STOP') steps.push({ kind: 'script', script: 'prestart', args: args('start') }, { kind: 'filter-install' });
  if (s.cfg.hasVip) steps.push({ kind: 'acquire-vips' });
  steps.push({ kind: 'script', script: 'start_both', args: args('start') });
  t.log('info', `${s.module}: ${from} → UP (starting)`);
  execute(t, { kind: 'start' }, steps, false);
}

/** To STOP: everything is left. To WAIT: the application and VIPs are left, the filter stays (accepting nothing). */
function stop(t: Tx, to: 'STOP' | 'WAIT') {
  const { s } = t;
  const from = s.state;
  const args = (force: boolean) => [...(force ? ['force'] : []), from, to, to === 'STOP' ? 'stop' : 'stopwait'];
  const steps: FarmStep[] = [];
  if (from === 'UP') steps.push({ kind: 'script', script: 'stop_both', args: args(false) });
  if (from === 'UP' && s.cfg.hasVip) steps.push({ kind: 'release-vips' });
  if (to === 'STOP') steps.push({ kind: 'filter-remove' }, { kind: 'script', script: 'poststop', args: args(false) });
  s.state = to;
  t.log('info', `${s.module}: ${from} → ${to} (stopping)`);
  execute(t, { kind: 'stop', to }, steps, true);
}

function restart(t: Tx) {
  const { s } = t;
  s.loops = [...s.loops, s.mono];
  t.log('info', `${s.module}: restarting the application on ${s.self} (stop_both, start_both)`);
  execute(t, { kind: 'restart' }, [
    { kind: 'script', script: 'stop_both', args: ['UP', 'UP', 'restart'] },
    { kind: 'script', script: 'start_both', args: ['UP', 'UP', 'restart'] },
  ], false);
}

function onPlanDone(t: Tx, id: number, ok: boolean, error: string | undefined) {
  const { s } = t;
  if (s.pending?.id !== id) return;
  const p = s.pending.purpose;
  s.pending = null;
  if (p.kind === 'stop') {
    s.ready = true;
    if (!ok) t.log('error', `${s.module}: stopping on ${s.self} did not go cleanly (${error}); it is ${s.state} — check \`tandem log -m ${s.module}\``);
    else t.log('info', `${s.module}: ${s.state}${p.to === 'WAIT' ? ` (${s.waitReason ?? 'waiting'})` : ''}`);
    return;
  }
  if (ok) {
    s.ready = true;
    t.log('info', `${s.module}: UP on ${s.self}`);
    return;
  }
  t.log('error', `${s.module}: ${p.kind === 'start' ? 'start' : 'restart'} failed on ${s.self}: ${error}. The module is stopped here (see \`tandem log -m ${s.module}\`), the other nodes serve its clients; fix it, then \`tandem start -m ${s.module}\``);
  persistRun(t, false);
  stop(t, 'STOP');
}

function onResource(t: Tx, name: string, state: ResourceState, detail: string) {
  const { s } = t;
  const m = s.cfg.monitored.find((x) => x.resource === name);
  if (m && !activeIn(m.when, s.phase)) return; // a late report from a checker that was stopped
  const prev = s.resources[name];
  if (prev?.state === state && prev.detail === detail) return;
  s.resources = { ...s.resources, [name]: { state, since: prev?.state === state ? prev.since : s.mono, detail } };
  if (prev?.state !== state) t.log(state === 'down' ? 'warn' : 'info', `resource ${name}: ${prev?.state ?? 'init'} → ${state}${detail ? ` (${detail})` : ''}`);
}

/** The rules decide on the local resources (a farm has no peer resources: remote refs read unknown). */
function applyRules(t: Tx) {
  const { s } = t;
  const evaluating = (serving(s) || (s.state === 'WAIT' && s.ready && s.pending === null)) && s.run;
  if (!evaluating) {
    s.hold = null;
    return;
  }
  const local = new Map(Object.entries(s.resources).map(([n, r]) => [n, r.state] as const));
  const decision = evaluate(s.cfg.rules, { local, remote: null });
  if (s.state === 'WAIT') {
    // leave WAIT once no rule says wait (or worse) any more
    if (!decision || decision.action === 'restart' || decision.action === 'swap') {
      t.log('info', `${s.module}: no rule says wait any more${s.waitReason ? ` (was: ${s.waitReason})` : ''}: starting again`);
      s.waitReason = null;
      s.hold = null;
      start(t);
    }
    return;
  }
  const r = hold(s.hold, decision, s.mono, s.cfg.handleTimeMs);
  s.hold = r.hold;
  const d = r.fire;
  if (!d) return;
  const why = `rule ${d.label} (${d.because.join(', ')})`;
  switch (d.action) {
    case 'wait':
      s.waitReason = why;
      t.log('warn', `${s.module}: ${why} → wait: this node gives up its clients until the rule no longer holds`);
      stop(t, 'WAIT');
      return;
    case 'stop':
      t.log('warn', `${s.module}: ${why} → stop`);
      persistRun(t, false);
      stop(t, 'STOP');
      return;
    case 'restart': case 'stopstart': {
      const recent = s.loops.filter((at) => s.mono - at < s.cfg.loopIntervalMs);
      s.loops = recent;
      if (recent.length >= s.cfg.maxloop) {
        t.log('error', `${s.module}: ${why} → ${d.action}, but the application was restarted ${recent.length} times within loop_interval (maxloop ${s.cfg.maxloop}): the module is stopped on ${s.self}. Fix it, then \`tandem start -m ${s.module}\``);
        persistRun(t, false);
        stop(t, 'STOP');
        return;
      }
      t.log('warn', `${s.module}: ${why} → ${d.action}`);
      restart(t);
      return;
    }
    case 'swap':
      t.log('warn', `${s.module}: ${why} → swap has no meaning for a farm module (no primary); ignored`);
      return;
  }
}

/** Starts the module when it should run and rests in STOP. */
function decide(t: Tx) {
  const { s } = t;
  if (s.run && s.state === 'STOP' && s.ready && !s.pending) start(t);
}

/**
 * Everything `ownedNow` reads besides the fixed configuration, as one string: whether this node serves, and each
 * peer's beacon (state, readiness, how its configuration compares, its members). Equal inputs, equal buckets.
 */
export function ownershipInputs(s: FarmState): string {
  if (!serving(s)) return '-';
  let k = 'S';
  for (const name of Object.keys(s.peers).sort()) {
    const b = s.peers[name]!.beacon;
    const cfg = b.configHash === s.cfg.configHash ? '=' : b.configHash < s.cfg.configHash ? '<' : '>';
    k += `|${name} ${b.state} ${b.ready ? 1 : 0} ${cfg} ${b.members.join(' ')}`;
  }
  return k;
}

/** Emits a `filter` action when the buckets this node should accept changed. */
function setBuckets(t: Tx) {
  const { s } = t;
  const from = ownershipInputs(s);
  if (from === s.ownedFrom) return;
  s.ownedFrom = from;
  const next = ownedNow(s);
  if (sameOwned(next, s.owned)) return;
  const before = countOf(s.owned);
  s.owned = next;
  t.actions.push({ kind: 'filter', owned: next });
  t.log('info', `${s.module}: ${s.self} serves ${countOf(next)} of ${BUCKETS * s.cfg.groups.length} buckets (was ${before}); members ${members(s).join(', ') || 'none'}`);
}

function countOf(o: Record<string, number[]>): number {
  return Object.values(o).reduce((n, b) => n + b.length, 0);
}

function sameOwned(a: Record<string, number[]>, b: Record<string, number[]>): boolean {
  const ka = Object.keys(a).filter((k) => a[k]!.length > 0);
  const kb = Object.keys(b).filter((k) => b[k]!.length > 0);
  if (ka.length !== kb.length) return false;
  return ka.every((k) => {
    const x = a[k]!;
    const y = b[k] ?? [];
    return x.length === y.length && x.every((v, i) => v === y[i]);
  });
}

/**
 * The monitoring phase: off while stopped or stopping to STOP; pre while transient or waiting (so the checkers a
 * wait rule reads keep reporting, and WAIT ends when they are up again); prim while serving.
 */
export function farmPhase(s: FarmState): MonitorPhase {
  const p = s.pending?.purpose;
  if (s.state === 'STOP' || (p?.kind === 'stop' && p.to === 'STOP')) return 'off';
  return serving(s) ? 'prim' : 'pre';
}

function announceMonitoring(t: Tx) {
  const { s } = t;
  const phase = farmPhase(s);
  if (phase === s.phase) return;
  s.phase = phase;
  const reset: FarmState['resources'] = {};
  for (const m of s.cfg.monitored) {
    const r = s.resources[m.resource];
    if (!activeIn(m.when, phase) && r && r.state !== 'init') reset[m.resource] = { state: 'init', since: s.mono, detail: '' };
  }
  if (Object.keys(reset).length) s.resources = { ...s.resources, ...reset };
  t.actions.push({ kind: 'monitor', phase });
}
