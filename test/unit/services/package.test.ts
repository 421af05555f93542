// Module packages (src/services/package.ts): `tandem package` then `tandem install` elsewhere gives identical files and
// modes; a package is checked before anything is extracted or installed (absolute and ".." members, symlinks, a
// missing userconfig.xml, a manifest naming another module, a zip / SafeKit .safe, a truncated archive), each a
// UserError saying what to do, with nothing installed.
// Files: /tmp/tandem-package-test-*; removed after each test.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tar from 'tar';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { homePaths, type Home } from '../../../src/home.js';
import { installModule } from '../../../src/services/modules.js';
import { packageModule, PACKAGE_MANIFEST } from '../../../src/services/package.js';
import { expectUserError } from '../expect-reject.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../..');
const CLUSTER_XML = `<cluster><lans><lan name="default">
  <node name="node1" addr="198.51.100.1"/><node name="node2" addr="198.51.100.2"/>
</lan></lans></cluster>
`;
const USERCONFIG_XML = `<safe><service mode="mirror"><heart pulse="500ms" timeout="5s"><heartbeat name="default"/></heart></service></safe>
`;

interface Fx {
  dir: string;
  /** the node the module is packaged on, and the one it is installed on */
  a: Home;
  b: Home;
  /** a package directory: userconfig.xml, bin/start_prim (0755), bin/lib/helper (0644), bin/secret (0700) */
  pkg: string;
}

function mkHome(dir: string, name: string): Home {
  const home = { root: path.join(dir, name), runDir: path.join(dir, `${name}-run`) };
  fs.mkdirSync(home.root, { mode: 0o755 });
  fs.writeFileSync(homePaths.clusterXml(home), CLUSTER_XML);
  return home;
}

function withFx(fn: (f: Fx) => Promise<void>) {
  return async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-package-test-'));
    const pkg = path.join(dir, 'pkg');
    fs.mkdirSync(path.join(pkg, 'bin', 'lib'), { recursive: true });
    fs.writeFileSync(path.join(pkg, 'userconfig.xml'), USERCONFIG_XML);
    fs.writeFileSync(path.join(pkg, 'bin', 'start_prim'), '#!/bin/sh\necho started\n', { mode: 0o755 });
    fs.writeFileSync(path.join(pkg, 'bin', 'lib', 'helper'), 'helper=1\n', { mode: 0o644 });
    fs.writeFileSync(path.join(pkg, 'bin', 'secret'), 'token\n', { mode: 0o700 });
    fs.chmodSync(path.join(pkg, 'bin', 'secret'), 0o700);
    try {
      await fn({ dir, a: mkHome(dir, 'a'), b: mkHome(dir, 'b'), pkg });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  };
}

const userError = expectUserError;

/** Every path under `dir` with its type, mode, owner, a file's mtime (s) and content: what "identical" means here. */
function tree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const rel of fs.readdirSync(dir, { recursive: true }) as string[]) {
    const p = path.join(dir, rel);
    const st = fs.lstatSync(p);
    const kind = st.isDirectory() ? 'dir' : st.isFile() ? 'file' : 'other';
    const body = st.isFile() ? fs.readFileSync(p).toString('base64') : '';
    out[rel] = `${kind} ${(st.mode & 0o7777).toString(8)} uid=${st.uid} ${st.isFile() ? Math.floor(st.mtimeMs / 1000) : ''} ${body}`;
  }
  return out;
}

const installed = (h: Home, m: string) => fs.existsSync(homePaths.moduleDir(h, m));

test('round trip: package on one node, install on another without -m: identical files, modes and file times', withFx(async (f) => {
  await installModule(f.a, 'web', f.pkg, false);
  const file = path.join(f.dir, 'web.tar.gz');
  const w = await packageModule(f.a, 'web', file, false);
  assert.equal({ module: w.module, file: w.file, files: w.files }, { module: 'web', file, files: 4 });
  assert.is(w.bytes, fs.statSync(file).size);

  const members: Record<string, number> = {};
  await tar.t({ file, onReadEntry: (e) => { members[e.path] = e.mode ?? -1; } });
  assert.equal(Object.keys(members).sort(), ['web/', `web/${PACKAGE_MANIFEST}`, 'web/bin/', 'web/bin/lib/', 'web/bin/lib/helper', 'web/bin/secret', 'web/bin/start_prim', 'web/userconfig.xml']);
  assert.is(members['web/bin/start_prim'], 0o755);
  assert.is(members['web/bin/secret'], 0o700);

  const before = tree(homePaths.moduleDir(f.a, 'web'));
  assert.is(before['bin/secret']!.split(' ')[1], '700');
  assert.is((await installModule(f.b, undefined, file, false)).module, 'web', 'the package names its module');
  assert.equal(tree(homePaths.moduleDir(f.b, 'web')), before);
  assert.not.ok(fs.existsSync(path.join(homePaths.moduleDir(f.b, 'web'), PACKAGE_MANIFEST)), 'the manifest is not installed');

  await userError(packageModule(f.a, 'web', file, false), /web\.tar\.gz exists already/);
  await packageModule(f.a, 'web', file, true);
  assert.is(fs.readdirSync(f.dir).filter((n) => n.includes('.tmp')).length, 0, 'no temporary file left beside the package');
}));

