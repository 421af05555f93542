import { constants as C } from 'node:fs';
import { insertRange } from '../record/extent-map.js';
import type { Manifest, ManifestEntry, Range } from '../reintegrate/plan.js';
import { TargetTree } from '../reintegrate/target-tree.js';
import { inParallel } from '../../parallel.js';
import { CtlError, type CtlPeer, type CtlReply } from './ctl.js';
import { blockSumsOf } from '../reintegrate/compare.js';
import { decodeManifestPage, FLAG_LOGGED, ManifestCodecError } from './manifest-codec.js';

/**
 * The SECOND's side of the paged reintegration requests (files/ctl.ts), and the page sizes both sides use. Every
 * answer of the primary has a bounded size whatever the tree holds, so trees of any size reintegrate:
 *
 *   manifest {dir, after, format: 'bin'}
 *                                    → {count, next} + data              at most MANIFEST_PAGE_ENTRIES entries or
 *                                                                        about MANIFEST_PAGE_BYTES, encoded
 *                                                                        (manifest-codec.ts); next = the cursor for
 *                                                                        the following page, null at the end
 *                                                                        (tree-walk.ts); without `format` (earlier
 *                                                                        versions): {entries: [[path, entry]…], next}
 *                                                                        in JSON, pages of a quarter of the bytes
 *   sums {dir, path, blockSize, first, count}
 *                                    → {first, count, eof} + data        SHA-256 of blocks [first, first + count),
 *                                                                        count ≤ SUMS_PAGE, computed when asked
 *                                                                        (nothing kept per file); eof: the file ends
 *   pass {final}                     → {plans} (≤ PLAN_INLINE_BYTES in all) or {planBytes: [n per dir]}, then
 *   plan {dir, offset}               → data: bytes [offset, offset + PLAN_CHUNK) of that dir's plan (UTF-8 JSON)
 *
 * Memory on the SECOND stays proportional to the tree's entry count (both manifests and the plan are held while a
 * directory is compared), never to file sizes: block sums are compared page by page against the local file.
 */
export const MANIFEST_PAGE_ENTRIES = 10_000;
export const MANIFEST_PAGE_BYTES = 4 << 20;
/** 16384 sums = 512 KiB of data per answer (1 GiB of file with 64 KiB blocks) */
export const SUMS_PAGE = 16_384;
export const PLAN_INLINE_BYTES = 1 << 20;
export const PLAN_CHUNK = 4 << 20;
/** the largest plan the SECOND accepts from the primary (a bound on what a peer can make it allocate) */
export const MAX_PLAN_BYTES = 1 << 30;

/**
 * The primary's whole manifest of replicated dir `dir`, fetched page by page in the encoded form (manifest-codec.ts;
 * an answer in the JSON form of earlier versions is taken too), and the paths it flagged as logged. Each page is taken
 * in while the primary reads the next one ahead (reint-source.ts).
 */
export async function fetchManifest(ctl: CtlPeer, dir: number): Promise<{ manifest: Manifest; logged: Set<string> }> {
  const out: Manifest = new Map();
  const logged = new Set<string>();
  let after: string | null = null;
  for (;;) {
    const r: CtlReply = await ctl.request({ op: 'manifest', dir, after, format: 'bin' });
    const next = r.body.next;
    if (next !== null && typeof next !== 'string') throw protocol('a manifest page without cursor');
    let n: number;
    if (Array.isArray(r.body.entries)) n = jsonPage(r.body.entries as unknown[], out, logged);
    else {
      const count = r.body.count;
      if (!Number.isSafeInteger(count) || (count as number) < 0) throw protocol('a manifest page without entries');
      try {
        decodeManifestPage(r.data ?? Buffer.alloc(0), count as number, (rel, e, flags) => {
          out.set(rel, e);
          if (flags & FLAG_LOGGED) logged.add(rel);
        });
      } catch (e) {
        if (e instanceof ManifestCodecError) throw protocol(`a malformed manifest page (${e.message})`);
        throw e;
      }
      n = count as number;
    }
    if (next === null) return { manifest: out, logged };
    if (n === 0 || next === after) throw protocol('a manifest page that does not advance');
    after = next;
  }
}

/** Takes in a manifest page in the JSON form; returns its entry count. */
function jsonPage(entries: unknown[], out: Manifest, logged: Set<string>): number {
  for (const item of entries) {
    if (!Array.isArray(item) || typeof item[0] !== 'string' || typeof item[1] !== 'object' || item[1] === null) throw protocol('a malformed manifest entry');
    const e = item[1] as Record<string, unknown>;
    if (!validEntry(e)) throw protocol(`a malformed manifest entry (${JSON.stringify(String(item[0]).slice(0, 200))})`);
    const entry: ManifestEntry = { type: e.type, size: e.size, mtimeNs: BigInt(e.mtimeNs), mode: e.mode, uid: e.uid, gid: e.gid };
    if (e.type === 'symlink') entry.linkTarget = e.linkTarget as string;
    out.set(item[0], entry);
    if (e.logged === true) logged.add(item[0]);
  }
  return entries.length;
}

