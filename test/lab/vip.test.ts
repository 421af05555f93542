// LinuxVip and LinuxWitness for real, in network namespaces (needs root). Each test builds its own LAN:
//   tvt-<rand>-br  bridge br0 (ageing_time 0, no STP)
//   tvt-<rand>-h1  eth0 198.51.100.1/24      tvt-<rand>-h2  eth0 198.51.100.2/24      tvt-<rand>-c  eth0 198.51.100.100/24
// and removes it in `finally`. Only 198.51.100.0/24 and 192.0.2.0/24 are used; no traffic leaves the namespaces.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { UserError } from '../../src/errors.js';
import { run, type RunFn } from '../../src/platform/exec.js';
import { LinuxVip } from '../../src/platform/vip/linux.js';
import { LinuxWitness } from '../../src/platform/witness/linux.js';
import { waitFor } from '../unit/wait-for.js';

const VIP = '198.51.100.10';
const HOSTS = { h1: '198.51.100.1/24', h2: '198.51.100.2/24', c: '198.51.100.100/24' } as const;
type Host = keyof typeof HOSTS;

interface Lab {
  ns: (h: Host | 'br') => string;
  mac: (h: Host, ifname?: string) => Promise<string>;
  vip: (h: Host, opts?: { announceCount?: number }) => LinuxVip;
  logs: string[];
  neigh: (addr: string) => Promise<string | undefined>;
  ping: (addr: string) => Promise<boolean>;
}

async function withLab(fn: (lab: Lab) => Promise<void>): Promise<void> {
  const tag = `tvt-${randomBytes(3).toString('hex')}`;
  const ns = (h: Host | 'br') => `${tag}-${h}`;
  const created: string[] = [];
  const logs: string[] = [];
  try {
    for (const n of ['br', ...Object.keys(HOSTS)] as (Host | 'br')[]) {
      await run('ip', ['netns', 'add', ns(n)]);
      created.push(ns(n));
    }
    await run('ip', ['-n', ns('br'), 'link', 'add', 'br0', 'type', 'bridge', 'ageing_time', '0', 'stp_state', '0']);
    await run('ip', ['-n', ns('br'), 'link', 'set', 'br0', 'up']);
    for (const [h, cidr] of Object.entries(HOSTS) as [Host, string][]) {
      await plug(ns(h), 'eth0', ns('br'), `p-${h}`);
      await run('ip', ['-n', ns(h), 'link', 'set', 'lo', 'up']);
      await run('ip', ['-n', ns(h), 'addr', 'add', cidr, 'dev', 'eth0']);
    }
    await fn({
      ns,
      logs,
      mac: async (h, ifname = 'eth0') => {
        const r = await run('ip', ['-n', ns(h), '-j', 'link', 'show', 'dev', ifname]);
        return (JSON.parse(r.stdout) as { address: string }[])[0]!.address;
      },
      vip: (h, opts = {}) =>
        new LinuxVip({ log: (m) => logs.push(`${h}: ${m}`), cmdPrefix: ['ip', 'netns', 'exec', ns(h)], ...opts }),
      neigh: async (addr) => {
        const r = await run('ip', ['-n', ns('c'), '-j', 'neigh', 'show', addr]);
        return (JSON.parse(r.stdout || '[]') as { lladdr?: string }[])[0]?.lladdr;
      },
      ping: async (addr) =>
        (await run('ip', ['netns', 'exec', ns('c'), 'ping', '-n', '-q', '-c', '1', '-W', '1', addr], { reject: false })).code === 0,
    });
  } finally {
    for (const n of created) await run('ip', ['netns', 'del', n], { reject: false });
  }
}

/** a veth from `hostNs` (named `ifname`) to a port of br0 in `brNs`, both up */
async function plug(hostNs: string, ifname: string, brNs: string, port: string): Promise<void> {
  await run('ip', ['-n', hostNs, 'link', 'add', ifname, 'type', 'veth', 'peer', 'name', port, 'netns', brNs]);
  await run('ip', ['-n', brNs, 'link', 'set', port, 'master', 'br0', 'up']);
  await run('ip', ['-n', hostNs, 'link', 'set', ifname, 'up']);
}

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const v = await fn();
  return [v, Math.round(performance.now() - t0)];
}

