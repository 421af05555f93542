/**
 * The mirror module state machine (seed 003, ARCHITECTURE.md). Pure: no clock, no I/O; the driver
 * (src/daemon/module-driver.ts) feeds events and applies the actions in order (see `Action` in ./types.ts).
 *
 * Decisions are taken from the local state and the peer's latest beacon only (never from one-shot messages), so a
 * lost heartbeat delays a decision but never changes it, and both nodes, given each other's beacons, reach the
 * same conclusion about who runs the application.
 *
 * Timing: the peer is lost when no heartbeat arrived on ANY LAN for `timeoutMs`:
 *   detection = timeout;  failover ≈ timeout + witness check + VIP probe + VIP move + application start,
 * where a SECOND without a witness probes the VIP up to `probeAheadMs` before the timeout (`probeAhead`), so only
 * max(0, probe − probeAheadMs) of the probe remains after detection.
 */
import { evaluate } from '../rules/evaluate.js';
import { hold } from '../rules/hold.js';
import type { Decision, ResourceState } from '../rules/types.js';
import { genId, nextGen, pushHistory, relation, splitBrainWinner, type Relation } from './generation.js';
import { activeIn, localResources, loopsExhausted, loopsInWindow, monitorPhase, peerCanRun, resourceView } from './health.js';
import type {
  Action, AdminCommand, AheadProbe, Beacon, ClaimPurpose, EngineConfig, Gen, MirrorEvent, MirrorState, ModState, Persisted,
  Pending, PlanPurpose, PrimaryFiles, Step, StepResult, WaitReason,
} from './types.js';

/**
 * How often syncedAt is persisted while the data is known to be the newest: every 10 s, or a quarter of syncdelta
 * when that is shorter (at least 250 ms), so the recorded age is never off by more than a quarter of syncdelta.
 */
export function syncedAtPeriodMs(syncdeltaMs: number): number {
  return syncdeltaMs > 0 ? Math.max(250, Math.min(10_000, syncdeltaMs / 4)) : 10_000;
}

export const freshPersisted = (): Persisted => ({
  wanted: 'stop', lastState: 'STOP', gen: null, history: [], consistent: true, cleanSole: false, syncedAt: null,
  intent: 'none', fullsync: false, loops: [], errd: true, checkers: true, failover: null,
});

export function initialState(a: {
  module: string; self: string; peer: string; nodeOrder: string[]; cfg: EngineConfig; persisted: Persisted | null;
}): MirrorState {
  return {
    module: a.module, self: a.self, peer: a.peer, nodeOrder: a.nodeOrder, cfg: a.cfg,
    // fields added by later versions take their defaults
    p: { ...freshPersisted(), ...a.persisted },
    state: 'STOP', ready: true, waitReason: null, mono: 0, wall: 0, joinDeadline: null, reattach: false,
    retryAt: null, witnessAt: null, lanHeard: Object.fromEntries(a.cfg.lans.map((l) => [l, null])), peerBeacon: null, peerUp: false,
    peerUpSince: null, peerReplicaOf: null, swapRequest: false, yielding: false, pending: null, aheadProbe: null, queued: [], nextId: 1, alarms: [],
    syncPersistedAt: 0, lastNote: null, resources: initialResources(a.cfg, 0), phase: 'off', decision: null, ruleHold: null,
    ruleWait: null, replicationFailed: null, filesLost: null,
  };
}

function initialResources(cfg: EngineConfig, wall: number): MirrorState['resources'] {
  return Object.fromEntries(cfg.monitored.map((m) => [m.resource, { state: 'init' as const, since: wall, detail: '' }]));
}

/** The beacon this node sends its peer for this module. */
export function beacon(s: MirrorState): Beacon {
  return {
    v: 1, module: s.module, state: s.state, ready: s.ready, gen: s.p.gen, history: s.p.history,
    consistent: s.p.consistent, lastState: s.p.lastState, intent: s.p.intent, swapRequest: s.swapRequest,
    yielding: s.yielding, configHash: s.cfg.configHash,
    resyncFrom: s.pending?.kind === 'plan' && s.pending.purpose.kind === 'become' && s.pending.purpose.target === 'SECOND'
      && !s.pending.purpose.abandoned ? s.pending.purpose.sourceGen ?? null : null,
    resources: Object.fromEntries(localResources(s)),
    canRun: runBlock(s) === null,
  };
}

const running = (st: ModState | undefined) => st === 'ALONE' || st === 'PRIM';

/** A transaction over one step: a private copy of the state plus the actions it emits. */
class Tx {
  s: MirrorState;
  actions: Action[] = [];
  constructor(s: MirrorState) {
    this.s = { ...s, p: { ...s.p }, lanHeard: { ...s.lanHeard }, queued: [...s.queued], alarms: [...s.alarms] };
  }
  persist(patch: Partial<Persisted>) {
    this.s.p = { ...this.s.p, ...patch };
    this.actions.push({ kind: 'persist', p: this.s.p });
  }
  log(level: 'info' | 'warn' | 'error', msg: string) {
    this.actions.push({ kind: 'log', level, msg });
  }
  /** Log a waiting decision once, not at every tick. */
  note(msg: string) {
    if (this.s.lastNote === msg) return;
    this.s.lastNote = msg;
    this.log('info', msg);
  }
  alarm(code: string, on: boolean, msg = '') {
    const had = this.s.alarms.some((a) => a.code === code);
    if (on && !had) {
      this.s.alarms.push({ code, message: msg, since: this.s.mono });
      this.actions.push({ kind: 'alarm', code, on, msg });
    } else if (!on && had) {
      this.s.alarms = this.s.alarms.filter((a) => a.code !== code);
      this.actions.push({ kind: 'alarm', code, on, msg });
    }
  }
  id() {
    return this.s.nextId++;
  }
  execute(purpose: PlanPurpose, steps: Step[], bestEffort = false) {
    const id = this.id();
    this.s.pending = { kind: 'plan', id, purpose };
    this.actions.push({ kind: 'execute', id, steps, bestEffort });
  }
  reply(reqId: number, ok: boolean, message: string) {
    this.actions.push({ kind: 'reply', reqId, ok, message });
  }
  result(): StepResult {
    // Documented order: persist, run-marker, log/alarm, work, reply (stable sort keeps emission order within a class).
    const rank: Record<Action['kind'], number> = {
      persist: 0, 'run-marker': 1, log: 2, alarm: 2, execute: 3, abort: 3, 'abandon-resync': 3, 'copy-may-begin': 3, monitor: 3, replication: 3, 'check-witness': 3, 'probe-vips': 3,
      reply: 4,
    };
    const actions = this.actions.map((a, i) => ({ a, i })).sort((x, y) => rank[x.a.kind] - rank[y.a.kind] || x.i - y.i)
      .map((x) => x.a);
    return { state: this.s, actions };
  }
}

