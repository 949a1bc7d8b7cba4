/**
 * Packing events into `events` frames the way the daemon does (docs/protocol.md, "Events
 * upstream" and "Frame budget"): at most 500 events a frame, and no frame larger than
 * `min(welcome.max_frame, 1 MiB)`.
 */
import { DEFAULT_MAX_FRAME_BYTES, type UpEvent } from '../protocol/gateway.js';
import type { WelcomeFrame } from './connection.js';

export const MAX_EVENTS_PER_FRAME = 500;
/** `{"op":"events","events":[` + `]}` */
const FRAME_OVERHEAD_BYTES = Buffer.byteLength('{"op":"events","events":[]}');

/** The largest frame the daemon may send on this connection. */
export function frameBudget(welcome: WelcomeFrame): number {
  return Math.min(welcome.max_frame, DEFAULT_MAX_FRAME_BYTES);
}

/** Events in order, cut into frames within both bounds (an event too large alone gets a frame alone). */
export function packFrames(
  events: readonly UpEvent[],
  maxBytes: number,
  maxEvents = MAX_EVENTS_PER_FRAME,
): UpEvent[][] {
  const frames: UpEvent[][] = [];
  let current: UpEvent[] = [];
  let bytes = FRAME_OVERHEAD_BYTES;
  for (const event of events) {
    const size = Buffer.byteLength(JSON.stringify(event)) + 1; // the comma
    if (current.length > 0 && (current.length >= maxEvents || bytes + size > maxBytes)) {
      frames.push(current);
      current = [];
      bytes = FRAME_OVERHEAD_BYTES;
    }
    current.push(event);
    bytes += size;
  }
  if (current.length > 0) frames.push(current);
  return frames;
}

/** The size on the wire of one `events` frame holding these events. */
export function eventsFrameBytes(events: readonly UpEvent[]): number {
  return Buffer.byteLength(JSON.stringify({ op: 'events', events }));
}