test('package errors: a module not installed, a file name that is not .tar.gz/.tgz, a directory that does not exist', withFx(async (f) => {
  const e = await userError(packageModule(f.a, 'web', path.join(f.dir, 'web.tgz'), false), /module web is not installed here/);
  assert.match(e.hint ?? '', /tandem list/);
  await installModule(f.a, 'web', f.pkg, false);
  await userError(packageModule(f.a, 'web', path.join(f.dir, 'web.zip'), false), /a module package is a gzipped tar; name it web\.tar\.gz or web\.tgz/);
  await userError(packageModule(f.a, 'web', path.join(f.dir, 'no', 'such', 'web.tgz'), false), /cannot write .*web\.tgz/);
  await userError(packageModule(f.a, '../etc', path.join(f.dir, 'x.tgz'), false), /module name "\.\.\/etc" is not valid/);
}));

test('a package naming another module than -m is refused, nothing installed; its hint says how to install it', withFx(async (f) => {
  await installModule(f.a, 'web', f.pkg, false);
  const file = path.join(f.dir, 'web.tgz');
  await packageModule(f.a, 'web', file, false);
  const e = await userError(installModule(f.b, 'db', file, false), /web\.tgz holds module web, not db; nothing was installed/);
  assert.match(e.hint ?? '', /tandem install -m web .*web\.tgz/);
  assert.not.ok(installed(f.b, 'db'));
  assert.not.ok(installed(f.b, 'web'));
  assert.is((await installModule(f.b, 'web', file, false)).module, 'web', 'the same name is accepted');
}));

test('a hand-made archive without manifest needs -m; a broken manifest is refused', withFx(async (f) => {
  const file = path.join(f.dir, 'hand.tgz');
  await tar.c({ file, cwd: f.dir, gzip: true }, ['pkg']);
  const e = await userError(installModule(f.b, undefined, file, false), /needs a module: add -m/);
  assert.match(e.hint ?? '', /does not say which module it holds/);
  assert.is((await installModule(f.b, 'web', file, false)).module, 'web');

  fs.writeFileSync(path.join(f.pkg, PACKAGE_MANIFEST), '{"format":1,');
  await tar.c({ file, cwd: f.dir, gzip: true }, ['pkg']);
  await userError(installModule(f.b, 'db', file, false), /\.tandem-package is not valid JSON/);
  fs.writeFileSync(path.join(f.pkg, PACKAGE_MANIFEST), '{"format":7,"module":"db"}');
  await tar.c({ file, cwd: f.dir, gzip: true }, ['pkg']);
  await userError(installModule(f.b, 'db', file, false), /not a format 1 manifest/);
  fs.writeFileSync(path.join(f.pkg, PACKAGE_MANIFEST), '{"format":1,"module":"../../etc"}');
  await tar.c({ file, cwd: f.dir, gzip: true }, ['pkg']);
  await userError(installModule(f.b, undefined, file, false), /module name "\.\.\/\.\.\/etc" is not valid/);
  assert.not.ok(installed(f.b, 'db'));
}));

