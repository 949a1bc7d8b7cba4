/**
 * Durations in workflow files (`timeout: 10m`): a number followed by a unit, `ms`, `s`, `m` or
 * `h` (`500ms`, `30s`, `1.5s`, `10m`, `2h`), or a bare whole number of seconds (`30`).
 */

/** The longest duration accepted: 7 days. */
export const MAX_DURATION_MS = 7 * 24 * 3600 * 1000;

const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;
const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/;
const BARE_SECONDS = /^\d+$/;

/**
 * Milliseconds, or undefined when the text is not a duration: empty, zero, negative, no unit on a
 * fraction, an unknown unit, not a whole number of milliseconds (`0.5ms`), or more than 7 days.
 */
export function parseDuration(text: string): number | undefined {
  const trimmed = text.trim();
  let ms: number;
  if (BARE_SECONDS.test(trimmed)) {
    ms = Number(trimmed) * 1000;
  } else {
    const match = DURATION.exec(trimmed);
    if (match === null) return undefined;
    const unit = match[2] as keyof typeof UNIT_MS;
    ms = Number(match[1]) * UNIT_MS[unit];
  }
  const rounded = Math.round(ms);
  // `0.1h` is 360000.00000000006 in floating point: accept what is a whole number up to rounding.
  if (Math.abs(ms - rounded) > 1e-6) return undefined;
  if (!Number.isFinite(rounded) || rounded <= 0 || rounded > MAX_DURATION_MS) return undefined;
  return rounded;
}
