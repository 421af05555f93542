/**
 * userconfig.xml: process monitoring (`<errd>`), checkers (`<check>`, and those `<interface check>` /
 * `<virtual_addr check>` create) and failover rules (`<failover>`), in SafeKit's vocabulary. Every error is a
 * UserError naming the file and line and saying what to write instead; nothing unsupported is silently ignored.
 */
import { statSync } from 'node:fs';
import path from 'node:path';
import { UserError } from '../errors.js';
import { isIPv4 } from './cluster.js';
import { parseDuration } from './duration.js';
import type {
  CheckWhen, CheckerConfig, ClusterConfig, ErrdConfig, FailoverConfig, FailureAction, ProcSpec, VirtualAddr,
} from './types.js';
import { expectOnly, type XmlElement } from './xml.js';

/** Defaults of the checkers and rules (README: configuration reference). */
export const CHECK_DEFAULTS = {
  /** errd: a tracked process is checked this often (a death is seen within it) */
  polltimerMs: 500,
  tcp: { intervalMs: 10_000, timeoutMs: 5000, when: 'prim', action: 'restart' },
  ping: { intervalMs: 10_000, timeoutMs: 5000, when: 'pre', action: 'wait' },
  intf: { intervalMs: 1000, when: 'pre', action: 'wait' },
  ip: { intervalMs: 1000, when: 'prim', action: 'stopstart' },
  custom: { when: 'prim', action: 'noaction' },
  module: { intervalMs: 1000, when: 'pre', action: 'wait' },
  failover: { periodMs: 1000, handleTimeMs: 5000 },
  maxloop: 3,
  loopIntervalMs: 24 * 3_600_000,
} as const;

const WHENS: readonly CheckWhen[] = ['pre', 'prim', 'both', 'second'];
const ACTIONS: readonly FailureAction[] = ['restart', 'stopstart', 'stop', 'wait', 'swap', 'noaction'];
const PROC_ACTIONS = ['restart', 'stopstart', 'stop', 'noaction'] as const;
const IDENT_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;

export interface CheckCtx {
  file: string;
  cluster: ClusterConfig;
  /** the module's directory: a custom checker's relative `exec` is looked for in its bin/ */
  moduleDir: string | null;
}

/** What the implicit checkers need of a VIP, mirror (`VirtualAddr`) or farm (`FarmVirtualAddr`). */
export type VipChecks = Pick<VirtualAddr, 'addr' | 'check' | 'checkAddr'>;

const at = (c: CheckCtx, el: XmlElement) => `${c.file} line ${el.line}`;

// ───────────────────────────── errd ─────────────────────────────

/** `<errd polltimer><proc name nameregex argregex atleast atmax action class/>…</errd>` */
export function parseErrd(el: XmlElement | undefined, c: CheckCtx): ErrdConfig | null {
  if (!el) return null;
  expectOnly(el, ['polltimer'], ['proc'], c.file);
  const polltimerMs = duration(el, 'polltimer', CHECK_DEFAULTS.polltimerMs, c);
  if (polltimerMs < 50) throw new UserError(`${at(c, el)}: <errd polltimer="${el.attrs.polltimer}"> is shorter than 50ms. Use at least 50ms (default ${CHECK_DEFAULTS.polltimerMs}ms).`);
  const procs: ProcSpec[] = [];
  for (const p of el.children) {
    const spec = parseProc(p, c);
    const dup = procs.find((x) => x.name === spec.name);
    if (dup) throw new UserError(`${at(c, p)}: <proc name="${spec.name}"> is listed twice (also line ${dup.line}). Give each monitored process its own name.`);
    procs.push(spec);
  }
  if (procs.length === 0) throw new UserError(`${at(c, el)}: <errd> has no <proc>. Add <proc name="…"/> for each process to monitor, or remove <errd>.`);
  return { polltimerMs, procs };
}

