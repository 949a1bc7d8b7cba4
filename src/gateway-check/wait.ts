/** Bounded waiting for the kit: every wait polls until a deadline, none sleeps for a guess. */

const POLL_MS = 5;

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The first value `pick()` returns that is not undefined, polled until `timeoutMs`; else undefined. */
export async function until<T>(pick: () => T | undefined, timeoutMs: number): Promise<T | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = pick();
    if (value !== undefined) return value;
    if (Date.now() >= deadline) return undefined;
    await sleep(Math.min(POLL_MS, Math.max(1, deadline - Date.now())));
  }
}
