import fs from 'node:fs';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { controlRequest } from '../../src/daemon/control.js';
import type { StatusView } from '../../src/daemon/views.js';
import { APPENDER_MODULE, createAppenderLab } from '../../src/lab/appender.js';
import type { Lab } from '../../src/lab/lab.js';
import { controlSocketOf, moduleLogOf, waitForDaemon } from '../../src/lab/mirror-lab.js';
import { moduleState, startPair, waitForStates } from '../../src/lab/postgres.js';
import { defaultSpec } from '../../src/lab/spec.js';
import { rfsDefaultPort } from '../../src/config/userconfig.js';

// Security of the replication path on real daemons in the lab (examples/appender as the module, pulse 500 ms,
// timeout 3 s), with a third host `attacker` on both heartbeat LANs, which has no cluster key:
// 1. it floods both nodes with forged heartbeats (wrong key, claiming node1) and garbage, and node1's replication
//    listener with connections: no false failover while the flood runs, and the SECOND, restarted during the flood,
//    still reintegrates (before: 32 silent connections held every handshake slot);
// 2. node2's log directory is a 64 KiB tmpfs that fills up: the daemon keeps running and says so, the module keeps
//    working, and the log says what it lost once there is space again.
// The flooders are processes this test starts in the attacker's namespaces and ends by PID; the lab (namespaces,
// the tmpfs inside node2's mount namespace, every process in them) is removed at the end, also on failure.

const M = APPENDER_MODULE;
const PORT = 4800; // <lans port> default: the lab's cluster.xml sets none
const ATTACKER = { default: '198.51.100.66', replication: '203.0.113.66' };

const status = async (l: Lab, n: string) =>
  ((await controlRequest(controlSocketOf(l, n), 'status', M, undefined, { timeoutMs: 5000 })) as StatusView);

/** Writes the flooders into the lab directory: plain Node scripts, run inside the attacker host. */
function writeFlooders(l: Lab): { udp: string; tcp: string } {
  const udp = path.join(l.dir, 'flood-udp.mjs');
  fs.writeFileSync(udp, `
import dgram from 'node:dgram';
import { createHmac, randomBytes } from 'node:crypto';
const targets = process.argv[2].split(',').map((t) => ({ host: t.split(':')[0], port: Number(t.split(':')[1]) }));
const key = randomBytes(32); // not the cluster key
const lanOf = (host) => (host.startsWith('203.') ? 'replication' : 'default');
function forged(seq, lan) { // heartbeat format 2, well-formed, claiming node1, signed with the wrong key
  const from = Buffer.from('node1'); const l = Buffer.from(lan);
  const body = Buffer.from(JSON.stringify({ module: 'appender', state: 'ALONE', ready: true }));
  const head = Buffer.alloc(4 + 1 + 1); head.write('TDHB'); head[4] = 2; head[5] = from.length;
  const mid = Buffer.alloc(4 + 8 + 4 + 1); mid.writeUInt32BE(0xfffffff0, 0); mid.writeBigUInt64BE(BigInt(seq), 4); mid.writeUInt32BE(0, 12); mid[16] = l.length;
  const len = Buffer.alloc(4); len.writeUInt32BE(body.length);
  const unsigned = Buffer.concat([head, from, mid, l, len, body]);
  return Buffer.concat([unsigned, createHmac('sha256', key).update(unsigned).digest()]);
}
const sock = dgram.createSocket('udp4');
let sent = 0;
let stop = false;
process.on('SIGTERM', () => { stop = true; });
function burst() {
  for (let k = 0; k < 128; k++) {
    const t = targets[sent % targets.length];
    sock.send(sent % 3 === 0 ? randomBytes(1 + (sent % 200)) : forged(sent, lanOf(t.host)), t.port, t.host, () => {});
    sent++;
  }
  if (stop) { sock.close(); process.exit(0); }
  setTimeout(burst, 0);
}
sock.bind({ port: 0 }, burst);
`);
  const tcp = path.join(l.dir, 'flood-tcp.mjs');
  fs.writeFileSync(tcp, `
import net from 'node:net';
const [host, port, max] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
let stop = false;
process.on('SIGTERM', () => process.exit(0));
function one() { // a connection that says nothing, reopened as soon as it is closed
  const s = net.connect({ host, port });
  s.on('error', () => {});
  s.on('close', () => { if (!stop) setTimeout(one, 1); });
}
for (let i = 0; i < max; i++) one();
`);
  return { udp, tcp };
}

function startOn(l: Lab, host: string, argv: string[]): { child: ChildProcess; exited: Promise<void> } {
  const [file, ...args] = l.hostArgv(host, argv);
  const child = spawn(file!, args, { stdio: 'ignore' });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return { child, exited };
}

