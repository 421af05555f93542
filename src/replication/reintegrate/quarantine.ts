import type { BigIntStats } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { BugError } from '../../errors.js';
import { writeDurably } from '../../daemon/state-store.js';

/**
 * Quarantine: on the node that resyncs after a split brain, every local file that differs from the source is MOVED
 * (rename; across filesystems: copy with its metadata, fsync, then unlink) into
 *   <root>/<timestamp>-<generation>/<relative path>
 * before it is overwritten or deleted, so nothing written during the split brain is silently discarded.
 * `<timestamp>` is UTC `YYYYMMDDTHHMMSSZ`; `<generation>` is the generation the local data had (its writes).
 *
 * Manifest: `<root>/<timestamp>-<generation>.json`, beside the directory (so it cannot collide with a quarantined
 * path), written durably by `save()`:
 *   {"v":1,"name":…,"createdAt":ISO,"generation":…,"from":targetRoot,"complete":bool,
 *    "files":[{"path","type":"file"|"symlink"|"other","size","mtimeNs":"<decimal>"}]}
 * `complete` is false until the reintegration that quarantined the files finished. Directories are never
 * quarantined themselves (their differing files are). Quarantines are never deleted by tandem.
 */
export interface QuarantinedFile {
  path: string;
  type: 'file' | 'symlink' | 'other';
  size: number;
  mtimeNs: string;
}

export interface QuarantineManifest {
  v: 1;
  name: string;
  createdAt: string;
  generation: string;
  from: string;
  complete: boolean;
  files: QuarantinedFile[];
}

export function quarantineName(now: Date, generation: string): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  return `${stamp}-${generation.replace(/[^A-Za-z0-9@._-]/g, '_')}`;
}

export class Quarantine {
  private readonly listed: Map<string, QuarantinedFile>;

  private constructor(readonly root: string, private manifest: QuarantineManifest) {
    this.listed = new Map(manifest.files.map((f) => [f.path, f]));
  }

  get name(): string {
    return this.manifest.name;
  }

  get dir(): string {
    return path.join(this.root, this.manifest.name);
  }

  /**
   * Opens the quarantine `name` under `root` (resuming an interrupted reintegration), or creates a new one named
   * from `now` and `generation`. The manifest exists (complete: false) when this returns.
   */
  static async open(root: string, opts: { generation: string; from: string; now: Date; name?: string }): Promise<Quarantine> {
    const name = opts.name ?? quarantineName(opts.now, opts.generation);
    if (name.includes('/') || name.startsWith('.')) throw new BugError(`bad quarantine name ${name}`);
    await fs.mkdir(path.join(root, name), { recursive: true });
    let manifest: QuarantineManifest | null = null;
    try {
      manifest = JSON.parse(await fs.readFile(path.join(root, `${name}.json`), 'utf8')) as QuarantineManifest;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT' && !(e instanceof SyntaxError)) throw e;
    }
    const q = new Quarantine(root, manifest ?? {
      v: 1, name, createdAt: opts.now.toISOString(), generation: opts.generation, from: opts.from, complete: false, files: [],
    });
    await q.save();
    return q;
  }

