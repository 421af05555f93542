import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { procMatcher } from '../../../src/checkers/proc-match.js';
import { UserError } from '../../../src/errors.js';

const p = (comm: string, argv: string[]) => ({ pid: 1, startTime: 1, comm, argv });

test('the exact name against comm, or its first 15 characters; nameregex searched in comm instead', () => {
  const byName = procMatcher({ name: 'postgres', nameregex: null, argregex: null });
  assert.ok(byName.matches(p('postgres', ['postgres', '-D', '/db'])));
  assert.not.ok(byName.matches(p('postgres2', [])));
  const long = procMatcher({ name: 'very-long-daemon-name', nameregex: null, argregex: null });
  assert.ok(long.comm('very-long-daemo'), 'the kernel cut comm to 15 characters');
  const byRegex = procMatcher({ name: 'web', nameregex: '^(httpd|nginx)$', argregex: null });
  assert.ok(byRegex.comm('nginx'));
  assert.not.ok(byRegex.comm('web'), 'with nameregex the name is only the resource name');
  assert.ok(procMatcher({ name: 'x', nameregex: 'ngin', argregex: null }).comm('nginx'), 'searched, not anchored');
});

test('argregex is searched in the arguments joined with spaces', () => {
  const m = procMatcher({ name: 'sleep', nameregex: null, argregex: 'sleep 100[0-9]$' });
  assert.ok(m.matches(p('sleep', ['sleep', '1003'])));
  assert.not.ok(m.matches(p('sleep', ['sleep', '10030'])));
  assert.not.ok(m.matches(p('bash', ['sleep', '1003'])), 'the name must match too');
});

test('an invalid regular expression is a UserError naming the entry', () => {
  try {
    procMatcher({ name: 'db', nameregex: null, argregex: '([', line: 12 });
    assert.unreachable();
  } catch (e) {
    assert.instance(e, UserError);
    assert.match((e as Error).message, /^userconfig\.xml line 12: <proc name="db"> argregex="\(\[" is not a valid regular expression/);
  }
});

test.run();
