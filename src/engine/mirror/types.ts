/**
 * Types of the mirror module engine. The engine is pure: `step(state, event) → {state, actions}` (./step.ts).
 * Time arrives only in events (`mono` for timeouts, `wall` for what must survive a reboot).
 */
import type { CheckWhen } from '../../config/types.js';
import type { Decision, ResourceState, Rule } from '../rules/types.js';
import type { HoldState } from '../rules/hold.js';
import type { MonitorPhase } from './health.js';

export type ModState = 'STOP' | 'WAIT' | 'ALONE' | 'PRIM' | 'SECOND';

/** SafeKit's `tandem state` exit codes: STOP 0, WAIT 1, ALONE 2, PRIM 3, SECOND 4. */
export const STATE_EXIT_CODE: Record<ModState, number> = { STOP: 0, WAIT: 1, ALONE: 2, PRIM: 3, SECOND: 4 };

/**
 * A data generation: one period during which one node wrote the replicated data. `id` is `<n>@<node>`.
 * A node starts a new generation each time it becomes ALONE (it writes without its peer); a SECOND that finishes
 * reintegration adopts its primary's generation. `from` is the state the node left to start it, which decides
 * who resyncs after a split brain (the node that kept the application, from PRIM, wins over the one that took over).
 */
export interface Gen {
  n: number;
  node: string;
  from: ModState;
}

/**
 * What survives a reboot, per module (state/<module>.json). Contract: written (fsync'd) by the driver before any
 * action that follows it in the same action list is applied, and before any heartbeat that reflects it is sent.
 */
export interface Persisted {
  /** what the administrator last asked; `run` modules are started again when the daemon starts */
  wanted: 'run' | 'stop';
  /** last settled state */
  lastState: ModState;
  /** generation of the local data; null = this node never had data for the module */
  gen: Gen | null;
  /** ids of earlier generations of the local data, newest first (bounded) */
  history: string[];
  /**
   * false from the moment a reintegration begins changing the local copy until it completes (`copy-begins`); an
   * inconsistent copy is never promoted
   */
  consistent: boolean;
  /** stopped cleanly while it was the only node running the module: may start ALONE without seeing its peer */
  cleanSole: boolean;
  /** wall-clock ms when the data was last known to be the newest (PRIM, ALONE, SECOND ready); null = never */
  syncedAt: number | null;
  /** `tandem second` was run: join as secondary and take the peer's data */
  intent: 'none' | 'second';
  /** the next reintegration compares every file (`--fullsync`) */
  fullsync: boolean;
  /** automatic restarts (errd, failover rules) with their reason, oldest first; those within loop_interval count */
  loops: { at: number; reason: string }[];
  /** `tandem errd off` / `tandem checker off`: process monitoring / checkers suspended (maintenance) */
  errd: boolean;
  checkers: boolean;
  /** `tandem failover on|off`: overrides the configuration's `failover` until changed again; null = as configured */
  failover: boolean | null;
}

/** What each node tells its peer about one module in every heartbeat. A state, never a one-shot message. */
export interface Beacon {
  v: 1;
  module: string;
  state: ModState;
  ready: boolean;
  gen: Gen | null;
  history: string[];
  consistent: boolean;
  lastState: ModState;
  intent: 'none' | 'second';
  /** SECOND asks its PRIM to exchange roles */
  swapRequest: boolean;
  /** PRIM is giving the primary role to its SECOND (swap) */
  yielding: boolean;
  /** a reintegrating SECOND: the primary's generation it is copying (null otherwise) */
  resyncFrom: string | null;
  /** hash of the module's configuration, to detect nodes configured differently */
  configHash: string;
  /** the sender's resources (absent from older versions) */
  resources?: Record<string, ResourceState>;
  /** false while the sender may not run the application by itself: a failover rule holds it in WAIT, or it ran out of
   *  automatic restarts (absent = true) */
  canRun?: boolean;
}

/** Module configuration the engine needs (derived from MirrorModuleConfig). */
export interface EngineConfig {
  pulseMs: number;
  timeoutMs: number;
  failover: boolean;
  syncdeltaMs: number;
  lans: string[];
  hasVip: boolean;
  witness: boolean;
  /** `alone` or the node that should be primary when both run (swap back after reintegration) */
  defaultprim: string;
  configHash: string;
  /** the module has replicated directories (resource `rfs.uptodate`) */
  hasRfs: boolean;
  /** failover rules (defaults merged with the user's), evaluated over the resources */
  rules: Rule[];
  /** a decided action must hold this long before it is taken (a rule's own `holdMs` overrides it) */
  handleTimeMs: number;
  /** automatic restarts allowed within loopIntervalMs before the node gives up on running the application */
  maxloop: number;
  loopIntervalMs: number;
  /** every resource a checker of this node reports, with when it is watched and who watches it */
  monitored: { resource: string; when: CheckWhen; by: 'errd' | 'checker' }[];
  /**
   * How long before the heartbeat timeout a SECOND that would take over probes its VIPs (the probe's expected
   * duration), so that the probe's wait overlaps the end of detection instead of following it (see `probeAhead` in
   * step.ts). 0 or absent: the VIPs are probed when the claim is made, as with a witness.
   */
  probeAheadMs?: number;
}

