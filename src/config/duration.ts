import { UserError } from '../errors.js';

/** Duration units accepted in configuration (SafeKit ≥ 8.2.5 vocabulary), in milliseconds. */
const UNIT_MS = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
type Unit = keyof typeof UNIT_MS;

const UNITS = Object.keys(UNIT_MS).join(', ');

/**
 * Parses `<integer or decimal><unit>` (e.g. `500ms`, `1.5s`, `0m`) into milliseconds, rounded to the microsecond
 * (so `us` values give fractions of a millisecond).
 * Surrounding whitespace is ignored. A number without a unit, a negative value or anything else is a UserError that
 * starts with `where` (e.g. `userconfig.xml line 3: <heart timeout="5x">`) and lists the accepted units.
 */
export function parseDuration(text: string, where: string): number {
  const t = text.trim();
  const m = /^(\d+(?:\.\d+)?)(us|ms|s|m|h|d)$/.exec(t);
  if (m) return Math.round(Number(m[1]) * UNIT_MS[m[2] as Unit] * 1000) / 1000;
  if (/^\d+(?:\.\d+)?$/.test(t)) {
    throw new UserError(`${where}: "${t}" has no unit. Add one, e.g. "${t}ms" or "${t}s" (units: ${UNITS}).`);
  }
  if (/^-/.test(t)) throw new UserError(`${where}: "${t}" is negative. Write a duration of 0 or more, e.g. 5s (units: ${UNITS}).`);
  if (t === '') throw new UserError(`${where}: the duration is empty. Write a number and a unit, e.g. 5s (units: ${UNITS}).`);
  throw new UserError(`${where}: "${t}" is not a duration. Write a number and a unit, e.g. 500ms or 5s (units: ${UNITS}).`);
}

/** Formats milliseconds with the largest unit that divides them exactly (`5s`, `90s`, `1500ms`, `2m`, `250us`). */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0s';
  for (const unit of ['d', 'h', 'm', 's', 'ms'] as const) {
    const n = ms / UNIT_MS[unit];
    if (Number.isInteger(n)) return `${n}${unit}`;
  }
  const us = Math.round(ms * 1000 * 1e6) / 1e6;
  return Number.isInteger(us) ? `${us}us` : `${ms}ms`;
}