test('acquire on h1: the client reaches the VIP at h1\'s MAC; h2\'s probe sees h1; h1 does not see itself', () =>
  withLab(async (lab) => {
    const h1 = lab.vip('h1');
    const [, acquireMs] = await timed(() => h1.acquire(VIP));
    console.log(`    acquire (ip addr add; the first gratuitous ARP goes on in the background): ${acquireMs} ms`);
    assert.is(await h1.holds(VIP), true);
    assert.is(await lab.ping(VIP), true, 'client pings the VIP');
    assert.is(await lab.neigh(VIP), await lab.mac('h1'));

    const [probe, probeMs] = await timed(() => lab.vip('h2').probe(VIP));
    console.log(`    probe of a held address from h2: ${probeMs} ms → ${JSON.stringify(probe)}`);
    assert.equal(probe, { inUse: true, by: await lab.mac('h1') });

    const [self, selfMs] = await timed(() => h1.probe(VIP));
    console.log(`    probe from the holder itself: ${selfMs} ms → ${JSON.stringify(self)}`);
    assert.equal(self, { inUse: false });

    const [free, freeMs] = await timed(() => lab.vip('h2').probe('198.51.100.11'));
    console.log(`    probe of a free address: ${freeMs} ms → ${JSON.stringify(free)}`);
    assert.equal(free, { inUse: false });
    assert.equal(lab.logs, []);
  }));

test('the holder ignores its own second interface answering the probe (own-MAC filter)', () =>
  withLab(async (lab) => {
    const h1 = lab.vip('h1');
    await h1.acquire(VIP);
    // A second NIC of h1 on the same LAN: Linux answers ARP for any local address on any interface (arp_ignore=0),
    // so the probe sent from one of h1's interfaces is answered by the other one with h1's other MAC.
    await plug(lab.ns('h1'), 'eth1', lab.ns('br'), 'p-h1b');
    await run('ip', ['-n', lab.ns('h1'), 'addr', 'add', '198.51.100.3/24', 'dev', 'eth1']);
    const raw = await run(
      'ip',
      ['netns', 'exec', lab.ns('h1'), 'arping', '-r', '-c', '2', '-W', '0.2', '-i', 'eth0', '-S', '0.0.0.0', VIP],
      { reject: false },
    );
    assert.ok(raw.stdout.includes(await lab.mac('h1', 'eth1')), `the raw probe does hear h1's eth1: ${raw.stdout}`);
    assert.equal(await h1.probe(VIP), { inUse: false });
    const other = await lab.vip('h2').probe(VIP);
    assert.is(other.inUse, true);
    assert.ok([await lab.mac('h1'), await lab.mac('h1', 'eth1')].includes(other.by!), 'h2 hears h1 (either NIC: ARP flux)');
  }));

test('move h1 → h2: the client\'s neighbour entry follows thanks to the announcement', () =>
  withLab(async (lab) => {
    const h1 = lab.vip('h1');
    const h2 = lab.vip('h2');
    await h1.acquire(VIP);
    assert.is(await lab.ping(VIP), true);
    const mac1 = await lab.mac('h1');
    const mac2 = await lab.mac('h2');
    assert.is(await lab.neigh(VIP), mac1);

    const t0 = performance.now();
    await h1.release(VIP);
    assert.is(await h1.holds(VIP), false);
    const [, acquireMs] = await timed(() => h2.acquire(VIP));
    // the client sends nothing to the VIP here, so only h2's announcement can change its entry (the control test
    // below shows that without it the entry keeps h1's MAC); the timeout only turns a missing announcement into a failure
    await waitFor(async () => (await lab.neigh(VIP)) === mac2, 5000, 'the client\'s neighbour entry for the VIP to name h2', 5);
    console.log(`    release+acquire: h2.acquire took ${acquireMs} ms; client entry switched to h2 after ${Math.round(performance.now() - t0)} ms`);
    assert.is(await lab.ping(VIP), true, 'client reaches the VIP at h2');
    assert.equal(await h1.probe(VIP), { inUse: true, by: mac2 });
    assert.equal(lab.logs, []);
  }));