export function step(prev: MirrorState, e: MirrorEvent): StepResult {
  const t = new Tx(prev);
  switch (e.kind) {
    case 'boot':
      t.s.mono = e.mono;
      t.s.wall = e.wall;
      onBoot(t, e.reattach);
      break;
    case 'tick':
      t.s.mono = e.mono;
      t.s.wall = e.wall;
      break;
    case 'heartbeat':
      if (e.beacon.module !== t.s.module || !(e.lan in t.s.lanHeard)) break;
      t.s.mono = e.mono;
      t.s.lanHeard[e.lan] = e.mono;
      t.s.peerBeacon = e.beacon;
      break;
    case 'admin':
      // A plan, or an ALONE node's witness re-check (its answer decides whether the application may keep running),
      // finishes first; the verb then acts on the state it leaves.
      if (busy(t.s) && e.verb !== 'forcestop' && !SWITCHES.has(e.verb)) {
        t.s.queued.push(e);
        t.log('info', `${e.verb}: queued until the running ${describePending(t.s)} finishes`);
      } else {
        onAdmin(t, e);
      }
      break;
    case 'plan-done':
      if (t.s.pending?.kind === 'plan' && t.s.pending.id === e.id) onPlanDone(t, t.s.pending.purpose, e.ok, e.error);
      break;
    case 'replication-failed':
      // PRIM, or ALONE whose SECOND just finished reintegrating: the SECOND's copy is now outdated. A new generation
      // is persisted before the write is acknowledged (the driver holds it), so that copy can never take over. While
      // a plan runs, the failure is kept and acted on as soon as it ends (decideRunning).
      if (running(t.s.state)) {
        if (t.s.replicationFailed === null) t.log('warn', `replication to ${t.s.peer} failed (${e.reason}): ${t.s.peer} is outdated`);
        t.s.replicationFailed = e.reason;
      }
      break;
    case 'files-lost':
      if (running(t.s.state) || t.s.state === 'SECOND') {
        if (t.s.filesLost === null) t.log('error', `${e.reason}: ${t.s.module} is stopped here (forced) and started again`);
        t.s.filesLost = e.reason;
      }
      break;
    case 'copy-behind':
      if (t.s.state === 'SECOND' && t.s.p.consistent) {
        t.persist({ consistent: false });
        t.log('error', `this copy could not apply a change it had acknowledged (${e.reason}): it is behind ${t.s.peer} and is never promoted until reintegrated`);
        t.alarm('replication', true, `the copy of ${t.s.module} is behind what it acknowledged (${e.reason}); it will be reintegrated`);
      }
      break;
    case 'resource':
      onResource(t, e.name, e.state, e.detail);
      break;
    case 'copy-begins': {
      const p = t.s.pending;
      if (p?.kind === 'plan' && p.id === e.id && p.purpose.kind === 'become' && p.purpose.target === 'SECOND' && !p.purpose.abandoned) {
        if (t.s.p.consistent) t.persist({ consistent: false });
        t.actions.push({ kind: 'copy-may-begin', id: e.id });
      }
      break;
    }
    case 'witness-result':
      if (t.s.pending?.kind === 'witness' && t.s.pending.id === e.id) onWitness(t, t.s.pending.purpose, e.reachable);
      break;
    case 'probe-result':
      if (t.s.pending?.kind === 'probe' && t.s.pending.id === e.id) onProbe(t, t.s.pending, e.inUse);
      else if (t.s.aheadProbe?.id === e.id) t.s.aheadProbe = { ...t.s.aheadProbe, inUse: e.inUse };
      break;
  }
  membership(t);
  abandonReintegrationIfPeerLost(t);
  for (let guard = 0; guard < 8 && !t.s.pending && t.s.queued.length > 0; guard++) onAdmin(t, t.s.queued.shift()!);
  applyRules(t);
  if (!t.s.pending) decide(t);
  probeAhead(t);
  keepSyncedAt(t);
  announceMonitoring(t, prev);
  announceFollowing(t, prev);
  if (!running(t.s.state)) t.s.replicationFailed = null; // out of the primary role, an unreplicated write is moot
  if (!running(t.s.state) && t.s.state !== 'SECOND') t.s.filesLost = null; // out of every layout: nothing left to lose
  // One place records the state for a daemon restart, whichever transition changed it.
  if (t.s.state !== prev.state) t.actions.push({ kind: 'run-marker', state: t.s.state === 'STOP' ? null : t.s.state });
  return t.result();
}

function busy(s: MirrorState): boolean {
  return s.pending?.kind === 'plan' || (s.pending?.kind === 'witness' && !!s.pending.purpose.recheck);
}

function describePending(s: MirrorState): string {
  const p = s.pending;
  if (!p) return 'nothing';
  if (p.kind !== 'plan') return `${p.kind} check`;
  return p.purpose.kind === 'become' ? `transition to ${p.purpose.target}` : p.purpose.kind;
}

// ───────────────────────────── membership ─────────────────────────────

function membership(t: Tx) {
  const { s } = t;
  const alive = (heard: number | null) => heard !== null && s.mono - heard < s.cfg.timeoutMs;
  const up = Object.values(s.lanHeard).some(alive);
  if (up && !s.peerUp) {
    s.peerUpSince = s.mono;
    t.log('info', `peer ${s.peer} seen (${s.peerBeacon?.state ?? '?'})`);
    t.alarm('peer-lost', false);
  } else if (!up && s.peerUp) {
    s.peerUpSince = null;
    s.witnessAt = s.mono;
    t.log('warn', `peer ${s.peer} lost: no heartbeat on any LAN (${s.cfg.lans.join(', ')}) for ${s.cfg.timeoutMs} ms`);
    if (s.state !== 'STOP') t.alarm('peer-lost', true, `peer ${s.peer} lost: no heartbeat on any LAN`);
  }
  s.peerUp = up;
  // One LAN silent while another carries heartbeats: an alarm, not a failover (seed 003, dedicated replication LAN).
  for (const lan of s.cfg.lans) {
    const heard = s.lanHeard[lan];
    const silent = up && s.peerUpSince !== null && s.mono - s.peerUpSince >= s.cfg.timeoutMs && !alive(heard);
    t.alarm(`lan.${lan}`, silent, `no heartbeat from ${s.peer} on LAN ${lan} for ${s.cfg.timeoutMs} ms (other LANs up)`);
  }
}

/**
 * Reintegration needs its source running, in the generation it started from: when the peer is lost or stops running
 * the module mid-copy, stop (an incomplete copy is never promoted; one the copy had not begun to change is still
 * exactly its own generation); when the peer started a new generation mid-copy (a live write did not reach us),
 * start over against the new one.
 */
function abandonReintegrationIfPeerLost(t: Tx) {
  const { s } = t;
  const p = s.pending;
  if (p?.kind !== 'plan' || p.purpose.kind !== 'become' || p.purpose.target !== 'SECOND' || p.purpose.abandoned) return;
  const purpose = p.purpose;
  const abandon = (why: string, restart: boolean) => {
    s.pending = { ...p, purpose: { ...purpose, abandoned: { why, restart } } };
    t.actions.push({ kind: 'abandon-resync', id: p.id });
    t.log('info', `${why}: giving up this reintegration`);
  };
  if (!s.peerUp) return abandon(`${s.peer} lost during reintegration`, false);
  if (!running(s.peerBeacon?.state)) return abandon(`${s.peer} stopped running ${s.module} during reintegration`, false);
  const now = s.peerBeacon?.gen ? genId(s.peerBeacon.gen) : undefined;
  if (p.purpose.sourceGen && now && now !== p.purpose.sourceGen) abandon(`${s.peer} moved to generation ${now} during reintegration`, true);
}

/** Persist syncedAt now and then while the local data is known to be the newest. */
function keepSyncedAt(t: Tx) {
  const { s } = t;
  const newest = s.ready && !s.pending && (s.state === 'ALONE' || s.state === 'PRIM' || (s.state === 'SECOND' && s.peerUp && s.p.consistent));
  if (newest && s.wall - s.syncPersistedAt >= syncedAtPeriodMs(s.cfg.syncdeltaMs)) {
    s.syncPersistedAt = s.wall;
    t.persist({ syncedAt: s.wall });
  }
}

// ───────────────────────────── settling ─────────────────────────────

function settle(t: Tx, state: ModState, ready: boolean, waitReason: WaitReason | null = null) {
  const { s } = t;
  const was = s.state;
  if (was !== state || s.ready !== ready) t.log('info', `${was}${s.ready ? '' : ' (transient)'} → ${state}${ready ? '' : ' (transient)'}`);
  s.state = state;
  s.ready = ready;
  s.waitReason = state === 'WAIT' ? waitReason : null;
  if (state !== 'WAIT') s.lastNote = null;
  if (ready && state !== 'WAIT' && s.p.lastState !== state) t.persist({ lastState: state });
}

/** The replicated directories' layout steps (the driver's replication layer; no-ops for modules without <rfs>). */
const filesPrimary = (primary: PrimaryFiles): Step => ({ kind: 'files', role: 'primary', primary });
const FILES_SECONDARY: Step = { kind: 'files', role: 'secondary' };
const FILES_OFF: Step = { kind: 'files', role: 'off' };

/** How long a refused claim (witness, VIP conflict, failed start or reintegration) waits before it is tried again. */
const retryInterval = (s: MirrorState) => Math.max(s.cfg.timeoutMs, 2000);

/**
 * A reintegration that will not finish: WAIT. A copy it began to change is incomplete (never promoted, `inconsistent`);
 * an untouched one keeps its generation, and the node waits for the peer, which had newer data.
 */
function leaveUnfinishedCopy(t: Tx, why: string, retry = false) {
  const { s } = t;
  if (!s.p.consistent) return toWait(t, 'inconsistent', `${why}: the local copy is incomplete and is never promoted`);
  toWait(t, retry ? 'start-failed' : 'peer-newer', `${why}; the local copy was not changed yet (generation ${s.p.gen ? genId(s.p.gen) : 'none'})`);
}

function toWait(t: Tx, reason: WaitReason, msg: string) {
  const { s } = t;
  s.retryAt = reason === 'witness' || reason === 'vip-conflict' || reason === 'start-failed' || reason === 'inconsistent'
    ? s.mono + retryInterval(s) : null;
  const from = s.state;
  t.note(msg);
  if (running(from)) {
    t.execute({ kind: 'to-wait', reason }, [script('stop_prim', from, 'WAIT', 'stop'), FILES_OFF, { kind: 'release-vips' }], true);
    s.state = from;
    s.ready = false;
  } else if (from === 'SECOND') {
    const steps: Step[] = s.ready ? [] : [{ kind: 'cancel-resync' }];
    steps.push(script('stop_second', from, 'WAIT', 'stop'), FILES_OFF);
    if (s.cfg.hasVip) steps.push({ kind: 'release-vips' }); // a WAIT node never holds the VIP, whatever came before
    t.execute({ kind: 'to-wait', reason }, steps, true);
    s.ready = false;
  } else {
    settle(t, 'WAIT', true, reason);
  }
}

