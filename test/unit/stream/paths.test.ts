import { constants as C, promises as fsp } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { UserError } from '../../../src/errors.js';
import { realFs } from '../../../src/replication/stream/fs.js';
import { checkRelPath, compileFilter, NAME_MAX, openParent, PATH_MAX } from '../../../src/replication/stream/paths.js';
import { rmrf, tmpDir } from './helpers.js';

test('valid relative paths are accepted and split into components', () => {
  assert.equal(checkRelPath('a'), { ok: true, parts: ['a'] });
  assert.equal(checkRelPath('a/b/c.db'), { ok: true, parts: ['a', 'b', 'c.db'] });
  assert.equal(checkRelPath('...'), { ok: true, parts: ['...'] }); // a legal name, not a parent reference
  assert.equal(checkRelPath('.hidden/..x'), { ok: true, parts: ['.hidden', '..x'] });
  assert.equal(checkRelPath('with\nnewline'), { ok: true, parts: ['with\nnewline'] });
  assert.equal(checkRelPath('x'.repeat(NAME_MAX)), { ok: true, parts: ['x'.repeat(NAME_MAX)] });
  assert.equal(checkRelPath('.', { allowRoot: true }), { ok: true, parts: [] });
});

test('every rejection: absolute, .., ., empty components, NUL, long names and paths, bad Unicode, the root', () => {
  const cases: Array<[unknown, RegExp, string?]> = [
    ['/etc/passwd', /absolute/],
    ['../x', /"\.\." component/],
    ['a/../../x', /"\.\." component/],
    ['a/..', /"\.\." component/],
    ['..', /"\.\." component/],
    ['./a', /"\." component/],
    ['a/./b', /"\." component/],
    ['a//b', /empty component/],
    ['a/', /empty component/],
    ['', /empty path/],
    ['a\0b', /NUL/],
    ['x'.repeat(NAME_MAX + 1), /longer than 255 bytes/, 'ENAMETOOLONG'],
    ['é'.repeat(128), /longer than 255 bytes/, 'ENAMETOOLONG'], // 256 bytes in UTF-8
    [Array(1100).fill('abc').join('/'), /longer than 4095 bytes/, 'ENAMETOOLONG'],
    ['bad\ud800name', /not valid Unicode/],
    ['.', /replicated directory itself/],
    [42, /not a string/],
    [null, /not a string/],
  ];
  for (const [p, re, code] of cases) {
    const r = checkRelPath(p);
    assert.not.ok(r.ok, `${JSON.stringify(p)?.slice(0, 40)} accepted`);
    if (!r.ok) {
      assert.match(r.reason, re, `${JSON.stringify(p)?.slice(0, 40)}: ${r.reason}`);
      assert.is(r.code, code ?? 'EINVAL');
    }
  }
  assert.is(Buffer.byteLength(Array(1024).fill('abc').join('/')), PATH_MAX - 1);
  assert.ok(checkRelPath(Array(1024).fill('abc').join('/')).ok, 'exactly PATH_MAX - 1 bytes is fine');
});

test('no Unicode normalization or case folding: distinct names stay distinct', () => {
  const nfc = 'caf\u00e9';
  const nfd = 'cafe\u0301';
  const a = checkRelPath(nfc);
  const b = checkRelPath(nfd);
  assert.ok(a.ok && b.ok);
  if (a.ok && b.ok) assert.is.not(a.parts[0], b.parts[0]);
  const up = checkRelPath('README');
  assert.ok(up.ok && up.parts[0] === 'README');
});

test('openParent walks real directories and names the target through the held descriptor', async () => {
  const dir = await tmpDir('paths');
  try {
    await fsp.mkdir(path.join(dir, 'a/b'), { recursive: true });
    await fsp.writeFile(path.join(dir, 'a/b/f'), 'inside');
    const root = await realFs.open(dir, C.O_RDONLY | C.O_DIRECTORY);
    try {
      const t = await openParent(realFs, root, ['a', 'b', 'f']);
      assert.is(t.name, 'f');
      assert.match(t.target, /^\/proc\/self\/fd\/\d+\/f$/);
      assert.is(await fsp.readFile(t.target, 'utf8'), 'inside');
      await t.close();
      const r = await openParent(realFs, root, []);
      assert.is(r.name, null);
      assert.is(r.dir, root);
    } finally {
      await root.close();
    }
  } finally {
    await rmrf(dir);
  }
});

