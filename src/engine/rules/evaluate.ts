import { formatRef } from './format.js';
import { ACTION_PRECEDENCE, type Decision, type Expr, type ResourceRef, type ResourceState, type ResourceView, type Rule } from './types.js';

/**
 * The decision of the rules now: among the rules that hold (see `holding`), the one whose action comes first in
 * ACTION_PRECEDENCE (stop > stopstart > wait > restart > swap), the earliest in `rules` on a tie; null if none holds.
 */
export function evaluate(rules: readonly Rule[], view: ResourceView): Decision | null {
  let best: Decision | null = null;
  for (const d of holding(rules, view)) {
    if (!best || ACTION_PRECEDENCE.indexOf(d.action) < ACTION_PRECEDENCE.indexOf(best.action)) best = d;
  }
  return best;
}

/**
 * Every rule whose condition is true over `view`, in the order of `rules`. A comparison reads:
 * - a named resource: its state; missing, or remote while `view.remote` is null: `unknown`;
 * - `class.*`: true if any resource of the class on that side satisfies it; with none, it compares `unknown`;
 * - `class.?`: one ident for every `?` of the rule; the rule holds if some ident, taken from the resources (both sides)
 *   of the classes its `?` refs name, makes the whole condition true (idents tried in code-unit order, the first that
 *   works explains it); with no such resource, every `?` ref reads `unknown`.
 * `because` names the resources that decided the outcome (`name=state`, remote ones prefixed `remote.`), in the
 * order the condition reads them, without repeats.
 */
export function holding(rules: readonly Rule[], view: ResourceView): Decision[] {
  const out: Decision[] = [];
  for (const r of rules) {
    const because = holds(r.expr, view);
    if (because) out.push({ label: r.label, action: r.action, because, holdMs: r.holdMs });
  }
  return out;
}

/** The resources that make `expr` true, or null when it is false for every binding of `?`. */
function holds(expr: Expr, view: ResourceView): string[] | null {
  const classes = new Set<string>();
  collectQuestionClasses(expr, classes);
  const idents: (string | null)[] = classes.size === 0 ? [] : candidates(classes, view);
  for (const ident of idents.length === 0 ? [null] : idents) {
    const o = ev(expr, view, ident);
    if (o.value) return [...new Set(o.because)];
  }
  return null;
}

interface Outcome {
  value: boolean;
  /** the resources that explain `value`: for true, what made it true; for false, what made it false */
  because: string[];
}

function ev(e: Expr, view: ResourceView, bound: string | null): Outcome {
  switch (e.kind) {
    case 'cmp':
      return cmp(e, view, bound);
    case 'not': {
      const o = ev(e.e, view, bound);
      return { value: !o.value, because: o.because };
    }
    case 'and':
    case 'or': {
      const a = ev(e.a, view, bound);
      const b = ev(e.b, view, bound);
      const value = e.kind === 'and' ? a.value && b.value : a.value || b.value;
      // the sides whose value equals the result explain it (both true for &&, both false for ||, else the decisive one)
      const because = [a, b].filter((o) => o.value === value).flatMap((o) => o.because);
      return { value, because };
    }
  }
}

function cmp(e: Extract<Expr, { kind: 'cmp' }>, view: ResourceView, bound: string | null): Outcome {
  const test = (s: ResourceState): boolean => (e.op === '==') === (s === e.state);
  const side = e.ref.side === 'local' ? view.local : view.remote;
  if (e.ref.ident === '*') {
    const members = side ? ofClass(side, e.ref.cls) : [];
    if (members.length === 0) return { value: test('unknown'), because: [entry(e.ref, 'unknown')] };
    const yes = members.filter(([, s]) => test(s));
    const why = yes.length > 0 ? yes : members;
    return { value: yes.length > 0, because: why.map(([id, s]) => entry({ ...e.ref, ident: id }, s)) };
  }
  const ref = e.ref.ident === '?' && bound !== null ? { ...e.ref, ident: bound } : e.ref;
  const s = ref.ident === '?' ? 'unknown' : side?.get(`${ref.cls}.${ref.ident}`) ?? 'unknown';
  return { value: test(s), because: [entry(ref, s)] };
}

/** [ident, state] of every resource of class `cls` in `m`, by ident in code-unit order. */
function ofClass(m: ReadonlyMap<string, ResourceState>, cls: string): [string, ResourceState][] {
  const prefix = `${cls}.`;
  const out: [string, ResourceState][] = [];
  for (const [name, s] of m) if (name.startsWith(prefix)) out.push([name.slice(prefix.length), s]);
  return out.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

function candidates(classes: Set<string>, view: ResourceView): string[] {
  const ids = new Set<string>();
  for (const m of [view.local, view.remote]) {
    if (!m) continue;
    for (const cls of classes) for (const [id] of ofClass(m, cls)) ids.add(id);
  }
  return [...ids].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

function collectQuestionClasses(e: Expr, into: Set<string>): void {
  if (e.kind === 'cmp') {
    if (e.ref.ident === '?') into.add(e.ref.cls);
  } else if (e.kind === 'not') {
    collectQuestionClasses(e.e, into);
  } else {
    collectQuestionClasses(e.a, into);
    collectQuestionClasses(e.b, into);
  }
}

function entry(ref: ResourceRef, s: ResourceState): string {
  return `${formatRef(ref)}=${s}`;
}
