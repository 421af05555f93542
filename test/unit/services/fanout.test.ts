// The fan-out over ssh (src/cli/fanout.ts, src/services/fanout.ts) with the fake ssh seam: the -H pre-parse, the
// quoting (checked by a real /bin/sh), the node column, the --json document, the worst exit code, unreachable nodes,
// `-H '*'` from cluster.xml and `config --push` (its remote script run by a real /bin/sh). Files: /tmp/tdfan-*.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import * as tar from 'tar';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FanoutUsageError, parseFanoutArgv, type CommandFlags } from '../../../src/cli/fanout.js';
import { UserError } from '../../../src/errors.js';
import { fakeSsh, type FakeNode } from '../../../src/platform/ssh/fake.js';
import { sshBaseArgs } from '../../../src/platform/ssh/openssh.js';
import { fanout, packDirectory, pushCommand, pushOf, remoteCommand, shellQuote, worstExitCode, type FanoutDocument } from '../../../src/services/fanout.js';
import { expectReject } from '../expect-reject.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tdfan-'));
test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));

class Sink extends Writable {
  text = '';
  override _write(c: Buffer, _e: string, cb: () => void): void {
    this.text += c.toString('utf8');
    cb();
  }
}

/** state and status take --json, config does not; anything else is unknown here */
const FLAGS: CommandFlags = async (id) => ({ state: { module: 1, json: 1, quiet: 1 }, status: { module: 1, json: 1 }, config: { module: 1, push: 1 } } as Record<string, Record<string, unknown>>)[id];

async function run(hosts: string[] | '*', args: string[], nodes: Record<string, FakeNode>, env: NodeJS.ProcessEnv = {}) {
  const ssh = fakeSsh(nodes);
  const stdout = new Sink();
  const stderr = new Sink();
  const code = await fanout({ hosts, args }, { ssh, env, commandFlags: FLAGS, stdout, stderr });
  return { code, stdout: stdout.text, stderr: stderr.text, calls: ssh.calls };
}

test('pre-parse: -H forms before the command; anything else is left to oclif', () => {
  const want = { hosts: ['node1', 'node2'], args: ['state', '-m', 'demo'] };
  for (const argv of [['-H', 'node1,node2'], ['-Hnode1,node2'], ['-H=node1,node2'], ['--hosts', 'node1,node2'], ['--hosts=node1,node2'], ['-H', 'node1, node2,node1']]) {
    assert.equal(parseFanoutArgv([...argv, 'state', '-m', 'demo']), want, argv.join(' '));
  }
  assert.equal(parseFanoutArgv(['-H', '*', 'status', '--json']), { hosts: '*', args: ['status', '--json'] });
  assert.equal(parseFanoutArgv(['-H', 'admin@10.0.0.1', 'list']), { hosts: ['admin@10.0.0.1'], args: ['list'] });
  assert.is(parseFanoutArgv([]), null);
  assert.is(parseFanoutArgv(['status', '-H', 'x']), null, 'after the command, -H is not the global flag');
  assert.is(parseFanoutArgv(['--help']), null);
});

test('pre-parse: a bad -H is a usage error saying what to write', () => {
  const cases: [string[], RegExp][] = [
    [['-H'], /needs a list of nodes/],
    [['-H', ''], /needs a list of nodes/],
    [['-H', 'node1'], /which command should run there/],
    [['-H', 'node1,,node2', 'status'], /empty node name/],
    [['-H', 'node1,*', 'status'], /stands alone/],
    [['-H', '-oProxyCommand=x', 'status'], /ssh would read it as an option/],
    [['-H', 'node1;reboot', 'status'], /not a node name/],
  ];
  for (const [argv, re] of cases) {
    try {
      parseFanoutArgv(argv);
      assert.unreachable(argv.join(' '));
    } catch (e) {
      assert.instance(e, FanoutUsageError, argv.join(' '));
      assert.match((e as UserError).message, re, argv.join(' '));
      assert.ok((e as UserError).hint, 'a hint');
    }
  }
});

