import fs from 'node:fs/promises';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { StatusView } from '../../src/daemon/views.js';
import { controlRequest } from '../../src/daemon/control.js';
import type { Lab } from '../../src/lab/lab.js';
import {
  controlSocketOf, createMirrorLab, DEMO_MODULE, DEMO_PORT, DEMO_VIP, installLabModule, mirrorUserconfig, moduleLogOf,
  type LabModule, type MirrorLabOptions,
} from '../../src/lab/mirror-lab.js';
import { moduleState, startPair, waitForStates } from '../../src/lab/postgres.js';
import { homePaths } from '../../src/home.js';

// Application and network failures on real daemons (issue: checkers, errd, failover rules). One lab, the demo web
// application behind its VIP; each case installs the demo with the checkers it needs on both nodes, forms
// PRIM/SECOND, injects the fault and watches what the cluster does and what a client on the VIP gets.

const OPTS: MirrorLabOptions = { pulse: '200ms', timeout: '1s' };
const URL = `http://${DEMO_VIP}:${DEMO_PORT}/`;
const NODES = ['node1', 'node2'];
/** the demo application's process: `node …/app.mjs` */
const DEMO_PROC = '<proc name="demo" nameregex="^node$" argregex="app\\.mjs" action="restart" class="prim"/>';

let lab: Lab;

function demoWith(extra: string, serviceAttrs = ''): LabModule {
  return {
    name: DEMO_MODULE,
    userconfig: (o, w) => mirrorUserconfig(o, w, { vip: DEMO_VIP, rfsDir: null, nicestop: '30s', forcestop: '10s', vars: {}, extra, serviceAttrs }),
  };
}

async function view(node: string, module = DEMO_MODULE): Promise<StatusView['modules'][number]> {
  const v = (await controlRequest(controlSocketOf(lab, node), 'status', module, undefined, { timeoutMs: 3000 })) as StatusView;
  return v.modules[0]!;
}

async function stopAll(module = DEMO_MODULE) {
  for (const n of NODES) await lab.cli(n, ['stop', '-m', module], { reject: false });
  await waitForStates(lab, { node1: 'STOP', node2: 'STOP' }, 60_000, module);
}

/** Installs the demo with `extra` on both nodes, applies it, and forms node1 PRIM / node2 SECOND. */
async function form(extra: string, serviceAttrs = '', prepare?: () => Promise<void>) {
  await installLabModule(lab, { ...OPTS, module: demoWith(extra, serviceAttrs) });
  await prepare?.();
  for (const n of NODES) await lab.cli(n, ['config', '-m', DEMO_MODULE]);
  await startPairAgain();
  await lab.waitFor('the client served on the VIP', async () => (await lab.httpGet('client', URL, 1000)).ok, 20_000, 100);
}

/** The first time, `prim` node1 and `second` node2; later the nodes remember their data: start both, then node1 PRIM. */
async function startPairAgain() {
  if ((await view('node1')).generation === null) return startPair(lab, 'node1', 'node2', 60_000, DEMO_MODULE);
  for (const n of NODES) await lab.cli(n, ['start', '-m', DEMO_MODULE]);
  await lab.waitFor('PRIM and SECOND', async () => {
    const s = (await Promise.all(NODES.map((n) => moduleState(lab, n, DEMO_MODULE)))).sort().join();
    return s === 'PRIM,SECOND';
  }, 60_000, 100);
  if ((await moduleState(lab, 'node1', DEMO_MODULE)) !== 'PRIM') {
    await lab.cli('node1', ['swap', '-m', DEMO_MODULE]);
    await waitForStates(lab, { node1: 'PRIM', node2: 'SECOND' }, 60_000, DEMO_MODULE);
  }
}

/** ms until the client gets an answer on the VIP again, and from which node. */
async function served(timeoutMs = 30_000): Promise<{ ms: number; node: string }> {
  const t0 = performance.now();
  let body = '';
  await lab.waitFor('the client served again on the VIP', async () => {
    const r = await lab.httpGet('client', URL, 500);
    body = r.body ?? '';
    return r.ok;
  }, timeoutMs, 20);
  return { ms: Math.round(performance.now() - t0), node: (JSON.parse(body) as { node: string }).node };
}

async function demoPid(node: string): Promise<number> {
  const text = await fs.readFile(path.join(lab.paths(node).run, 'demo-app.pid'), 'utf8');
  return Number(text.trim());
}

