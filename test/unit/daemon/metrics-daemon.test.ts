/**
 * The metrics endpoint of real Daemons on the fakes (FakeNetwork heartbeats, FakeLan VIP, FakeScriptRunners, the real
 * clock): TANDEM_METRICS binds it, GET /metrics follows the engine, a swap counts one takeover on the node that took
 * the module over, an address already in use leaves the daemon running without metrics and says why in its log.
 */
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { controlRequest } from '../../../src/daemon/control.js';
import { Daemon, type Platform } from '../../../src/daemon/daemon.js';
import { generateKey, writeKeyFile } from '../../../src/daemon/key.js';
import { noMonitor } from '../../../src/daemon/monitor.js';
import type { StatusView } from '../../../src/daemon/views.js';
import { homePaths, resolveHome, type Home } from '../../../src/home.js';
import { realClock } from '../../../src/platform/clock/real.js';
import { FakeFarmFilter } from '../../../src/platform/farm/fake.js';
import { FakeScriptRunner } from '../../../src/platform/scripts/fake.js';
import { FakeNetwork } from '../../../src/platform/transport/fake.js';
import { FakeLan, FakeVip } from '../../../src/platform/vip/fake.js';
import { FakeWitness } from '../../../src/platform/witness/fake.js';
import { NoFilesReplicator } from '../../../src/replication/none.js';
import { UserError } from '../../../src/errors.js';
import { waitFor } from '../wait-for.js';

const SOON = 5000;
const NODES = ['node1', 'node2'] as const;
type N = (typeof NODES)[number];
const ADDR: Record<N, string> = { node1: '198.51.100.1', node2: '198.51.100.2' };

const CLUSTER_XML = `<?xml version="1.0"?>
<cluster><lans><lan name="default">
  <node name="node1" addr="${ADDR.node1}"/><node name="node2" addr="${ADDR.node2}"/>
</lan></lans></cluster>
`;
const USERCONFIG_XML = `<?xml version="1.0"?>
<safe><service mode="mirror"><heart pulse="100ms" timeout="600ms"><heartbeat name="default"/></heart></service></safe>
`;

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tdmet-'));
const net0 = new FakeNetwork();
const lan = new FakeLan();
const homes = {} as Record<N, Home>;
const platforms = {} as Record<N, Platform>;
const daemons: Partial<Record<N, Daemon>> = {};

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

function scrape(port: number): Promise<Map<string, number>> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: '/metrics', agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => {
        if (res.statusCode !== 200) return reject(new Error(`HTTP ${res.statusCode}: ${body}`));
        const m = new Map<string, number>();
        for (const line of body.split('\n')) {
          if (!line || line.startsWith('#')) continue;
          const i = line.lastIndexOf(' ');
          m.set(line.slice(0, i), Number(line.slice(i + 1)));
        }
        resolve(m);
      });
    }).on('error', reject);
  });
}

const admin = (n: N, verb: string) =>
  controlRequest(homePaths.controlSocket(homes[n]), 'admin', 'demo', { verb, fullsync: false }, { home: homes[n].root }) as Promise<{ ok: boolean }>;
const mod = async (n: N) =>
  ((await controlRequest(homePaths.controlSocket(homes[n]), 'status', 'demo', undefined, { home: homes[n].root })) as StatusView).modules[0]!;
const settled = (n: N, state: string) => waitFor(async () => { const m = await mod(n); return m.state === state && m.ready && m.peer.reachable ? m : null; }, SOON, `${n} settled ${state}`);
const envOf = (n: N, metrics?: string) => ({ TANDEM_HOME: path.join(dir, n), TANDEM_RUN_DIR: path.join(dir, `${n}-run`), TANDEM_NODE: n, ...(metrics ? { TANDEM_METRICS: metrics } : {}) });

test.before(async () => {
  const key = generateKey();
  for (const n of NODES) {
    const home = resolveHome(envOf(n));
    homes[n] = home;
    fs.mkdirSync(homePaths.moduleDir(home, 'demo'), { recursive: true });
    fs.writeFileSync(homePaths.clusterXml(home), CLUSTER_XML);
    fs.writeFileSync(homePaths.userconfig(home, 'demo'), USERCONFIG_XML);
    await writeKeyFile(homePaths.clusterKey(home), key);
    const scripts = new FakeScriptRunner();
    platforms[n] = {
      clock: realClock,
      transport: async (cluster, self, _key, boot) => net0.transport(self, cluster.lans.map((l) => l.name), { boot }),
      vip: () => new FakeVip(lan, n),
      scripts: () => scripts,
      witness: () => new FakeWitness(),
      replicator: () => new NoFilesReplicator(),
      monitor: async () => noMonitor(),
      localAddrs: () => [ADDR[n]],
      farmFilter: () => new FakeFarmFilter(n),
    };
  }
});

