// installLabModule (src/lab/mirror-lab.ts) refuses a module directory that does not exist (what the single binary
// finds when it is not run from a checkout: it carries no example modules) with what to do instead, before it
// touches any node's home. Files: a /tmp/tandem-labmod-* directory, removed at the end.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { UserError } from '../../../src/errors.js';
import type { Lab } from '../../../src/lab/lab.js';
import { DEMO_LAB_MODULE, installLabModule } from '../../../src/lab/mirror-lab.js';
import { expectReject } from '../expect-reject.js';

/** A one-node fake Lab whose node home is in a fresh /tmp directory, removed after `fn`. */
async function withFakeLab(fn: (lab: Lab, dir: string, home: string) => Promise<void>): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-labmod-'));
  try {
    const home = path.join(dir, 'node1-home');
    const lab = {
      spec: { hosts: [{ name: 'node1', role: 'node' }] },
      paths: () => ({ home, run: path.join(dir, 'run') }),
    } as unknown as Lab;
    await fn(lab, dir, home);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test('a lab module directory that does not exist is refused with a hint, and no home is written', () => withFakeLab(async (lab, dir, home) => {
  const e = await expectReject(installLabModule(lab, { module: { ...DEMO_LAB_MODULE, dir: path.join(dir, 'empty') } }),
    (x) => x instanceof UserError, 'missing module');
  assert.match((e as UserError).message, /the lab's demo module is not at .*empty/);
  assert.match((e as UserError).hint ?? '', /checkout/);
  assert.not.ok(fs.existsSync(home), 'no node home was written');
}));

test('the checkout\'s demo module is found (the default source)', () => withFakeLab(async (lab, _dir, home) => {
  await installLabModule(lab, {});
  assert.ok(fs.existsSync(path.join(home, 'modules', 'demo', 'bin', 'start_prim')), 'the demo\'s scripts were copied');
  assert.match(fs.readFileSync(path.join(home, 'modules', 'demo', 'userconfig.xml'), 'utf8'), /<service mode="mirror"/);
}));

test.run();
