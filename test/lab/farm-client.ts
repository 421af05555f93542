// The test side of farm-peer.ts, shared by the farm lab files: spawn a process inside a lab host, and drive the
// client helper (one process in the client host that opens connections from chosen source addresses and ports).
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { execa, type ResultPromise } from 'execa';
import { Lab } from '../../src/lab/lab.js';
import type { ClientReply, ClientRequest } from './farm-peer.js';

/** farm-peer.js, compiled beside this file */
export const PEER = path.join(path.dirname(fileURLToPath(import.meta.url)), 'farm-peer.js');

/** the client's extra source addresses: .128-.175 */
export const SOURCES = Array.from({ length: 48 }, (_, i) => `198.51.100.${128 + i}`);

/** node1 .1, node2 .2, node3 .3 and a client .100 (plus `sources`) on one LAN; torn down on exit as well. */
export async function createFarmLab(sources: readonly string[]): Promise<Lab> {
  const lab = await Lab.create({
    hosts: [...['node1', 'node2', 'node3'].map((name) => ({ name, role: 'node' as const })), { name: 'client', role: 'client' }],
    lans: [{
      name: 'default', cidr: '198.51.100.0/24', ifname: 'eth0',
      addrs: { node1: '198.51.100.1', node2: '198.51.100.2', node3: '198.51.100.3', client: '198.51.100.100' },
    }],
    privateDirs: [],
  });
  lab.autoTeardownOnExit();
  await lab.exec('client', ['ip', '-batch', '-'], { input: sources.map((s) => `addr add ${s}/24 dev eth0\n`).join('') });
  return lab;
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** Starts `argv` inside `host` (stdin and stdout piped); the caller kills it by its PID. */
export function spawnIn(lab: Lab, host: string, argv: string[]): ResultPromise {
  const [file, ...args] = lab.hostArgv(host, argv);
  const child = execa(file!, args, { stdin: 'pipe', stdout: 'pipe', stderr: 'inherit', reject: false });
  void child.catch(() => undefined);
  return child;
}

/**
 * Starts `farm-peer.js server <name> <port>…` inside `host`; `ready` resolves once it listens. (Not an async
 * function: a subprocess is a thenable, an async function would wait for its exit.)
 */
export function spawnServer(lab: Lab, host: string, name: string, ports: number[]): { child: ResultPromise; ready: Promise<void> } {
  const child = spawnIn(lab, host, [process.execPath, PEER, 'server', name, ...ports.map(String)]);
  const ready = new Promise<void>((resolve, reject) => {
    readline.createInterface({ input: child.stdout! }).once('line', (l) => (l === 'ready' ? resolve() : reject(new Error(`${host}: ${l}`))));
    void child.then((r) => reject(new Error(`${host}'s server exited: ${r.exitCode}`)));
  });
  return { child, ready };
}

/** The client helper: one process in the client host, driven by JSON lines. */
export class FarmClient {
  private seq = 0;
  private readonly pending = new Map<number, (r: ClientReply) => void>();

  constructor(readonly child: ResultPromise, readonly vip: string, readonly timeoutMs: number) {
    readline.createInterface({ input: child.stdout! }).on('line', (line) => {
      const r = JSON.parse(line) as ClientReply;
      this.pending.get(r.id)?.(r);
      this.pending.delete(r.id);
    });
  }

  static spawn(lab: Lab, host: string, vip: string, timeoutMs: number): FarmClient {
    return new FarmClient(spawnIn(lab, host, [process.execPath, PEER, 'client']), vip, timeoutMs);
  }

  request(q: DistributiveOmit<ClientRequest, 'id'>): Promise<ClientReply> {
    const id = ++this.seq;
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      this.child.stdin!.write(`${JSON.stringify({ ...q, id })}\n`);
    });
  }

  /** The node that answers a new connection to the VIP from `src` (and `sport`), or `error: …`. */
  async ask(port: number, src: string, sport?: number): Promise<string> {
    const r = await this.request({ op: 'ask', host: this.vip, port, src, sport, timeoutMs: this.timeoutMs });
    return r.ok ? r.name : `error: ${r.error}`;
  }

  /** Opens a connection kept as `key`; the node that accepted it, or `error: …`. */
  async open(key: string, port: number, src: string): Promise<string> {
    const r = await this.request({ op: 'open', key, host: this.vip, port, src, timeoutMs: this.timeoutMs });
    return r.ok ? r.name : `error: ${r.error}`;
  }

  /** A line sent on connection `key`: the node that answers it, or `error: …`. */
  async ping(key: string): Promise<string> {
    const r = await this.request({ op: 'ping', key, timeoutMs: this.timeoutMs });
    return r.ok ? r.name : `error: ${r.error}`;
  }

  async close(key: string): Promise<void> {
    await this.request({ op: 'close', key });
  }
}
