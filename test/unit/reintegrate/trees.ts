/** Real temporary trees for the reintegration tests: build, clone, describe, compare. */
export { rng } from '../rng.js';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as assert from 'uvu/assert';
import { STAGING_DIR } from '../../../src/replication/reintegrate/compare.js';

const made: string[] = [];

export function tmpDir(tag = 'tree'): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), `tandem-${tag}-`));
  made.push(d);
  return d;
}

export function cleanup(): void {
  for (const d of made.splice(0)) fs.rmSync(d, { recursive: true, force: true });
}

/** `cp -a`: content, modes, owners, symlinks and nanosecond times. */
export function cloneTree(src: string, dst: string): void {
  fs.mkdirSync(dst, { recursive: true });
  execFileSync('cp', ['-a', `${src}/.`, dst]);
}

/** Writes files (string content), directories (value null) and symlinks ({ link }) under root. */
export function build(root: string, spec: Record<string, string | Buffer | null | { link: string }>): void {
  for (const [p, v] of Object.entries(spec)) {
    const abs = path.join(root, p);
    fs.mkdirSync(path.dirname(abs), { recursive: true });
    if (v === null) fs.mkdirSync(abs, { recursive: true });
    else if (typeof v === 'object' && !Buffer.isBuffer(v)) fs.symlinkSync(v.link, abs);
    else fs.writeFileSync(abs, v);
  }
}

/** Sets a path's times to `secs` (decimal seconds, up to nanoseconds, e.g. '1500000000.123456789'), not following symlinks. */
export function setMtime(abs: string, secs: string | number): void {
  execFileSync('touch', ['-h', '-d', `@${secs}`, abs]);
}

export interface Described {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  mtimeUs: string;
  size: number;
  content: string;
}

/**
 * Everything the reintegration must reproduce, per relative path: type, mode, owner, mtime (microseconds: the
 * precision tandem sets), size, content hash or link target. The staging directory and `skip` are left out.
 */
export function describe(root: string, skip: (rel: string) => boolean = () => false): Map<string, Described> {
  const out = new Map<string, Described>();
  const walk = (rel: string) => {
    for (const name of fs.readdirSync(path.join(root, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      if (r === STAGING_DIR || skip(r)) continue;
      const abs = path.join(root, r);
      const st = fs.lstatSync(abs, { bigint: true });
      const type = st.isFile() ? 'file' : st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : 'other';
      const content = type === 'file' ? crypto.createHash('sha256').update(fs.readFileSync(abs)).digest('hex')
        : type === 'symlink' ? fs.readlinkSync(abs) : '';
      out.set(r, {
        type,
        mode: type === 'symlink' ? 0 : Number(st.mode) & 0o7777,
        uid: Number(st.uid),
        gid: Number(st.gid),
        mtimeUs: (st.mtimeNs / 1000n).toString(),
        size: type === 'file' ? Number(st.size) : 0,
        content,
      });
      if (type === 'dir') walk(r);
    }
  };
  walk('');
  return out;
}

export function assertSameTree(target: string, source: string, skip?: (rel: string) => boolean, msg = ''): void {
  const a = describe(target, skip);
  const b = describe(source, skip);
  const diffs: string[] = [];
  for (const [p, e] of b) {
    const t = a.get(p);
    if (!t) diffs.push(`missing ${p}`);
    else for (const k of Object.keys(e) as (keyof Described)[]) if (t[k] !== e[k]) diffs.push(`${p}: ${k} ${t[k]} != ${e[k]}`);
  }
  for (const p of a.keys()) if (!b.has(p)) diffs.push(`extra ${p}`);
  assert.equal(diffs, [], `${msg} trees differ:\n${diffs.slice(0, 20).join('\n')}`);
}

