/**
 * Keeping every `events` frame within the gateway's `max_frame`. Two layers:
 *
 * - At the source, step output is split so that each `step.output` event fits the budget of
 *   the last `max_frame` a gateway announced (`outputTextBudget`, `splitTextToFit`).
 * - At the sender, an event that still does not fit (stored before a gateway announced a
 *   smaller frame, or with fields larger than any budget) is shipped in a truncated form: the
 *   same seq, run, type and time, with `truncated: {bytes}` and only the small fields of its
 *   data (`fitEvent`). The full event stays in the local journal (`charter-daemon logs`).
 *
 * Pure functions: no I/O. See docs/protocol.md "Frame budget".
 */
import type { UpEvent } from './gateway.js';

/** `{"op":"events","events":[` + `]}`: what a frame adds around its events. */
export const EVENTS_FRAME_OVERHEAD = Buffer.byteLength('{"op":"events","events":[]}');
/** Room kept in a `step.output` event for everything but its text (seq, ids, time, keys). */
export const OUTPUT_EVENT_RESERVE = 512;
/**
 * Output text per event at most, whatever the frame (as JSON, quotes included): sized so that a
 * `step.output` event fits a 64 KiB frame. Output stored before any gateway announced its
 * `max_frame` (the daemon offline) is split by this budget; a gateway of 64 KiB or more then
 * gets all of it whole, instead of every full-sized piece in the truncated form.
 */
export const MAX_OUTPUT_TEXT_JSON_BYTES = 64 * 1024 - EVENTS_FRAME_OVERHEAD - OUTPUT_EVENT_RESERVE;
/** A field of a truncated event's data is kept when its JSON is at most this long. */
const KEPT_FIELD_BYTES = 256;

/** JSON bytes of a step.output event's text at most, for a gateway frame of `maxFrame` bytes. */
export function outputTextBudget(maxFrame: number | null): number {
  if (maxFrame === null) return MAX_OUTPUT_TEXT_JSON_BYTES;
  return Math.max(
    64,
    Math.min(MAX_OUTPUT_TEXT_JSON_BYTES, maxFrame - EVENTS_FRAME_OVERHEAD - OUTPUT_EVENT_RESERVE),
  );
}

/** Bytes of `text` as a JSON string (quotes included), measured natively. */
function jsonBytes(text: string): number {
  return Buffer.byteLength(JSON.stringify(text));
}

/** True when `end` would cut a surrogate pair of `text` in two. */
function splitsPair(text: string, end: number): boolean {
  if (end <= 0 || end >= text.length) return false;
  const before = text.charCodeAt(end - 1);
  const after = text.charCodeAt(end);
  return before >= 0xd800 && before <= 0xdbff && after >= 0xdc00 && after <= 0xdfff;
}

/**
 * Cuts `text` into pieces whose JSON string form (quotes included) is at most `maxJsonBytes`,
 * never inside a surrogate pair, in order; joined, the pieces are the text. Each piece is sized
 * with the native JSON encoder: a guess of as many characters as there are bytes of room (exact
 * for plain ASCII), then a binary search down only when escaping or multi-byte characters make
 * the guess too long.
 */
export function splitTextToFit(text: string, maxJsonBytes: number): string[] {
  const budget = Math.max(8, maxJsonBytes);
  if (text.length + 2 <= budget && jsonBytes(text) <= budget) return [text];
  const pieces: string[] = [];
  let start = 0;
  while (start < text.length) {
    let end = Math.min(text.length, start + budget - 2);
    if (jsonBytes(text.slice(start, end)) > budget) {
      // The longest prefix that fits: at least one code point always does (≤ 6 bytes + quotes).
      let low = start + 1;
      let high = end - 1;
      while (low < high) {
        const mid = (low + high + 1) >>> 1;
        if (jsonBytes(text.slice(start, mid)) <= budget) low = mid;
        else high = mid - 1;
      }
      end = low;
    }
    if (splitsPair(text, end)) end = end - 1 > start ? end - 1 : end + 1;
    pieces.push(text.slice(start, end));
    start = end;
  }
  return pieces;
}

/**
 * The event as it goes into a frame of at most `budget` bytes of events: its JSON, or — when
 * that is larger — its truncated form (see the module comment).
 */
export function fitEvent(event: UpEvent, budget: number): { json: string; truncated: boolean } {
  const full = JSON.stringify(event);
  // Bytes ≥ UTF-16 length: a short string needs no byte count.
  if (full.length * 3 <= budget) return { json: full, truncated: false };
  const bytes = Buffer.byteLength(full);
  if (bytes <= budget) return { json: full, truncated: false };
  const data: Record<string, unknown> = {};
  const truncated = { ...event, data, truncated: { bytes } };
  let text = JSON.stringify(truncated);
  const source = event.data !== null && typeof event.data === 'object' ? Object.entries(event.data) : [];
  for (const [key, value] of source) {
    const field = JSON.stringify(value);
    if (field === undefined || Buffer.byteLength(field) > KEPT_FIELD_BYTES) continue;
    data[key] = value;
    const next = JSON.stringify(truncated);
    if (Buffer.byteLength(next) > budget) {
      delete data[key];
      break;
    }
    text = next;
  }
  return { json: text, truncated: true };
}
