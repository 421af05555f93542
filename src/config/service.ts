/**
 * userconfig.xml: what mirror modules (userconfig.ts) and farm modules (farm.ts) share: the root and `<service mode>`,
 * `maxloop` / `loop_interval`, `<user>`, `<errd>`, `<check>`, `<failover>`, the rules of a virtual address, the walk
 * of `<interface_list>` and the timing and LANs of heartbeats. Every error is a UserError naming the file and line.
 */
import { UserError } from '../errors.js';
import { moduleRules } from '../engine/rules/defaults.js';
import { isIPv4 } from './cluster.js';
import { CHECK_DEFAULTS, parseChecks, parseErrd, parseFailover, type CheckCtx, type VipChecks } from './checks.js';
import { formatDuration, parseDuration } from './duration.js';
import type { ClusterConfig, ModuleConfig, UserConfig } from './types.js';
import { decodeUtf8, expectOnly, optionalChild, parseXml, type XmlElement } from './xml.js';

/** Defaults of `<user>` (README: configuration reference). */
export const USER_DEFAULTS = { nicestoptimeoutMs: 300_000, forcestoptimeoutMs: 300_000 } as const;

/** What the section parsers need to know: the file name for messages, cluster.xml, the module and its directory. */
export class Ctx implements CheckCtx {
  constructor(
    readonly file: string,
    readonly cluster: ClusterConfig,
    readonly module: string,
    /** the module's directory: relative custom checker programs are checked in its bin/ (null: not checked) */
    readonly moduleDir: string | null,
  ) {}

  at(el: XmlElement): string {
    return `${this.file} line ${el.line}`;
  }

  /** The node and LAN that own `addr` in cluster.xml, if any. */
  ownerOf(addr: string): { node: string; lan: string } | undefined {
    for (const lan of this.cluster.lans) {
      const n = lan.nodes.find((x) => x.addr === addr);
      if (n) return { node: n.name, lan: lan.name };
    }
    return undefined;
  }
}

/** `<safe><service mode="…">`: the service element, the source text (for `<failover>` positions) and the mode. */
export function readService(text: string | Uint8Array, file: string): { service: XmlElement; src: string; mode: 'mirror' | 'farm' } {
  const root = parseXml(text, file);
  const src = (typeof text === 'string' ? text : decodeUtf8(text, file)).replace(/^\uFEFF/, '');
  if (root.name !== 'safe') {
    throw new UserError(`${file} line ${root.line}: the root element is <${root.name}>. userconfig.xml must start with <safe>.`);
  }
  expectOnly(root, [], ['service'], file);
  const service = optionalChild(root, 'service', file);
  if (!service) {
    throw new UserError(`${file} line ${root.line}: <safe> has no <service>. Add <service mode="mirror"> (or mode="farm") inside <safe>.`);
  }
  return { service, src, mode: moduleMode(service, file) };
}

function moduleMode(service: XmlElement, file: string): 'mirror' | 'farm' {
  const mode = service.attrs.mode;
  const at = `${file} line ${service.line}`;
  const use = 'Use mode="mirror" or mode="farm"';
  if (mode === undefined) throw new UserError(`${at}: <service> has no mode. Add mode="mirror" or mode="farm".`);
  if (mode === 'light') throw new UserError(`${at}: light modules are not supported yet. ${use}.`);
  if (mode !== 'mirror' && mode !== 'farm') throw new UserError(`${at}: <service mode="${mode}"> is not a module mode. ${use}.`);
  return mode;
}

/** The part of a module's configuration that mirror and farm modules parse alike. */
export type ServiceCommon = Pick<ModuleConfig, 'user' | 'maxloop' | 'loopIntervalMs' | 'errd' | 'checkers' | 'rules'>;

/**
 * `<service maxloop loop_interval>`, `<user>`, `<errd>`, `<check>` (with the checkers `vips` create) and `<failover>`;
 * the rules are checked to parse against the checkers. Also returns a `<splitbrain>` found inside `<check>` (the caller
 * decides whether the module may have one).
 */
