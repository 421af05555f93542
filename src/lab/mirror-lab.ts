/**
 * A lab holding a two-node mirror cluster with the demo module (examples/demo), or another module given in
 * `MirrorLabOptions.module`: cluster.xml over the lab's LANs, one cluster key, the module installed on both nodes.
 * Used by the lab tests, `tandem lab up` and the demo.
 */
import { existsSync, readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { generateKey, writeKeyFile } from '../daemon/key.js';
import { controlRequest } from '../daemon/control.js';
import { UserError } from '../errors.js';
import { homePaths } from '../home.js';
import { Lab } from './lab.js';
import { repoRoot, type LabSpec } from './spec.js';

export const DEMO_MODULE = 'demo';
export const DEMO_VIP = '198.51.100.10';
export const DEMO_PORT = 8080;

export interface MirrorLabOptions {
  pulse?: string;
  timeout?: string;
  /** e.g. "10m"; puts the module's data directory in <rfs> */
  syncdelta?: string;
  /** the demo replicates its data directory (its request count, /srv/demo/data) even without syncdelta */
  replicate?: boolean;
  /** `<rfs async>` of the module (default none) */
  rfsAsync?: 'none' | 'second';
  witness?: boolean;
  failover?: boolean;
  defaultprim?: string;
  /** start both daemons (default true) */
  daemons?: boolean;
  spec?: Partial<LabSpec>;
  /** the module installed on both nodes (default: the demo, `DEMO_LAB_MODULE`) */
  module?: LabModule;
}

/** A module for a mirror lab: its files, and the userconfig.xml written over theirs from the lab options. */
export interface LabModule {
  name: string;
  /** directory copied as the module (userconfig.xml, bin/, anything else); default `<repo>/examples/<name>` */
  dir?: string;
  userconfig: (o: MirrorLabOptions, witnessAddr: string) => string;
}

export const DEMO_LAB_MODULE: LabModule = { name: DEMO_MODULE, userconfig: (o, w) => demoUserconfig(o, w) };

export function demoUserconfig(o: MirrorLabOptions, witnessAddr: string): string {
  // replicating, the demo keeps its request count in a replicated data directory (its prestart creates it)
  const rfs = o.replicate || o.syncdelta;
  return mirrorUserconfig(o, witnessAddr, {
    vip: DEMO_VIP, rfsDir: rfs ? '/srv/demo/data' : null, nicestop: '30s', forcestop: '10s',
    vars: rfs ? { DEMO_DATA: '/srv/demo/data' } : {},
  });
}

/** What differs between the lab's mirror modules; the rest of userconfig.xml comes from the lab options. */
export interface LabModuleShape {
  vip: string;
  /** the replicated directory (`<rfs async="none">`, with the lab's syncdelta), or none */
  rfsDir: string | null;
  nicestop: string;
  forcestop: string;
  vars: Record<string, string>;
  /** more of <service>: attributes (e.g. `maxloop="2"`) and elements (<errd>, <check>, <failover>) */
  serviceAttrs?: string;
  extra?: string;
}

/** userconfig.xml of a lab mirror module: heart, witness, failover, defaultprim and syncdelta from the lab options. */
export function mirrorUserconfig(o: MirrorLabOptions, witnessAddr: string, m: LabModuleShape): string {
  const syncdelta = o.syncdelta ? ` syncdelta="${o.syncdelta}"` : '';
  const rfs = m.rfsDir ? `\n    <rfs async="${o.rfsAsync ?? 'none'}"${syncdelta}><replicated dir="${m.rfsDir}"/></rfs>` : '';
  const witness = o.witness ? `\n    <splitbrain ident="witness" exec="ping" arg="${witnessAddr}"/>` : '';
  const vars = Object.entries(m.vars).map(([k, v]) => `<var name="${k}" value="${v}"/>`).join('');
  return `<safe>
  <service mode="mirror" defaultprim="${o.defaultprim ?? 'alone'}" failover="${o.failover === false ? 'off' : 'on'}"${m.serviceAttrs ? ` ${m.serviceAttrs}` : ''}>
    <heart pulse="${o.pulse ?? '500ms'}" timeout="${o.timeout ?? '5s'}"><heartbeat name="default"/><heartbeat name="replication"/></heart>
    <vip><interface_list><interface check="on"><real_interface>
      <virtual_addr addr="${m.vip}" where="one_side_alias"/>
    </real_interface></interface></interface_list></vip>${rfs}${witness}${m.extra ? `\n    ${m.extra}` : ''}
    <user nicestoptimeout="${m.nicestop}" forcestoptimeout="${m.forcestop}">${vars}</user>
  </service>
</safe>
`;
}

export function clusterXml(lab: Lab, nodes: string[]): string {
  const lans = lab.spec.lans
    .filter((l) => nodes.every((n) => l.addrs[n]))
    .map((l) => `    <lan name="${l.name}">\n${nodes.map((n) => `      <node name="${n}" addr="${l.addrs[n]}"/>`).join('\n')}\n    </lan>`);
  return `<cluster>\n  <lans>\n${lans.join('\n')}\n  </lans>\n</cluster>\n`;
}

export function nodesOf(lab: Lab): string[] {
  return lab.spec.hosts.filter((h) => h.role === 'node').map((h) => h.name);
}

/** Write cluster.xml, cluster.key and the module (default the demo) into every node's home (no daemon involved). */
export async function provisionMirror(lab: Lab, o: MirrorLabOptions): Promise<void> {
  const nodes = nodesOf(lab);
  const key = generateKey();
  for (const n of nodes) {
    const home = { root: lab.paths(n).home, runDir: lab.paths(n).run };
    await fs.mkdir(home.root, { recursive: true });
    await fs.writeFile(homePaths.clusterXml(home), clusterXml(lab, nodes));
    await writeKeyFile(homePaths.clusterKey(home), key, { force: true });
  }
  await installLabModule(lab, o);
}

/**
 * Copies a module (`o.module`, default the demo) with its userconfig.xml made from the lab options into every
 * node's home, replacing an earlier copy; a running daemon loads it with `tandem config -m NAME`.
 */
export async function installLabModule(lab: Lab, o: MirrorLabOptions): Promise<void> {
  const witness = lab.spec.hosts.find((h) => h.role === 'witness');
  const labModule = o.module ?? DEMO_LAB_MODULE;
  const xml = labModule.userconfig(o, witness ? lab.addr(witness.name) : '198.51.100.254');
  const source = labModule.dir ?? path.join(repoRoot(), 'examples', labModule.name);
  // the directory only: the lab writes the module's userconfig.xml itself (a test module may bring scripts alone)
  if (!existsSync(source)) {
    throw new UserError(`the lab's ${labModule.name} module is not at ${source}`,
      `The single binary does not carry the example modules: run it from a tandem checkout (cd into it, the lab takes examples/${labModule.name} from there), or use bin/tandem.`);
  }
  for (const n of nodesOf(lab)) {
    const home = { root: lab.paths(n).home, runDir: lab.paths(n).run };
    const mod = homePaths.moduleDir(home, labModule.name);
    await fs.rm(mod, { recursive: true, force: true });
    await fs.cp(source, mod, { recursive: true });
    await fs.writeFile(homePaths.userconfig(home, labModule.name), xml);
  }
}

export async function createMirrorLab(o: MirrorLabOptions = {}): Promise<Lab> {
  const lab = await Lab.create(o.spec ?? {});
  try {
    await provisionMirror(lab, o);
    if (o.daemons !== false) {
      for (const n of nodesOf(lab)) lab.spawnDaemon(n);
      for (const n of nodesOf(lab)) await waitForDaemon(lab, n);
    }
    return lab;
  } catch (e) {
    await lab.down({ keepDir: process.env.TANDEM_LAB_KEEP === '1' });
    throw e;
  }
}

/** The module's log on a lab node (what `tandem log -m` shows), or '' when there is none yet. */
export function moduleLogOf(lab: Lab, node: string, module: string): string {
  try {
    return readFileSync(path.join(lab.paths(node).home, 'log', `${module}.log`), 'utf8');
  } catch {
    return '';
  }
}

export function controlSocketOf(lab: Lab, node: string): string {
  return path.join(lab.paths(node).home, 'control.sock');
}

/** Resolves when the node's daemon answers on its control socket. */
export async function waitForDaemon(lab: Lab, node: string, timeoutMs = 15_000): Promise<void> {
  await lab.waitFor(`daemon of ${node} answering`, async () => {
    try {
      await controlRequest(controlSocketOf(lab, node), 'ping', undefined, undefined, { timeoutMs: 1000 });
      return true;
    } catch {
      return false;
    }
  }, timeoutMs, 100).catch(async (e) => {
    const out = await fs.readFile(lab.paths(node).daemonOut, 'utf8').catch(() => '');
    throw new Error(`${(e as Error).message}\n--- ${node} daemon output:\n${out.slice(-3000)}`);
  });
}
