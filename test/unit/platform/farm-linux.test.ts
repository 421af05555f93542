// LinuxFarmFilter against a fake command runner that keeps nft tables as text: which commands it runs, in which
// order, and its error paths. The real thing runs in test/lab/farm-filter.test.ts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BugError, ExternalError, UserError } from '../../../src/errors.js';
import type { RunFn, RunResult } from '../../../src/platform/exec.js';
import { LinuxFarmFilter } from '../../../src/platform/farm/linux.js';
import type { FarmFilterSpec } from '../../../src/platform/farm/types.js';
import { expectReject } from '../expect-reject.js';

const SPEC: FarmFilterSpec = { module: 'web', vip: '198.51.100.10', rules: [{ port: 80, proto: 'tcp', filter: 'on_addr' }] };

/** A host with eth0 198.51.100.1/24 and eth1 203.0.113.1/24, and an nft that remembers the scripts it applied. */
class FakeHost {
  calls: string[] = [];
  /** table "family name" → the script text that created it */
  tables = new Map<string, string>();
  nftFails: string | undefined;

  exec: RunFn = async (cmd, args, opts) => {
    const line = [cmd, ...args].join(' ');
    this.calls.push(line);
    const ok = (stdout = ''): RunResult => ({ stdout, stderr: '', code: 0 });
    const fail = (stderr: string): RunResult => {
      if (opts?.reject === false) return { stdout: '', stderr, code: 1 };
      throw new ExternalError(line, 1, stderr);
    };
    if (line === 'ip -j -4 addr show') {
      return ok(JSON.stringify([
        { ifname: 'lo', flags: ['LOOPBACK'], addr_info: [{ family: 'inet', local: '127.0.0.1', prefixlen: 8 }] },
        { ifname: 'eth0', addr_info: [{ family: 'inet', local: '198.51.100.1', prefixlen: 24 }] },
        { ifname: 'eth1', addr_info: [{ family: 'inet', local: '203.0.113.1', prefixlen: 24 }] },
      ]));
    }
    if (cmd === 'nft' && args[0] === '-f') return this.applyNft(opts?.input ?? '', fail, ok);
    if (line === 'nft -j list tables') {
      const items = [...this.tables.keys()].map((k) => ({ table: { family: k.split(' ')[0], name: k.split(' ')[1] } }));
      return ok(JSON.stringify({ nftables: [{ metainfo: {} }, ...items, { table: { family: 'inet', name: 'filter' } }] }));
    }
    if (cmd === 'nft' && args[0] === 'list' && args[1] === 'table') {
      const t = this.tables.get(`${args[2]} ${args[3]}`);
      return t === undefined ? fail('Error: No such file or directory') : ok(t);
    }
    if (cmd === 'sysctl' || (cmd === 'ip' && args[0] === 'maddr')) return ok();
    throw new Error(`unexpected command ${line}`);
  };

