import { describe, expect, it } from 'vitest';
import { CharterError, MESSAGE_CUT_MARKER } from '../../src/errors/charter-error.js';
import {
  capProblems,
  cutText,
  headChars,
  jsonBytes,
  MAX_ERROR_MESSAGE_BYTES,
} from '../../src/protocol/field-limits.js';
import { MAX_JSON_DEPTH } from '../../src/protocol/json-limits.js';

const bytes = (text: string) => Buffer.byteLength(text, 'utf8');
/** True when the text has a lone surrogate (half a character). */
const hasLoneSurrogate = (text: string) =>
  /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(text);

describe('cutText', () => {
  it('leaves text within the limit alone', () => {
    expect(cutText('hello', 5)).toBe('hello');
    expect(cutText('é'.repeat(10), 20)).toBe('é'.repeat(10));
  });

  it('cuts on a character boundary, marker included in the budget', () => {
    expect(cutText('abcdefghij', 8, '…')).toBe('abcde…');
    expect(bytes(cutText('abcdefghij', 8, '…'))).toBe(8);
    // 2-byte, 3-byte and 4-byte (surrogate pair) characters are never split.
    for (const char of ['é', '€', '😀']) {
      for (let max = 4; max < 40; max++) {
        const cut = cutText(char.repeat(50), max, '!');
        expect(bytes(cut)).toBeLessThanOrEqual(max);
        expect(cut.endsWith('!')).toBe(true);
        expect(hasLoneSurrogate(cut)).toBe(false);
        expect(cut.slice(0, -1)).toBe(char.repeat(cut.slice(0, -1).length / char.length));
      }
    }
  });
});

describe('capProblems and headChars', () => {
  it('lists the first problems, counts the rest, cuts long ones', () => {
    const many = Array.from({ length: 2_000 }, (_, index) => `p${index}`);
    const capped = capProblems(many);
    expect(capped).toHaveLength(26);
    expect(capped[24]).toBe('p24');
    expect(capped[25]).toBe('… and 1,975 more');
    expect(capProblems(['a', 'b'])).toEqual(['a', 'b']);
    const [long] = capProblems(['x'.repeat(5_000)]);
    expect(long).toBe(`${'x'.repeat(1_000)}…`);
  });

  it('never leaves half a surrogate pair', () => {
    expect(headChars('a😀b', 2)).toBe('a');
    expect(headChars('a😀b', 3)).toBe('a😀');
  });
});

describe('jsonBytes', () => {
  it('measures UTF-8 JSON, and refuses to measure values too deep to stringify', () => {
    expect(jsonBytes({ a: 'é' })).toBe(bytes('{"a":"é"}'));
    const deep = JSON.parse(`${'['.repeat(100_000)}${']'.repeat(100_000)}`) as unknown;
    expect(jsonBytes(deep)).toBeUndefined();
    expect(jsonBytes(JSON.parse(`${'['.repeat(MAX_JSON_DEPTH)}${']'.repeat(MAX_JSON_DEPTH)}`))).toBe(
      2 * MAX_JSON_DEPTH,
    );
  });
});

describe('CharterError.toWire', () => {
  it('cuts a message over 64 KiB on a character boundary, with a marker', () => {
    const wire = new CharterError('INVALID_INPUTS', `problems: ${'😀'.repeat(100_000)}`).toWire();
    expect(bytes(wire.message)).toBeLessThanOrEqual(MAX_ERROR_MESSAGE_BYTES);
    expect(bytes(wire.message)).toBeGreaterThan(MAX_ERROR_MESSAGE_BYTES - 8);
    expect(wire.message.startsWith('problems: 😀')).toBe(true);
    expect(wire.message.endsWith(MESSAGE_CUT_MARKER)).toBe(true);
    expect(hasLoneSurrogate(wire.message)).toBe(false);
    expect(wire.hint).toContain('Fix every listed input');
  });

  it('leaves a message of exactly 64 KiB as it is', () => {
    const message = 'm'.repeat(MAX_ERROR_MESSAGE_BYTES);
    expect(new CharterError('INTERNAL', message).toWire().message).toBe(message);
  });
});
