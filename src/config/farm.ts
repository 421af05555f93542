/**
 * userconfig.xml of a farm module (`<service mode="farm">`, SafeKit's vocabulary): `<farm>` (membership heartbeats),
 * `<vip>` with `<virtual_interface type="vmac_directed">` VIPs and the `<loadbalancing_list>`; `<user>`, `<errd>`,
 * `<check>`, `<failover>`, maxloop and loop_interval as for mirror modules (service.ts). Every error is a UserError
 * naming the file and line and saying what to write instead; mirror-only elements are refused, each saying why.
 */
import { UserError } from '../errors.js';
import {
  beatLans, checkBeatTiming, type Ctx, durationAttr, onOff, parseInterfaceList, parseServiceCommon, type VipForm,
} from './service.js';
import type { FarmGroup, FarmHost, FarmModuleConfig, FarmRule, FarmVirtualAddr, HeartConfig } from './types.js';
import { expectOnly, optionalChild, type XmlElement } from './xml.js';

/** Defaults and limits of farm modules (README: configuration reference, farm module). */
export const FARM_DEFAULTS = {
  /** `<farm pulse>`: period of the membership heartbeats */
  pulseMs: 200,
  /** `<farm timeout>`: a node is lost after this long without a heartbeat on any of the module's LANs */
  timeoutMs: 2000,
  /** `<host power>` */
  power: 1,
  /** `<rule proto>` */
  proto: 'tcp',
  /** `<rule filter>` */
  filter: 'on_addr',
  /** a farm module runs on a cluster of 2 (cluster.xml's minimum) to maxNodes nodes */
  maxNodes: 8,
} as const;

const NAME_RE = /^[A-Za-z0-9_.-]+$/;

/** Why each mirror-only part of `<service>` has no meaning in a farm module, and what to do instead. */
const MIRROR_ONLY_ATTRS: Record<string, string> = {
  defaultprim: 'a farm module has no primary: every node is UP and serves its share of the clients. Remove defaultprim.',
  failover:
    'failover="off" keeps a mirror module\'s SECOND from taking over; a farm has no takeover (the clients of a lost node ' +
    'move to the others). Remove the failover attribute (a <failover> element with rules is allowed).',
};
const MIRROR_ONLY_ELEMENTS: Record<string, string> = {
  heart:
    '<heart> sets the heartbeats of a mirror module; a farm module sets its own with <farm pulse="…" timeout="…"><lan name="…"/></farm>. ' +
    'Replace <heart> by <farm>.',
  rfs:
    '<rfs> replicates files between the two nodes of a mirror module; a farm module has none: every node runs the ' +
    'application on its own data. Remove <rfs>, or use mode="mirror" for an application whose data must be replicated.',
  splitbrain:
    '<splitbrain> chooses which of the two nodes of a mirror module goes ALONE; a farm has no split brain: isolated ' +
    'nodes keep serving and the farm reforms when they meet again. Remove <splitbrain>.',
};

/** The farm module in `service` (mode already checked to be farm). */
export function parseFarmService(service: XmlElement, src: string, c: Ctx): FarmModuleConfig {
  for (const attr of Object.keys(service.attrs)) {
    const why = MIRROR_ONLY_ATTRS[attr];
    if (why) throw new UserError(`${c.at(service)}: <service ${attr}="${service.attrs[attr]}">: ${why}`);
  }
  for (const el of service.children) {
    const why = MIRROR_ONLY_ELEMENTS[el.name];
    if (why) throw new UserError(`${c.at(el)}: ${why}`);
  }
  expectOnly(service, ['mode', 'maxloop', 'loop_interval'], ['farm', 'vip', 'check', 'errd', 'failover', 'user'], c.file);
  const n = c.cluster.nodes.length;
  if (n > FARM_DEFAULTS.maxNodes) {
    throw new UserError(
      `${c.at(service)}: a farm module runs on at most ${FARM_DEFAULTS.maxNodes} nodes, and cluster.xml has ${n} ` +
        `(${c.cluster.nodes.join(', ')}). Use a cluster.xml with 2 to ${FARM_DEFAULTS.maxNodes} nodes for this module.`,
    );
  }
  const { vips, groups } = parseFarmVip(service, c);
  const { common, splitbrain } = parseServiceCommon(service, vips, src, c);
  if (splitbrain) throw new UserError(`${c.at(splitbrain)}: ${MIRROR_ONLY_ELEMENTS.splitbrain}`);
  for (const k of common.checkers) noSecond(k.when, k.line, `${k.type} when`, c);
  for (const p of common.errd?.procs ?? []) noSecond(p.class, p.line, 'proc class', c);
  return {
    name: c.module,
    mode: 'farm',
    heart: parseFarmHeart(optionalChild(service, 'farm', c.file), c),
    vips,
    groups,
    ...common,
  };
}

