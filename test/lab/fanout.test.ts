// `tandem -H …` (the fan-out over ssh) against a real OpenSSH sshd in each node of a 2-node mirror lab, run from the
// lab's client host: `-H '*' status`, `-H node1,node2 state` (node column, worst exit code), `--json`,
// `config -m demo --push DIR` on both, and an unreachable node (its sshd killed). Each sshd listens only on its node's
// lab address, with a host key, authorized_keys and config generated into the lab dir; the client uses an ssh config
// (TANDEM_SSH_CONFIG) naming the key and a known_hosts file the test writes. The remote session gets the node's
// TANDEM_HOME/TANDEM_RUN_DIR/TANDEM_NODE from its sshd's `SetEnv` (what a real node does not need: its home is the
// default /var/lib/tandem). The sshds are killed by PID in finally. Prints how long each fan-out took (no bound).
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startPair } from '../../src/lab/failover.js';
import type { Lab } from '../../src/lab/lab.js';
import { run } from '../../src/platform/exec.js';
import { createMirrorLab } from '../../src/lab/mirror-lab.js';
import type { FanoutDocument } from '../../src/services/fanout.js';
import { shellQuote } from '../../src/services/fanout.js';

const NODES = ['node1', 'node2'];

test('tandem -H over real sshds: status, state, --json, config --push, an unreachable node', async () => {
  let lab: Lab | null = null;
  const sshds = new Map<string, ChildProcess>();
  const privsep = '/run/sshd';
  const madePrivsep = !fs.existsSync(privsep);
  try {
    lab = await createMirrorLab({ pulse: '200ms', timeout: '1s' });
    const l = lab;
    const dir = path.join(l.dir, 'ssh');
    fs.mkdirSync(dir, { mode: 0o700 });
    if (madePrivsep) fs.mkdirSync(privsep, { mode: 0o755 }); // sshd's privilege separation directory
    await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'tandem-fanout-test', '-f', path.join(dir, 'id_ed25519')]);
    fs.copyFileSync(path.join(dir, 'id_ed25519.pub'), path.join(dir, 'authorized_keys'));
    const knownHosts: string[] = [];
    const clientConfig: string[] = [];
    for (const n of NODES) {
      const key = path.join(dir, `${n}_host_ed25519`);
      await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `${n}-host`, '-f', key]);
      knownHosts.push(`${n},${l.addr(n)} ${fs.readFileSync(`${key}.pub`, 'utf8').trim()}`);
      const env = l.nodeEnv(n);
      const conf = path.join(dir, `${n}_sshd_config`);
      fs.writeFileSync(conf, [
        `ListenAddress ${l.addr(n)}:22`,
        `HostKey ${key}`,
        `PidFile ${path.join(dir, `${n}_sshd.pid`)}`,
        `AuthorizedKeysFile ${path.join(dir, 'authorized_keys')}`,
        'PermitRootLogin prohibit-password',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'UsePAM no',
        'StrictModes no',
        `SetEnv ${Object.entries(env).map(([k, v]) => `${k}=${v}`).join(' ')}`,
        '',
      ].join('\n'));
      const out = fs.openSync(path.join(dir, `${n}_sshd.log`), 'a');
      const [file, ...args] = l.hostArgv(n, ['/usr/sbin/sshd', '-D', '-e', '-f', conf]);
      const child = spawn(file!, args, { stdio: ['ignore', out, out] });
      fs.closeSync(out);
      child.on('error', () => undefined);
      sshds.set(n, child);
      clientConfig.push(`Host ${n}`, `  HostName ${l.addr(n)}`);
    }
    fs.writeFileSync(path.join(dir, 'known_hosts'), `${knownHosts.join('\n')}\n`);
    fs.writeFileSync(path.join(dir, 'ssh_config'), [...clientConfig, 'Host *', '  User root', `  IdentityFile ${path.join(dir, 'id_ed25519')}`,
      '  IdentitiesOnly yes', `  UserKnownHostsFile ${path.join(dir, 'known_hosts')}`, '  StrictHostKeyChecking yes', '  ConnectTimeout 5', ''].join('\n'));

    const env = {
      TANDEM_SSH_CONFIG: path.join(dir, 'ssh_config'),
      TANDEM_REMOTE_BIN: l.spec.cliCommand.map(shellQuote).join(' '),
      TANDEM_HOME: l.paths('node1').home, // -H '*' reads cluster.xml here
      NO_COLOR: '1',
    };
    const fan = async (args: string[]) => {
      const t0 = Date.now();
      const r = await l.exec('client', [...l.spec.cliCommand, ...args], { env, reject: false, timeoutMs: 60_000 });
      console.log(`  tandem ${args.join(' ')}: exit ${r.code} in ${Date.now() - t0} ms`);
      return r;
    };
    await l.waitFor('both sshds answer', async () => (await fan(['-H', 'node1,node2', 'list'])).code === 0, 20_000, 200);

    // -H '*': every node of cluster.xml, each line with its node
    const st = await fan(['-H', '*', 'status']);
    assert.is(st.code, 0, st.stderr);
    const lines = st.stdout.split('\n').filter(Boolean);
    assert.ok(lines.every((x) => /^node[12] \| /.test(x)), st.stdout);
    for (const n of NODES) assert.ok(lines.some((x) => x.startsWith(`${n} | `) && /demo/.test(x)), `${n} shows module demo:\n${st.stdout}`);

    // a pair: node1 PRIM, node2 SECOND; state's exit codes 3 and 4 → the fan-out exits 4
    const start = await fan(['-H', 'node1,node2', 'start', '-m', 'demo']);
    assert.is(start.code, 0, start.stderr);
    await startPair(l, 'node1', 'node2', { started: true });
    const t0 = Date.now();
    await l.cli('node1', ['state', '-m', 'demo'], { reject: false });
    console.log(`  for comparison, tandem state -m demo on node1 itself: ${Date.now() - t0} ms`);
    const state = await fan(['-H', 'node1,node2', 'state', '-m', 'demo']);
    console.log(state.stdout.replace(/^/gm, '    '));
    assert.is(state.code, 4, state.stderr);
    assert.equal(state.stdout.split('\n').filter(Boolean).sort(), ['node1 | PRIM', 'node2 | SECOND']);

    const js = await fan(['-H', 'node1,node2', 'state', '-m', 'demo', '--json']);
    assert.is(js.code, 4, js.stderr);
    const doc = JSON.parse(js.stdout) as FanoutDocument;
    assert.equal(doc.nodes.map((x) => [x.node, x.exitCode, (x.stdout as { state: string }).state, x.error]), [['node1', 3, 'PRIM', null], ['node2', 4, 'SECOND', null]]);

    // config --push: the directory is sent to both nodes, installed there and applied
    const src = path.join(l.dir, 'push', 'demo');
    fs.cpSync(path.join(l.paths('node1').home, 'modules', 'demo'), src, { recursive: true });
    fs.writeFileSync(path.join(src, 'bin', 'pushed.txt'), 'pushed with it\'s $HOME "quotes"\n');
    const push = await fan(['-H', 'node1,node2', 'config', '-m', 'demo', '--push', src]);
    console.log(push.stdout.replace(/^/gm, '    '));
    assert.is(push.code, 0, `${push.stdout}\n${push.stderr}`);
    for (const n of NODES) {
      assert.is(fs.readFileSync(path.join(l.paths(n).home, 'modules', 'demo', 'bin', 'pushed.txt'), 'utf8'), 'pushed with it\'s $HOME "quotes"\n', n);
      assert.ok(push.stdout.split('\n').some((x) => x.startsWith(`${n} | module demo installed: `)), push.stdout);
    }
    const after = await fan(['-H', 'node1,node2', 'state', '-m', 'demo']);
    assert.is(after.code, 4, 'the pair is still up after the push');

    // node2 unreachable: reported, node1 still answers, exit 11
    const sshd2 = sshds.get('node2')!;
    sshd2.kill('SIGTERM');
    await l.waitFor('node2 sshd gone', async () => sshd2.exitCode !== null || sshd2.signalCode !== null, 10_000);
    sshds.delete('node2');
    const down = await fan(['-H', 'node1,node2', 'state', '-m', 'demo']);
    console.log(down.stdout.replace(/^/gm, '    ') + down.stderr.replace(/^/gm, '    '));
    assert.is(down.code, 11, down.stderr);
    assert.is(down.stdout, 'node1 | PRIM\n');
    assert.match(down.stderr, /node2 \| ssh: connect to host 198\.51\.100\.2 port 22: Connection refused/);
    assert.match(down.stderr, /node2 \| unreachable \(ssh exit 255\)/);
    const downJs = await fan(['-H', 'node1,node2', 'state', '-m', 'demo', '--json']);
    assert.is(downJs.code, 11);
    const d2 = (JSON.parse(downJs.stdout) as FanoutDocument).nodes;
    assert.is(d2[0]!.exitCode, 3);
    assert.is(d2[1]!.exitCode, 11);
    assert.match(d2[1]!.error ?? '', 'Connection refused');
  } finally {
    for (const [, child] of sshds) {
      if (child.exitCode === null && child.signalCode === null) {
        const gone = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await gone;
      }
    }
    await lab?.down();
    if (madePrivsep) fs.rmSync(privsep, { recursive: true, force: true });
  }
});

test.run();
