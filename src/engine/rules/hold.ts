// Stand-in until the rules module lands (wip/rules): same contract.
import type { Decision, RuleAction } from './types.js';

export type HoldState = { label: string; action: RuleAction; since: number; fired: boolean } | null;

export function hold(prev: HoldState, d: Decision | null, now: number, handleTimeMs: number): { hold: HoldState; fire: Decision | null } {
  if (!d) return { hold: null, fire: null };
  const same = prev && prev.label === d.label && prev.action === d.action;
  const h = same ? prev : { label: d.label, action: d.action, since: now, fired: false };
  if (!h.fired && now - h.since >= (d.holdMs ?? handleTimeMs)) return { hold: { ...h, fired: true }, fire: d };
  return { hold: h, fire: null };
}
