// Help texts read well: oclif wraps each paragraph to the terminal, so a line break inside one comes out as a
// ragged short line (src/cli/paragraphs.ts). Loads the real command manifest, as `tandem --help` does.
import { Config } from '@oclif/core';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { paragraphs } from '../../../src/cli/paragraphs.js';
import { ROOT } from './run.js';

test('paragraphs joins the lines of each paragraph and keeps the blank lines between them', () => {
  assert.is(paragraphs('One line\n  and its wrap.\n\nA second\nparagraph.\n'), 'One line and its wrap.\n\nA second paragraph.');
  assert.is(paragraphs('\n\nalone\n \n\n'), 'alone');
  assert.is(paragraphs(''), '');
});

test('no command description breaks a line inside a paragraph', async () => {
  const config = await Config.load(ROOT);
  assert.ok(config.commands.length >= 30, `${config.commands.length} commands loaded`);
  const ragged: string[] = [];
  for (const c of config.commands) {
    for (const p of (c.description ?? '').split('\n\n')) if (p.includes('\n')) ragged.push(`${c.id}: ${JSON.stringify(p.slice(0, 80))}`);
  }
  assert.equal(ragged, [], 'wrap the description with paragraphs() (src/cli/paragraphs.ts)');
});

test.run();