const script = (name: Extract<Step, { kind: 'script' }>['script'], cur: ModState, next: ModState, action: string,
  force = false): Step => ({ kind: 'script', script: name, args: force ? ['force', cur, next, action] : [cur, next, action] });

// ───────────────────────────── boot and admin ─────────────────────────────

function onBoot(t: Tx, reattach: ModState | null) {
  const { s } = t;
  if (s.p.wanted === 'stop') {
    settle(t, 'STOP', true);
    // A crash can leave the VIP configured: a stopped module never holds it.
    if (s.cfg.hasVip) t.execute({ kind: 'cleanup' }, [{ kind: 'release-vips' }], true);
    return;
  }
  if (reattach && (running(reattach) || reattach === 'SECOND')) {
    // Daemon restarted, host did not: the application may be running. Touch nothing until the peer is heard.
    s.state = reattach;
    s.ready = false;
    s.reattach = true;
    s.joinDeadline = s.mono + s.cfg.timeoutMs;
    t.log('info', `reattaching as ${reattach}: the application is left as it is until ${s.peer} is heard or ${s.cfg.timeoutMs} ms pass`);
    return;
  }
  if (reattach) {
    // It was WAIT: nothing runs (and no VIP is held); look for the peer again.
    s.state = 'WAIT';
    enterJoin(t);
    if (s.cfg.hasVip) t.execute({ kind: 'cleanup' }, [{ kind: 'release-vips' }], true);
    return;
  }
  t.log('info', `starting module (wanted since before reboot; last state ${s.p.lastState})`);
  startModule(t, 'join');
}

function startModule(t: Tx, then: 'join' | 'prim') {
  const { s } = t;
  settle(t, 'WAIT', false, 'joining');
  const steps: Step[] = s.cfg.hasVip ? [{ kind: 'release-vips' }] : [];
  steps.push(script('prestart', 'STOP', 'WAIT', 'start'));
  t.execute({ kind: 'prestart', then }, steps);
}

function enterJoin(t: Tx) {
  const { s } = t;
  settle(t, 'WAIT', false, 'joining');
  s.joinDeadline = s.mono + s.cfg.timeoutMs;
  s.lastNote = null;
}

/** Administrator commands that only switch something and never wait behind a running plan. */
const SWITCHES: ReadonlySet<string> = new Set(['resetloop', 'errd-on', 'errd-off', 'checker-on', 'checker-off', 'failover-on', 'failover-off']);

function onAdmin(t: Tx, c: AdminCommand) {
  const { s } = t;
  const no = (msg: string) => t.reply(c.reqId, false, msg);
  const ok = (msg: string) => t.reply(c.reqId, true, msg);
  const m = s.module;
  const peerRunning = s.peerUp && running(s.peerBeacon?.state);
  switch (c.verb) {
    case 'resetloop': {
      const n = loopsInWindow(s);
      t.persist({ loops: [] });
      t.alarm('maxloop', false);
      t.log('info', `restart loop count of ${m} reset by the administrator (was ${n} within ${Math.round(s.cfg.loopIntervalMs / 1000)} s)`);
      if (s.state === 'WAIT' && s.waitReason === 'maxloop') rejoin(t);
      return ok(`restart loop count of ${m} reset (was ${n}); the node may run the module again`);
    }
    case 'errd-on':
    case 'errd-off':
    case 'checker-on':
    case 'checker-off': {
      const on = c.verb.endsWith('-on');
      const which = c.verb.startsWith('errd') ? 'errd' : 'checkers';
      if (s.p[which] !== on) t.persist({ [which]: on });
      t.log('info', `${which === 'errd' ? 'process monitoring' : 'checkers'} of ${m} turned ${on ? 'on' : 'off'} by the administrator`);
      return ok(`${which === 'errd' ? 'process monitoring (errd)' : 'checkers'} of ${m} ${on ? 'on' : 'off'}${on ? '' : ': their resources read init until turned on again'}`);
    }
    case 'failover-on':
    case 'failover-off': {
      const on = c.verb === 'failover-on';
      t.persist({ failover: on });
      t.log('info', `automatic failover of ${m} turned ${on ? 'on' : 'off'} by the administrator`);
      return ok(`failover of ${m} ${on ? 'on' : 'off'}${on ? '' : ': a SECOND that loses its primary waits instead of taking over'}`);
    }
    case 'start':
      if (s.state !== 'STOP') return no(`module ${m} is already started (${s.state}). Use \`tandem restart -m ${m}\` to restart its application.`);
      t.persist({ wanted: 'run', cleanSole: s.p.cleanSole });
      startModule(t, 'join');
      return ok(`starting ${m}`);
    case 'stop':
      if (s.state === 'STOP') return ok(`module ${m} is already stopped`);
      return stopModule(t, c, false);
    case 'forcestop':
      if (s.state === 'STOP' && !s.pending) return ok(`module ${m} is already stopped`);
      if (s.pending?.kind === 'plan') t.actions.push({ kind: 'abort', id: s.pending.id });
      s.pending = null;
      return stopModule(t, c, true);
    case 'restart':
      if (!s.ready || !(running(s.state) || s.state === 'SECOND')) {
        return no(`restart needs ${m} settled in PRIM, ALONE or SECOND; it is ${s.state}${s.ready ? '' : ' (transient)'}. Use \`tandem start -m ${m}\` if it is stopped.`);
      }
      s.ready = false;
      t.execute({ kind: 'restart' }, running(s.state)
        ? [script('stop_prim', s.state, s.state, 'restart'), script('start_prim', s.state, s.state, 'restart')]
        : [script('stop_second', s.state, s.state, 'restart'), script('start_second', s.state, s.state, 'restart')]);
      return ok(`restarting the application of ${m} (${s.state})`);
    case 'prim':
      if (running(s.state)) return no(`${m} is already ${s.state} on this node`);
      if (s.state === 'SECOND') return no(`${m} is SECOND here: use \`tandem swap -m ${m}\` to make this node primary`);
      if (peerRunning) return no(`${m} is ${s.peerBeacon!.state} on ${s.peer}: the application runs there. Use \`tandem swap -m ${m}\` to move it, or stop it there first.`);
      t.persist({ wanted: 'run', intent: 'none', fullsync: !!c.fullsync });
      t.log('warn', `administrator forces ${m} primary on ${s.self}: its data becomes the reference`);
      if (s.state === 'STOP') startModule(t, 'prim');
      else claim(t, { target: 'ALONE', why: 'forced by `tandem prim`', peerUnseen: false, forced: true });
      return ok(`${m} becoming primary (ALONE) on ${s.self}`);
    case 'second':
      if (running(s.state)) return no(`${m} is ${s.state} here: use \`tandem swap -m ${m}\` to make this node secondary`);
      if (s.state === 'SECOND') return no(`${m} is already SECOND on this node`);
      t.persist({ wanted: 'run', intent: 'second', fullsync: !!c.fullsync || s.p.fullsync });
      s.lastNote = null;
      if (s.state === 'STOP') startModule(t, 'join');
      return ok(`${m} will join as SECOND and copy ${s.peer}'s data${c.fullsync ? ' (full compare)' : ''}`);
    case 'swap': {
      const pb = s.peerBeacon;
      const both = s.ready && s.peerUp && pb?.ready;
      const block = runBlock(s);
      if (both && s.state === 'SECOND' && block) return no(`${s.self} cannot take the primary role now: ${block.msg}`);
      if (both && s.state === 'PRIM' && !peerCanRun(pb)) return no(`${s.peer} cannot take the primary role now (a failover rule holds it in wait, or it ran out of automatic restarts: see \`tandem status\` there)`);
      if (both && s.state === 'PRIM' && pb.state === 'SECOND') {
        s.swapRequest = true;
        return ok(`swapping: ${s.self} gives the primary role to ${s.peer}`);
      }
      if (both && s.state === 'SECOND' && pb.state === 'PRIM') {
        s.swapRequest = true;
        return ok(`swapping: ${s.self} takes the primary role from ${s.peer}`);
      }
      return no(`swap needs PRIM and SECOND both ready; now ${s.self} is ${s.state}${s.ready ? '' : ' (transient)'} and ${s.peer} is ${s.peerUp && pb ? `${pb.state}${pb.ready ? '' : ' (transient)'}` : 'unreachable'}`);
    }
  }
}

