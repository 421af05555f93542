// `tandem install` and `tandem config` as services (src/services/modules.ts, src/config/module-files.ts), and the
// script runner's check before each run: what an installed module may be made of, and who may change it.
// Runs as root here (chown to another uid needs it); as another user the ownership cases are skipped.
// Files: /tmp/tandem-install-test-*; removed after each test.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tar from 'tar';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadCluster, loadModule } from '../../../src/config/load.js';
import { UserError } from '../../../src/errors.js';
import { homePaths, type Home } from '../../../src/home.js';
import { LinuxScriptRunner } from '../../../src/platform/scripts/linux.js';
import { startControlServer } from '../../../src/daemon/control.js';
import { configModule, installModule } from '../../../src/services/modules.js';
import { expectUserError } from '../expect-reject.js';

const ROOT = process.geteuid?.() === 0;
const CLUSTER_XML = `<cluster><lans><lan name="default">
  <node name="node1" addr="198.51.100.1"/><node name="node2" addr="198.51.100.2"/>
</lan></lans></cluster>
`;
const USERCONFIG_XML = `<safe><service mode="mirror"><heart pulse="500ms" timeout="5s"><heartbeat name="default"/></heart></service></safe>
`;

interface Fx {
  dir: string;
  home: Home;
  /** a package directory: userconfig.xml, bin/start_prim (echo), bin/lib/helper */
  pkg: string;
}

function withFx(fn: (f: Fx) => Promise<void>) {
  return async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-install-test-'));
    const home = { root: path.join(dir, 'home'), runDir: path.join(dir, 'run') };
    fs.mkdirSync(home.root, { mode: 0o755 });
    fs.writeFileSync(homePaths.clusterXml(home), CLUSTER_XML);
    const pkg = path.join(dir, 'pkg');
    fs.mkdirSync(path.join(pkg, 'bin', 'lib'), { recursive: true });
    fs.writeFileSync(path.join(pkg, 'userconfig.xml'), USERCONFIG_XML);
    fs.writeFileSync(path.join(pkg, 'bin', 'start_prim'), `#!/bin/sh\necho started > "${path.join(dir, 'ran')}"\n`);
    fs.writeFileSync(path.join(pkg, 'bin', 'lib', 'helper'), 'helper=1\n');
    try {
      await fn({ dir, home, pkg });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  };
}

const userError = expectUserError;

const modeOf = (p: string) => fs.lstatSync(p).mode & 0o7777;

test('installed files are normalised: root-owned, no group/world write, no setuid/setgid/sticky; read and exec bits kept', withFx(async (f) => {
  const script = path.join(f.pkg, 'bin', 'start_prim');
  fs.chmodSync(script, 0o6777); // setuid, setgid, writable by everyone
  fs.chmodSync(path.join(f.pkg, 'bin', 'lib', 'helper'), 0o664);
  fs.chmodSync(path.join(f.pkg, 'bin'), 0o1777);
  if (ROOT) fs.chownSync(script, 1234, 1234);
  await installModule(f.home, 'web', f.pkg, false);
  const m = homePaths.moduleDir(f.home, 'web');
  assert.is(modeOf(path.join(m, 'bin', 'start_prim')), 0o755);
  assert.is(modeOf(path.join(m, 'bin', 'lib', 'helper')), 0o644);
  assert.is(modeOf(path.join(m, 'bin')), 0o755);
  assert.is(modeOf(m), 0o755);
  for (const p of [m, path.join(m, 'bin', 'start_prim'), path.join(m, 'userconfig.xml')]) {
    assert.is(fs.lstatSync(p).uid, process.geteuid!(), `${p} owned by the installing user (root)`);
  }
  assert.ok(loadModule(f.home, 'web', loadCluster(f.home)), 'the installed module passes the checks');
  assert.match(await configModule(f.home, 'web'), /is valid/);
}));

test('a package holding a symlink (directory or archive) or a hard link (archive) is refused; nothing is installed', withFx(async (f) => {
  fs.symlinkSync('/etc/passwd', path.join(f.pkg, 'bin', 'lib', 'evil'));
  await userError(installModule(f.home, 'web', f.pkg, false), /bin\/lib\/evil \(symlink\)/);
  assert.not.ok(fs.existsSync(homePaths.moduleDir(f.home, 'web')));

  const tgz = path.join(f.dir, 'web.tgz');
  await tar.c({ file: tgz, cwd: f.dir, gzip: true }, ['pkg']);
  await userError(installModule(f.home, 'web', tgz, false), /pkg\/bin\/lib\/evil \(SymbolicLink to \/etc\/passwd, outside the package\)/);
  fs.rmSync(path.join(f.pkg, 'bin', 'lib', 'evil'));
  fs.linkSync(path.join(f.pkg, 'bin', 'lib', 'helper'), path.join(f.pkg, 'bin', 'hard'));
  await tar.c({ file: tgz, cwd: f.dir, gzip: true }, ['pkg']);
  await userError(installModule(f.home, 'web', tgz, false), /\(Link\)/);
  assert.not.ok(fs.existsSync(homePaths.moduleDir(f.home, 'web')));

  fs.rmSync(path.join(f.pkg, 'bin', 'hard'));
  await tar.c({ file: tgz, cwd: f.dir, gzip: true }, ['pkg']);
  await installModule(f.home, 'web', tgz, false);
  assert.is(modeOf(path.join(homePaths.moduleDir(f.home, 'web'), 'bin', 'start_prim')) & 0o022, 0);
}));