  private applyNft(script: string, fail: (e: string) => RunResult, ok: () => RunResult): RunResult {
    if (this.nftFails) return fail(this.nftFails);
    const next = new Map(this.tables);
    for (const l of script.split('\n')) {
      let m = /^delete table (\S+) (\S+)$/.exec(l);
      if (m) next.delete(`${m[1]} ${m[2]}`);
      m = /^table (\S+) (\S+) \{$/.exec(l);
      if (m) next.set(`${m[1]} ${m[2]}`, '');
      m = /^(flush set|add element) ip (\S+) owned/.exec(l);
      if (m && !next.has(`ip ${m[2]}`)) return fail('Error: No such file or directory');
    }
    // keep each table's text, as `nft list table` would print it
    for (const k of next.keys()) {
      const start = script.indexOf(`table ${k} {`);
      if (start >= 0) next.set(k, script.slice(start, script.indexOf('\n}\n', start) + 2));
    }
    this.tables = next;
    return ok();
  }
}

const filterOn = (h: FakeHost, cmdPrefix?: string[]) => new LinuxFarmFilter({ exec: h.exec, cmdPrefix });

test('install: finds the interface of the VIP\'s subnet, sets arp_announce, subscribes the shared MAC, then one nft transaction', async () => {
  const h = new FakeHost();
  await filterOn(h).install(SPEC, [1, 2]);
  assert.equal(h.calls, [
    'ip -j -4 addr show',
    'nft list table netdev tandem_farm_web',
    'sysctl -q -w net.ipv4.conf.eth0.arp_announce=2',
    'ip maddr add 01:00:5e:33:64:0a dev eth0',
    'nft -f -',
  ]);
  assert.equal([...h.tables.keys()].sort(), ['ip tandem_farm_web', 'netdev tandem_farm_web']);
  assert.match(h.tables.get('netdev tandem_farm_web')!, 'device "eth0"');
});

test('an explicit ifname is used as is; dots become slashes in the sysctl name', async () => {
  const h = new FakeHost();
  await filterOn(h).install({ ...SPEC, ifname: 'eth0.12' }, []);
  assert.ok(!h.calls.includes('ip -j -4 addr show'));
  assert.ok(h.calls.includes('sysctl -q -w net.ipv4.conf.eth0/12.arp_announce=2'));
});

test('no interface for the VIP: UserError, nothing changed', async () => {
  const h = new FakeHost();
  await expectReject(filterOn(h).install({ ...SPEC, vip: '192.0.2.10' }, []),
    (e) => e instanceof UserError && e.message.includes('no local interface carries a subnet containing 192.0.2.10'), 'install');
  assert.is(h.tables.size, 0);
  assert.equal(h.calls, ['ip -j -4 addr show']);
});

test('re-install on another interface: the old interface\'s shared MAC is unsubscribed after the swap', async () => {
  const h = new FakeHost();
  const f = filterOn(h);
  await f.install({ ...SPEC, ifname: 'eth0' }, []);
  h.calls = [];
  await f.install({ ...SPEC, ifname: 'eth1' }, []);
  assert.equal(h.calls.slice(-3), ['nft -f -', 'nft -j list tables', 'ip maddr del 01:00:5e:33:64:0a dev eth0']);
  await f.install({ ...SPEC, ifname: 'eth1' }, [3]);
  assert.not.ok(h.calls.slice(-1)[0]!.startsWith('ip maddr del'), 'same interface: nothing to unsubscribe');
});

test('setOwned: one nft transaction; before install a BugError', async () => {
  const h = new FakeHost();
  const f = filterOn(h);
  await expectReject(f.setOwned('web', [1]), (e) => e instanceof BugError && e.message.includes('before install'), 'setOwned');
  await f.install(SPEC, []);
  h.calls = [];
  await f.setOwned('web', [4, 1]);
  assert.equal(h.calls, ['nft -f -']);
});

test('setOwned when nft fails for another reason: the ExternalError', async () => {
  const h = new FakeHost();
  const f = filterOn(h);
  await f.install(SPEC, []);
  h.nftFails = 'netlink: Error: Could not process rule: Cannot allocate memory';
  await expectReject(f.setOwned('web', [1]), (e) => e instanceof ExternalError, 'setOwned');
});

test('remove: reads the interface back from the table, drops both tables, unsubscribes; idempotent', async () => {
  const h = new FakeHost();
  const f = filterOn(h);
  await f.install(SPEC, [1]);
  h.calls = [];
  await f.remove('web');
  assert.equal(h.calls, ['nft list table netdev tandem_farm_web', 'nft -f -', 'nft -j list tables', 'ip maddr del 01:00:5e:33:64:0a dev eth0']);
  assert.is(h.tables.size, 0);
  h.calls = [];
  await f.remove('web');
  assert.equal(h.calls, ['nft list table netdev tandem_farm_web', 'nft -f -']);
});

test('two VIPs with equal low 23 bits share one multicast MAC: it stays subscribed until the last of their modules goes', async () => {
  const h = new FakeHost();
  const f = filterOn(h);
  // 198.51.100.10 and 198.179.100.10 (51 + 128) differ only in the bit the MAC leaves out
  await f.install(SPEC, []);
  await f.install({ ...SPEC, module: 'api', vip: '198.179.100.10', ifname: 'eth0' }, []);
  await f.install({ ...SPEC, module: 'other', vip: '198.51.100.11' }, []);
  h.calls = [];
  await f.remove('web');
  assert.not.ok(h.calls.some((c) => c.startsWith('ip maddr del')), `api still needs it: ${h.calls.join('; ')}`);
  await f.remove('api');
  assert.equal(h.calls.filter((c) => c.startsWith('ip maddr del')), ['ip maddr del 01:00:5e:33:64:0a dev eth0'], 'the last one unsubscribes');
  // moved to another interface: the old one is unsubscribed only when no other module uses the MAC there
  await f.install(SPEC, []);
  await f.install({ ...SPEC, module: 'api', vip: '198.179.100.10', ifname: 'eth0' }, []);
  h.calls = [];
  await f.install({ ...SPEC, ifname: 'eth1' }, []);
  assert.not.ok(h.calls.some((c) => c.startsWith('ip maddr del')), h.calls.join('; '));
});

test('list: the modules of farm tables only, once each, sorted', async () => {
  const h = new FakeHost();
  const f = filterOn(h);
  assert.equal(await f.list(), []);
  await f.install({ ...SPEC, module: 'zeta' }, []);
  await f.install({ ...SPEC, module: 'a-1' }, []);
  h.tables.set('ip tandem_farm_', '');
  assert.equal(await f.list(), ['a-1', 'zeta']);
});

test('cmdPrefix goes before every command', async () => {
  const h = new FakeHost();
  const seen: string[] = [];
  const exec: RunFn = (cmd, args, opts) => {
    seen.push(cmd);
    assert.equal(args.slice(0, 3), ['netns', 'exec', 'ns1']);
    return h.exec(args[3]!, args.slice(4), opts);
  };
  await new LinuxFarmFilter({ exec, cmdPrefix: ['ip', 'netns', 'exec', 'ns1'] }).install(SPEC, []);
  assert.ok(seen.length > 0 && seen.every((c) => c === 'ip'));
});

test.run();
