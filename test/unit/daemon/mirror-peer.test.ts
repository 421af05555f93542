import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { defaultprimProblem, INVENTORY_FRESH_MS, isInventory, knownPeer, PEER_GRACE_MS, peerFile, resolvePeer, savePeer } from '../../../src/daemon/mirror-peer.js';
import { parseClusterXml } from '../../../src/config/cluster.js';
import { UserError } from '../../../src/errors.js';

const heard = (entries: Record<string, string[]>, at = 0) => new Map(Object.entries(entries).map(([n, mirrors]) => [n, { mirrors, at }]));
const OTHERS = ['node2', 'node3', 'node4'];

test('resolvePeer: the one other node that has the module, once every other node was heard', () => {
  assert.equal(resolvePeer('db', 'node1', heard({ node2: [], node3: ['db', 'x'], node4: ['x'] }), 100, OTHERS, 100), { peer: 'node3' });
});

test('resolvePeer: one holder but a node not heard yet: wait, until the grace period has passed', () => {
  const h = heard({ node2: [], node3: ['db'] });
  const r = resolvePeer('db', 'node1', h, 100, OTHERS, 100);
  assert.ok('wait' in r && /node3 has db installed; waiting to hear node4 too/.test(r.wait), JSON.stringify(r));
  assert.equal(resolvePeer('db', 'node1', h, 100, OTHERS, PEER_GRACE_MS), { peer: 'node3' });
});

test('resolvePeer: installed on two other nodes is an error naming the three; nobody has it: wait, saying whom it heard', () => {
  const r = resolvePeer('db', 'node1', heard({ node2: ['db'], node3: ['db'], node4: [] }), 0, OTHERS, 0);
  assert.ok('error' in r && /db is installed on node1, node2, node3: a mirror module runs on exactly two nodes/.test(r.error), JSON.stringify(r));
  const w = resolvePeer('db', 'node1', heard({ node2: [] }), 0, OTHERS, 0);
  assert.ok('wait' in w && /heard node2, none has it/.test(w.wait), JSON.stringify(w));
  const stale = resolvePeer('db', 'node1', heard({ node3: ['db'] }, 0), INVENTORY_FRESH_MS, OTHERS, PEER_GRACE_MS);
  assert.ok('wait' in stale && /no other node heard yet/.test(stale.wait), 'an inventory older than INVENTORY_FRESH_MS does not count');
});

test('defaultprimProblem: alone or a node of the pair is fine; another node of the cluster is refused, naming the pair', () => {
  for (const d of ['alone', 'node1', 'node3']) assert.is(defaultprimProblem('db', d, 'node3', 'node1'), null, d);
  assert.is(defaultprimProblem('db', 'node2', 'node3', 'node1'),
    'mirror module db: <service defaultprim="node2"> names node2, which does not run it: it runs on node1 and node3. ' +
    'Set defaultprim to node1, node3 or "alone" and apply it (`tandem config -m db`); nothing is started until then.');
});

test('knownPeer: the other node of a two-node cluster; in a larger one the recorded peer, which must be another node', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tdpeer-'));
  const home = { root: dir, runDir: path.join(dir, 'run') };
  try {
    const two = parseClusterXml('<cluster><lans><lan name="a"><node name="n1" addr="10.0.0.1"/><node name="n2" addr="10.0.0.2"/></lan></lans></cluster>');
    const three = parseClusterXml('<cluster><lans><lan name="a"><node name="n1" addr="10.0.0.1"/><node name="n2" addr="10.0.0.2"/><node name="n3" addr="10.0.0.3"/></lan></lans></cluster>');
    assert.is(knownPeer(home, two, 'n1', 'db'), 'n2');
    assert.is(knownPeer(home, three, 'n1', 'db'), null);
    await savePeer(home, 'db', 'n3');
    assert.is(knownPeer(home, three, 'n1', 'db'), 'n3');
    fs.writeFileSync(peerFile(home, 'db'), 'n1\n');
    assert.throws(() => knownPeer(home, three, 'n1', 'db'), (e: unknown) => e instanceof UserError && /names "n1", which is not another node/.test((e as Error).message));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('isInventory: shape check', () => {
  assert.ok(isInventory({ kind: 'inventory', mirrors: ['a', 'b'] }));
  for (const bad of [null, {}, { kind: 'inventory' }, { kind: 'inventory', mirrors: [1] }, { kind: 'farm', mirrors: [] }]) assert.not.ok(isInventory(bad), JSON.stringify(bad));
});

test.run();
