import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Lab } from '../../src/lab/lab.js';
import {
  CommitRecorder,
  createPostgresLab,
  PG_DATA,
  PG_MODULE,
  PG_VIP,
  postgresPids,
  psql,
  runPgbench,
  startPair,
  waitForSql,
  waitForStates,
} from '../../src/lab/postgres.js';

// PostgreSQL as the application of a mirror module (examples/postgres) on real daemons in network namespaces:
// start_prim initialises and starts it on the PRIM, the client commits through the VIP, and `tandem stop` on the PRIM
// hands it over to the other node. Prints the time of each phase.
test('postgres module: starts on the PRIM, serves commits through the VIP, hands over to node2 on stop', async () => {
  let lab: Lab | null = null;
  let ok = false;
  const t0 = performance.now();
  let last = t0;
  const phase = (what: string) => {
    const now = performance.now();
    console.log(`  ${what}: ${((now - last) / 1000).toFixed(1)} s`);
    last = now;
  };
  const moduleLog = (node: string) => fs.readFileSync(path.join(lab!.paths(node).home, 'log', `${PG_MODULE}.log`), 'utf8');
  try {
    lab = await createPostgresLab({ pulse: '200ms', timeout: '1s' });
    const l = lab;
    phase('lab up, daemons answering');

    await startPair(l, 'node1', 'node2');
    phase('node1 PRIM / node2 SECOND (start_prim: initdb + start on node1)');

    // start_prim initialised and started PostgreSQL on node1 only, with a data dir owned by postgres, mode 0700
    assert.ok(postgresPids(l, 'node1').length > 0, 'postgres runs on node1');
    assert.equal(postgresPids(l, 'node2'), [], 'no postgres on node2 while SECOND');
    const data1 = path.join(l.paths('node1').root, PG_DATA);
    const st = fs.statSync(data1);
    assert.is(st.mode & 0o777, 0o700, 'data dir mode 0700');
    assert.is(st.uid, Number((await l.exec('node1', ['id', '-u', 'postgres'])).stdout.trim()), 'data dir owned by postgres');
    assert.ok(fs.existsSync(path.join(data1, 'PG_VERSION')), 'initdb ran on node1');
    assert.ok(moduleLog('node1').includes('initialising a new PostgreSQL cluster'), 'start_prim logged the initdb');
    assert.is((await psql(l, 'client', 'SHOW data_checksums')).trim(), 'on');
    assert.is(await waitForSql(l, 'client'), PG_VIP);

    const rec = new CommitRecorder(l);
    const s1 = await rec.run(200, 60_000);
    phase(`200 transactions through the VIP (${s1.acknowledged} acknowledged, ${s1.sessions} session(s))`);
    assert.is(s1.acknowledged, 200, `every commit acknowledged: ${s1.errors.join('; ')}`);
    const v1 = await rec.verify('node1');
    assert.equal(v1.missing, [], 'every acknowledged commit is on node1');
    assert.is(v1.present, 200);

    // clean handover: stop_prim stops postgres on node1, node2 goes ALONE and start_prim starts it there
    await l.cli('node1', ['stop', '-m', PG_MODULE]);
    await waitForStates(l, { node1: 'STOP', node2: 'ALONE' }, 60_000);
    phase('tandem stop on node1 → node2 ALONE');
    assert.equal(postgresPids(l, 'node1'), [], 'no postgres process left on node1');
    assert.ok(moduleLog('node1').includes('postgres stopped (fast shutdown'), 'stop_prim stopped postgres cleanly');
    assert.ok(postgresPids(l, 'node2').length > 0, 'postgres runs on node2');

    // /srv/pg/data is replicated: node2 started on node1's cluster, with every acknowledged commit
    assert.not.ok(moduleLog('node2').includes('initialising a new PostgreSQL cluster'), 'node2 did not run initdb');
    assert.is(await waitForSql(l, 'client'), PG_VIP);
    const v1b = await rec.verify('node2');
    assert.equal(v1b.missing, [], 'every commit acknowledged on node1 is on node2 after the handover');
    assert.is(v1b.present, 200);

    assert.is(await waitForSql(l, 'client'), PG_VIP);
    const rec2 = new CommitRecorder(l, { firstId: 1001 });
    const s2 = await rec2.run(20, 30_000);
    assert.is(s2.acknowledged, 20, `every commit acknowledged after the handover: ${s2.errors.join('; ')}`);
    const v2 = await rec2.verify('node2');
    assert.equal(v2.missing, [], 'commits made through the VIP after the handover are on node2');
    phase('client served by node2 through the VIP (20 transactions)');

    const bench = await runPgbench(l, { seconds: 3, clients: 2, jobs: 1 });
    assert.ok(bench.tps > 0 && bench.transactions > 0, bench.output);
    phase(`pgbench -i -s 1, then 3 s with 2 clients through the VIP: ${bench.tps.toFixed(0)} tps`);
    ok = true;
  } finally {
    if (!ok && lab) {
      for (const n of ['node1', 'node2']) {
        try {
          console.log(`--- ${n} ${PG_MODULE}.log (tail)\n${moduleLog(n).split('\n').slice(-40).join('\n')}`);
        } catch {
          // no log yet
        }
      }
    }
    await lab?.down();
    console.log(`  total (with teardown): ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
});

test.run();
