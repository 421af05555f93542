import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SharedLinks } from '../../../src/checkers/shared-links.js';
import type { NetProbe, NetResult } from '../../../src/platform/net/types.js';

/** A probe whose link reads resolve when the test says, counting them per interface. */
function probe() {
  const pending: { ifname: string; resolve: (r: NetResult) => void }[] = [];
  const net: NetProbe = {
    link: (ifname) => new Promise((resolve) => pending.push({ ifname, resolve })),
    tcp: async (addr, port) => ({ state: 'up', reason: `connected to ${addr}:${port}` }),
    interfaceFor: async (addr) => (addr === '198.51.100.10' ? 'eth0' : null),
  };
  return { pending, net };
}

test('intf checks of one interface within maxAgeMs share one read; another interface reads on its own', async () => {
  let now = 0;
  const p = probe();
  const s = new SharedLinks(p.net, { mono: () => now }, 100);
  const a = s.link('eth0');
  const b = s.link('eth0');
  const c = s.link('eth1');
  assert.equal(p.pending.map((x) => x.ifname), ['eth0', 'eth1']);
  p.pending[0]!.resolve({ state: 'up', reason: 'carrier 1, operstate up' });
  p.pending[1]!.resolve({ state: 'down', reason: 'no carrier (operstate down)' });
  assert.equal([(await a).state, (await b).state, (await c).state], ['up', 'up', 'down']);
  now = 100;
  assert.is((await s.link('eth0')).state, 'up', 'still shared at maxAgeMs');
  now = 101;
  const d = s.link('eth0');
  assert.is(p.pending.length, 3, 'older than maxAgeMs: read again');
  p.pending[2]!.resolve({ state: 'down', reason: 'no carrier (operstate down)' });
  assert.is((await d).state, 'down', 'the carrier lost since is seen by the new read');
  assert.equal([s.reads('eth0'), s.reads('eth1'), s.reads('eth9')], [2, 1, 0]);
});

test('tcp and interfaceFor are not shared: they reach the probe', async () => {
  const p = probe();
  const s = new SharedLinks(p.net, { mono: () => 0 }, 100);
  assert.equal(await s.tcp('198.51.100.1', 80, 1000), { state: 'up', reason: 'connected to 198.51.100.1:80' });
  assert.is(await s.interfaceFor('198.51.100.10'), 'eth0');
  assert.is(await s.interfaceFor('192.0.2.1'), null);
});

test.run();
