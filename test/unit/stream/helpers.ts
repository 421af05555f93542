import { promises as fsp } from 'node:fs';
export { rng } from '../rng.js';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { ApplyFs, ApplyHandle } from '../../../src/replication/stream/fs.js';
import { realFs } from '../../../src/replication/stream/fs.js';


export async function tmpDir(prefix: string): Promise<string> {
  return fsp.mkdtemp(path.join(os.tmpdir(), `tandem-${prefix}-`));
}

export async function rmrf(p: string): Promise<void> {
  await fsp.rm(p, { recursive: true, force: true });
}

/** Polls `cond` until it holds (no fixed sleeps); throws after `ms`. */
export async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/**
 * Every entry under `root` (never following symlinks), as comparable lines: type, mode, uid, gid, size, mtime in ns,
 * and the content (base64) or the symlink target. Directory mtimes only with `dirMtimes` (they change with every
 * entry added or removed, on each side at its own time, unless set explicitly last).
 */
export async function snapshot(root: string, opts: { dirMtimes?: boolean } = {}): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string) => {
    const abs = rel === '' ? root : path.join(root, rel);
    const st = await fsp.lstat(abs, { bigint: true });
    const mode = (Number(st.mode) & 0o7777).toString(8);
    const who = `${st.uid}:${st.gid}`;
    if (st.isSymbolicLink()) {
      out.push(`L ${JSON.stringify(rel)} -> ${JSON.stringify(await fsp.readlink(abs))} ${who}`);
    } else if (st.isDirectory()) {
      out.push(`D ${JSON.stringify(rel)} ${mode} ${who}${opts.dirMtimes ? ` mtime=${st.mtimeNs}` : ''}`);
      for (const name of (await fsp.readdir(abs)).sort()) await walk(rel === '' ? name : `${rel}/${name}`);
    } else if (st.isFile()) {
      const data = await fsp.readFile(abs);
      out.push(`F ${JSON.stringify(rel)} ${mode} ${who} size=${st.size} mtime=${st.mtimeNs} nlink=${st.nlink} ${data.toString('base64')}`);
    } else {
      out.push(`? ${JSON.stringify(rel)} ${mode}`);
    }
  };
  await walk('');
  return out;
}

/** Lists every path under `dir` (not following symlinks). */
export async function listAll(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string) => {
    for (const e of await fsp.readdir(path.join(dir, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      out.push(r);
      if (e.isDirectory()) await walk(r);
    }
  };
  await walk('');
  return out.sort();
}

/** A free TCP port on 127.0.0.1 (bound, then released). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen({ host, port: 0 }, () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export interface FsHooks {
  /** called before each handle.write; throw to simulate a failure */
  write?: (target: string) => void | Promise<void>;
  /** called before each fsync / fdatasync of a file or directory; throw to fail it */
  fsync?: (target: string, kind: 'sync' | 'datasync') => void | Promise<void>;
  /** called before each open */
  open?: (target: string, flags: number) => void | Promise<void>;
  mkdir?: (target: string) => void | Promise<void>;
}

/** realFs with hooks, and a log of every fsync (resolved paths) in order. */
export function hookedFs(hooks: FsHooks, events: string[] = []): ApplyFs {
  const wrap = (h: ApplyHandle, target: string): ApplyHandle => ({
    get fd() {
      return h.fd;
    },
    write: async (b, o, l, p) => {
      await hooks.write?.(target);
      return h.write(b, o, l, p);
    },
    truncate: (n) => h.truncate(n),
    chmod: (m) => h.chmod(m),
    chown: (u, g) => h.chown(u, g),
    utimes: (a, m) => h.utimes(a, m),
    sync: async () => {
      await hooks.fsync?.(target, 'sync');
      await h.sync();
      events.push(`fsync ${target}`);
    },
    datasync: async () => {
      await hooks.fsync?.(target, 'datasync');
      await h.datasync();
      events.push(`fdatasync ${target}`);
    },
    stat: (o) => h.stat(o),
    close: () => h.close(),
  });
  return {
    ...realFs,
    open: async (p, flags, mode) => {
      await hooks.open?.(p, flags);
      const h = await realFs.open(p, flags, mode);
      let target = p;
      try {
        target = await fsp.readlink(`/proc/self/fd/${h.fd}`);
      } catch {
        // keep the name it was opened by
      }
      return wrap(h, target);
    },
    mkdir: async (p, mode) => {
      await hooks.mkdir?.(p);
      return realFs.mkdir(p, mode);
    },
  };
}

/** An Error shaped like Node's fs errors. */
export function fsError(code: string, errno: number, msg = code): NodeJS.ErrnoException {
  const e = new Error(`${code}: ${msg}`) as NodeJS.ErrnoException;
  e.code = code;
  e.errno = -errno;
  return e;
}
