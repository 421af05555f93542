// `tandem snapshot` on a running node of a mirror lab (demo module replicating its data directory, node1 PRIM):
// the archive holds status.json with the module, the logs, `ip` and `nft` output of the node's own namespace, and
// none of the cluster key's forms. Prints how long the snapshot took (no bound asserted).
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { StatusView } from '../../src/daemon/views.js';
import { startPair } from '../../src/lab/failover.js';
import type { Lab } from '../../src/lab/lab.js';
import { createMirrorLab, DEMO_VIP } from '../../src/lab/mirror-lab.js';
import type { SnapshotResult } from '../../src/services/snapshot.js';
import { archiveMembers, assertNoKey } from '../unit/snapshot-archive.js';

test('snapshot of a running PRIM: status, logs, ip and nft output, replication, and not the key', async () => {
  let lab: Lab | null = null;
  try {
    lab = await createMirrorLab({ pulse: '200ms', timeout: '1s', replicate: true });
    const l = lab;
    await startPair(l);

    const file = path.join(l.dir, 'node1', 'support.tar.gz');
    const t0 = Date.now();
    const r = await l.cli('node1', ['snapshot', '--json', file]);
    const ms = Date.now() - t0;
    const out = JSON.parse(r.stdout) as SnapshotResult;
    const m = await archiveMembers(file);
    console.log(`  snapshot of node1: ${ms} ms, ${out.members.length} members, ${fs.statSync(file).size} bytes compressed, failed: ${JSON.stringify(out.failed)}`);
    assert.is(out.file, file);
    assert.is(out.node, 'node1');
    assert.ok(out.daemon);
    const text = (n: string) => {
      const b = m.get(n);
      assert.ok(b, `member ${n} missing; members: ${[...m.keys()].join(', ')}`);
      return b!.toString('utf8');
    };
    const st = JSON.parse(text('daemon/status.json')) as StatusView;
    assert.is(st.node, 'node1');
    assert.is(st.modules[0]!.module, 'demo');
    assert.is(st.modules[0]!.state, 'PRIM');
    const rep = JSON.parse(text('daemon/modules/demo/replication.json')) as { replication: { dirs: string[]; role: string } };
    assert.equal(rep.replication.dirs, ['/srv/demo/data']);
    assert.ok(Array.isArray(JSON.parse(text('daemon/modules/demo/resources.json'))));
    assert.match(text('home/log/demo.log'), 'PRIM');
    assert.ok(text('home/log/daemon.log').length > 0);
    assert.match(text('home/modules/demo/userconfig.xml'), '/srv/demo/data');
    assert.ok(m.has('home/state/demo.json'), 'state file');
    // the node's own namespace: its lab address and the VIP it holds as PRIM
    const ipAddr = text('commands/ip-addr.txt');
    assert.match(ipAddr, l.addr('node1'));
    assert.match(ipAddr, DEMO_VIP);
    assert.match(text('commands/ip-route.txt'), '$ ip route');
    assert.match(text('commands/nft-ruleset.txt'), '$ nft list ruleset');
    assert.match(text('system/mountinfo.txt'), 'fuse', 'the replicated directory is a FUSE mount');
    assert.not.ok(out.failed.some((f) => /^(ip|nft) /.test(f.command)), JSON.stringify(out.failed));
    const key = Buffer.from(fs.readFileSync(path.join(l.paths('node1').home, 'cluster.key'), 'utf8').trim(), 'hex');
    assert.is(key.length, 32);
    assertNoKey(file, m, key);
    assert.equal(out.redacted, []);
  } finally {
    await lab?.down();
  }
});

test.run();