function parseProc(el: XmlElement, c: CheckCtx): ProcSpec {
  expectOnly(el, ['name', 'nameregex', 'argregex', 'atleast', 'atmax', 'action', 'class'], [], c.file);
  const { name, nameregex, argregex } = el.attrs;
  if (!name && !nameregex) {
    throw new UserError(`${at(c, el)}: <proc> has neither name nor nameregex. Add name="<process name>" (as in \`ps -o comm\`), or nameregex="…" with a name for its resource.`);
  }
  if (!name) throw new UserError(`${at(c, el)}: <proc nameregex="${nameregex}"> has no name. Add name="…": it names the resource proc.<name>.`);
  if (!IDENT_RE.test(name)) throw new UserError(`${at(c, el)}: <proc name="${name}"> is not a valid resource name. Use letters, digits, "_", "-" and "." (up to 64).`);
  for (const [attr, re] of [['nameregex', nameregex], ['argregex', argregex]] as const) {
    if (re === undefined) continue;
    try {
      new RegExp(re);
    } catch (e) {
      throw new UserError(`${at(c, el)}: <proc ${attr}="${re}"> is not a valid regular expression (${(e as Error).message}). Fix it.`);
    }
  }
  const atleast = integer(el, 'atleast', 1, 0, c);
  const atmax = integer(el, 'atmax', -1, -1, c);
  if (atmax >= 0 && atmax < atleast) throw new UserError(`${at(c, el)}: <proc atmax="${atmax}"> is below atleast="${atleast}". Set atmax ≥ atleast, or -1 for no limit.`);
  const action = choice(el, 'action', 'stopstart', PROC_ACTIONS, c);
  const cls = choice(el, 'class', 'prim', WHENS, c, 'class');
  return { name, nameregex: nameregex ?? null, argregex: argregex ?? null, atleast, atmax, action, class: cls, line: el.line };
}

// ───────────────────────────── checkers ─────────────────────────────

/**
 * `<check>` and the implicit checkers: `intf` for every `<interface check="on">` (ident resolved at run time to the
 * interface that carries the VIP), `ip` for every `<virtual_addr check="on">`. Returns the split-brain witness too
 * (it may sit in `<check>`, where SafeKit puts it); the caller rejects a second one elsewhere.
 */
export function parseChecks(check: XmlElement | undefined, vips: readonly VipChecks[], c: CheckCtx): { checkers: CheckerConfig[]; splitbrain: XmlElement | undefined } {
  const checkers: CheckerConfig[] = [];
  let splitbrain: XmlElement | undefined;
  const add = (k: CheckerConfig, el: XmlElement) => {
    const dup = checkers.find((x) => x.type === k.type && x.ident === k.ident);
    if (dup) throw new UserError(`${at(c, el)}: a second ${k.type} checker with ident "${k.ident}" (also line ${dup.line}). Give each checker its own ident.`);
    checkers.push(k);
  };
  if (check) {
    expectOnly(check, [], ['tcp', 'ping', 'intf', 'ip', 'custom', 'module', 'splitbrain'], c.file);
    for (const el of check.children) {
      switch (el.name) {
        case 'tcp': add(parseTcp(el, c), el); break;
        case 'ping': add(parsePing(el, c), el); break;
        case 'intf': add(parseIntf(el, c), el); break;
        case 'ip': add(parseIp(el, vips, c), el); break;
        case 'custom': add(parseCustom(el, c), el); break;
        case 'module': add(parseModule(el, c), el); break;
        case 'splitbrain':
          if (splitbrain) throw new UserError(`${at(c, el)}: a second <splitbrain> (the first is on line ${splitbrain.line}). Keep only one.`);
          splitbrain = el;
          break;
      }
    }
  }
  const d = CHECK_DEFAULTS;
  for (const v of vips) {
    if (v.check && !checkers.some((k) => k.type === 'intf' && k.vip === v.addr)) {
      checkers.push({ type: 'intf', ident: '', when: d.intf.when, action: d.intf.action, localAddr: null, vip: v.addr, intervalMs: d.intf.intervalMs, line: 0 });
    }
    if (v.checkAddr && !checkers.some((k) => k.type === 'ip' && k.addr === v.addr)) {
      checkers.push({ type: 'ip', ident: v.addr, when: d.ip.when, action: d.ip.action, addr: v.addr, intervalMs: d.ip.intervalMs, line: 0 });
    }
  }
  return { checkers, splitbrain };
}

