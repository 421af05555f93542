// How tandem runs itself again (src/platform/self.ts): `node <script>` from the source tree, the file alone when it
// is the single binary (its argv[1] is a path inside the binary that no other process could open).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { isSingleBinary, tandemArgv, tandemExecutable } from '../../../src/platform/self.js';

const NODE = ['/usr/bin/node', '/opt/tandem/bin/tandem', 'daemon'];
const BINARY = ['bun', '/$bunfs/root/tandem', 'daemon'];

test('node entry: node and the script; $TANDEM_BIN is the script (it has a shebang)', () => {
  assert.not.ok(isSingleBinary(NODE));
  assert.equal(tandemArgv(NODE, '/usr/bin/node'), ['/usr/bin/node', '/opt/tandem/bin/tandem']);
  assert.is(tandemExecutable(NODE, '/usr/bin/node'), '/opt/tandem/bin/tandem');
});

test('single binary: the binary alone, never the embedded entry path', () => {
  assert.ok(isSingleBinary(BINARY));
  assert.equal(tandemArgv(BINARY, '/usr/local/bin/tandem'), ['/usr/local/bin/tandem']);
  assert.is(tandemExecutable(BINARY, '/usr/local/bin/tandem'), '/usr/local/bin/tandem');
});

test('no script (node -e): the executable alone, and `tandem` from PATH for scripts', () => {
  assert.equal(tandemArgv(['/usr/bin/node'], '/usr/bin/node'), ['/usr/bin/node']);
  assert.is(tandemExecutable(['/usr/bin/node'], '/usr/bin/node'), 'tandem');
});

test('this test process runs under node, not as the binary', () => {
  assert.not.ok(isSingleBinary());
  assert.equal(tandemArgv(), [process.execPath, process.argv[1]]);
});

test.run();
