import path from 'node:path';

/**
 * Layout of a node home (`TANDEM_HOME`, default /var/lib/tandem). Public contract: documented in README.
 *
 *   cluster.xml                      the cluster (same file on every node)
 *   cluster.key                      the shared secret (same file on every node, mode 0600)
 *   modules/<name>/userconfig.xml    a module's configuration
 *   modules/<name>/bin/<script>      its scripts
 *   state/<name>.json                the module's persisted engine state (generation, last role, …)
 *   log/daemon.log                   the daemon's log
 *   log/<name>.log                   the module's log (engine transitions and script output)
 *   run/                             runtime files wiped at reboot (TANDEM_RUN_DIR, default /run/tandem/<hash of home>)
 *   control.sock                     the daemon's local control socket
 */
export interface Home {
  root: string;
  runDir: string;
}

export function resolveHome(env: NodeJS.ProcessEnv = process.env): Home {
  const root = path.resolve(env.TANDEM_HOME || '/var/lib/tandem');
  const runDir = path.resolve(env.TANDEM_RUN_DIR || path.join('/run/tandem', simpleHash(root)));
  return { root, runDir };
}

export const homePaths = {
  clusterXml: (h: Home) => path.join(h.root, 'cluster.xml'),
  clusterKey: (h: Home) => path.join(h.root, 'cluster.key'),
  modulesDir: (h: Home) => path.join(h.root, 'modules'),
  moduleDir: (h: Home, m: string) => path.join(h.root, 'modules', m),
  userconfig: (h: Home, m: string) => path.join(h.root, 'modules', m, 'userconfig.xml'),
  scriptsDir: (h: Home, m: string) => path.join(h.root, 'modules', m, 'bin'),
  stateFile: (h: Home, m: string) => path.join(h.root, 'state', `${m}.json`),
  daemonLog: (h: Home) => path.join(h.root, 'log', 'daemon.log'),
  moduleLog: (h: Home, m: string) => path.join(h.root, 'log', `${m}.log`),
  controlSocket: (h: Home) => path.join(h.root, 'control.sock'),
  runMarker: (h: Home, m: string) => path.join(h.runDir, `${m}.running`),
};

function simpleHash(s: string): string {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619) >>> 0;
  return h.toString(16).padStart(8, '0');
}
