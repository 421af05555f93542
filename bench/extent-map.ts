/**
 * ExtentMap namespace operations: they should cost the subtree they touch, not the whole map. Prints the time of the
 * 100k-change workload that test/unit/record/extent-map.test.ts checks for correctness, and the time of renaming one
 * 200-file directory in a map of 4,000 and of 40,000 files: a ratio near 1 says a rename costs its subtree; near 10
 * would say it walks the whole map.
 *   node dist/bench/extent-map.js
 */
import { ExtentMap } from '../src/replication/record/extent-map.js';

function filled(dirs: number): ExtentMap {
  const m = new ExtentMap();
  for (let d = 0; d < dirs; d++) {
    m.apply({ op: 'mkdir', path: `d${d}` });
    for (let f = 0; f < 200; f++) m.apply({ op: 'create', path: `d${d}/f${f}` });
  }
  return m;
}

function workload(): number {
  const t0 = performance.now();
  const m = filled(200);
  for (let d = 0; d < 200; d += 2) m.apply({ op: 'rename', from: `d${d}`, to: `r${d}` });
  for (let d = 1; d < 200; d += 2) for (let f = 0; f < 200; f += 2) m.apply({ op: 'unlink', path: `d${d}/f${f}` });
  for (let i = 0; i < 40_000; i++) m.apply({ op: 'write', path: `r0/f${i % 200}`, offset: i * 10, length: 5 });
  return performance.now() - t0;
}

/** ms per rename of one 200-file directory, back and forth, in a map of `dirs` × 200 files */
function renameMs(dirs: number, rounds = 200): number {
  const m = filled(dirs);
  const t0 = performance.now();
  for (let i = 0; i < rounds; i++) m.apply(i % 2 ? { op: 'rename', from: 'x', to: 'd0' } : { op: 'rename', from: 'd0', to: 'x' });
  return (performance.now() - t0) / rounds;
}

console.log(`100k namespace changes and writes: ${workload().toFixed(0)} ms`);
const small = renameMs(20);
const large = renameMs(200);
console.log(`rename of a 200-file directory: ${small.toFixed(3)} ms in 4,000 files, ${large.toFixed(3)} ms in 40,000 files: ratio ${(large / small).toFixed(2)} (1 = costs the subtree, 10 = walks the map)`);