/** the granularity differing blocks are narrowed to: the size of a page, of most databases' writes */
export const FINE_BLOCK = 4096;

/**
 * The byte ranges of the primary's `rel` to copy so that the local `targetRoot/rel` (or `targetRoot/base`, the file
 * the primary renamed to `rel`, moved there before the ranges are copied) equals it (planBlocks, page by
 * page: one page of the primary's sums and of the local file's at a time). Only blocks below `sourceSize` (the
 * manifest's size) count. A block that differs while the local file holds (some of) it is narrowed to its differing
 * FINE_BLOCK parts (the sums of each run of differing blocks, at FINE_BLOCK, one more request): a 4 KiB write costs
 * 4 KiB, not the whole 64 KiB block. A source file gone (or no longer a regular file) since the manifest gives the
 * whole file: the applier then finds it gone and removes the local one.
 */
export async function remoteBlockRanges(
  ctl: CtlPeer, dir: number, targetRoot: string, rel: string, blockSize: number, sourceSize: number, base = rel,
): Promise<Range[]> {
  const ranges: [number, number][] = [];
  const tree = await TargetTree.open(targetRoot);
  const fine = blockSize > FINE_BLOCK && blockSize % FINE_BLOCK === 0 ? blockSize / FINE_BLOCK : 0;
  try {
    const fh = await tree.openFile(base, C.O_RDONLY | C.O_NONBLOCK).catch(() => null); // the local file: `base` if the source renamed it
    try {
      for (let first = 0; first * blockSize < sourceSize;) {
        const count = SUMS_PAGE;
        let r: CtlReply;
        let local: Buffer[];
        try {
          [r, local] = await Promise.all([
            ctl.request({ op: 'sums', dir, path: rel, blockSize, first, count }),
            fh ? blockSumsOf(fh, blockSize, first, count) : Promise.resolve([]),
          ]);
        } catch (e) {
          if (e instanceof CtlError && e.code === 'ENOENT') return sourceSize > 0 ? [[0, sourceSize]] : [];
          throw e;
        }
        const { data, n } = sumsPage(r, first, count, rel);
        // runs of differing blocks the local file holds (narrowed below), and blocks it lacks (copied whole)
        const runs: [number, number][] = [];
        for (let k = 0; k < n; k++) {
          const t = local[k];
          if (t && t.equals(data.subarray(k * 32, k * 32 + 32))) continue;
          const b = first + k;
          if (fine === 0 || t === undefined) { // the local file lacks the block: nothing to narrow it with
            insertRange(ranges, b * blockSize, Math.min((b + 1) * blockSize, sourceSize));
            continue;
          }
          const last = runs.at(-1);
          if (last && last[1] === b && (b + 1 - last[0]) * fine <= SUMS_PAGE) last[1] = b + 1;
          else runs.push([b, b + 1]);
        }
        for (const [s, e] of runs) await narrow(ctl, dir, fh!, rel, s * fine, (e - s) * fine, sourceSize, ranges);
        if (r.body.eof === true || n < count) break;
        first += n;
      }
    } finally {
      await fh?.close();
    }
  } finally {
    await tree.close();
  }
  return ranges;
}

/** how many files' block ranges are worked out at once (each: its sums requests in turn, and its local hashing) */
export const COMPARE_IN_FLIGHT = 16;

/**
 * `remoteBlockRanges` of every patch, up to COMPARE_IN_FLIGHT files at a time: a tree of small files whose times
 * cannot be trusted (first sync, `--fullsync`) costs a round trip per file, and those overlap. The result is the
 * same as one file after the other (each file's ranges are its own); the first failure rejects, once the files
 * already under way have ended. `signal` aborts between files.
 */
export async function remoteRangesOf(
  ctl: CtlPeer, dir: number, targetRoot: string, patches: readonly { path: string; size: number; base?: string }[], blockSize: number,
  signal: AbortSignal, inFlight = COMPARE_IN_FLIGHT,
): Promise<Map<string, Range[]>> {
  const out = new Map<string, Range[]>();
  await inParallel(patches, inFlight, async (p) => {
    if (signal.aborted) throw new Error('reintegration aborted');
    out.set(p.path, await remoteBlockRanges(ctl, dir, targetRoot, p.path, blockSize, p.size, p.base));
  });
  return out;
}