export function parseServiceCommon(
  service: XmlElement,
  vips: readonly VipChecks[],
  src: string,
  c: Ctx,
): { common: ServiceCommon; splitbrain: XmlElement | undefined } {
  const checks = parseChecks(optionalChild(service, 'check', c.file), vips, c);
  const maxloop = service.attrs.maxloop === undefined ? CHECK_DEFAULTS.maxloop : Number(service.attrs.maxloop);
  if (!Number.isInteger(maxloop) || maxloop < 0 || !/^\d+$/.test(service.attrs.maxloop ?? '0')) {
    throw new UserError(`${c.at(service)}: <service maxloop="${service.attrs.maxloop}"> must be a whole number of 0 or more (0: never restart in place).`);
  }
  const common: ServiceCommon = {
    user: parseUser(optionalChild(service, 'user', c.file), c),
    maxloop,
    loopIntervalMs: durationAttr(service, 'loop_interval', CHECK_DEFAULTS.loopIntervalMs, c.file),
    errd: parseErrd(optionalChild(service, 'errd', c.file), c),
    checkers: checks.checkers,
    rules: parseFailover(optionalChild(service, 'failover', c.file), src, c),
  };
  moduleRules(common, c.file); // the rules parse, and every `disabled` names a default rule (errors with line and column)
  return { common, splitbrain: checks.splitbrain };
}

function parseUser(el: XmlElement | undefined, c: Ctx): UserConfig {
  const user: UserConfig = { ...USER_DEFAULTS, vars: {} };
  if (!el) return user;
  expectOnly(el, ['nicestoptimeout', 'forcestoptimeout'], ['var'], c.file);
  user.nicestoptimeoutMs = durationAttr(el, 'nicestoptimeout', user.nicestoptimeoutMs, c.file);
  user.forcestoptimeoutMs = durationAttr(el, 'forcestoptimeout', user.forcestoptimeoutMs, c.file);
  const lines = new Map<string, number>();
  for (const v of el.children) {
    expectOnly(v, ['name', 'value'], [], c.file);
    const { name, value } = v.attrs;
    if (!name) throw new UserError(`${c.at(v)}: <var> has no name. Add name="VARIABLE".`);
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
      throw new UserError(`${c.at(v)}: var name "${name}" is not a valid environment variable name. Use letters, digits and "_", not starting with a digit.`);
    }
    if (value === undefined) throw new UserError(`${c.at(v)}: var "${name}" has no value. Add value="…" (it may be empty).`);
    const dup = lines.get(name);
    if (dup !== undefined) throw new UserError(`${c.at(v)}: var "${name}" is defined twice (also line ${dup}). Remove one.`);
    lines.set(name, v.line);
    user.vars[name] = value;
  }
  return user;
}

// ───────────────────────────── virtual addresses ─────────────────────────────

/** How a module writes its VIPs inside `<interface>`: mirror `<real_interface>`, farm `<virtual_interface type>`. */
export interface VipForm {
  wrapper: string;
  wrapperAttrs: string[];
  /** extra checks of an `<interface>` or a wrapper element, before the generic ones */
  checkInterface?: (intf: XmlElement) => void;
  checkWrapper?: (w: XmlElement) => void;
}

/**
 * `<interface_list><interface check><WRAPPER …><virtual_addr addr where check/>…`: calls `make` for each virtual_addr
 * with its address (IPv4, not a node's address in cluster.xml, not listed twice) and its interface's `check` (default
 * on). `where` and `check` of the virtual_addr are `make`'s to read.
 */
export function parseInterfaceList<T>(list: XmlElement, form: VipForm, c: Ctx, make: (va: XmlElement, addr: string, check: boolean) => T): T[] {
  expectOnly(list, [], ['interface'], c.file);
  nonEmpty(list, 'interface', c);
  const out: T[] = [];
  const lines = new Map<string, number>();
  for (const intf of list.children) {
    form.checkInterface?.(intf);
    expectOnly(intf, ['check'], [form.wrapper], c.file);
    nonEmpty(intf, form.wrapper, c);
    const check = onOff(intf, 'check', true, c.file);
    for (const w of intf.children) {
      form.checkWrapper?.(w);
      expectOnly(w, form.wrapperAttrs, ['virtual_addr'], c.file);
      nonEmpty(w, 'virtual_addr', c);
      for (const va of w.children) {
        expectOnly(va, ['addr', 'where', 'check'], [], c.file);
        out.push(make(va, vipAddr(va, lines, c), check));
      }
    }
  }
  return out;
}

