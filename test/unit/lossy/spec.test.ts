import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { UserError } from '../../../src/errors.js';
import { lossyDirs, resolveSpec, type LabSpec } from '../../../src/lab/spec.js';

const refused = (p: Partial<LabSpec>, what: RegExp) =>
  assert.throws(() => resolveSpec(p), (e: Error) => e instanceof UserError && what.test(e.message));

test('lossy disks are off by default; true covers every private dir, a list some of them', () => {
  const dirs = ['/srv/a', '/srv/b'];
  assert.equal(lossyDirs(resolveSpec({ privateDirs: dirs })), []);
  assert.is(resolveSpec().lossyPendingLimitBytes, 64 << 20);
  assert.equal(lossyDirs(resolveSpec({ privateDirs: dirs, lossyDisks: true })), [{ dir: '/srv/a', index: 0 }, { dir: '/srv/b', index: 1 }]);
  assert.equal(lossyDirs(resolveSpec({ privateDirs: dirs, lossyDisks: ['/srv//b'] })), [{ dir: '/srv/b', index: 1 }], 'paths normalized as privateDirs are');
});

test('a lossy disk must be a private dir; the pending limit at least 1 MiB', () => {
  refused({ privateDirs: ['/srv/a'], lossyDisks: ['/srv/x'] }, /lossy disk "\/srv\/x" is not one of the private dirs/);
  refused({ lossyPendingLimitBytes: 4096 }, /lossyPendingLimitBytes 4096/);
  refused({ lossyPendingLimitBytes: (1 << 20) + 0.5 }, /lossyPendingLimitBytes/);
});

test('a lab.json written before lossy disks existed reads as none', () => {
  const old = { ...resolveSpec(), lossyDisks: undefined } as unknown as LabSpec;
  assert.equal(lossyDirs(old), []);
});

test.run();
