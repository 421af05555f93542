/**
 * rsync between two lab hosts, the way a user would catch up a copy without tandem: an rsync daemon on the source
 * host serving one directory read-only (module `data`), the client run on the other host over the lab network.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Lab } from '../src/lab/lab.js';

export interface RsyncDaemon {
  /** `rsync://<addr>:<port>/data/`: the served directory's contents */
  url: string;
  stop(): Promise<void>;
}

const PORT = 8730;

/** Starts `rsync --daemon --no-detach` on `host` serving `dir`; resolves once it accepts connections. */
export async function startRsyncDaemon(lab: Lab, host: string, dir: string): Promise<RsyncDaemon> {
  const base = fs.mkdtempSync(path.join(lab.dir, `rsyncd-${host}-`));
  const conf = path.join(base, 'rsyncd.conf');
  const addr = lab.addr(host);
  fs.writeFileSync(conf, [
    `address = ${addr}`, `port = ${PORT}`, 'use chroot = no', 'uid = root', 'gid = root', `pid file = ${base}/rsyncd.pid`,
    `log file = ${base}/rsyncd.log`, '[data]', `path = ${dir}`, 'read only = yes', '',
  ].join('\n'));
  const [file, ...args] = lab.hostArgv(host, ['rsync', '--daemon', '--no-detach', `--config=${conf}`]);
  const child = spawn(file!, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
    fs.rmSync(base, { recursive: true, force: true });
  };
  const url = `rsync://${addr}:${PORT}/data/`;
  try {
    await lab.waitFor(`rsync daemon on ${host} listening`, async () => {
      if (child.exitCode !== null) throw new Error(`rsync daemon on ${host} exited (${child.exitCode}): ${stderr.trim()}`);
      const r = await lab.exec(host, ['rsync', `rsync://${addr}:${PORT}/`], { reject: false, timeoutMs: 5000 });
      return r.code === 0 && r.stdout.includes('data');
    }, 15_000, 100);
  } catch (err) {
    await stop();
    throw err;
  }
  return { url, stop };
}
