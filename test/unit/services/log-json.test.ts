// `tandem log --json` (src/services/log.ts): each log line becomes one JSON object; a line read half-written is
// printed once its end arrives, never split into two objects.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { jsonLines, logLineJson } from '../../../src/services/log.js';

test('a daemon line carries its time and level; script output has none', () => {
  assert.equal(logLineJson('demo', '2026-12-04T20:00:00.123Z info  demo: WAIT -> ALONE'),
    { module: 'demo', at: '2026-12-04T20:00:00.123Z', level: 'info', line: '2026-12-04T20:00:00.123Z info  demo: WAIT -> ALONE' });
  assert.equal(logLineJson('demo', 'pg_ctl: server started'), { module: 'demo', at: null, level: null, line: 'pg_ctl: server started' });
});

test('chunks that cut a line: one object per complete line, the rest waits for its newline', () => {
  const conv = jsonLines('demo');
  assert.is(conv('first\nsec'), '{"module":"demo","at":null,"level":null,"line":"first"}\n');
  assert.is(conv('ond half'), '');
  assert.is(conv('\n\nthird\n'), [
    '{"module":"demo","at":null,"level":null,"line":"second half"}',
    '{"module":"demo","at":null,"level":null,"line":""}',
    '{"module":"demo","at":null,"level":null,"line":"third"}', ''].join('\n'));
});

test.run();
