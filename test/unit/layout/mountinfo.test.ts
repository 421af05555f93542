import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  escapeMountinfo, formatMountinfo, fuseConnection, identityOf, parseMountinfo, stackAt, underlyingMount, unescapeMountinfo,
} from '../../../src/replication/layout/mountinfo.js';
import { classifyDir } from '../../../src/replication/layout/state.js';

const TABLE = [
  '22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw,discard',
  '36 22 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue',
  '65 22 254:0 /srv/a\\040b/d /run/x\\134y\\011z\\012w rw,relatime shared:7 master:3 propagate_from:2 - ext4 /dev/vda rw,discard',
  '70 22 0:52 / /srv/a\\040b/d rw,nosuid,nodev,relatime shared:9 - fuse.tandem tandemfs rw,user_id=0,group_id=0',
  '71 22 0:60 / /media/my\\040disk rw - tmpfs my\\040tmp\\134fs rw,size=1024k',
  '',
].join('\n');

test('parses every field and unescapes \\040, \\011, \\012 and \\134 in root, mount point and source', () => {
  const e = parseMountinfo(TABLE);
  assert.is(e.length, 5);
  assert.equal(e[1], {
    id: 36, parentId: 22, dev: '98:0', root: '/mnt1', mountPoint: '/mnt2', options: ['rw', 'noatime'], optional: ['master:1'],
    fstype: 'ext3', source: '/dev/root', superOptions: ['rw', 'errors=continue'],
  });
  assert.is(e[2]!.root, '/srv/a b/d');
  assert.is(e[2]!.mountPoint, '/run/x\\y\tz\nw');
  assert.equal(e[2]!.optional, ['shared:7', 'master:3', 'propagate_from:2']);
  assert.is(e[2]!.fstype, 'ext4');
  assert.is(e[3]!.mountPoint, '/srv/a b/d');
  assert.equal(e[3]!.optional, ['shared:9']);
  assert.is(e[4]!.mountPoint, '/media/my disk');
  assert.is(e[4]!.source, 'my tmp\\fs');
  assert.equal(e[4]!.optional, []);
});

test('escape and unescape are inverses for the characters the kernel escapes; formatting round-trips', () => {
  const odd = '/a b\tc\nd\\e-f#g';
  assert.is(escapeMountinfo(odd), '/a\\040b\\011c\\012d\\134e-f#g');
  assert.is(unescapeMountinfo(escapeMountinfo(odd)), odd);
  const e = parseMountinfo(TABLE);
  assert.equal(parseMountinfo(formatMountinfo(e)), e);
});

test('malformed lines are skipped, not half parsed', () => {
  const e = parseMountinfo([
    'garbage',
    '1 2 3 4 5 6 7',
    '30 22 8:1 / /x rw shared:1 ext4 /dev/sdb1 rw',
    'x 22 8:1 / /x rw - ext4 /dev/sdb1 rw',
    '31 22 8:1 / /y rw -',
    '32 22 8:1 / /z rw - ext4 /dev/sdb1 rw',
  ].join('\n'));
  assert.equal(e.map((x) => x.mountPoint), ['/z']);
});

test('a FUSE mount\'s fusectl connection is its device number', () => {
  const [fuse] = parseMountinfo('70 22 0:52 / /d rw - fuse.tandem tandemfs rw\n');
  assert.is(fuseConnection(fuse!), 52);
  const [big] = parseMountinfo('70 22 1:3 / /d rw - fuse.tandem tandemfs rw\n');
  assert.is(fuseConnection(big!), (1 << 20) | 3);
});

test('stackAt follows parent ids bottom up, whatever the file order', () => {
  const e = parseMountinfo([
    '22 1 254:0 / / rw - ext4 /dev/vda rw',
    '82 81 0:52 / /d rw - fuse.tandem tandemfs rw',
    '81 80 254:0 /d /d ro - ext4 /dev/vda rw',
    '80 22 8:1 / /d rw - ext4 /dev/sdb1 rw',
  ].join('\n'));
  assert.equal(stackAt(e, '/d').map((x) => x.id), [80, 81, 82]);
  assert.equal(stackAt(e, '/nothing'), []);
});

