import { describe, expect, it } from 'vitest';
import { LineDecoder, LineTooLongError } from '../../src/control/line-decoder.js';

const bytes = (text: string) => Buffer.from(text, 'utf8');

/** Feeds `chunks` in order and returns every line the decoder completed. */
function feed(decoder: LineDecoder, chunks: Buffer[]): string[] {
  return chunks.flatMap((chunk) => decoder.push(chunk));
}

function expectTooLong(push: () => unknown, limit: number): void {
  let thrown: unknown;
  try {
    push();
  } catch (error) {
    thrown = error;
  }
  expect(thrown).toBeInstanceOf(LineTooLongError);
  expect((thrown as LineTooLongError).limit).toBe(limit);
}

describe('LineDecoder', () => {
  it('joins a line split across chunks and keeps nothing once it is complete', () => {
    const decoder = new LineDecoder(1024);
    expect(decoder.push(bytes('{"id":1,'))).toEqual([]);
    expect(decoder.pendingBytes).toBe(8);
    expect(decoder.push(bytes('"method":'))).toEqual([]);
    expect(decoder.pendingBytes).toBe(17);
    expect(decoder.push(bytes('"status"}\n'))).toEqual(['{"id":1,"method":"status"}']);
    expect(decoder.pendingBytes).toBe(0);
  });

  it('returns every line of a chunk holding several, and keeps the unfinished tail', () => {
    const decoder = new LineDecoder(1024);
    expect(decoder.push(bytes('a\nbb\nccc\ndd'))).toEqual(['a', 'bb', 'ccc']);
    expect(decoder.pendingBytes).toBe(2);
    expect(decoder.push(bytes('d\ne\n'))).toEqual(['ddd', 'e']);
    expect(decoder.pendingBytes).toBe(0);
  });

  it('returns empty lines as empty strings', () => {
    const decoder = new LineDecoder(16);
    expect(decoder.push(bytes('\n\nx\n'))).toEqual(['', '', 'x']);
  });

  it('strips the \\r of \\r\\n, also when \\r and \\n arrive in different chunks', () => {
    const decoder = new LineDecoder(1024);
    expect(decoder.push(bytes('one\r\ntwo\r\n'))).toEqual(['one', 'two']);
    expect(decoder.push(bytes('three\r'))).toEqual([]);
    expect(decoder.push(bytes('\nfour\r\n'))).toEqual(['three', 'four']);
    // Only a \r right before the \n is a line ending.
    expect(decoder.push(bytes('a\rb\r\r\n'))).toEqual(['a\rb\r']);
  });

  it('decodes multi-byte UTF-8 characters split across chunks at every byte offset', () => {
    const text = '{"msg":"héllo € 😀 ✓ 日本"}';
    const encoded = bytes(`${text}\n`);
    for (let cut = 1; cut < encoded.length; cut++) {
      const decoder = new LineDecoder(1024);
      expect(feed(decoder, [encoded.subarray(0, cut), encoded.subarray(cut)])).toEqual([text]);
    }
    // One byte at a time.
    const decoder = new LineDecoder(1024);
    const lines = feed(
      decoder,
      [...encoded].map((byte) => Buffer.from([byte])),
    );
    expect(lines).toEqual([text]);
    expect(lines[0]).not.toContain('\uFFFD');
  });

  it('detects an over-limit line before any newline arrives', () => {
    const decoder = new LineDecoder(10);
    expect(decoder.push(bytes('123456'))).toEqual([]);
    // 11 bytes held, no newline in sight: refused now rather than buffered further.
    expectTooLong(() => decoder.push(bytes('78901')), 10);
  });

  it('detects an over-limit line in a single chunk without a newline', () => {
    expectTooLong(() => new LineDecoder(10).push(bytes('x'.repeat(11))), 10);
    expectTooLong(() => new LineDecoder(1024 * 1024).push(Buffer.alloc(1024 * 1024 + 1, 0x61)), 1024 * 1024);
  });

  it('detects an over-limit line that arrives complete with its newline', () => {
    expectTooLong(() => new LineDecoder(10).push(bytes(`ok\n${'x'.repeat(11)}\n`)), 10);
    const decoder = new LineDecoder(10);
    decoder.push(bytes('x'.repeat(8)));
    expectTooLong(() => decoder.push(bytes('xxx\n')), 10);
  });

  it('counts the limit in bytes, not characters', () => {
    // 'é' is 2 bytes: 6 of them are 12 bytes, over a limit of 11 although only 6 characters.
    expectTooLong(() => new LineDecoder(11).push(bytes(`${'é'.repeat(6)}\n`)), 11);
    expect(new LineDecoder(12).push(bytes(`${'é'.repeat(6)}\n`))).toEqual(['é'.repeat(6)]);
  });

  it('accepts a line of exactly the limit, in one chunk or held until its newline', () => {
    const line = 'y'.repeat(10);
    expect(new LineDecoder(10).push(bytes(`${line}\n`))).toEqual([line]);

    const decoder = new LineDecoder(10);
    expect(decoder.push(bytes(line))).toEqual([]);
    expect(decoder.pendingBytes).toBe(10);
    expect(decoder.push(bytes('\n'))).toEqual([line]);
    expect(decoder.pendingBytes).toBe(0);
    // The limit is per line: the next line starts from zero.
    expect(decoder.push(bytes(`${line}\n${line}\n`))).toEqual([line, line]);

    const mib = 1024 * 1024;
    const big = new LineDecoder(mib);
    expect(big.push(Buffer.alloc(mib, 0x61))).toEqual([]);
    expect(big.push(bytes('\n'))).toEqual(['a'.repeat(mib)]);
  });
});
