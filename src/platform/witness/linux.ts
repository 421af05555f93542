import { run as defaultRun, type RunFn } from '../exec.js';
import type { WitnessChecker } from './types.js';

export interface LinuxWitnessOptions {
  /** receives one line per witness that could not be asked (ping exit ≥ 2: bad address, no route, …) */
  log: (msg: string) => void;
  /** prefix for every command, e.g. ['ip', 'netns', 'exec', 'tvt-x-h1'] in lab tests. Default []. */
  cmdPrefix?: string[];
  /** the command runner; unit tests pass a fake. Default: ../exec.ts run */
  exec?: RunFn;
}

/**
 * WitnessChecker over iputils `ping -n -q -c 1 -W <timeoutMs/1000> <addr>`, one per witness, all at once.
 * ping exits 0 when answered, 1 when not within -W, 2 on any other error (logged, counts as not answering).
 * A missing ping binary is an ExternalError: that is a broken install, not an unreachable witness.
 */
export class LinuxWitness implements WitnessChecker {
  private readonly prefix: string[];
  private readonly exec: RunFn;

  constructor(private readonly opts: LinuxWitnessOptions) {
    this.prefix = opts.cmdPrefix ?? [];
    this.exec = opts.exec ?? defaultRun;
  }

  reachable(addrs: string[], timeoutMs: number): Promise<boolean> {
    if (addrs.length === 0) return Promise.resolve(false);
    const waitS = Math.max(timeoutMs / 1000, 0.001).toFixed(3);
    return new Promise((resolve, reject) => {
      let pending = addrs.length;
      for (const addr of addrs) {
        const [head, ...rest] = [...this.prefix, 'ping', '-n', '-q', '-c', '1', '-W', waitS, addr];
        this.exec(head!, rest, { reject: false, timeoutMs: timeoutMs + 5000 }).then(
          (r) => {
            if (r.code === 0) return resolve(true);
            if (r.code !== 1) this.opts.log(`witness ${addr}: ping exited ${r.code}: ${r.stderr.trim()}`);
            if (--pending === 0) resolve(false);
          },
          (err) => reject(err),
        );
      }
    });
  }
}
