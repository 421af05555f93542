import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { within } from './wait-for.js';

test('within: passes the value or the rejection of a promise that settles', async () => {
  assert.is(await within(Promise.resolve(7), 10_000, 'seven'), 7);
  const e = await within(Promise.reject(new Error('boom')), 10_000, 'boom').catch((x: Error) => x);
  assert.is((e as Error).message, 'boom');
});

test('within: a promise that never settles fails naming what was awaited', async () => {
  const e = await within(new Promise(() => {}), 20, 'the unmount').catch((x: Error) => x);
  assert.instance(e, Error);
  assert.is((e as Error).message, 'timed out after 20 ms waiting for the unmount');
});

test.run();
