import { UserError } from '../errors.js';
import type { ClusterConfig, Lan, LanNode } from './types.js';
import { expectOnly, optionalChild, parseXml, type XmlElement } from './xml.js';

/** Default UDP port of the heartbeat socket (`<lans port>`), as SafeKit's safeadmin. */
export const DEFAULT_CLUSTER_PORT = 4800;

const NAME_RE = /^[A-Za-z0-9_.-]+$/;

/** True for an IPv4 dotted quad: four decimal numbers 0..255 without leading zeros (`10.0.0.1`, not `010.0.0.1`). */
export function isIPv4(s: string): boolean {
  const parts = s.split('.');
  return parts.length === 4 && parts.every((p) => /^(0|[1-9]\d{0,2})$/.test(p) && Number(p) <= 255);
}

/**
 * Parses and validates cluster.xml:
 * `<cluster><lans port="4800"><lan name="…"><node name="…" addr="…"/>…</lan>…</lans></cluster>`.
 * Guarantees: ≥1 LAN, unique LAN names, every LAN lists the same ≥2 node names, every addr is IPv4 and used once in
 * the file. `nodes` keeps the order of first appearance. Any violation or unknown element/attribute is a UserError
 * with the line it is on.
 */
export function parseClusterXml(text: string | Uint8Array, file = 'cluster.xml'): ClusterConfig {
  const root = parseXml(text, file);
  if (root.name !== 'cluster') {
    throw new UserError(`${file} line ${root.line}: the root element is <${root.name}>. cluster.xml must start with <cluster>.`);
  }
  expectOnly(root, [], ['lans'], file);
  const lansEl = optionalChild(root, 'lans', file);
  if (!lansEl) {
    throw new UserError(`${file} line ${root.line}: <cluster> has no <lans>. Add <lans> with one <lan> per network (see README: Configuration).`);
  }
  expectOnly(lansEl, ['port'], ['lan'], file);
  const port = parsePort(lansEl, file);
  if (lansEl.children.length === 0) {
    throw new UserError(`${file} line ${lansEl.line}: <lans> has no <lan>. Add at least one <lan name="default"> with its nodes.`);
  }

  const lans: Lan[] = [];
  const addrLine = new Map<string, { line: number; node: string; lan: string }>();
  for (const lanEl of lansEl.children) {
    const lan = parseLan(lanEl, file);
    const earlier = lans.find((l) => l.name === lan.name);
    if (earlier) {
      throw new UserError(`${file} line ${lan.line}: lan "${lan.name}" is defined twice (also line ${earlier.line}). Give each lan a unique name.`);
    }
    for (const node of lan.nodes) {
      const seen = addrLine.get(node.addr);
      if (seen) {
        throw new UserError(
          `${file} line ${node.line}: addr ${node.addr} of node "${node.name}" in lan "${lan.name}" is already used by node ` +
            `"${seen.node}" in lan "${seen.lan}" (line ${seen.line}). Each address may appear once; fix one of them.`,
        );
      }
      addrLine.set(node.addr, { line: node.line, node: node.name, lan: lan.name });
    }
    lans.push(lan);
  }

  const nodes: string[] = [];
  for (const lan of lans) for (const n of lan.nodes) if (!nodes.includes(n.name)) nodes.push(n.name);
  for (const lan of lans) {
    for (const name of nodes) {
      if (lan.nodes.some((n) => n.name === name)) continue;
      const other = lans.find((l) => l.nodes.some((n) => n.name === name))!;
      throw new UserError(
        `${file} line ${lan.line}: lan "${lan.name}" has no node "${name}" (lan "${other.name}" has it). Every lan must list ` +
          `the same nodes: add <node name="${name}" addr="<ip>"/> to lan "${lan.name}" or remove "${name}" from the other lans.`,
      );
    }
  }
  if (nodes.length < 2) {
    throw new UserError(`${file} line ${lansEl.line}: the cluster has ${nodes.length} node (${nodes.join(', ')}); tandem needs at least 2. Add a node to every lan.`);
  }
  return { port, lans, nodes };
}

function parsePort(lansEl: XmlElement, file: string): number {
  const raw = lansEl.attrs.port;
  if (raw === undefined) return DEFAULT_CLUSTER_PORT;
  const port = /^\d{1,5}$/.test(raw.trim()) ? Number(raw.trim()) : NaN;
  if (!(port >= 1 && port <= 65535)) {
    throw new UserError(`${file} line ${lansEl.line}: <lans port="${raw}"> is not a UDP port. Use a number from 1 to 65535 (default ${DEFAULT_CLUSTER_PORT}).`);
  }
  return port;
}

function parseLan(el: XmlElement, file: string): Lan {
  expectOnly(el, ['name'], ['node'], file);
  const name = el.attrs.name;
  if (name === undefined || name === '') {
    throw new UserError(`${file} line ${el.line}: <lan> has no name. Add name="<lan name>" (e.g. name="default").`);
  }
  checkName(name, 'lan', el.line, file);
  if (el.children.length === 0) {
    throw new UserError(`${file} line ${el.line}: lan "${name}" has no node. Add <node name="…" addr="…"/> for every node, or remove the lan.`);
  }
  const nodes: LanNode[] = [];
  for (const nodeEl of el.children) {
    const node = parseNode(nodeEl, file);
    const twin = nodes.find((n) => n.name === node.name);
    if (twin) {
      throw new UserError(`${file} line ${node.line}: node "${node.name}" appears twice in lan "${name}" (also line ${twin.line}). Remove one.`);
    }
    nodes.push(node);
  }
  return { name, nodes, line: el.line };
}

function parseNode(el: XmlElement, file: string): LanNode {
  expectOnly(el, ['name', 'addr'], [], file);
  const { name, addr } = el.attrs;
  if (name === undefined || name === '') {
    throw new UserError(`${file} line ${el.line}: <node> has no name. Add name="<node name>" (the same name in every lan).`);
  }
  checkName(name, 'node', el.line, file);
  if (addr === undefined || addr === '') {
    throw new UserError(`${file} line ${el.line}: node "${name}" has no addr. Add addr="<ip>" or remove the node.`);
  }
  if (!isIPv4(addr)) {
    throw new UserError(`${file} line ${el.line}: node "${name}" has addr "${addr}" which is not an IPv4 address. Write a dotted quad such as 198.51.100.1.`);
  }
  return { name, addr, line: el.line };
}

function checkName(name: string, what: string, line: number, file: string): void {
  if (!NAME_RE.test(name)) {
    throw new UserError(`${file} line ${line}: ${what} name "${name}" is not valid. Use only letters, digits, "_", "-" and ".".`);
  }
}
