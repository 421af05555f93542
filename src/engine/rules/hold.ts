import type { Decision, RuleAction } from './types.js';

/** The decision being waited on: which one, since when (monotonic ms) it has been decided without a break, and
 *  whether it already fired in this continuous period. null: the rules decide nothing. */
export interface HoldState {
  label: string;
  action: RuleAction;
  since: number;
  fired: boolean;
}

/**
 * handle_time: a decision acts only once it has stayed the same (same label and action) for
 * `wait = decision.holdMs ?? handleTimeMs`, i.e. it fires at the first call with `nowMono - since >= wait`
 * (so an action comes handle_time after the rules first decided it, plus up to one evaluation period late).
 * It fires once per continuous period: after firing, nothing fires until the decision changes or stops, and
 * then holds again. A different decision (or none) restarts the wait. `fire` is the current `decision` (its
 * `because` as of now). Call it at every evaluation with `nowMono` never decreasing.
 */
export function hold(
  prev: HoldState | null,
  decision: Decision | null,
  nowMono: number,
  handleTimeMs: number,
): { hold: HoldState | null; fire: Decision | null } {
  if (!decision) return { hold: null, fire: null };
  const same = prev !== null && prev.label === decision.label && prev.action === decision.action;
  const state: HoldState = same ? prev : { label: decision.label, action: decision.action, since: nowMono, fired: false };
  if (state.fired || nowMono - state.since < (decision.holdMs ?? handleTimeMs)) return { hold: state, fire: null };
  return { hold: { ...state, fired: true }, fire: decision };
}