function stopModule(t: Tx, c: AdminCommand | null, force: boolean) {
  const { s } = t;
  const from = s.state;
  const sole = from === 'ALONE' && !(s.peerUp && running(s.peerBeacon?.state));
  t.persist({ wanted: 'stop', cleanSole: sole });
  const steps: Step[] = [];
  if (running(from)) steps.push(script('stop_prim', from, 'STOP', 'stop', force), FILES_OFF);
  if (s.cfg.hasVip) steps.push({ kind: 'release-vips' });
  if (from === 'SECOND') {
    if (!s.ready) steps.push({ kind: 'cancel-resync' });
    steps.push(script('stop_second', from, 'STOP', 'stop', force), FILES_OFF);
  }
  steps.push(script('poststop', from, 'STOP', 'stop', force));
  s.ready = false;
  s.reattach = false;
  s.swapRequest = false;
  s.yielding = false;
  t.execute({ kind: 'stop', force }, steps, true);
  if (c) t.reply(c.reqId, true, `${force ? 'force-stopping' : 'stopping'} ${s.module}`);
}

// ───────────────────────────── results of work ─────────────────────────────

function onPlanDone(t: Tx, purpose: PlanPurpose, ok: boolean, error?: string) {
  const { s } = t;
  s.pending = null;
  switch (purpose.kind) {
    case 'prestart':
      if (!ok) {
        t.alarm('start-failed', true, `prestart failed: ${error}`);
        return toWait(t, 'start-failed', `prestart failed (${error}); see \`tandem log -m ${s.module}\``);
      }
      if (purpose.then === 'prim') return claim(t, { target: 'ALONE', why: 'forced by `tandem prim`', peerUnseen: false, forced: true });
      return enterJoin(t);
    case 'become': {
      const target = purpose.target;
      if (!ok && purpose.abandoned) {
        const { why, restart } = purpose.abandoned;
        if (restart && s.peerUp && running(s.peerBeacon?.state)) {
          return becomeSecond(t, `${why}: starting over`, { quarantine: !!purpose.quarantine, full: !!purpose.quarantine });
        }
        return leaveUnfinishedCopy(t, why);
      }
      if (!ok) {
        t.alarm('start-failed', true, `transition to ${target} failed: ${error}`);
        if (target === 'SECOND') {
          t.alarm('resync-failed', true, `reintegration from ${s.peer} failed: ${error}`);
          return leaveUnfinishedCopy(t, `reintegration failed (${error}); will retry`, true);
        }
        return toWait(t, 'start-failed', `transition to ${target} failed (${error}); see \`tandem log -m ${s.module}\``);
      }
      t.alarm('start-failed', false);
      if (target === 'SECOND') return finishSecond(t, purpose.sourceGen, !!purpose.quarantine);
      settle(t, target, true);
      s.retryAt = null;
      t.persist({ syncedAt: s.wall, cleanSole: false });
      return;
    }
    case 'stop':
      settle(t, 'STOP', true);
      s.peerBeacon = s.peerUp ? s.peerBeacon : null;
      s.alarms.filter((a) => !a.code.startsWith('lan.')).forEach((a) => t.alarm(a.code, false));
      t.persist({ lastState: 'STOP' });
      return;
    case 'to-wait':
      settle(t, 'WAIT', true, purpose.reason);
      return;
    case 'restart':
      s.ready = true;
      if (!ok) t.alarm('restart-failed', true, `restart failed: ${error}`);
      else t.alarm('restart-failed', false);
      if (purpose.auto) t.log(ok ? 'info' : 'error', `${purpose.auto}: application ${ok ? 'restarted' : `restart failed (${error})`}`);
      return;
    case 'stopstart':
      if (!ok) t.log('error', `stopping for ${purpose.reason} did not go cleanly (${error}); starting again`);
      s.peerBeacon = s.peerUp ? s.peerBeacon : null;
      return startModule(t, 'join');
    case 'resync':
      if (!ok) {
        t.alarm('resync-failed', true, `reintegration from ${s.peer} failed: ${error}`);
        return leaveUnfinishedCopy(t, `reintegration failed (${error}); will retry`, true);
      }
      return finishSecond(t, undefined, false);
    case 'yield':
      if (!ok) {
        s.yielding = false;
        t.alarm('start-failed', true, `swap failed: ${error}`);
        return toWait(t, 'start-failed', `swap failed while leaving the primary role (${error}); see \`tandem log -m ${s.module}\``);
      }
      // Same generation, complete copy: a ready SECOND at once; the peer now takes the primary role.
      settle(t, 'SECOND', true);
      return;
    case 'cleanup':
      return;
  }
}

/** Reintegration finished: the local copy now equals the primary's generation `sourceGen`; adopt it. */
function finishSecond(t: Tx, sourceGen: string | undefined, quarantine: boolean) {
  const { s } = t;
  const pb = s.peerBeacon;
  if (!s.peerUp || !pb || !running(pb.state) || !pb.gen) {
    return leaveUnfinishedCopy(t, `reintegration ended but ${s.peer} is no longer primary`);
  }
  if (sourceGen && genId(pb.gen) !== sourceGen) {
    return becomeSecond(t, `${s.peer} moved to generation ${genId(pb.gen)} during reintegration: starting over`, { quarantine, full: quarantine });
  }
  t.persist({ gen: pb.gen, history: pb.history, consistent: true, intent: 'none', fullsync: false, cleanSole: false, syncedAt: s.wall });
  t.alarm('resync-failed', false);
  t.alarm('split-brain', false);
  settle(t, 'SECOND', true);
}

function onWitness(t: Tx, purpose: ClaimPurpose, reachable: boolean) {
  const { s } = t;
  s.pending = null;
  if (reachable) {
    t.alarm('witness', false);
    s.witnessAt = s.mono + retryInterval(s);
    if (purpose.recheck) return;
    return probe(t, purpose);
  }
  t.alarm('witness', true, `split-brain witness unreachable: not taking the primary role without ${s.peer}`);
  toWait(t, 'witness', `${s.peer} is lost and the split-brain witness does not answer: WAIT (the node that reaches the witness runs the application)`);
}

function onProbe(t: Tx, p: Extract<Pending, { kind: 'probe' }>, inUse: { addr: string; by?: string }[]) {
  const { s } = t;
  const { purpose } = p;
  s.pending = null;
  // A probe asked ahead of the claim decides only when it stands; otherwise the claim probes now.
  if (p.ahead !== undefined && !aheadStands(s, p.ahead, inUse)) return probe(t, purpose);
  if (inUse.length === 0) {
    t.alarm('vip-conflict', false);
    return commitClaim(t, purpose);
  }
  const who = inUse.map((u) => `${u.addr} (answered by ${u.by ?? 'another host'})`).join(', ');
  t.alarm('vip-conflict', true, `virtual IP already in use: ${who}; not taking it`);
  toWait(t, 'vip-conflict', `virtual IP already in use on the network: ${who}. Not taking it; will retry. Find the host that holds it.`);
}

// ───────────────────────────── claiming the primary role ─────────────────────────────

function claim(t: Tx, purpose: ClaimPurpose) {
  const { s } = t;
  const blocked = !purpose.forced && !running(s.state) ? runBlock(s) : null;
  if (blocked) {
    // A SECOND keeps its role (and what it knows of its copy): it takes over once the block is gone, if still asked.
    if (s.state === 'WAIT' && s.waitReason !== blocked.reason) settle(t, 'WAIT', true, blocked.reason);
    if (blocked.reason === 'maxloop') t.alarm('maxloop', true, blocked.msg);
    return t.note(`not claiming ${purpose.target} (${purpose.why}): ${blocked.msg}`);
  }
  t.log('info', `claiming ${purpose.target}: ${purpose.why}`);
  if (purpose.peerUnseen && s.cfg.witness && !purpose.forced) {
    const id = t.id();
    s.pending = { kind: 'witness', id, purpose };
    t.actions.push({ kind: 'check-witness', id });
    return;
  }
  probe(t, purpose);
}

function probe(t: Tx, purpose: ClaimPurpose) {
  const { s } = t;
  // A PRIM that stays primary already holds the VIP: nothing to probe.
  if (s.cfg.hasVip && !running(s.state)) {
    const ahead = s.aheadProbe;
    s.aheadProbe = null;
    if (ahead && ahead.inUse === null) {
      // asked ahead and still running: its answer is awaited (never two probes at once)
      s.pending = { kind: 'probe', id: ahead.id, purpose, ahead: ahead.askedAt };
      return;
    }
    if (ahead && aheadStands(s, ahead.askedAt, ahead.inUse!)) {
      t.log('info', `virtual IP probe made ${Math.round(s.mono - ahead.askedAt)} ms ago, in ${s.peer}'s silence: no other host answers`);
      t.alarm('vip-conflict', false);
      return commitClaim(t, purpose);
    }
    const id = t.id();
    s.pending = { kind: 'probe', id, purpose };
    t.actions.push({ kind: 'probe-vips', id });
    return;
  }
  commitClaim(t, purpose);
}

