import type { WitnessChecker } from './types.js';

/**
 * WitnessChecker for unit tests: a witness answers when its address is in `answering`. Records each call's
 * address list in `calls`. Resolves on the next microtask; `timeoutMs` is recorded, not waited.
 */
export class FakeWitness implements WitnessChecker {
  readonly answering = new Set<string>();
  readonly calls: { addrs: string[]; timeoutMs: number }[] = [];

  constructor(answering: string[] = []) {
    for (const a of answering) this.answering.add(a);
  }

  /** make `addr` answer (true) or stay silent (false) */
  set(addr: string, answers: boolean): void {
    if (answers) this.answering.add(addr);
    else this.answering.delete(addr);
  }

  async reachable(addrs: string[], timeoutMs: number): Promise<boolean> {
    this.calls.push({ addrs: [...addrs], timeoutMs });
    return addrs.some((a) => this.answering.has(a));
  }
}
