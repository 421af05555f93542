import { controlRequest } from '../daemon/control.js';
import type { StatusView } from '../daemon/views.js';
import { UserError } from '../errors.js';
import { Lab, listLabs } from '../lab/lab.js';
import { controlSocketOf, createMirrorLab, DEMO_MODULE, DEMO_PORT, DEMO_VIP, nodesOf, type MirrorLabOptions } from '../lab/mirror-lab.js';
import { waitForPair } from '../lab/failover.js';
import { lossyDirs } from '../lab/spec.js';
import { formatModule } from './status.js';

/** The lab a `tandem lab …` command acts on: the one given, or the only one recorded. */
export async function findLab(prefix?: string): Promise<Lab> {
  if (prefix) return Lab.attach(prefix);
  const labs = listLabs().filter((l) => l.recorded);
  if (labs.length === 0) throw new UserError('no lab is running on this machine.', 'create one with `tandem lab up`');
  if (labs.length > 1) throw new UserError(`${labs.length} labs are running (${labs.map((l) => l.prefix).join(', ')}).`, 'choose one with --lab <prefix>');
  return Lab.attach(labs[0]!.prefix);
}

/** Build the lab, start the demo module on both nodes and bring it to PRIM (node1) / SECOND (node2). */
export async function labUp(o: MirrorLabOptions, log: (msg: string) => void): Promise<Lab> {
  const lab = await createMirrorLab(o);
  try {
    log(`lab ${lab.prefix}: hosts ${lab.spec.hosts.map((h) => h.name).join(', ')} in network namespaces ${lab.prefix}-*; files in ${lab.dir}`);
    for (const n of nodesOf(lab)) await lab.cli(n, ['start', '-m', DEMO_MODULE]);
    await lab.waitFor('both nodes WAIT (first start)', async () => {
      const v = await Promise.all(nodesOf(lab).map((n) => nodeStatus(lab, n)));
      return v.every((s) => s?.modules[0]?.state === 'WAIT' && s.modules[0].ready);
    }, 60_000);
    log('first start: both nodes WAIT; `tandem prim` on node1, `tandem second` on node2');
    await lab.cli('node1', ['prim', '-m', DEMO_MODULE]);
    await lab.waitFor('node1 ALONE', async () => (await nodeStatus(lab, 'node1'))?.modules[0]?.state === 'ALONE', 30_000);
    await lab.cli('node2', ['second', '-m', DEMO_MODULE]);
    await waitForPair(lab, 'node1', 'node2');
    if (lossyDirs(lab.spec).length > 0) {
      // a real disk commits the setup within seconds; a lossy disk only when asked (docs/design/lossy-disk.md)
      for (const n of nodesOf(lab)) await lab.syncDisks(n);
      log('lossy disks: the setup is durable; from now on a power-off loses what the nodes do not sync');
    }
    return lab;
  } catch (e) {
    await lab.down({ keepDir: true });
    throw e;
  }
}

export async function nodeStatus(lab: Lab, node: string): Promise<StatusView | null> {
  if (lab.isPoweredOff(node)) return null;
  try {
    return (await controlRequest(controlSocketOf(lab, node), 'status', undefined, undefined, { timeoutMs: 2000 })) as StatusView;
  } catch {
    return null;
  }
}

export async function labStatus(lab: Lab): Promise<string> {
  const lines: string[] = [`lab ${lab.prefix} (${lab.dir})`];
  for (const n of nodesOf(lab)) {
    if (lab.isPoweredOff(n)) {
      lines.push(`${n}: powered off`);
      continue;
    }
    const v = await nodeStatus(lab, n);
    if (!v) lines.push(`${n}: no daemon answers`);
    else lines.push(...v.modules.flatMap(formatModule));
  }
  const r = await lab.httpGet('client', `http://${DEMO_VIP}:${DEMO_PORT}/`, 1000);
  lines.push(`client → http://${DEMO_VIP}:${DEMO_PORT}/: ${r.ok ? r.body?.trim() : `no answer (${r.error ?? r.status})`}`);
  return lines.join('\n');
}
