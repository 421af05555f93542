import type { CheckerConfig, ErrdConfig, FailoverConfig } from '../../config/types.js';
import { BugError, UserError } from '../../errors.js';
import { parseRules } from './parse.js';
import type { Expr, ParsedRules, Rule, RuleAction } from './types.js';

/** The checkers of one type share one default rule, with a fixed action (SafeKit's): the checker's own action only
 *  switches its part of the rule off (`noaction`). */
const SHARED: readonly { type: CheckerConfig['type']; label: string; action: RuleAction }[] = [
  { type: 'intf', label: 'interface_failure', action: 'wait' },
  { type: 'ip', label: 'ip_failure', action: 'stopstart' },
  { type: 'module', label: 'module_failure', action: 'wait' },
];

/** One rule per checker of these types, labelled prefix + ident, with the checker's action. */
const OWN: Partial<Record<CheckerConfig['type'], string>> = { tcp: 't_', ping: 'p_', custom: 'c_' };

/**
 * SafeKit's default rules for a module's checkers and monitored processes, in this order:
 * - `interface_failure: if (intf.* == down) then wait();`, `ip_failure: … ip.* … stopstart();`,
 *   `module_failure: … module.* … wait();`: each once, if a checker of its type has an action other than noaction.
 *   When some checkers of the type have `noaction`, the rule names the others instead of `*`
 *   (`intf.eth0 == down || intf.eth1 == down`), so a noaction checker never triggers it;
 * - `t_<ident>` (tcp), `p_<ident>` (ping), `c_<ident>` (custom): `if (<type>.<ident> == down) then <action>();`, in
 *   checker order, skipping noaction;
 * - `proc_<name>` per errd proc whose action is not noaction: `if (proc.<name> == down) then <action>();` with
 *   `holdMs: 0` (errd acts at once, not after handle_time).
 * All have `source: 'default'`, line and column 0; checker rules have `holdMs: null` (the module's handle_time).
 * The split-brain witness is not a rule: the mirror engine handles it.
 */
export function defaultRules(cfg: { checkers: readonly CheckerConfig[]; errd: ErrdConfig | null }): Rule[] {
  const rules: Rule[] = [];
  for (const s of SHARED) {
    const ofType = cfg.checkers.filter((c) => c.type === s.type);
    const active = ofType.filter((c) => c.action !== 'noaction');
    if (active.length === 0) continue;
    const expr = active.length === ofType.length
      ? down(s.type, '*')
      : active.map((c) => down(s.type, c.ident)).reduce((a, b) => ({ kind: 'or', a, b }));
    rules.push(rule(s.label, expr, s.action, null));
  }
  for (const c of cfg.checkers) {
    const prefix = OWN[c.type];
    if (prefix === undefined || c.action === 'noaction') continue;
    rules.push(rule(`${prefix}${c.ident}`, down(c.type, c.ident), c.action, null));
  }
  for (const p of cfg.errd?.procs ?? []) {
    if (p.action !== 'noaction') rules.push(rule(`proc_${p.name}`, down('proc', p.name), p.action, 0));
  }
  const labels = new Set<string>();
  for (const r of rules) {
    if (labels.has(r.label)) throw new BugError(`default rule label "${r.label}" twice: checker idents and proc names should be unique`);
    labels.add(r.label);
  }
  return rules;
}

/**
 * The rules a module runs. With `extends`: the defaults, less those the user disabled or redefined (same label),
 * followed by the user's rules in text order. Without: only the user's rules.
 * A `label: disabled;` that removes nothing is a UserError (with its position in `user.file`): without `extends` there
 * are no defaults to remove, and with it the label must be a default rule's, or the rule the user meant to switch
 * off would still run.
 */
export function mergeRules(defaults: readonly Rule[], user: ParsedRules, opts: { extends: boolean }): Rule[] {
  const where = (d: { line: number; column: number }): string => `${user.file} line ${d.line}, column ${d.column}`;
  if (!opts.extends) {
    const d = user.disabled[0];
    if (d) {
      throw new UserError(`${where(d)}: "${d.label}: disabled;" has no effect: with extends="no" only the rules written in <failover> run. Remove it, or set extends="yes".`);
    }
    return [...user.rules];
  }
  for (const d of user.disabled) {
    if (!defaults.some((r) => r.label === d.label)) {
      const known = defaults.length === 0 ? 'This module has no default rules' : `The default rules are ${defaults.map((r) => r.label).join(', ')}`;
      throw new UserError(`${where(d)}: "${d.label}: disabled;" names no default rule. ${known}. Correct the label or remove the line.`);
    }
  }
  const gone = new Set([...user.disabled.map((d) => d.label), ...user.rules.map((r) => r.label)]);
  return [...defaults.filter((r) => !gone.has(r.label)), ...user.rules];
}

/**
 * All the rules of a module: its defaults merged with its `<failover>` text (none: the defaults only). `file` names
 * userconfig.xml in messages.
 */
export function moduleRules(
  cfg: { checkers: readonly CheckerConfig[]; errd: ErrdConfig | null; rules: FailoverConfig | null },
  file: string,
): Rule[] {
  const defaults = defaultRules(cfg);
  if (!cfg.rules) return defaults;
  const user = parseRules(cfg.rules.text, { file, line: cfg.rules.line, column: cfg.rules.column });
  return mergeRules(defaults, user, { extends: cfg.rules.extends });
}

function down(cls: string, ident: string): Expr {
  return { kind: 'cmp', ref: { side: 'local', cls, ident }, op: '==', state: 'down' };
}

function rule(label: string, expr: Expr, action: RuleAction, holdMs: number | null): Rule {
  return { label, expr, action, source: 'default', holdMs, line: 0, column: 0 };
}
