import { constants as C } from 'node:fs';
import fs from 'node:fs/promises';
import type { NotReplicated } from '../../config/types.js';
import { readFully } from '../reintegrate/apply-plan.js';
import { blockSumsOf } from '../reintegrate/compare.js';
import type { ManifestEntry } from '../reintegrate/plan.js';
import { checkRelPath, viaFd } from '../stream/paths.js';
import { CtlError } from './ctl.js';
import { sharedLister, type EncodedPage, type PageLister } from './tree-walk.js';

/**
 * The primary's reintegration file server, as seen from one backing path: how a path the peer names is opened.
 *
 * Contract:
 * - A path from the peer is checked for syntax first (`checkRelPath`: EINVAL "bad path …" before any I/O).
 * - It is then opened from a descriptor of the backing root held for the request, ONE COMPONENT AT A TIME, each
 *   directory with O_DIRECTORY|O_NOFOLLOW through `/proc/self/fd/<parent>/<name>`, and the last component with
 *   O_NOFOLLOW. No symlink is ever followed, not even one that stays inside the tree: an application (or any user
 *   who can write in the replicated directory) that swaps a directory for a symlink while the peer reads changes
 *   nothing, because every step is taken from a directory already open, never by resolving the path again.
 * - Files are opened O_NONBLOCK (a FIFO swapped in cannot block the daemon) and must be regular files (fstat).
 * - Outcomes, as CtlError codes the peer's applier understands:
 *   ENOENT   nothing, or no regular file, is at that path in the tree when no symlink is followed: a component is
 *            missing, a parent or the file itself is a symlink, or the file is not a regular file. The applier
 *            treats it as "gone since the plan" (the next pass carries what replaced it).
 *   ENOTDIR  a parent is a regular file (or other non-directory that is not a symlink).
 *   EINVAL   bad syntax; `readlink` of something that is not a symlink.
 *   other    the errno of the failing call (EACCES, EIO…).
 */
export class SourceTree {
  constructor(readonly root: string, private readonly lister: PageLister = sharedLister()) {}

  /** Up to `length` bytes of the regular file `rel` at `offset` (fewer at its end). */
  async read(rel: unknown, offset: number, length: number): Promise<Buffer> {
    const fh = await this.openFile(rel);
    try {
      return await readFully(fh, offset, length);
    } finally {
      await fh.close();
    }
  }

  /** SHA-256 of each `blockSize` block of `rel` from block `first`, at most `count` blocks (fewer at its end). */
  async blockSums(rel: unknown, blockSize: number, first = 0, count = Number.MAX_SAFE_INTEGER): Promise<Buffer[]> {
    const fh = await this.openFile(rel);
    try {
      return await blockSumsOf(fh, blockSize, first, count);
    } finally {
      await fh.close();
    }
  }

  /**
   * One page of the tree's manifest after the entry `after` (null: from the start), encoded (manifest-codec.ts): the
   * contract of tree-walk.ts (walk order, `<notreplicated>` left out, nothing followed, stateless, at most
   * `maxEntries` entries or about `maxBytes` bytes, `next` null at the end), listed by `lister` (default: the
   * process's worker thread, so that the walk never blocks this thread). The tree may change between pages (the
   * application runs): an entry is reported as it is when its page is read; what changed after the pass began is in
   * the next pass anyway.
   */
  async manifestPage(after: string | null, excludes: NotReplicated[], maxEntries: number, maxBytes: number): Promise<EncodedPage> {
    if (after !== null) {
      const c = checkRelPath(after);
      if (!c.ok) throw new CtlError(`bad manifest cursor ${JSON.stringify(after)}: ${c.reason}`, 'EINVAL');
      after = c.parts.join('/');
    }
    try {
      return await this.lister.page({ root: this.root, after, excludes, maxEntries, maxBytes });
    } catch (e) {
      throw ctlError(e, `the replicated dir's backing path ${this.root}`);
    }
  }

  /** The target of the symlink `rel` (its parents are not followed; neither is the link itself). */
  async readlink(rel: unknown): Promise<string> {
    return this.inParent(rel, async (dir, name, shown) => {
      try {
        return await fs.readlink(viaFd(dir, name));
      } catch (e) {
        throw ctlError(e, shown);
      }
    });
  }

  /** Opens the regular file `rel` read-only (contract above); the caller closes it. */
  async openFile(rel: unknown): Promise<fs.FileHandle> {
    return this.inParent(rel, async (dir, name, shown) => {
      let fh: fs.FileHandle;
      try {
        fh = await fs.open(viaFd(dir, name), C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ELOOP') throw new CtlError(`${shown} is a symlink (never followed): not a file of the replicated dir`, 'ENOENT');
        throw ctlError(e, shown);
      }
      const st = await fh.stat().catch(async (e: unknown) => {
        await fh.close();
        throw ctlError(e, shown);
      });
      if (!st.isFile()) {
        await fh.close();
        throw new CtlError(`${shown} is not a regular file`, 'ENOENT');
      }
      return fh;
    });
  }

  /**
   * Runs `fn` with the parent directory of `rel` open (walked from the root without following symlinks) and the
   * last component's name; closes every descriptor it opened afterwards.
   */
  private async inParent<T>(rel: unknown, fn: (dir: fs.FileHandle, name: string, shown: string) => Promise<T>): Promise<T> {
    const c = checkRelPath(rel);
    if (!c.ok) throw new CtlError(`bad path ${JSON.stringify(rel)}: ${c.reason}`, 'EINVAL');
    const shown = JSON.stringify(rel);
    const opened: fs.FileHandle[] = [];
    try {
      let dir: fs.FileHandle;
      try {
        dir = await fs.open(this.root, DIR_FLAGS);
      } catch (e) {
        throw ctlError(e, `the replicated dir's backing path ${this.root}`);
      }
      opened.push(dir);
      const parts = c.parts;
      for (let k = 0; k < parts.length - 1; k++) {
        const prefix = JSON.stringify(parts.slice(0, k + 1).join('/'));
        try {
          dir = await fs.open(viaFd(dir, parts[k]!), DIR_FLAGS);
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code;
          if (code === 'ELOOP' || (code === 'ENOTDIR' && await isSymlink(viaFd(dir, parts[k]!)))) {
            throw new CtlError(`${shown}: ${prefix} is a symlink (never followed): no such file in the replicated dir`, 'ENOENT');
          }
          throw ctlError(e, `${shown}: ${prefix}`);
        }
        opened.push(dir);
      }
      return await fn(dir, parts[parts.length - 1]!, shown);
    } finally {
      for (const h of opened.reverse()) await h.close().catch(() => {});
    }
  }
}

const DIR_FLAGS = C.O_RDONLY | C.O_DIRECTORY | C.O_NOFOLLOW;

/** A manifest entry on the wire: `mtimeNs` as a decimal string (JSON has no bigint). */
/** `logged`: the source's activity log names the file (reint-source.ts): compare its blocks whatever its mtime */
export type WireManifestEntry = Omit<ManifestEntry, 'mtimeNs'> & { mtimeNs: string; logged?: true };

async function isSymlink(p: string): Promise<boolean> {
  return fs.lstat(p).then((st) => st.isSymbolicLink(), () => false);
}

function ctlError(e: unknown, what: string): CtlError {
  const err = e as NodeJS.ErrnoException;
  const why = err.code === 'ENOENT' ? 'no such file or directory' : err.code === 'ENOTDIR' ? 'not a directory' : err.message;
  return new CtlError(`${what}: ${why}`, err.code);
}
