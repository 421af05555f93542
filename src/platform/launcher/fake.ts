import { UserError } from '../../errors.js';
import type { Exit, LaunchRequest, Launched, Launcher } from './types.js';

/**
 * Launcher for unit tests: nothing runs. Records every request in `requests` (failed ones too). `failNext(reason,
 * times)` makes the next `times` launches reject with UserError(reason). Launched processes get pids from 5000 up
 * and stay in `running` until `exit(pid, code)` (the program exits by itself) or their `stop`, which resolves with
 * signal SIGTERM. Everything resolves on a microtask: no timers.
 */
export class FakeLauncher implements Launcher {
  readonly requests: LaunchRequest[] = [];
  readonly running = new Map<number, FakeLaunched>();
  /** pids whose `stop` was called, in call order */
  readonly stopped: number[] = [];
  private nextPid = 5000;
  private failures: { reason: string; times: number } | null = null;

  failNext(reason: string, times = 1): void {
    this.failures = { reason, times };
  }

  async launch(req: LaunchRequest): Promise<Launched> {
    this.requests.push({ ...req, args: [...req.args], env: { ...req.env } });
    if (this.failures && this.failures.times > 0) {
      this.failures.times--;
      throw new UserError(this.failures.reason);
    }
    const p = new FakeLaunched(this.nextPid++, this);
    this.running.set(p.pid, p);
    return p;
  }

  /** the program exits by itself */
  exit(pid: number, code: number | null, signal: NodeJS.Signals | null = null): void {
    this.running.get(pid)?.end({ code, signal });
  }

  /** the only running process; throws when there is not exactly one */
  only(): FakeLaunched {
    if (this.running.size !== 1) throw new Error(`expected one running process, found ${this.running.size}`);
    return [...this.running.values()][0]!;
  }

  /** @internal */
  ended(p: FakeLaunched): void {
    this.running.delete(p.pid);
  }
}

export class FakeLaunched implements Launched {
  readonly exited: Promise<Exit>;
  private resolveExit!: (e: Exit) => void;
  private result: Exit | null = null;

  constructor(readonly pid: number, private readonly launcher: FakeLauncher) {
    this.exited = new Promise((resolve) => { this.resolveExit = resolve; });
  }

  async stop(): Promise<Exit> {
    this.launcher.stopped.push(this.pid);
    this.end({ code: null, signal: 'SIGTERM' });
    return this.exited;
  }

  /** @internal */
  end(e: Exit): void {
    if (this.result) return;
    this.result = e;
    this.launcher.ended(this);
    this.resolveExit(e);
  }
}
