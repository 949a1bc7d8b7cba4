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
 * Pure: no I/O. The cost is one multi-pattern scan per chunk (see bench/masking.ts).
 */

export const MASK = '***';
/** Values shorter than this (in UTF-16 code units) are not masked in output. */
export const MIN_MASKED_CHARS = 4;

/** The texts to mask, derived from secret values; immutable. */
export class MaskPatterns {
  /** Longest first. */
  readonly patterns: readonly string[];
  readonly maxLength: number;
  readonly #search: BlockSearch | null;
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
    this.#search = this.patterns.length === 0 ? null : new BlockSearch(this.patterns);
    this.#firstCodes = new Set(this.patterns.map((p) => p.charCodeAt(0)));
  }

  get empty(): boolean {
    return this.#search === null;
  }

  /** The text with every occurrence masked (no carry-over: for whole texts such as log lines). */
  mask(text: string): string {
    if (this.#search === null) return text;
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
   * The ranges `[start, end)` of `text` covered by some pattern, merged and in order; every
   * occurrence counts, overlapping ones included.
   */
  cover(text: string): [number, number][] {
    const ranges: [number, number][] = [];
    this.#search?.find(text, (start, end) => {
      const last = ranges.at(-1);
      if (last !== undefined && start <= last[1]) last[1] = Math.max(last[1], end);
      else ranges.push([start, end]);
    });
    return ranges;
  }

  /**
   * Where the longest suffix of `text` that is a proper prefix of some pattern starts, or
   * `text.length` when there is none: the part that must wait for more text.
   */
  heldTailStart(text: string): number {
    if (this.maxLength < 2) return text.length;
    for (let at = Math.max(0, text.length - this.maxLength + 1); at < text.length; at++) {
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

const TABLE_BITS = 16;
const TABLE_MASK = (1 << TABLE_BITS) - 1;

/**
 * Finding every occurrence of many literal patterns in one pass (Wu–Manber): a window as long as
 * the shortest pattern slides over the text; a table indexed by a hash of the window's last
 * `block` characters says how far it may jump without skipping a possible start, and only where
 * it says 0 are the patterns whose start ends in that block compared. On ordinary output almost
 * every window jumps, which makes this several times faster than one regular expression of
 * alternatives (see bench/masking.ts).
 */
class BlockSearch {
  readonly #window: number;
  readonly #block: number;
  readonly #shift: Uint8Array | Uint16Array;
  /** Patterns by the hash of the last block of their first `window` characters. */
  readonly #candidates = new Map<number, string[]>();

  constructor(patterns: readonly string[]) {
    this.#window = Math.min(...patterns.map((p) => p.length));
    this.#block = this.#window >= 8 ? 3 : 2;
    const maxShift = this.#window - this.#block + 1;
    this.#shift = maxShift < 256 ? new Uint8Array(1 << TABLE_BITS) : new Uint16Array(1 << TABLE_BITS);
    this.#shift.fill(maxShift);
    for (const pattern of patterns) {
      for (let end = this.#block - 1; end < this.#window; end++) {
        const hash = this.#hash(pattern, end);
        const shift = this.#window - 1 - end;
        if (shift < (this.#shift[hash] ?? maxShift)) this.#shift[hash] = shift;
        if (shift === 0) {
          const list = this.#candidates.get(hash);
          if (list === undefined) this.#candidates.set(hash, [pattern]);
          else list.push(pattern);
        }
      }
    }
  }

  /** Calls `found(start, end)` for every occurrence, by increasing start. */
  find(text: string, found: (start: number, end: number) => void): void {
    const shifts = this.#shift;
    const last = text.length;
    const three = this.#block === 3;
    for (let end = this.#window - 1; end < last; ) {
      // #hash, inlined: this loop is the masker's hot path.
      let hash = (text.charCodeAt(end) * 33) ^ text.charCodeAt(end - 1);
      if (three) hash = (hash * 33) ^ text.charCodeAt(end - 2);
      hash &= TABLE_MASK;
      const shift = shifts[hash] ?? 0;
      if (shift > 0) {
        end += shift;
        continue;
      }
      const start = end - this.#window + 1;
      const candidates = this.#candidates.get(hash);
      if (candidates !== undefined) {
        // Longest first: a longer pattern covers a shorter one found at the same start.
        for (const pattern of candidates) {
          if (text.startsWith(pattern, start)) {
            found(start, start + pattern.length);
            break;
          }
        }
      }
      end += 1;
    }
  }

  /** A hash of the `block` characters of `text` that end at `end`. */
  #hash(text: string, end: number): number {
    let hash = text.charCodeAt(end);
    for (let i = 1; i < this.#block; i++) hash = (hash * 33) ^ text.charCodeAt(end - i);
    return hash & TABLE_MASK;
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
