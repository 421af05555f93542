// LinuxVip against a fake command runner: the command lines it builds, how it reads their output, and every error
// path. The real thing is exercised in test/lab/vip.test.ts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ExternalError, UserError } from '../../../src/errors.js';
import type { RunFn, RunOptions, RunResult } from '../../../src/platform/exec.js';
import { LinuxVip } from '../../../src/platform/vip/linux.js';
import type { LocalAddr } from '../../../src/net/local-addrs.js';

const VIP = '198.51.100.10';
const MAC_ETH0 = '02:00:00:00:00:01';
const MAC_ETH1 = '02:00:00:00:00:02';

type Reply = Partial<RunResult> | Error | ((signal?: AbortSignal) => Promise<RunResult>);

/** A host as `ip` and `arping` would show it. */
class FakeHost {
  addrs: LocalAddr[] = [
    { ifname: 'lo', local: '127.0.0.1', prefixlen: 8 },
    { ifname: 'eth0', local: '198.51.100.1', prefixlen: 24 },
    { ifname: 'eth1', local: '203.0.113.1', prefixlen: 24 },
  ];
  calls: string[] = [];
  probeReply: Reply = { code: 1 };
  announceReply: Reply = { code: 1 };
  addReply: Reply | undefined;
  delReply: Reply | undefined;
  addrJson: string | undefined;

  exec: RunFn = async (cmd: string, args: string[], opts?: RunOptions) => {
    const line = [cmd, ...args].join(' ');
    this.calls.push(line);
    const reply = (r: Reply): Promise<RunResult> => {
      if (r instanceof Error) return Promise.reject(r);
      if (typeof r === 'function') return r(opts?.signal);
      const res = { stdout: '', stderr: '', code: 0, ...r };
      if (res.code !== 0 && opts?.reject !== false) return Promise.reject(new ExternalError(line, res.code, res.stderr));
      return Promise.resolve(res);
    };
    const words = [cmd, ...args];
    const tool = words.slice(0, 3).join(' ') === 'ip netns exec' ? words.slice(4) : words;
    if (tool.join(' ') === 'ip -j -4 addr show') return reply({ stdout: this.addrJson ?? this.ipAddrJson() });
    if (tool.join(' ') === 'ip -j link show') return reply({ stdout: this.ipLinkJson() });
    if (tool[0] === 'ip' && tool[1] === 'addr' && tool[2] === 'add') {
      if (this.addReply) return reply(this.addReply);
      const [local, len] = tool[3]!.split('/');
      this.addrs.push({ ifname: tool[5]!, local: local!, prefixlen: Number(len) });
      return reply({});
    }
    if (tool[0] === 'ip' && tool[1] === 'addr' && tool[2] === 'del') {
      if (this.delReply) return reply(this.delReply);
      const [local] = tool[3]!.split('/');
      this.addrs = this.addrs.filter((a) => !(a.local === local && a.ifname === tool[5]));
      return reply({});
    }
    if (tool[0] === 'arping' && tool.includes('-U')) return reply(this.announceReply);
    if (tool[0] === 'arping') return reply(this.probeReply);
    throw new Error(`unexpected command ${line}`);
  };

  ipAddrJson(): string {
    const names = [...new Set(this.addrs.map((a) => a.ifname))];
    return JSON.stringify(
      names.map((n, i) => ({
        ifindex: i + 1,
        ifname: n,
        flags: n === 'lo' ? ['LOOPBACK', 'UP'] : ['BROADCAST', 'UP'],
        addr_info: this.addrs
          .filter((a) => a.ifname === n)
          .map((a) => ({ family: 'inet', local: a.local, prefixlen: a.prefixlen, scope: 'global' })),
      })),
    );
  }

  ipLinkJson(): string {
    return JSON.stringify([
      { ifname: 'lo', flags: ['LOOPBACK'], address: '00:00:00:00:00:00' },
      { ifname: 'eth0', address: MAC_ETH0 },
      { ifname: 'eth1', address: MAC_ETH1.toUpperCase() },
    ]);
  }

  count(prefix: string): number {
    return this.calls.filter((c) => c.startsWith(prefix)).length;
  }
}

