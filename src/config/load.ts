import fs from 'node:fs';
import { UserError } from '../errors.js';
import { homePaths, type Home } from '../home.js';
import { parseClusterXml } from './cluster.js';
import { checkModuleFiles } from './module-files.js';
import { farmLimits } from './farm.js';
import type { ClusterConfig, MirrorModuleConfig, ModuleConfig } from './types.js';
import { parseModuleUserconfig, validateModuleName } from './userconfig.js';

/**
 * Reads and validates `$TANDEM_HOME/cluster.xml`. Error messages name the file by its full path.
 * Throws a UserError when the file is missing, unreadable or invalid.
 */
export function loadCluster(home: Home): ClusterConfig {
  const file = homePaths.clusterXml(home);
  const bytes = readConfig(file, () => `Write $TANDEM_HOME/cluster.xml (see README: Configuration); TANDEM_HOME is ${home.root}.`);
  return parseClusterXml(bytes, file);
}

/**
 * Reads and validates `$TANDEM_HOME/modules/<name>/userconfig.xml` against `cluster`, and checks that the module's
 * files can be trusted (module-files.ts: root's, not writable by others, no symlinks).
 * Throws a UserError for an invalid module name, a module that is not installed, an invalid file, or an untrusted one.
 */
export function loadModuleConfig(home: Home, name: string, cluster: ClusterConfig): ModuleConfig {
  validateModuleName(name);
  const file = homePaths.userconfig(home, name);
  const bytes = readConfig(file, () => {
    const installed = listModules(home);
    return (
      `Module "${name}" is not installed; install it with \`tandem install -m ${name} <dir>\`. ` +
      `Installed modules: ${installed.length ? installed.join(', ') : 'none'}.`
    );
  });
  const cfg = parseRunnableModule(bytes, name, cluster, file, homePaths.moduleDir(home, name));
  checkModuleFiles(home, name);
  return cfg;
}

/** As `loadModuleConfig`, for what only mirror modules have (replicated directories): a farm module is a UserError. */
export function loadModule(home: Home, name: string, cluster: ClusterConfig): MirrorModuleConfig {
  const cfg = loadModuleConfig(home, name, cluster);
  if (cfg.mode !== 'mirror') throw new UserError(`module ${name} is a farm module: it has no replicated directories.`);
  return cfg;
}

/** A module's userconfig.xml parsed, and within what the runtime supports (`farmLimits`); else a UserError. */
export function parseRunnableModule(text: string | Uint8Array, name: string, cluster: ClusterConfig, file: string, moduleDir: string | null): ModuleConfig {
  const cfg = parseModuleUserconfig(text, name, cluster, file, moduleDir);
  const limit = cfg.mode === 'farm' ? farmLimits(cfg, file) : null;
  if (limit) throw limit;
  return cfg;
}

/** Names of the directories under `$TANDEM_HOME/modules` that hold a userconfig.xml, sorted; [] without modules/. */
export function listModules(home: Home): string[] {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(homePaths.modulesDir(home), { withFileTypes: true });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new UserError(`cannot list ${homePaths.modulesDir(home)}: ${(e as Error).message}. Check its permissions.`);
  }
  return entries
    .filter((e) => e.isDirectory() && fs.existsSync(homePaths.userconfig(home, e.name)))
    .map((e) => e.name)
    .sort();
}

function readConfig(file: string, whenMissing: () => string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new UserError(`${file} does not exist. ${whenMissing()}`);
    if (code === 'EISDIR') throw new UserError(`${file} is a directory, not a file. Replace it with the XML file.`);
    if (code === 'EACCES' || code === 'EPERM') {
      throw new UserError(`cannot read ${file}: permission denied. Run tandem as root or give it read access.`);
    }
    throw new UserError(`cannot read ${file}: ${(e as Error).message}. Check the file and its directory.`);
  }
}
