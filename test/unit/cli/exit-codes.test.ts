/**
 * README's exit code table, held by every command of the manifest (`node bin/tandem …`, as a user runs it): an invalid
 * command line (unknown command, unknown flag, missing argument, bad flag value) exits 64, never 2 (ALONE for
 * `tandem state`); a user error exits 10.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Config } from '@oclif/core';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { EXIT_USAGE, EXIT_USER_ERROR } from '../../../src/errors.js';
import { inParallel } from '../../../src/parallel.js';
import { ROOT, runTandem, type Run } from './run.js';



const home = fs.mkdtempSync(path.join(os.tmpdir(), 'tdexit-'));
test.after(() => fs.rmSync(home, { recursive: true, force: true }));

const tandem = (args: string[]): Promise<Run> => runTandem(args, { env: { TANDEM_HOME: home, TANDEM_RUN_DIR: path.join(home, 'run') } });

const show = (args: string[], r: Run) => `tandem ${args.join(' ')}: exit ${r.code}\n--- stdout\n${r.stdout}--- stderr\n${r.stderr}`;

test('EXIT_USAGE is distinct from every state and resource exit code and from the error codes', () => {
  assert.ok(![0, 1, 2, 3, 4, 10, 11, 12].includes(EXIT_USAGE));
});

test('every command of the manifest: an unknown flag exits 64 and names the flag', async () => {
  const config = await Config.load(ROOT);
  const ids = config.commands.filter((c) => !c.hidden).map((c) => c.id.split(':'));
  assert.ok(ids.length >= 20, `the manifest lists the commands (${ids.length})`);
  const runs: Array<{ args: string[]; r: Run }> = [];
  await inParallel(ids, 4, async (id) => {
    const args = [...id, '--no-such-flag'];
    runs.push({ args, r: await tandem(args) });
  });
  for (const { args, r } of runs) {
    assert.is(r.code, EXIT_USAGE, show(args, r));
    assert.match(r.stderr, /Nonexistent flag: --no-such-flag/, show(args, r));
  }
});

test('unknown command, missing argument, missing flag value, bad option, bad integer, unexpected argument: 64', async () => {
  const cases: Array<[string[], RegExp]> = [
    [['nosuch'], /command nosuch not found/],
    [['cluster', 'nosuch'], /not found/],
    [['install', '-m', 'web'], /Missing 1 required arg/],
    [['state', '-m'], /Flag --module expects a value/],
    [['errd', 'sideways', '-m', 'web'], /Expected sideways to be one of: on, off, list/],
    [['log', '-m', 'web', '-n', 'many'], /Expected an integer/],
    [['get', '-m', 'web'], /Missing required flag resource/],
    [['state', '-m', 'web', 'extra'], /Unexpected argument: extra/],
    [['lab', 'exec', 'node1'], /give the command after the host/],
    [['help', 'nosuch'], /Command nosuch not found/],
  ];
  for (const [args, re] of cases) {
    const r = await tandem(args);
    assert.is(r.code, EXIT_USAGE, show(args, r));
    assert.match(r.stderr, re, show(args, r));
  }
});

test('`tandem help` and `tandem help COMMAND` print the help and exit 0', async () => {
  const top = await tandem(['help']);
  assert.is(top.code, 0, show(['help'], top));
  assert.match(top.stdout, /COMMANDS[\s\S]*package[\s\S]*state/);
  const one = await tandem(['help', 'lab', 'up']);
  assert.is(one.code, 0, show(['help', 'lab', 'up'], one));
  assert.match(one.stdout, /\$ tandem lab up/);
});

test('a user error exits 10 (not 64): the command line is valid, the request is not', async () => {
  for (const args of [['state', '-m', 'web'], ['install', '-m', 'web', path.join(home, 'nothing-here')], ['log', '-m', 'web'], ['state']]) {
    const r = await tandem(args);
    assert.is(r.code, EXIT_USER_ERROR, show(args, r));
    assert.match(r.stderr, /error:/, show(args, r));
  }
});

test.run();
