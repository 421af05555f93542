// syncFilesystem (src/platform/syncfs.ts): `sync -f` with a timeout. A stand-in command that ignores SIGTERM and
// sleeps plays a filesystem that does not answer. The test starts it (through syncFilesystem) and waits until the
// process it recorded is gone. Files: /tmp/tandem-syncfs-*; removed at the end.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ExternalError } from '../../../src/errors.js';
import { syncFilesystem } from '../../../src/platform/syncfs.js';
import { waitFor } from '../wait-for.js';

test('sync -f on this directory resolves; a sync that hangs is killed and reported after the timeout', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-syncfs-'));
  try {
    await syncFilesystem(dir);
    const hung = path.join(dir, 'hung-sync');
    const pidFile = path.join(dir, 'pid');
    fs.writeFileSync(hung, `#!/bin/sh\ntrap '' TERM\necho $$ > ${pidFile}\nexec sleep 1000\n`, { mode: 0o755 });
    const e = await syncFilesystem(dir, { timeoutMs: 200, command: hung }).then(() => null, (x: unknown) => x);
    assert.instance(e, ExternalError);
    assert.match((e as Error).message, /timed out after 200 ms|did not finish within 200 ms/);
    const pid = Number(fs.readFileSync(pidFile, 'utf8'));
    await waitFor(() => { try { process.kill(pid, 0); return false; } catch { return true; } }, 10_000, `the hung sync (pid ${pid}) to be gone`);
    const failing = path.join(dir, 'failing-sync');
    fs.writeFileSync(failing, '#!/bin/sh\necho "sync: error syncing: Input/output error" >&2\nexit 1\n', { mode: 0o755 });
    const f = await syncFilesystem(dir, { command: failing }).then(() => null, (x: unknown) => x);
    assert.instance(f, ExternalError);
    assert.match((f as ExternalError).stderr, /Input\/output error/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
