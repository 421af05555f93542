import fs from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { UserError } from '../../src/errors.js';
import { Lab, listLabs, type LabSpec } from '../../src/lab/lab.js';
import { pollUntilHttpOk, waitFor, WaitTimeoutError } from '../../src/lab/measure.js';
import { findHolders, isAlive, listNetns } from '../../src/lab/netns.js';
import { defaultLabDir, resolveSpec } from '../../src/lab/spec.js';
import { teardownLab } from '../../src/lab/teardown.js';
import { indexFile } from '../../src/lab/state.js';

// A stand-in daemon: answers on :8080 with its node name and the files it sees in /srv/demo.
const FAKE_DAEMON = [
  process.execPath,
  '-e',
  `const http = require('node:http'), fs = require('node:fs');
   http.createServer((req, res) => {
     let files = [];
     try { files = fs.readdirSync('/srv/demo').sort(); } catch {}
     res.end(JSON.stringify({ node: process.env.TANDEM_NODE, files }));
   }).listen(8080, '0.0.0.0');`,
];

const N1 = 'http://198.51.100.1:8080/';
const N2 = 'http://198.51.100.2:8080/';

function labNamespaces(prefix: string): string[] {
  return listNetns().filter((n) => n.startsWith(`${prefix}-`));
}

/** Creates a lab, runs `fn`, and always tears it down, checking that nothing is left. */
async function withLab(spec: Partial<LabSpec>, fn: (lab: Lab) => Promise<void>): Promise<void> {
  const lab = await Lab.create({ daemonCommand: FAKE_DAEMON, ...spec });
  lab.autoTeardownOnExit();
  try {
    await fn(lab);
  } finally {
    const report = await lab.down();
    assert.equal(report.problems, [], 'teardown problems');
    assert.equal(labNamespaces(lab.prefix), [], 'namespaces left');
    assert.is(findHolders(`${lab.prefix}-`).length, 0, 'holders left');
    assert.not.ok(fs.existsSync(lab.dir), 'lab dir left');
  }
}

async function startBoth(lab: Lab): Promise<void> {
  lab.spawnDaemon('node1');
  lab.spawnDaemon('node2');
  await lab.waitFor('node1 :8080', async () => (await lab.httpGet('client', N1, 1000)).ok, 10_000);
  await lab.waitFor('node2 :8080', async () => (await lab.httpGet('client', N2, 1000)).ok, 10_000);
}

test('create: namespaces, addresses, daemons reachable from the client, attach from a second instance', async () => {
  await withLab({ cliCommand: ['sh', '-c', 'echo cli $TANDEM_NODE "$@"', 'tandem'] }, async (lab) => {
    assert.match(lab.prefix, /^tl[0-9a-f]{4}$/);
    assert.equal(labNamespaces(lab.prefix).sort(), ['br', 'client', 'node1', 'node2', 'witness'].map((h) => `${lab.prefix}-${h}`).sort());
    assert.ok(fs.existsSync(indexFile(lab.prefix)));
    assert.ok(listLabs().some((l) => l.prefix === lab.prefix && l.recorded));

    const addrs = (await lab.exec('node1', ['ip', '-br', 'addr'])).stdout;
    assert.match(addrs, /eth0\S*\s+UP\s+198\.51\.100\.1\/24/);
    assert.match(addrs, /eth1\S*\s+UP\s+203\.0\.113\.1\/24/);
    const clientLinks = (await lab.exec('client', ['ip', '-br', 'link'])).stdout;
    assert.not.match(clientLinks, /eth1/, 'client is not on the replication LAN');
    const env = (await lab.exec('node2', ['sh', '-c', 'echo $TANDEM_NODE $TANDEM_HOME $TANDEM_RUN_DIR'])).stdout.trim();
    assert.is(env, `node2 ${lab.dir}/node2/home ${lab.dir}/node2/run`);
    assert.is(lab.addr('witness'), '198.51.100.254');
    await lab.exec('client', ['ping', '-c1', '-W2', lab.addr('witness')]);
    assert.is((await lab.cli('node1', ['status', '--json'])).stdout, 'cli node1 status --json\n');

    await startBoth(lab);
    const r = await lab.httpGet('client', N1, 2000);
    assert.ok(r.ok);
    assert.is(r.status, 200);
    assert.is(JSON.parse(r.body!).node, 'node1');

    const other = await Lab.attach(lab.prefix);
    assert.equal(other.spec, lab.spec);
    assert.is(other.dir, lab.dir);
    assert.ok(other.daemonPid('node1'));
    assert.is(JSON.parse((await other.httpGet('client', N2, 2000)).body!).node, 'node2');
    await other.cut('default', 'node2');
    assert.not.ok((await lab.httpGet('client', N2, 500)).ok, 'cut made by the attached instance is seen');
    await lab.heal();
  });
});