const logOf = (n: string) => moduleLogOf(lab, n, DEMO_MODULE);

/** A case on the shared lab: whatever happens, the module ends stopped on both nodes and the network healed. */
function labCase(name: string, fn: () => Promise<void>) {
  test(name, async () => {
    try {
      await fn();
    } catch (e) {
      for (const n of NODES) console.log(`--- ${n} demo.log (tail)\n${logOf(n).split('\n').slice(-40).join('\n')}`);
      throw e;
    } finally {
      await lab.heal();
      await stopAll();
      for (const n of NODES) await lab.cli(n, ['resetloop', '-m', DEMO_MODULE], { reject: false });
    }
  });
}

test.before(async () => {
  lab = await createMirrorLab({ ...OPTS, module: demoWith('') });
});

test.after(async () => {
  await lab?.down({ keepDir: process.env.TANDEM_LAB_KEEP === '1' });
});

labCase('errd: kill -9 of the application on the PRIM → restarted in place, the client served again', async () => {
  await form(`<errd polltimer="200ms">${DEMO_PROC}</errd>`, 'maxloop="10"');
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const pid = await demoPid('node1');
    const t0 = performance.now();
    process.kill(pid, 'SIGKILL');
    await lab.waitFor('a new demo process', async () => (await demoPid('node1').catch(() => pid)) !== pid, 20_000, 20);
    await served();
    times.push(Math.round(performance.now() - t0));
    await waitForStates(lab, { node1: 'PRIM', node2: 'SECOND' }, 30_000, DEMO_MODULE);
  }
  const median = [...times].sort((a, b) => a - b)[2];
  console.log(`  kill -9 → first successful request on the VIP: ${times.join(', ')} ms, median ${median} ms (errd polltimer 200ms)`);
  const v = await view('node1');
  assert.is(v.loops.count, 5);
  assert.match(v.loops.recent[0]!.reason, /proc_demo/);
  assert.match(logOf('node1'), /resource proc\.demo: up → down/);
});

labCase('tcp checker: the application hangs (SIGSTOP) → the checker goes down and the rule restarts it', async () => {
  // a connect alone would succeed (the kernel completes the handshake of a stopped process): send a request
  await form('<check><tcp ident="web" when="prim"><to addr="127.0.0.1" port="8080" interval="500ms" timeout="300ms" send="GET / HTTP/1.0\\r\\n\\r\\n"/></tcp></check>\n' +
    '<failover handle_time="1s"/>');
  await lab.waitFor('tcp.web up', async () => (await view('node1')).resources.find((r) => r.name === 'tcp.web')?.state === 'up', 10_000, 100);
  const pid = await demoPid('node1');
  process.kill(pid, 'SIGSTOP');
  try {
    await lab.waitFor('tcp.web down', async () => (await view('node1')).resources.find((r) => r.name === 'tcp.web')?.state === 'down', 10_000, 50);
    await lab.waitFor('a new demo process', async () => (await demoPid('node1').catch(() => pid)) !== pid, 30_000, 50);
  } finally {
    process.kill(pid, 'SIGCONT');
  }
  const r = await served();
  assert.is(r.node, 'node1');
  assert.match(logOf('node1'), /restart\(\) by rule t_web/);
});

labCase('ip checker: the VIP removed by hand on the PRIM → stopstart(): the SECOND takes over, node1 rejoins as SECOND', async () => {
  await form('');
  await lab.waitFor(`ip.${DEMO_VIP} up`, async () => (await view('node1')).resources.find((r) => r.name === `ip.${DEMO_VIP}`)?.state === 'up', 10_000, 100);
  const dev = lab.spec.lans.find((l) => l.name === 'default')!.ifname;
  const prefix = (await lab.exec('node1', ['ip', '-o', '-4', 'addr', 'show', 'dev', dev])).stdout.match(new RegExp(`${DEMO_VIP.replace(/\./g, '\\.')}/(\\d+)`))![1];
  await lab.exec('node1', ['ip', 'addr', 'del', `${DEMO_VIP}/${prefix}`, 'dev', dev]);
  await waitForStates(lab, { node2: 'PRIM', node1: 'SECOND' }, 60_000, DEMO_MODULE);
  assert.is((await served()).node, 'node2');
  assert.match(logOf('node1'), /stopstart\(\) by rule ip_failure/);
});

