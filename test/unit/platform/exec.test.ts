import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ExternalError } from '../../../src/errors.js';
import { formatCommand, run } from '../../../src/platform/exec.js';

async function rejects(p: Promise<unknown>): Promise<ExternalError> {
  try {
    await p;
  } catch (e) {
    assert.instance(e, ExternalError);
    return e as ExternalError;
  }
  throw new Error('expected a rejection');
}

test('returns stdout, stderr and code 0', async () => {
  const r = await run('sh', ['-c', 'echo out; echo err >&2']);
  assert.equal(r, { stdout: 'out', stderr: 'err', code: 0 });
});

test('non-zero exit throws ExternalError with command, exit code and stderr', async () => {
  const e = await rejects(run('sh', ['-c', 'echo oops >&2; exit 3']));
  assert.is(e.exitCode, 3);
  assert.is(e.stderr, 'oops');
  assert.is(e.command, `sh -c 'echo oops >&2; exit 3'`);
  assert.match(e.message, /exit 3/);
});

test('input is written to stdin; without it stdin is closed', async () => {
  assert.is((await run('cat', [], { input: 'line 1\nline 2\n' })).stdout, 'line 1\nline 2');
  assert.is((await run('cat', [])).stdout, '');
});

test('reject:false returns the non-zero code', async () => {
  const r = await run('sh', ['-c', 'echo x >&2; exit 4'], { reject: false });
  assert.is(r.code, 4);
  assert.is(r.stderr, 'x');
});

test('a command that does not exist throws even with reject:false', async () => {
  const e = await rejects(run('tvt-no-such-command', ['a'], { reject: false }));
  assert.is(e.exitCode, null);
  assert.match(e.message, /tvt-no-such-command/);
});

test('timeout kills the command and throws', async () => {
  // the command would exit 0 by itself after 20 s: ignoring the timeout resolves instead of throwing. 1 s leaves sh
  // ample time to write its pid before it is killed.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tdexec-'));
  try {
    const pidFile = path.join(dir, 'pid');
    const e = await rejects(run('sh', ['-c', `echo $$ > ${pidFile}; exec sleep 20`], { timeoutMs: 1000, reject: false }));
    assert.match(e.message, /timed out after 1000 ms/);
    const pid = Number(fs.readFileSync(pidFile, 'utf8'));
    assert.throws(() => process.kill(pid, 0), (x: NodeJS.ErrnoException) => x.code === 'ESRCH', 'the command was killed');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('abort signal kills the command and throws', async () => {
  const ac = new AbortController();
  setTimeout(() => ac.abort(), 50);
  const e = await rejects(run('sleep', ['5'], { signal: ac.signal, reject: false }));
  assert.match(e.message, /canceled/);
});

test('a command killed by a signal throws with exitCode null', async () => {
  const e = await rejects(run('sh', ['-c', 'kill -9 $$'], { reject: false }));
  assert.is(e.exitCode, null);
  assert.match(e.message, /SIGKILL/);
});

test('env is added to process.env', async () => {
  const r = await run('sh', ['-c', 'echo "$TVT_A:$PATH"'], { env: { TVT_A: 'yes' } });
  assert.ok(r.stdout.startsWith('yes:/'));
});

test('formatCommand quotes what a shell would split', () => {
  assert.is(formatCommand('ip', ['addr', 'add', '198.51.100.10/24', 'dev', 'eth0']), 'ip addr add 198.51.100.10/24 dev eth0');
  assert.is(formatCommand('sh', ['-c', "it's"]), `sh -c 'it'\\''s'`);
});

test.run();
