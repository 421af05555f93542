import { UserError } from '../../errors.js';
import { formatExpr } from './format.js';
import { lex, type TextStart, type Token } from './lex.js';
import {
  ACTION_PRECEDENCE, RESOURCE_CLASSES, RESOURCE_STATES,
  type Expr, type ParsedRules, type ResourceRef, type ResourceState, type Rule, type RuleAction, type RuleDisable,
} from './types.js';

export type { TextStart } from './lex.js';

const LABEL = /^[A-Za-z_][A-Za-z0-9_.-]*$/;
const IDENT = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;
const ACTIONS_TEXT = 'stop(), stopstart(), wait(), restart() or swap()';
const STATES_TEXT = 'up, down, init or unknown';

/**
 * Parses the text of `<failover>` (docs/design/rules.md has the grammar):
 *
 *   label: if (expr) then action();      a rule
 *   label: disabled;                     remove the default rule with this label
 *
 * `at` is where the text starts in its file. Empty text (or only comments) gives no rules. Rules come back with
 * `source: 'user'`, `holdMs: null` and the position of their label; rules and disables keep their text order.
 * Every mistake is a UserError `<file> line L, column C: …` naming the offending token, what was expected there and
 * what to do; labels must be unique across rules and disables.
 */
export function parseRules(text: string, at: TextStart): ParsedRules {
  const p = new Parser(lex(text, at), at.file);
  const rules: Rule[] = [];
  const disabled: RuleDisable[] = [];
  const seen = new Map<string, Token>();
  p.rejectLua();
  while (p.peek().kind !== 'end') {
    const label = p.label();
    const first = seen.get(label.text);
    if (first) {
      p.fail(label, `label "${label.text}" is used twice (first at line ${first.line}, column ${first.column}). Give each rule its own label.`);
    }
    seen.set(label.text, label);
    const body = p.body(label);
    if (body === 'disabled') disabled.push({ label: label.text, line: label.line, column: label.column });
    else rules.push({ label: label.text, ...body, source: 'user', holdMs: null, line: label.line, column: label.column });
  }
  return { file: at.file, rules, disabled };
}

/** Recursive descent over the tokens; every method consumes what it parsed and throws UserError on anything else. */
class Parser {
  private i = 0;

  constructor(private readonly tokens: Token[], private readonly file: string) {}

  peek(): Token {
    return this.tokens[this.i]!;
  }

  private next(): Token {
    const t = this.tokens[this.i]!;
    if (t.kind !== 'end') this.i++;
    return t;
  }

  private isPunct(text: string): boolean {
    const t = this.peek();
    return t.kind === 'punct' && t.text === text;
  }

  fail(t: Token, message: string, offset = 0): never {
    throw new UserError(`${this.file} line ${t.line}, column ${t.column + offset}: ${message}`);
  }

  private expected(what: string, after: string, hint: string): never {
    const t = this.peek();
    this.fail(t, `expected ${what} after "${after}", found ${t.kind === 'end' ? 'the end of the rules' : `"${t.text}"`}. ${hint}`);
  }

  private expectPunct(text: string, after: string, hint: string): void {
    if (!this.isPunct(text)) this.expected(`"${text}"`, after, hint);
    this.next();
  }

  /** SafeKit's Lua alternative (`--Lua Rules`) reads as a label starting with `--`: say so plainly. */
  rejectLua(): void {
    const t = this.peek();
    if (t.kind === 'word' && t.text.startsWith('--')) {
      this.fail(t, 'tandem does not support Lua rules ("--Lua Rules"). Write them in the rule language: "label: if (condition) then action();" or "label: disabled;".');
    }
  }

  label(): Token {
    const t = this.next();
    if (t.kind !== 'word' || !LABEL.test(t.text)) {
      this.fail(t, `expected a rule label, found ${t.kind === 'end' ? 'the end of the rules' : `"${t.text}"`}. ` +
        'A rule is "label: if (condition) then action();"; a label is letters, digits, "_", "." and "-", starting with a letter or "_".');
    }
    return t;
  }

  /** After the label: `: disabled ;` or `: if ( expr ) then action ( ) ;` */
  body(label: Token): 'disabled' | { expr: Expr; action: RuleAction } {
    if (!this.isPunct(':')) {
      if (label.text === 'if' && this.isPunct('(')) this.fail(label, 'this rule has no label. Write one before "if", e.g. "my_rule: if (intf.eth0 == down) then wait();".');
      this.expected('":"', label.text, 'Write the label, a colon, then the rule: "label: if (condition) then action();".');
    }
    this.next();
    const kw = this.peek();
    if (kw.kind === 'word' && kw.text === 'disabled') {
      this.next();
      this.expectPunct(';', 'disabled', 'End each rule with ";".');
      return 'disabled';
    }
    if (kw.kind !== 'word' || kw.text !== 'if') {
      this.expected('"if" or "disabled"', `${label.text}:`, 'Write "label: if (condition) then action();" or "label: disabled;".');
    }
    this.next();
    this.expectPunct('(', 'if', 'Put the condition in parentheses, e.g. "if (intf.eth0 == down)".');
    const expr = this.or();
    this.close(expr, 'Close the parenthesis of the condition.');
    const cond = `if (${formatExpr(expr)})`;
    const then = this.peek();
    if (then.kind !== 'word' || then.text !== 'then') this.expected('"then"', cond, 'Write "then" and the action, e.g. "then wait();".');
    this.next();
    const action = this.action();
    this.expectPunct('(', action, `Write "${action}()".`);
    this.expectPunct(')', `${action}(`, `Write "${action}()".`);
    this.expectPunct(';', `${action}()`, 'End each rule with ";".');
    return { expr, action };
  }

