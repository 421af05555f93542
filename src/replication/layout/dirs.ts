import fsp from 'node:fs/promises';
import path from 'node:path';
import { UserError } from '../../errors.js';
import { isWithin } from './mountinfo.js';

/**
 * The replicated directories of one module, resolved to the paths the mount table uses, and their private bases.
 *
 * Contract:
 * - `path` is canonical: the parent is resolved with realpath and the last component kept as written, so resolving
 *   never touches D itself (it may be a dead FUSE mount answering ENOTCONN, or a live one served by this process).
 * - `backing` is `<runDir>/backing/<module>/<index>`, index = position in `dirs`.
 * - With `check: true` (entering a layout) D must exist and be a real directory (not a symlink); the checks use async
 *   lstat only, and only after the caller made sure no FUSE mount is on D.
 */
export interface ReplicatedDir {
  /** as configured */
  dir: string;
  /** canonical, as /proc/self/mountinfo shows it */
  path: string;
  backing: string;
  index: number;
}

export interface DirsRequest {
  dirs: string[];
  runDir: string;
  module: string;
}

export function backingRoot(runDir: string, module: string): string {
  return path.join(path.resolve(runDir), 'backing', module);
}

/** Resolves paths and checks what needs no look at D: absolute, not `/`, no nesting, not overlapping runDir. */
export async function resolveDirs(r: DirsRequest): Promise<ReplicatedDir[]> {
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(r.module)) {
    throw new UserError(`module name "${r.module}" cannot name a directory under ${r.runDir}/backing. Use letters, digits, "_", "-" and ".".`);
  }
  if (r.dirs.length === 0) throw new UserError(`module ${r.module} has no replicated directory. Add <replicated dir="/absolute/path"/> inside <rfs>.`);
  const runDir = await canonical(r.runDir);
  const root = path.join(runDir, 'backing', r.module);
  const out: ReplicatedDir[] = [];
  for (const [index, dir] of r.dirs.entries()) {
    if (!path.isAbsolute(dir)) throw new UserError(`replicated dir "${dir}" is not absolute. Write the full path, e.g. "/srv/app/data".`);
    if (path.resolve(dir) === '/') throw new UserError(`replicated dir "${dir}" is the root directory. Replicate a specific directory such as "/srv/app/data".`);
    const p = await canonical(dir);
    if (isWithin(runDir, p) || isWithin(p, runDir)) {
      throw new UserError(`replicated dir ${dir} overlaps tandem's run directory ${runDir}. Replicate a directory outside ${runDir}, or set TANDEM_RUN_DIR elsewhere.`);
    }
    const other = out.find((o) => isWithin(p, o.path) || isWithin(o.path, p));
    if (other) {
      throw new UserError(`replicated dir ${dir} lies inside or contains replicated dir ${other.dir} (as ${p} and ${other.path}). ` +
        'Keep only the outer one, or replicate separate directories.');
    }
    out.push({ dir, path: p, backing: path.join(root, String(index)), index });
  }
  return out;
}

/** Makes sure D exists and is a directory (not a symlink). Call only when no FUSE mount is on D. */
export async function checkIsDirectory(d: ReplicatedDir): Promise<void> {
  let st;
  try {
    st = await fsp.lstat(d.path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      throw new UserError(`replicated dir ${d.dir} does not exist. Create it (mkdir -p ${d.path}) or correct <replicated dir="${d.dir}">.`);
    }
    throw new UserError(`cannot look at replicated dir ${d.dir}: ${(err as Error).message}. Check the path and its permissions.`);
  }
  if (st.isSymbolicLink()) {
    const target = await fsp.realpath(d.path).catch(() => '(a missing target)');
    throw new UserError(`replicated dir ${d.dir} is a symbolic link to ${target}. Name the real directory in <replicated dir="…">.`);
  }
  if (!st.isDirectory()) throw new UserError(`replicated dir ${d.dir} is not a directory. Replicate the directory that holds it, or fix <replicated dir="${d.dir}">.`);
}

/** realpath of the parent + the last component; the parent falls back to the plain resolved path when it is missing. */
async function canonical(p: string): Promise<string> {
  const abs = path.resolve(p);
  const parent = path.dirname(abs);
  const real = await fsp.realpath(parent).catch(() => parent);
  return abs === parent ? real : path.join(real, path.basename(abs));
}