/** Why a module is in WAIT; shown by `tandem status`. */
export type WaitReason =
  | 'joining'
  | 'first-start'
  | 'not-uptodate'
  | 'peer-newer'
  | 'witness'
  | 'vip-conflict'
  | 'failover-off'
  | 'start-failed'
  | 'inconsistent'
  | 'unrelated-data'
  | 'config-differs'
  | 'waiting-primary'
  /** a failover rule's `wait()` holds (a `pre` checker down, the interface down, another module not running…) */
  | 'checker'
  /** more automatic restarts than maxloop within loop_interval: `tandem resetloop` lets it run again */
  | 'maxloop';

/** What the engine is waiting for (at most one at a time). */
export type Pending =
  | { kind: 'plan'; id: number; purpose: PlanPurpose }
  | { kind: 'witness'; id: number; purpose: ClaimPurpose }
  /** `ahead`: the probe was asked ahead of the claim (`MirrorState.aheadProbe`), at that monotonic ms */
  | { kind: 'probe'; id: number; purpose: ClaimPurpose; ahead?: number };

/**
 * A VIP probe a SECOND asked while its peer was silent, before the heartbeat timeout: `inUse` is null while it runs.
 * Its answer stands for a claim only if it found every VIP free and was asked after the last heartbeat heard.
 */
export interface AheadProbe {
  id: number;
  askedAt: number;
  inUse: { addr: string; by?: string }[] | null;
}

export type PlanPurpose =
  | { kind: 'prestart'; then: 'join' | 'prim' }
  /** `sourceGen`: for SECOND, the primary's generation the reintegration copies; the copy is only good for that one */
  /**
   * `abandoned` (SECOND): the engine gave up this plan's reintegration (its source was lost or stopped running it, or
   * moved to another generation: `restart`); the plan still runs to its end, its reintegration failing at once, so
   * that the steps before it (stop_prim, VIP release) are never cut short.
   */
  | { kind: 'become'; target: ModState; gen?: Gen; sourceGen?: string; quarantine?: boolean; abandoned?: { why: string; restart: boolean } }
  | { kind: 'stop'; force: boolean }
  | { kind: 'to-wait'; reason: WaitReason }
  /** `auto`: decided by a rule or errd (the reason, counted in the loops) rather than asked by the administrator */
  | { kind: 'restart'; auto?: string }
  /** a rule's or errd's `stopstart()`: stop here (a ready peer takes over), then start again (it rejoins) */
  | { kind: 'stopstart'; reason: string }
  /** swap: PRIM hands over to its ready SECOND and becomes a ready SECOND on the same generation */
  | { kind: 'yield' }
  | { kind: 'resync' }
  | { kind: 'cleanup' };

/** Why we are claiming the primary role. */
export interface ClaimPurpose {
  /** `alone`: new generation, app started; `prim`: swap, same generation, peer stays SECOND */
  target: 'ALONE' | 'PRIM';
  /** why (logged) */
  why: string;
  /** the peer cannot be seen: the split-brain witness must be reachable first */
  peerUnseen: boolean;
  /** administrator forced it (`tandem prim`) */
  forced: boolean;
  /** an ALONE node without its peer re-checking the witness: keep running (no new generation) or stop */
  recheck?: boolean;
}

export interface Alarm {
  code: string;
  message: string;
  since: number;
}

export interface MirrorState {
  module: string;
  self: string;
  peer: string;
  /** cluster.xml node order: the last tie-break */
  nodeOrder: string[];
  cfg: EngineConfig;
  p: Persisted;

