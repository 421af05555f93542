// Which FUSE connections a lab teardown aborts before killing a node's processes (src/lab/teardown.ts): tandem's
// own mounts only (fuse.tandem over an anonymous device, fuseblk.tandem over a loop device), by fusectl number.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { tandemFuseConnectionsIn } from '../../../src/lab/teardown.js';

const MOUNTINFO = [
  '22 1 252:0 / / rw,relatime shared:1 - ext4 /dev/vda rw',
  '59 51 7:2 / /srv/bench/data rw,relatime - fuseblk.tandem /dev/loop2 rw,user_id=0,group_id=0,default_permissions,allow_other,blksize=4096',
  '60 51 0:61 / /srv/demo/data rw,nosuid,nodev,relatime - fuse.tandem tandem rw,user_id=0,group_id=0',
  '61 51 0:62 / /mnt/other rw,relatime - fuse.sshfs host:/ rw,user_id=0,group_id=0',
  '62 51 0:63 / /srv/lossy rw,relatime - fuse.lossy lossy rw',
  '63 51 7:2 / /srv/bench/again rw,relatime - fuseblk.tandem /dev/loop2 rw',
  '',
].join('\n');

test('tandem\'s FUSE mounts give their fusectl numbers (major << 20 | minor), once each; other FUSE mounts are left alone', () => {
  assert.equal(tandemFuseConnectionsIn(MOUNTINFO).sort((a, b) => a - b), [61, 7340034]); // 0:61, and 7:2 = 7 << 20 | 2
  assert.equal(tandemFuseConnectionsIn(''), []);
  assert.equal(tandemFuseConnectionsIn('garbage line\n1 2 x:y / /a - fuse.tandem t rw'), [], 'an unreadable device number is skipped');
});

test.run();
