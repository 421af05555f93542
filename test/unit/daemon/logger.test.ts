// The daemon's Logger on a disk that refuses writes: /dev/full (every write fails with ENOSPC) behind a symlink in a
// temporary directory, then a regular file once "space is freed". No root needed; the clock of the retry is injected.
// Files: /tmp/tandem-logger-*; removed after each test.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Logger } from '../../../src/daemon/logger.js';
import { waitFor } from '../wait-for.js';

function captureStderr(): { lines: string[]; restore(): void } {
  const lines: string[] = [];
  const orig = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string | Uint8Array) => {
    lines.push(String(chunk));
    return true;
  }) as typeof process.stderr.write;
  return { lines, restore: () => { process.stderr.write = orig; } };
}

test('a log on a full disk: the process keeps running, says so once, counts what it lost, and catches up when it can write', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-logger-'));
  const file = path.join(dir, 'daemon.log');
  fs.symlinkSync('/dev/full', file);
  let now = 0;
  const err = captureStderr();
  const log = new Logger(file, false, '', () => now);
  try {
    for (let i = 0; i < 10; i++) log.info(`line ${i}`);
    await waitFor(() => log.failure(), 3000, 'the logger to notice ENOSPC');
    assert.is(log.failure()!.code, 'ENOSPC');
    for (let i = 10; i < 15; i++) log.warn(`line ${i}`);
    assert.is(log.failure()!.lost, 15, 'every line counted');
    const notices = err.lines.filter((l) => l.includes('cannot write the log'));
    assert.is(notices.length, 1, err.lines.join(''));
    assert.match(notices[0]!, /ENOSPC.*the daemon keeps running/);

    now += Logger.RETRY_MS; // the retry: still full; no second notice
    log.info('line 15');
    await waitFor(() => log.failure()?.lost === 16 && !err.lines.slice(1).some((l) => l.includes('cannot write')), 3000, 'a failed retry');
    log.info('line 16'); // before the next retry: only counted
    assert.is(log.failure()!.lost, 17);

    fs.rmSync(file); // space freed: the next retry gets through
    now += Logger.RETRY_MS;
    log.error('line 17');
    await waitFor(() => log.failure() === null, 3000, 'the log to recover');
    log.info('line 18');
    await log.close();
    const text = fs.readFileSync(file, 'utf8');
    assert.match(text, /warn  17 log line\(s\) lost since \S+ \(ENOSPC\); the daemon kept running\n.*error line 17\n.*info  line 18\n$/);
    assert.is(fs.statSync(file).mode & 0o777, 0o600);
    assert.is(err.lines.filter((l) => l.includes('cannot write the log')).length, 1);
  } finally {
    err.restore();
    await log.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a log whose directory cannot be created, and a closed stdout: no throw, no crash', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-logger-'));
  fs.writeFileSync(path.join(dir, 'not-a-dir'), '');
  const err = captureStderr();
  const log = new Logger(path.join(dir, 'not-a-dir', 'log', 'm.log'), false);
  try {
    log.info('x');
    await waitFor(() => log.failure(), 3000, 'the failure');
    assert.is(log.failure()!.code, 'ENOTDIR');
    process.stdout.emit('error', Object.assign(new Error('write EPIPE'), { code: 'EPIPE' })); // the journal went away
  } finally {
    err.restore();
    await log.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('log files are created 0600 in a 0700 directory; an existing world-readable log is made 0600', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-logger-'));
  try {
    const fresh = new Logger(path.join(dir, 'log', 'daemon.log'), false);
    fresh.info('hello');
    await fresh.close();
    assert.is(fs.statSync(path.join(dir, 'log')).mode & 0o777, 0o700);
    assert.is(fs.statSync(path.join(dir, 'log', 'daemon.log')).mode & 0o777, 0o600);
    const old = path.join(dir, 'log', 'web.log');
    fs.writeFileSync(old, 'old line\n', { mode: 0o644 });
    fs.chmodSync(old, 0o644);
    const l = new Logger(old, false);
    l.info('new line');
    await l.close();
    assert.is(fs.statSync(old).mode & 0o777, 0o600);
    assert.match(fs.readFileSync(old, 'utf8'), /^old line\n.*info  new line\n$/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
