// Stand-in until the rules module lands (wip/rules): named refs only.
import type { Decision, Expr, ResourceView, Rule } from './types.js';
import { ACTION_PRECEDENCE } from './types.js';

function test(e: Expr, v: ResourceView, because: string[]): boolean {
  switch (e.kind) {
    case 'cmp': {
      const side = e.ref.side === 'local' ? v.local : v.remote;
      const names = e.ref.ident === '*' ? [...(side?.keys() ?? [])].filter((n) => n.startsWith(`${e.ref.cls}.`)) : [`${e.ref.cls}.${e.ref.ident}`];
      for (const n of names.length ? names : [`${e.ref.cls}.*`]) {
        const st = side?.get(n) ?? 'unknown';
        if ((st === e.state) === (e.op === '==')) { because.push(`${e.ref.side === 'remote' ? 'remote.' : ''}${n}=${st}`); return true; }
      }
      return false;
    }
    case 'not': return !test(e.e, v, []);
    case 'and': return test(e.a, v, because) && test(e.b, v, because);
    case 'or': return test(e.a, v, because) || test(e.b, v, because);
  }
}

export function holding(rules: Rule[], v: ResourceView): Decision[] {
  const out: Decision[] = [];
  for (const r of rules) { const b: string[] = []; if (test(r.expr, v, b)) out.push({ label: r.label, action: r.action, because: b, holdMs: r.holdMs }); }
  return out;
}

export function evaluate(rules: Rule[], v: ResourceView): Decision | null {
  const h = holding(rules, v);
  h.sort((a, b) => ACTION_PRECEDENCE.indexOf(a.action) - ACTION_PRECEDENCE.indexOf(b.action));
  return h[0] ?? null;
}
