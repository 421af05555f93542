import type { Expr, ResourceRef, Rule } from './types.js';

/** `remote.intf.eth0`, `ip.*`: the reference as the language writes it (local refs without the optional `local.`). */
export function formatRef(ref: ResourceRef): string {
  return `${ref.side === 'remote' ? 'remote.' : ''}${ref.cls}.${ref.ident}`;
}

/** The expression in the rule language with the fewest parentheses that parse back to the same tree
 *  (`parseRules(formatRule(r))` gives `r` again, positions aside). A negation always parenthesizes its operand. */
export function formatExpr(e: Expr): string {
  return fmt(e, 0);
}

/** `label: if (expr) then action();` */
export function formatRule(r: Pick<Rule, 'label' | 'expr' | 'action'>): string {
  return `${r.label}: if (${formatExpr(r.expr)}) then ${r.action}();`;
}

// Binding strength: || 1, && 2, ! 3. Operators associate to the left, so a right operand of the same strength is
// parenthesized.
function fmt(e: Expr, outer: number): string {
  switch (e.kind) {
    case 'cmp':
      return `${formatRef(e.ref)} ${e.op} ${e.state}`;
    case 'not':
      return e.e.kind === 'not' ? `!${fmt(e.e, 3)}` : `!(${fmt(e.e, 0)})`;
    case 'and':
      return wrap(`${fmt(e.a, 2)} && ${fmt(e.b, 3)}`, outer > 2);
    case 'or':
      return wrap(`${fmt(e.a, 1)} || ${fmt(e.b, 2)}`, outer > 1);
  }
}

function wrap(s: string, paren: boolean): string {
  return paren ? `(${s})` : s;
}
