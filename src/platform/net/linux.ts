import net from 'node:net';
import fs from 'node:fs/promises';
import path from 'node:path';
import { interfaceFor } from '../../net/local-addrs.js';
import { run as defaultRun, type RunFn } from '../exec.js';
import { listIpv4Addrs } from './ip-addrs.js';
import type { NetProbe, NetResult } from './types.js';

export interface LinuxNetProbeOptions {
  /** where sysfs is mounted; tests point it at a directory tree of their own. Default /sys */
  sysRoot?: string;
  /** runs `ip` for interfaceFor; unit tests pass a fake. Default: ../exec.ts run */
  exec?: RunFn;
}

/**
 * NetProbe of this process's network namespace (the daemon runs inside its node's namespace in the lab).
 * - tcp: `net.connect`, destroyed at the first of connect, error or the timeout (a real timer: adapters own their
 *   I/O deadlines; checkers schedule through the Clock).
 * - link: `/sys/class/net/<if>/operstate` and `carrier`. Reading carrier of an interface that is administratively
 *   down fails with EINVAL: that is reported as such. Two small reads, no process started.
 * - interfaceFor: `ip -j -4 addr show` (./ip-addrs.ts; interfaces that are down included), loopback included. It
 *   starts a process: call it when a checker is set up, not every poll. An `ip` failure rejects (a broken install).
 */
export class LinuxNetProbe implements NetProbe {
  private readonly sysRoot: string;
  private readonly exec: RunFn;

  constructor(opts: LinuxNetProbeOptions = {}) {
    this.sysRoot = opts.sysRoot ?? '/sys';
    this.exec = opts.exec ?? defaultRun;
  }

  tcp(addr: string, port: number, timeoutMs: number, send?: Buffer): Promise<NetResult> {
    return new Promise((resolve) => {
      const sock = net.connect({ host: addr, port });
      let timer: NodeJS.Timeout | undefined;
      const finish = (r: NetResult) => {
        if (!timer) return;
        clearTimeout(timer);
        timer = undefined;
        sock.destroy();
        resolve(r);
      };
      let connected = false;
      timer = setTimeout(() => finish({ state: 'down', reason: connected ? `connected, no reply within ${timeoutMs} ms` : `timed out after ${timeoutMs} ms` }), Math.max(0, timeoutMs));
      sock.once('connect', () => {
        if (!send) return finish({ state: 'up', reason: 'connected' });
        connected = true;
        sock.write(send);
      });
      sock.once('data', (d: Buffer) => finish({ state: 'up', reason: `replied (${d.length} bytes)` }));
      sock.once('end', () => finish({ state: 'down', reason: 'connected, closed without a reply' }));
      // `on`, not `once`: an error after destroy must still find a listener
      sock.on('error', (e: NodeJS.ErrnoException) => finish({ state: 'down', reason: e.code ?? e.message }));
    });
  }

  async link(ifname: string): Promise<NetResult> {
    if (!/^[^/\0\s]+$/.test(ifname) || ifname === '.' || ifname === '..') return { state: 'down', reason: `"${ifname}" is not an interface name` };
    const dir = path.join(this.sysRoot, 'class', 'net', ifname);
    const operstate = await readSys(path.join(dir, 'operstate'));
    if (typeof operstate !== 'string') return { state: 'down', reason: operstate.code === 'ENOENT' ? `no interface ${ifname}` : `cannot read ${ifname} operstate: ${operstate.code}` };
    const carrier = await readSys(path.join(dir, 'carrier'));
    if (typeof carrier !== 'string') {
      if (carrier.code === 'EINVAL') return { state: 'down', reason: `${ifname} is administratively down (operstate ${operstate})` };
      if (carrier.code === 'ENOENT') return { state: 'down', reason: `no interface ${ifname}` };
      return { state: 'down', reason: `cannot read ${ifname} carrier: ${carrier.code}` };
    }
    if (carrier !== '1') return { state: 'down', reason: `no carrier (operstate ${operstate})` };
    if (operstate !== 'up' && operstate !== 'unknown') return { state: 'down', reason: `carrier 1, operstate ${operstate}` };
    return { state: 'up', reason: `carrier 1, operstate ${operstate}` };
  }

  async interfaceFor(addr: string): Promise<string | null> {
    return interfaceFor(addr, await listIpv4Addrs((c, a) => this.exec(c, a)))?.ifname ?? null;
  }
}

async function readSys(file: string): Promise<string | { code: string }> {
  try {
    return (await fs.readFile(file, 'utf8')).trim();
  } catch (e) {
    return { code: (e as NodeJS.ErrnoException).code ?? String(e) };
  }
}
