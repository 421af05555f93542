import { constants as fsc } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { listModules, loadCluster, loadModuleConfig, parseRunnableModule } from '../config/load.js';
import type { ClusterConfig, ModuleConfig } from '../config/types.js';
import { appliesWhileRunning } from '../daemon/config-hash.js';
import type { StatusView } from '../daemon/views.js';
import { checkModuleFiles, installMode } from '../config/module-files.js';
import { moduleConflict, validateModuleName } from '../config/userconfig.js';
import { UserError } from '../errors.js';
import { homePaths, type Home } from '../home.js';
import { daemonRequest, daemonRequestIfRunning } from './daemon-client.js';
import { defaultprimProblem } from '../daemon/mirror-peer.js';
import { notFilesOnly, notFilesOrDirs, PACKAGE_MANIFEST, packageModuleName, unpackArchive } from './package.js';

/**
 * Installs a module from `source`: a directory, or a package archive (services/package.ts: layout, member checks,
 * the `.tandem-package` manifest that names the module). `given` is the -m; it may be left out when the package
 * names its module, and must match that name when given. Nothing is copied before the package, its configuration
 * (against cluster.xml) and what it must not clash with (`checkBeside`) are checked.
 *
 * Trust (config/module-files.ts): a package holds regular files and directories only (a symlink, hard link, device or
 * FIFO is refused, in a directory as in an archive). What is installed is normalised: owned by root (the user running
 * tandem), directories 0755, files keep their read and execute bits but lose group/other write and setuid, setgid
 * and sticky bits.
 */
export async function installModule(home: Home, given: string | undefined, source: string, force: boolean): Promise<{ module: string; applied: string }> {
  if (given !== undefined) validateModuleName(given);
  const cluster = loadCluster(home);
  const src = path.resolve(source);
  const stat = await fs.stat(src).catch(() => null);
  if (!stat) throw new UserError(`${source} does not exist.`, 'give a module directory (with userconfig.xml and bin/) or a .tar.gz package');
  let staging: string | null = null;
  let dir = src;
  let name: string;
  try {
    if (stat.isFile()) {
      staging = await fs.mkdtemp(path.join(os.tmpdir(), 'tandem-install-'));
      dir = await unpackArchive(source, src, staging);
    }
    const odd = await notFilesOrDirs(dir);
    if (odd.length > 0) throw notFilesOnly(source, odd);
    name = await packageModuleName(source, dir, given);
    const text = await fs.readFile(path.join(dir, 'userconfig.xml')).catch(() => {
      throw new UserError(`${source} has no userconfig.xml.`, 'a module holds userconfig.xml and a bin/ directory with its scripts');
    });
    const cfg = parseRunnableModule(text, name, cluster, `${source}/userconfig.xml`, dir);
    await checkBeside(home, cfg, cluster);
    const target = homePaths.moduleDir(home, name);
    const exists = await fs.stat(target).then(() => true, () => false);
    if (exists && !force) throw new UserError(`module ${name} is already installed in ${target}.`, `use --force to replace it (stop it first), or \`tandem uninstall -m ${name}\``);
    if (exists) await refuseRunning(home, cfg, cluster);
    const tmp = `${target}.new`;
    await fs.rm(tmp, { recursive: true, force: true });
    await fs.mkdir(path.dirname(target), { recursive: true, mode: 0o755 });
    await copyNormalised(dir, tmp, new Set([path.join(dir, PACKAGE_MANIFEST)]));
    await fs.rm(target, { recursive: true, force: true });
    await fs.rename(tmp, target);
  } finally {
    if (staging) await fs.rm(staging, { recursive: true, force: true });
  }
  const r = (await daemonRequestIfRunning(home, 'config', name)) as { applied: string } | null;
  return { module: name, applied: r ? r.applied : 'installed; the daemon is not running and loads it when it starts' };
}

/**
 * Replacing the files of a module that runs here (install --force, config --push) is allowed when its configuration
 * applies while it runs (only node-local settings differ; new or changed scripts are taken at their next run).
 * Otherwise the daemon could not apply it until a stop, and the files would not match what runs: refused before
 * anything is copied.
 */
async function refuseRunning(home: Home, cfg: ModuleConfig, cluster: ClusterConfig): Promise<void> {
  const v = (await daemonRequestIfRunning(home, 'status')) as StatusView | null;
  const m = v && ([...v.modules, ...v.farms] as { module: string; state: string }[]).find((x) => x.module === cfg.name);
  if (!m || m.state === 'STOP') return;
  let running: ModuleConfig | null = null;
  try {
    running = loadModuleConfig(home, cfg.name, cluster);
  } catch {
    // the installed files are broken: what runs cannot be compared, so nothing may replace it while it runs
  }
  if (running && appliesWhileRunning(running, cfg)) return;
  throw new UserError(`module ${cfg.name} is ${m.state} on ${v.node}: its changed configuration can only be applied while it is stopped; nothing was replaced.`,
    `run \`tandem stop -m ${cfg.name}\` (${cfg.mode === 'farm' ? 'the other nodes serve its clients' : 'the peer takes over if it can'}), install it again, then \`tandem start -m ${cfg.name}\``);
}