  private action(): RuleAction {
    const t = this.peek();
    if (t.kind !== 'word') this.expected('an action', 'then', `An action is ${ACTIONS_TEXT}.`);
    if (!(ACTION_PRECEDENCE as readonly string[]).includes(t.text)) this.fail(t, `unknown action "${t.text}". An action is ${ACTIONS_TEXT}.`);
    this.next();
    return t.text as RuleAction;
  }

  /** A `)` closing `inner`; a lone `&` or `|` gets its own hint. */
  private close(inner: Expr, hint: string): void {
    const t = this.peek();
    if (t.kind === 'other' && (t.text === '&' || t.text === '|')) {
      this.fail(t, `expected "&&", "||" or ")" after "${formatExpr(inner)}", found "${t.text}". Write "&&" for and, "||" for or.`);
    }
    this.expectPunct(')', formatExpr(inner), hint);
  }

  // expr = and { "||" and } ; and = unary { "&&" unary } ; both associate to the left.
  private or(): Expr {
    let a = this.and();
    while (this.isPunct('||')) {
      this.next();
      a = { kind: 'or', a, b: this.and() };
    }
    return a;
  }

  private and(): Expr {
    let a = this.unary();
    while (this.isPunct('&&')) {
      this.next();
      a = { kind: 'and', a, b: this.unary() };
    }
    return a;
  }

  // unary = "!" unary | "(" expr ")" | cmp ; so "!intf.eth0 == down" is "!(intf.eth0 == down)".
  private unary(): Expr {
    if (this.isPunct('!')) {
      this.next();
      return { kind: 'not', e: this.unary() };
    }
    if (this.isPunct('(')) {
      const open = this.next();
      const e = this.or();
      this.close(e, `Close the parenthesis opened at line ${open.line}, column ${open.column}.`);
      return e;
    }
    return this.cmp();
  }

  private cmp(): Expr {
    const prev = this.tokens[this.i - 1]!;
    const t = this.peek();
    if (t.kind !== 'word') {
      this.expected('a comparison such as "intf.eth0 == down"', prev.text, 'Compare a resource with a state: "[local.|remote.]class.ident == state".');
    }
    const ref = this.ref(t);
    this.next();
    const opTok = this.peek();
    if (!this.isPunct('==') && !this.isPunct('!=')) {
      this.expected('"==" or "!="', t.text, opTok.text === '=' ? 'Write "==" to compare.' : `Compare the resource with a state, e.g. "${t.text} == down".`);
    }
    const op = this.next().text as '==' | '!=';
    const s = this.peek();
    if (s.kind !== 'word') this.expected('a state', `${t.text} ${op}`, `A state is ${STATES_TEXT}.`);
    if (!(RESOURCE_STATES as readonly string[]).includes(s.text)) {
      this.fail(s, `unknown state "${s.text}" in "${t.text} ${op} ${s.text}". A state is ${STATES_TEXT}.`);
    }
    this.next();
    return { kind: 'cmp', ref, op, state: s.text as ResourceState };
  }

  /** `[local.|remote.]class.ident`: the class must be known, the ident a dotted name, `*` or `?`. */
  private ref(t: Token): ResourceRef {
    const parts = t.text.split('.');
    const side = parts[0] === 'remote' ? 'remote' : 'local';
    const k = parts[0] === 'local' || parts[0] === 'remote' ? 1 : 0;
    if (parts.length < k + 2) {
      this.fail(t, `"${t.text}" is not a resource. Write [local.|remote.]class.ident, e.g. "intf.eth0", "remote.ping.router" or "ip.*".`);
    }
    const cls = parts[k]!;
    const clsAt = parts.slice(0, k).join('.').length + k;
    if (!RESOURCE_CLASSES.includes(cls)) {
      this.fail(t, `unknown resource class "${cls}" in "${t.text}". A class is one of ${RESOURCE_CLASSES.join(', ')}.`, clsAt);
    }
    const ident = parts.slice(k + 1).join('.');
    if (ident !== '*' && ident !== '?' && !IDENT.test(ident)) {
      this.fail(t, `"${t.text}" has an invalid ident "${ident}". An ident is "*", "?" or a name of letters, digits, "_", "-" and single dots.`, clsAt + cls.length + 1);
    }
    return { side, cls, ident };
  }
}