function make(host: FakeHost, extra: Partial<ConstructorParameters<typeof LinuxVip>[0]> = {}) {
  const logs: string[] = [];
  const vip = new LinuxVip({ log: (m) => logs.push(m), exec: host.exec, announceSpacingMs: 5, ...extra });
  return { vip, logs };
}

async function waitFor(cond: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error('expected a rejection');
}

test('acquire adds the VIP with the subnet prefix on the matching interface, announces once, then 3 more', async () => {
  const host = new FakeHost();
  const { vip, logs } = make(host);
  await vip.acquire(VIP);
  assert.equal(host.calls.slice(0, 3), [
    'ip -j -4 addr show',
    `ip addr add ${VIP}/24 dev eth0`,
    `arping -q -U -c 1 -w 0 -i eth0 -S ${VIP} ${VIP}`,
  ]);
  await waitFor(() => host.count('arping') === 4);
  await new Promise((r) => setTimeout(r, 40));
  assert.is(host.count('arping'), 4, 'announceCount defaults to 4');
  assert.equal(logs, [], 'exit 1 with empty stderr is a sent announcement');
  assert.is(await vip.holds(VIP), true);
});

test('acquire resolves once the address is configured; its first announcement runs on, and release waits for it', async () => {
  const host = new FakeHost();
  let finish!: () => void;
  host.announceReply = () => new Promise((resolve) => {
    finish = () => { host.calls.push('arping exited'); resolve({ stdout: '', stderr: '', code: 1 }); };
  });
  const { vip, logs } = make(host, { announceCount: 1 });
  await vip.acquire(VIP);
  assert.is(await vip.holds(VIP), true);
  assert.is(host.count('arping'), 1, 'the first announcement left at once');
  assert.is(host.calls.includes('arping exited'), false, 'acquire did not wait for it');
  const released = vip.release(VIP);
  finish();
  await released;
  const exited = host.calls.indexOf('arping exited');
  const del = host.calls.indexOf(`ip addr del ${VIP}/24 dev eth0`);
  assert.ok(exited >= 0 && del > exited, host.calls.join('\n'));
  assert.equal(logs, []);
});

test('announceCount 1 sends only the first announcement', async () => {
  const host = new FakeHost();
  const { vip } = make(host, { announceCount: 1 });
  await vip.acquire(VIP);
  await new Promise((r) => setTimeout(r, 40));
  assert.is(host.count('arping'), 1);
});

test('cmdPrefix is put in front of every command', async () => {
  const host = new FakeHost();
  const { vip } = make(host, { cmdPrefix: ['ip', 'netns', 'exec', 'tvt-x'], announceCount: 1 });
  await vip.acquire(VIP);
  await vip.probe(VIP);
  await vip.release(VIP);
  assert.ok(host.calls.length >= 6);
  for (const c of host.calls) assert.ok(c.startsWith('ip netns exec tvt-x '), c);
});

test('acquire of an address already held only re-announces, on the interface holding it', async () => {
  const host = new FakeHost();
  host.addrs.push({ ifname: 'eth1', local: VIP, prefixlen: 24 });
  const { vip } = make(host, { announceCount: 1 });
  await vip.acquire(VIP);
  assert.equal(host.calls, ['ip -j -4 addr show', `arping -q -U -c 1 -w 0 -i eth1 -S ${VIP} ${VIP}`]);
});

test('no interface carries the subnet → UserError naming the address and what to do', async () => {
  const host = new FakeHost();
  const { vip } = make(host);
  const e = await rejection(vip.acquire('192.0.2.77'));
  assert.instance(e, UserError);
  assert.is(
    (e as Error).message,
    'no local interface carries a subnet containing 192.0.2.77; configure an address in that subnet on this node or fix <virtual_addr addr=…>',
  );
  assert.instance(await rejection(vip.probe('192.0.2.77')), UserError);
  assert.is(host.count('ip addr add'), 0);
});

test('loopback subnets never carry a VIP', async () => {
  const { vip } = make(new FakeHost());
  assert.instance(await rejection(vip.acquire('127.0.0.5')), UserError);
});