/** Last monotonic ms a heartbeat arrived on any LAN (-Infinity: never). */
function lastHeard(s: MirrorState): number {
  return Math.max(-Infinity, ...Object.values(s.lanHeard).map((h) => h ?? -Infinity));
}

/**
 * The VIP probe ahead of the heartbeat timeout. A SECOND that would take over when its peer is lost (ready,
 * consistent, failover on, VIPs configured, no witness to ask first) probes its VIPs once no heartbeat arrived for
 * `timeout − probeAheadMs` (and for at least two pulses, so an ordinary heartbeat interval never triggers one), so
 * the probe's wait overlaps the end of detection:
 *   failover ≈ timeout + max(0, probe − probeAheadMs) + VIP move + application start
 * The VIP is still never added before a completed probe said that no other host answers for it: the answer stands
 * for the claim only if it found every VIP free, was asked after the last heartbeat heard (the whole probe ran in the
 * peer's silence) and is recent (`aheadStands`); otherwise the claim probes again, as it does without this. One
 * probe ahead per silence, and never while another runs.
 */
function probeAhead(t: Tx) {
  const { s } = t;
  const aheadMs = s.cfg.probeAheadMs ?? 0;
  if (aheadMs <= 0 || !s.cfg.hasVip || s.cfg.witness) return;
  if (s.aheadProbe && s.aheadProbe.inUse === null) return;
  if (s.state !== 'SECOND' || !s.ready || !s.p.consistent || s.pending || !s.peerUp || !(s.p.failover ?? s.cfg.failover)) return;
  const heard = lastHeard(s);
  const from = Math.max(s.cfg.timeoutMs - aheadMs, 2 * s.cfg.pulseMs);
  if (from >= s.cfg.timeoutMs || s.mono - heard < from) return;
  if (s.aheadProbe && s.aheadProbe.askedAt > heard) return;
  const id = t.id();
  s.aheadProbe = { id, askedAt: s.mono, inUse: null };
  t.actions.push({ kind: 'probe-vips', id });
}

/**
 * The next monotonic ms after `s.mono` at which time alone changes what the engine decides about its peer: the
 * heartbeat timeout (peer lost) and the start of the probe ahead (`probeAhead`); null when there is none (peer not
 * up). The driver posts a tick then, so detection does not wait for its periodic tick: detection = timeout.
 */
export function nextDeadline(s: MirrorState): number | null {
  const heard = lastHeard(s);
  if (!s.peerUp || heard === -Infinity) return null;
  const at = [heard + s.cfg.timeoutMs];
  const aheadMs = s.cfg.probeAheadMs ?? 0;
  if (aheadMs > 0) at.push(heard + Math.max(s.cfg.timeoutMs - aheadMs, 2 * s.cfg.pulseMs));
  const next = at.filter((x) => x > s.mono);
  return next.length > 0 ? Math.min(...next) : null;
}

/** A probe asked ahead of a claim stands for it: every VIP free, asked after the last heartbeat, at most 2 × probeAheadMs ago. */
function aheadStands(s: MirrorState, askedAt: AheadProbe['askedAt'], inUse: NonNullable<AheadProbe['inUse']>): boolean {
  return inUse.length === 0 && askedAt > lastHeard(s) && s.mono - askedAt <= 2 * (s.cfg.probeAheadMs ?? 0);
}

function commitClaim(t: Tx, purpose: ClaimPurpose) {
  const { s } = t;
  const from = s.state;
  if (purpose.target === 'PRIM') {
    // Swap: the peer yielded and is a ready SECOND with our generation: no new generation.
    s.state = 'PRIM';
    s.ready = false;
    s.swapRequest = false;
    const steps: Step[] = [script('stop_second', from, 'PRIM', 'stop'), filesPrimary({ gen: genId(s.p.gen!), awaitPeer: true, recordBase: null })];
    if (s.cfg.hasVip) steps.push({ kind: 'acquire-vips' });
    steps.push(script('start_prim', from, 'PRIM', 'start'));
    t.execute({ kind: 'become', target: 'PRIM' }, steps);
    return;
  }
  // New generation, durable before the application can write in it.
  const gen: Gen = nextGen(s.self, from, s.p.gen, s.peerBeacon?.gen ?? null);
  const before = s.p.gen ? genId(s.p.gen) : null;
  s.peerReplicaOf = null;
  s.replicationFailed = null;
  t.persist({
    gen, history: pushHistory(s.p.history, s.p.gen), consistent: true, intent: 'none', cleanSole: false,
    syncedAt: s.wall, wanted: 'run',
  });
  t.log('info', `new data generation ${genId(gen)} (from ${from})`);
  s.retryAt = null;
  s.reattach = false;
  s.joinDeadline = null;
  s.swapRequest = false;
  s.yielding = false;
  if (running(from)) {
    // Peer gone or outdated, application keeps running: only the role (and the generation) changes, and changes the
    // SECOND did not take are recorded from now on.
    t.actions.push({ kind: 'replication', directive: { kind: 'outdated', gen: genId(gen), peerHolds: before } });
    settle(t, 'ALONE', true);
    return;
  }
  const steps: Step[] = [];
  if (from === 'SECOND') steps.push(script('stop_second', from, 'ALONE', 'stop'));
  steps.push(filesPrimary({ gen: genId(gen), awaitPeer: false, recordBase: before }));
  if (s.cfg.hasVip) steps.push({ kind: 'acquire-vips' });
  steps.push(script('start_prim', from, 'ALONE', 'start'));
  s.state = 'ALONE';
  s.ready = false;
  s.waitReason = null;
  t.execute({ kind: 'become', target: 'ALONE', gen }, steps);
}

/**
 * Leave the primary role (or WAIT) for SECOND and reintegrate from the peer. Whatever the caller says, local data the
 * peer does not descend from (diverged, unrelated, or newer) is always quarantined, never overwritten: the decision
 * is taken here, from the generations, so no path can skip it.
 */
function becomeSecond(t: Tx, why: string, requested: { quarantine: boolean; full: boolean }) {
  const { s } = t;
  const from = s.state;
  const rel = s.peerBeacon ? relation(s.p, s.peerBeacon) : 'unrelated';
  const mustKeep = !(rel === 'same' || rel === 'peer-newer' || rel === 'self-empty');
  const opts = { quarantine: requested.quarantine || mustKeep, full: requested.full || mustKeep };
  if (s.peerBeacon?.configHash !== s.cfg.configHash) {
    t.alarm('config-differs', true, `the configuration of ${s.module} differs between ${s.self} and ${s.peer}`);
    if (!running(from)) return toWait(t, 'config-differs', `not joining ${s.peer} as SECOND: the module's configuration differs between the nodes. Apply the same userconfig.xml on both (\`tandem config -m ${s.module}\`).`);
  } else {
    t.alarm('config-differs', false);
  }
  t.log(opts.quarantine ? 'warn' : 'info', `becoming SECOND: ${why}`);
  if (opts.quarantine) t.alarm('split-brain', true, `split brain: local changes of ${s.self} are kept in quarantine while it resyncs from ${s.peer}`);
  t.persist({ lastState: 'SECOND' });
  const steps: Step[] = [];
  if (running(from)) steps.push(script('stop_prim', from, 'SECOND', 'stop'));
  if (s.cfg.hasVip) steps.push({ kind: 'release-vips' });
  steps.push(FILES_SECONDARY);
  if (from !== 'SECOND') steps.push(script('start_second', from, 'SECOND', 'start'));
  const sourceGen = s.peerBeacon?.gen ? genId(s.peerBeacon.gen) : undefined;
  steps.push({ kind: 'resync', from: s.peer, full: opts.full || s.p.fullsync, quarantine: opts.quarantine, sourceGen: sourceGen ?? null });
  s.state = 'SECOND';
  s.ready = false;
  s.waitReason = null;
  s.reattach = false;
  s.joinDeadline = null;
  s.lastNote = null;
  t.execute({ kind: 'become', target: 'SECOND', quarantine: opts.quarantine, ...(sourceGen ? { sourceGen } : {}) }, steps);
}


// ───────────────────────────── resources and failover rules ─────────────────────────────

function monitoredEntry(s: MirrorState, name: string) {
  return s.cfg.monitored.find((m) => m.resource === name);
}

/** Is the checker of `name` running now (its phase, and errd/checkers not switched off)? */
function isActive(s: MirrorState, name: string, phase = s.phase): boolean {
  const m = monitoredEntry(s, name);
  return !!m && activeIn(m.when, phase) && (m.by === 'errd' ? s.p.errd : s.p.checkers);
}

