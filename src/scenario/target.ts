import type { CheckWhen } from '../config/types.js';
import type { AdminVerb, ModState } from '../engine/mirror/types.js';
import type { ResourceState, RuleAction } from '../engine/rules/types.js';

/** What a scenario can observe of one node's module. */
export interface NodeObservation {
  /** false when the node is powered off or its daemon does not answer */
  up: boolean;
  state?: ModState;
  ready?: boolean;
  waitReason?: string | null;
  alarms?: string[];
  generation?: string | null;
}

export interface Reply {
  ok: boolean;
  message: string;
}

/**
 * What a scenario script drives: the simulator (src/scenario/sim-target.ts) or the real namespace lab
 * (src/lab/lab-target.ts). Contract: actions return once issued (not once their effects settled); observations
 * are instantaneous; `eventually` is how expectations wait — the simulator's clock is frozen between verbs so it
 * checks once, the lab polls until `ms` pass.
 */
export interface ScenarioTarget {
  readonly nodes: string[];
  configure(settings: Record<string, string>): Promise<void>;
  boot(node: string): Promise<void>;
  powerOff(node: string): Promise<void>;
  killDaemon(node: string): Promise<void>;
  admin(node: string, verb: AdminVerb, fullsync: boolean): Promise<Reply>;
  cut(lan: string, node?: string): Promise<void>;
  heal(): Promise<void>;
  lans(): string[];
  witness(node: string, reachable: boolean): Promise<void>;
  failScript(node: string, script: string, fail: boolean): Promise<void>;
  run(ms: number): Promise<void>;
  observe(node: string): Promise<NodeObservation>;
  vipHolders(): Promise<string[]>;
  appNodes(): Promise<string[]>;
  /** true when the condition holds now or (lab) becomes true within `ms` */
  eventually(ms: number, cond: () => Promise<boolean>): Promise<boolean>;
  /** invariant violations seen so far */
  violations(): string[];
  /** a line describing every node, for failure messages */
  describe(): Promise<string>;
  /**
   * The simulator's checkers (null: this target takes its checkers from the module's real configuration).
   * `add` must come before the first boot.
   */
  checkers(): ScenarioCheckers | null;
  /** ms since the scenario began (the simulator's clock; the lab's wall clock since its first verb) */
  elapsedMs(): number;
  /**
   * The modelled application's acknowledged writes (simulator only; the lab's durability tests use a real
   * application, test/lab/appender.test.ts). `null`: this target has no such model.
   */
  writes(): ScenarioWrites | null;
}

/** Checkers in the simulator: declared with their default rule, reported by hand (or by errd's model of the app). */
export interface ScenarioCheckers {
  add(resource: string, when: CheckWhen, action: RuleAction | 'noaction', by: 'errd' | 'checker'): void;
  /** a failover rule in SafeKit's language, after the checkers' default ones (a same label replaces one) */
  rule(text: string): void;
  report(node: string, resource: string, state: ResourceState): void;
  /** the application's process dies (errd reports `proc.app` down when it watches it) */
  killApp(node: string): void;
  /** the replicator of `node` reports a change it acknowledged but could not apply */
  copyBehind(node: string): void;
  resource(node: string, resource: string): ResourceState | null;
}

/** The simulator's model application: it writes every 100 ms on the node that runs it. */
export interface ScenarioWrites {
  enable(on: boolean): void;
  /** acknowledged writes on neither `node` nor any split-brain quarantine */
  lost(node: string): number[];
  /** the ids of the writes a node's copy holds */
  held(node: string): number[];
}
