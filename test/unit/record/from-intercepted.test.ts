import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fsChangeOf } from '../../../src/replication/record/from-intercepted.js';

test('every intercepted operation maps to the change the record needs (or none, or unknown)', () => {
  const cases: [Parameters<typeof fsChangeOf>[0], ReturnType<typeof fsChangeOf>][] = [
    [{ op: 'write', path: 'a', offset: 5, data: new Uint8Array(3) }, { op: 'write', path: 'a', offset: 5, length: 3 }],
    [{ op: 'fallocate', path: 'a', offset: 8, length: 100 }, { op: 'write', path: 'a', offset: 8, length: 100 }],
    [{ op: 'truncate', path: 'a', size: 9 }, { op: 'truncate', path: 'a', size: 9 }],
    [{ op: 'create', path: 'a' }, { op: 'create', path: 'a' }],
    [{ op: 'mknod', path: 'p' }, { op: 'mknod', path: 'p' }],
    [{ op: 'mkdir', path: 'd' }, { op: 'mkdir', path: 'd' }],
    [{ op: 'symlink', path: 'l' }, { op: 'symlink', path: 'l' }],
    [{ op: 'unlink', path: 'a' }, { op: 'unlink', path: 'a' }],
    [{ op: 'rmdir', path: 'd' }, { op: 'rmdir', path: 'd' }],
    [{ op: 'rename', from: 'a', to: 'b' }, { op: 'rename', from: 'a', to: 'b' }],
    [{ op: 'link', path: 'h' }, { op: 'create', path: 'h' }],
    [{ op: 'link', from: 'a', to: 'h' }, { op: 'create', path: 'h' }],
    [{ op: 'chmod', path: 'a' }, { op: 'chmod', path: 'a' }],
    [{ op: 'chown', path: 'a' }, { op: 'chown', path: 'a' }],
    [{ op: 'utimens', path: 'a' }, { op: 'utimens', path: 'a' }],
    [{ op: 'removexattr', path: 'a' }, { op: 'xattr', path: 'a' }],
    [{ op: 'utimens', path: '' }, 'none'],
    [{ op: 'setxattr', path: '.' }, 'none'],
    [{ op: 'sync', path: 'a' }, 'none'],
    [{ op: 'splice', path: 'a' }, 'unknown'],
  ];
  for (const [input, want] of cases) assert.equal(fsChangeOf(input), want, JSON.stringify(input));
});

test.run();
