import path from 'node:path';
import { UserError } from '../errors.js';
import { isIPv4 } from './cluster.js';
import { parseFarmService } from './farm.js';
import {
  beatLans, checkBeatTiming, Ctx, durationAttr, nonEmpty, onOff, parseInterfaceList, parseServiceCommon, readService, USER_DEFAULTS,
} from './service.js';
import type {
  ClusterConfig,
  HeartConfig,
  MirrorModuleConfig,
  ModuleConfig,
  NotReplicated,
  ReplicatedDir,
  RfsConfig,
  SplitBrainConfig,
  VirtualAddr,
} from './types.js';
import { expectOnly, optionalChild, type XmlElement } from './xml.js';

/** Defaults applied when userconfig.xml leaves a value out. */
export const USERCONFIG_DEFAULTS = {
  pulseMs: 500,
  timeoutMs: 5000,
  // 'none' (every fsync durable on both nodes), as DRBD's protocol C; SafeKit's default is semi-synchronous
  async: 'none',
  syncdeltaMs: 0,
  splitbrainIdent: 'splitbrain',
  ...USER_DEFAULTS,
} as const;

const MODULE_NAME_RE = /^[a-zA-Z][a-zA-Z0-9_-]{0,30}$/;

/** Throws a UserError unless `name` is a valid module name: a letter, then up to 30 letters, digits, `_` or `-`. */
export function validateModuleName(name: string): void {
  if (!MODULE_NAME_RE.test(name)) {
    throw new UserError(
      `module name "${name}" is not valid. Use a letter followed by up to 30 letters, digits, "_" or "-" (e.g. "webapp").`,
    );
  }
}

/**
 * Parses and validates a module's userconfig.xml (SafeKit vocabulary) against `cluster`, a mirror or a farm module by
 * its `<service mode>` (farm: farm.ts). The result has every default filled in (USERCONFIG_DEFAULTS, FARM_DEFAULTS).
 * Any unknown or unsupported element or attribute, and any inconsistency with cluster.xml, is a UserError that names
 * `file` and the line. `moduleDir`: the module's directory, where relative custom checker programs are checked in
 * its bin/ (null: not checked).
 */
export function parseModuleUserconfig(
  text: string | Uint8Array, moduleName: string, cluster: ClusterConfig, file = 'userconfig.xml', moduleDir: string | null = null,
): ModuleConfig {
  return parseModule(text, new Ctx(file, cluster, moduleName, moduleDir), parseFarmService);
}

/**
 * parseModuleUserconfig for a mirror module only: a farm module is a UserError saying so (for the callers that run
 * mirror modules only).
 */
export function parseUserconfig(
  text: string | Uint8Array, moduleName: string, cluster: ClusterConfig, file = 'userconfig.xml', moduleDir: string | null = null,
): MirrorModuleConfig {
  return parseModule(text, new Ctx(file, cluster, moduleName, moduleDir), (service, _src, c) => {
    throw new UserError(
      `${c.at(service)}: module ${c.module} is a farm module (<service mode="farm">), and only mirror modules ` +
        `can be used here so far. Use mode="mirror", or run it with a tandem that runs farm modules.`,
    );
  });
}

function parseModule<F>(text: string | Uint8Array, c: Ctx, farm: (service: XmlElement, src: string, c: Ctx) => F): MirrorModuleConfig | F {
  validateModuleName(c.module);
  const { service, src, mode } = readService(text, c.file);
  return mode === 'farm' ? farm(service, src, c) : parseMirrorService(service, src, c);
}

function parseMirrorService(service: XmlElement, src: string, c: Ctx): MirrorModuleConfig {
  const file = c.file;
  expectOnly(service, ['mode', 'defaultprim', 'failover', 'maxloop', 'loop_interval'],
    ['heart', 'vip', 'rfs', 'splitbrain', 'check', 'errd', 'failover', 'user'], file);
  // a cluster may list more than two nodes: the module runs on the two where it is installed (daemon/mirror-peer.ts)
  const vips = parseVip(optionalChild(service, 'vip', file), c);
  const { common, splitbrain } = parseServiceCommon(service, vips, src, c);
  return {
    name: c.module,
    mode: 'mirror',
    defaultprim: parseDefaultprim(service, c),
    failover: onOff(service, 'failover', true, file),
    heart: parseHeart(optionalChild(service, 'heart', file), c),
    vips,
    rfs: parseRfs(optionalChild(service, 'rfs', file), c),
    splitbrain: parseSplitbrain(findSplitbrain(service, splitbrain, file), c),
    ...common,
  };
}

