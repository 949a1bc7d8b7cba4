/**
 * Waiting in tests: one way to poll for a condition, bounded, with a message that says what was
 * awaited and what was seen last (instead of a copy of the same loop in every file).
 */

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Reads a value until `done(value)` holds and returns that value; after `timeoutMs` throws,
 * naming `what` and the last value read.
 */
export async function pollUntil<T>(
  read: () => T | Promise<T>,
  done: (value: T) => boolean,
  options: { timeoutMs: number; what: string; everyMs?: number },
): Promise<T> {
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${options.timeoutMs} ms waiting for ${options.what}; last: ${describe(value)}`,
      );
    }
    await sleep(options.everyMs ?? 20);
  }
}

/** Waits until `check()` holds; after `timeoutMs` throws, naming `what`. */
export async function waitUntil(
  check: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what: string,
): Promise<void> {
  await pollUntil(check, (ok) => ok, { timeoutMs, what });
}

function describe(value: unknown): string {
  if (typeof value === 'boolean') return String(value);
  try {
    return JSON.stringify(value)?.slice(0, 2000) ?? String(value);
  } catch {
    return String(value);
  }
}
