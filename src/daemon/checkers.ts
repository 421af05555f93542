/**
 * The real ModuleMonitor (./monitor.ts): a module's errd processes and `<check>` checkers (src/checkers/), plus its
 * `module` checkers, which read another module's state from this daemon. It starts and stops them to match the
 * engine's `monitor` action; every report goes to the module's engine. Starting and stopping are serialised, so
 * a checker is never started twice nor reported after the phase that stopped it.
 */
import { createChecker, createProcChecker, type CheckerPlatform, type LocalCheckerConfig } from '../checkers/create.js';
import type { Checker } from '../checkers/types.js';
import type { CheckerConfig, CheckWhen, ModuleConfig } from '../config/types.js';
import { activeIn } from '../engine/mirror/health.js';
import type { Clock } from '../platform/clock/types.js';
import type { ModuleMonitor, MonitorSwitches, ResourceReport } from './monitor.js';

export interface ModuleStateLookup {
  (module: string, node: string | null): { state: string; ready: boolean } | null;
}

export interface CheckersOptions {
  cfg: ModuleConfig;
  platform: CheckerPlatform;
  report: ResourceReport;
  /** what custom checker programs run with: env (the module's variables and tandem's), log file, log lines */
  custom: { env: Record<string, string>; logFile: string; log: (msg: string) => void };
  moduleState: ModuleStateLookup;
}

interface Entry {
  checker: Checker;
  when: CheckWhen;
  by: 'errd' | 'checker';
  running: boolean;
}

/** Builds the monitor of one module: every checker is created now (an intf checker resolves its interface). */
export async function createCheckers(o: CheckersOptions): Promise<ModuleMonitor> {
  const entries: Entry[] = [];
  for (const p of o.cfg.errd?.procs ?? []) {
    entries.push({ checker: createProcChecker(p, o.cfg.errd!, o.platform, o.report), when: p.class, by: 'errd', running: false });
  }
  for (const k of o.cfg.checkers) {
    const checker = k.type === 'module'
      ? new ModuleChecker(k, o.platform.clock, o.moduleState, (state, detail) => o.report(checker.resource, state, detail))
      : await createChecker(k as LocalCheckerConfig, o.platform, o.report, o.custom);
    entries.push({ checker, when: k.when, by: 'checker', running: false });
  }
  return new Checkers(entries);
}

class Checkers implements ModuleMonitor {
  readonly monitored: ModuleMonitor['monitored'];
  private chain: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(private readonly entries: Entry[]) {
    this.monitored = entries.map((e) => ({ resource: e.checker.resource, when: e.when, by: e.by }));
  }

  apply(s: MonitorSwitches): void {
    if (this.closed) return;
    this.chain = this.chain.then(async () => {
      for (const e of this.entries) {
        const want = activeIn(e.when, s.phase) && (e.by === 'errd' ? s.errd : s.checkers);
        if (want && !e.running) {
          e.running = true;
          e.checker.start();
        } else if (!want && e.running) {
          e.running = false;
          await e.checker.stop();
        }
      }
    });
  }

  running(): string[] {
    return this.entries.filter((e) => e.running).map((e) => e.checker.resource);
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.chain;
    for (const e of this.entries) {
      if (e.running) await e.checker.stop();
      e.running = false;
    }
  }
}

/**
 * `<module name><to addr/></module>`: up while module `name` is ALONE or PRIM, ready, on the named node (this one
 * when no `<to>`), as this daemon knows it: its own driver, or that node's heartbeats for the module (so the module
 * must be installed here too). Down otherwise, with what it is.
 */
class ModuleChecker implements Checker {
  readonly resource: string;
  private stopTimer: (() => void) | null = null;
  private last = '';

  constructor(
    private readonly cfg: Extract<CheckerConfig, { type: 'module' }>,
    private readonly clock: Clock,
    private readonly lookup: ModuleStateLookup,
    private readonly report: (state: 'init' | 'up' | 'down' | 'unknown', detail: string) => void,
  ) {
    this.resource = `module.${cfg.ident}`;
  }

  start(): void {
    if (this.stopTimer) return;
    this.last = '';
    this.report('init', '');
    this.stopTimer = this.clock.every(this.cfg.intervalMs, () => this.check());
    this.check();
  }

  async stop(): Promise<void> {
    this.stopTimer?.();
    this.stopTimer = null;
  }

  private check() {
    if (!this.stopTimer) return;
    const where = this.cfg.node ?? 'this node';
    const s = this.lookup(this.cfg.module, this.cfg.node);
    const up = !!s && s.ready && (s.state === 'ALONE' || s.state === 'PRIM');
    const detail = s ? `${this.cfg.module} is ${s.state}${s.ready ? '' : ' (transient)'} on ${where}` : `${this.cfg.module}: no state known on ${where}`;
    const key = `${up}:${detail}`;
    if (key === this.last) return;
    this.last = key;
    this.report(up ? 'up' : 'down', detail);
  }
}
