import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createChecker, createProcChecker, type CheckerPlatform, type LocalCheckerConfig } from '../../../src/checkers/create.js';
import { ProcScanner } from '../../../src/checkers/proc-scanner.js';
import { FakeClock } from '../../../src/platform/clock/fake.js';
import { FakeLauncher } from '../../../src/platform/launcher/fake.js';
import { FakeNet } from '../../../src/platform/net/fake.js';
import { FakeProcTable } from '../../../src/platform/procs/fake.js';
import { FakeLan, FakeVip } from '../../../src/platform/vip/fake.js';
import { FakeWitness } from '../../../src/platform/witness/fake.js';
import { step } from './helpers.js';

function platform() {
  const clock = new FakeClock();
  const net = new FakeNet(clock);
  const launcher = new FakeLauncher();
  const table = new FakeProcTable();
  const p: CheckerPlatform = { clock, net, witness: new FakeWitness(['192.0.2.254']), vip: new FakeVip(new FakeLan(), 'n1'), launcher, scanner: new ProcScanner(table, clock) };
  return { p, clock, net, launcher, table };
}

const base = { when: 'prim', action: 'restart', line: 1 } as const;

test('every <check> type makes its checker; reports carry the resource', async () => {
  const { p, clock, net, launcher } = platform();
  net.addrs = [{ ifname: 'eth0', local: '192.0.2.2', prefixlen: 24 }];
  net.setLink('eth0', 'up');
  const seen: string[] = [];
  const custom = { env: { PATH: '/bin' }, logFile: '/log', log: () => {} };
  const cfgs: LocalCheckerConfig[] = [
    { ...base, type: 'tcp', ident: 'http', addr: '127.0.0.1', port: 80, intervalMs: 10_000, timeoutMs: 5000, send: null },
    { ...base, type: 'ping', ident: 'gw', addrs: ['192.0.2.254'], intervalMs: 10_000, timeoutMs: 5000 },
    { ...base, type: 'intf', ident: '', localAddr: '192.0.2.2', vip: null, intervalMs: 10_000 },
    { ...base, type: 'intf', ident: 'lan2', localAddr: null, vip: '198.51.100.10', intervalMs: 10_000 },
    { ...base, type: 'ip', ident: '198.51.100.10', addr: '198.51.100.10', intervalMs: 10_000 },
    { ...base, type: 'custom', ident: 'db', exec: '/opt/chk', args: ['-v'] },
  ];
  const checkers = await Promise.all(cfgs.map((c) => createChecker(c, p, (r, s) => seen.push(`${r} ${s}`), custom)));
  assert.equal(checkers.map((c) => c.resource), ['tcp.http', 'ping.gw', 'intf.eth0', 'intf.lan2', 'ip.198.51.100.10', 'custom.db']);
  for (const c of checkers) c.start();
  await step(clock, 0);
  assert.equal(seen.filter((x) => !x.endsWith(' init')).sort(), [
    'intf.eth0 up', 'intf.lan2 down', 'ip.198.51.100.10 down', 'ping.gw up', 'tcp.http down',
  ]);
  assert.equal(launcher.requests[0]!.env, { PATH: '/bin', TANDEM_RESOURCE: 'custom.db' });
  for (const c of checkers) await c.stop();
  assert.is(clock.pending, 0);
});

test('an errd <proc> makes a proc checker polling at polltimer', async () => {
  const { p, clock, table } = platform();
  table.spawn('db');
  const seen: string[] = [];
  const c = createProcChecker({ name: 'db', nameregex: null, argregex: null, atleast: 1, atmax: -1, action: 'stopstart', class: 'prim', line: 3 }, { polltimerMs: 2000 }, p, (r, s) => seen.push(`${r} ${s}`));
  c.start();
  await step(clock, 0);
  const checks = table.checks;
  await step(clock, 1000, 4);
  assert.is(table.checks, checks + 2);
  assert.equal(seen, ['proc.db init', 'proc.db up']);
  await c.stop();
});

test.run();
