import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';

/**
 * A digest of a directory tree as replication must reproduce it: for every entry (lstat, symlinks not followed) its
 * relative path, type, permission bits, owner, size, symlink target and the SHA-256 of a file's content. Times are
 * left out unless `mtimes` (then to the microsecond: replication sets times with microsecond precision; symlinks'
 * own times are not compared). `skip` leaves out relative paths (and what is below).
 * Read it only from outside any FUSE mount this process serves (e.g. a lab node's private disk from the host).
 */
export async function treeDigest(
  root: string, skip: (rel: string) => boolean = () => false, opts: { mtimes?: boolean } = {},
): Promise<{ digest: string; entries: Map<string, string> }> {
  const entries = new Map<string, string>();
  async function walk(rel: string): Promise<void> {
    const names = (await fs.readdir(path.join(root, rel))).sort();
    for (const n of names) {
      const r = rel ? `${rel}/${n}` : n;
      if (skip(r)) continue;
      const abs = path.join(root, r);
      const st = await fs.lstat(abs, { bigint: true });
      const mtime = opts.mtimes && !st.isSymbolicLink() ? ` mtime ${st.mtimeNs / 1000n}us` : '';
      const meta = `${(Number(st.mode) & 0o7777).toString(8)} ${st.uid}:${st.gid}${mtime}`;
      if (st.isDirectory()) {
        entries.set(r, `dir ${meta}`);
        await walk(r);
      } else if (st.isSymbolicLink()) {
        entries.set(r, `symlink ${meta} -> ${await fs.readlink(abs)}`);
      } else if (st.isFile()) {
        const h = createHash('sha256').update(await fs.readFile(abs)).digest('hex');
        entries.set(r, `file ${meta} ${st.size} ${h}`);
      } else {
        entries.set(r, `other ${meta}`);
      }
    }
  }
  await walk('');
  const all = createHash('sha256');
  for (const [p, e] of entries) all.update(`${p}\0${e}\n`);
  return { digest: all.digest('hex'), entries };
}

/** Paths whose description differs between two digests (at most `max`). */
export function digestDiff(a: Map<string, string>, b: Map<string, string>, max = 10): string[] {
  const out: string[] = [];
  for (const p of new Set([...a.keys(), ...b.keys()])) {
    if (a.get(p) !== b.get(p)) out.push(`${p}: ${a.get(p) ?? 'missing'} | ${b.get(p) ?? 'missing'}`);
    if (out.length >= max) break;
  }
  return out;
}
