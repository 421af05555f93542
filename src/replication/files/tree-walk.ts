import { constants as C } from 'node:fs';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import { Worker } from 'node:worker_threads';
import type { NotReplicated } from '../../config/types.js';
import { UserError } from '../../errors.js';
import { entryOf, excludeMatcher } from '../reintegrate/compare.js';
import type { Manifest } from '../reintegrate/plan.js';
import { decodeManifestPage, ManifestWriter } from './manifest-codec.js';

/**
 * One page of a tree's manifest, encoded (manifest-codec.ts), as the reintegration source answers it and as the
 * returning node lists its own copy.
 *
 * Contract of a page (the same as before it was encoded, source-tree.ts):
 * - walk order: depth first, names sorted by UTF-16 code units, a directory before its contents; starting after the
 *   entry `after` (null: from the start); an `after` that no longer exists resumes at the first entry that would
 *   follow it;
 * - `<notreplicated>` entries and the directories they exclude are left out; nothing is followed: every directory is
 *   opened O_DIRECTORY|O_NOFOLLOW from its parent's descriptor (`/proc/self/fd/<parent>/<name>`), every entry is
 *   lstat'ed from its directory's descriptor;
 * - an entry that vanishes between readdir and lstat is left out; a directory that cannot be opened any more (it
 *   became a file or a symlink since its lstat) is reported but not entered: what changed is in the next pass;
 * - a page ends after `maxEntries` entries or once it holds `maxBytes` bytes; `next` is the last entry's path while
 *   more may follow, else null;
 * - stateless: each page walks down again from the root to `after`; every descriptor opened is closed before the
 *   page is returned, whatever happens.
 *
 * `walkPageSync` does blocking I/O: it runs in a worker thread (`workerLister`), never on a thread that serves a FUSE
 * mount or a channel; it only reads backing paths (never a FUSE mount), so it cannot wait on this process itself.
 * `inlineLister` runs it on the caller's thread (tests, tools).
 */
export interface EncodedPage {
  data: Buffer;
  count: number;
  next: string | null;
}

export interface PageRequest {
  root: string;
  after: string | null;
  excludes: NotReplicated[];
  maxEntries: number;
  maxBytes: number;
}

/** Lists pages of trees; rejects with an Error carrying the errno `code` when the root cannot be listed. */
export interface PageLister {
  page(r: PageRequest): Promise<EncodedPage>;
}

const DIR_FLAGS = C.O_RDONLY | C.O_DIRECTORY | C.O_NOFOLLOW;
const fdPath = (fd: number, name?: string) => (name === undefined ? `/proc/self/fd/${fd}` : `/proc/self/fd/${fd}/${name}`);

interface Frame {
  rel: string;
  fd: number;
  names: string[];
  i: number;
}