test('a malformed address → UserError before any command runs', async () => {
  const host = new FakeHost();
  const { vip } = make(host);
  for (const bad of ['198.51.100', '198.51.100.256', 'vip.example', '']) {
    for (const op of ['acquire', 'release', 'probe', 'holds'] as const) {
      const e = await rejection(vip[op](bad));
      assert.instance(e, UserError);
      assert.match((e as Error).message, /is not an IPv4 address/);
    }
  }
  assert.equal(host.calls, []);
});

test('ip addr add failing → ExternalError and no announcement', async () => {
  const host = new FakeHost();
  host.addReply = { code: 2, stderr: 'RTNETLINK answers: Operation not permitted' };
  const { vip } = make(host);
  const e = await rejection(vip.acquire(VIP));
  assert.instance(e, ExternalError);
  assert.is((e as ExternalError).exitCode, 2);
  assert.match((e as Error).message, /Operation not permitted/);
  assert.is(host.count('arping'), 0);
});

test('unparseable ip output → ExternalError', async () => {
  const host = new FakeHost();
  host.addrJson = 'Object "-j" is unknown';
  const { vip } = make(host);
  const e = await rejection(vip.holds(VIP));
  assert.instance(e, ExternalError);
  assert.match((e as Error).message, /not JSON/);
});

test('announcement failures are logged, not thrown (stderr, exit ≥ 2, or arping missing)', async () => {
  for (const bad of [
    { code: 1, stderr: 'arping: libnet_init(): ioctl: No such device' },
    { code: 2 },
    new ExternalError('arping …', null, '', 'command failed (spawn arping ENOENT): arping'),
  ] as Reply[]) {
    const host = new FakeHost();
    host.announceReply = bad;
    const { vip, logs } = make(host, { announceCount: 2 });
    await vip.acquire(VIP);
    await waitFor(() => logs.length === 2);
    assert.match(logs[0]!, new RegExp(`^vip ${VIP.replace(/\./g, '\\.')}: gratuitous ARP failed`));
    assert.is(await vip.holds(VIP), true);
  }
});

test('release cancels the pending announcements', async () => {
  const host = new FakeHost();
  const { vip } = make(host, { announceSpacingMs: 30 });
  await vip.acquire(VIP);
  await vip.release(VIP);
  await new Promise((r) => setTimeout(r, 120));
  assert.is(host.count('arping'), 1);
  assert.is(await vip.holds(VIP), false);
});

test('release kills an announcement in flight and removes the address only after it has exited', async () => {
  const host = new FakeHost();
  let started = 0;
  host.announceReply = (signal) => {
    started += 1;
    if (started === 1) return Promise.resolve({ stdout: '', stderr: '', code: 1 });
    return new Promise((_, reject) =>
      signal!.addEventListener('abort', () => setTimeout(() => {
        host.calls.push('arping exited (aborted)');
        reject(new ExternalError('arping', null, '', 'command canceled: arping'));
      }, 20)),
    );
  };
  const { vip, logs } = make(host, { announceSpacingMs: 1 });
  await vip.acquire(VIP);
  await waitFor(() => started === 2);
  await vip.release(VIP);
  const exited = host.calls.indexOf('arping exited (aborted)');
  const del = host.calls.indexOf(`ip addr del ${VIP}/24 dev eth0`);
  assert.ok(exited >= 0 && del > exited, host.calls.join('\n'));
  assert.equal(logs, [], 'a canceled announcement is not a failure');
});

test('a second acquire restarts the announcements instead of adding a second series', async () => {
  const host = new FakeHost();
  const { vip } = make(host, { announceCount: 3, announceSpacingMs: 30 });
  await vip.acquire(VIP);
  await vip.acquire(VIP);
  await waitFor(() => host.count('arping') === 4);
  await new Promise((r) => setTimeout(r, 120));
  assert.is(host.count('arping'), 4, '1 + 3 from the second acquire; the first series was canceled after its first');
});

