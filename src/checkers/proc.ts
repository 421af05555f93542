import type { ProcSpec } from '../config/types.js';
import type { Clock } from '../platform/clock/types.js';
import type { ProcInfo, ProcWatch } from '../platform/procs/types.js';
import { PollingChecker } from './polling.js';
import { procMatcher, type ProcMatcher } from './proc-match.js';
import type { ProcScanner, Scan, ScanSubscription } from './proc-scanner.js';
import type { Observation, Report } from './types.js';

/**
 * Default errd `polltimer`: a monitored process's death is reported within polltimer + one stat read + one scan
 * (≈ 500 + 5 ms with 80 processes on a 2-vCPU VM; median 311 ms measured), inside the 1 s target with room for late
 * timers on a loaded node; 1 s would miss it by the read and the scan. A poll is one pread per tracked process:
 * 10 monitored processes cost ≈ 0.2 % of one core, a fifth of a full scan every second (bench/checkers.ts,
 * docs/design/checkers.md). SafeKit's own default, 30 s, leaves a dead application unnoticed for half a minute.
 */
export const DEFAULT_POLLTIMER_MS = 500;

/**
 * How often a proc checker that is up walks the whole process table anyway: to see processes started since (for
 * `atmax`) and processes that exec'd into something else. Scans are shared (ProcScanner), so this is about one scan
 * per 30 s per daemon, not per checker.
 */
export const DEFAULT_RESCAN_MS = 30_000;

export interface ProcCheckerOptions {
  spec: Pick<ProcSpec, 'name' | 'nameregex' | 'argregex' | 'atleast' | 'atmax'> & { line?: number };
  /** default DEFAULT_POLLTIMER_MS */
  polltimerMs?: number;
  /** default DEFAULT_RESCAN_MS */
  rescanMs?: number;
  /** one per daemon, shared by every proc checker of every module */
  scanner: ProcScanner;
  clock: Clock;
  report: Report;
}

interface Tracked {
  id: ProcInfo;
  watch: ProcWatch;
}

/** What one start of the checker holds; disposed by stop (a check still in flight then only closes what it opens). */
interface RunState {
  sub: ScanSubscription;
  tracked: Tracked[];
  /** startedAt of the last scan used, null before the first */
  lastScanAt: number | null;
  count: number;
  up: boolean;
  /** processes this run saw die (`pid:startTime` → when): left out of scans begun before that */
  dead: Map<string, number>;
  disposed: boolean;
}

/**
 * `proc.<name>` (SafeKit `<errd polltimer><proc name nameregex argregex atleast atmax/>`): up while the number of
 * matching processes (./proc-match.ts) is at least `atleast` and, when `atmax` ≥ 0, at most `atmax`.
 *
 * Mechanism (docs/design/checkers.md): a full scan finds the matches; while the resource is up the checker
 * tracks only the `atleast` oldest of them and each poll checks just those (ProcTable.watch: one pread of a held
 * /proc/<pid>/stat, immune to pid reuse). The count cannot fall below `atleast` without a tracked one dying, so a
 * full scan is needed only:
 * - when a tracked process is gone (a scan begun after that, so the dead one is not counted again);
 * - at every poll while the resource is down (to see it come back), sharing a scan begun within the last poll;
 * - every `rescanMs` while up (new processes for `atmax`, exec'd ones), sharing any scan that recent.
 * Detection: death → down report ≤ polltimer + one pread + one scan. `atmax` exceeded → down ≤ rescanMs + polltimer.
 * The count in an `up` detail is as of the last full scan.
 */
export class ProcChecker extends PollingChecker {
  private readonly matcher: ProcMatcher;
  private readonly spec: ProcCheckerOptions['spec'];
  private readonly pollMs: number;
  private readonly rescanMs: number;
  private readonly scanner: ProcScanner;
  private state: RunState | null = null;

  constructor(opts: ProcCheckerOptions) {
    const pollMs = opts.polltimerMs ?? DEFAULT_POLLTIMER_MS;
    super(`proc.${opts.spec.name}`, { clock: opts.clock, report: opts.report, intervalMs: pollMs });
    this.spec = opts.spec;
    this.matcher = procMatcher(opts.spec);
    this.pollMs = pollMs;
    this.rescanMs = Math.max(pollMs, opts.rescanMs ?? DEFAULT_RESCAN_MS);
    this.scanner = opts.scanner;
  }

  /** processes tracked now (for tests) */
  get trackedPids(): number[] {
    return this.state?.tracked.map((t) => t.id.pid) ?? [];
  }

  protected override onStart(): void {
    this.state = { sub: this.scanner.subscribe(this.matcher.comm), tracked: [], lastScanAt: null, count: 0, up: false, dead: new Map(), disposed: false };
  }

  protected override onStop(): void {
    const s = this.state;
    this.state = null;
    if (!s) return;
    s.disposed = true;
    for (const t of s.tracked) t.watch.close();
    s.tracked = [];
    s.sub.close();
  }

  protected async check(): Promise<Observation> {
    const s = this.state!;
    // first scan, or down: share a scan begun within the last poll, but not this checker's own previous one
    let maxAgeMs = this.pollMs - 1;
    if (s.up && s.lastScanAt !== null) {
      const alive = await Promise.all(s.tracked.map((t) => t.watch.alive()));
      if (s.disposed) return STOPPED;
      const dead = s.tracked.filter((_, i) => !alive[i]);
      const sinceScan = this.clock.mono() - s.lastScanAt;
      if (dead.length === 0 && sinceScan < this.rescanMs) return this.judge(s.count);
      for (const d of dead) {
        s.dead.set(key(d.id), this.clock.mono());
        d.watch.close();
      }
      s.tracked = s.tracked.filter((t) => !dead.includes(t));
      // after a death: a scan begun now; a periodic rescan: any scan newer than the last one used
      maxAgeMs = dead.length > 0 ? 0 : Math.min(this.rescanMs, sinceScan - 1);
    }
    const scan = await s.sub.scan(maxAgeMs);
    return this.adopt(s, scan);
  }

  private adopt(s: RunState, scan: Scan): Observation {
    if (s.disposed) return STOPPED;
    for (const [k, at] of s.dead) if (scan.startedAt > at) s.dead.delete(k);
    const matches = scan.procs.filter((p) => this.matcher.matches(p) && !s.dead.has(key(p)));
    const o = this.judge(matches.length);
    s.lastScanAt = scan.startedAt;
    s.count = matches.length;
    s.up = o.state === 'up';
    const want = s.up ? [...matches].sort((a, b) => a.startTime - b.startTime || a.pid - b.pid).slice(0, this.spec.atleast) : [];
    const old = new Map(s.tracked.map((t) => [key(t.id), t]));
    const next = want.map((p) => old.get(key(p)) ?? { id: p, watch: s.sub.watch(p) });
    for (const t of s.tracked) if (!next.includes(t)) t.watch.close();
    s.tracked = next;
    return o;
  }

  private judge(count: number): Observation {
    const { atleast, atmax } = this.spec;
    if (count < atleast) return { state: 'down', detail: `${count} running, fewer than atleast ${atleast}` };
    if (atmax >= 0 && count > atmax) return { state: 'down', detail: `${count} running, more than atmax ${atmax}` };
    return { state: 'up', detail: `${count} running (atleast ${atleast}${atmax >= 0 ? `, atmax ${atmax}` : ''})` };
  }
}

/** returned by a check that outlived its run; PollingChecker drops it */
const STOPPED: Observation = { state: 'unknown', detail: 'stopped' };

function key(p: { pid: number; startTime: number }): string {
  return `${p.pid}:${p.startTime}`;
}
