/** `tandem dashboard` off a terminal, where it has no daemon or a bad flag: exit 10 and what to do. */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../..');
const BIN = path.join(ROOT, 'bin', 'tandem');

function tandem(args: string[], home: string) {
  const env = { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TANDEM_'))), TANDEM_HOME: home, FORCE_COLOR: '0', NO_COLOR: '1' };
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: ROOT, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const home = fs.mkdtempSync(path.join(os.tmpdir(), 'tddash-'));

test('no daemon: --once and the periodic output both fail with how to start it', () => {
  for (const args of [['dashboard', '--once'], ['dashboard', '--interval', '1s']]) {
    const r = tandem(args, home);
    assert.is(r.code, 10, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /no tandem daemon is running/);
    assert.match(r.stderr, /Start it with `tandem daemon`/);
    assert.is(r.stdout, '');
  }
});

test('--interval without a unit, or too short to read, says what to give', () => {
  const a = tandem(['dashboard', '--interval', '5'], home);
  assert.is(a.code, 10);
  assert.match(a.stderr, /--interval: "5" has no unit/);
  const b = tandem(['dashboard', '--interval', '10ms'], home);
  assert.is(b.code, 10);
  assert.match(b.stderr, /--interval 10ms is too short to read\.\n.*give 100ms or more/);
});

test.after(() => fs.rmSync(home, { recursive: true, force: true }));

test.run();
