import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { HISTORY_LIMIT, genId, nextGen, pushHistory, relation, splitBrainWinner } from '../../../src/engine/mirror/generation.js';
import type { Gen } from '../../../src/engine/mirror/types.js';

const g = (n: number, node: string, from: Gen['from'] = 'WAIT'): Gen => ({ n, node, from });

test('relation: same, newer either way, diverged, unrelated, empty', () => {
  const base = { gen: g(1, 'node1'), history: [] };
  assert.is(relation(base, { gen: g(1, 'node1'), history: [] }), 'same');
  assert.is(relation(base, { gen: g(2, 'node2'), history: ['1@node1'] }), 'peer-newer');
  assert.is(relation({ gen: g(2, 'node1'), history: ['1@node1'] }, base), 'self-newer');
  // both moved on from 1@node1: split brain
  assert.is(relation({ gen: g(2, 'node1'), history: ['1@node1'] }, { gen: g(2, 'node2'), history: ['1@node1'] }), 'diverged');
  assert.is(relation({ gen: g(5, 'node1'), history: ['4@node1'] }, { gen: g(3, 'node2'), history: ['2@node2'] }), 'unrelated');
  assert.is(relation({ gen: null, history: [] }, base), 'self-empty');
  assert.is(relation(base, { gen: null, history: [] }), 'peer-empty');
  assert.is(relation({ gen: null, history: [] }, { gen: null, history: [] }), 'both-empty');
});

test('nextGen numbers above both nodes and records where it started from', () => {
  assert.equal(nextGen('node2', 'SECOND', g(3, 'node1'), g(7, 'node1')), { n: 8, node: 'node2', from: 'SECOND' });
  assert.equal(nextGen('node1', 'WAIT', null, null), { n: 1, node: 'node1', from: 'WAIT' });
});

test('pushHistory keeps the newest first, no duplicates, bounded', () => {
  let h: string[] = [];
  for (let i = 1; i <= HISTORY_LIMIT + 5; i++) h = pushHistory(h, g(i, 'node1'));
  assert.is(h.length, HISTORY_LIMIT);
  assert.is(h[0], genId(g(HISTORY_LIMIT + 5, 'node1')));
  assert.equal(pushHistory(['2@node1', '1@node1'], g(1, 'node1')), ['1@node1', '2@node1']);
  assert.equal(pushHistory(['1@node1'], null), ['1@node1']);
});

test('split-brain rule: incomplete copy never wins, then from PRIM, then running, then cluster.xml order', () => {
  const order = ['node1', 'node2'];
  const c = (node: string, from: Gen['from'], running: boolean, consistent = true) => ({ node, gen: g(2, node, from), running, consistent });
  assert.is(splitBrainWinner(c('node1', 'PRIM', true, false), c('node2', 'SECOND', false), order), 'node2');
  assert.is(splitBrainWinner(c('node1', 'SECOND', true), c('node2', 'PRIM', true), order), 'node2');
  assert.is(splitBrainWinner(c('node1', 'WAIT', false), c('node2', 'WAIT', true), order), 'node2');
  assert.is(splitBrainWinner(c('node2', 'WAIT', true), c('node1', 'WAIT', true), order), 'node1');
  // symmetric: both nodes reach the same verdict
  for (const [a, b] of [[c('node1', 'SECOND', true), c('node2', 'WAIT', true)], [c('node1', 'PRIM', false), c('node2', 'PRIM', true)]] as const) {
    assert.is(splitBrainWinner(a, b, order), splitBrainWinner(b, a, order));
  }
});

test.run();
