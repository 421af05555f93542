/**
 * Checkers observe resources and report their states; they decide nothing. The daemon creates them from a module's
 * configuration (./create.ts), starts them while the module's state makes them relevant (`when` / errd `class`),
 * stops them otherwise, and feeds every report to the module's engine, whose failover rules decide.
 */
import type { ResourceState } from '../engine/rules/types.js';

/**
 * Receives a checker's observations, in the order they were made. It must not throw (a throw is swallowed: the
 * checker goes on) and must not block; it may call the checker's `stop()`.
 */
export type Report = (state: ResourceState, detail: string) => void;

/**
 * One resource's observer.
 *
 * Contract:
 * - `resource` is `class.ident` (`proc.web`, `tcp.http`, `intf.eth0`, …) and never changes.
 * - `start()` reports `init` before it returns, then the first result as soon as there is one (the first check runs
 *   at once, not one interval later), then every change of state or detail; an observation equal to the last
 *   report is not repeated. `start()` on a started checker does nothing; a stopped checker may be started again and
 *   begins with `init` again.
 * - `stop()` silences the checker at once: nothing is reported after it returns, not even by a check that was in
 *   flight. Its promise resolves once nothing the checker started is still running (a probe, a custom program's
 *   process group) and never rejects. On a stopped checker it resolves when that is already so.
 * - Checkers schedule only through the Clock seam. Nothing escapes a timer: a check that fails reports `unknown`
 *   with the error as detail.
 */
export interface Checker {
  readonly resource: string;
  start(): void;
  stop(): Promise<void>;
}

/** What one check found. */
export interface Observation {
  state: 'up' | 'down' | 'unknown';
  detail: string;
}

/** SafeKit's default checker interval (`<to interval="10s">`) and TCP timeout (`timeout="5s"`). */
export const DEFAULT_CHECK_INTERVAL_MS = 10_000;
export const DEFAULT_TCP_TIMEOUT_MS = 5_000;
