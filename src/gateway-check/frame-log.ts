/**
 * Every message the gateway sent during one check run, read the way the daemon reads it
 * (docs/protocol.md, "Framing"): one JSON object per text message, a valid down frame of
 * `src/protocol/gateway.ts`, at most 1 MiB (the daemon's inbound limit). What breaks a rule is
 * kept for the `framing.gateway-frames` clause; the count of kept lines is bounded.
 */
import type { RawData } from 'ws';
import { z } from 'zod';
import { rawLength, rawText } from '../gateway/ws-data.js';
import { type DownFrame, DownFrameSchema } from '../protocol/gateway.js';
import { MAX_JSON_DEPTH, parseBoundedJson } from '../protocol/json-limits.js';

const MAX_VIOLATIONS_KEPT = 20;
const MAX_VIOLATION_CHARS = 300;

export class FrameLog {
  frames = 0;
  largestBytes = 0;
  violationCount = 0;
  readonly violations: string[] = [];

  /** Reads one gateway message: the frame when it is valid, else what is wrong with it (noted). */
  read(data: RawData, isBinary: boolean): DownFrame | string {
    const bytes = rawLength(data);
    this.frames += 1;
    this.largestBytes = Math.max(this.largestBytes, bytes);
    if (isBinary) {
      return this.violation(`a binary message of ${bytes} bytes (charter.v1 is text only)`);
    }
    const parsed = parseBoundedJson(rawText(data), MAX_JSON_DEPTH);
    if (!parsed.ok) {
      return this.violation(`a message that is ${parsed.message}`);
    }
    const frame = DownFrameSchema.safeParse(parsed.value);
    if (!frame.success) {
      const op = opOf(parsed.value);
      return this.violation(
        `an invalid frame (op ${op}): ${z.prettifyError(frame.error).replace(/\s+/g, ' ')}`,
      );
    }
    return frame.data;
  }

  /** A message the daemon's ws would refuse before reading it (ws closes with 1009). */
  oversized(detail: string): void {
    this.violation(`a message over 1 MiB (${detail})`);
  }

  /** Notes what broke a rule; returns it, shortened. */
  violation(what: string): string {
    const short = what.slice(0, MAX_VIOLATION_CHARS);
    this.violationCount += 1;
    if (this.violations.length < MAX_VIOLATIONS_KEPT) this.violations.push(short);
    return short;
  }
}

function opOf(value: unknown): string {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return '?';
  const op = (value as { op?: unknown }).op;
  return typeof op === 'string' ? JSON.stringify(op.slice(0, 40)) : '?';
}
