/**
 * The secret values this daemon holds in clear right now — the gateway token, and the opened
 * secrets of runs whose steps are executing — so the log can mask them by value wherever they
 * would appear (a message, an error, a field whose name gives no hint). Each owner (a run, the
 * token) replaces or drops its own values; the patterns are rebuilt only when they change.
 */
import { MaskPatterns } from './masker.js';

export class LiveSecrets {
  readonly #owners = new Map<string, readonly string[]>();
  #patterns: MaskPatterns | undefined;

  /** Replaces the values of `owner` (none: forgets it). */
  set(owner: string, values: readonly (string | null | undefined)[]): void {
    const kept = values.filter((value): value is string => typeof value === 'string' && value !== '');
    if (kept.length === 0) {
      if (this.#owners.delete(owner)) this.#patterns = undefined;
      return;
    }
    this.#owners.set(owner, kept);
    this.#patterns = undefined;
  }

  delete(owner: string): void {
    if (this.#owners.delete(owner)) this.#patterns = undefined;
  }

  /** Every live value, in the forms a JSON log line would hold it, masked. */
  mask(text: string): string {
    if (this.#owners.size === 0) return text;
    this.#patterns ??= new MaskPatterns([...this.#owners.values()].flat(), { jsonEscaped: true });
    return this.#patterns.mask(text);
  }
}
