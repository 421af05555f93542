import * as assert from 'uvu/assert';
import { UserError } from '../../src/errors.js';

/** Awaits `p`, which must reject with an error `check` accepts; returns that error. */
export async function expectReject(p: Promise<unknown>, check: (e: unknown) => boolean, what: string): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    assert.ok(check(e), `${what}: unexpected ${String(e)}`);
    return e;
  }
  assert.unreachable(`${what}: should have failed`);
  return null;
}

/** Awaits `p` (or calls it), which must fail with a UserError whose message matches `re`; returns that error. */
export async function expectUserError(p: Promise<unknown> | (() => unknown), re: RegExp): Promise<UserError> {
  let e: unknown;
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (x) {
    e = x;
  }
  assert.instance(e, UserError, `expected a UserError matching ${re}, got ${String(e)}`);
  assert.match((e as Error).message, re);
  return e as UserError;
}
