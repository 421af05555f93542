import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { ModuleView } from '../../../src/daemon/views.js';
import { formatModule } from '../../../src/services/status.js';

const strip = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, ''); // eslint-disable-line no-control-regex

function view(over: Partial<ModuleView>): ModuleView {
  return {
    module: 'postgres', node: 'node2', state: 'SECOND', ready: false, waitReason: null, generation: '2@node1', consistent: false,
    peer: { node: 'node1', reachable: true, state: 'ALONE', ready: true, lans: [{ name: 'default', up: true, lastHeardMsAgo: 120 }] },
    vips: [{ addr: '198.51.100.10', holder: 'node1' }], alarms: [], reintegration: null, replication: null,
    resources: [], rule: null, loops: { count: 0, max: 3, intervalMs: 86_400_000, exhausted: false, recent: [] },
    switches: { errd: true, checkers: true, failover: true }, ...over,
  };
}

test('a reintegrating SECOND shows progress (bytes, rate, ETA), its replication mode and quarantines', () => {
  const lines = formatModule(view({
    reintegration: { bytesDone: 50 << 20, bytesTotal: 150 << 20, rateBytesPerS: 10 << 20 },
    replication: {
      role: 'secondary', mode: 'reintegrating', dirs: ['/srv/pg/data'],
      quarantines: [{ dir: '/srv/pg/data', path: '/var/lib/tandem/quarantine/postgres/0/20261122T061436Z-2@node2', files: 3 }],
      lastReintegration: null,
    },
  })).map(strip);
  assert.ok(lines.some((l) => l.includes(`reintegration: ${50 << 20}/${150 << 20} bytes, 10.0 MiB/s, ETA 10 s`)), lines.join('\n'));
  assert.ok(lines.some((l) => l.includes('replication: /srv/pg/data secondary, reintegrating')));
  assert.ok(lines.some((l) => l.includes('quarantine (split brain) of /srv/pg/data: 3 file(s) kept in /var/lib/tandem/quarantine/postgres/0/')));
});

test('a primary shows its mode and the last reintegration it served', () => {
  const lines = formatModule(view({
    node: 'node1', state: 'PRIM', ready: true,
    replication: {
      role: 'primary', mode: 'live', dirs: ['/srv/pg/data'], quarantines: [],
      lastReintegration: { mode: 'changes', bytes: 3735552, ms: 1149, passes: 2, freezeMs: 14, at: '2026-11-22T06:09:58.737Z' },
    },
  })).map(strip);
  assert.ok(lines.some((l) => l.includes('replication: /srv/pg/data primary, live')));
  assert.ok(lines.some((l) => l.includes('last reintegration: 2026-11-22T06:09:58.737Z by recorded changes, 3735552 bytes, 2 passes, 1.1 s, writes held 14 ms')));
});

test('a module without <rfs> shows no replication line', () => {
  assert.not.ok(formatModule(view({})).some((l) => l.includes('replication:')));
});

test('resources, the rule that decides, the restart loops and switched-off monitoring are shown', () => {
  const lines = formatModule(view({
    state: 'WAIT', ready: true, waitReason: 'checker',
    resources: [
      { name: 'heartbeat.default', state: 'up', since: null, detail: '', active: true, by: 'derived', when: null },
      { name: 'ping.router', state: 'down', since: '2026-12-02T08:00:00.000Z', detail: '198.51.100.254: no answer within 2000 ms', active: true, by: 'checker', when: 'pre' },
      { name: 'proc.web', state: 'init', since: '2026-12-02T07:59:00.000Z', detail: '', active: false, by: 'errd', when: 'prim' },
    ],
    rule: { label: 'p_router', action: 'wait', because: ['ping.router=down'], waiting: true },
    loops: { count: 2, max: 3, intervalMs: 86_400_000, exhausted: false, recent: [{ at: '2026-12-02T07:00:00.000Z', reason: 'restart() by rule proc_web (proc.web=down)' }, { at: '2026-12-02T07:30:00.000Z', reason: 'restart() by rule proc_web (proc.web=down)' }] },
    switches: { errd: false, checkers: true, failover: true },
  })).map(strip);
  const text = lines.join('\n');
  assert.match(text, /resources: .*ping\.router down \(198\.51\.100\.254: no answer within 2000 ms\)/);
  assert.match(text, /proc\.web init \(not watched now\)/);
  assert.match(text, /rule p_router: wait\(\) because ping\.router=down \(in effect\)/);
  assert.match(text, /automatic restarts: 2 of 3 within 1d, last 2026-12-02T07:30:00\.000Z: restart\(\) by rule proc_web/);
  assert.match(text, /process monitoring \(errd\) is off/);
});

test.run();