test('a parent that is a symlink (to outside or inside the root), a file, or missing is refused', async () => {
  const dir = await tmpDir('paths');
  const outside = await tmpDir('outside');
  try {
    await fsp.mkdir(path.join(dir, 'real'));
    await fsp.symlink(outside, path.join(dir, 'escape'));
    await fsp.symlink('real', path.join(dir, 'inner'));
    await fsp.writeFile(path.join(dir, 'file'), '');
    const root = await realFs.open(dir, C.O_RDONLY | C.O_DIRECTORY);
    try {
      const codes = async (parts: string[]) => openParent(realFs, root, parts).then(() => 'opened', (e: NodeJS.ErrnoException) => e.code);
      assert.ok(['ENOTDIR', 'ELOOP'].includes((await codes(['escape', 'x'])) as string));
      assert.ok(['ENOTDIR', 'ELOOP'].includes((await codes(['inner', 'x'])) as string));
      assert.is(await codes(['file', 'x']), 'ENOTDIR');
      assert.is(await codes(['missing', 'x']), 'ENOENT');
      assert.is(await codes(['real', 'x']), 'opened');
      // the last component may itself be a symlink: openParent never follows it, callers use no-follow operations
      assert.is(await codes(['escape']), 'opened');
    } finally {
      await root.close();
    }
    assert.equal(await fsp.readdir(outside), []);
  } finally {
    await rmrf(dir);
    await rmrf(outside);
  }
});

test('a parent swapped for a symlink after it was opened: the operation still lands inside the root', async () => {
  const dir = await tmpDir('paths');
  const outside = await tmpDir('outside');
  try {
    await fsp.mkdir(path.join(dir, 'sub'));
    const root = await realFs.open(dir, C.O_RDONLY | C.O_DIRECTORY);
    try {
      const t = await openParent(realFs, root, ['sub', 'victim']);
      // the swap between check and use
      await fsp.rename(path.join(dir, 'sub'), path.join(dir, 'moved'));
      await fsp.symlink(outside, path.join(dir, 'sub'));
      await fsp.writeFile(t.target, 'data', { flag: 'wx' });
      await t.close();
      assert.equal(await fsp.readdir(outside), [], 'nothing written outside the root');
      assert.is(await fsp.readFile(path.join(dir, 'moved/victim'), 'utf8'), 'data');
    } finally {
      await root.close();
    }
  } finally {
    await rmrf(dir);
    await rmrf(outside);
  }
});

test('filter: notreplicated path is a component-wise prefix', () => {
  const f = compileFilter([{ path: 'logs' }, { path: 'tmp/cache' }]);
  assert.ok(f.excluded('logs', true));
  assert.ok(f.excluded('logs/app.log', false));
  assert.ok(f.excluded('logs/a/b', false));
  assert.not.ok(f.excluded('logs2', false));
  assert.not.ok(f.excluded('logsx/a', false));
  assert.not.ok(f.excluded('tmp', true));
  assert.ok(f.excluded('tmp/cache/x', false));
  assert.not.ok(f.excluded('tmp/cache2', false));
  assert.not.ok(f.excluded('data/logs', false), 'relative to the replicated dir, not anywhere');
  assert.not.ok(f.excluded('.', true));
});

test('filter: regexpath excludes matches and everything below a matching directory', () => {
  const f = compileFilter([{ regexpath: '\\.log$' }, { regexpath: '^cache/' }]);
  assert.ok(f.excluded('a/b.log', false));
  assert.not.ok(f.excluded('a/b.log.gz', false));
  assert.ok(f.excluded('dir.log', true));
  assert.ok(f.excluded('dir.log/inner.txt', false), 'below an excluded directory');
  assert.ok(f.excluded('cache/x', false));
  assert.not.ok(f.excluded('cache', true));
  assert.not.ok(f.excluded('data.db', false));
});

test('filter: "!re" replicates only matching files; directories are never excluded by it', () => {
  const f = compileFilter([{ regexpath: '!\\.db$' }, { regexpath: '!^conf/' }, { path: 'old' }]);
  assert.not.ok(f.excluded('a/b.db', false));
  assert.ok(f.excluded('a/b.txt', false));
  assert.not.ok(f.excluded('conf/x.ini', false));
  assert.not.ok(f.excluded('a', true), 'the directories above a replicated file exist on both nodes');
  assert.ok(f.excluded('old/x.db', false), 'a path exclusion still wins');
  assert.not.ok(f.excluded('.', true));
});

test('filter: an invalid regexpath is a UserError', () => {
  assert.throws(() => compileFilter([{ regexpath: '([' }]), (e: Error) => e instanceof UserError && /not a valid regular expression/.test(e.message));
});

test.run();
