import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../errors.js';
import { homePaths, type Home } from '../home.js';

/**
 * Trust in an installed module's files (README "Security"). The daemon runs a module's scripts as root: whoever can
 * change a script, or the directory holding it, runs code as root at the next state change. So every file and
 * directory of `$TANDEM_HOME/modules/<name>` (and the directories above it up to TANDEM_HOME) must be:
 * - owned by root, or by the user the daemon runs as (who could change them anyway);
 * - not writable by the group or by others;
 * - a regular file or a directory: no symlink (it could point anywhere later), device, FIFO or socket.
 * `tandem install` makes a package so (`installMode`); `checkModuleFiles` refuses anything else at `tandem config`,
 * when the daemon loads the module, and the script runner checks the script again before each run.
 */

/** uids trusted to own module files: root and the user running tandem */
export function trustedUids(): Set<number> {
  return new Set([0, process.geteuid?.() ?? 0]);
}

/** Why a file with this lstat cannot be trusted as (part of) a module, or null. */
export function untrusted(st: fs.Stats, trusted = trustedUids()): string | null {
  if (st.isSymbolicLink()) return 'is a symlink';
  if (!st.isFile() && !st.isDirectory()) return 'is not a regular file or directory';
  if (!trusted.has(st.uid)) return `is owned by uid ${st.uid}, not root`;
  if (st.mode & 0o022) return `is writable by ${st.mode & 0o002 ? 'every user' : `group ${st.gid}`} (mode ${(st.mode & 0o7777).toString(8).padStart(4, '0')})`;
  return null;
}

/** The mode an installed file gets: its permission bits without group/other write and without setuid/setgid/sticky. */
export function installMode(mode: number, isDir: boolean): number {
  return isDir ? 0o755 : (mode & 0o755) | 0o600;
}

/**
 * Throws UserError naming the first file of module `name` that cannot be trusted (contract above), with what to do.
 * Synchronous: a few lstat calls, made when a module is configured or loaded.
 */
export function checkModuleFiles(home: Home, name: string): void {
  const trusted = trustedUids();
  const dir = homePaths.moduleDir(home, name);
  const refuse = (file: string, why: string): never => {
    throw new UserError(
      `module ${name}: ${file} ${why}. The daemon runs the module's scripts as root, so whoever can change them (or the directories holding them) could run anything as root; tandem refuses to use them.`,
      `Make it root's and not writable by others, e.g. \`chown -R root:root ${dir} && chmod -R go-w ${dir}\` (and remove symlinks), or reinstall the module with \`tandem install -m ${name} <package> --force\`.`,
    );
  };
  // the directories above the module, up to TANDEM_HOME
  for (const d of [home.root, homePaths.modulesDir(home)]) {
    let st: fs.Stats;
    try {
      st = fs.lstatSync(d);
    } catch {
      continue; // missing: reported by whoever needs it
    }
    const why = untrusted(st, trusted);
    if (why) refuse(d, why);
  }
  const walk = (p: string) => {
    let st: fs.Stats;
    try {
      st = fs.lstatSync(p);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw new UserError(`module ${name}: cannot inspect ${p}: ${(e as Error).message}.`);
    }
    const why = untrusted(st, trusted);
    if (why) refuse(p, why);
    if (st.isDirectory()) for (const n of fs.readdirSync(p).sort()) walk(path.join(p, n));
  };
  walk(dir);
}
