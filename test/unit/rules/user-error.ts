import * as assert from 'uvu/assert';
import { UserError } from '../../../src/errors.js';

/** The message of the UserError `fn` throws; fails the test if it throws nothing or anything else. */
export function userErrorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof UserError) return e.message;
    throw new assert.Assertion({ message: `expected a UserError, got ${String(e)}`, operator: 'throws', expects: 'UserError', actual: e });
  }
  throw new assert.Assertion({ message: 'expected a UserError, nothing was thrown', operator: 'throws', expects: 'UserError', actual: undefined });
}