/**
 * What a module must not clash with, checked before anything is copied: the VIPs and replication ports of the modules
 * installed here (moduleConflict), and, for a mirror module on a cluster of more than two nodes, the two other nodes
 * the running daemon already hears holding it (a mirror module runs on exactly two nodes).
 */
async function checkBeside(home: Home, cfg: ModuleConfig, cluster: ClusterConfig): Promise<void> {
  const installed: ModuleConfig[] = [];
  for (const m of listModules(home)) {
    if (m === cfg.name) continue;
    try {
      installed.push(loadModuleConfig(home, m, cluster));
    } catch {
      // a broken module is reported by the daemon and `tandem config`; it holds no address yet
    }
  }
  const conflict = moduleConflict(cfg, installed, `then install ${cfg.name} again`);
  if (conflict) throw conflict;
  if (cfg.mode !== 'mirror' || cluster.nodes.length <= 2) return;
  const r = (await daemonRequestIfRunning(home, 'holders', cfg.name)) as { holders: string[]; self?: string } | null;
  const others = r?.holders ?? [];
  if (others.length >= 2) {
    throw new UserError(
      `mirror module ${cfg.name} is already installed on ${others.join(' and ')}: a mirror module runs on exactly two nodes; nothing was installed here.`,
      `install it on one of those two only, or first uninstall it from one of them (\`tandem uninstall -m ${cfg.name}\` there)`,
    );
  }
  // with one other holder, this node and that one are the pair: defaultprim must name one of them
  const self = r?.self;
  const misnamed = self && others.length === 1 ? defaultprimProblem(cfg.name, cfg.defaultprim, self, others[0]!) : null;
  if (misnamed) {
    throw new UserError(`${misnamed.slice(0, misnamed.indexOf(' Set defaultprim'))} Nothing was installed here.`,
      `set defaultprim to ${[self!, others[0]!].sort().join(', ')} or "alone" in its userconfig.xml, then install it again`);
  }
}

/**
 * Copies the package tree `src` to `dest` (which must not exist) with the owner and modes of an installed module,
 * leaving out the paths of `skip`.
 */
async function copyNormalised(src: string, dest: string, skip: ReadonlySet<string>): Promise<void> {
  const uid = process.geteuid?.() ?? 0;
  const gid = process.getegid?.() ?? 0;
  const st = await fs.lstat(src);
  if (st.isDirectory()) {
    await fs.mkdir(dest, { mode: 0o700 });
    for (const n of (await fs.readdir(src)).sort()) {
      if (!skip.has(path.join(src, n))) await copyNormalised(path.join(src, n), path.join(dest, n), skip);
    }
  } else if (st.isFile()) {
    await fs.copyFile(src, dest, fsc.COPYFILE_EXCL);
  } else {
    throw new UserError(`${src} is not a regular file or directory; module packages hold nothing else`);
  }
  await fs.lchown(dest, uid, gid);
  await fs.chmod(dest, installMode(st.mode, st.isDirectory()));
  await fs.utimes(dest, st.atime, st.mtime);
}

export async function uninstallModule(home: Home, name: string): Promise<void> {
  validateModuleName(name);
  const target = homePaths.moduleDir(home, name);
  if (!(await fs.stat(target).then(() => true, () => false))) throw new UserError(`module ${name} is not installed (no ${target}).`, 'list modules with `tandem list`');
  await daemonRequestIfRunning(home, 'unload', name);
  await fs.rm(target, { recursive: true, force: true });
  await fs.rm(homePaths.stateFile(home, name), { force: true });
}

/** `tandem config -m NAME`: validate here; apply through the daemon when it runs. */
export async function configModule(home: Home, name: string): Promise<string> {
  validateModuleName(name);
  const cluster = loadCluster(home);
  const file = homePaths.userconfig(home, name);
  const text = await fs.readFile(file).catch(() => {
    throw new UserError(`module ${name} is not installed (no ${file}).`, `install it with \`tandem install -m ${name} <dir>\``);
  });
  parseRunnableModule(text, name, cluster, file, homePaths.moduleDir(home, name));
  checkModuleFiles(home, name);
  const r = (await daemonRequestIfRunning(home, 'config', name)) as { applied: string } | null;
  return r ? `configuration of ${name} is valid: ${r.applied}` : `configuration of ${name} is valid; the daemon is not running and applies it when it starts`;
}

export async function adminModule(home: Home, module: string, verb: string, fullsync = false): Promise<string> {
  const r = (await daemonRequest(home, 'admin', module, { verb, fullsync }, 60_000)) as { message: string };
  return r.message;
}
