import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { deriveKey, generateKey, KEY_BYTES, readKeyFile, writeKeyFile } from '../../../src/daemon/key.js';
import { BugError, UserError } from '../../../src/errors.js';

const dirs: string[] = [];
function tmp(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-key-'));
  dirs.push(d);
  return d;
}
test.after(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

async function rejects(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a rejection');
}

test('generateKey gives 32 fresh random bytes', () => {
  const a = generateKey();
  const b = generateKey();
  assert.is(a.length, KEY_BYTES);
  assert.is(a.equals(b), false);
});

test('writeKeyFile then readKeyFile round-trips; the file is hex + newline, mode 0600', async () => {
  const file = path.join(tmp(), 'cluster.key');
  const key = generateKey();
  await writeKeyFile(file, key);
  assert.is(fs.readFileSync(file, 'utf8'), `${key.toString('hex')}\n`);
  assert.is(fs.statSync(file).mode & 0o777, 0o600);
  assert.ok((await readKeyFile(file)).equals(key));
});

test('writeKeyFile refuses to replace an existing key without force and leaves it untouched', async () => {
  const file = path.join(tmp(), 'cluster.key');
  const first = generateKey();
  await writeKeyFile(file, first);
  const e = await rejects(writeKeyFile(file, generateKey()));
  assert.instance(e, UserError);
  assert.match(e.message, /identical on every node/);
  assert.match(e.message, /--force/);
  assert.match(e.message, /copy the new cluster\.key to every node/);
  assert.ok((await readKeyFile(file)).equals(first));
});

test('writeKeyFile with force replaces the key atomically, mode 0600, no leftover temp file', async () => {
  const dir = tmp();
  const file = path.join(dir, 'cluster.key');
  await writeKeyFile(file, generateKey());
  fs.chmodSync(file, 0o644);
  const second = generateKey();
  await writeKeyFile(file, second, { force: true });
  assert.ok((await readKeyFile(file)).equals(second));
  assert.is(fs.statSync(file).mode & 0o777, 0o600);
  assert.equal(fs.readdirSync(dir), ['cluster.key']);
});

test('writeKeyFile into a missing directory says which directory', async () => {
  const file = path.join(tmp(), 'nope', 'cluster.key');
  const e = await rejects(writeKeyFile(file, generateKey()));
  assert.instance(e, UserError);
  assert.match(e.message, /does not exist/);
  assert.ok(e.message.includes(path.dirname(file)));
});

test('writeKeyFile rejects a key of the wrong size as a bug', async () => {
  const e = await rejects(writeKeyFile(path.join(tmp(), 'k'), Buffer.alloc(16)));
  assert.instance(e, BugError);
});

test('readKeyFile: missing file tells how to create and distribute it', async () => {
  const file = path.join(tmp(), 'cluster.key');
  const e = await rejects(readKeyFile(file));
  assert.instance(e, UserError);
  assert.ok(e.message.includes(`no cluster key at ${file}`));
  assert.match(e.message, /tandem cluster genkey/);
  assert.match(e.message, /copy the file to every node/);
});

test('readKeyFile: a key readable by group or others is refused with the chmod to run', async () => {
  const file = path.join(tmp(), 'cluster.key');
  await writeKeyFile(file, generateKey());
  for (const mode of [0o644, 0o640, 0o604, 0o660]) {
    fs.chmodSync(file, mode);
    const e = await rejects(readKeyFile(file));
    assert.instance(e, UserError);
    assert.ok(e.message.includes(`chmod 600 ${file}`), e.message);
  }
  fs.chmodSync(file, 0o400);
  assert.is((await readKeyFile(file)).length, 32);
});

test('readKeyFile: a key owned by another user, or a symlink to one, is refused (that user could read or replace it)', async () => {
  const dir = tmp();
  const file = path.join(dir, 'cluster.key');
  const key = generateKey();
  await writeKeyFile(file, key);
  if (process.geteuid?.() === 0) {
    fs.chownSync(file, 1000, 1000);
    const e = await rejects(readKeyFile(file));
    assert.instance(e, UserError);
    assert.match(e.message, /owned by uid 1000, not root.*chown root:root/);
    assert.not.ok(e.message.includes(key.toString('hex')));
    fs.chownSync(file, 0, 0);
  }
  const elsewhere = path.join(dir, 'real.key');
  fs.renameSync(file, elsewhere);
  fs.symlinkSync(elsewhere, file);
  const e = await rejects(readKeyFile(file));
  assert.instance(e, UserError);
  assert.match(e.message, /is a symlink/);
  fs.rmSync(file);
  fs.renameSync(elsewhere, file);
  assert.ok((await readKeyFile(file)).equals(key));
});

test('readKeyFile: wrong length or non-hex content is refused without echoing the secret', async () => {
  const dir = tmp();
  const cases: Record<string, string> = {
    short: `${'ab'.repeat(16)}\n`,
    long: `${'ab'.repeat(33)}\n`,
    nonhex: `${'zz'.repeat(32)}\n`,
    empty: '',
    twoKeys: `${'ab'.repeat(32)}\n${'cd'.repeat(32)}\n`,
  };
  for (const [name, content] of Object.entries(cases)) {
    const file = path.join(dir, name);
    fs.writeFileSync(file, content, { mode: 0o600 });
    const e = await rejects(readKeyFile(file));
    assert.instance(e, UserError, name);
    assert.match(e.message, /expected 64 hexadecimal characters/);
    assert.match(e.message, /genkey --force|from another node/);
    if (content.length > 8) assert.not.ok(e.message.includes(content.trim().slice(0, 16)), `${name} leaks the content`);
  }
});

test('readKeyFile tolerates surrounding whitespace and upper case', async () => {
  const file = path.join(tmp(), 'cluster.key');
  const key = generateKey();
  fs.writeFileSync(file, `  ${key.toString('hex').toUpperCase()}\r\n\n`, { mode: 0o600 });
  assert.ok((await readKeyFile(file)).equals(key));
});

test('readKeyFile: a directory is not a key file', async () => {
  const dir = tmp();
  const sub = path.join(dir, 'cluster.key');
  fs.mkdirSync(sub, { mode: 0o700 });
  const e = await rejects(readKeyFile(sub));
  assert.instance(e, UserError);
  assert.match(e.message, /not a regular file/);
});

test('deriveKey: deterministic, one independent 32-byte key per purpose', () => {
  const key = generateKey();
  const hb = deriveKey(key, 'heartbeat');
  assert.is(hb.length, 32);
  assert.ok(hb.equals(deriveKey(Buffer.from(key), 'heartbeat')));
  const all = [key, hb, deriveKey(key, 'control'), deriveKey(key, 'replication')].map((b) => b.toString('hex'));
  assert.is(new Set(all).size, 4);
  assert.not.ok(deriveKey(generateKey(), 'heartbeat').equals(hb));
  assert.throws(() => deriveKey(Buffer.alloc(31), 'heartbeat'), (e: unknown) => e instanceof BugError);
});

test.run();
