import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as tar from 'tar';
import { validateModuleName } from '../config/userconfig.js';
import { UserError } from '../errors.js';
import { homePaths, type Home } from '../home.js';

/**
 * Module packages (a stable contract, README "Module packages"). `tandem package -m NAME FILE` writes a gzipped tar:
 *
 *   NAME/.tandem-package     {"format":1,"module":"NAME"}: which module this is (not installed)
 *   NAME/userconfig.xml
 *   NAME/bin/…               the scripts, with their modes
 *
 * `tandem install` also takes a hand-made .tar/.tar.gz/.tgz without `.tandem-package` (userconfig.xml at the top or
 * in one top-level directory); then the module's name is the -m given. Before anything is extracted every member is
 * checked (`checkMembers`): relative, without `..`, a regular file or a directory. A SafeKit `.safe` (a zip) is
 * refused with the commands that convert it (docs/design/module-packages.md says why).
 */
export const PACKAGE_MANIFEST = '.tandem-package';
const PACKAGE_FORMAT = 1;

export interface PackageManifest {
  format: number;
  module: string;
}

/** What `tandem package` wrote. */
export interface PackageWritten {
  module: string;
  file: string;
  /** regular files in the package (the manifest not counted) */
  files: number;
  /** bytes of the archive */
  bytes: number;
}

/**
 * Writes the installed module `name` (its whole directory: userconfig.xml and bin/) to `file` (.tar.gz or .tgz),
 * keeping file modes and modification times. The archive is written beside `file` and renamed into place, so a
 * reader never sees half a package. An existing `file` is replaced only with `force`.
 */
export async function packageModule(home: Home, name: string, file: string, force: boolean): Promise<PackageWritten> {
  validateModuleName(name);
  const dir = homePaths.moduleDir(home, name);
  if (!(await exists(homePaths.userconfig(home, name)))) {
    throw new UserError(`module ${name} is not installed here (no ${homePaths.userconfig(home, name)}).`, 'list installed modules with `tandem list`; package a module on a node where it is installed');
  }
  const dest = path.resolve(file);
  if (!/\.(tar\.gz|tgz)$/.test(dest)) throw new UserError(`${file}: a module package is a gzipped tar; name it ${name}.tar.gz or ${name}.tgz.`);
  if ((await exists(dest)) && !force) throw new UserError(`${file} exists already.`, 'use --force to replace it, or give another file name');
  const odd = await notFilesOrDirs(dir);
  if (odd.length > 0) throw notFilesOnly(dir, odd);
  const staging = await fs.mkdtemp(path.join(os.tmpdir(), 'tandem-package-'));
  const tmp = `${dest}.${process.pid}.tmp`;
  try {
    const root = path.join(staging, name);
    await fs.cp(dir, root, { recursive: true, preserveTimestamps: true, errorOnExist: true, force: false });
    await copyModes(dir, root);
    const manifest: PackageManifest = { format: PACKAGE_FORMAT, module: name };
    await fs.writeFile(path.join(root, PACKAGE_MANIFEST), `${JSON.stringify(manifest)}\n`, { mode: 0o644 });
    await tar.c({ file: tmp, cwd: staging, gzip: true }, [name]);
    await fs.rename(tmp, dest);
  } catch (e) {
    await fs.rm(tmp, { force: true });
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'EACCES') {
      throw new UserError(`cannot write ${file}: ${(e as Error).message}`, 'give a file in a directory that exists and that you can write');
    }
    throw e;
  } finally {
    await fs.rm(staging, { recursive: true, force: true });
  }
  return { module: name, file: dest, files: await countFiles(dir), bytes: (await fs.stat(dest)).size };
}

/**
 * Extracts the package archive `src` (the user's `source`) into the empty directory `staging` and returns the package
 * root (the directory holding userconfig.xml). Refuses, before extracting anything, an archive with a member that is
 * absolute, climbs out with `..`, or is anything but a regular file or directory; and a zip (a SafeKit .safe).
 */
export async function unpackArchive(source: string, src: string, staging: string): Promise<string> {
  if (/\.safe$/i.test(src) || (await isZip(src))) throw safeRefused(source);
  if (!/\.(tar|tar\.gz|tgz)$/.test(src)) throw new UserError(`${source} is not a module package: expected a directory or a .tar, .tar.gz or .tgz file.`);
  const bad: string[] = [];
  try {
    await tar.t({ file: src, strict: true, onReadEntry: (e) => { const why = memberProblem(e.path, e.type, e.linkpath); if (why) bad.push(why); } });
  } catch (e) {
    throw new UserError(`cannot read package ${source}: ${(e as Error).message}`, 'check that the file is a complete tar archive (e.g. `tar tzf FILE`), or make it again with `tandem package`');
  }
  if (bad.length > 0) throw refusedMembers(source, bad);
  try {
    // the same check again while extracting: the file may have changed since it was listed
    await tar.x({
      file: src, cwd: staging, strict: true, preserveOwner: false, umask: 0,
      filter: (p, e) => {
        const why = memberProblem(p, (e as tar.ReadEntry).type, (e as tar.ReadEntry).linkpath);
        if (why) bad.push(why);
        return why === null;
      },
    });
  } catch (e) {
    throw new UserError(`cannot read package ${source}: ${(e as Error).message}`, 'check that the file is a complete tar archive (e.g. `tar tzf FILE`), or make it again with `tandem package`');
  }
  if (bad.length > 0) throw refusedMembers(source, bad);
  return packageRoot(staging);
}

/**
 * The module name of the package root `dir`: its `.tandem-package` manifest's, or `given` (the -m) when it has none.
 * A manifest naming another module than `given` is a UserError (nothing is installed).
 */
