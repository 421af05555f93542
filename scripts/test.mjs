#!/usr/bin/env node
// Test runner: builds once, runs every compiled test file in its own process (uvu suites), sums the results and ends
// with the line `N passed, N failed`. Exit code 1 when anything failed or a file crashed.
//   node scripts/test.mjs            unit + lab (lab needs root)
//   node scripts/test.mjs --unit     unit only
//   node scripts/test.mjs --lab      lab only
//   node scripts/test.mjs FILTER…    only test files whose path contains one of the filters
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const wantUnit = !args.includes('--lab');
const wantLab = !args.includes('--unit');
const filters = args.filter((a) => !a.startsWith('--'));

const build = spawnSync('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: root, stdio: 'inherit' });
if (build.status !== 0) {
  console.log('build failed');
  console.log('0 passed, 1 failed');
  process.exit(1);
}

function list(dir) {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? list(p) : e.name.endsWith('.test.js') ? [p] : [];
  }).sort();
}

const files = [
  ...(wantUnit ? list(path.join(root, 'dist/test/unit')) : []),
  ...(wantUnit ? list(path.join(root, 'dist/test/scenarios')) : []),
  ...(wantLab ? list(path.join(root, 'dist/test/lab')) : []),
].filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)));

const LAB_TIMEOUT_MS = 15 * 60_000;
const UNIT_TIMEOUT_MS = 2 * 60_000;
let passed = 0;
let failed = 0;
const failures = [];

function runFile(file) {
  return new Promise((resolve) => {
    const isLab = file.includes(`${path.sep}lab${path.sep}`);
    const child = spawn(process.execPath, ['--enable-source-maps', file], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, FORCE_COLOR: '0' },
    });
    let out = '';
    child.stdout.on('data', (d) => { out += d; process.stdout.write(d); });
    child.stderr.on('data', (d) => { out += d; process.stderr.write(d); });
    const timer = setTimeout(() => { out += '\n[runner] timed out\n'; child.kill('SIGTERM'); setTimeout(() => child.kill('SIGKILL'), 20_000); },
      isLab ? LAB_TIMEOUT_MS : UNIT_TIMEOUT_MS);
    child.on('exit', (code) => { clearTimeout(timer); resolve({ code, out }); });
  });
}

for (const file of files) {
  const rel = path.relative(path.join(root, 'dist'), file);
  console.log(`\n── ${rel}`);
  const { code, out } = await runFile(file);
  const total = Number(/Total:\s+(\d+)/.exec(out)?.[1] ?? 0);
  const ok = Number(/Passed:\s+(\d+)/.exec(out)?.[1] ?? 0);
  const skipped = Number(/Skipped:\s+(\d+)/.exec(out)?.[1] ?? 0);
  let bad = total - ok - skipped;
  if (code !== 0 && bad === 0) bad = 1; // crashed before or after its suites
  passed += ok;
  failed += bad;
  if (bad > 0) failures.push(rel);
}
if (failures.length) console.log(`\nfailed files:\n  ${failures.join('\n  ')}`);
console.log(`\n${passed} passed, ${failed} failed`);
process.exit(failed > 0 || files.length === 0 ? 1 : 0);