/** The addr of a `<virtual_addr>`: IPv4, not a node's address in cluster.xml, not in `lines` (addr → line) already. */
function vipAddr(va: XmlElement, lines: Map<string, number>, c: Ctx): string {
  const addr = va.attrs.addr;
  if (!addr) throw new UserError(`${c.at(va)}: <virtual_addr> has no addr. Add addr="<virtual IPv4 address>".`);
  if (!isIPv4(addr)) throw new UserError(`${c.at(va)}: virtual_addr "${addr}" is not an IPv4 address. Write a dotted quad such as 198.51.100.10.`);
  const owner = c.ownerOf(addr);
  if (owner) {
    throw new UserError(
      `${c.at(va)}: virtual_addr ${addr} is the address of node "${owner.node}" on lan "${owner.lan}" in cluster.xml. ` +
        `Choose a free address for the virtual IP.`,
    );
  }
  const dup = lines.get(addr);
  if (dup !== undefined) throw new UserError(`${c.at(va)}: virtual_addr ${addr} is listed twice (also line ${dup}). Remove one.`);
  lines.set(addr, va.line);
  return addr;
}

// ───────────────────────────── heartbeats ─────────────────────────────

/** Throws unless `pulseMs` > 0 and `timeoutMs` ≥ 3 × `pulseMs` (`<heart>` and `<farm>`). */
export function checkBeatTiming(el: XmlElement, pulseMs: number, timeoutMs: number, defaultPulseMs: number, c: Ctx): void {
  if (pulseMs <= 0) {
    throw new UserError(`${c.at(el)}: <${el.name} pulse="${el.attrs.pulse}"> must be more than 0. Use e.g. pulse="${formatDuration(defaultPulseMs)}".`);
  }
  if (timeoutMs < 3 * pulseMs) {
    throw new UserError(
      `${c.at(el)}: ${el.name} timeout ${formatDuration(timeoutMs)} is less than 3 × pulse ${formatDuration(pulseMs)}. ` +
        `Set timeout to at least ${formatDuration(3 * pulseMs)} or lower pulse.`,
    );
  }
}

/**
 * The LANs named by `el`'s `<child name>` elements (`<heartbeat>` in `<heart>`, `<lan>` in `<farm>`): distinct LANs of
 * cluster.xml, in order; none (or no `el`): every LAN of cluster.xml. `el`'s children must already be checked to be
 * `<child>` only.
 */
export function beatLans(el: XmlElement | undefined, child: string, c: Ctx): string[] {
  const allLans = c.cluster.lans.map((l) => l.name);
  const lans: string[] = [];
  for (const hb of el?.children ?? []) {
    expectOnly(hb, ['name'], [], c.file);
    const name = hb.attrs.name;
    if (!name) throw new UserError(`${c.at(hb)}: <${child}> has no name. Add name="<lan>" with one of: ${allLans.join(', ')}.`);
    if (!allLans.includes(name)) {
      throw new UserError(`${c.at(hb)}: ${child} "${name}" is not a lan of cluster.xml. Use one of: ${allLans.join(', ')}.`);
    }
    if (lans.includes(name)) throw new UserError(`${c.at(hb)}: ${child} "${name}" is listed twice. Remove one.`);
    lans.push(name);
  }
  return lans.length ? lans : allLans;
}

// ───────────────────────────── attribute helpers ─────────────────────────────

export function durationAttr(el: XmlElement, attr: string, def: number, file: string): number {
  const raw = el.attrs[attr];
  return raw === undefined ? def : parseDuration(raw, `${file} line ${el.line}: <${el.name} ${attr}="${raw}">`);
}

export function onOff(el: XmlElement, attr: string, def: boolean, file: string): boolean {
  const v = el.attrs[attr];
  if (v === undefined) return def;
  if (v === 'on') return true;
  if (v === 'off') return false;
  throw new UserError(`${file} line ${el.line}: <${el.name} ${attr}="${v}"> must be "on" or "off".`);
}

/** Throws unless `el` has at least one child element (named `child` in the message); returns `el`. */
export function nonEmpty(el: XmlElement, child: string, c: Ctx): XmlElement {
  if (el.children.length === 0) throw new UserError(`${c.at(el)}: <${el.name}> has no <${child}>. Add one or remove <${el.name}>.`);
  return el;
}
