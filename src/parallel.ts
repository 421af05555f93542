/**
 * Runs `fn` on every item, at most `limit` at a time, in the items' order. Once a call fails no further item is
 * started; the promise rejects with the first error after the calls in flight have ended (nothing keeps running
 * behind the caller's back).
 */
export async function inParallel<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed: { e: unknown } | null = null;
  const lane = async () => {
    while (next < items.length && !failed) {
      const item = items[next++]!;
      try {
        await fn(item);
      } catch (e) {
        failed ??= { e };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, lane));
  if (failed) throw (failed as { e: unknown }).e;
}