function base(el: XmlElement, c: CheckCtx, defaults: { when: CheckWhen; action: FailureAction }, identDefault?: string) {
  const ident = el.attrs.ident ?? identDefault;
  if (ident === undefined) throw new UserError(`${at(c, el)}: <${el.name}> has no ident. Add ident="…": it names the resource ${el.name}.<ident>.`);
  if (!IDENT_RE.test(ident)) throw new UserError(`${at(c, el)}: <${el.name} ident="${ident}"> is not valid. Use letters, digits, "_", "-" and "." (up to 64).`);
  return {
    ident,
    when: choice(el, 'when', defaults.when, WHENS, c),
    action: choice(el, 'action', defaults.action, ACTIONS, c),
    line: el.line,
  };
}

/**
 * Checks the checker element's own attributes (`ident when action` and `extra`) and its `<to attrs…/>` children;
 * returns the first `<to>`. Only ping takes several (one per address).
 */
function target(el: XmlElement, attrs: string[], c: CheckCtx, { required = true, extra = [] as string[] } = {}): XmlElement | undefined {
  expectOnly(el, ['ident', 'when', 'action', ...extra], ['to'], c.file);
  if (el.children.length > 1 && el.name !== 'ping') throw new UserError(`${at(c, el.children[1]!)}: <${el.name}> has a second <to>. Keep one.`);
  const to = el.children[0];
  if (!to) {
    if (required) throw new UserError(`${at(c, el)}: <${el.name}> has no <to>. Add <to ${attrs.map((a) => `${a}="…"`).join(' ')}/>.`);
    return undefined;
  }
  for (const t of el.children) expectOnly(t, attrs, [], c.file);
  return to;
}

function addr(el: XmlElement, attr: string, c: CheckCtx): string {
  const v = el.attrs[attr];
  if (!v) throw new UserError(`${at(c, el)}: <${el.name}> has no ${attr}. Add ${attr}="<IPv4 address>".`);
  if (!isIPv4(v)) throw new UserError(`${at(c, el)}: ${attr} "${v}" is not an IPv4 address. Write a dotted quad such as 198.51.100.10.`);
  return v;
}

function parseTcp(el: XmlElement, c: CheckCtx): CheckerConfig {
  const to = target(el, ['addr', 'port', 'interval', 'timeout', 'send'], c)!;
  const b = base(el, c, CHECK_DEFAULTS.tcp);
  const port = integer(to, 'port', undefined, 1, c);
  if (port > 65535) throw new UserError(`${at(c, to)}: <to port="${port}"> is not a TCP port. Use 1 to 65535.`);
  const intervalMs = duration(to, 'interval', CHECK_DEFAULTS.tcp.intervalMs, c);
  const timeoutMs = duration(to, 'timeout', CHECK_DEFAULTS.tcp.timeoutMs, c);
  positiveTiming(to, intervalMs, timeoutMs, c);
  const send = to.attrs.send === undefined ? null : unescapeSend(to.attrs.send);
  if (send === '') throw new UserError(`${at(c, to)}: <to send=""> is empty. Give the bytes to send (e.g. send="GET / HTTP/1.0\\r\\n\\r\\n"), or remove send.`);
  return { type: 'tcp', ...b, addr: addr(to, 'addr', c), port, intervalMs, timeoutMs, send };
}

function parsePing(el: XmlElement, c: CheckCtx): CheckerConfig {
  target(el, ['addr', 'interval', 'timeout'], c);
  const b = base(el, c, CHECK_DEFAULTS.ping);
  const addrs = el.children.map((t) => addr(t, 'addr', c));
  const first = el.children[0]!;
  const intervalMs = duration(first, 'interval', CHECK_DEFAULTS.ping.intervalMs, c);
  const timeoutMs = duration(first, 'timeout', CHECK_DEFAULTS.ping.timeoutMs, c);
  positiveTiming(first, intervalMs, timeoutMs, c);
  return { type: 'ping', ...b, addrs, intervalMs, timeoutMs };
}

function parseIntf(el: XmlElement, c: CheckCtx): CheckerConfig {
  const to = target(el, ['local_addr', 'interval'], c)!;
  const b = base(el, c, CHECK_DEFAULTS.intf, '');
  const localAddr = addr(to, 'local_addr', c);
  return { type: 'intf', ...b, localAddr, vip: null, intervalMs: duration(to, 'interval', CHECK_DEFAULTS.intf.intervalMs, c) };
}