test('control: without the announcement the client keeps the old MAC (what the announcement buys)', () =>
  withLab(async (lab) => {
    await lab.vip('h1').acquire(VIP);
    assert.is(await lab.ping(VIP), true);
    const mac1 = await lab.mac('h1');
    await lab.vip('h1').release(VIP);
    const silent = new LinuxVip({
      log: () => {},
      exec: (cmd, args, opts) =>
        args.includes('arping') ? Promise.resolve({ stdout: '', stderr: '', code: 1 }) : run(cmd, args, opts),
      cmdPrefix: ['ip', 'netns', 'exec', lab.ns('h2')],
    });
    await silent.acquire(VIP);
    await new Promise((r) => setTimeout(r, 1000));
    assert.is(await lab.neigh(VIP), mac1, 'still h1 one second later');
  }));

test('moving back and forth quickly: each acquire overrides the previous owner (no 1 s locktime)', () =>
  withLab(async (lab) => {
    const h1 = lab.vip('h1', { announceCount: 1 });
    const h2 = lab.vip('h2', { announceCount: 1 });
    const mac1 = await lab.mac('h1');
    const mac2 = await lab.mac('h2');
    await h1.acquire(VIP);
    assert.is(await lab.ping(VIP), true);
    for (const [from, to, mac] of [[h1, h2, mac2], [h2, h1, mac1], [h1, h2, mac2]] as const) {
      await from.release(VIP);
      await to.acquire(VIP);
      const end = performance.now() + 2000;
      while ((await lab.neigh(VIP)) !== mac && performance.now() < end) await new Promise((r) => setTimeout(r, 5));
      assert.is(await lab.neigh(VIP), mac);
    }
  }));

test('no interface carries the subnet → UserError, nothing configured', () =>
  withLab(async (lab) => {
    const h1 = lab.vip('h1');
    try {
      await h1.acquire('192.0.2.10');
      assert.unreachable('acquire should fail');
    } catch (e) {
      assert.instance(e, UserError);
      assert.match((e as Error).message, 'no local interface carries a subnet containing 192.0.2.10');
    }
    assert.is(await h1.holds('192.0.2.10'), false);
  }));

test('release is idempotent and leaves the node\'s own address alone', () =>
  withLab(async (lab) => {
    const h1 = lab.vip('h1');
    await h1.release(VIP);
    await h1.acquire(VIP);
    await h1.release(VIP);
    await h1.release(VIP);
    assert.is(await h1.holds(VIP), false);
    assert.equal(await h1.listHeldAddrs(), ['198.51.100.1']);
  }));

test('witness: true when any witness answers, false when none does', () =>
  withLab(async (lab) => {
    const logs: string[] = [];
    /** the witnesses whose ping has exited, in order */
    const exited: string[] = [];
    const exec: RunFn = async (cmd, args, opts) => {
      try {
        return await run(cmd, args, opts);
      } finally {
        exited.push(args[args.length - 1]!);
      }
    };
    const w = new LinuxWitness({ log: (m) => logs.push(m), cmdPrefix: ['ip', 'netns', 'exec', lab.ns('c')], exec });
    // the silent witness's ping runs for its whole 3 s: true must come while it still runs
    const [one, oneMs] = await timed(() => w.reachable(['198.51.100.77', '198.51.100.1'], 3000));
    assert.is(one, true);
    assert.equal(exited, ['198.51.100.1'], 'did not wait for the silent witness');
    await waitFor(() => exited.includes('198.51.100.77'), 10_000, 'the silent witness\'s ping to exit');
    const [none, noneMs] = await timed(() => w.reachable(['198.51.100.77', '198.51.100.78'], 500));
    console.log(`    witness: answered in ${oneMs} ms; none answering took ${noneMs} ms (timeout 500 ms)`);
    assert.is(none, false);
    assert.is(await w.reachable(['192.0.2.1'], 300), false, 'no route: counts as silent');
    assert.match(logs.join('\n'), /witness 192\.0\.2\.1: ping exited 2: .*Network is unreachable/);
  }));

test.run();
