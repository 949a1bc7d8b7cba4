/**
 * Masking secret values in text: every occurrence of every registered value becomes `***`.
 *
 * - A multi-line value is registered whole and line by line, so a step that prints one line of
 *   it (or prints it with `\r\n` line ends) is masked too.
 * - Values (and lines) shorter than {@link MIN_MASKED_CHARS} are not masked as substrings:
 *   masking `ab` would rewrite every `ab` in the output and, by where the masks fall, tell the
 *   value anyway. Such values are still encrypted at rest and shown as `***` everywhere else.
 * - Overlapping values and values that contain one another mask the union of what they cover.
 * - {@link StreamMasker} keeps a short tail of each write that could be the start of a value,
 *   so a value split across two writes (or two output chunks) is still masked.
 *
 * Pure: no I/O. The cost is one regular-expression scan per chunk (see bench/masking.ts).
 */

export const MASK = '***';
/** Values shorter than this (in UTF-16 code units) are not masked in output. */
export const MIN_MASKED_CHARS = 4;

/** The texts to mask, derived from secret values; immutable. */
export class MaskPatterns {
  /** Longest first, so at any position the longest value that starts there is the one found. */
  readonly patterns: readonly string[];
  readonly maxLength: number;
  readonly #regex: RegExp | null;
  /** Char codes that start some pattern: a cheap filter when looking for a held-back tail. */
  readonly #firstCodes: ReadonlySet<number>;

  constructor(values: Iterable<string>, options: { jsonEscaped?: boolean } = {}) {
    const unique = new Set<string>();
    const add = (text: string) => {
      if (text.length >= MIN_MASKED_CHARS) unique.add(text);
    };
    for (const value of values) {
      add(value);
      if (/[\r\n]/.test(value)) for (const line of value.split(/\r?\n|\r/)) add(line);
    }
    if (options.jsonEscaped === true) {
      // A JSON log line holds `"a\"b"` for the value `a"b`: mask the escaped form as well.
      for (const text of [...unique]) add(JSON.stringify(text).slice(1, -1));
    }
    this.patterns = [...unique].sort((a, b) => b.length - a.length || (a < b ? -1 : 1));
    this.maxLength = this.patterns[0]?.length ?? 0;
    this.#regex =
      this.patterns.length === 0 ? null : new RegExp(this.patterns.map(escapeRegExp).join('|'), 'g');
    this.#firstCodes = new Set(this.patterns.map((p) => p.charCodeAt(0)));
  }

  get empty(): boolean {
    return this.#regex === null;
  }

  /** The text with every occurrence masked (no carry-over: for whole texts such as log lines). */
  mask(text: string): string {
    if (this.#regex === null) return text;
    const covered = this.cover(text);
    if (covered.length === 0) return text;
    let out = '';
    let pos = 0;
    for (const [start, end] of covered) {
      out += text.slice(pos, start) + MASK;
      pos = end;
    }
    return out + text.slice(pos);
  }

  /**
   * The ranges `[start, end)` of `text` covered by some pattern, merged and in order. Each
   * position is tried as a start (the search resumes one past the last match's start), so
   * overlapping occurrences are all found.
   */
  cover(text: string): [number, number][] {
    const regex = this.#regex;
    if (regex === null) return [];
    const ranges: [number, number][] = [];
    regex.lastIndex = 0;
    for (let match = regex.exec(text); match !== null; match = regex.exec(text)) {
      const start = match.index;
      const end = start + match[0].length;
      const last = ranges.at(-1);
      if (last !== undefined && start <= last[1]) last[1] = Math.max(last[1], end);
      else ranges.push([start, end]);
      regex.lastIndex = start + 1;
    }
    return ranges;
  }

  /**
   * Where the longest suffix of `text` that is a proper prefix of some pattern starts (from
   * `from` on), or `text.length` when there is none: the part that must wait for more text.
   */
  heldTailStart(text: string, from = 0): number {
    if (this.maxLength < 2) return text.length;
    for (let at = Math.max(from, text.length - this.maxLength + 1); at < text.length; at++) {
      if (!this.#firstCodes.has(text.charCodeAt(at))) continue;
      const tail = text.slice(at);
      for (const pattern of this.patterns) {
        if (pattern.length > tail.length && pattern.startsWith(tail)) return at;
      }
    }
    return text.length;
  }

  /** A masker for one stream of text that arrives in pieces. */
  stream(): StreamMasker {
    return new StreamMasker(this);
  }
}

/**
 * Masks one stream written in pieces. `push` returns what can be shown now; a tail that could
 * be the beginning of a secret is held until the next push or `end`. Output is never longer
 * than input (a mask is 3 characters, a masked value at least 4).
 */
export class StreamMasker {
  readonly #patterns: MaskPatterns;
  /** Raw text not yet fully decided: the held tail, possibly starting inside an emitted mask. */
  #carry = '';
  /** How many leading characters of the carry were already emitted (all inside a mask). */
  #emitted = 0;
  /** Whether the last thing emitted was a mask that ended exactly at the end of what was emitted. */
  #maskOpen = false;

  constructor(patterns: MaskPatterns) {
    this.#patterns = patterns;
  }

  /** Text held back for now (for tests and diagnostics). */
  get held(): number {
    return this.#carry.length - this.#emitted;
  }

  push(text: string): string {
    return this.#scan(text, false);
  }

  /** Everything still held, masked: the stream has ended (or is cut off). */
  end(): string {
    return this.#scan('', true);
  }

  #scan(text: string, final: boolean): string {
    const patterns = this.#patterns;
    if (patterns.empty) return text;
    const buffer = this.#carry === '' ? text : this.#carry + text;
    let pos = this.#emitted;
    const hold = final ? buffer.length : patterns.heldTailStart(buffer);
    let out = '';
    for (const [start, end] of patterns.cover(buffer)) {
      if (end <= pos) continue; // emitted already, as part of a mask
      if (start >= hold && start >= pos) break; // in the held tail: decided with the next text
      if (start > pos) {
        out += buffer.slice(pos, start);
        this.#maskOpen = false;
      }
      // A range that starts inside what was emitted continues that mask.
      if (!(start <= pos && this.#maskOpen)) out += MASK;
      this.#maskOpen = true;
      pos = end;
    }
    if (hold > pos) {
      out += buffer.slice(pos, hold);
      this.#maskOpen = false;
      pos = hold;
    }
    // Keep the raw text from the held tail on (some of it may already be out, masked).
    const keepFrom = Math.min(hold, pos);
    this.#carry = final ? '' : buffer.slice(keepFrom);
    this.#emitted = final ? 0 : pos - keepFrom;
    if (final) this.#maskOpen = false;
    return out;
  }
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
