// The net probe: the fake's contract; LinuxNetProbe against listeners on 127.0.0.1, a port nobody listens on, a
// listener that cannot accept (a stopped process with a full accept queue), `lo`, a made-up sysfs tree, and a veth
// pair in a network namespace this test creates (and removes).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { FakeClock } from '../../../src/platform/clock/fake.js';
import type { RunFn } from '../../../src/platform/exec.js';
import { FakeNet } from '../../../src/platform/net/fake.js';
import { LinuxNetProbe } from '../../../src/platform/net/linux.js';
import { waitFor } from '../wait-for.js';

const sh = promisify(execFile);

test('fake: endpoints refuse unless set; silent ones time out on the clock; links and interfaces from tables', async () => {
  const clock = new FakeClock();
  const n = new FakeNet(clock);
  assert.equal(await n.tcp('127.0.0.1', 80, 1000), { state: 'down', reason: 'ECONNREFUSED' });
  n.setTcp('127.0.0.1', 80, { state: 'up', reason: 'connected' });
  assert.equal(await n.tcp('127.0.0.1', 80, 1000), { state: 'up', reason: 'connected' });
  n.setTcp('127.0.0.1', 81, 'silent');
  let r: unknown = null;
  void n.tcp('127.0.0.1', 81, 5000).then((x) => { r = x; });
  clock.advance(4999);
  await Promise.resolve();
  assert.is(r, null);
  clock.advance(1);
  await Promise.resolve();
  assert.equal(r, { state: 'down', reason: 'timed out after 5000 ms' });
  assert.equal(await n.link('eth0'), { state: 'down', reason: 'no interface eth0' });
  n.setLink('eth0', 'up');
  assert.is((await n.link('eth0')).state, 'up');
  n.setLink('eth0', 'down');
  assert.is((await n.link('eth0')).state, 'down');
  n.addrs = [{ ifname: 'eth0', local: '192.0.2.1', prefixlen: 24 }];
  assert.is(await n.interfaceFor('192.0.2.7'), 'eth0');
  assert.is(await n.interfaceFor('198.51.100.7'), null);
  assert.equal(n.calls, ['tcp 127.0.0.1:80', 'tcp 127.0.0.1:80', 'tcp 127.0.0.1:81', 'link eth0', 'link eth0', 'link eth0', 'interfaceFor 192.0.2.7', 'interfaceFor 198.51.100.7']);
});

function listen(server: net.Server, opts: net.ListenOptions = {}): Promise<number> {
  return new Promise((resolve) => server.listen({ host: '127.0.0.1', port: 0, ...opts }, () => resolve((server.address() as net.AddressInfo).port)));
}

test('linux tcp: a listener on 127.0.0.1 is up, and the probe closes its connection', async () => {
  let closed = 0;
  const server = net.createServer((s) => s.on('close', () => { closed++; }).resume());
  const port = await listen(server);
  try {
    assert.equal(await new LinuxNetProbe().tcp('127.0.0.1', port, 2000), { state: 'up', reason: 'connected' });
    await waitFor(() => closed === 1, 5000, 'the server to see the probe close');
  } finally {
    server.close();
  }
});

test('linux tcp: a port nobody listens on is down with ECONNREFUSED', async () => {
  const server = net.createServer();
  const port = await listen(server);
  await new Promise((r) => server.close(r));
  assert.equal(await new LinuxNetProbe().tcp('127.0.0.1', port, 2000), { state: 'down', reason: 'ECONNREFUSED' });
});

test('linux tcp: a listener that cannot accept makes the probe time out', async () => {
  // a child listens with backlog 1 (Node takes 0 for its default, 511) and is stopped: the kernel queues two
  // connections, then drops further SYNs
  const child = spawn(process.execPath, ['-e',
    "require('net').createServer().listen({ host: '127.0.0.1', port: 0, backlog: 1 }, function () { console.log(this.address().port) })"],
  { stdio: ['ignore', 'pipe', 'inherit'] });
  const fillers: net.Socket[] = [];
  try {
    let out = '';
    child.stdout!.on('data', (d) => { out += d; });
    const port = Number(await waitFor(() => /^\d+\n/.test(out) && out.trim(), 10_000, 'the child to listen'));
    process.kill(child.pid!, 'SIGSTOP');
    for (let i = 0; i < 6; i++) fillers.push(net.connect({ host: '127.0.0.1', port }).on('error', () => {}));
    await waitFor(() => fillers.filter((f) => !f.connecting).length >= 2, 5000, 'two fillers to be queued');
    assert.equal(await new LinuxNetProbe().tcp('127.0.0.1', port, 300), { state: 'down', reason: 'timed out after 300 ms' });
  } finally {
    for (const f of fillers) f.destroy();
    child.kill('SIGKILL');
  }
});