function parseDefaultprim(service: XmlElement, c: Ctx): string {
  const v = service.attrs.defaultprim;
  if (v === undefined || v === 'alone' || c.cluster.nodes.includes(v)) return v ?? 'alone';
  throw new UserError(
    `${c.at(service)}: <service defaultprim="${v}"> is not "alone" nor a node of cluster.xml. ` +
      `Use alone or one of: ${c.cluster.nodes.join(', ')}.`,
  );
}

function parseHeart(el: XmlElement | undefined, c: Ctx): HeartConfig {
  const d = USERCONFIG_DEFAULTS;
  if (!el) return { pulseMs: d.pulseMs, timeoutMs: d.timeoutMs, lans: beatLans(undefined, 'heartbeat', c) };
  expectOnly(el, ['pulse', 'timeout'], ['heartbeat'], c.file);
  const pulseMs = durationAttr(el, 'pulse', d.pulseMs, c.file);
  const timeoutMs = durationAttr(el, 'timeout', d.timeoutMs, c.file);
  checkBeatTiming(el, pulseMs, timeoutMs, d.pulseMs, c);
  return { pulseMs, timeoutMs, lans: beatLans(el, 'heartbeat', c) };
}

/** `<vip><interface_list><interface check><real_interface><virtual_addr addr where/>…` */
function parseVip(el: XmlElement | undefined, c: Ctx): VirtualAddr[] {
  if (!el) return [];
  expectOnly(el, [], ['interface_list'], c.file);
  const list = optionalChild(el, 'interface_list', c.file);
  if (!list) throw new UserError(`${c.at(el)}: <vip> has no <interface_list>. Add <interface_list><interface><real_interface><virtual_addr addr="…"/> or remove <vip>.`);
  return parseInterfaceList(list, { wrapper: 'real_interface', wrapperAttrs: [] }, c, (va, addr, check): VirtualAddr => {
    const where = va.attrs.where ?? 'one_side_alias';
    if (where !== 'one_side_alias') {
      throw new UserError(`${c.at(va)}: <virtual_addr where="${where}"> is not supported. Use where="one_side_alias" (the default) or remove where.`);
    }
    return { addr, where, check, checkAddr: onOff(va, 'check', true, c.file) };
  });
}

/** `<rfs async syncdelta><replicated dir mode><notreplicated path|regexpath/>…` */
function parseRfs(el: XmlElement | undefined, c: Ctx): RfsConfig | null {
  if (!el) return null;
  expectOnly(el, ['async', 'syncdelta', 'port'], ['replicated'], c.file);
  const async = el.attrs.async ?? USERCONFIG_DEFAULTS.async;
  if (async !== 'none' && async !== 'second') {
    throw new UserError(`${c.at(el)}: <rfs async="${async}"> is not valid. Use async="none" (default) or async="second".`);
  }
  const syncdeltaMs = durationAttr(el, 'syncdelta', USERCONFIG_DEFAULTS.syncdeltaMs, c.file);
  const port = el.attrs.port === undefined ? rfsDefaultPort(c.cluster.port, c.module) : Number(el.attrs.port);
  if (!/^\d+$/.test(el.attrs.port ?? '1') || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new UserError(`${c.at(el)}: <rfs port="${el.attrs.port}"> is not a TCP port. Use a number from 1 to 65535, or leave port out (default ${rfsDefaultPort(c.cluster.port, c.module)} for this module).`);
  }
  nonEmpty(el, 'replicated', c);
  const replicated: ReplicatedDir[] = [];
  const lines: number[] = [];
  for (const r of el.children) {
    const dir = parseReplicated(r, c);
    replicated.forEach((other, i) => {
      if (other.dir === dir.dir || dir.dir.startsWith(`${other.dir}/`) || other.dir.startsWith(`${dir.dir}/`)) {
        throw new UserError(
          `${c.at(r)}: replicated dir "${dir.dir}" overlaps "${other.dir}" (line ${lines[i]}). ` +
            `Replicated directories must not be nested or repeated; keep only the outer one.`,
        );
      }
    });
    replicated.push(dir);
    lines.push(r.line);
  }
  return { async, syncdeltaMs, port, replicated };
}

