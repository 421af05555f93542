// FileReplicators for unit tests: FakeMountSystem (nothing is mounted; backing paths are real temporary directories
// under <base>/<node>/run/backing/db/<i>), module `db` with one replicated dir <base>/data (`skip` not replicated).
import path from 'node:path';
import type { MirrorModuleConfig } from '../../src/config/types.js';
import { FileReplicator } from '../../src/replication/files/replicator.js';
import { FakeMountSystem } from '../../src/replication/layout/fake.js';

export function moduleCfg(dir: string): MirrorModuleConfig {
  return {
    name: 'db', mode: 'mirror', defaultprim: 'alone', failover: true,
    heart: { pulseMs: 500, timeoutMs: 5000, lans: ['default'] },
    vips: [],
    rfs: { async: 'second', syncdeltaMs: 0, port: 4900, replicated: [{ dir, mode: 'read_write', notreplicated: [{ path: 'skip' }] }] },
    splitbrain: null,
    user: { nicestoptimeoutMs: 30_000, forcestoptimeoutMs: 30_000, vars: {} },
    maxloop: 3, loopIntervalMs: 86_400_000, errd: null, checkers: [], rules: null,
  };
}

export function backingOf(base: string, node: string): string {
  return path.join(base, node, 'run', 'backing', 'db', '0');
}

export function testReplicator(o: { base: string; self: string; peer: string; port: number; key: Buffer; logs: string[] }): FileReplicator {
  const { self, logs } = o;
  const log = { info: (m: string) => logs.push(`${self} info ${m}`), warn: (m: string) => logs.push(`${self} warn ${m}`), error: (m: string) => logs.push(`${self} error ${m}`) };
  return new FileReplicator({
    module: 'db', self, peer: o.peer, cfg: moduleCfg(path.join(o.base, 'data')),
    home: { root: path.join(o.base, self, 'home'), runDir: path.join(o.base, self, 'run') },
    key: o.key, peerEndpoint: { host: '127.0.0.1', port: o.port, localAddress: '127.0.0.1' }, log,
    replicationFailed: (why) => logs.push(`${self} replication-failed ${why}`), layoutSystem: new FakeMountSystem(),
    syncFs: async () => {},
  });
}
