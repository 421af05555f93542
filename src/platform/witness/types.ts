/**
 * WitnessChecker: asks whether this node can still reach the outside world, to break a tie when it loses sight of
 * its peer (SafeKit's "checker"/split-brain witness). Real: ./linux.ts (ping); fake: ./fake.ts.
 *
 * Contract:
 * - `reachable` resolves true as soon as ANY of `addrs` answers, false when none answers within about `timeoutMs`
 *   (all witnesses are asked in parallel, so the call takes at most ~timeoutMs plus process start-up).
 * - An empty list is false: no witness, no evidence of reachability.
 * - A witness that cannot be asked (bad address, no route) counts as not answering; it does not throw.
 */
export interface WitnessChecker {
  reachable(addrs: string[], timeoutMs: number): Promise<boolean>;
}
