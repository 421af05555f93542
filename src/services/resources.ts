import type { ModuleView, ResourceRow, StatusView } from '../daemon/views.js';
import { UserError } from '../errors.js';
import type { Home } from '../home.js';
import { daemonRequest } from './daemon-client.js';

/** `tandem get` exit codes, by resource state (2 stays "invalid command line"). */
export const RESOURCE_EXIT_CODE = { up: 0, down: 1, init: 3, unknown: 4 } as const;

export async function moduleView(home: Home, module: string): Promise<ModuleView> {
  const v = (await daemonRequest(home, 'status', module)) as StatusView;
  if (!v.modules[0]) throw new UserError(`module ${module} is a farm module: this command is for mirror modules.`);
  return v.modules[0];
}

/** The resources of a module, mirror or farm, on this node. */
async function moduleResources(home: Home, module: string): Promise<{ node: string; resources: ResourceRow[] }> {
  const v = (await daemonRequest(home, 'status', module)) as StatusView;
  return (v.modules[0] ?? v.farms[0])!;
}

/** One resource of a module, as the daemon holds it; a UserError listing the known ones if there is none. */
export async function getResource(home: Home, module: string, name: string): Promise<ResourceRow> {
  const m = await moduleResources(home, module);
  const r = m.resources.find((x) => x.name === name);
  if (!r) {
    throw new UserError(`module ${module} has no resource "${name}" on ${m.node}.`,
      `its resources: ${m.resources.map((x) => x.name).join(', ') || 'none'}`);
  }
  return r;
}

/** `tandem set`: what a custom checker reports. */
export async function setResource(home: Home, module: string, name: string, value: string): Promise<string> {
  if (value !== 'up' && value !== 'down') throw new UserError(`-v ${value} is not a state a checker can set.`, 'use -v up or -v down');
  const r = (await daemonRequest(home, 'set', module, { resource: name, value })) as { message: string };
  return r.message;
}

/** `tandem errd list`: the monitored processes and what the daemon last saw of them. */
export async function listProcs(home: Home, module: string): Promise<string> {
  const m = await moduleView(home, module);
  const procs = m.resources.filter((r) => r.by === 'errd');
  if (procs.length === 0) return `module ${module} monitors no process (add <errd><proc name="…"/></errd> to its userconfig.xml)`;
  const head = `process monitoring of ${module} on ${m.node}: ${m.switches.errd ? 'on' : 'off (`tandem errd on` resumes it)'}`;
  const rows = procs.map((r) => `  ${r.name.padEnd(24)} class ${(r.when ?? '-').padEnd(7)} ${r.state.padEnd(8)} ${r.active ? 'watched' : 'not watched now'}${r.since ? `  since ${r.since}` : ''}${r.detail ? `  ${r.detail}` : ''}`);
  return [head, ...rows].join('\n');
}
