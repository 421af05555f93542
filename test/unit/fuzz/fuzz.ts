/**
 * Seeded fuzzing of the decoders a peer or a local client can reach (test/unit/fuzz/*.test.ts). Each test feeds
 * FUZZ_N inputs (mutations of valid messages, and random bytes) to one decoder and checks that it returns or throws
 * its documented error type, within a time bound per input, without any single allocation above a bound derived
 * from the input (length fields must be validated before anything is allocated from them).
 *
 *   TANDEM_FUZZ_N=2000000 node dist/test/unit/fuzz/heartbeat.test.js     a longer run (default 50,000 in CI)
 *   TANDEM_FUZZ_SEED=1234 …                                             another sequence (printed on failure)
 *
 * The per-input bound (INPUT_MS, 2 s) is there to catch a hang or a super-linear blow-up, not to measure speed: a
 * decoder call takes microseconds.
 */
import { rng } from '../rng.js';

function intEnv(name: string, dflt: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${name}=${v} is not a non-negative integer`);
  return n;
}

export const FUZZ_N = intEnv('TANDEM_FUZZ_N', 50_000);
export const FUZZ_SEED = intEnv('TANDEM_FUZZ_SEED', 0x7a4d3);
export const INPUT_MS = intEnv('TANDEM_FUZZ_INPUT_MS', 2000);

const INTERESTING8 = [0, 1, 0x7f, 0x80, 0xfe, 0xff];
const INTERESTING32 = [0, 1, 2, 0x7f, 0xff, 0x100, 0x7fff, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff];

/** A seeded source of fuzz inputs. */
export class Fuzzer {
  readonly random: () => number;

  constructor(readonly seed = FUZZ_SEED) {
    this.random = rng(seed);
  }

  int(n: number): number {
    return Math.floor(this.random() * n);
  }

  chance(p: number): boolean {
    return this.random() < p;
  }

  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }

  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }

  /** a length skewed towards small values, up to `max` */
  len(max: number): number {
    const r = this.random();
    return Math.min(max, r < 0.6 ? this.int(64) : r < 0.9 ? this.int(1024) : this.int(max + 1));
  }

  /** One mutation of `base` (1 to 4 steps); `corpus` supplies splices. */
  mutate(base: Buffer, corpus: readonly Buffer[], maxLen: number): Buffer {
    let b = Buffer.from(base);
    const steps = 1 + this.int(4);
    for (let s = 0; s < steps; s++) {
      const at = b.length > 0 ? this.int(b.length) : 0;
      switch (this.int(9)) {
        case 0: // bit flips
          for (let k = 0, n = 1 + this.int(8); k < n && b.length > 0; k++) b[this.int(b.length)]! ^= 1 << this.int(8);
          break;
        case 1: // interesting bytes
          if (b.length > 0) b[at] = this.pick(INTERESTING8);
          break;
        case 2: { // a length field: u16 or u32, either byte order
          const v = this.chance(0.3) ? b.length + this.int(5) - 2 : this.pick(INTERESTING32);
          const size = this.chance(0.5) ? 2 : 4;
          if (at + size <= b.length) {
            const x = size === 2 ? v & 0xffff : v >>> 0;
            if (this.chance(0.5)) b.writeUIntBE(x, at, size);
            else b.writeUIntLE(x, at, size);
          }
          break;
        }
        case 3: // truncate
          b = b.subarray(0, at);
          break;
        case 4: // append random bytes
          b = Buffer.concat([b, this.bytes(this.len(256))]);
          break;
        case 5: { // splice with another corpus entry
          const other = this.pick(corpus);
          b = Buffer.concat([b.subarray(0, at), other.subarray(other.length > 0 ? this.int(other.length) : 0)]);
          break;
        }
        case 6: { // duplicate a slice
          const end = at + this.int(Math.max(1, b.length - at));
          b = Buffer.concat([b.subarray(0, end), b.subarray(at, end), b.subarray(end)]);
          break;
        }
        case 7: // a run of one byte
          b = Buffer.concat([b.subarray(0, at), Buffer.alloc(1 + this.int(64), this.pick(INTERESTING8)), b.subarray(at)]);
          break;
        default: // overwrite a span with random bytes
          if (b.length > 0) this.bytes(Math.min(1 + this.int(16), b.length - at)).copy(b, at);
      }
    }
    return b.length > maxLen ? b.subarray(0, maxLen) : b;
  }

  /** A fuzz input: mostly a mutation of a corpus entry, sometimes the entry itself, sometimes random bytes. */
  input(corpus: readonly Buffer[], maxLen: number): Buffer {
    const r = this.random();
    if (r < 0.05) return Buffer.from(this.pick(corpus));
    if (r < 0.2) return this.bytes(this.len(maxLen));
    return this.mutate(this.pick(corpus), corpus, maxLen);
  }
}

/**
 * Records every Buffer allocation (Buffer.alloc, allocUnsafe, allocUnsafeSlow, and what Buffer.concat allocates
 * through them) made while `fn` runs, and the largest one. Use `check` to fail on an allocation above a limit.
 */
export class AllocationWatch {
  largest = 0;
  private readonly saved = { alloc: Buffer.alloc, allocUnsafe: Buffer.allocUnsafe, allocUnsafeSlow: Buffer.allocUnsafeSlow };

  start(): this {
    const track = (n: number) => {
      if (typeof n === 'number' && n > this.largest) this.largest = n;
    };
    const s = this.saved;
    Buffer.alloc = ((n: number, ...rest: unknown[]) => (track(n), (s.alloc as (...a: unknown[]) => Buffer)(n, ...rest))) as typeof Buffer.alloc;
    Buffer.allocUnsafe = ((n: number) => (track(n), s.allocUnsafe(n))) as typeof Buffer.allocUnsafe;
    Buffer.allocUnsafeSlow = ((n: number) => (track(n), s.allocUnsafeSlow(n))) as typeof Buffer.allocUnsafeSlow;
    return this;
  }

  stop(): void {
    Object.assign(Buffer, this.saved);
  }

  /** the largest allocation since the last reset */
  reset(): number {
    const l = this.largest;
    this.largest = 0;
    return l;
  }
}

/** What the run found; thrown as one error naming the seed, the input index and the input (hex, shortened). */
export class FuzzFailure extends Error {}

export function failure(what: string, i: number, input: Buffer | string, seed = FUZZ_SEED): FuzzFailure {
  const shown = typeof input === 'string' ? JSON.stringify(input.slice(0, 300)) : `${input.subarray(0, 200).toString('hex')}${input.length > 200 ? '…' : ''} (${input.length} bytes)`;
  return new FuzzFailure(`${what}\n  input #${i} of seed ${seed} (rerun: TANDEM_FUZZ_SEED=${seed}): ${shown}`);
}