function onResource(t: Tx, name: string, state: ResourceState, detail: string) {
  const { s } = t;
  if (!isActive(s, name)) return; // a late report from a checker that was stopped
  const prev = s.resources[name];
  if (prev?.state === state && prev.detail === detail) return;
  s.resources = { ...s.resources, [name]: { state, since: prev?.state === state ? prev.since : s.wall, detail } };
  if (prev?.state !== state) t.log(state === 'down' ? 'warn' : 'info', `resource ${name}: ${prev?.state ?? 'init'} → ${state}${detail ? ` (${detail})` : ''}`);
}

/**
 * Tells the driver which checkers must run (`monitor`) when the phase or a switch changed; resources whose checker
 * stops read `init` again, so a stale `down` never decides anything.
 */
function announceMonitoring(t: Tx, prev: MirrorState) {
  const { s } = t;
  const phase = monitorPhase(s);
  if (phase === prev.phase && s.p.errd === prev.p.errd && s.p.checkers === prev.p.checkers) return;
  s.phase = phase;
  const reset: MirrorState['resources'] = {};
  for (const m of s.cfg.monitored) {
    const r = s.resources[m.resource];
    if (!isActive(s, m.resource) && r && r.state !== 'init') reset[m.resource] = { state: 'init', since: s.wall, detail: '' };
  }
  if (Object.keys(reset).length) s.resources = { ...s.resources, ...reset };
  t.actions.push({ kind: 'monitor', phase, errd: s.p.errd, checkers: s.p.checkers });
}

/** The generation this node follows as a ready SECOND of a PRIM on it (its live stream must be attached), or null. */
function following(s: MirrorState): string | null {
  const pb = seenPeer(s);
  if (s.state !== 'SECOND' || !s.ready || s.pending || !pb || pb.state !== 'PRIM' || !pb.gen || !s.p.gen) return null;
  const g = genId(s.p.gen);
  return genId(pb.gen) === g && s.p.consistent ? g : null;
}

function announceFollowing(t: Tx, prev: MirrorState) {
  const now = following(t.s);
  if (now === following(prev)) return;
  t.actions.push({ kind: 'replication', directive: now ? { kind: 'follow', gen: now } : { kind: 'unfollow' } });
}

/** Why this node may not start running the application by itself now, or null. */
function runBlock(s: MirrorState): { reason: 'checker' | 'maxloop'; msg: string } | null {
  if (loopsExhausted(s)) {
    return { reason: 'maxloop', msg: `${s.module} was restarted ${loopsInWindow(s)} times here within ${Math.round(s.cfg.loopIntervalMs / 1000)} s (maxloop ${s.cfg.maxloop}): this node does not run it by itself. Fix the cause, then run \`tandem resetloop -m ${s.module}\`.` };
  }
  const w = s.ruleWait ?? (s.decision?.action === 'wait' ? s.decision : null);
  if (w) return { reason: 'checker', msg: `rule ${w.label} holds (${w.because.join(', ') || 'its condition is true'}): waiting` };
  const pending = s.cfg.monitored.find((m) => m.when === 'pre' && isActive(s, m.resource) && (s.resources[m.resource]?.state ?? 'init') === 'init');
  if (pending) return { reason: 'checker', msg: `waiting for the first result of checker ${pending.resource}` };
  return null;
}

/**
 * Evaluates the failover rules over the resources and, once a decision has held for its handle time and no plan
 * runs, takes its action. A `wait()` lasts while its condition holds; when it clears, the node decides afresh.
 */
function applyRules(t: Tx) {
  const { s } = t;
  if (s.state === 'STOP' || s.cfg.rules.length === 0) {
    s.decision = null;
    s.ruleHold = null;
    return;
  }
  const d = evaluate(s.cfg.rules, resourceView(s));
  s.decision = d;
  if (s.ruleWait && d?.action !== 'wait') {
    t.log('info', `rule ${s.ruleWait.label} no longer holds: ${s.module} may run again`);
    s.ruleWait = null;
    t.alarm('checker', false);
    if (s.state === 'WAIT' && !s.pending && s.waitReason === 'checker') rejoin(t);
  } else if (s.ruleWait && d && d.label !== s.ruleWait.label) {
    s.ruleWait = d;
  }
  if (s.pending) return; // decided again once the plan is done; its hold time keeps counting from before
  const r = hold(s.ruleHold, d, s.mono, s.cfg.handleTimeMs);
  s.ruleHold = r.hold;
  if (r.fire) act(t, r.fire);
}

/** Look for the peer again and decide afresh (a rule stopped holding, the loop count was reset). */
function rejoin(t: Tx) {
  t.s.waitReason = 'joining';
  t.s.joinDeadline = t.s.mono;
  t.s.lastNote = null;
}

/** What a fired rule makes this node do. */
function act(t: Tx, d: Decision) {
  const { s } = t;
  const why = `rule ${d.label} (${d.because.join(', ') || 'condition true'})`;
  const pb = seenPeer(s);
  const healthyPeer = !!pb && pb.state === 'SECOND' && pb.ready && pb.consistent && peerCanRun(pb) && !!pb.gen && !!s.p.gen
    && genId(pb.gen) === genId(s.p.gen);
  switch (d.action) {
    case 'wait': {
      s.ruleWait = d;
      t.alarm('checker', true, `${why}: ${s.module} waits on ${s.self}`);
      if (s.state === 'WAIT') {
        if (s.waitReason !== 'checker') settle(t, 'WAIT', true, 'checker');
        return t.note(`${why}: waiting`);
      }
      if (running(s.state) && !(s.peerUp && running(pb?.state)) && !healthyPeer) t.persist({ cleanSole: true });
      return toWait(t, 'checker', `${why}: ${s.state === 'SECOND' ? 'leaving SECOND' : 'stopping the application'} and waiting`);
    }
    case 'stop':
      t.log('warn', `${why}: stopping ${s.module} on ${s.self}`);
      return stopModule(t, null, false);
    case 'swap':
      if (s.state === 'PRIM' && s.ready && healthyPeer) {
        t.log('warn', `${why}: swapping the roles`);
        s.swapRequest = true;
      } else {
        t.log('warn', `${why}: swap() needs this node PRIM with a ready SECOND that can run the application; nothing done`);
      }
      return;
    case 'restart':
    case 'stopstart': {
      if (!(running(s.state) || s.state === 'SECOND') || !s.ready) return;
      const reason = `${d.action}() by ${why}`;
      const loops = [...s.p.loops.filter((l) => s.wall - l.at < s.cfg.loopIntervalMs), { at: s.wall, reason }];
      t.persist({ loops });
      const n = loops.length;
      t.log('warn', `${reason}: automatic restart ${n} of at most ${s.cfg.maxloop} within ${Math.round(s.cfg.loopIntervalMs / 1000)} s`);
      if (n > s.cfg.maxloop) {
        t.alarm('maxloop', true, `${s.module} needed ${n} automatic restarts on ${s.self} within ${Math.round(s.cfg.loopIntervalMs / 1000)} s (maxloop ${s.cfg.maxloop}); it is handed over and not taken back automatically. Run \`tandem resetloop -m ${s.module}\` once fixed.`);
        return stopStart(t, `${reason}; maxloop ${s.cfg.maxloop} exceeded`);
      }
      if (d.action === 'stopstart') return stopStart(t, reason);
      s.ready = false;
      t.execute({ kind: 'restart', auto: reason }, running(s.state)
        ? [script('stop_prim', s.state, s.state, 'restart'), script('start_prim', s.state, s.state, 'restart')]
        : [script('stop_second', s.state, s.state, 'restart'), script('start_second', s.state, s.state, 'restart')]);
      return;
    }
  }
}

/**
 * Stop the module here and start it again: a ready SECOND that can run the application takes over meanwhile and
 * this node rejoins as SECOND; without one it comes back as it was (a sole node keeps `cleanSole`).
 */
function stopStart(t: Tx, reason: string, force = false) {
  const { s } = t;
  const from = s.state;
  const pb = seenPeer(s);
  const sole = running(from) && !(pb && (running(pb.state) || (pb.state === 'SECOND' && pb.ready && peerCanRun(pb))));
  if (sole) t.persist({ cleanSole: true });
  t.log('warn', `${reason}: stopping ${s.module} here, then starting it again`);
  const steps: Step[] = [];
  if (running(from)) steps.push(script('stop_prim', from, 'WAIT', 'stopstart', force), FILES_OFF);
  if (s.cfg.hasVip) steps.push({ kind: 'release-vips' });
  if (from === 'SECOND') steps.push(script('stop_second', from, 'WAIT', 'stopstart', force), FILES_OFF);
  steps.push(script('poststop', from, 'WAIT', 'stopstart'));
  s.ready = false;
  s.swapRequest = false;
  t.execute({ kind: 'stopstart', reason }, steps, true);
}

// ───────────────────────────── decisions ─────────────────────────────