/** The first index of sorted `names` whose name is ≥ `want`. */
function lowerBound(names: string[], want: string): number {
  let lo = 0;
  let hi = names.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (names[mid]! < want) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export function walkPageSync(r: PageRequest): EncodedPage {
  const excluded = excludeMatcher(r.excludes);
  const cursor = r.after === null ? [] : r.after.split('/');
  const w = new ManifestWriter();
  let last: string | null = null;
  const frames: Frame[] = [];
  const open = (parent: number | null, rel: string, name: string | null): Frame => {
    const fd = fs.openSync(parent === null || name === null ? r.root : fdPath(parent, name), DIR_FLAGS);
    try {
      const f: Frame = { rel, fd, names: fs.readdirSync(fdPath(fd)).sort(), i: 0 };
      frames.push(f);
      return f;
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  };
  const tryOpen = (parent: number, rel: string, name: string): Frame | null => {
    try {
      return open(parent, rel, name);
    } catch {
      return null; // not a directory (any more): nothing below it in this page
    }
  };
  try {
    let top = open(null, '', null);
    for (let d = 0; d < cursor.length; d++) {
      const want = cursor[d]!;
      top.i = lowerBound(top.names, want);
      if (top.names[top.i] !== want) break; // gone: resume at what follows it
      top.i++;
      const next = tryOpen(top.fd, top.rel === '' ? want : `${top.rel}/${want}`, want);
      if (!next) break;
      top = next;
    }
    while (frames.length > 0) {
      const f = frames[frames.length - 1]!;
      if (f.i >= f.names.length) {
        frames.pop();
        fs.closeSync(f.fd);
        continue;
      }
      if (w.count >= r.maxEntries || w.bytes >= r.maxBytes) return { data: w.finish(), count: w.count, next: last ?? r.after };
      const name = f.names[f.i++]!;
      const rel = f.rel === '' ? name : `${f.rel}/${name}`;
      const at = fdPath(f.fd, name);
      const st = fs.lstatSync(at, { bigint: true, throwIfNoEntry: false });
      if (!st) continue; // vanished since the readdir
      const isDir = st.isDirectory();
      if (excluded(rel, isDir)) continue;
      let link: string | undefined;
      if (st.isSymbolicLink()) {
        try {
          link = fs.readlinkSync(at);
        } catch {
          link = '';
        }
      }
      w.add(rel, entryOf(st, link));
      last = rel;
      if (isDir) tryOpen(f.fd, rel, name);
    }
    return { data: w.finish(), count: w.count, next: null };
  } finally {
    for (const f of frames) {
      try {
        fs.closeSync(f.fd);
      } catch {
        // already closed
      }
    }
  }
}

/** Runs `walkPageSync` on the caller's thread. */
export const inlineLister: PageLister = {
  page: async (r) => walkPageSync(r),
};

type WorkerAnswer = { id: number; ok: true; data: Uint8Array; count: number; next: string | null } | { id: number; ok: false; message: string; code?: string };

/**
 * Runs `walkPageSync` in one worker thread shared by the process (started at the first page; it keeps the process
 * alive only while a page is under way). Pages are listed one after the other in that thread; a worker that dies fails the pages
 * under way and is started again for the next one.
 */
export function workerLister(): PageLister {
  let worker: Worker | null = null;
  let nextId = 1;
  const pending = new Map<number, { resolve: (p: EncodedPage) => void; reject: (e: Error) => void }>();
  const start = (): Worker => {
    const w = new Worker(new URL('./tree-walk-worker.js', import.meta.url));
    w.on('message', (m: WorkerAnswer) => {
      const p = pending.get(m.id);
      if (!p) return;
      pending.delete(m.id);
      if (pending.size === 0) w.unref();
      if (m.ok) p.resolve({ data: Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength), count: m.count, next: m.next });
      else p.reject(Object.assign(new Error(m.message), m.code ? { code: m.code } : {}));
    });
    const fail = (e: Error) => {
      if (worker === w) worker = null;
      for (const p of pending.values()) p.reject(e);
      pending.clear();
    };
    w.on('error', fail);
    w.on('exit', (code) => fail(new Error(`the tree listing worker exited (${code})`)));
    return w;
  };
  return {
    page(r) {
      worker ??= start();
      const id = nextId++;
      const w = worker;
      return new Promise<EncodedPage>((resolve, reject) => {
        if (pending.size === 0) w.ref(); // held only while a page is under way: an idle worker keeps no process alive
        pending.set(id, { resolve, reject });
        w.postMessage({ id, r });
      });
    },
  };
}

let shared: PageLister | null = null;
/** The process's worker lister. */
export function sharedLister(): PageLister {
  shared ??= workerLister();
  return shared;
}

/** pages of a local listing: no wire limit, only a bound on what one page holds in memory */
const LOCAL_PAGE_ENTRIES = 100_000;
const LOCAL_PAGE_BYTES = 16 << 20;

/**
 * The whole manifest of the local tree `root` (listTree's result, in walk order), listed page by page by `lister`
 * (default: the process's worker thread): a tree of any size is listed without blocking this thread. Throws
 * UserError if `root` is not a directory.
 */
export async function listTreePaged(root: string, excludes: NotReplicated[], lister: PageLister = sharedLister()): Promise<Manifest> {
  const st = await fsp.stat(root).catch(() => null);
  if (!st?.isDirectory()) {
    throw new UserError(`replicated directory ${root} does not exist or is not a directory.`,
      'Create it (same path on both nodes) or fix <replicated dir="…"> in userconfig.xml.');
  }
  const out: Manifest = new Map();
  let after: string | null = null;
  for (;;) {
    const p: EncodedPage = await lister.page({ root, after, excludes, maxEntries: LOCAL_PAGE_ENTRIES, maxBytes: LOCAL_PAGE_BYTES });
    decodeManifestPage(p.data, p.count, (rel, e) => out.set(rel, e));
    if (p.next === null || p.count === 0) return out;
    after = p.next;
  }
}
