import * as assert from 'uvu/assert';

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