  state: ModState;
  /** false = transient (scripts or reintegration running) */
  ready: boolean;
  waitReason: WaitReason | null;
  /** monotonic ms of the last event */
  mono: number;
  /** wall-clock ms of the last tick */
  wall: number;
  /** monotonic ms at which the join/reattach window ends and the peer counts as absent */
  joinDeadline: number | null;
  /** reattaching after a daemon restart: the application may be running, nothing is restarted */
  reattach: boolean;
  /** monotonic ms of the next retry of a refused claim (witness unreachable, VIP in use) */
  retryAt: number | null;
  /**
   * monotonic ms of the next split-brain witness check of an ALONE node without its peer: due at once when the peer is
   * lost, then every retry interval. Its own clock: a transition (an administrator's restart) does not postpone it.
   */
  witnessAt: number | null;
  /** last monotonic ms a heartbeat arrived on each LAN */
  lanHeard: Record<string, number | null>;
  /** the peer's last beacon (kept after loss for display) */
  peerBeacon: Beacon | null;
  peerUp: boolean;
  /** monotonic ms since which the peer is continuously up */
  peerUpSince: number | null;
  /**
   * Running (ALONE/PRIM): our generation the peer may hold as a live replica, because it was seen as a SECOND
   * reintegrating from it or ready on it. When the peer stops being a live replica (seen otherwise, or lost), this
   * node starts a new generation before it goes on writing (DRBD's rule), so that the peer's copy, labelled with
   * the old generation, can never again pass for "the same data". Not persisted: a reattaching node assumes it.
   */
  peerReplicaOf: string | null;
  /** swap asked on this node */
  swapRequest: boolean;
  yielding: boolean;
  pending: Pending | null;
  /** the VIP probe asked ahead of the heartbeat timeout (at most one runs at a time), or null */
  aheadProbe: AheadProbe | null;
  /** admin commands that arrived while a plan ran */
  queued: AdminCommand[];
  nextId: number;
  alarms: Alarm[];
  /** last wall ms syncedAt was persisted (throttle) */
  syncPersistedAt: number;
  /** last message logged for a waiting decision (avoid repeating it every tick) */
  lastNote: string | null;
  /** the checkers' last reports, by resource (wall ms of the last change) */
  resources: Record<string, { state: ResourceState; since: number; detail: string }>;
  /** the monitoring phase last announced to the driver (`monitor` action) */
  phase: MonitorPhase;
  /** what the failover rules decide now (null: nothing holds), and its handle_time tracking */
  decision: Decision | null;
  ruleHold: HoldState | null;
  /** a `wait()` that fired and still holds: the node stays in WAIT [checker] */
  ruleWait: Decision | null;
  /**
   * A write could not be replicated (`replication-failed`) while a plan ran: the new generation is claimed as soon as
   * no plan runs. The replicator reports a failure once; the engine keeps it until it acted.
   */
  replicationFailed: string | null;
  /**
   * The replicated directories' server died (`files-lost`) while the module ran or was SECOND here: the module is
   * stopped (forced) and started again as soon as no plan runs.
   */
  filesLost: string | null;
}

// ───────────────────────────── events ─────────────────────────────

export type AdminVerb = 'start' | 'stop' | 'forcestop' | 'restart' | 'prim' | 'second' | 'swap'
  | 'resetloop' | 'errd-on' | 'errd-off' | 'checker-on' | 'checker-off' | 'failover-on' | 'failover-off';

export interface AdminCommand {
  kind: 'admin';
  reqId: number;
  verb: AdminVerb;
  fullsync?: boolean;
}

export type MirrorEvent =
  /** `reattach`: the state recorded in the run marker (the daemon restarted, the host did not); null after a reboot */
  | { kind: 'boot'; mono: number; wall: number; reattach: ModState | null }
  | { kind: 'tick'; mono: number; wall: number }
  | { kind: 'heartbeat'; mono: number; lan: string; beacon: Beacon }
  | AdminCommand
  | { kind: 'plan-done'; id: number; ok: boolean; error?: string }
  /**
   * The replication layer could not get a write onto the SECOND (link lost, disk full, I/O error). Contract: the
   * driver holds that write's acknowledgement until the engine has left PRIM (new generation persisted, so the
   * SECOND is outdated) — a write the SECOND did not take is never reported replicated.
   */
  | { kind: 'replication-failed'; reason: string }
  /**
   * SECOND (async="second"): a change this node acknowledged on receipt could not be applied (disk full, I/O error).
   * Its copy is behind what the primary counts as replicated: the engine persists `consistent: false` before
   * anything else, so this copy is never promoted until a reintegration brings it up to date.
   */
  | { kind: 'copy-behind'; reason: string }
  /**
   * The process that serves the replicated directories (the module's replication host) died while they were in the
   * primary or secondary layout: the application works on a dead mount (PRIM/ALONE) or the copy receives nothing
   * (SECOND). A local failure: the module is stopped here with the forced stop scripts, its layout and VIP
   * cleaned up, and started again (a ready SECOND takes over meanwhile; see `stopStart`).
   */
  | { kind: 'files-lost'; reason: string }
  /**
   * The reintegration of plan `id` is about to change the local copy (it reached its source, which runs the module
   * on the expected generation). The engine persists `consistent: false` and answers `copy-may-begin`; until then
   * the copy is untouched and still exactly its generation, so a reintegration that never began leaves it promotable.
   */
  | { kind: 'copy-begins'; id: number }
  /**
   * A checker's report, or `tandem set` for a custom checker. Ignored for a resource whose checker is not active in
   * the current monitoring phase (a late report after it stopped).
   */
  | { kind: 'resource'; name: string; state: ResourceState; detail: string }
  | { kind: 'witness-result'; id: number; reachable: boolean }
  | { kind: 'probe-result'; id: number; inUse: { addr: string; by?: string }[] };