function noSecond(when: string, line: number, what: string, c: Ctx): void {
  if (when !== 'second') return;
  throw new UserError(
    `${c.file} line ${line}: ${what}="second": a farm module has no SECOND (its nodes are UP or not). ` +
      `Use "prim" or "both" (while the node is UP) or "pre" (from prestart to poststop).`,
  );
}

/**
 * `<farm pulse timeout mlost_count><lan name/>…</farm>`: the membership heartbeats (timeout = pulse × mlost_count when
 * mlost_count is given). Without `<farm>` or `<lan>`: every LAN of cluster.xml.
 */
function parseFarmHeart(el: XmlElement | undefined, c: Ctx): HeartConfig {
  const d = FARM_DEFAULTS;
  if (!el) return { pulseMs: d.pulseMs, timeoutMs: d.timeoutMs, lans: beatLans(undefined, 'lan', c) };
  if (el.attrs.slost_count !== undefined) {
    throw new UserError(
      `${c.at(el)}: <farm slost_count="${el.attrs.slost_count}"> counts the heartbeats a SafeKit farm leader may miss; ` +
        `tandem's farm has no leader (every node watches every other the same way). Remove slost_count; set timeout (or mlost_count).`,
    );
  }
  if (el.attrs.port !== undefined) {
    throw new UserError(
      `${c.at(el)}: <farm port="${el.attrs.port}">: tandem's heartbeats, farm ones included, use cluster.xml's <lans port> ` +
        `(${c.cluster.port}) for every module. Remove port (change <lans port> in cluster.xml to move them all).`,
    );
  }
  expectOnly(el, ['pulse', 'timeout', 'mlost_count'], ['lan'], c.file);
  const pulseMs = durationAttr(el, 'pulse', d.pulseMs, c.file);
  let timeoutMs = durationAttr(el, 'timeout', d.timeoutMs, c.file);
  const mlost = el.attrs.mlost_count;
  if (mlost !== undefined) {
    if (el.attrs.timeout !== undefined) {
      throw new UserError(`${c.at(el)}: <farm> has both timeout and mlost_count (timeout = pulse × mlost_count). Keep one of them.`);
    }
    if (!/^\d+$/.test(mlost) || Number(mlost) < 3) {
      throw new UserError(`${c.at(el)}: <farm mlost_count="${mlost}"> must be a whole number of at least 3 (timeout = pulse × mlost_count ≥ 3 × pulse).`);
    }
    timeoutMs = pulseMs * Number(mlost);
  }
  checkBeatTiming(el, pulseMs, timeoutMs, d.pulseMs, c);
  return { pulseMs, timeoutMs, lans: beatLans(el, 'lan', c) };
}

const ADD_VIP =
  '<vip><interface_list><interface><virtual_interface type="vmac_directed"><virtual_addr addr="…" where="alias"/>' +
  '</virtual_interface></interface></interface_list>…</vip>';
const ADD_LB =
  '<loadbalancing_list><group name="…"><cluster><host name="<node>" power="1"/>…</cluster><rule port="…" proto="tcp"/></group></loadbalancing_list>';

/** `<vip>`: the VIPs (at least one) and the `<loadbalancing_list>` (required). */
function parseFarmVip(service: XmlElement, c: Ctx): { vips: FarmVirtualAddr[]; groups: FarmGroup[] } {
  const el = optionalChild(service, 'vip', c.file);
  if (!el) throw new UserError(`${c.at(service)}: a farm module has no <virtual_addr>: the address its clients use. Add ${ADD_VIP} inside <service>.`);
  expectOnly(el, [], ['interface_list', 'loadbalancing_list'], c.file);
  const list = optionalChild(el, 'interface_list', c.file);
  if (!list) throw new UserError(`${c.at(el)}: a farm module has no <virtual_addr>: the address its clients use. Add ${ADD_VIP}.`);
  const vips = parseInterfaceList(list, farmVipForm(c), c, (va, addr, check): FarmVirtualAddr => {
    const where = va.attrs.where ?? 'alias';
    if (where !== 'alias') {
      throw new UserError(
        `${c.at(va)}: <virtual_addr where="${where}"> is not a farm VIP's: a farm VIP is on every UP node. ` +
          `Use where="alias" (the default) or remove where.`,
      );
    }
    return { addr, where, check, checkAddr: onOff(va, 'check', true, c.file) };
  });
  const lb = optionalChild(el, 'loadbalancing_list', c.file);
  if (!lb) {
    throw new UserError(`${c.at(el)}: a farm module has no <loadbalancing_list>: which nodes serve which traffic to its VIPs. Add ${ADD_LB} inside <vip>.`);
  }
  return { vips, groups: parseGroups(lb, vips, c) };
}

