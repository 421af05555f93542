/**
 * The bare module the lab benchmarks replicate (bench/reintegration.ts, bench/fio.ts): `bench`, one replicated dir
 * `/srv/bench/data` with async="none", no application (prestart only creates the dir, which must exist on both nodes).
 * `/srv/bench` is a private dir of each lab node (on the same disk as the replicated dir's backing).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { LabModule, MirrorLabOptions } from '../src/lab/mirror-lab.js';

export const MODULE = 'bench';
export const PRIVATE_DIR = '/srv/bench';
export const DATA = `${PRIVATE_DIR}/data`;

export function benchUserconfig(o: MirrorLabOptions): string {
  return `<safe>
  <service mode="mirror" defaultprim="alone" failover="on">
    <heart pulse="${o.pulse ?? '500ms'}" timeout="${o.timeout ?? '5s'}"><heartbeat name="default"/><heartbeat name="replication"/></heart>
    <rfs async="none"><replicated dir="${DATA}"/></rfs>
    <user nicestoptimeout="30s" forcestoptimeout="10s"/>
  </service>
</safe>
`;
}

/** The module's directory (a temporary one; the caller removes it when done). */
export function benchModule(): LabModule & { dir: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-bench-module-'));
  fs.mkdirSync(path.join(dir, 'bin'));
  fs.writeFileSync(path.join(dir, 'userconfig.xml'), benchUserconfig({}));
  fs.writeFileSync(path.join(dir, 'bin', 'prestart'), `#!/bin/sh\nmkdir -p ${DATA}\n`, { mode: 0o755 });
  return { name: MODULE, dir, userconfig: (o) => benchUserconfig(o) };
}