test('release removes the VIP from every interface holding it; idempotent', async () => {
  const host = new FakeHost();
  host.addrs.push({ ifname: 'eth0', local: VIP, prefixlen: 24 }, { ifname: 'eth1', local: VIP, prefixlen: 32 });
  const { vip } = make(host);
  await vip.release(VIP);
  assert.equal(host.calls.filter((c) => c.startsWith('ip addr del')), [
    `ip addr del ${VIP}/24 dev eth0`,
    `ip addr del ${VIP}/32 dev eth1`,
  ]);
  await vip.release(VIP);
  assert.is(host.count('ip addr del'), 2, 'nothing to delete the second time');
  assert.is(await vip.holds(VIP), false);
});

test('release: ip addr del fails and the address is still there → ExternalError', async () => {
  const host = new FakeHost();
  host.addrs.push({ ifname: 'eth0', local: VIP, prefixlen: 24 });
  host.delReply = { code: 2, stderr: 'RTNETLINK answers: Operation not permitted' };
  const { vip } = make(host);
  const e = await rejection(vip.release(VIP));
  assert.instance(e, ExternalError);
  assert.match((e as Error).message, /ip addr del 198\.51\.100\.10\/24 dev eth0/);
});

test('release: ip addr del fails because the address just went away → success', async () => {
  const host = new FakeHost();
  host.addrs.push({ ifname: 'eth0', local: VIP, prefixlen: 24 });
  host.delReply = async () => {
    host.addrs = host.addrs.filter((a) => a.local !== VIP);
    return { stdout: '', stderr: 'RTNETLINK answers: Cannot assign requested address', code: 2 };
  };
  const { vip } = make(host);
  await vip.release(VIP);
  assert.is(await vip.holds(VIP), false);
});

test('probe sends an RFC 5227 probe and reports another MAC', async () => {
  const host = new FakeHost();
  host.probeReply = { code: 0, stdout: 'AA:BB:CC:00:00:01\naa:bb:cc:00:00:01\n' };
  const { vip } = make(host, { probeMs: 900 });
  assert.equal(await vip.probe(VIP), { inUse: true, by: 'aa:bb:cc:00:00:01' });
  assert.ok(host.calls.includes(`arping -r -c 3 -W 0.300 -i eth0 -S 0.0.0.0 ${VIP}`), host.calls.join('\n'));
});

test('probe ignores replies from this host\'s own MACs (any interface) and reports the other one', async () => {
  const host = new FakeHost();
  host.probeReply = { code: 0, stdout: `${MAC_ETH1}\n${MAC_ETH0}\n` };
  const { vip } = make(host);
  assert.equal(await vip.probe(VIP), { inUse: false });
  host.probeReply = { code: 0, stdout: `${MAC_ETH1}\n02:00:00:00:00:99\n` };
  assert.equal(await vip.probe(VIP), { inUse: true, by: '02:00:00:00:00:99' });
});

test('probe: no reply (exit 1, empty stderr) → not in use', async () => {
  const host = new FakeHost();
  const { vip } = make(host);
  assert.equal(await vip.probe(VIP), { inUse: false });
});

test('probe of an address held only on its own interface uses that interface', async () => {
  const host = new FakeHost();
  host.addrs = [{ ifname: 'vip0', local: VIP, prefixlen: 24 }];
  const { vip } = make(host);
  assert.equal(await vip.probe(VIP), { inUse: false });
  assert.ok(host.calls.some((c) => c.includes('-i vip0 -S 0.0.0.0')));
});

test('probe: arping errors → ExternalError (stderr with exit 1, exit 2, arping missing)', async () => {
  for (const bad of [
    { code: 1, stderr: 'arping: libnet_init(): No such device' },
    { code: 2, stderr: '' },
    new ExternalError('arping', null, '', 'command failed (spawn arping ENOENT): arping'),
  ] as Reply[]) {
    const host = new FakeHost();
    host.probeReply = bad;
    const { vip } = make(host);
    assert.instance(await rejection(vip.probe(VIP)), ExternalError);
  }
});

test('listHeldAddrs lists non-loopback IPv4 addresses', async () => {
  const host = new FakeHost();
  host.addrs.push({ ifname: 'eth0', local: VIP, prefixlen: 24 });
  const { vip } = make(host);
  assert.equal(await vip.listHeldAddrs(), ['198.51.100.1', VIP, '203.0.113.1']);
});

test.run();
