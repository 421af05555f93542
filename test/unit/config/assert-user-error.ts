import * as assert from 'uvu/assert';
import { UserError } from '../../../src/errors.js';

/** Asserts that `fn` throws a UserError whose message contains every one of `parts`; returns the message. */
export function throwsUserError(fn: () => unknown, ...parts: string[]): string {
  try {
    fn();
  } catch (e) {
    if (!(e instanceof UserError)) throw new assert.Assertion({ message: `expected a UserError, got ${String(e)}`, operator: 'throws', expects: 'UserError', actual: e });
    for (const p of parts) {
      if (!e.message.includes(p)) {
        throw new assert.Assertion({ message: `message does not contain ${JSON.stringify(p)}:\n  ${e.message}`, operator: 'match', expects: p, actual: e.message });
      }
    }
    return e.message;
  }
  throw new assert.Assertion({ message: `expected a UserError containing ${JSON.stringify(parts)}, nothing was thrown`, operator: 'throws', expects: 'UserError', actual: undefined });
}