/** `<interface><virtual_interface type="vmac_directed">`; `<real_interface>` (mirror form) and vmac_invisible are refused. */
function farmVipForm(c: Ctx): VipForm {
  return {
    wrapper: 'virtual_interface',
    wrapperAttrs: ['type'],
    checkInterface: (intf: XmlElement) => {
      const real = intf.children.find((x) => x.name === 'real_interface');
      if (real) {
        throw new UserError(
          `${c.at(real)}: <real_interface> is the mirror form (the VIP on one node). A farm module's VIPs are on every UP ` +
            `node: write <virtual_interface type="vmac_directed"><virtual_addr addr="…" where="alias"/></virtual_interface>.`,
        );
      }
    },
    checkWrapper: (w: XmlElement) => {
      const type = w.attrs.type ?? 'vmac_directed';
      if (type === 'vmac_invisible') {
        throw new UserError(
          `${c.at(w)}: <virtual_interface type="vmac_invisible"> (switch flooding, promiscuous mode) is not supported. ` +
            `Use type="vmac_directed".`,
        );
      }
      if (type !== 'vmac_directed') {
        throw new UserError(`${c.at(w)}: <virtual_interface type="${type}"> is not valid. Use type="vmac_directed" (the default).`);
      }
    },
  };
}

// ───────────────────────────── load balancing ─────────────────────────────

/** `<loadbalancing_list><group name><cluster><host name power/>…</cluster><rule …/>…</group>…` */
function parseGroups(lb: XmlElement, vips: readonly FarmVirtualAddr[], c: Ctx): FarmGroup[] {
  expectOnly(lb, [], ['group'], c.file);
  if (lb.children.length === 0) throw new UserError(`${c.at(lb)}: <loadbalancing_list> has no <group>. Add ${ADD_LB}.`);
  const groups: FarmGroup[] = [];
  for (const g of lb.children) {
    expectOnly(g, ['name'], ['cluster', 'rule'], c.file);
    const name = g.attrs.name;
    if (!name) throw new UserError(`${c.at(g)}: <group> has no name. Add name="…" (e.g. name="web").`);
    if (!NAME_RE.test(name)) throw new UserError(`${c.at(g)}: group name "${name}" is not valid. Use only letters, digits, "_", "-" and ".".`);
    const twin = groups.find((x) => x.name === name);
    if (twin) throw new UserError(`${c.at(g)}: group "${name}" is defined twice (also line ${twin.line}). Give each group its own name, or merge them.`);
    const hosts = parseHosts(g, c);
    const rules = g.children.filter((x) => x.name === 'rule').map((r) => parseRule(r, vips, c));
    if (rules.length === 0) {
      throw new UserError(`${c.at(g)}: group "${name}" has no <rule>: no traffic would be balanced. Add <rule port="…" proto="tcp"/> (port="*" for every port).`);
    }
    groups.push({ name, hosts, rules, line: g.line });
  }
  checkOverlaps(groups, c);
  return groups;
}

function parseHosts(g: XmlElement, c: Ctx): FarmHost[] {
  const cluster = optionalChild(g, 'cluster', c.file);
  const nodes = c.cluster.nodes.join(', ');
  if (!cluster || cluster.children.length === 0) {
    throw new UserError(
      `${c.at(cluster ?? g)}: group "${g.attrs.name}" has no host. Add <cluster><host name="<node>" power="1"/>…</cluster> ` +
        `with nodes of cluster.xml: ${nodes}.`,
    );
  }
  expectOnly(cluster, [], ['host'], c.file);
  const hosts: FarmHost[] = [];
  const lines = new Map<string, number>();
  for (const h of cluster.children) {
    expectOnly(h, ['name', 'power'], [], c.file);
    const name = h.attrs.name;
    if (!name) throw new UserError(`${c.at(h)}: <host> has no name. Add name="<node>" with one of: ${nodes}.`);
    if (!c.cluster.nodes.includes(name)) throw new UserError(`${c.at(h)}: host "${name}" is not a node of cluster.xml. Use one of: ${nodes}.`);
    const dup = lines.get(name);
    if (dup !== undefined) throw new UserError(`${c.at(h)}: host "${name}" is listed twice in group "${g.attrs.name}" (also line ${dup}). Remove one.`);
    lines.set(name, h.line);
    const raw = h.attrs.power;
    const power = raw === undefined ? FARM_DEFAULTS.power : /^\d+$/.test(raw) ? Number(raw) : NaN;
    if (!(Number.isSafeInteger(power) && power >= 1)) {
      throw new UserError(
        `${c.at(h)}: <host name="${name}" power="${raw}"> must be a whole number of at least 1 (its share of the clients ` +
          `is power / the sum of the group's powers). Write e.g. power="1", or remove the host to give it no share.`,
      );
    }
    hosts.push({ name, power });
  }
  return hosts;
}

