import type { ResourceState } from '../../../src/engine/rules/types.js';
import type { Report } from '../../../src/checkers/types.js';

/** A Report that keeps `state detail` lines, and the states alone. */
export function recorder(): { report: Report; seen: string[]; states: () => ResourceState[]; last: () => string | undefined } {
  const seen: string[] = [];
  const states: ResourceState[] = [];
  return {
    report: (state, detail) => {
      seen.push(`${state} ${detail}`);
      states.push(state);
    },
    seen,
    states: () => [...states],
    last: () => seen[seen.length - 1],
  };
}

/** Lets every promise chain that fakes resolve on microtasks run to its end (fakes never use timers). */
export async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
}

/** Advances the clock `times` steps of `ms`, settling after each, so every check can finish before the next tick. */
export async function step(clock: { advance(ms: number): void }, ms: number, times = 1): Promise<void> {
  for (let i = 0; i < times; i++) {
    clock.advance(ms);
    await settle();
  }
}
