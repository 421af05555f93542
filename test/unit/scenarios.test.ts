import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runScenario } from '../../src/scenario/script.js';
import { SimTarget } from '../../src/scenario/sim-target.js';

// dist/test/unit → repository test/scenarios
const dir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../test/scenarios');

for (const file of fs.readdirSync(dir).filter((f) => f.endsWith('.txt')).sort()) {
  test(`scenario ${file}`, async () => {
    const target = new SimTarget();
    const r = await runScenario(target, fs.readFileSync(path.join(dir, file), 'utf8'), file);
    if (r.failures.length) assert.unreachable(`${r.failures.join('\n')}\n${target.logs()}`);
  });
}

test('an expectation that does not hold is reported with its line and the nodes\' states', async () => {
  const r = await runScenario(new SimTarget(), 'form node1 node2\nexpect node1 SECOND\n', 'bad.txt');
  assert.is(r.failures.length, 1);
  assert.match(r.failures[0]!, /bad\.txt:2/);
  assert.match(r.failures[0]!, /expected node1 SECOND ready, got PRIM/);
});

test('an unknown verb stops the scenario with its line', async () => {
  const r = await runScenario(new SimTarget(), 'form node1 node2\nfly node1\nexpect node1 PRIM\n', 'bad.txt');
  assert.is(r.failures.length, 1);
  assert.match(r.failures[0]!, /bad\.txt:2: fly node1\n\s+unknown verb "fly"/);
});

test.run();
