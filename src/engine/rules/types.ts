/**
 * Resources and failover rules (SafeKit's `<failover>` language). Pure: the engine evaluates rules over the resources
 * it holds (local ones from checkers, remote ones from the peer's beacon); checkers only report states.
 *
 * A resource is `class.ident` (`proc.web`, `tcp.http`, `ping.router`, `intf.eth0`, `ip.198.51.100.10`,
 * `custom.db`, `module.backend`, `splitbrain.witness`, `rfs.uptodate`, `heartbeat.default`). Its ident may contain
 * dots. A resource that does not exist, or a remote one while the peer is not heard, reads as `unknown`.
 */
export type ResourceState = 'init' | 'up' | 'down' | 'unknown';

export const RESOURCE_STATES: readonly ResourceState[] = ['init', 'up', 'down', 'unknown'];

/** The classes a rule may name. A rule naming any other class is a UserError: a misspelt class would read `unknown`
 *  forever and its rule would silently never (or always) hold. A new kind of resource adds its class here. */
export const RESOURCE_CLASSES: readonly string[] = [
  'proc', 'tcp', 'ping', 'intf', 'ip', 'custom', 'module', 'splitbrain', 'rfs', 'heartbeat',
];

/** What a rule makes the module do. Precedence when several rules hold: stop > stopstart > wait > restart > swap. */
export type RuleAction = 'stop' | 'stopstart' | 'wait' | 'restart' | 'swap';

export const ACTION_PRECEDENCE: readonly RuleAction[] = ['stop', 'stopstart', 'wait', 'restart', 'swap'];

/** The resources a rule reads: this node's, and the peer's as its last beacon showed them (null: peer not heard). */
export interface ResourceView {
  local: ReadonlyMap<string, ResourceState>;
  remote: ReadonlyMap<string, ResourceState> | null;
}

/** A reference in a rule: `[local.|remote.]class.ident`, ident `*` (any) or `?` (the same ident everywhere in the rule). */
export interface ResourceRef {
  side: 'local' | 'remote';
  cls: string;
  /** a name, `*` or `?` */
  ident: string;
}

export type Expr =
  | { kind: 'cmp'; ref: ResourceRef; op: '==' | '!='; state: ResourceState }
  | { kind: 'not'; e: Expr }
  | { kind: 'and'; a: Expr; b: Expr }
  | { kind: 'or'; a: Expr; b: Expr };

export interface Rule {
  label: string;
  expr: Expr;
  action: RuleAction;
  /** where it came from: a default rule of the configuration, or the user's `<failover>` text */
  source: 'default' | 'user';
  /** how long the rule must hold before its action is taken; null = the module's handle_time */
  holdMs: number | null;
  /** 1-based line and column in userconfig.xml (user rules), for messages */
  line: number;
  column: number;
}

/** The action the rules decide now, the rule that decided it, and the resources that made it true (for status/log). */
export interface Decision {
  label: string;
  action: RuleAction;
  /** e.g. ['ping.router=down'] or ['remote.intf.eth0=up', 'intf.eth0=down'] */
  because: string[];
  holdMs: number | null;
}

/** `label: disabled;` in the user's text: the default rule with this label is removed (only with `extends="yes"`). */
export interface RuleDisable {
  label: string;
  line: number;
  column: number;
}

/** What `parseRules` reads from one `<failover>` text: its rules and its disables, in text order, labels unique across
 *  both; `file` is the file the text came from, for messages about them later (`mergeRules`). */
export interface ParsedRules {
  file: string;
  rules: Rule[];
  disabled: RuleDisable[];
}