test('a script writable by anyone but root is refused at `config`, at load, and before it runs, with a clear error', withFx(async (f) => {
  await installModule(f.home, 'web', f.pkg, false);
  const m = homePaths.moduleDir(f.home, 'web');
  const script = path.join(m, 'bin', 'start_prim');
  const runner = new LinuxScriptRunner({ scriptsDir: () => path.join(m, 'bin'), logFile: () => homePaths.moduleLog(f.home, 'web') });
  const run = () => runner.run({ module: 'web', script: 'start_prim', args: ['STOP', 'PRIM', 'start'], env: {}, timeoutMs: 5000 });

  fs.chmodSync(script, 0o775);
  const e = await userError(configModule(f.home, 'web'), /start_prim is writable by group \d+ \(mode 0775\).*runs the module's scripts as root/);
  assert.match(e.hint ?? '', /chown -R root:root .* chmod -R go-w/);
  await userError(() => loadModule(f.home, 'web', loadCluster(f.home)), /writable by group/);
  await userError(run(), /writable by group .*does not run a script that anyone but root can change/);
  assert.not.ok(fs.existsSync(path.join(f.dir, 'ran')), 'the script did not run');

  fs.chmodSync(script, 0o757);
  await userError(configModule(f.home, 'web'), /writable by every user/);
  fs.chmodSync(script, 0o755);
  fs.chmodSync(path.join(m, 'bin'), 0o777); // the directory: anyone could replace the script
  await userError(configModule(f.home, 'web'), /bin is writable by every user/);
  await userError(run(), /bin is writable by every user/);
  fs.chmodSync(path.join(m, 'bin'), 0o755);
  fs.symlinkSync('/bin/true', path.join(m, 'bin', 'stop_prim'));
  await userError(configModule(f.home, 'web'), /stop_prim is a symlink/);
  fs.rmSync(path.join(m, 'bin', 'stop_prim'));
  if (ROOT) {
    fs.chownSync(script, 1000, 0);
    await userError(configModule(f.home, 'web'), /start_prim is owned by uid 1000, not root/);
    await userError(run(), /owned by uid 1000/);
    fs.chownSync(script, 0, 0);
  }
  assert.ok((await run()).ok, 'once fixed, the script runs');
  assert.ok(fs.existsSync(path.join(f.dir, 'ran')));
}));


const vipConfig = (mode: 'mirror' | 'farm', vip: string) => mode === 'mirror'
  ? `<safe><service mode="mirror"><heart pulse="500ms" timeout="5s"><heartbeat name="default"/></heart>
  <vip><interface_list><interface><real_interface><virtual_addr addr="${vip}" where="one_side_alias"/></real_interface></interface></interface_list></vip>
</service></safe>
`
  : `<safe><service mode="farm"><farm><lan name="default"/></farm>
  <vip><interface_list><interface><virtual_interface type="vmac_directed"><virtual_addr addr="${vip}" where="alias"/></virtual_interface></interface></interface_list>
  <loadbalancing_list><group name="g"><cluster><host name="node1" power="1"/><host name="node2" power="1"/></cluster><rule port="80" proto="tcp" filter="on_addr"/></group></loadbalancing_list></vip>
</service></safe>
`;

test("a module whose VIP is an installed module's is refused before anything is copied", withFx(async (f) => {
  fs.writeFileSync(path.join(f.pkg, 'userconfig.xml'), vipConfig('farm', '198.51.100.20'));
  await installModule(f.home, 'web', f.pkg, false);
  fs.writeFileSync(path.join(f.pkg, 'userconfig.xml'), vipConfig('mirror', '198.51.100.20'));
  const e = await userError(installModule(f.home, 'db', f.pkg, false), /module db: its virtual IP 198\.51\.100\.20 is also module web's \(a farm module\)/);
  assert.match(e.message, /then install db again/);
  assert.is(fs.existsSync(homePaths.moduleDir(f.home, 'db')), false, 'nothing installed');
  // the same VIP for the module itself (a reinstall with --force) is no clash
  fs.writeFileSync(path.join(f.pkg, 'userconfig.xml'), vipConfig('farm', '198.51.100.20'));
  await installModule(f.home, 'web', f.pkg, true);
}));

test('a mirror module the daemon hears on two other nodes already is refused: a mirror runs on exactly two nodes', withFx(async (f) => {
  fs.writeFileSync(homePaths.clusterXml(f.home), `<cluster><lans><lan name="default">
  <node name="node1" addr="198.51.100.1"/><node name="node2" addr="198.51.100.2"/><node name="node3" addr="198.51.100.3"/>
</lan></lans></cluster>
`);
  fs.writeFileSync(path.join(f.pkg, 'userconfig.xml'), vipConfig('mirror', '198.51.100.30'));
  // the daemon's `holders` answer: who else holds the module (from the inventories it hears)
  let holders: string[] = ['node2', 'node3'];
  const asked: string[] = [];
  const server = await startControlServer(homePaths.controlSocket(f.home), (req) => {
    if (req.cmd === 'holders') { asked.push(String(req.module)); return { holders, self: 'node1' }; }
    if (req.cmd === 'config') return { applied: 'loaded' };
    throw new UserError(`unexpected ${req.cmd}`);
  }, { home: f.home.root });
  try {
    const e = await userError(installModule(f.home, 'db', f.pkg, false), /mirror module db is already installed on node2 and node3: a mirror module runs on exactly two nodes; nothing was installed here/);
    assert.match(e.hint ?? '', /tandem uninstall -m db/);
    assert.equal(asked, ['db']);
    assert.is(fs.existsSync(homePaths.moduleDir(f.home, 'db')), false, 'nothing installed');
    holders = ['node2'];
    // with one other holder, this node (node1) and node2 are the pair: a defaultprim of node3 is refused
    const xml = vipConfig('mirror', '198.51.100.30');
    fs.writeFileSync(path.join(f.pkg, 'userconfig.xml'), xml.replace('<service mode="mirror"', '<service mode="mirror" defaultprim="node3"'));
    const d = await userError(installModule(f.home, 'db', f.pkg, false), /defaultprim="node3"> names node3, which does not run it: it runs on node1 and node2\. Nothing was installed here\./);
    assert.match(d.hint ?? '', /set defaultprim to node1, node2 or "alone"/);
    assert.is(fs.existsSync(homePaths.moduleDir(f.home, 'db')), false, 'nothing installed');
    fs.writeFileSync(path.join(f.pkg, 'userconfig.xml'), xml);
    assert.is((await installModule(f.home, 'db', f.pkg, false)).applied, 'loaded', 'with one other holder it is the pair');
  } finally {
    await server.close();
  }
}));
test('install --force (and config --push) of a module that runs here: new scripts with the same configuration go in; a changed configuration is refused before anything is replaced', withFx(async (f) => {
  await installModule(f.home, 'db', f.pkg, false);
  let state = 'PRIM';
  const applied: string[] = [];
  const server = await startControlServer(homePaths.controlSocket(f.home), (req) => {
    if (req.cmd === 'status') return { node: 'node1', modules: [{ module: 'db', state }], farms: [], pending: [], invalid: [] };
    if (req.cmd === 'config') { applied.push(String(req.module)); return { applied: 'node-local settings updated (script timeouts, variables)' }; }
    throw new UserError(`unexpected ${req.cmd}`);
  }, { home: f.home.root });
  try {
    fs.writeFileSync(path.join(f.pkg, 'bin', 'check_app'), '#!/bin/sh\nexit 0\n');
    assert.match((await installModule(f.home, 'db', f.pkg, true)).applied, /node-local settings updated/);
    assert.ok(fs.existsSync(path.join(homePaths.moduleDir(f.home, 'db'), 'bin', 'check_app')), 'a new script of a running module is installed');
    const before = fs.readFileSync(homePaths.userconfig(f.home, 'db'), 'utf8');
    fs.writeFileSync(path.join(f.pkg, 'userconfig.xml'), USERCONFIG_XML.replace('timeout="5s"', 'timeout="6s"'));
    fs.writeFileSync(path.join(f.pkg, 'bin', 'check_app'), '#!/bin/sh\nexit 1\n');
    const e = await userError(installModule(f.home, 'db', f.pkg, true),
      /^module db is PRIM on node1: its changed configuration can only be applied while it is stopped; nothing was replaced\.$/);
    assert.match(e.hint ?? '', /`tandem stop -m db` \(the peer takes over if it can\), install it again, then `tandem start -m db`/);
    assert.is(fs.readFileSync(homePaths.userconfig(f.home, 'db'), 'utf8'), before, 'the installed configuration is untouched');
    assert.is(fs.readFileSync(path.join(homePaths.moduleDir(f.home, 'db'), 'bin', 'check_app'), 'utf8'), '#!/bin/sh\nexit 0\n', 'and its scripts');
    assert.equal(applied, ['db']);
    state = 'STOP';
    await installModule(f.home, 'db', f.pkg, true);
    assert.match(fs.readFileSync(homePaths.userconfig(f.home, 'db'), 'utf8'), /timeout="6s"/, 'stopped, it is replaced');
  } finally {
    await server.close();
  }
}));

test.run();