/** how many ports above `<lans port>` the default replication ports of modules spread over */
export const RFS_PORT_SPREAD = 1000;

/**
 * The default `<rfs port>` of a module: `<lans port>` + 1 + (FNV-1a of the module name mod RFS_PORT_SPREAD) (below `<lans port>`
 * when that passes 65535), the same
 * on every node whatever else is installed. Two modules of a node whose ports coincide are refused when the second
 * is loaded (`moduleConflict`): set `port` on one of them.
 */
export function rfsDefaultPort(clusterPort: number, module: string): number {
  let h = 2166136261;
  for (let i = 0; i < module.length; i++) h = Math.imul(h ^ module.charCodeAt(i), 16777619) >>> 0;
  const base = clusterPort + RFS_PORT_SPREAD < 65535 ? clusterPort + 1 : clusterPort - RFS_PORT_SPREAD;
  return base + (h % RFS_PORT_SPREAD);
}

/**
 * The UserError for module `cfg` that would share with another loaded module what only one module may hold, or null
 * (each check against each other module in turn, the first found is returned):
 * - a virtual IP (mirror or farm: two modules would add and remove the same address);
 * - a mirror module's `<rfs port>` (both replication hosts would bind it).
 * `others`: the modules loaded on this node (`cfg` itself among them is ignored: a reload). `fix`: what to do once
 * the address or port is changed (default: reload the module with `tandem config`).
 */
export function moduleConflict(cfg: ModuleConfig, others: Iterable<ModuleConfig>, fix = `then run \`tandem config -m ${cfg.name}\``): UserError | null {
  for (const o of others) {
    if (o.name === cfg.name) continue;
    const vip = cfg.vips.find((v) => o.vips.some((w) => w.addr === v.addr));
    if (vip) {
      return new UserError(
        `module ${cfg.name}: its virtual IP ${vip.addr} is also module ${o.name}'s (a ${o.mode} module). A virtual IP belongs to ` +
          `one module: change <virtual_addr addr="…"> in the userconfig.xml of one of them to a free address, ${fix}.`,
      );
    }
    if (cfg.mode === 'mirror' && o.mode === 'mirror' && cfg.rfs && o.rfs && o.rfs.port === cfg.rfs.port) {
      return new UserError(
        `module ${cfg.name}: its replication port ${cfg.rfs.port} is also module ${o.name}'s. ` +
          `Set <rfs port="…"> in the userconfig.xml of one of them to a free port (the same on both nodes), ${fix}.`,
      );
    }
  }
  return null;
}

function parseReplicated(el: XmlElement, c: Ctx): ReplicatedDir {
  expectOnly(el, ['dir', 'mode'], ['notreplicated'], c.file);
  const dir = el.attrs.dir;
  if (!dir) throw new UserError(`${c.at(el)}: <replicated> has no dir. Add dir="/absolute/path".`);
  if (!dir.startsWith('/')) throw new UserError(`${c.at(el)}: replicated dir "${dir}" is not absolute. Write the full path, e.g. "/srv/app/data".`);
  if (dir.split('/').includes('..')) throw new UserError(`${c.at(el)}: replicated dir "${dir}" contains "..". Write the path without "..".`);
  const normal = path.posix.normalize(dir).replace(/\/+$/, '');
  if (normal === '') throw new UserError(`${c.at(el)}: replicated dir "${dir}" is the root directory. Replicate a specific directory such as "/srv/app/data".`);
  if (normal !== dir) throw new UserError(`${c.at(el)}: replicated dir "${dir}" is not a normalized path. Write "${normal}".`);
  const mode = el.attrs.mode ?? 'read_write';
  if (mode !== 'read_write' && mode !== 'read_only') {
    throw new UserError(`${c.at(el)}: <replicated mode="${mode}"> is not valid. Use mode="read_write" (default) or mode="read_only".`);
  }
  return { dir, mode, notreplicated: el.children.map((n) => parseNotreplicated(n, c)) };
}