test('quoting: a real sh gives the remote tandem exactly the arguments typed (spaces, quotes, $, `, newline, empty)', () => {
  const args = ['plain', 'with space', "it's", '"dq"', '$HOME', '`id`', '$(id)', 'a\nb', '', '*', 'x;y', '-m', 'a\\b', 'é'];
  const cmd = remoteCommand("printf '%s\\0'", args);
  const r = spawnSync('sh', ['-c', cmd], { encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
  assert.equal(r.stdout.split('\0').slice(0, -1), args);
  assert.is(shellQuote('node1'), 'node1');
  assert.is(shellQuote('--json'), '--json');
});

test('text: every line prefixed with its node, aligned; stderr lines to stderr; exit = the highest exit code', async () => {
  const r = await run(['n1', 'node22'], ['state', '-m', 'demo'], {
    n1: { stdout: 'PRIM\n', code: 3 },
    node22: { stdout: 'SECOND\nready\n', stderr: 'a warning\n', code: 4 },
  });
  assert.is(r.code, 4);
  assert.equal(r.stdout.split('\n').filter(Boolean).sort(), ['n1     | PRIM', 'node22 | SECOND', 'node22 | ready']);
  assert.is(r.stderr, 'node22 | a warning\n');
  assert.equal(r.calls.map((c) => [c.node, c.command]), [['n1', 'tandem state -m demo'], ['node22', 'tandem state -m demo']]);
});

test('an unreachable node is reported with what to try; the others still answer; exit 11', async () => {
  const r = await run(['node1', 'node2'], ['status'], {
    node1: { stdout: 'demo PRIM\n' },
    node2: { unreachable: 'ssh: connect to host node2 port 22: Connection refused' },
  });
  assert.is(r.code, 11);
  assert.is(r.stdout, 'node1 | demo PRIM\n');
  assert.match(r.stderr, 'node2 | ssh: connect to host node2 port 22: Connection refused\n');
  assert.match(r.stderr, /node2 \| unreachable \(ssh exit 255\): the command did not run there\. Try the connection by hand: ssh node2 true/);
  // a node's own higher code wins over 11
  const usage = await run(['node1', 'node2'], ['status'], { node1: { code: 64 }, node2: { unreachable: 'refused' } });
  assert.is(usage.code, 64);
});

test('no tandem on a node (the remote shell exits 127): exit 11, with where to point TANDEM_REMOTE_BIN', async () => {
  const r = await run(['node1', 'node2'], ['status'], { node1: { stdout: 'ok\n' }, node2: { stderr: 'bash: line 1: tandem: command not found\n', code: 127 } });
  assert.is(r.code, 11);
  assert.match(r.stderr, 'node2 | bash: line 1: tandem: command not found\n');
  assert.match(r.stderr, /node2 \| tandem is not found on this node \(the remote shell exited 127\): install tandem there, or set TANDEM_REMOTE_BIN/);
  const js = await run(['node2'], ['status', '--json'], { node2: { code: 126 } });
  assert.equal((JSON.parse(js.stdout) as FanoutDocument).nodes[0]!.error, 'tandem is not found on this node (the remote shell exited 126)');
});

test('worst exit code: the highest; none is 0', () => {
  assert.is(worstExitCode([]), 0);
  assert.is(worstExitCode([{ exitCode: 0 }, { exitCode: 0 }]), 0);
  assert.is(worstExitCode([{ exitCode: 2 }, { exitCode: 11 }, { exitCode: 3 }]), 11);
});

test('--json: one document, stdout parsed when it is JSON, text otherwise, unreachable with its error', async () => {
  const r = await run(['node1', 'node2', 'node3'], ['state', '-m', 'demo', '--json'], {
    node1: { stdout: '{ "module": "demo", "state": "PRIM", "exitCode": 3 }\n', code: 3 },
    node2: { stdout: '{"at":1}\n{"at":2}\n', stderr: 'warn\n' },
    node3: { unreachable: 'ssh: connect to host node3 port 22: No route to host' },
  });
  assert.is(r.code, 11);
  assert.is(r.stderr, '', 'nothing printed beside the document');
  assert.is(r.calls[0]!.command, 'tandem state -m demo --json', '--json passed on: state takes it');
  const doc = JSON.parse(r.stdout) as FanoutDocument;
  assert.equal(doc.nodes, [
    { node: 'node1', exitCode: 3, stdout: { module: 'demo', state: 'PRIM', exitCode: 3 }, stderr: '', error: null },
    { node: 'node2', exitCode: 0, stdout: '{"at":1}\n{"at":2}\n', stderr: 'warn\n', error: null },
    { node: 'node3', exitCode: 11, stdout: '', stderr: 'ssh: connect to host node3 port 22: No route to host\n', error: 'ssh: connect to host node3 port 22: No route to host' },
  ]);
});

test('--json with a command that has no --json: not passed on, the text is in the document', async () => {
  const r = await run(['node1'], ['config', '-m', 'demo', '--json'], { node1: { stdout: 'configuration of demo is valid\n' } });
  assert.is(r.calls[0]!.command, 'tandem config -m demo');
  assert.equal((JSON.parse(r.stdout) as FanoutDocument).nodes[0]!.stdout, 'configuration of demo is valid\n');
  const unknown = await run(['node1'], ['newcmd', '--json'], { node1: { stdout: '[]' } });
  assert.is(unknown.calls[0]!.command, 'tandem newcmd --json', 'a command unknown here: the line goes on unchanged');
});

test('TANDEM_REMOTE_BIN and the ssh options from the environment', async () => {
  const r = await run(['node1'], ['list'], { node1: {} }, { TANDEM_REMOTE_BIN: '/opt/tandem/bin/tandem' });
  assert.is(r.calls[0]!.command, '/opt/tandem/bin/tandem list');
  assert.equal(sshBaseArgs({}), ['-o', 'BatchMode=yes']);
  assert.equal(sshBaseArgs({ TANDEM_SSH_CONFIG: '/etc/t/ssh_config', TANDEM_SSH_OPTS: ' -o ConnectTimeout=5  -p 2222 ' }),
    ['-o', 'BatchMode=yes', '-F', '/etc/t/ssh_config', '-o', 'ConnectTimeout=5', '-p', '2222']);
});

test("-H '*': every node of cluster.xml in its order; without a readable cluster.xml, what to do", async () => {
  const home = path.join(tmp, 'home');
  fs.mkdirSync(home, { recursive: true });
  fs.writeFileSync(path.join(home, 'cluster.xml'), `<cluster><lans><lan name="default">
  <node name="beta" addr="198.51.100.2"/><node name="alpha" addr="198.51.100.1"/><node name="gamma" addr="198.51.100.3"/>
</lan></lans></cluster>\n`);
  const r = await run('*', ['list'], { alpha: {}, beta: {}, gamma: {} }, { TANDEM_HOME: home });
  assert.equal(r.calls.map((c) => c.node), ['beta', 'alpha', 'gamma']);
  assert.is(r.code, 0);
  const e = await expectReject(run('*', ['list'], {}, { TANDEM_HOME: path.join(tmp, 'none') }), (x) => x instanceof UserError, 'no cluster.xml');
  assert.match((e as UserError).message, /cluster\.xml cannot be read/);
  assert.match((e as UserError).hint!, /-H node1,node2/);
});

test('config --push: the command line without the directory; the module must be named', () => {
  assert.equal(pushOf(['config', '-m', 'demo', '--push', './demo'], {}), { dir: './demo', rest: ['config', '-m', 'demo'] });
  assert.equal(pushOf(['config', '--push=./demo', '--module=demo'], {}), { dir: './demo', rest: ['config', '--module=demo'] });
  assert.equal(pushOf(['config', '--push', 'd'], { TANDEM_MODULE: 'demo' }), { dir: 'd', rest: ['config'] });
  assert.is(pushOf(['config', '-m', 'demo'], {}), null);
  assert.is(pushOf(['install', '--push', 'd'], {}), null);
  assert.throws(() => pushOf(['config', '--push', 'd'], {}), (e: Error) => e instanceof UserError && /add -m NAME/.test(e.message));
  assert.throws(() => pushOf(['config', '-m', 'demo', '--push'], {}), (e: Error) => e instanceof UserError && /needs the module directory/.test(e.message));
});

test('config --push: a directory without userconfig.xml is refused before any ssh', async () => {
  const empty = path.join(tmp, 'empty');
  fs.mkdirSync(empty, { recursive: true });
  const ssh = fakeSsh({ node1: {} });
  await expectReject(fanout({ hosts: ['node1'], args: ['config', '-m', 'demo', '--push', empty] }, { ssh, env: {}, commandFlags: FLAGS, stdout: new Sink(), stderr: new Sink() }),
    (e) => e instanceof UserError && /no userconfig\.xml/.test(e.message), 'empty dir');
  assert.is(ssh.calls.length, 0);
});

test('config --push: each node gets the package on stdin; its remote script (real sh) installs it and removes it', async () => {
  const mod = path.join(tmp, 'mod');
  fs.mkdirSync(path.join(mod, 'bin'), { recursive: true });
  fs.writeFileSync(path.join(mod, 'userconfig.xml'), '<safe/>\n');
  fs.writeFileSync(path.join(mod, 'bin', 'start_prim'), '#!/bin/sh\n', { mode: 0o755 });
  const r = await run(['node1', 'node2'], ['config', '-m', 'demo', '--push', mod], { node1: { stdout: 'ok\n' }, node2: { stdout: 'ok\n' } });
  assert.is(r.code, 0);
  assert.is(r.calls.length, 2);
  const pkg = r.calls[0]!.input!;
  assert.ok(pkg.equals(r.calls[1]!.input!), 'the same package to every node');
  assert.equal(r.calls[0]!.command, pushCommand('tandem', ['config', '-m', 'demo']));

  // the remote script, with a stand-in for tandem that records its arguments and the package it was given
  const seen = path.join(tmp, 'seen');
  const bin = path.join(tmp, 'fake-tandem');
  fs.writeFileSync(bin, `#!/bin/sh\nprintf '%s\\n' "$@" > ${seen}.args\neval "f=\\\${$#}"\ncp "$f" ${seen}.tar.gz\necho "$f" > ${seen}.path\nexit 7\n`, { mode: 0o755 });
  const sh = spawnSync('sh', ['-c', pushCommand(bin, ['config', '-m', 'demo'])], { input: pkg, encoding: 'utf8' });
  assert.is(sh.status, 7, `the remote tandem's exit code comes back: ${sh.stderr}`);
  const argv = fs.readFileSync(`${seen}.args`, 'utf8').trim().split('\n');
  assert.equal(argv.slice(0, 4), ['config', '-m', 'demo', '--push']);
  assert.ok(fs.readFileSync(`${seen}.tar.gz`).equals(pkg), 'the package arrived whole');
  assert.not.ok(fs.existsSync(fs.readFileSync(`${seen}.path`, 'utf8').trim()), 'the temporary package is removed');
  const members: string[] = [];
  await tar.t({ file: `${seen}.tar.gz`, onReadEntry: (e) => { members.push(e.path); } });
  assert.ok(members.includes('userconfig.xml') && members.includes('bin/start_prim'), members.join(', '));
  assert.ok((await packDirectory(mod)).length > 0);
});

test('the entry (bin/tandem): -H before oclif; a bad -H exits 64, a node ssh cannot reach 11', () => {
  const bin = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../../../bin/tandem');
  const env = { ...process.env, NO_COLOR: '1', TANDEM_HOME: path.join(tmp, 'none'), TANDEM_SSH_OPTS: '-o ProxyCommand=false' };
  const bad = spawnSync(bin, ['-H'], { env, encoding: 'utf8' });
  assert.is(bad.status, 64, bad.stderr);
  assert.match(bad.stderr, 'error: -H needs a list of nodes.');
  const down = spawnSync(bin, ['-H', 'node1', 'status'], { env, encoding: 'utf8' });
  assert.is(down.status, 11, down.stderr);
  assert.match(down.stderr, /node1 \| unreachable \(ssh exit 255\).*ssh -o BatchMode=yes -o ProxyCommand=false node1 true/);
  const plain = spawnSync(bin, ['--version'], { env, encoding: 'utf8' });
  assert.is(plain.status, 0, 'without -H oclif runs as before');
  const help = spawnSync(bin, ['--help'], { env, encoding: 'utf8' });
  assert.match(help.stdout, /DESCRIPTION\n  Several nodes from one shell: `tandem -H node1,node2 COMMAND`/, 'tandem --help tells of -H');
});

test('config --push SOURCE on this node: installs (replacing) and applies; a missing SOURCE is exit 10 with what to give', () => {
  const bin = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../../../bin/tandem');
  const home = path.join(tmp, 'push-home');
  fs.mkdirSync(home, { recursive: true });
  fs.writeFileSync(path.join(home, 'cluster.xml'), `<cluster><lans><lan name="default">
  <node name="node1" addr="198.51.100.1"/><node name="node2" addr="198.51.100.2"/>
</lan></lans></cluster>\n`);
  const src = path.join(tmp, 'push-src');
  fs.mkdirSync(path.join(src, 'bin'), { recursive: true });
  fs.writeFileSync(path.join(src, 'userconfig.xml'), '<safe><service mode="mirror"><heart pulse="500ms" timeout="5s"><heartbeat name="default"/></heart></service></safe>\n');
  fs.writeFileSync(path.join(src, 'bin', 'marker'), 'one\n');
  const env = { ...process.env, NO_COLOR: '1', TANDEM_HOME: home, TANDEM_RUN_DIR: path.join(home, 'run') };
  for (const marker of ['one\n', 'two\n']) {
    fs.writeFileSync(path.join(src, 'bin', 'marker'), marker);
    const r = spawnSync(bin, ['config', '-m', 'pushed', '--push', src], { env, encoding: 'utf8' });
    assert.is(r.status, 0, r.stderr);
    assert.match(r.stdout, 'module pushed installed: installed; the daemon is not running');
    assert.is(fs.readFileSync(path.join(home, 'modules', 'pushed', 'bin', 'marker'), 'utf8'), marker, 'the second push replaces the first');
  }
  const missing = spawnSync(bin, ['config', '-m', 'pushed', '--push', path.join(tmp, 'nothing')], { env, encoding: 'utf8' });
  assert.is(missing.status, 10);
  assert.match(missing.stderr, /does not exist\.\n  → give a module directory/);
});

test('the real ssh adapter (bin/tandem, an ssh stand-in on PATH): the argv ssh gets, stdin closed, its exit code', () => {
  const bin = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../../../bin/tandem');
  const fakeDir = path.join(tmp, 'fake-ssh');
  fs.mkdirSync(fakeDir, { recursive: true });
  fs.writeFileSync(path.join(fakeDir, 'ssh'), `#!/bin/sh\nprintf '%s\\0' "$@" > ${fakeDir}/argv.$$\ncat > ${fakeDir}/stdin.$$\necho "ran $2"\nexit 3\n`, { mode: 0o755 });
  const env = { ...process.env, NO_COLOR: '1', PATH: `${fakeDir}:${process.env.PATH}`, TANDEM_SSH_CONFIG: '/etc/t/ssh config', TANDEM_SSH_OPTS: '-p 2222' };
  const r = spawnSync(bin, ['-H', 'node1', 'state', '-m', 'my demo'], { env, encoding: 'utf8', timeout: 30_000 });
  assert.is(r.status, 3, r.stderr);
  assert.is(r.stdout, 'node1 | ran BatchMode=yes\n');
  const argvFile = fs.readdirSync(fakeDir).find((f) => f.startsWith('argv.'))!;
  assert.equal(fs.readFileSync(path.join(fakeDir, argvFile), 'utf8').split('\0').slice(0, -1),
    ['-o', 'BatchMode=yes', '-F', '/etc/t/ssh config', '-p', '2222', '--', 'node1', "tandem state -m 'my demo'"]);
  assert.is(fs.readFileSync(path.join(fakeDir, argvFile.replace('argv', 'stdin')), 'utf8'), '', 'stdin closed at once: nothing to read');
});

test.run();