function decide(t: Tx) {
  const { s } = t;
  if (s.filesLost !== null) {
    const reason = s.filesLost;
    s.filesLost = null;
    s.reattach = false;
    s.joinDeadline = null;
    return stopStart(t, reason, true);
  }
  if (s.reattach) return decideReattach(t);
  if (s.ruleWait && s.state === 'WAIT') return; // a rule's wait() holds: nothing runs here until it clears
  switch (s.state) {
    case 'STOP': return;
    case 'WAIT': return decideWait(t);
    case 'ALONE': return decideRunning(t);
    case 'PRIM': return decideRunning(t);
    case 'SECOND': return decideSecond(t);
  }
}

function seenPeer(s: MirrorState): Beacon | null {
  return s.peerUp ? s.peerBeacon : null;
}

function decideReattach(t: Tx) {
  const { s } = t;
  const pb = seenPeer(s);
  if (!pb && s.mono < (s.joinDeadline ?? 0)) return;
  s.reattach = false;
  s.joinDeadline = null;
  t.log('info', pb ? `reattached: ${s.peer} is ${pb.state}` : `reattached: ${s.peer} not heard within ${s.cfg.timeoutMs} ms`);
  if (running(s.state)) {
    if (pb && running(pb.state)) return resolveBothRunning(t, pb);
    const inSync = pb?.state === 'SECOND' && pb.ready && pb.gen && s.p.gen && genId(pb.gen) === genId(s.p.gen);
    // Like a PRIM losing its peer: through the witness when the peer is unseen, then a new generation. An ALONE node
    // too: while this daemon was away the peer may have finished copying our generation and left again.
    if (!inSync) return claim(t, { target: 'ALONE', why: `reattached without a ready SECOND`, peerUnseen: !pb, forced: false });
    // Re-announce the VIP we kept; the application is untouched.
    t.execute({ kind: 'become', target: s.state }, s.cfg.hasVip ? [{ kind: 'acquire-vips' }] : []);
    return;
  }
  // Reattached SECOND: ready again only if the primary is still on our generation.
  s.ready = s.p.consistent && !!pb && running(pb.state) && !!pb.gen && !!s.p.gen && genId(pb.gen) === genId(s.p.gen);
  decideSecond(t);
}

function decideWait(t: Tx) {
  const { s } = t;
  const pb = seenPeer(s);
  const m = s.module;
  // A failed start or reintegration is tried again no sooner than retryAt (set by toWait), never in a tight loop.
  const retrying = s.waitReason === 'start-failed' || s.waitReason === 'inconsistent' || s.waitReason === 'vip-conflict';
  if (retrying && s.retryAt !== null && s.mono < s.retryAt) return;
  if (pb) return decideWaitWithPeer(t, pb);
  if (s.waitReason === 'joining') {
    if (s.mono < (s.joinDeadline ?? 0)) return;
    s.joinDeadline = null;
    if (s.p.intent === 'second') return settle(t, 'WAIT', true, 'waiting-primary'), t.note(`waiting for ${s.peer} to run ${m} as primary (\`tandem second\` was asked)`);
    if (!s.p.gen) return settle(t, 'WAIT', true, 'first-start'), t.note(`first start of ${m}: run \`tandem prim -m ${m}\` on the node with the good data, then \`tandem second -m ${m}\` on the other`);
    if (!s.p.consistent) return settle(t, 'WAIT', true, 'inconsistent'), t.note(`local copy of ${m} is incomplete (reintegration was interrupted): waiting for ${s.peer}`);
    if (s.p.cleanSole) return claim(t, { target: 'ALONE', why: 'last node stopped cleanly while alone', peerUnseen: true, forced: false });
    const age = s.p.syncedAt === null ? Infinity : s.wall - s.p.syncedAt;
    if (s.cfg.syncdeltaMs > 0 && age <= s.cfg.syncdeltaMs) {
      return claim(t, { target: 'ALONE', why: `last sync ${Math.round(age / 1000)} s ago is within syncdelta ${s.cfg.syncdeltaMs / 1000} s`, peerUnseen: true, forced: false });
    }
    settle(t, 'WAIT', true, 'not-uptodate');
    return t.note(`${s.peer} not heard: this node cannot know it has the newest data of ${m}, so it waits for ${s.peer}. If ${s.peer} is lost for good, run \`tandem prim -m ${m}\` here.`);
  }
  if ((s.waitReason === 'witness' || s.waitReason === 'vip-conflict') && s.retryAt !== null && s.mono >= s.retryAt) {
    s.retryAt = null;
    return claim(t, { target: 'ALONE', why: `retry after ${s.waitReason}`, peerUnseen: true, forced: false });
  }
}

function decideWaitWithPeer(t: Tx, pb: Beacon) {
  const { s } = t;
  const m = s.module;
  const rel: Relation = relation(s.p, pb);
  if (running(pb.state)) {
    if (s.p.intent === 'second') return becomeSecond(t, `\`tandem second\` asked; ${s.peer} is ${pb.state}`, { quarantine: rel === 'diverged' || rel === 'unrelated', full: true });
    switch (rel) {
      case 'same':
      case 'peer-newer':
        return becomeSecond(t, `${s.peer} is ${pb.state} with ${rel === 'same' ? 'the same' : 'newer'} data`, { quarantine: false, full: !s.p.consistent });
      case 'diverged':
      case 'self-newer':
        return becomeSecond(t, `${s.peer} runs the application and both nodes wrote data (split brain)`, { quarantine: true, full: true });
      case 'self-empty':
        if (s.waitReason !== 'first-start') settle(t, 'WAIT', true, 'first-start');
        return t.note(`${s.peer} runs ${m}; this node has no data for it yet: run \`tandem second -m ${m}\` here to copy ${s.peer}'s data`);
      default:
        t.alarm('unrelated-data', true, `data of ${m} on ${s.self} and ${s.peer} have no common history`);
        if (s.waitReason !== 'unrelated-data') settle(t, 'WAIT', true, 'unrelated-data');
        return t.note(`${m}: the data here and on ${s.peer} have no common history. Run \`tandem second -m ${m}\` on the node whose data must be replaced.`);
    }
  }
  // The peer is not running the application.
  if (s.p.intent === 'second') {
    if (s.waitReason !== 'waiting-primary') settle(t, 'WAIT', true, 'waiting-primary');
    return t.note(`waiting for ${s.peer} to become primary`);
  }
  if (!s.p.consistent) {
    if (s.waitReason !== 'inconsistent') settle(t, 'WAIT', true, 'inconsistent');
    return t.note(`local copy of ${m} is incomplete: it cannot become primary. Run \`tandem prim -m ${m}\` on ${s.peer}.`);
  }
  const claimIt = (why: string) => claim(t, { target: 'ALONE', why, peerUnseen: false, forced: false });
  const waitFor = (reason: WaitReason, msg: string) => {
    if (s.waitReason !== reason) settle(t, 'WAIT', true, reason);
    t.note(msg);
  };
  switch (rel) {
    case 'both-empty':
      return waitFor('first-start', `first start of ${m}: run \`tandem prim -m ${m}\` on the node with the good data, then \`tandem second -m ${m}\` on the other`);
    case 'self-empty':
    case 'peer-newer':
      return waitFor('peer-newer', `${s.peer} has newer data of ${m}${pb.state === 'STOP' ? ` and is stopped: start ${m} there` : `: waiting for it to become primary`}`);
    case 'peer-empty':
    case 'self-newer':
      return claimIt(`this node has the newest data (${rel})`);
    case 'same': {
      // A ready SECOND with our data takes over itself (we rebooted before it noticed): never claim both.
      if (pb.state === 'SECOND' && pb.ready && pb.consistent && peerCanRun(pb)) return waitFor('peer-newer', `${s.peer} is a ready SECOND with the same data: it takes the primary role, this node then rejoins as SECOND`);
      if (pb.state === 'SECOND' && pb.ready && pb.consistent) return claimIt(`same data as ${s.peer}, a SECOND that cannot run the application now`);
      if (pb.intent === 'second' || pb.state === 'STOP' || !pb.consistent) return claimIt(`same data as ${s.peer}, which is ${pb.state}`);
      const wasPrim = (st: ModState) => running(st);
      const me = wasPrim(s.p.lastState);
      const them = wasPrim(pb.lastState);
      const winner = me !== them ? (me ? s.self : s.peer) : s.nodeOrder.find((n) => n === s.self || n === s.peer);
      if (winner === s.self) return claimIt(me !== them ? 'was primary before the outage' : `same data; ${s.self} comes first in cluster.xml`);
      return waitFor('peer-newer', `same data as ${s.peer}, which takes the primary role back`);
    }
    case 'diverged': {
      const w = splitBrainWinner({ node: s.self, gen: s.p.gen, running: false, consistent: s.p.consistent }, { node: s.peer, gen: pb.gen, running: false, consistent: pb.consistent }, s.nodeOrder);
      t.alarm('split-brain', true, `split brain: ${s.self} and ${s.peer} both wrote data of ${m}; ${w} keeps its data`);
      if (w === s.self) return claimIt(`split brain resolved in favour of ${s.self}`);
      return waitFor('peer-newer', `split brain: ${s.peer} keeps its data; this node will resync from it and quarantine its own changes`);
    }
    default:
      t.alarm('unrelated-data', true, `data of ${m} on ${s.self} and ${s.peer} have no common history`);
      return waitFor('unrelated-data', `${m}: the data here and on ${s.peer} have no common history. Run \`tandem prim -m ${m}\` on the node whose data is right.`);
  }
}