export async function packageModuleName(source: string, dir: string, given: string | undefined): Promise<string> {
  const text = await fs.readFile(path.join(dir, PACKAGE_MANIFEST), 'utf8').catch(() => null);
  if (text === null) {
    if (!given) throw new UserError('this command needs a module: add -m <module> (or set TANDEM_MODULE).', `${source} does not say which module it holds (it has no ${PACKAGE_MANIFEST})`);
    return given;
  }
  let m: Partial<PackageManifest>;
  try {
    m = JSON.parse(text) as Partial<PackageManifest>;
  } catch (e) {
    throw new UserError(`${source}: its ${PACKAGE_MANIFEST} is not valid JSON (${(e as Error).message}).`, 'make the package again with `tandem package -m NAME FILE`');
  }
  if (m.format !== PACKAGE_FORMAT || typeof m.module !== 'string') {
    throw new UserError(`${source}: its ${PACKAGE_MANIFEST} is not a format ${PACKAGE_FORMAT} manifest with a module name.`, 'make the package again with `tandem package -m NAME FILE` (with this version of tandem)');
  }
  validateModuleName(m.module);
  if (given && given !== m.module) {
    throw new UserError(`${source} holds module ${m.module}, not ${given}; nothing was installed.`,
      `install it as \`tandem install -m ${m.module} ${source}\` (or without -m); to install it under another name, unpack it and install the directory: \`tar xzf ${source} && tandem install -m ${given} ${m.module}\``);
  }
  return m.module;
}

/** Why the archive member `p` of tar type `type` is refused, or null. */
function memberProblem(p: string, type: string, linkpath: string | undefined): string | null {
  if (path.posix.isAbsolute(p) || /^[A-Za-z]:/.test(p)) return `${p} (an absolute path)`;
  if (p.split(/[\\/]/).includes('..')) return `${p} (a path with "..", outside the package)`;
  if (type === 'SymbolicLink') {
    const target = path.posix.normalize(path.posix.join(path.posix.dirname(p), linkpath ?? ''));
    const leaves = path.posix.isAbsolute(linkpath ?? '') || target === '..' || target.startsWith('../');
    return `${p} (SymbolicLink to ${linkpath}${leaves ? ', outside the package' : ''})`;
  }
  if (['File', 'OldFile', 'ContiguousFile', 'Directory'].includes(type)) return null;
  return `${p} (${type})`;
}

function refusedMembers(source: string, what: string[]): UserError {
  const shown = what.slice(0, 5).join(', ') + (what.length > 5 ? ` and ${what.length - 5} more` : '');
  return new UserError(`package ${source} is refused, nothing was installed: ${shown}.`,
    'a module package holds only regular files and directories under relative paths (no absolute or ".." paths, symlinks, hard links, devices or FIFOs): replace each link by the file itself and make it again with `tandem package`');
}

export function notFilesOnly(source: string, what: string[]): UserError {
  const shown = what.slice(0, 5).join(', ') + (what.length > 5 ? ` and ${what.length - 5} more` : '');
  return new UserError(`package ${source} holds something other than regular files and directories: ${shown}.`,
    'module packages hold regular files and directories only (no symlinks, hard links, devices or FIFOs): replace each link by the file itself');
}

function safeRefused(source: string): UserError {
  const base = path.basename(source).replace(/\.[^.]+$/, '') || 'module';
  return new UserError(`${source} is a zip archive (a SafeKit .safe module); tandem installs directories and .tar.gz packages only.`,
    `convert it: \`unzip ${source} -d ${base}\`, then move ${base}/conf/userconfig.xml to ${base}/userconfig.xml (tandem reads it beside bin/) and run \`tandem install -m ${base} ${base}\``);
}

async function isZip(file: string): Promise<boolean> {
  const fh = await fs.open(file, 'r');
  try {
    const b = Buffer.alloc(4);
    const { bytesRead } = await fh.read(b, 0, 4, 0);
    return bytesRead === 4 && b.readUInt32LE(0) === 0x04034b50; // "PK\3\4", a zip's local file header
  } finally {
    await fh.close();
  }
}

/** Paths under `dir` (relative) that are neither regular files nor directories, e.g. `bin/run (symlink)`. */
export async function notFilesOrDirs(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string) => {
    for (const e of await fs.readdir(path.join(dir, rel), { withFileTypes: true })) {
      const p = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) await walk(p);
      else if (!e.isFile()) out.push(`${p} (${e.isSymbolicLink() ? 'symlink' : 'special file'})`);
    }
  };
  await walk('');
  return out;
}

/** fs.cp keeps file modes but creates directories with the umask: give `dest`'s directories the modes of `src`'s. */
async function copyModes(src: string, dest: string): Promise<void> {
  const st = await fs.lstat(src);
  if (!st.isDirectory()) return;
  for (const n of await fs.readdir(src)) await copyModes(path.join(src, n), path.join(dest, n));
  await fs.chmod(dest, st.mode & 0o7777);
  await fs.utimes(dest, st.atime, st.mtime);
}

async function countFiles(dir: string): Promise<number> {
  let n = 0;
  for (const e of await fs.readdir(dir, { withFileTypes: true, recursive: true })) if (e.isFile()) n++;
  return n;
}

async function packageRoot(dir: string): Promise<string> {
  const entries = await fs.readdir(dir, { withFileTypes: true });
  if (entries.some((e) => e.name === 'userconfig.xml')) return dir;
  const dirs = entries.filter((e) => e.isDirectory());
  if (dirs.length === 1) return path.join(dir, dirs[0]!.name);
  return dir;
}

const exists = (p: string) => fs.stat(p).then(() => true, () => false);
