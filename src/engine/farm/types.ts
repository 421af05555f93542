/**
 * The farm engine's state, events and actions. Pure data: src/engine/farm/step.ts decides, the farm driver
 * (src/daemon/farm-driver.ts) does the I/O. Time arrives in events (`mono`, milliseconds, never decreasing).
 */
import type { CheckWhen } from '../../config/types.js';
import type { HoldState } from '../rules/hold.js';
import type { ResourceState, Rule, RuleAction } from '../rules/types.js';
import type { MonitorPhase } from '../mirror/health.js';
import type { Member } from './buckets.js';

export type FarmModState = 'STOP' | 'WAIT' | 'UP';

/** `tandem state` exit codes of a farm module (as SafeKit: UP shares ALONE's 2). */
export const FARM_STATE_EXIT_CODE: Record<FarmModState, number> = { STOP: 0, WAIT: 1, UP: 2 };

/** What a farm node announces to every other node of the cluster, each pulse on each of the module's LANs. */
export interface FarmBeacon {
  /** tells a farm beacon from a mirror one */
  kind: 'farm';
  module: string;
  state: FarmModState;
  ready: boolean;
  /**
   * The nodes this node counts as serving (UP and ready, itself included when it is), sorted. A node accepts a
   * bucket only if it owns it among its own members AND no other serving node owns it among that node's members:
   * while two nodes' views differ (one has not heard a change yet) a bucket has no owner rather than two.
   */
  members: string[];
  /** configuration fingerprint: nodes with different farm configurations never share buckets */
  configHash: string;
}

export interface FarmEngineConfig {
  pulseMs: number;
  timeoutMs: number;
  lans: string[];
  /** load-balancing groups: their hosts and powers (bucket ownership is computed per group) */
  groups: { name: string; hosts: Member[] }[];
  hasVip: boolean;
  rules: Rule[];
  handleTimeMs: number;
  /** automatic restarts allowed in `loopIntervalMs` before the node stops the module */
  maxloop: number;
  loopIntervalMs: number;
  /** the resources the module's checkers report, and when each is watched */
  monitored: { resource: string; when: CheckWhen }[];
  configHash: string;
}

/** A peer as this node last heard it, for this module. */
export interface FarmPeer {
  /** mono of the last beacon, per LAN */
  heard: Record<string, number>;
  beacon: FarmBeacon;
}

export type FarmStep =
  | { kind: 'script'; script: 'prestart' | 'start_both' | 'stop_both' | 'poststop'; args: string[] }
  | { kind: 'filter-install' }
  | { kind: 'filter-remove' }
  | { kind: 'acquire-vips' }
  | { kind: 'release-vips' };

/** Why a plan runs: what the module becomes when it ends. */
export type FarmPurpose =
  | { kind: 'start' }
  /** stop to STOP (`stop`), or to WAIT until the rules no longer say wait (`wait`) */
  | { kind: 'stop'; to: 'STOP' | 'WAIT' }
  /** stop_both then start_both, the node leaving the members meanwhile */
  | { kind: 'restart' };

export interface FarmState {
  module: string;
  self: string;
  cfg: FarmEngineConfig;
  state: FarmModState;
  ready: boolean;
  /** the administrator wants the module running on this node (persisted: a reboot starts it again) */
  run: boolean;
  /** why the node is in WAIT (the rule and resources), null otherwise */
  waitReason: string | null;
  peers: Record<string, FarmPeer>;
  /** the buckets this node's filter accepts, per group name (what the last `filter` action set) */
  owned: Record<string, number[]>;
  /**
   * What `owned` was computed from (ownershipInputs): a step whose inputs are the same keeps `owned` without
   * recomputing 256 buckets per group and peer. null: not computed yet.
   */
  ownedFrom: string | null;
  pending: { id: number; purpose: FarmPurpose } | null;
  resources: Record<string, { state: ResourceState; since: number; detail: string }>;
  hold: HoldState | null;
  /** mono of each automatic restart in the loop window */
  loops: number[];
  nextId: number;
  mono: number;
  /** the monitoring phase last announced */
  phase: MonitorPhase;
}

export type FarmAdminVerb = 'start' | 'stop' | 'restart';

export type FarmEvent =
  /** `reattach`: the daemon restarted while the module ran here (the application, VIPs and filter are still in place) */
  | { kind: 'boot'; mono: number; run: boolean; reattach?: boolean }
  | { kind: 'tick'; mono: number }
  | { kind: 'heartbeat'; mono: number; lan: string; from: string; beacon: FarmBeacon }
  | { kind: 'admin'; reqId: number; verb: string }
  | { kind: 'plan-done'; id: number; ok: boolean; error?: string }
  | { kind: 'resource'; name: string; state: ResourceState; detail?: string };

export type FarmAction =
  | { kind: 'persist'; run: boolean }
  | { kind: 'execute'; id: number; steps: FarmStep[]; bestEffort: boolean }
  /** set the buckets the filter accepts (the filter is installed); applied before the next action */
  | { kind: 'filter'; owned: Record<string, number[]> }
  | { kind: 'monitor'; phase: MonitorPhase }
  | { kind: 'log'; level: 'info' | 'warn' | 'error'; msg: string }
  | { kind: 'reply'; reqId: number; ok: boolean; message: string };

export interface FarmStepResult {
  state: FarmState;
  actions: FarmAction[];
}

export type { RuleAction };