function parseIp(el: XmlElement, vips: readonly VipChecks[], c: CheckCtx): CheckerConfig {
  const to = target(el, ['addr', 'interval'], c)!;
  const a = addr(to, 'addr', c);
  if (!vips.some((v) => v.addr === a)) {
    throw new UserError(`${at(c, to)}: <ip><to addr="${a}"> is not a virtual_addr of this module. The ip checker watches one of its VIPs: ${vips.map((v) => v.addr).join(', ') || 'none is configured'}.`);
  }
  const b = base(el, c, CHECK_DEFAULTS.ip, a);
  return { type: 'ip', ...b, addr: a, intervalMs: duration(to, 'interval', CHECK_DEFAULTS.ip.intervalMs, c) };
}

function parseCustom(el: XmlElement, c: CheckCtx): CheckerConfig {
  target(el, [], c, { required: false, extra: ['exec', 'arg'] });
  const b = base(el, c, CHECK_DEFAULTS.custom);
  const exec = el.attrs.exec;
  if (!exec) throw new UserError(`${at(c, el)}: <custom> has no exec. Add exec="<program>" (a path, or a file in the module's bin/).`);
  const args = (el.attrs.arg ?? '').trim().split(/\s+/).filter(Boolean);
  return { type: 'custom', ...b, exec: resolveExec(exec, el, c), args };
}

/** A custom checker's program: absolute, or relative to the module's bin/; it must exist and be executable. */
function resolveExec(exec: string, el: XmlElement, c: CheckCtx): string {
  const file = path.isAbsolute(exec) ? exec : c.moduleDir ? path.join(c.moduleDir, 'bin', exec) : null;
  if (file === null) return exec; // validated when the module is installed
  let mode: number;
  try {
    mode = statSync(file).mode;
  } catch {
    throw new UserError(`${at(c, el)}: <custom exec="${exec}">: ${file} does not exist. Put the checker program there (module bin/) or give its absolute path.`);
  }
  if ((mode & 0o170000) !== 0o100000) throw new UserError(`${at(c, el)}: <custom exec="${exec}">: ${file} is not a regular file. Point exec at the checker program.`);
  if ((mode & 0o111) === 0) throw new UserError(`${at(c, el)}: <custom exec="${exec}">: ${file} is not executable. Run \`chmod +x ${file}\`.`);
  return file;
}

function parseModule(el: XmlElement, c: CheckCtx): CheckerConfig {
  const to = target(el, ['addr', 'port', 'interval'], c, { required: false, extra: ['name'] });
  const name = el.attrs.name;
  if (!name) throw new UserError(`${at(c, el)}: <module> has no name. Add name="<module>": the module whose state is checked.`);
  const b = base(el, c, CHECK_DEFAULTS.module, name);
  let node: string | null = null;
  if (to) {
    const a = addr(to, 'addr', c);
    node = c.cluster.lans.flatMap((l) => l.nodes).find((n) => n.addr === a)?.name ?? null;
    if (!node) throw new UserError(`${at(c, to)}: <module><to addr="${a}"> is not the address of a node in cluster.xml. Use a node's address, or leave <to> out to check this node.`);
  }
  return { type: 'module', ...b, module: name, node, intervalMs: to ? duration(to, 'interval', CHECK_DEFAULTS.module.intervalMs, c) : CHECK_DEFAULTS.module.intervalMs };
}

/** `\r`, `\n`, `\t` and `\\` in a send="…" attribute (XML attributes cannot hold raw line ends). */
function unescapeSend(v: string): string {
  return v.replace(/\\([rnt\\])/g, (_, ch: string) => ({ r: '\r', n: '\n', t: '\t', '\\': '\\' })[ch]!);
}

function positiveTiming(el: XmlElement, intervalMs: number, timeoutMs: number, c: CheckCtx) {
  if (intervalMs < 100) throw new UserError(`${at(c, el)}: interval ${el.attrs.interval} is shorter than 100ms. Use at least 100ms.`);
  if (timeoutMs <= 0 || timeoutMs > intervalMs) {
    throw new UserError(`${at(c, el)}: timeout ${el.attrs.timeout ?? `${timeoutMs}ms`} must be more than 0 and at most the interval (${intervalMs}ms). Lower the timeout or raise the interval.`);
  }
}

// ───────────────────────────── failover rules ─────────────────────────────