labCase('intf checker: the PRIM\'s production link goes down (replication LAN up) → module on the SECOND; link back → old PRIM SECOND', async () => {
  await form('<failover handle_time="1s"/>');
  const t0 = performance.now();
  await lab.unplug('default', 'node1');
  try {
    await waitForStates(lab, { node1: 'WAIT', node2: 'ALONE' }, 30_000, DEMO_MODULE);
    const r = await served();
    console.log(`  production link of the PRIM down → client served by ${r.node} after ${Math.round(performance.now() - t0)} ms`);
    assert.is(r.node, 'node2');
    const v1 = await view('node1');
    assert.is(v1.waitReason, 'checker');
    assert.ok(v1.peer.reachable, 'node1 still sees node2 over the replication LAN');
    assert.not.ok((await view('node2')).alarms.some((a) => a.code === 'split-brain'));
  } finally {
    await lab.plug('default', 'node1');
  }
  await waitForStates(lab, { node1: 'SECOND', node2: 'PRIM' }, 60_000, DEMO_MODULE);
});

labCase('custom checker: the script sets its resource down → its rule acts (wait); up again → the module runs again', async () => {
  const flag = '/tmp/tandem-lab-custom-flag';
  await fs.writeFile(flag, 'up');
  // the checker program reads the flag file every 200 ms and reports it with `tandem set`
  const script = `#!/bin/sh\nwhile true; do v=$(cat ${flag} 2>/dev/null || echo down); \"$TANDEM_BIN\" set -m demo -r custom.flag -v \"$v\" >/dev/null 2>&1; sleep 0.2; done\n`;
  const extra = '<check><custom ident="flag" exec="flagcheck" when="pre" action="wait"/></check>\n<failover handle_time="1s"/>';
  await form(extra, '', async () => {
    for (const n of NODES) {
      const file = path.join(homePaths.moduleDir({ root: lab.paths(n).home, runDir: lab.paths(n).run }, DEMO_MODULE), 'bin', 'flagcheck');
      await fs.writeFile(file, script, { mode: 0o755 });
    }
  });
  try {
    await fs.writeFile(flag, 'down');
    await waitForStates(lab, { node1: 'WAIT', node2: 'WAIT' }, 30_000, DEMO_MODULE);
    assert.is((await view('node1')).waitReason, 'checker');
    assert.not.ok((await lab.httpGet('client', URL, 500)).ok, 'nothing serves while the custom resource is down');
    await fs.writeFile(flag, 'up');
    await lab.waitFor('the module running again', async () => {
      const s = await Promise.all(NODES.map((n) => moduleState(lab, n, DEMO_MODULE)));
      return s.includes('PRIM') || s.includes('ALONE');
    }, 60_000, 100);
    await served();
  } finally {
    await fs.rm(flag, { force: true });
  }
});

labCase('module checker: module follower waits while demo does not run on its node, and starts where demo does', async () => {
  const follower: LabModule = {
    name: 'follower',
    userconfig: (o) => `<safe><service mode="mirror">
  <heart pulse="${o.pulse}" timeout="${o.timeout}"/>
  <check><module name="demo"/></check>
  <failover handle_time="500ms"/>
</service></safe>`,
    dir: path.join(lab.dir, 'follower-src'),
  };
  await fs.mkdir(path.join(lab.dir, 'follower-src', 'bin'), { recursive: true });
  await installLabModule(lab, { ...OPTS, module: follower });
  for (const n of NODES) await lab.cli(n, ['config', '-m', 'follower']);
  try {
    // first start of follower on node1 while demo runs there (its data is born on node1)
    await form('');
    await lab.cli('node1', ['start', '-m', 'follower']);
    await waitForStates(lab, { node1: 'WAIT' }, 30_000, 'follower');
    await lab.cli('node1', ['prim', '-m', 'follower']);
    await waitForStates(lab, { node1: 'ALONE' }, 30_000, 'follower');
    await lab.cli('node1', ['stop', '-m', 'follower']);
    await waitForStates(lab, { node1: 'STOP' }, 30_000, 'follower');
    await stopAll();
    // demo runs nowhere: follower waits on both nodes, saying why
    for (const n of NODES) await lab.cli(n, ['start', '-m', 'follower']);
    await waitForStates(lab, { node1: 'WAIT', node2: 'WAIT' }, 30_000, 'follower');
    for (const n of NODES) {
      await lab.waitFor(`${n}: follower waiting on module.demo`, async () => {
        const v = await view(n, 'follower');
        return v.waitReason === 'checker' && v.resources.some((r) => r.name === 'module.demo' && r.state === 'down');
      }, 10_000, 100);
    }
    // demo comes up, PRIM on node1: follower runs on node1, and still waits on node2 (demo is SECOND there)
    await startPairAgain();
    await waitForStates(lab, { node1: 'ALONE' }, 30_000, 'follower');
    const v2 = await view('node2', 'follower');
    assert.is(v2.state, 'WAIT');
    assert.is(v2.waitReason, 'checker');
  } finally {
    for (const n of NODES) await lab.cli(n, ['stop', '-m', 'follower'], { reject: false });
    await waitForStates(lab, { node1: 'STOP', node2: 'STOP' }, 30_000, 'follower');
  }
});

