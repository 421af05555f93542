/**
 * A module's replication host: the process that runs its `FileReplicator` (FUSE interception, sink, sender and
 * receiver, reintegration) and its own replication listener (`<rfs port>`), and serves it to the daemon over the
 * unix socket of server.ts. Started by the daemon (`tandem __replication-host -m M`, client.ts), in a session of its
 * own, so that a daemon that dies or restarts leaves the application's mount served; the next daemon reattaches.
 *
 * It ends when the daemon asks (`shutdown`: the module left its layout) or on SIGTERM/SIGINT (it leaves its layout
 * first: an application still on the mount loses it, as when the module is stopped). Its log lines go to the
 * module's log with the prefix `[host PID] `; its stdout and stderr are appended there too (spawnReplicationHost).
 * Nothing here does synchronous I/O on a replicated dir: this process serves those mounts.
 */
import fs from 'node:fs/promises';
import { loadCluster, loadModule } from '../../config/load.js';
import { localIPv4Addrs, whoami } from '../../config/whoami.js';
import { readKeyFile } from '../../daemon/key.js';
import { Logger } from '../../daemon/logger.js';
import { UserError } from '../../errors.js';
import { homePaths, type Home } from '../../home.js';
import { realClock } from '../../platform/clock/real.js';
import { ReplicationHub } from '../files/hub.js';
import { FileReplicator } from '../files/replicator.js';
import { hostPaths } from './client.js';
import { knownPeer } from '../../daemon/mirror-peer.js';
import { ReplicationHostServer } from './server.js';

export async function runReplicationHost(home: Home, module: string, env: NodeJS.ProcessEnv): Promise<void> {
  const cluster = loadCluster(home);
  const cfg = loadModule(home, module, cluster);
  if (!cfg.rfs) throw new UserError(`module ${module} has no <rfs>: it has no replication host.`);
  const log = new Logger(homePaths.moduleLog(home, module), false, `[host ${process.pid}] `);
  const key = await readKeyFile(homePaths.clusterKey(home));
  const self = whoami(cluster, localIPv4Addrs(), env.TANDEM_NODE || undefined);
  const peer = knownPeer(home, cluster, self, module);
  if (!peer) throw new UserError(`module ${module}: this node does not know yet which other node it runs with; the daemon learns it first.`);
  await fs.mkdir(home.runDir, { recursive: true, mode: 0o700 });

  let ending: Promise<void> | null = null;
  let finished!: () => void;
  const done = new Promise<void>((r) => { finished = r; });
  const server = new ReplicationHostServer({
    socketPath: hostPaths.socket(home, module), module, home: home.root, log, clock: realClock,
    onShutdown: () => void end('asked by the daemon'),
  });
  await server.listen();
  const hub = new ReplicationHub({ cluster, self, key, log: (m) => log.warn(m) });
  const replicator = new FileReplicator({
    module, self, peer, cfg, home, key, log, peerEndpoint: hub.endpoint(cfg, peer),
    replicationFailed: (reason) => server.replicationFailed(reason),
    copyBehind: (reason) => server.copyBehind(reason),
  });
  hub.register(cfg, peer, (ch) => replicator.accept(ch));
  try {
    await hub.start();
  } catch (e) {
    await server.close();
    throw e;
  }
  const pidFile = hostPaths.pid(home, module);
  await fs.writeFile(`${pidFile}.tmp`, `${process.pid}\n`);
  await fs.rename(`${pidFile}.tmp`, pidFile);
  server.serve(replicator);
  log.info(`replication host of ${module} serving (pid ${process.pid}, replication port ${cfg.rfs.port})`);

  function end(why: string): Promise<void> {
    ending ??= (async () => {
      log.info(`replication host ending (${why})`);
      await replicator.close().catch((e: Error) => log.error(`leaving the layout: ${e.message}`));
      await hub.close();
      await server.close();
      const recorded = await fs.readFile(pidFile, 'utf8').catch(() => '');
      if (recorded.trim() === String(process.pid)) await fs.rm(pidFile, { force: true });
      log.info('replication host ended');
      await log.close();
      finished();
    })();
    return ending;
  }
  process.once('SIGTERM', () => void end('SIGTERM'));
  process.once('SIGINT', () => void end('SIGINT'));
  await done;
}