test.after(async () => {
  for (const n of NODES) await daemons[n]?.shutdown();
  fs.rmSync(dir, { recursive: true, force: true });
});

test('a wrong TANDEM_METRICS: the daemon does not start (UserError), nothing is left bound', async () => {
  let err: unknown = null;
  await Daemon.start(homes.node1, envOf('node1', '198.51.100.1:9464'), platforms.node1, false).then((d) => d.shutdown(), (e) => (err = e));
  assert.instance(err, UserError);
  assert.match((err as Error).message, /198\.51\.100\.1 is not a loopback address/);
  assert.not.ok(fs.existsSync(homePaths.controlSocket(homes.node1)), 'no control socket left behind');
});

test('GET /metrics follows the engine; a swap counts one takeover on the node that took over', async () => {
  const ports = { node1: await freePort(), node2: await freePort() };
  for (const n of NODES) daemons[n] = await Daemon.start(homes[n], envOf(n, `127.0.0.1:${ports[n]}`), platforms[n], false);
  assert.equal(daemons.node1!.metricsAddress, { host: '127.0.0.1', port: ports.node1 });
  const s0 = await scrape(ports.node1);
  assert.is(s0.get('tandem_module_state{module="demo",node="node1",state="STOP"}'), 1);

  for (const n of NODES) assert.ok((await admin(n, 'start')).ok);
  for (const n of NODES) await settled(n, 'WAIT');
  assert.ok((await admin('node1', 'prim')).ok);
  await settled('node1', 'ALONE');
  assert.ok((await admin('node2', 'second')).ok);
  await settled('node1', 'PRIM');
  await settled('node2', 'SECOND');
  const s1 = await waitFor(async () => {
    const s = await scrape(ports.node1);
    return s.get('tandem_module_peer_state{module="demo",node="node1",peer="node2",state="SECOND"}') === 1 ? s : null;
  }, SOON, 'node1 scraped with its peer SECOND');
  assert.is(s1.get('tandem_module_state{module="demo",node="node1",state="PRIM"}'), 1);
  assert.is(s1.get('tandem_module_takeovers_total{module="demo",node="node1"}'), 0);
  assert.is((await scrape(ports.node2)).get('tandem_module_takeovers_total{module="demo",node="node2"}'), 0);

  assert.ok((await admin('node2', 'swap')).ok);
  await settled('node2', 'PRIM');
  await settled('node1', 'SECOND');
  const s2 = await scrape(ports.node2);
  assert.is(s2.get('tandem_module_state{module="demo",node="node2",state="PRIM"}'), 1);
  assert.is(s2.get('tandem_module_takeovers_total{module="demo",node="node2"}'), 1, 'SECOND → PRIM on node2');
  assert.is((await scrape(ports.node1)).get('tandem_module_takeovers_total{module="demo",node="node1"}'), 0, 'node1 handed over, took nothing');
  assert.is(s2.get('tandem_module_vip_held{module="demo",node="node2",addr="198.51.100.10"}'), undefined, 'no VIP configured');
});

test('an address in use: the daemon runs without metrics and its log says why and what to do', async () => {
  await daemons.node2!.shutdown();
  daemons.node2 = undefined;
  const busy = net.createServer();
  await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
  const port = (busy.address() as net.AddressInfo).port;
  try {
    daemons.node2 = await Daemon.start(homes.node2, envOf('node2', `127.0.0.1:${port}`), platforms.node2, false);
    assert.is(daemons.node2.metricsAddress, null);
    await settled('node2', 'PRIM');
    const log = fs.readFileSync(homePaths.daemonLog(homes.node2), 'utf8');
    assert.match(log, new RegExp(`the metrics endpoint cannot listen on 127\\.0\\.0\\.1:${port}: another process uses that port\\. The daemon runs without metrics \\(choose another port in TANDEM_METRICS`));
  } finally {
    await new Promise<void>((r) => busy.close(() => r()));
  }
});

test.run();
