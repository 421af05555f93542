// Stand-in until the rules module lands (wip/rules).
import type { CheckerConfig, ErrdConfig, FailoverConfig } from '../../config/types.js';
import type { Rule, RuleAction } from './types.js';

export { evaluate, holding } from './evaluate.js';
export { hold, type HoldState } from './hold.js';

const rule = (label: string, cls: string, ident: string, action: RuleAction, holdMs: number | null = null): Rule => ({
  label, action, source: 'default', holdMs, line: 0, column: 0,
  expr: { kind: 'cmp', ref: { side: 'local', cls, ident }, op: '==', state: 'down' },
});

export function defaultRules(cfg: { checkers: CheckerConfig[]; errd: ErrdConfig | null }): Rule[] {
  const out: Rule[] = [];
  const has = (t: string) => cfg.checkers.some((k) => k.type === t && k.action !== 'noaction');
  if (has('intf')) out.push(rule('interface_failure', 'intf', '*', 'wait'));
  if (has('ip')) out.push(rule('ip_failure', 'ip', '*', 'stopstart'));
  if (has('module')) out.push(rule('module_failure', 'module', '*', 'wait'));
  for (const k of cfg.checkers) {
    if (k.action === 'noaction') continue;
    const p = ({ tcp: 't', ping: 'p', custom: 'c' } as Record<string, string>)[k.type];
    if (p) out.push(rule(`${p}_${k.ident}`, k.type, k.ident, k.action));
  }
  for (const pr of cfg.errd?.procs ?? []) if (pr.action !== 'noaction') out.push(rule(`proc_${pr.name}`, 'proc', pr.name, pr.action, 0));
  return out;
}

/** The rules a module runs with: its defaults, and the user's `<failover>` ones (not parsed by this stand-in). */
export function moduleRules(cfg: { checkers: CheckerConfig[]; errd: ErrdConfig | null; rules: FailoverConfig | null }): Rule[] {
  return cfg.rules && !cfg.rules.extends ? [] : defaultRules(cfg);
}