/**
 * `<failover extends period handle_time>` with the rules as its text (CDATA recommended: `&&` needs no escaping
 * there). The text's position in the file is kept so rule errors can name their line and column (exact inside
 * CDATA; outside it, an entity before the error on the same line shifts the column).
 */
export function parseFailover(el: XmlElement | undefined, src: string, c: CheckCtx): FailoverConfig | null {
  if (!el) return null;
  for (const attr of Object.keys(el.attrs)) {
    if (!['extends', 'period', 'handle_time'].includes(attr)) {
      throw new UserError(`${at(c, el)}: failover has attribute "${attr}" which tandem does not support. Remove it; supported: extends, period, handle_time.`);
    }
  }
  if (el.children.length) throw new UserError(`${at(c, el.children[0]!)}: <failover> holds rules as text, not <${el.children[0]!.name}>. Write the rules inside <![CDATA[ … ]]>.`);
  const ext = el.attrs.extends ?? 'yes';
  if (ext !== 'yes' && ext !== 'no') throw new UserError(`${at(c, el)}: <failover extends="${ext}"> must be "yes" or "no".`);
  const periodMs = duration(el, 'period', CHECK_DEFAULTS.failover.periodMs, c);
  const handleTimeMs = duration(el, 'handle_time', CHECK_DEFAULTS.failover.handleTimeMs, c);
  if (periodMs < 100) throw new UserError(`${at(c, el)}: <failover period="${el.attrs.period}"> is shorter than 100ms. Use at least 100ms.`);
  const body = elementContent(src, el);
  return { extends: ext === 'yes', periodMs, handleTimeMs, ...body };
}

/** The raw content of `el` in `src` (CDATA unwrapped, entities decoded) and where it starts. */
function elementContent(src: string, el: XmlElement): { text: string; line: number; column: number } {
  let i = 0;
  for (let l = 1; l < el.line; l++) i = src.indexOf('\n', i) + 1;
  i = src.indexOf(`<${el.name}`, i);
  let quote = '';
  for (; i < src.length; i++) {
    const ch = src[i];
    if (quote) { if (ch === quote) quote = ''; } else if (ch === '"' || ch === "'") quote = ch; else if (ch === '>') break;
  }
  const selfClosing = src[i - 1] === '/';
  const start = i + 1;
  const end = selfClosing ? start : src.indexOf(`</${el.name}`, start);
  let text = selfClosing ? '' : src.slice(start, end);
  let offset = start;
  const cdata = /^(\s*)<!\[CDATA\[([\s\S]*?)\]\]>\s*$/.exec(text);
  if (cdata) {
    offset += cdata[1]!.length + '<![CDATA['.length;
    text = cdata[2]!;
  } else {
    text = text.replace(/&(amp|lt|gt|quot|apos);/g, (_, e: string) => ({ amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" })[e]!);
  }
  const before = src.slice(0, offset);
  const line = before.split('\n').length;
  const column = offset - before.lastIndexOf('\n');
  return { text, line, column };
}

// ───────────────────────────── helpers ─────────────────────────────

function duration(el: XmlElement, attr: string, def: number, c: CheckCtx): number {
  const raw = el.attrs[attr];
  return raw === undefined ? def : parseDuration(raw, `${at(c, el)}: <${el.name} ${attr}="${raw}">`);
}

function integer(el: XmlElement, attr: string, def: number | undefined, min: number, c: CheckCtx): number {
  const raw = el.attrs[attr];
  if (raw === undefined) {
    if (def === undefined) throw new UserError(`${at(c, el)}: <${el.name}> has no ${attr}. Add ${attr}="<number>".`);
    return def;
  }
  if (!/^-?\d+$/.test(raw.trim()) || Number(raw) < min) {
    throw new UserError(`${at(c, el)}: <${el.name} ${attr}="${raw}"> must be a whole number of at least ${min}.`);
  }
  return Number(raw);
}

function choice<T extends string>(el: XmlElement, attr: string, def: T, allowed: readonly T[], c: CheckCtx, label = attr): T {
  const v = el.attrs[attr];
  if (v === undefined) return def;
  if ((allowed as readonly string[]).includes(v)) return v as T;
  throw new UserError(`${at(c, el)}: <${el.name} ${label}="${v}"> is not valid. Use one of: ${allowed.join(', ')} (default ${def}).`);
}