test('each node has its own private /srv/demo, invisible to the machine', async () => {
  await withLab({}, async (lab) => {
    const marker = `only-node1-${lab.prefix}`;
    await lab.exec('node1', ['sh', '-c', `echo hello > /srv/demo/${marker}`]);
    assert.is((await lab.exec('node1', ['cat', `/srv/demo/${marker}`])).stdout, 'hello\n');
    const inNode2 = await lab.exec('node2', ['test', '-e', `/srv/demo/${marker}`], { reject: false });
    assert.is.not(inNode2.code, 0, 'node2 must not see node1 files');
    assert.not.ok(fs.existsSync(`/srv/demo/${marker}`), 'the real /srv/demo must not see it');
    assert.ok(fs.existsSync(path.join(lab.paths('node1').root, 'srv/demo', marker)), 'it lives under the node root');
    await startBoth(lab);
    assert.equal(JSON.parse((await lab.httpGet('client', N1, 2000)).body!).files, [marker]);
    assert.equal(JSON.parse((await lab.httpGet('client', N2, 2000)).body!).files, []);
  });
});

test('poweroff kills the host but keeps disk and holder; boot restores base network and restarts the daemon', async () => {
  await withLab({}, async (lab) => {
    await startBoth(lab);
    await lab.exec('node1', ['sh', '-c', 'echo kept > /srv/demo/before-poweroff && echo gone > "$TANDEM_RUN_DIR/marker"']);
    await lab.exec('node1', ['ip', 'addr', 'add', '198.51.100.10/24', 'dev', 'eth0']);
    await lab.exec('node1', ['mkdir', '-p', '/srv/demo/mnt']);
    await lab.exec('node1', ['mount', '-t', 'tmpfs', 'tmpfs', '/srv/demo/mnt']);
    const holder = lab.holderPid('node1');
    const daemon = lab.daemonPid('node1')!;
    assert.ok(daemon);

    await lab.poweroff('node1');
    assert.ok(lab.isPoweredOff('node1'));
    assert.not.ok(isAlive(daemon), 'daemon killed');
    assert.ok(isAlive(holder), 'holder alive');
    assert.not.ok((await lab.httpGet('client', N1, 500)).ok, 'node1 unreachable');
    assert.not.ok((await lab.httpGet('client', 'http://198.51.100.10:8080/', 500)).ok, 'VIP unreachable');
    assert.ok((await lab.httpGet('client', N2, 2000)).ok, 'node2 unaffected');
    try {
      await lab.exec('node1', ['true']);
      assert.unreachable('exec on a powered-off host must be refused');
    } catch (e) {
      assert.instance(e, UserError);
    }

    await lab.boot('node1');
    assert.not.ok(lab.isPoweredOff('node1'));
    await lab.waitFor('node1 back', async () => (await lab.httpGet('client', N1, 1000)).ok, 10_000);
    assert.is(lab.holderPid('node1'), holder);
    assert.is((await lab.exec('node1', ['cat', '/srv/demo/before-poweroff'])).stdout, 'kept\n');
    assert.not.ok(fs.existsSync(path.join(lab.paths('node1').run, 'marker')), 'run dir wiped');
    const addrs = (await lab.exec('node1', ['ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0'])).stdout;
    assert.match(addrs, /198\.51\.100\.1\/24/);
    assert.not.match(addrs, /198\.51\.100\.10\//, 'VIP gone after reboot');
    const mnt = await lab.exec('node1', ['mountpoint', '-q', '/srv/demo/mnt'], { reject: false });
    assert.is.not(mnt.code, 0, 'runtime mount gone after reboot');
    const lo = (await lab.exec('node1', ['ip', '-4', '-o', 'addr', 'show', 'dev', 'lo'])).stdout;
    assert.match(lo, /127\.0\.0\.1\/8/);
    assert.is.not(lab.daemonPid('node1'), daemon);
  });
});

test('cut isolates one node on one LAN (it keeps its carrier), unplug drops its carrier; heal undoes both', async () => {
  await withLab({}, async (lab) => {
    await startBoth(lab);
    const ifname = lab.spec.lans.find((l) => l.name === 'default')!.ifname;
    const carrier = async (node: string) => (await lab.exec(node, ['cat', `/sys/class/net/${ifname}/carrier`], { reject: false })).stdout.trim();
    await lab.cut('default', 'node2');
    assert.is(await carrier('node2'), '1', 'a cut keeps the carrier');
    assert.not.ok((await lab.httpGet('client', N2, 500)).ok, 'client cannot reach node2');
    assert.ok((await lab.httpGet('client', N1, 2000)).ok, 'client still reaches node1');
    await lab.exec('node1', ['ping', '-c1', '-W2', '203.0.113.2']);
    await lab.exec('node2', ['ping', '-c1', '-W2', '203.0.113.1']);
    const lost = await lab.exec('node2', ['ping', '-c1', '-W1', '198.51.100.254'], { reject: false });
    assert.is.not(lost.code, 0, 'node2 cannot reach the witness');

    // a cut survives a reboot of the node; heal does not power on a powered-off host
    await lab.poweroff('node2');
    await lab.boot('node2');
    assert.not.ok((await lab.httpGet('client', N2, 500)).ok, 'still cut after reboot');
    await lab.poweroff('node1');
    await lab.heal();
    assert.ok(lab.isPoweredOff('node1'));
    assert.not.ok((await lab.httpGet('client', N1, 500)).ok, 'powered-off node stays unreachable after heal');
    await pollUntilHttpOk(lab, 'client', N2, { timeoutMs: 10_000 }); // throws if heal did not let node2 through
    await lab.boot('node1');
    await pollUntilHttpOk(lab, 'client', N1, { timeoutMs: 10_000 });

    await lab.cut('replication');
    const repl = await lab.exec('node1', ['ping', '-c1', '-W1', '203.0.113.2'], { reject: false });
    assert.is.not(repl.code, 0, 'replication LAN cut for all nodes');
    await lab.uncut('replication');
    await lab.exec('node1', ['ping', '-c1', '-W2', '203.0.113.2']);

    await lab.unplug('default', 'node1');
    await lab.waitFor('node1 without carrier', async () => (await carrier('node1')) === '0', 5000, 50);
    assert.not.ok((await lab.httpGet('client', N1, 500)).ok, 'unplugged: client cannot reach node1');
    await lab.exec('node1', ['ping', '-c1', '-W2', '203.0.113.2']); // its other LAN still works
    await lab.plug('default', 'node1');
    await lab.waitFor('node1 carrier back', async () => (await carrier('node1')) === '1', 5000, 50);
    await pollUntilHttpOk(lab, 'client', N1, { timeoutMs: 10_000 });
  });
});

test('create failing half-way: torn down by default, or left for attach(prefix).down()', async () => {
  // The mount point cannot be made (its parent is a file): create fails after namespaces and holders exist.
  const first = resolveSpec().prefix;
  const second = resolveSpec().prefix;
  const blocker = `/tmp/tandem-lab-${first}-not-a-dir`;
  fs.writeFileSync(blocker, '');
  const bad: Partial<LabSpec> = { daemonCommand: FAKE_DAEMON, privateDirs: [`${blocker}/demo`] };
  try {
    try {
      await Lab.create({ ...bad, prefix: first });
      assert.unreachable('create must fail');
    } catch (e) {
      assert.instance(e, UserError);
      assert.match((e as Error).message, /cannot create mount point/);
    }
    assert.equal(labNamespaces(first), [], 'torn down after the failure');
    assert.is(findHolders(`${first}-`).length, 0);
    assert.not.ok(fs.existsSync(indexFile(first)));

    try {
      await Lab.create({ ...bad, prefix: second }, { teardownOnFailure: false });
      assert.unreachable('create must fail');
    } catch (e) {
      assert.instance(e, UserError);
    }
    assert.is(labNamespaces(second).length, 5, 'partial lab left in place');
    assert.is(findHolders(`${second}-`).length, 4, 'with its holders');
    const lab = await Lab.attach(second);
    const report = await lab.down();
    assert.equal(report.problems, []);
    assert.equal(labNamespaces(second), []);
    assert.is(findHolders(`${second}-`).length, 0);
    assert.not.ok(fs.existsSync(indexFile(second)));
    assert.not.ok(fs.existsSync(lab.dir));
    assert.equal((await lab.down()).problems, [], 'idempotent');
    try {
      await Lab.attach(second);
      assert.unreachable('attach to a torn-down lab must fail');
    } catch (e) {
      assert.instance(e, UserError);
    }
  } finally {
    fs.rmSync(blocker, { force: true });
    for (const p of [first, second]) await teardownLab(p, defaultLabDir(p));
  }
});

test('down tolerates parts already removed', async () => {
  await withLab({}, async (lab) => {
    lab.spawnDaemon('node1');
    process.kill(lab.holderPid('node2'), 'SIGKILL');
    const { execa } = await import('execa');
    await execa('ip', ['netns', 'del', lab.ns('client')]);
    await execa('ip', ['-n', lab.ns('br'), 'link', 'del', 'n1-0']);
    fs.rmSync(path.join(lab.dir, 'node1'), { recursive: true, force: true });
  });
});

test('spec validation and waitFor', async () => {
  assert.throws(() => resolveSpec({ lans: [{ name: 'x', cidr: '10.0.0.0/24', ifname: 'eth0', addrs: {} }] }), (e: Error) => e instanceof UserError && /documentation ranges/.test(e.message));
  const isUserError = (e: Error) => e instanceof UserError;
  assert.throws(() => resolveSpec({ lans: [{ name: 'x', cidr: '192.0.2.0/24', ifname: 'eth0', addrs: { nobody: '192.0.2.1' } }] }), isUserError);
  assert.throws(() => resolveSpec({ lans: [{ name: 'x', cidr: '192.0.2.0/24', ifname: 'eth0', addrs: { node1: '198.51.100.1' } }] }), isUserError);
  assert.throws(() => resolveSpec({ privateDirs: ['/proc/x'] }), isUserError);
  const spec = resolveSpec({ prefix: 'tlabcd' });
  assert.is(spec.dir, '/tmp/tandem-lab-tlabcd');
  assert.equal(spec.privateDirs, ['/srv/demo']);

  let n = 0;
  assert.is(await waitFor('third call', async () => ++n >= 3 && n, 1000, 1), 3);
  try {
    await waitFor('the impossible', async () => {
      throw new Error('nope');
    }, 200, 20);
    assert.unreachable();
  } catch (e) {
    assert.instance(e, WaitTimeoutError);
    assert.match((e as Error).message, /200 ms waiting for the impossible; last error: nope/);
  }
});

test.run();