/**
 * Runs `FUZZ_N` inputs through `check(input, i)`, which throws (via `failure`) on a contract violation. Fails on an
 * input that took longer than INPUT_MS or allocated more than `allocLimit(input)` bytes at once. Returns stats.
 */
export function fuzzSync(
  o: { name: string; corpus: readonly Buffer[]; maxLen: number; allocLimit: (input: Buffer) => number; n?: number; seed?: number },
  check: (input: Buffer, i: number, f: Fuzzer) => void,
): { inputs: number; slowestMs: number; largestAlloc: number } {
  const f = new Fuzzer(o.seed ?? FUZZ_SEED);
  const n = o.n ?? FUZZ_N;
  const watch = new AllocationWatch().start();
  let slowest = 0;
  let largest = 0;
  try {
    for (let i = 0; i < n; i++) {
      const input = f.input(o.corpus, o.maxLen);
      watch.reset();
      const t0 = performance.now();
      check(input, i, f);
      const ms = performance.now() - t0;
      const alloc = watch.reset();
      if (ms > slowest) slowest = ms;
      if (alloc > largest) largest = alloc;
      if (ms > INPUT_MS) throw failure(`${o.name}: one input took ${ms.toFixed(0)} ms (bound ${INPUT_MS} ms)`, i, input, f.seed);
      const limit = o.allocLimit(input);
      if (alloc > limit) throw failure(`${o.name}: allocated ${alloc} bytes at once for a ${input.length}-byte input (bound ${limit})`, i, input, f.seed);
    }
  } finally {
    watch.stop();
  }
  return { inputs: n, slowestMs: slowest, largestAlloc: largest };
}