// ───────────────────────────── actions ─────────────────────────────

/** One step of a plan, run by the driver in order. */
export type Step =
  | { kind: 'script'; script: 'prestart' | 'start_prim' | 'stop_prim' | 'start_second' | 'stop_second' | 'poststop'; args: string[] }
  | { kind: 'acquire-vips' }
  | { kind: 'release-vips' }
  /** reintegrate the local copy from the peer; `quarantine`: keep local divergent files aside (split brain) */
  /** `sourceGen`: the peer's generation when the plan was made; the copy is only good for that one */
  | { kind: 'resync'; from: string; full: boolean; quarantine: boolean; sourceGen: string | null }
  | { kind: 'cancel-resync' }
  /**
   * the replicated directories' role: `primary` = interception mounted over them (before start_prim: every change
   * of the application goes through replication); `secondary` = read-only for applications, the copy is updated from
   * the peer; `off` = neither (after stop_prim / stop_second). Idempotent.
   */
  | { kind: 'files'; role: 'primary' | 'secondary' | 'off'; primary?: PrimaryFiles };

/**
 * How the primary layout starts: `gen` is the generation the application writes in. `awaitPeer` (after a swap): the
 * ready SECOND holds `gen` and reattaches its live stream; else changes are recorded for the peer, whose copy holds
 * at best `recordBase` (the generation before `gen`).
 */
export interface PrimaryFiles {
  gen: string;
  awaitPeer: boolean;
  recordBase: string | null;
}

/**
 * What the engine tells the replication layer it decided (explicit, never observed):
 * - `outdated`: generation `gen` is persisted while this node runs the application; the SECOND, which holds at best
 *   `peerHolds`, is outdated: changes it did not take are recorded (and released) from now on;
 * - `follow`: this node is a ready SECOND of a PRIM on `gen`: keep the live stream from it attached;
 * - `unfollow`: no longer (the replicator stops trying to attach).
 */
export type ReplicationDirective =
  | { kind: 'outdated'; gen: string; peerHolds: string | null }
  | { kind: 'follow'; gen: string }
  | { kind: 'unfollow' };

/**
 * Actions, applied by the driver in array order. The engine emits them in this documented order:
 *   1. `persist`      — durable before anything that depends on it (a generation is on disk before the
 *                       application can write in it; a heartbeat never announces an unpersisted state);
 *   2. `run-marker`   — runtime record (run dir, wiped at reboot) of the current state: after a daemon restart
 *                       it tells which state to reattach to (the application may be running);
 *   3. `log`, `alarm` — observability;
 *   4. `execute`, `abort`, `abandon-resync`, `copy-may-begin`, `check-witness`, `probe-vips`, `monitor`,
 *                       `replication` — work whose result returns as an event (a `replication` directive after the
 *                       persist of the generation it names);
 *   5. `reply`        — the answer to an administrator's command, last, so a reply never precedes its effect.
 * A plan with `bestEffort` keeps going after a failed step (stop and cleanup plans: the VIP is released even if
 * stop_prim fails); otherwise the first failed step ends it. The VIP is always released before a plan that stops the
 * module reports done, so the node never reports STOP while holding it.
 */
export type Action =
  | { kind: 'persist'; p: Persisted }
  /** runtime record (wiped at reboot) of the module's current state; `null` removes it (STOP) */
  | { kind: 'run-marker'; state: ModState | null }
  | { kind: 'log'; level: 'info' | 'warn' | 'error'; msg: string }
  | { kind: 'alarm'; code: string; on: boolean; msg: string }
  | { kind: 'execute'; id: number; steps: Step[]; bestEffort: boolean }
  | { kind: 'abort'; id: number }
  /** the reintegration step of plan `id` ends at once, or fails as soon as it is reached; the plan then reports done */
  | { kind: 'abandon-resync'; id: number }
  /**
   * Which checkers must run now: those active in `phase` (see health.ts), the processes only if `errd`, the others
   * only if `checkers`. Emitted when any of it changes; the driver starts and stops checkers to match.
   */
  | { kind: 'monitor'; phase: MonitorPhase; errd: boolean; checkers: boolean }
  /** a decision the replication layer must know (see ReplicationDirective) */
  | { kind: 'replication'; directive: ReplicationDirective }
  /** the copy of plan `id` may now be changed: `consistent: false` is persisted (answers `copy-begins`) */
  | { kind: 'copy-may-begin'; id: number }
  | { kind: 'check-witness'; id: number }
  | { kind: 'probe-vips'; id: number }
  | { kind: 'reply'; reqId: number; ok: boolean; message: string };

export interface StepResult {
  state: MirrorState;
  actions: Action[];
}
