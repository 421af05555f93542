import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BUCKETS, bucketOwners, ownedBy, shares, type Member } from '../../../../src/engine/farm/buckets.js';
import { rng } from '../../rng.js';

const farm = (...spec: [string, number][]): Member[] => spec.map(([name, power]) => ({ name, power }));

test('every bucket has exactly one owner among the members; no members: no owner', () => {
  const owners = bucketOwners(farm(['node1', 1], ['node2', 1], ['node3', 2]));
  assert.is(owners.length, BUCKETS);
  for (const o of owners) assert.ok(o === 'node1' || o === 'node2' || o === 'node3', String(o));
  assert.ok(bucketOwners([]).every((o) => o === null));
  assert.equal(ownedBy('node1', [{ name: 'node1', power: 3 }]), [...Array(BUCKETS).keys()], 'a lone member owns every bucket');
});

test('the owners depend on the set of members, not on the order they are listed in', () => {
  const a = bucketOwners(farm(['node1', 1], ['node2', 1], ['node3', 2]));
  const b = bucketOwners(farm(['node3', 2], ['node1', 1], ['node2', 1]));
  assert.equal(a, b);
});

test('a leaving member moves only its own buckets; when it returns it gets exactly them back', () => {
  const all = farm(['node1', 1], ['node2', 1], ['node3', 2], ['node4', 1]);
  const before = bucketOwners(all);
  for (const leaving of all) {
    const after = bucketOwners(all.filter((m) => m !== leaving));
    for (let b = 0; b < BUCKETS; b++) {
      if (before[b] !== leaving.name) assert.is(after[b], before[b], `bucket ${b} of ${before[b]} moved when ${leaving.name} left`);
      else assert.is.not(after[b], leaving.name);
    }
    assert.equal(bucketOwners(all), before);
  }
});

test('random farms of 2 to 8 members: a join moves buckets only to the newcomer, a leave only from the leaver', () => {
  const r = rng(42);
  for (let round = 0; round < 40; round++) {
    const n = 2 + Math.floor(r() * 7);
    const members = Array.from({ length: n }, (_, i) => ({ name: `n${i}-${Math.floor(r() * 1000)}`, power: 1 + Math.floor(r() * 4) }));
    const without = members.slice(1);
    const joined = bucketOwners(members);
    const left = bucketOwners(without);
    for (let b = 0; b < BUCKETS; b++) {
      if (joined[b] !== left[b]) assert.is(joined[b], members[0]!.name, `round ${round}, bucket ${b}: ${left[b]} -> ${joined[b]}`);
    }
  }
});

test('shares follow power: 1/1/2 gives about 64/64/128 (within 4 standard deviations), powers of one split evenly', () => {
  const s = shares(farm(['node1', 1], ['node2', 1], ['node3', 2]));
  assert.is(s.node1! + s.node2! + s.node3!, BUCKETS);
  const sd = (p: number) => Math.sqrt(BUCKETS * p * (1 - p));
  assert.ok(Math.abs(s.node1! - 64) <= 4 * sd(0.25), JSON.stringify(s));
  assert.ok(Math.abs(s.node2! - 64) <= 4 * sd(0.25), JSON.stringify(s));
  assert.ok(Math.abs(s.node3! - 128) <= 4 * sd(0.5), JSON.stringify(s));
  // over many random name sets the mean share converges on power / Σ power
  const r = rng(7);
  let heavy = 0;
  const rounds = 200;
  for (let i = 0; i < rounds; i++) {
    const names = [0, 1, 2].map((k) => `h${k}-${Math.floor(r() * 1e9)}`);
    heavy += shares([{ name: names[0]!, power: 2 }, { name: names[1]!, power: 1 }, { name: names[2]!, power: 1 }])[names[0]!]!;
  }
  const mean = heavy / rounds;
  assert.ok(Math.abs(mean - 128) < 3, `mean share of a power-2 member of 1/1/2: ${mean}`);
});

test('asked again (memoized): the same owners, each time in a new array; a change of power is another membership', () => {
  const members = farm(['node1', 1], ['node2', 1], ['node3', 2]);
  const first = bucketOwners(members);
  first[0] = 'mutated';
  const again = bucketOwners([...members].reverse());
  assert.is.not(again[0], 'mutated', 'a caller changing its array does not change the next answer');
  assert.equal(shares(members), { node1: 66, node2: 56, node3: 134 }, 'the shares the lab measured (docs/design/farm.md)');
  const heavier = shares(farm(['node1', 3], ['node2', 1], ['node3', 2]));
  assert.ok(heavier.node1! > 66, `node1 at power 3 owns more than at power 1: ${JSON.stringify(heavier)}`);
  // more memberships than the memo keeps, then the first again: the same answer
  for (let i = 0; i < 100; i++) bucketOwners(farm([`x${i}`, 1], ['node1', 1]));
  assert.equal(shares(members), { node1: 66, node2: 56, node3: 134 });
  assert.equal(bucketOwners(members).slice(1), again.slice(1));
});

test.run();
