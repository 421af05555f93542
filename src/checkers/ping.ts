import type { Clock } from '../platform/clock/types.js';
import type { WitnessChecker } from '../platform/witness/types.js';
import { PollingChecker } from './polling.js';
import { DEFAULT_CHECK_INTERVAL_MS, type Observation, type Report } from './types.js';

/** How long a ping checker waits for an answer unless told. */
export const DEFAULT_PING_TIMEOUT_MS = 5_000;

export interface PingCheckerOptions {
  ident: string;
  /** up when any of them answers */
  addrs: string[];
  /** default 10 s */
  intervalMs?: number;
  /** default 5 s */
  timeoutMs?: number;
  /** the split-brain witness pinger (src/platform/witness): one ping per address, all at once */
  witness: WitnessChecker;
  clock: Clock;
  report: Report;
}

/**
 * `ping.<ident>`: up while any of the addresses answers a ping within the timeout, checked every interval (SafeKit
 * `<ping ident><to addr/>…</ping>`). An empty address list is always down (WitnessChecker contract).
 */
export class PingChecker extends PollingChecker {
  private readonly target: { addrs: string[]; timeoutMs: number; witness: WitnessChecker };

  constructor(opts: PingCheckerOptions) {
    const timeoutMs = opts.timeoutMs ?? DEFAULT_PING_TIMEOUT_MS;
    super(`ping.${opts.ident}`, { clock: opts.clock, report: opts.report, intervalMs: opts.intervalMs ?? DEFAULT_CHECK_INTERVAL_MS, expectedMs: timeoutMs });
    this.target = { addrs: [...opts.addrs], timeoutMs, witness: opts.witness };
  }

  protected async check(): Promise<Observation> {
    const { addrs, timeoutMs, witness } = this.target;
    const list = addrs.join(', ');
    return (await witness.reachable(addrs, timeoutMs))
      ? { state: 'up', detail: `${list}: answered` }
      : { state: 'down', detail: `${list || 'no address'}: no answer within ${timeoutMs} ms` };
  }
}
