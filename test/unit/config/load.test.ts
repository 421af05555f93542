import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { listModules, loadCluster, loadModule } from '../../../src/config/load.js';
import type { Home } from '../../../src/home.js';
import { throwsUserError } from './assert-user-error.js';

const CLUSTER_XML = `<cluster><lans>
<lan name="default"><node name="node1" addr="198.51.100.1"/><node name="node2" addr="198.51.100.2"/></lan>
</lans></cluster>`;

const homes: Home[] = [];
function tempHome(): Home {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-load-'));
  homes.push({ root, runDir: path.join(root, 'run') });
  return homes[homes.length - 1];
}
test.after(() => {
  for (const h of homes) fs.rmSync(h.root, { recursive: true, force: true });
});

function write(home: Home, rel: string, content: string | Uint8Array): void {
  const p = path.join(home.root, rel);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, content);
}

test('loads cluster.xml and a module', () => {
  const home = tempHome();
  write(home, 'cluster.xml', CLUSTER_XML);
  write(home, 'modules/demo/userconfig.xml', '<safe><service mode="mirror"/></safe>');
  const cluster = loadCluster(home);
  assert.equal(cluster.nodes, ['node1', 'node2']);
  const m = loadModule(home, 'demo', cluster);
  assert.is(m.name, 'demo');
  assert.equal(m.heart.lans, ['default']);
});

test('a missing cluster.xml says how to create it', () => {
  const home = tempHome();
  throwsUserError(() => loadCluster(home), path.join(home.root, 'cluster.xml'), 'does not exist', 'Write $TANDEM_HOME/cluster.xml', 'README: Configuration', home.root);
});

test('cluster.xml errors name the full path', () => {
  const home = tempHome();
  write(home, 'cluster.xml', '<cluster>\n<lans/>\n</cluster>');
  throwsUserError(() => loadCluster(home), `${path.join(home.root, 'cluster.xml')} line 2`);
  write(home, 'cluster.xml', Uint8Array.from([0x3c, 0x61, 0xff, 0x3e]));
  throwsUserError(() => loadCluster(home), 'not valid UTF-8');
});

test('a directory in place of cluster.xml is an error', () => {
  const home = tempHome();
  fs.mkdirSync(path.join(home.root, 'cluster.xml'));
  throwsUserError(() => loadCluster(home), 'is a directory');
});

test('other read failures are errors naming the file', () => {
  const home = tempHome();
  const notADir: Home = { root: path.join(home.root, 'file'), runDir: home.runDir };
  write(home, 'file', '');
  throwsUserError(() => loadCluster(notADir), `cannot read ${path.join(notADir.root, 'cluster.xml')}`, 'ENOTDIR', 'Check the file');
  throwsUserError(() => listModules(notADir), `cannot list ${path.join(notADir.root, 'modules')}`, 'ENOTDIR');
});

test('an unreadable cluster.xml is an error (skipped as root)', () => {
  if (process.getuid?.() === 0) return;
  const home = tempHome();
  write(home, 'cluster.xml', CLUSTER_XML);
  fs.chmodSync(path.join(home.root, 'cluster.xml'), 0o000);
  throwsUserError(() => loadCluster(home), 'permission denied');
});

test('a module that is not installed says how to install it and lists installed ones', () => {
  const home = tempHome();
  write(home, 'cluster.xml', CLUSTER_XML);
  const cluster = loadCluster(home);
  throwsUserError(() => loadModule(home, 'web', cluster), 'modules/web/userconfig.xml does not exist', 'tandem install -m web <dir>', 'Installed modules: none');
  write(home, 'modules/demo/userconfig.xml', '<safe><service mode="mirror"/></safe>');
  throwsUserError(() => loadModule(home, 'web', cluster), 'Installed modules: demo');
});

test('loadModule validates the name and names the full path in errors', () => {
  const home = tempHome();
  write(home, 'cluster.xml', CLUSTER_XML);
  const cluster = loadCluster(home);
  throwsUserError(() => loadModule(home, '../etc', cluster), 'module name "../etc" is not valid');
  write(home, 'modules/demo/userconfig.xml', '<safe>\n<service/>\n</safe>');
  throwsUserError(() => loadModule(home, 'demo', cluster), `${path.join(home.root, 'modules/demo/userconfig.xml')} line 2`, 'no mode');
});

test('listModules: sorted directories holding userconfig.xml; [] without modules/', () => {
  const home = tempHome();
  assert.equal(listModules(home), []);
  write(home, 'modules/zeta/userconfig.xml', '<safe/>');
  write(home, 'modules/alpha/userconfig.xml', '<safe/>');
  write(home, 'modules/empty/bin/start_prim', '');
  write(home, 'modules/stray-file', '');
  assert.equal(listModules(home), ['alpha', 'zeta']);
});

test.run();
