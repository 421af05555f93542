/**
 * `tandem snapshot` and `tandem boot` through the real CLI (`node bin/tandem …`, as a user runs them) against a
 * temporary home and unit directory, no daemon: exit codes, --json, and the ExecStart of the node entry.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { generateKey, writeKeyFile } from '../../../src/daemon/key.js';
import { BIN, runTandem, type Run } from './run.js';

// dist/test/unit/cli → repository root
const tandem = (args: string[], env: Record<string, string>, cwd: string): Promise<Run> => runTandem(args, { env, cwd });



const show = (r: Run) => `exit ${r.code}\n--- stdout\n${r.stdout}--- stderr\n${r.stderr}`;

let dir = '';
let env: Record<string, string> = {};
test.before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-snapboot-cli-'));
  const home = path.join(dir, 'home');
  fs.mkdirSync(path.join(home, 'modules', 'demo', 'bin'), { recursive: true });
  fs.writeFileSync(path.join(home, 'cluster.xml'), '<cluster><lans><lan name="default"><node name="node1" addr="127.0.0.1"/><node name="node2" addr="127.0.0.2"/></lan></lans></cluster>\n');
  fs.writeFileSync(path.join(home, 'modules', 'demo', 'userconfig.xml'), '<safe><service mode="mirror"/></safe>\n');
  await writeKeyFile(path.join(home, 'cluster.key'), generateKey());
  fs.mkdirSync(path.join(dir, 'units'));
  env = { TANDEM_HOME: home, TANDEM_RUN_DIR: path.join(dir, 'run'), TANDEM_NODE: 'node1', TANDEM_SYSTEMD_DIR: path.join(dir, 'units') };
});
test.after(() => fs.rmSync(dir, { recursive: true, force: true }));

test('snapshot --json without a daemon: exit 0, the archive, its members and failed commands; then refuses to overwrite (exit 10)', async () => {
  const file = path.join(dir, 'support.tar.gz');
  const r = await tandem(['snapshot', '-m', 'demo', file, '--json'], env, dir);
  assert.is(r.code, 0, show(r));
  const out = JSON.parse(r.stdout) as { file: string; node: string; daemon: boolean; members: { name: string; size: number }[]; failed: unknown[] };
  assert.is(out.file, file);
  assert.is(out.node, 'node1');
  assert.is(out.daemon, false);
  const names = out.members.map((m) => m.name);
  for (const n of ['home/modules/demo/userconfig.xml', 'home/cluster.xml', 'daemon/NO-STATUS.txt', 'system/versions.txt', 'manifest.json']) assert.ok(names.includes(n), n);
  assert.ok(Array.isArray(out.failed));
  assert.ok(fs.statSync(file).size > 0);
  const again = await tandem(['snapshot', file], env, dir);
  assert.is(again.code, 10, show(again));
  assert.match(again.stderr, 'already exists; a snapshot never replaces a file');
  assert.match(again.stderr, 'give another FILE');
});

test('snapshot without FILE writes ./tandem-snapshot-node1-<UTC time>.tar.gz in the current directory', async () => {
  const cwd = path.join(dir, 'cwd');
  fs.mkdirSync(cwd);
  const r = await tandem(['snapshot'], env, cwd);
  assert.is(r.code, 0, show(r));
  const files = fs.readdirSync(cwd);
  assert.is(files.length, 1, files.join(', '));
  assert.match(files[0]!, /^tandem-snapshot-node1-\d{8}T\d{6}Z\.tar\.gz$/);
  assert.match(r.stdout, `wrote ${path.join(cwd, files[0]!)}`);
  assert.match(r.stdout, 'It holds no cluster key.');
});

test('boot on / status --json / off: the unit runs this node entry with this home', async () => {
  const units = path.join(dir, 'units');
  const on = await tandem(['boot', 'on'], env, dir);
  assert.is(on.code, 0, show(on));
  assert.match(on.stdout, 'systemd is not running on this machine');
  const text = fs.readFileSync(path.join(units, 'tandem.service'), 'utf8');
  assert.match(text, `\nExecStart=${process.execPath} ${fs.realpathSync(BIN)} daemon\n`);
  assert.match(text, `\nEnvironment=TANDEM_HOME=${env.TANDEM_HOME}\n`);
  assert.is(fs.readlinkSync(path.join(units, 'multi-user.target.wants', 'tandem.service')), path.join(units, 'tandem.service'));
  const st = await tandem(['boot', 'status', '--json'], env, dir);
  assert.is(st.code, 0, show(st));
  const s = JSON.parse(st.stdout) as { installed: boolean; enabled: boolean; current: boolean; daemonRunning: boolean };
  assert.equal({ installed: s.installed, enabled: s.enabled, current: s.current, daemonRunning: s.daemonRunning }, { installed: true, enabled: true, current: true, daemonRunning: false });
  const off = await tandem(['boot', 'off'], env, dir);
  assert.is(off.code, 0, show(off));
  assert.not.ok(fs.existsSync(path.join(units, 'multi-user.target.wants', 'tandem.service')));
  const bad = await tandem(['boot', 'sideways'], env, dir);
  assert.is(bad.code, 64, show(bad)); // an invalid command line (EX_USAGE)
});

test.run();
