/**
 * The seam between a module's driver and its checkers (errd processes, `<check>` checkers): the driver applies the
 * engine's `monitor` action to it; its checkers report resource states, which the driver posts to the engine as
 * `resource` events. Real: ./checkers.ts; tests: FakeMonitor below.
 */
import type { CheckWhen } from '../config/types.js';
import type { ResourceState } from '../engine/rules/types.js';
import { activeIn, type MonitorPhase } from '../engine/mirror/health.js';

export interface MonitorSwitches {
  phase: MonitorPhase;
  /** process monitoring on */
  errd: boolean;
  /** the other checkers on */
  checkers: boolean;
}

export interface ModuleMonitor {
  /** every resource it can report, with when it is watched and by whom (fixed once built) */
  readonly monitored: { resource: string; when: CheckWhen; by: 'errd' | 'checker' }[];
  /** start the checkers active in `phase` (as switched on), stop the others; idempotent */
  apply(s: MonitorSwitches): void;
  /** what runs now, for `tandem errd list` / status: resource → detail of the last report */
  running(): string[];
  close(): Promise<void>;
}

export type ResourceReport = (resource: string, state: ResourceState, detail: string) => void;

/** No checkers (a module without <errd> and <check>). */
export const noMonitor = (): ModuleMonitor => ({
  monitored: [],
  apply() {},
  running: () => [],
  close: async () => {},
});

/** A monitor whose resources the test sets by hand; it records what it was told to run. */
export class FakeMonitor implements ModuleMonitor {
  readonly applied: MonitorSwitches[] = [];
  report: ResourceReport = () => {};
  constructor(readonly monitored: ModuleMonitor['monitored']) {}
  apply(s: MonitorSwitches) { this.applied.push(s); }
  running(): string[] {
    const s = this.applied.at(-1);
    if (!s) return [];
    return this.monitored.filter((m) => (m.by === 'errd' ? s.errd : s.checkers) && activeIn(m.when, s.phase)).map((m) => m.resource);
  }
  async close() {}
}