function parseRule(r: XmlElement, vips: readonly FarmVirtualAddr[], c: Ctx): FarmRule {
  expectOnly(r, ['virtual_addr', 'port', 'proto', 'filter'], [], c.file);
  const { port: rawPort, virtual_addr: va } = r.attrs;
  if (rawPort === undefined) {
    throw new UserError(`${c.at(r)}: a rule without port. Add port="<1-65535>", or port="*" for every port of its proto.`);
  }
  const port = rawPort === '*' ? null : /^\d+$/.test(rawPort) ? Number(rawPort) : NaN;
  if (port !== null && !(port >= 1 && port <= 65535)) {
    throw new UserError(`${c.at(r)}: <rule port="${rawPort}"> is not a port. Use a number from 1 to 65535, or "*" for every port.`);
  }
  const proto = r.attrs.proto ?? FARM_DEFAULTS.proto;
  if (proto === 'arp') {
    throw new UserError(`${c.at(r)}: <rule proto="arp"> is not needed in tandem: every UP node answers ARP for the VIPs. Remove this rule; balance tcp or udp.`);
  }
  if (proto !== 'tcp' && proto !== 'udp') throw new UserError(`${c.at(r)}: <rule proto="${proto}"> is not valid. Use proto="tcp" (the default) or proto="udp".`);
  const filter = r.attrs.filter ?? FARM_DEFAULTS.filter;
  if (filter === 'on_ipid') {
    throw new UserError(
      `${c.at(r)}: <rule filter="on_ipid"> (per IP packet) is not supported. Use filter="on_addr" (by client address, ` +
        `the default) or filter="on_port" (by client address and port).`,
    );
  }
  if (filter !== 'on_addr' && filter !== 'on_port') {
    throw new UserError(`${c.at(r)}: <rule filter="${filter}"> is not valid. Use filter="on_addr" (the default) or filter="on_port".`);
  }
  if (va !== undefined && va !== '*' && !vips.some((v) => v.addr === va)) {
    throw new UserError(
      `${c.at(r)}: <rule virtual_addr="${va}"> is not a virtual_addr of this module. Use "*" (every VIP) or one of: ` +
        `${vips.map((v) => v.addr).join(', ')}.`,
    );
  }
  return { vip: va === undefined || va === '*' ? null : va, port, proto, filter, line: r.line };
}

/** No two rules of the module may match the same packet: same proto, overlapping vip and port. */
function checkOverlaps(groups: readonly FarmGroup[], c: Ctx): void {
  const seen: { rule: FarmRule; group: string }[] = [];
  for (const g of groups) {
    for (const r of g.rules) {
      const o = seen.find(({ rule: x }) => x.proto === r.proto && (x.vip === null || r.vip === null || x.vip === r.vip) &&
        (x.port === null || r.port === null || x.port === r.port));
      if (o) {
        const where = o.group === g.name ? `in the same group "${g.name}"` : `of group "${o.group}"`;
        throw new UserError(
          `${c.file} line ${r.line}: rule ${describe(r)} of group "${g.name}" overlaps rule ${describe(o.rule)} ${where} ` +
            `(line ${o.rule.line}): a packet would match both. Change the port, proto or virtual_addr of one of them, or remove one.`,
        );
      }
      seen.push({ rule: r, group: g.name });
    }
  }
}

function describe(r: FarmRule): string {
  return `${r.proto} port ${r.port ?? '*'} on ${r.vip ?? 'every VIP'}`;
}

/**
 * What the farm runtime supports today, checked where a module is installed, configured and loaded (not by the
 * parser, which reads the whole vocabulary): one `<virtual_addr>` and one `<group>` per farm module. null when the
 * module is within it; else a UserError saying how to split it.
 */
export function farmLimits(cfg: FarmModuleConfig, file = 'userconfig.xml'): UserError | null {
  if (cfg.vips.length > 1) {
    return new UserError(
      `${file}: farm module ${cfg.name} has ${cfg.vips.length} virtual addresses (${cfg.vips.map((v) => v.addr).join(', ')}); tandem balances one virtual IP per farm module.`,
      'Put each further virtual IP in a farm module of its own (same scripts, its own <vip>).',
    );
  }
  if (cfg.groups.length > 1) {
    return new UserError(
      `${file}: farm module ${cfg.name} has ${cfg.groups.length} load-balancing groups (${cfg.groups.map((g) => g.name).join(', ')}); tandem balances one group per farm module.`,
      'Merge the rules into one <group> (the same hosts and powers), or put each group in a farm module of its own with its own virtual IP.',
    );
  }
  return null;
}