function parseNotreplicated(el: XmlElement, c: Ctx): NotReplicated {
  expectOnly(el, ['path', 'regexpath'], [], c.file);
  const { path: p, regexpath } = el.attrs;
  if ((p === undefined) === (regexpath === undefined)) {
    throw new UserError(`${c.at(el)}: <notreplicated> needs exactly one of path="…" or regexpath="…". Keep one of them.`);
  }
  if (p !== undefined) {
    if (p === '' || p.startsWith('/')) {
      throw new UserError(`${c.at(el)}: notreplicated path "${p}" must be relative to the replicated dir. Write e.g. path="tmp".`);
    }
    if (p.split('/').includes('..')) throw new UserError(`${c.at(el)}: notreplicated path "${p}" contains "..". Write a path inside the replicated dir.`);
    const normal = path.posix.normalize(p).replace(/\/+$/, '');
    if (normal === '.' || normal === '') throw new UserError(`${c.at(el)}: notreplicated path "${p}" is the whole replicated dir. Name a file or directory inside it.`);
    if (normal !== p) throw new UserError(`${c.at(el)}: notreplicated path "${p}" is not a normalized path. Write "${normal}".`);
    return { path: p };
  }
  const body = regexpath!.startsWith('!') ? regexpath!.slice(1) : regexpath!;
  if (body === '') throw new UserError(`${c.at(el)}: notreplicated regexpath is empty. Write a regular expression, e.g. regexpath="\\.log$".`);
  try {
    new RegExp(body);
  } catch (e) {
    throw new UserError(`${c.at(el)}: notreplicated regexpath "${regexpath}" is not a valid regular expression (${(e as Error).message}). Fix it.`);
  }
  return { regexpath: regexpath! };
}

/** `<splitbrain>` may sit directly in `<service>` or inside `<check>` (where SafeKit puts it); at most one overall. */
function findSplitbrain(service: XmlElement, nested: XmlElement | undefined, file: string): XmlElement | undefined {
  const direct = optionalChild(service, 'splitbrain', file);
  if (direct && nested) {
    throw new UserError(`${file} line ${nested.line}: a second <splitbrain> (the first is on line ${direct.line}). Keep only one.`);
  }
  return direct ?? nested;
}

function parseSplitbrain(el: XmlElement | undefined, c: Ctx): SplitBrainConfig | null {
  if (!el) return null;
  expectOnly(el, ['ident', 'exec', 'arg'], [], c.file);
  const ident = el.attrs.ident ?? USERCONFIG_DEFAULTS.splitbrainIdent;
  if (!/^[A-Za-z0-9_.-]+$/.test(ident)) {
    throw new UserError(`${c.at(el)}: splitbrain ident "${ident}" is not valid. Use letters, digits, "_", "-" and ".".`);
  }
  const exec = el.attrs.exec ?? 'ping';
  if (exec !== 'ping') throw new UserError(`${c.at(el)}: <splitbrain exec="${exec}"> is not supported. Use exec="ping".`);
  const witnesses = (el.attrs.arg ?? '').trim().split(/\s+/).filter(Boolean);
  if (witnesses.length === 0) {
    throw new UserError(`${c.at(el)}: <splitbrain> has no witness. Add arg="<witness IPv4>" (several separated by spaces).`);
  }
  witnesses.forEach((w, i) => {
    if (!isIPv4(w)) throw new UserError(`${c.at(el)}: splitbrain witness "${w}" is not an IPv4 address. Write dotted quads separated by spaces.`);
    const owner = c.ownerOf(w);
    if (owner) {
      throw new UserError(
        `${c.at(el)}: splitbrain witness ${w} is node "${owner.node}" (lan "${owner.lan}"). ` +
          `A witness must be a third machine, e.g. the gateway.`,
      );
    }
    if (witnesses.indexOf(w) !== i) throw new UserError(`${c.at(el)}: splitbrain witness ${w} is listed twice. Remove one.`);
  });
  return { ident, exec, witnesses };
}