test('unsafe members are refused before anything is extracted: absolute, "..", a symlink out of the package', withFx(async (f) => {
  const outside = path.join(f.dir, 'outside');
  fs.writeFileSync(outside, 'x');
  const cases: Array<[string, string[], RegExp]> = [
    ['abs.tar', ['pkg', outside], /tandem-package-test-[^ ]*\/outside \(an absolute path\)/],
    ['dots.tar', ['pkg', '../' + path.basename(f.dir) + '/outside'], /\.\.\/tandem-package-test-[^ ]*\/outside \(a path with "\.\.", outside the package\)/],
  ];
  for (const [name, members, re] of cases) {
    const file = path.join(f.dir, name);
    await tar.c({ file, cwd: f.dir, preservePaths: true }, members);
    const before = fs.readdirSync(os.tmpdir()).filter((n) => n.startsWith('tandem-install-')).length;
    const e = await userError(installModule(f.b, 'web', file, false), re);
    assert.match(e.message, /is refused, nothing was installed/);
    assert.match(e.hint ?? '', /relative paths/);
    assert.not.ok(installed(f.b, 'web'));
    assert.is(fs.readdirSync(os.tmpdir()).filter((n) => n.startsWith('tandem-install-')).length, before, 'the staging directory is removed');
  }
  fs.symlinkSync('../../../outside', path.join(f.pkg, 'bin', 'escape'));
  const file = path.join(f.dir, 'link.tgz');
  await tar.c({ file, cwd: f.dir, gzip: true }, ['pkg']);
  await userError(installModule(f.b, 'web', file, false), /pkg\/bin\/escape \(SymbolicLink to \.\.\/\.\.\/\.\.\/outside, outside the package\)/);
  assert.not.ok(installed(f.b, 'web'));
}));

test('a package without userconfig.xml, a truncated archive, a non-archive file: clear errors, nothing installed', withFx(async (f) => {
  fs.rmSync(path.join(f.pkg, 'userconfig.xml'));
  const file = path.join(f.dir, 'noconf.tgz');
  await tar.c({ file, cwd: f.dir, gzip: true }, ['pkg']);
  await userError(installModule(f.b, 'web', file, false), /noconf\.tgz has no userconfig\.xml/);
  const whole = fs.readFileSync(file);
  fs.writeFileSync(file, whole.subarray(0, Math.floor(whole.length / 2)));
  const e = await userError(installModule(f.b, 'web', file, false), /cannot read package .*noconf\.tgz/);
  assert.match(e.hint ?? '', /complete tar archive/);
  fs.writeFileSync(path.join(f.dir, 'notes.txt'), 'hello');
  await userError(installModule(f.b, 'web', path.join(f.dir, 'notes.txt'), false), /is not a module package: expected a directory or a \.tar, \.tar\.gz or \.tgz file/);
  assert.not.ok(installed(f.b, 'web'));
}));

test('a SafeKit .safe (a zip), or a zip under another name, is refused with the commands that convert it', withFx(async (f) => {
  const safe = path.join(f.dir, 'mirror.safe');
  const py = spawnSync('python3', ['-c', `import zipfile,sys
z=zipfile.ZipFile(sys.argv[1],'w'); z.writestr('conf/userconfig.xml','<safe/>'); z.writestr('bin/start_prim','#!/bin/sh'); z.close()`, safe]);
  assert.is(py.status, 0, String(py.stderr));
  const e = await userError(installModule(f.b, 'mirror', safe, false), /mirror\.safe is a zip archive \(a SafeKit \.safe module\)/);
  assert.match(e.hint ?? '', /unzip .*mirror\.safe -d mirror.*mirror\/conf\/userconfig\.xml.*tandem install -m mirror mirror/);
  const disguised = path.join(f.dir, 'mirror.tar.gz');
  fs.copyFileSync(safe, disguised);
  await userError(installModule(f.b, 'mirror', disguised, false), /is a zip archive/);
  assert.not.ok(installed(f.b, 'mirror'));
}));

function tandem(args: string[], home: Home): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TANDEM_')));
    const child = spawn(process.execPath, [path.join(ROOT, 'bin', 'tandem'), ...args], {
      cwd: ROOT, env: { ...env, NO_COLOR: '1', TANDEM_HOME: home.root, TANDEM_RUN_DIR: home.runDir }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { out += d; });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out }));
  });
}

test('the CLI: `tandem package -m web F --json`, then `tandem install F` on another home; a mismatch exits 10', withFx(async (f) => {
  await installModule(f.a, 'web', f.pkg, false);
  const file = path.join(f.dir, 'web.tgz');
  const p = await tandem(['package', '-m', 'web', file, '--json'], f.a);
  assert.is(p.code, 0, p.out);
  assert.equal(Object.keys(JSON.parse(p.out)), ['module', 'file', 'files', 'bytes']);
  const i = await tandem(['install', file], f.b);
  assert.is(i.code, 0, i.out);
  assert.match(i.out, /module web: installed/);
  assert.equal(tree(homePaths.moduleDir(f.b, 'web')), tree(homePaths.moduleDir(f.a, 'web')));
  const bad = await tandem(['install', '-m', 'db', file], f.b);
  assert.is(bad.code, 10, bad.out);
  assert.match(bad.out, /holds module web, not db/);
}));

test.run();