test('identityOf: where a directory lives in its filesystem, through nested and bind mounts', () => {
  const e = parseMountinfo([
    '22 1 254:0 / / rw - ext4 /dev/vda rw',
    '40 22 8:1 / /srv rw - ext4 /dev/sdb1 rw',
    '41 40 8:1 /exports/app /srv/app rw - ext4 /dev/sdb1 rw',
    '42 22 254:0 /srv-not /srv-not rw - ext4 /dev/vda rw',
  ].join('\n'));
  assert.equal(identityOf(e, '/var/lib/x'), { dev: '254:0', root: '/var/lib/x' });
  assert.equal(identityOf(e, '/srv/data'), { dev: '8:1', root: '/data' });
  assert.equal(identityOf(e, '/srv/app/db'), { dev: '8:1', root: '/exports/app/db' });
  assert.is(underlyingMount(e, '/srv-notes')!.id, 22, 'path segments, not string prefixes');
  assert.is(underlyingMount(e, '/srv/app')!.id, 40, 'a mount exactly at the path does not hold it');
});

const D = '/srv/my data';
const P = '/run/tandem/backing/db/0';
const base = '22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw';
const bindP = `60 22 254:0 ${escapeMountinfo(D)} ${P} rw,relatime - ext4 /dev/vda rw`;
const fuseD = `61 22 0:52 / ${escapeMountinfo(D)} rw,nosuid,nodev shared:5 - fuse.tandem tandemfs rw`;
const roD = `62 22 254:0 ${escapeMountinfo(D)} ${escapeMountinfo(D)} ro,relatime shared:1 - ext4 /dev/vda rw`;
const rwD = `62 22 254:0 ${escapeMountinfo(D)} ${escapeMountinfo(D)} rw,relatime shared:1 - ext4 /dev/vda rw`;
const layoutOf = (...lines: string[]) => classifyDir(parseMountinfo([base, ...lines].join('\n')), D, P).layout;

test('classifyDir tells the complete layouts from partial, foreign and none', () => {
  assert.is(layoutOf(), 'none');
  assert.is(layoutOf(bindP, fuseD), 'primary');
  assert.is(layoutOf(bindP, roD), 'secondary');
  assert.is(layoutOf(bindP), 'partial', 'crashed between the bind and the FUSE mount');
  assert.is(layoutOf(fuseD), 'partial', 'P already gone');
  assert.is(layoutOf(bindP, rwD), 'partial', 'the self bind is not read-only yet');
  assert.is(layoutOf(`60 22 254:0 /elsewhere ${P} rw - ext4 /dev/vda rw`), 'partial', 'P holds a bind of something else');
  assert.is(layoutOf(`63 22 8:1 / ${escapeMountinfo(D)} rw - ext4 /dev/sdb1 rw`), 'foreign');
  assert.is(layoutOf(`63 22 0:70 / ${escapeMountinfo(D)} rw - fuse.sshfs me@host: rw`), 'foreign', 'another FUSE file system');
  // D inside a FUSE filesystem (sshfs, the lab's lossy disk): tandem's binds of D carry that filesystem's type
  const fuseBase = `23 22 0:80 / /srv rw - fuse.tandem-lossy lossy:node1/srv rw`;
  const onFuse = (...lines: string[]) => classifyDir(parseMountinfo([base, fuseBase, ...lines].join('\n')), D, P);
  const bindPf = `60 23 0:80 /my\\040data ${P} rw - fuse.tandem-lossy lossy:node1/srv rw`;
  const roDf = `62 23 0:80 /my\\040data ${escapeMountinfo(D)} ro - fuse.tandem-lossy lossy:node1/srv rw`;
  assert.is(onFuse(bindPf, roDf).layout, 'secondary', 'a read-only self bind of D on a FUSE filesystem is tandem\'s');
  assert.equal(onFuse(bindPf, roDf).onDir.map((m) => m.kind), ['self-bind']);
  assert.is(onFuse(bindPf, `61 23 0:52 / ${escapeMountinfo(D)} rw - fuse.tandem tandemfs rw`).layout, 'primary');
  assert.is(onFuse(`63 23 0:70 / ${escapeMountinfo(D)} rw - fuse.sshfs me@host: rw`).layout, 'foreign', 'another FUSE fs on D');
  const s = classifyDir(parseMountinfo([base, bindP, fuseD].join('\n')), D, P);
  assert.equal(s.onDir.map((m) => m.kind), ['fuse']);
  assert.is(s.backingBind!.id, 60);
});

test.run();