  /**
   * Moves `<from>/<rel>` into the quarantine. `src` names the file to move when the caller resolved it itself (the
   * applier passes a `/proc/self/fd/<parent>/<name>` path walked without following symlinks, target-tree.ts); by
   * default `<from>/<rel>`. Returns the quarantine's directories whose entries changed (for the caller's fsync; the
   * caller syncs the source's parent itself), or null if there was nothing to move: already quarantined (resumed run)
   * or no longer there.
   */
  async add(rel: string, src = path.join(this.manifest.from, rel)): Promise<string[] | null> {
    const dest = path.join(this.dir, rel);
    const there = await fs.lstat(dest, { bigint: true }).catch(() => null);
    if (there) {
      this.note(rel, there);
      return null;
    }
    const st = await fs.lstat(src, { bigint: true }).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return null;
      throw e;
    });
    if (!st) return null;
    if (st.isDirectory()) throw new BugError(`quarantine of a directory (${rel}): quarantine its files`);
    await fs.mkdir(path.dirname(dest), { recursive: true });
    try {
      await fs.rename(src, dest);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EXDEV') throw e;
      await moveAcrossFilesystems(src, dest, st);
    }
    this.note(rel, st);
    return [path.dirname(dest)];
  }

  files(): QuarantinedFile[] {
    return [...this.listed.values()];
  }

  /** Writes the manifest durably. */
  async save(complete = false): Promise<void> {
    this.manifest = { ...this.manifest, complete, files: this.files().sort((a, b) => (a.path < b.path ? -1 : 1)) };
    await writeDurably(path.join(this.root, `${this.manifest.name}.json`), `${JSON.stringify(this.manifest, null, 1)}\n`);
  }

  private note(rel: string, st: BigIntStats): void {
    const type = st.isFile() ? 'file' : st.isSymbolicLink() ? 'symlink' : 'other';
    this.listed.set(rel, { path: rel, type, size: type === 'file' ? Number(st.size) : 0, mtimeNs: st.mtimeNs.toString() });
  }
}

/** rename(2) cannot cross filesystems: copy (with mode, owner, times), fsync, then remove the original. */
async function moveAcrossFilesystems(src: string, dest: string, st: BigIntStats): Promise<void> {
  const tmp = `${dest}.tandem-moving`;
  if (st.isSymbolicLink()) {
    await fs.rm(tmp, { force: true });
    await fs.symlink(await fs.readlink(src), tmp);
  } else if (st.isFile()) {
    await fs.copyFile(src, tmp);
    await fs.chmod(tmp, Number(st.mode) & 0o7777);
    const fh = await fs.open(tmp, 'r+');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  } else {
    throw new BugError(`cannot move special file ${src} across filesystems; move the quarantine root onto the same filesystem`);
  }
  await fs.lchown(tmp, Number(st.uid), Number(st.gid));
  const secs = (ns: bigint) => Number(ns / 1_000_000_000n) + (Number((ns % 1_000_000_000n) / 1000n) + 0.5) / 1e6;
  await fs.lutimes(tmp, secs(st.atimeNs), secs(st.mtimeNs));
  await fs.rename(tmp, dest);
  await fs.unlink(src);
}

export interface QuarantineInfo {
  name: string;
  dir: string;
  createdAt: string;
  generation: string;
  from: string;
  complete: boolean;
  /** -1 when the manifest is unreadable */
  files: number;
  bytes: number;
  error?: string;
}

/** The quarantines under `root`, oldest first, for `tandem status`. A missing root means none. */
export async function listQuarantines(root: string): Promise<QuarantineInfo[]> {
  let names: string[];
  try {
    names = await fs.readdir(root);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const out: QuarantineInfo[] = [];
  for (const n of names.filter((x) => x.endsWith('.json')).sort()) {
    let m: QuarantineManifest | null = null;
    try {
      m = JSON.parse(await fs.readFile(path.join(root, n), 'utf8')) as QuarantineManifest;
    } catch {
      m = null;
    }
    if (m?.v !== 1 || !Array.isArray(m.files)) {
      // still reported: a quarantine is never hidden, even with a damaged manifest
      const name = n.slice(0, -'.json'.length);
      out.push({
        name, dir: path.join(root, name), createdAt: '', generation: '', from: '', complete: false, files: -1, bytes: -1,
        error: 'manifest unreadable',
      });
      continue;
    }
    out.push({
      name: m.name,
      dir: path.join(root, m.name),
      createdAt: m.createdAt,
      generation: m.generation,
      from: m.from,
      complete: m.complete,
      files: m.files.length,
      bytes: m.files.reduce((s, f) => s + f.size, 0),
    });
  }
  return out;
}