labCase('ping checker: a target that does not answer keeps the module in WAIT [checker], rule p_gw', async () => {
  await installLabModule(lab, { ...OPTS, module: demoWith('<check><ping ident="gw"><to addr="198.51.100.99" interval="500ms" timeout="300ms"/></ping></check>\n<failover handle_time="500ms"/>') });
  for (const n of NODES) await lab.cli(n, ['config', '-m', DEMO_MODULE]);
  for (const n of NODES) await lab.cli(n, ['start', '-m', DEMO_MODULE]);
  for (const n of NODES) {
    await lab.waitFor(`${n} waiting on ping.gw`, async () => {
      const v = await view(n);
      return v.state === 'WAIT' && v.waitReason === 'checker' && v.rule?.label === 'p_gw' && v.rule.because.includes('ping.gw=down');
    }, 20_000, 100);
  }
  const st = await lab.cli('node1', ['status', '-m', DEMO_MODULE]);
  assert.match(st.stdout, /WAIT \[checker\]/);
  assert.match(st.stdout, /rule p_gw: wait\(\) because ping\.gw=down/);
  const get = await lab.cli('node1', ['get', '-m', DEMO_MODULE, '-r', 'ping.gw'], { reject: false });
  assert.is(get.code, 1, 'tandem get exits 1 for a resource that is down');
  assert.not.ok((await lab.httpGet('client', URL, 500)).ok, 'nothing serves');
});

labCase('a user rule changes what happens: proc_demo replaced by stopstart(), so a dead application moves to node2', async () => {
  await form(`<errd polltimer="200ms">${DEMO_PROC}</errd>\n<failover><![CDATA[
    proc_demo: if (proc.demo == down) then stopstart();
  ]]></failover>`);
  process.kill(await demoPid('node1'), 'SIGKILL');
  await waitForStates(lab, { node2: 'PRIM', node1: 'SECOND' }, 60_000, DEMO_MODULE);
  assert.is((await served()).node, 'node2');
  assert.match(logOf('node1'), /stopstart\(\) by rule proc_demo/);
});

labCase('bad input: unknown checker, a rule that does not parse, a <proc> with neither name nor regex, a custom checker not executable', async () => {
  const cases: [string, RegExp][] = [
    // the extra XML starts on line 7 of the lab's userconfig.xml
    ['<check>\n<http ident="w"/>\n</check>', /line 8: check has element <http>/],
    ['<failover><![CDATA[\n  broken: if (tcp.w == down then stop();\n]]></failover>', /line 8, column 29: expected "\)"/],
    ['<errd>\n<proc atleast="1"/>\n</errd>', /line 8: <proc> has neither name nor nameregex/],
    ['<check>\n<custom ident="x" exec="notexec"/>\n</check>', /line 8: <custom exec="notexec">: .* is not executable/],
  ];
  for (const [extra, want] of cases) {
    await installLabModule(lab, { ...OPTS, module: demoWith(extra) });
    await fs.writeFile(path.join(lab.paths('node1').home, 'modules', DEMO_MODULE, 'bin', 'notexec'), '#!/bin/sh\n', { mode: 0o644 });
    const r = await lab.cli('node1', ['config', '-m', DEMO_MODULE], { reject: false });
    assert.is(r.code, 10, `exit 10 for ${extra}`);
    assert.match(r.stderr, want);
    assert.is(await moduleState(lab, 'node1', DEMO_MODULE), 'STOP', 'nothing started');
  }
  await installLabModule(lab, { ...OPTS, module: demoWith('') });
  for (const n of NODES) await lab.cli(n, ['config', '-m', DEMO_MODULE]);
});

test.run();
