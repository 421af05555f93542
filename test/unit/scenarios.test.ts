import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runScenario } from '../../src/sim/script.js';

// dist/test/unit → repository test/scenarios
const dir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../test/scenarios');

for (const file of fs.readdirSync(dir).filter((f) => f.endsWith('.txt')).sort()) {
  test(`scenario ${file}`, () => {
    const r = runScenario(fs.readFileSync(path.join(dir, file), 'utf8'), file);
    if (r.failures.length) {
      const logs = [...r.sim.nodes.values()].map((n) => `--- ${n.name}\n${n.log.slice(-40).join('\n')}`).join('\n');
      assert.unreachable(`${r.failures.join('\n')}\n${logs}`);
    }
  });
}

test('a scenario expectation that does not hold is reported with its line', () => {
  const r = runScenario('form node1 node2\nexpect node1 SECOND\n', 'bad.txt');
  assert.is(r.failures.length, 1);
  assert.match(r.failures[0]!, /bad\.txt:2/);
  assert.match(r.failures[0]!, /expected node1 SECOND, got PRIM/);
});

test.run();
