/**
 * Polls `fn` until it returns a truthy value (which is returned) or `timeoutMs` passes; then throws an Error naming
 * `what` and the last value or error seen. `fn` may be async and may throw while the condition is not met yet.
 * Tests wait for conditions with this, never for a fixed time.
 */
export async function waitFor<T>(fn: () => T | Promise<T>, timeoutMs: number, what: string, everyMs = 10): Promise<NonNullable<T>> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<T>;
      last = v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) {
      const seen = last instanceof Error ? last.message : JSON.stringify(last);
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${seen})`);
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/**
 * Resolves or rejects as `p` does, or throws an Error naming `what` once `timeoutMs` passes first. It is the bound that
 * makes a test fail instead of hanging when `p` never settles; it is not a measure of how fast `p` settles.
 */
export async function within<T>(p: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
  });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}