/** Is the peer, by this beacon, a live replica of generation `mine`: a SECOND reintegrating from it or ready on it? */
function liveReplicaOf(pb: Beacon, mine: string): boolean {
  if (pb.state !== 'SECOND') return false;
  return pb.ready ? pb.consistent && !!pb.gen && genId(pb.gen) === mine : pb.resyncFrom === mine;
}

/** ALONE or PRIM. */
function decideRunning(t: Tx) {
  const { s } = t;
  if (s.replicationFailed !== null && s.ready) {
    const reason = s.replicationFailed;
    return claim(t, { target: 'ALONE', why: `replication to ${s.peer} failed (${reason})`, peerUnseen: s.state === 'PRIM' && !s.peerUp, forced: false });
  }
  const pb = seenPeer(s);
  const mine = s.p.gen ? genId(s.p.gen) : null;
  if (pb && mine && liveReplicaOf(pb, mine)) s.peerReplicaOf = mine;
  const wasReplica = mine !== null && s.peerReplicaOf === mine;
  if (!pb) {
    if (s.state === 'PRIM') return claim(t, { target: 'ALONE', why: `${s.peer} lost`, peerUnseen: true, forced: false });
    // ALONE, and the lost peer was a live replica of our generation (reintegrating, or ready a heartbeat before we
    // became PRIM): it may be taking over right now. Like a PRIM, keep the application only through the split-brain
    // witness, and in a new generation.
    if (wasReplica) return claim(t, { target: 'ALONE', why: `${s.peer} lost while it was a live replica of ${mine}`, peerUnseen: true, forced: false });
    // With a witness, a node without its peer runs the application only while it reaches the witness.
    if (s.cfg.witness && !s.pending) {
      if (s.witnessAt === null) s.witnessAt = s.mono;
      if (s.mono >= s.witnessAt) {
        s.witnessAt = s.mono + retryInterval(s);
        const id = t.id();
        s.pending = { kind: 'witness', id, purpose: { target: 'ALONE', why: 'witness re-check while alone', peerUnseen: true, forced: false, recheck: true } };
        t.actions.push({ kind: 'check-witness', id });
      }
    }
    return;
  }
  if (s.state === 'ALONE') s.retryAt = null;
  if (running(pb.state)) return resolveBothRunning(t, pb);
  // The peer stopped being a live replica (it stopped, went WAIT, or left its reintegration) after it may have taken
  // a complete copy of our generation: every later write must be in a new one (DRBD starts a new current UUID).
  if (s.state === 'ALONE' && wasReplica && !liveReplicaOf(pb, mine!)) {
    return claim(t, { target: 'ALONE', why: `${s.peer} is ${pb.state}${pb.ready ? '' : ' (transient)'}: no longer a live replica of ${mine}`, peerUnseen: false, forced: false });
  }
  const inSync = pb.state === 'SECOND' && pb.ready && pb.consistent && !!pb.gen && !!s.p.gen && genId(pb.gen) === genId(s.p.gen);
  if (s.state === 'ALONE') {
    if (inSync) {
      t.alarm('split-brain', false);
      settle(t, 'PRIM', true);
      // defaultprim: after reintegration, the preferred node takes the primary role back (once).
      if (s.cfg.defaultprim === s.peer) {
        if (peerCanRun(pb)) s.swapRequest = true;
        else t.log('info', `not giving the primary role back to ${s.peer} (defaultprim): it cannot run the application now (a rule holds it, or it ran out of automatic restarts)`);
      }
    }
    return;
  }
  // PRIM
  if (!inSync) return claim(t, { target: 'ALONE', why: `${s.peer} is ${pb.state}${pb.ready ? '' : ' (transient)'}, not an up-to-date SECOND`, peerUnseen: false, forced: false });
  if ((s.swapRequest || pb.swapRequest) && !peerCanRun(pb)) {
    if (s.swapRequest) t.log('warn', `swap: ${s.peer} cannot run the application now (a rule holds it or it ran out of restarts); staying PRIM`);
    s.swapRequest = false;
    return;
  }
  if (s.swapRequest || pb.swapRequest) {
    t.log('info', `swap: giving the primary role to ${s.peer}`);
    s.swapRequest = false;
    s.yielding = true;
    s.ready = false;
    s.state = 'SECOND';
    t.execute({ kind: 'yield' }, [
      script('stop_prim', 'PRIM', 'SECOND', 'stop'), ...(s.cfg.hasVip ? [{ kind: 'release-vips' } as Step] : []),
      FILES_SECONDARY, script('start_second', 'PRIM', 'SECOND', 'start'),
    ]);
  }
}

/** Both nodes run the application (isolation repaired, or a reattach found a successor): one yields. */
function resolveBothRunning(t: Tx, pb: Beacon) {
  const { s } = t;
  const rel = relation(s.p, pb);
  if (rel === 'peer-newer') return becomeSecond(t, `${s.peer} took over with newer data`, { quarantine: false, full: true });
  if (rel === 'self-newer') return t.note(`${s.peer} runs the application with older data: it will yield to this node`);
  const w = splitBrainWinner({ node: s.self, gen: s.p.gen, running: true, consistent: s.p.consistent }, { node: s.peer, gen: pb.gen, running: true, consistent: pb.consistent }, s.nodeOrder);
  t.alarm('split-brain', true, `split brain: both ${s.self} and ${s.peer} ran ${s.module}; ${w} keeps its data`);
  if (w === s.self) return t.note(`split brain: ${s.self} keeps the application; ${s.peer} resyncs from it`);
  becomeSecond(t, `split brain resolved in favour of ${s.peer} (documented rule)`, { quarantine: true, full: true });
}

function decideSecond(t: Tx) {
  const { s } = t;
  const pb = seenPeer(s);
  if (!pb) {
    if (!s.ready || !s.p.consistent) return leaveUnfinishedCopy(t, `${s.peer} lost before this copy was up to date`);
    if (!(s.p.failover ?? s.cfg.failover)) return toWait(t, 'failover-off', `${s.peer} lost and failover="off": WAIT. Run \`tandem prim -m ${s.module}\` to take over.`);
    return claim(t, { target: 'ALONE', why: `${s.peer} lost`, peerUnseen: true, forced: false });
  }
  const sameGen = !!pb.gen && !!s.p.gen && genId(pb.gen) === genId(s.p.gen);
  if (running(pb.state)) {
    if (s.yielding && pb.state === 'PRIM') s.yielding = false;
    if (!sameGen || !s.p.consistent) {
      return becomeSecond(t, `${s.peer} is ${pb.state} with generation ${pb.gen ? genId(pb.gen) : 'none'}: reintegrating`, { quarantine: false, full: !s.p.consistent });
    }
    if (!s.ready) settle(t, 'SECOND', true);
    return;
  }
  if (!s.ready || !s.p.consistent) return leaveUnfinishedCopy(t, `${s.peer} stopped running ${s.module} before this copy was up to date`);
  if (pb.state === 'SECOND') {
    if (s.yielding) return;
    if (pb.yielding && pb.ready && sameGen) return claim(t, { target: 'PRIM', why: `${s.peer} yielded the primary role (swap)`, peerUnseen: false, forced: false });
    if (pb.yielding) return;
    const first = s.nodeOrder.find((n) => n === s.self || n === s.peer);
    if (first === s.self) return claim(t, { target: 'ALONE', why: `both nodes SECOND; ${s.self} comes first in cluster.xml`, peerUnseen: false, forced: false });
    return;
  }
  // Peer WAIT or STOP: it stopped the application (cleanly, or rebooted) and our copy is complete. Take over unless
  // its data is newer or wins the split-brain rule: then it claims, and we resync from it (both sides agree).
  const rel = relation(s.p, pb);
  if (rel === 'peer-newer' || rel === 'unrelated') return;
  if (rel === 'diverged') {
    const w = splitBrainWinner({ node: s.self, gen: s.p.gen, running: false, consistent: s.p.consistent }, { node: s.peer, gen: pb.gen, running: false, consistent: pb.consistent }, s.nodeOrder);
    if (w !== s.self) return;
  }
  claim(t, { target: 'ALONE', why: `${s.peer} is ${pb.state}`, peerUnseen: false, forced: false });
}
