import type { ProcId, ProcInfo, ProcTable, ProcWatch } from './types.js';

/**
 * ProcTable over an in-memory process list. Pids count up from 1000 and start times from 1, unless given; `reuse`
 * gives a pid to a new process with a later start time. Everything resolves on a microtask: no timers.
 *
 * Counters for tests: `lists` (calls of list), `checks` (calls of alive on an open handle), `openWatches` (handles
 * not yet closed). `afterListing(fn)` runs `fn` once, right after the next `list` has taken its snapshot, so the
 * result still shows what `fn` kills: a process that dies while a real scan is under way. `failNextList(err)` makes
 * the next `list` reject.
 */
export class FakeProcTable implements ProcTable {
  lists = 0;
  checks = 0;
  private readonly procs = new Map<number, ProcInfo & { zombie: boolean }>();
  private readonly open = new Set<FakeWatch>();
  private nextPid = 1000;
  private nextStart = 1;
  private hook: (() => void) | null = null;
  private failure: Error | null = null;

  get openWatches(): number {
    return this.open.size;
  }

  /** a new running process */
  spawn(comm: string, argv: string[] = [comm], pid?: number): ProcInfo {
    const p = pid ?? this.nextPid++;
    if (this.procs.has(p)) throw new Error(`fake pid ${p} is in use`);
    const info = { pid: p, startTime: this.nextStart++, comm: comm.slice(0, 15), argv: [...argv] };
    this.procs.set(p, { ...info, zombie: false });
    return info;
  }

  /** the process exits and is reaped */
  kill(pid: number): void {
    this.procs.delete(pid);
  }

  /** the process exits but its parent has not reaped it yet */
  zombie(pid: number): void {
    const p = this.procs.get(pid);
    if (p) p.zombie = true;
  }

  /** the process exits and a new one gets its pid (a later start time) */
  reuse(pid: number, comm: string, argv: string[] = [comm]): ProcInfo {
    this.kill(pid);
    return this.spawn(comm, argv, pid);
  }

  /** exec(): same pid and start time, another program */
  exec(pid: number, comm: string, argv: string[] = [comm]): void {
    const p = this.procs.get(pid);
    if (p) this.procs.set(pid, { ...p, comm: comm.slice(0, 15), argv: [...argv] });
  }

  afterListing(fn: () => void): void {
    this.hook = fn;
  }

  failNextList(err: Error): void {
    this.failure = err;
  }

  /** @internal used by FakeWatch */
  isAlive(id: ProcId): boolean {
    const p = this.procs.get(id.pid);
    return !!p && !p.zombie && p.startTime === id.startTime;
  }

  /** @internal used by FakeWatch */
  closed(w: FakeWatch): void {
    this.open.delete(w);
  }

  async list(wants?: (comm: string) => boolean): Promise<ProcInfo[]> {
    this.lists++;
    const err = this.failure;
    this.failure = null;
    if (err) throw err;
    const out = [...this.procs.values()]
      .filter((p) => !p.zombie && (!wants || wants(p.comm)))
      .map(({ pid, startTime, comm, argv }) => ({ pid, startTime, comm, argv: [...argv] }));
    const hook = this.hook;
    this.hook = null;
    hook?.();
    return out;
  }

  watch(p: ProcId): ProcWatch {
    const w = new FakeWatch(this, { pid: p.pid, startTime: p.startTime });
    this.open.add(w);
    return w;
  }
}

class FakeWatch implements ProcWatch {
  private closedFlag = false;
  constructor(private readonly table: FakeProcTable, private readonly id: ProcId) {}

  async alive(): Promise<boolean> {
    if (this.closedFlag) return false;
    this.table.checks++;
    return this.table.isAlive(this.id);
  }

  close(): void {
    if (this.closedFlag) return;
    this.closedFlag = true;
    this.table.closed(this);
  }
}
