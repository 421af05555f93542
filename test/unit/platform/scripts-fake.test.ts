import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FakeScriptRunner } from '../../../src/platform/scripts/fake.js';
import type { ScriptRequest } from '../../../src/platform/scripts/types.js';

const req = (script: ScriptRequest['script']): ScriptRequest => ({
  module: 'web',
  script,
  args: ['ALONE', 'PRIM', 'start'],
  env: { TANDEM_MODULE: 'web' },
  timeoutMs: 1000,
});

test('records requests in order and succeeds by default', async () => {
  const f = new FakeScriptRunner();
  const r = await f.run(req('prestart'));
  await f.run(req('start_prim'));
  assert.equal(r, { ok: true, missing: false, timedOut: false, code: 0, durationMs: 0 });
  assert.equal(f.scripts, ['prestart', 'start_prim']);
  assert.equal(f.requests[0], req('prestart'));
});

test('programmed results per script, completed from the default', async () => {
  const f = new FakeScriptRunner();
  f.setResult('start_prim', { ok: false });
  f.setResult('stop_prim', { ok: false, timedOut: true, code: null });
  f.setResult('poststop', { missing: true });
  assert.equal(await f.run(req('start_prim')), { ok: false, missing: false, timedOut: false, code: 1, durationMs: 0 });
  assert.equal(await f.run(req('stop_prim')), { ok: false, missing: false, timedOut: true, code: null, durationMs: 0 });
  assert.equal((await f.run(req('poststop'))).missing, true);
  assert.is((await f.run(req('prestart'))).ok, true);
});

test('delayMs delays the result, and the request is recorded before it resolves', async () => {
  const f = new FakeScriptRunner({ delayMs: 30 });
  let settled = false;
  const p = f.run(req('start_second')).finally(() => { settled = true; });
  assert.equal(f.scripts, ['start_second']);
  // an undelayed result settles within this turn of the event loop; the delayed one cannot settle before the next
  await new Promise((r) => setImmediate(r));
  assert.not.ok(settled, 'the result waits for its timer');
  const r = await p;
  assert.is(r.durationMs, 30);
});

test.run();
