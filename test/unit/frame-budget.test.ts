/**
 * The frame budget's pure parts: output text split so every piece fits as JSON, and the
 * truncated form of an event too large for any frame.
 */
import { describe, expect, it } from 'vitest';
import {
  EVENTS_FRAME_OVERHEAD,
  fitEvent,
  MAX_OUTPUT_TEXT_JSON_BYTES,
  outputTextBudget,
  splitTextToFit,
} from '../../src/protocol/frame-budget.js';
import type { UpEvent } from '../../src/protocol/gateway.js';

const jsonBytes = (text: string) => Buffer.byteLength(JSON.stringify(text));

describe('splitTextToFit', () => {
  const samples: [string, string][] = [
    ['plain ASCII', 'a'.repeat(200_000)],
    ['quotes and backslashes', '"\\'.repeat(50_000)],
    ['control characters (6 bytes each as JSON)', '\u0001\u0002\n\t'.repeat(20_000)],
    ['multi-byte and astral characters', 'é€😀'.repeat(20_000)],
    ['lone surrogates', '\ud800x\udc00'.repeat(20_000)],
  ];
  it.each(samples)('%s: pieces fit, keep code points whole, and join back to the text', (_name, text) => {
    for (const budget of [999, 4096, 65_000]) {
      const pieces = splitTextToFit(text, budget);
      expect(pieces.join('')).toBe(text);
      for (const piece of pieces) {
        expect(jsonBytes(piece)).toBeLessThanOrEqual(budget);
        expect(piece.length).toBeGreaterThan(0);
      }
      // No cut between the two halves of a surrogate pair.
      for (let i = 1; i < pieces.length; i++) {
        const splitPair =
          /[\ud800-\udbff]$/.test(pieces[i - 1] ?? '') && /^[\udc00-\udfff]/.test(pieces[i] ?? '');
        expect(splitPair).toBe(false);
      }
      // Not cut into needlessly many pieces: each but the last is at least half full.
      for (const piece of pieces.slice(0, -1)) expect(jsonBytes(piece)).toBeGreaterThan(budget / 2 - 8);
    }
  });

  it('keeps a surrogate pair in one piece', () => {
    const pieces = splitTextToFit('😀'.repeat(1000), 100);
    for (const piece of pieces) expect(piece).toMatch(/^(😀)+$/u);
  });

  it('leaves short text whole', () => {
    expect(splitTextToFit('hello\n', 100)).toEqual(['hello\n']);
  });
});

describe('outputTextBudget', () => {
  it('is 64 KiB less the frame and event overhead without a gateway, and follows a smaller frame', () => {
    expect(outputTextBudget(null)).toBeLessThan(MAX_OUTPUT_TEXT_JSON_BYTES + 1);
    expect(outputTextBudget(null) + EVENTS_FRAME_OVERHEAD + 512).toBeLessThanOrEqual(64 * 1024);
    expect(outputTextBudget(1024)).toBe(1024 - EVENTS_FRAME_OVERHEAD - 512);
    expect(outputTextBudget(16 * 1024 * 1024)).toBe(outputTextBudget(null));
  });
});

describe('fitEvent', () => {
  const event = (data: unknown): UpEvent => ({
    seq: 41,
    run_id: 'r01M80000000000000000000000',
    run_seq: 1,
    type: 'run.queued',
    ts: '2026-12-01T10:00:00.000Z',
    data,
  });

  it('sends an event that fits as it is', () => {
    const small = event({ workflow_id: 'deploy', inputs: { name: 'x' } });
    expect(fitEvent(small, 1000)).toEqual({ json: JSON.stringify(small), truncated: false });
  });

  it('sends an event too large for the frame in its truncated form, within the budget', () => {
    const large = event({ workflow_id: 'deploy', inputs: { blob: 'x'.repeat(5000) }, note: 'kept' });
    const budget = 1024 - EVENTS_FRAME_OVERHEAD;
    const fitted = fitEvent(large, budget);
    expect(fitted.truncated).toBe(true);
    expect(Buffer.byteLength(fitted.json)).toBeLessThanOrEqual(budget);
    const sent = JSON.parse(fitted.json) as UpEvent & { truncated: { bytes: number } };
    expect(sent).toMatchObject({ seq: 41, run_seq: 1, type: 'run.queued', ts: large.ts });
    expect(sent.truncated.bytes).toBe(Buffer.byteLength(JSON.stringify(large)));
    expect(sent.data).toEqual({ workflow_id: 'deploy', note: 'kept' }); // the large field is left out
  });

  it('counts bytes, not characters', () => {
    const wide = event({ text: '€'.repeat(400) }); // 1,200 bytes of text in 400 characters
    expect(fitEvent(wide, 1000).truncated).toBe(true);
  });
});