/** The sums of a `sums` answer (32 bytes each) and how many, checked against what was asked. */
function sumsPage(r: CtlReply, first: number, count: number, rel: string): { data: Buffer; n: number } {
  const data = r.data ?? Buffer.alloc(0);
  const n = data.length / 32;
  if (!Number.isInteger(n) || n > count || r.body.first !== first) throw protocol(`a malformed sums page for ${JSON.stringify(rel)}`);
  return { data, n };
}

/** Adds to `ranges` the FINE_BLOCK blocks [first, first + count) of `rel` that differ from the local file's. */
async function narrow(ctl: CtlPeer, dir: number, fh: import('node:fs/promises').FileHandle, rel: string, first: number, count: number,
  sourceSize: number, ranges: [number, number][]): Promise<void> {
  let r: CtlReply;
  try {
    r = await ctl.request({ op: 'sums', dir, path: rel, blockSize: FINE_BLOCK, first, count });
  } catch (e) {
    // gone since: the whole blocks (the applier then finds the file gone)
    if (e instanceof CtlError && e.code === 'ENOENT') return insertRange(ranges, first * FINE_BLOCK, Math.min((first + count) * FINE_BLOCK, sourceSize));
    throw e;
  }
  const { data, n } = sumsPage(r, first, count, rel);
  const local = await blockSumsOf(fh, FINE_BLOCK, first, count);
  for (let k = 0; k < n; k++) {
    const t = local[k];
    if (t && t.equals(data.subarray(k * 32, k * 32 + 32))) continue;
    insertRange(ranges, (first + k) * FINE_BLOCK, Math.min((first + k + 1) * FINE_BLOCK, sourceSize));
  }
}

/**
 * The primary's `pass` answer for `plans` (planToJson per dir): inline when small, else only their sizes, the texts
 * then kept (`paged`) for the `plan` requests that follow (`planChunk`).
 */
export function passAnswer(plans: string[]): { body: Record<string, unknown>; paged: Buffer[] | null } {
  const texts = plans.map((p) => Buffer.from(p, 'utf8'));
  if (texts.reduce((n, t) => n + t.length, 0) <= PLAN_INLINE_BYTES) return { body: { plans }, paged: null };
  return { body: { planBytes: texts.map((t) => t.length) }, paged: texts };
}

/** The primary's answer to `plan {dir, offset}`: the next chunk of that dir's paged plan. */
export function planChunk(paged: Buffer[] | undefined, dir: number, offset: unknown): Buffer {
  const plan = paged?.[dir];
  if (!plan) throw new CtlError('no paged plan in this session', 'EPROTO');
  if (typeof offset !== 'number' || !Number.isInteger(offset) || offset < 0 || offset > plan.length) {
    throw new CtlError(`offset must be an integer in [0, ${plan.length}]`, 'EINVAL');
  }
  return plan.subarray(offset, offset + PLAN_CHUNK);
}

/** The plans of a `pass` answer: inline, or fetched in chunks (`plan`); null when the primary asks for a comparison. */
export async function passPlans(ctl: CtlPeer, body: Record<string, unknown>, dirs: number): Promise<string[] | null> {
  if (Array.isArray(body.plans)) {
    if (body.plans.length !== dirs || !body.plans.every((p) => typeof p === 'string')) throw protocol('a pass answer with malformed plans');
    return body.plans as string[];
  }
  if (!Array.isArray(body.planBytes)) return null;
  const sizes = body.planBytes as unknown[];
  if (sizes.length !== dirs || !sizes.every((n) => Number.isInteger(n) && (n as number) >= 0 && (n as number) <= MAX_PLAN_BYTES)) {
    throw protocol('a pass answer with malformed plan sizes');
  }
  const out: string[] = [];
  for (let i = 0; i < dirs; i++) {
    const size = sizes[i] as number;
    const parts: Buffer[] = [];
    for (let offset = 0; offset < size;) {
      const d = (await ctl.request({ op: 'plan', dir: i, offset })).data ?? Buffer.alloc(0);
      if (d.length === 0 || offset + d.length > size) throw protocol('a plan chunk of the wrong size');
      parts.push(d);
      offset += d.length;
    }
    out.push(Buffer.concat(parts, size).toString('utf8'));
  }
  return out;
}

const TYPES = new Set(['file', 'dir', 'symlink', 'other']);
const uint = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;

function validEntry(e: Record<string, unknown>): e is Record<string, unknown> & {
  type: ManifestEntry['type']; size: number; mtimeNs: string; mode: number; uid: number; gid: number;
} {
  return typeof e.type === 'string' && TYPES.has(e.type) && uint(e.size) && uint(e.mode) && uint(e.uid) && uint(e.gid)
    && typeof e.mtimeNs === 'string' && /^-?\d{1,30}$/.test(e.mtimeNs) && (e.type !== 'symlink' || typeof e.linkTarget === 'string');
}

function protocol(what: string): CtlError {
  return new CtlError(`reintegration: the primary sent ${what}`, 'EPROTO');
}