test('linux tcp with send: a server that answers is up; one that accepts but never answers (hung) is down', async () => {
  const answering = net.createServer((s) => s.once('data', () => s.end('HTTP/1.0 200 OK\r\n\r\n')));
  // a hung application: the kernel completes the handshake, nothing reads or writes
  const hung = net.createServer(() => {});
  const closing = net.createServer((s) => s.end());
  const listen = (srv: net.Server) => new Promise<number>((r) => srv.listen(0, '127.0.0.1', () => r((srv.address() as net.AddressInfo).port)));
  try {
    const probe = new LinuxNetProbe();
    const req = Buffer.from('GET / HTTP/1.0\r\n\r\n');
    const a = await probe.tcp('127.0.0.1', await listen(answering), 2000, req);
    assert.equal(a.state, 'up');
    assert.match(a.reason, /replied/);
    const h = await probe.tcp('127.0.0.1', await listen(hung), 300, req);
    assert.equal(h, { state: 'down', reason: 'connected, no reply within 300 ms' });
    const c = await probe.tcp('127.0.0.1', await listen(closing), 2000, req);
    assert.equal(c, { state: 'down', reason: 'connected, closed without a reply' });
  } finally {
    for (const s of [answering, hung, closing]) s.close();
    for (const s of [answering, hung, closing]) (s as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
  }
});

test('linux link: lo is up; an unknown interface is down', async () => {
  const p = new LinuxNetProbe();
  assert.equal(await p.link('lo'), { state: 'up', reason: 'carrier 1, operstate unknown' });
  assert.equal(await p.link('tvtnosuch0'), { state: 'down', reason: 'no interface tvtnosuch0' });
  assert.is((await p.link('../../etc')).state, 'down');
});

test('linux link over a made-up sysfs: no carrier, dormant, up', async () => {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'tvt-sysfs-'));
  try {
    const link = async (name: string, operstate: string, carrier: string) => {
      await fs.mkdir(path.join(root, 'class', 'net', name), { recursive: true });
      await fs.writeFile(path.join(root, 'class', 'net', name, 'operstate'), `${operstate}\n`);
      await fs.writeFile(path.join(root, 'class', 'net', name, 'carrier'), `${carrier}\n`);
    };
    await link('eth0', 'up', '1');
    await link('eth1', 'down', '0');
    await link('wlan0', 'dormant', '1');
    const p = new LinuxNetProbe({ sysRoot: root });
    assert.equal(await p.link('eth0'), { state: 'up', reason: 'carrier 1, operstate up' });
    assert.equal(await p.link('eth1'), { state: 'down', reason: 'no carrier (operstate down)' });
    assert.equal(await p.link('wlan0'), { state: 'down', reason: 'carrier 1, operstate dormant' });
  } finally {
    await fs.rm(root, { recursive: true, force: true });
  }
});

test('linux interfaceFor parses `ip -j -4 addr show`, loopback and interfaces that are down included', async () => {
  const calls: string[] = [];
  const exec: RunFn = async (cmd, args) => {
    calls.push([cmd, ...args].join(' '));
    return {
      code: 0, stderr: '', stdout: JSON.stringify([
        { ifname: 'lo', flags: ['LOOPBACK', 'UP'], addr_info: [{ family: 'inet', local: '127.0.0.1', prefixlen: 8 }] },
        { ifname: 'eth0', flags: ['BROADCAST'], addr_info: [{ family: 'inet', local: '192.0.2.2', prefixlen: 24 }] },
      ]),
    };
  };
  const p = new LinuxNetProbe({ exec });
  assert.is(await p.interfaceFor('127.0.0.1'), 'lo');
  assert.is(await p.interfaceFor('192.0.2.2'), 'eth0');
  assert.is(await p.interfaceFor('192.0.2.99'), 'eth0');
  assert.is(await p.interfaceFor('198.51.100.1'), null);
  assert.equal(calls[0], 'ip -j -4 addr show');
});

const here = path.dirname(fileURLToPath(import.meta.url));
const probeModule = path.resolve(here, '../../../src/platform/net/linux.js');

test('linux in a namespace of its own: a veth that is down, without carrier, then up; found while down', async () => {
  const ns = `tvt-ck-net-${process.pid}`;
  await sh('ip', ['netns', 'add', ns]);
  try {
    await sh('ip', ['-n', ns, 'link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1']);
    await sh('ip', ['-n', ns, 'addr', 'add', '10.77.0.1/24', 'dev', 'v0']);
    const script = `
      import { execFileSync } from 'node:child_process';
      const { LinuxNetProbe } = await import(${JSON.stringify(probeModule)});
      const p = new LinuxNetProbe();
      const out = { held: await p.interfaceFor('10.77.0.1'), subnet: await p.interfaceFor('10.77.0.9'), adminDown: await p.link('v0') };
      execFileSync('ip', ['link', 'set', 'v0', 'up']);
      out.noCarrier = await p.link('v0');
      execFileSync('ip', ['link', 'set', 'v1', 'up']);
      for (let i = 0; i < 200 && (await p.link('v0')).state !== 'up'; i++) await new Promise((r) => setTimeout(r, 10));
      out.up = await p.link('v0');
      console.log(JSON.stringify(out));`;
    const { stdout } = await sh('ip', ['netns', 'exec', ns, process.execPath, '--input-type=module', '-e', script]);
    const out = JSON.parse(stdout);
    assert.is(out.held, 'v0');
    assert.is(out.subnet, 'v0');
    assert.equal(out.adminDown, { state: 'down', reason: 'v0 is administratively down (operstate down)' });
    assert.equal(out.noCarrier, { state: 'down', reason: 'no carrier (operstate lowerlayerdown)' });
    assert.equal(out.up, { state: 'up', reason: 'carrier 1, operstate up' });
  } finally {
    await sh('ip', ['netns', 'del', ns]);
  }
});

test.run();
