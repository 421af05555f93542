import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ExternalError, UserError } from '../../src/errors.js';

test('ExternalError names the command, its exit code and stderr', () => {
  const e = new ExternalError('ip addr add 1.2.3.4/24 dev eth0', 2, 'RTNETLINK answers: File exists\n');
  assert.match(e.message, /exit 2/);
  assert.match(e.message, /ip addr add/);
  assert.match(e.message, /File exists/);
});

test('UserError keeps its hint', () => {
  const e = new UserError('no daemon', 'start it with `tandem daemon`');
  assert.is(e.hint, 'start it with `tandem daemon`');
});

test.run();
