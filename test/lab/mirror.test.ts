import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { LabTarget } from '../../src/lab/lab-target.js';
import { runScenario } from '../../src/scenario/script.js';

// Seed-003 scenarios against real daemons in network namespaces (dist/test/lab → test/lab/scenarios).
const dir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../test/lab/scenarios');
const only = process.env.TANDEM_SCENARIO;

for (const file of fs.readdirSync(dir).filter((f) => f.endsWith('.txt') && (!only || f.includes(only))).sort()) {
  test(`lab scenario ${file}`, async () => {
    const target = new LabTarget();
    let failed = true;
    try {
      const t0 = Date.now();
      const r = await runScenario(target, fs.readFileSync(path.join(dir, file), 'utf8'), file);
      if (r.failures.length) {
        const logs = target.lab ? ['node1', 'node2'].map((n) => {
          const p = path.join(target.lab!.paths(n).home, 'log', 'demo.log');
          if (!fs.existsSync(p)) return `--- ${n} demo.log\n(none)`;
          // errors first: a long CI output may be cut in its middle, and the cause is usually an error line
          const lines = fs.readFileSync(p, 'utf8').split('\n');
          const errors = lines.filter((l) => / (error|warn) /.test(l)).slice(-10);
          return `--- ${n} demo.log: last errors and warnings\n${errors.join('\n') || '(none)'}\n--- ${n} demo.log: last lines\n${lines.slice(-30).join('\n')}`;
        }).join('\n') : '';
        assert.unreachable(`${r.failures.join('\n')}\n${logs}`);
      }
      console.log(`  ${file}: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      failed = false;
    } finally {
      await target.dispose(failed && process.env.TANDEM_LAB_KEEP === '1');
    }
  });
}

test.run();
