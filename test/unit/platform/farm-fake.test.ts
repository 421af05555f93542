// FakeFarmFilter keeps the FarmFilter contract (src/platform/farm/types.ts) with the real adapter's checks.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { bucketOwners, ownedBy, type Member } from '../../../src/engine/farm/buckets.js';
import { BugError, UserError } from '../../../src/errors.js';
import { FakeFarmFilter } from '../../../src/platform/farm/fake.js';
import { farmBucket } from '../../../src/platform/farm/jhash.js';
import type { FarmFilterSpec } from '../../../src/platform/farm/types.js';
import { expectReject } from '../expect-reject.js';

const SPEC: FarmFilterSpec = {
  module: 'web',
  vip: '198.51.100.10',
  rules: [{ port: 80, proto: 'tcp', filter: 'on_addr' }, { port: null, proto: 'udp', filter: 'on_port' }],
};

/** `p` must reject with a `kind` whose message matches `re`. */
const rejects = (p: Promise<unknown>, kind: typeof BugError | typeof UserError, re: RegExp) =>
  expectReject(p, (e) => e instanceof kind && re.test((e as Error).message), `${kind.name} ${re}`);

test('install records the spec (ifname defaulted) and the owned set, sorted; install again replaces', async () => {
  const f = new FakeFarmFilter('node1');
  await f.install(SPEC, [9, 1, 1]);
  assert.equal(f.table('web'), { spec: { ...SPEC, ifname: 'eth0' }, owned: [1, 9] });
  await f.install({ ...SPEC, ifname: 'eth1' }, [2]);
  assert.equal(f.table('web')?.owned, [2]);
  assert.is(f.table('web')?.spec.ifname, 'eth1');
  assert.equal(await f.list(), ['web']);
});

test('setOwned before install is a BugError; bad buckets a BugError; bad specs a UserError', async () => {
  const f = new FakeFarmFilter('node1');
  await rejects(f.setOwned('web', [1]), BugError, /before install/);
  await rejects(f.install(SPEC, [256]), BugError, /bucket 256/);
  await rejects(f.install({ ...SPEC, rules: [] }, []), UserError, /no <rule>/);
  await rejects(f.install({ ...SPEC, module: '9web' }, []), UserError, /module name/);
  assert.equal(await f.list(), []);
  await f.install(SPEC, []);
  await rejects(f.setOwned('web', [-1]), BugError, /bucket -1/);
  assert.equal(f.table('web')?.owned, [], 'a refused setOwned changes nothing');
});

test('remove is idempotent; calls are recorded in order, failed ones too; failNext', async () => {
  const f = new FakeFarmFilter('node1');
  await f.remove('web');
  await f.install(SPEC, [3]);
  f.failNext('setOwned', new Error('boom'));
  await f.setOwned('web', [4]).then(() => assert.unreachable(), (e: Error) => assert.is(e.message, 'boom'));
  assert.equal(f.table('web')?.owned, [3]);
  await f.setOwned('web', [4, 5]);
  await f.remove('web');
  assert.equal(await f.list(), []);
  assert.equal(f.calls, ['remove web', 'install web 3', 'setOwned web 4', 'setOwned web 4,5', 'remove web', 'list']);
});

test('acceptsNew: exactly one of three nodes takes each client, by the rule for the port, else the proto\'s port-null rule', async () => {
  const members: Member[] = [{ name: 'node1', power: 1 }, { name: 'node2', power: 1 }, { name: 'node3', power: 2 }];
  const nodes = members.map((m) => new FakeFarmFilter(m.name));
  for (const f of nodes) await f.install(SPEC, ownedBy(f.node, members));
  const owners = bucketOwners(members);
  for (let i = 0; i < 40; i++) {
    const src = `198.51.100.${100 + i}`;
    const tcp = nodes.filter((f) => f.acceptsNew('web', 'tcp', 80, src, 40000 + i)).map((f) => f.node);
    assert.equal(tcp, [owners[farmBucket('on_addr', src)]]);
    const udp = nodes.filter((f) => f.acceptsNew('web', 'udp', 53, src, 40000 + i)).map((f) => f.node);
    assert.equal(udp, [owners[farmBucket('on_port', src, 40000 + i)]]);
    assert.equal(nodes.filter((f) => f.acceptsNew('web', 'tcp', 22, src, 40000)), [], 'no rule for tcp 22');
  }
});

test.run();
