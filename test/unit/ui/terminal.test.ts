/** The live dashboard claims the terminal from a CI job's variables, which would make Ink print only its last frame. */
import tty from 'node:tty';
import chalk from 'chalk';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { claimTerminal } from '../../../src/ui/terminal.js';

/** Node's own colour-depth rules, as process.stdout.getColorDepth applies them on a terminal. */
const nodeDepth = (env: NodeJS.ProcessEnv) => tty.WriteStream.prototype.getColorDepth.call(null, env);

const keepLevel = (fn: () => void) => {
  const level = chalk.level;
  try { fn(); } finally { chalk.level = level; }
};

test('a CI job\'s variables are dropped and the colours come from the terminal', () => keepLevel(() => {
  const env: NodeJS.ProcessEnv = { CI: 'true', CONTINUOUS_INTEGRATION: '1', CI_JOB_ID: '42', TERM: 'xterm-256color', HOME: '/root' };
  assert.is(nodeDepth(env), 1, 'under CI a terminal gets no colour');
  chalk.level = 0;
  assert.equal(claimTerminal(env, nodeDepth).sort(), ['CI', 'CI_JOB_ID', 'CONTINUOUS_INTEGRATION']);
  assert.equal(env, { TERM: 'xterm-256color', HOME: '/root' });
  assert.is(chalk.level, 2, '256 colours');
  claimTerminal({ TERM: 'xterm-256color', COLORTERM: 'truecolor' }, nodeDepth);
  assert.is(chalk.level, 3, 'truecolor');
}));

test('NO_COLOR, FORCE_COLOR=0 and TERM=dumb still mean no colour', () => keepLevel(() => {
  for (const env of [{ CI: '1', TERM: 'xterm-256color', NO_COLOR: '1' }, { TERM: 'xterm-256color', FORCE_COLOR: '0' }, { TERM: 'dumb' }]) {
    chalk.level = 3;
    claimTerminal(env, nodeDepth);
    assert.is(chalk.level, 0, JSON.stringify(env));
  }
  const plain = { TERM: 'xterm-256color', PATH: '/usr/bin' };
  assert.equal(claimTerminal(plain, nodeDepth), [], 'nothing to drop');
  assert.equal(plain, { TERM: 'xterm-256color', PATH: '/usr/bin' });
}));

test.run();