test('a host without the key floods heartbeats and the replication listener: no false failover, the SECOND still gets in; a full log disk does not end the daemon', async () => {
  const base = defaultSpec();
  const spec = {
    hosts: [...base.hosts, { name: 'attacker', role: 'client' as const }],
    lans: base.lans.map((lan) => ({ ...lan, addrs: { ...lan.addrs, attacker: ATTACKER[lan.name as 'default' | 'replication'] } })),
  };
  const t0 = performance.now();
  let lab: Lab | null = null;
  const flooders: { child: ChildProcess; exited: Promise<void> }[] = [];
  const stopFlooders = async () => {
    for (const f of flooders.splice(0)) {
      if (f.child.pid !== undefined && f.child.exitCode === null) process.kill(f.child.pid, 'SIGKILL');
      await f.exited;
    }
  };
  let ok = false;
  try {
    lab = await createAppenderLab({ pulse: '500ms', timeout: '3s', spec });
    const l = lab;
    await startPair(l, 'node1', 'node2', 60_000, M);
    const before = { n1: (await status(l, 'node1')).heartbeats, n2: (await status(l, 'node2')).heartbeats };

    // ── 1. the flood ──
    const scripts = writeFlooders(l);
    const targets = ['node1', 'node2'].flatMap((n) => ['default', 'replication'].map((lan) => `${l.addr(n, lan)}:${PORT}`)).join(',');
    flooders.push(startOn(l, 'attacker', [process.execPath, scripts.udp, targets]));
    // the replication listener is the module's replication host's, on its <rfs port>
    flooders.push(startOn(l, 'attacker', [process.execPath, scripts.tcp, l.addr('node1', 'replication'), String(rfsDefaultPort(PORT, M)), '200']));
    // while the flood delivers 20,000 forged datagrams to node2, and lasts at least three heartbeat timeouts (node2
    // got 36 real heartbeats meanwhile: 2 LANs × 2 a second × 9 s), neither node leaves PRIM/SECOND
    const states: string[] = [];
    let flooded = 0;
    await l.waitFor('20,000 forged datagrams and 3 timeouts of flood on node2', async () => {
      const s = `${await moduleState(l, 'node1', M)}/${await moduleState(l, 'node2', M)}`;
      if (states.at(-1) !== s) states.push(s);
      const hb = (await status(l, 'node2')).heartbeats;
      flooded = hb.dropped.badSource - before.n2.dropped.badSource;
      return flooded >= 20_000 && hb.received - before.n2.received >= 36;
    }, 120_000, 200);
    assert.equal(states, ['PRIM/SECOND'], `states seen during the flood: ${states.join(' → ')}`);
    const during = (await status(l, 'node2')).heartbeats;
    assert.is(during.dropped.badMac, before.n2.dropped.badMac, 'no forged datagram reached the HMAC');
    assert.ok(during.received > before.n2.received, 'real heartbeats still arrive');

    // the SECOND restarts its module during the flood: it must reach the primary's listener to reintegrate
    await l.cli('node2', ['stop', '-m', M]);
    await waitForStates(l, { node1: 'ALONE', node2: 'STOP' }, 60_000, M);
    await l.cli('node2', ['start', '-m', M]);
    await waitForStates(l, { node1: 'PRIM', node2: 'SECOND' }, 90_000, M);
    await stopFlooders();
    // the host logs its refusals into the module's log
    const daemonLog = moduleLogOf(l, 'node1', M);
    assert.match(daemonLog, /dropped a connection from 203\.0\.113\.66: not the address of a node/);
    assert.ok(daemonLog.split('\n').filter((x) => x.includes('203.0.113.66')).length < 50, 'refusals are logged rate-limited');
    console.log(`  flood: node2 dropped ${flooded}+ datagrams unparsed, no role change; reintegrated through the connection flood`);

    // ── 2. a full log disk on node2 ──
    const logDir = path.join(l.paths('node2').home, 'log');
    l.killDaemon('node2', 'SIGTERM');
    await l.waitFor('node2 daemon gone', async () => l.daemonPid('node2') === undefined, 30_000);
    await l.exec('node2', ['mount', '-t', 'tmpfs', '-o', 'size=64k,mode=0700', 'tandem-lab-log', logDir]);
    l.spawnDaemon('node2');
    await waitForDaemon(l, 'node2');
    await waitForStates(l, { node1: 'PRIM', node2: 'SECOND' }, 90_000, M);
    await l.exec('node2', ['sh', '-c', `dd if=/dev/zero of=${logDir}/filler bs=1k 2>/dev/null; true`]);
    // module transitions log lines into the full disk (once the last partly used page is full too): ENOSPC; the
    // daemon goes on, and the module with it
    const cycle = async () => {
      await l.cli('node2', ['stop', '-m', M]);
      await waitForStates(l, { node2: 'STOP' }, 60_000, M);
      await l.cli('node2', ['start', '-m', M]);
      await waitForStates(l, { node1: 'PRIM', node2: 'SECOND' }, 90_000, M);
    };
    await l.waitFor('node2 to say it cannot write its log', async () => {
      await cycle();
      return /cannot write the log .*\(ENOSPC: .*the daemon keeps running/.test(fs.readFileSync(l.paths('node2').daemonOut, 'utf8'));
    }, 180_000, 100);
    assert.ok(l.daemonPid('node2') !== undefined, 'node2 daemon still running');
    // space again: the next lines get through, the first one says what was lost
    await l.exec('node2', ['rm', '-f', `${logDir}/filler`]);
    await l.waitFor('the log to say what it lost', async () => {
      await cycle();
      const r = await l.exec('node2', ['cat', path.join(logDir, `${M}.log`)], { reject: false });
      return /log line\(s\) lost since \S+ \(ENOSPC\); the daemon kept running/.test(r.stdout);
    }, 180_000, 1000);
    console.log('  full log disk: the daemon kept running; the log caught up');
    ok = true;
  } finally {
    await stopFlooders();
    if (!ok && lab) {
      for (const n of ['node1', 'node2']) {
        console.log(`--- ${n} ${M}.log (tail)\n${moduleLogOf(lab, n, M).split('\n').slice(-40).join('\n')}`);
        console.log(`--- ${n} daemon output (tail)\n${fs.readFileSync(lab.paths(n).daemonOut, 'utf8').split('\n').slice(-15).join('\n')}`);
      }
    }
    await lab?.down();
    console.log(`  total (with teardown): ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
});

test.run();
