/**
 * The output masker: every occurrence of every secret becomes `***`, whole or written in pieces,
 * overlapping or nested, line by line for multi-line values, in binary output too; values under
 * the minimum length are left alone. A randomized check compares the streaming masker, fed in
 * random pieces, with masking the whole text at once.
 */
import { describe, expect, it } from 'vitest';
import type { OutputChunk } from '../../src/protocol/steps.js';
import { MASK, MaskPatterns, MIN_MASKED_CHARS } from '../../src/secrets/masker.js';
import { StepOutputMasker } from '../../src/secrets/output-masker.js';

/** Feeds `pieces` to a stream masker and returns everything it emitted, end included. */
function streamed(patterns: MaskPatterns, pieces: readonly string[]): string {
  const stream = patterns.stream();
  return pieces.map((piece) => stream.push(piece)).join('') + stream.end();
}

/** Every way to cut `text` in two. */
function allSplits(text: string): [string, string][] {
  return Array.from({ length: text.length + 1 }, (_, at) => [text.slice(0, at), text.slice(at)]);
}

describe('MaskPatterns.mask', () => {
  it('masks every occurrence of every value', () => {
    const patterns = new MaskPatterns(['hunter2!', 'tok-123456']);
    expect(patterns.mask('a hunter2! b tok-123456 c hunter2!')).toBe(`a ${MASK} b ${MASK} c ${MASK}`);
    expect(patterns.mask('nothing here')).toBe('nothing here');
  });

  it('masks the union of overlapping values', () => {
    const patterns = new MaskPatterns(['abcdef', 'defghi']);
    expect(patterns.mask('xx abcdefghi yy')).toBe(`xx ${MASK} yy`);
    expect(patterns.mask('defghi abcdef')).toBe(`${MASK} ${MASK}`);
  });

  it('masks values that contain one another, whichever is written', () => {
    const patterns = new MaskPatterns(['pass', 'password1', 'word1xyz']);
    expect(patterns.mask('password1xyz')).toBe(MASK);
    expect(patterns.mask('my pass is password1.')).toBe(`my ${MASK} is ${MASK}.`);
    expect(patterns.mask('repeated: passpass')).toBe(`repeated: ${MASK}`);
  });

  it('masks a value overlapping itself', () => {
    expect(new MaskPatterns(['abab']).mask('xababababx')).toBe(`x${MASK}x`);
  });

  it('masks a multi-line value whole, and each of its lines alone', () => {
    const key = '-----BEGIN KEY-----\nMIIEvQIBADANBg\nkqhkiG9w0BAQEF\n-----END KEY-----';
    const patterns = new MaskPatterns([key]);
    expect(patterns.mask(`key:\n${key}\ndone`)).toBe(`key:\n${MASK}\ndone`);
    // One line printed alone, or the value printed with CRLF line ends.
    expect(patterns.mask('second line: kqhkiG9w0BAQEF')).toBe(`second line: ${MASK}`);
    expect(patterns.mask(key.replaceAll('\n', '\r\n'))).toBe([MASK, MASK, MASK, MASK].join('\r\n'));
  });

  it(`does not mask values shorter than ${MIN_MASKED_CHARS} characters`, () => {
    const patterns = new MaskPatterns(['abc', 'x', 'abcd']);
    expect(patterns.mask('abc x abcd')).toBe(`abc x ${MASK}`);
    expect(new MaskPatterns(['ab', '']).empty).toBe(true);
    // A multi-line value's short lines are not masked alone; the value whole still is.
    const short = new MaskPatterns(['ab\ncdefgh']);
    expect(short.mask('ab and cdefgh and ab\ncdefgh')).toBe(`ab and ${MASK} and ${MASK}`);
  });

  it('masks inside binary output (decoded with replacement characters)', () => {
    const secret = 's3cr3t-v4lue';
    const bytes = Buffer.concat([
      Buffer.from([0x00, 0xff, 0xfe, 0x80]),
      Buffer.from(secret),
      Buffer.from([0xc3]),
    ]);
    const text = bytes.toString('utf8');
    expect(new MaskPatterns([secret]).mask(text)).toBe(`\u0000\ufffd\ufffd\ufffd${MASK}\ufffd`);
  });

  it('masks non-ASCII values, long and short windows alike', () => {
    const patterns = new MaskPatterns(['pässwörd-€', '🔑key-4242', 'ünïcode-secret-value-long-enough']);
    expect(patterns.mask('a pässwörd-€ b 🔑key-4242 c ünïcode-secret-value-long-enough d')).toBe(
      `a ${MASK} b ${MASK} c ${MASK} d`,
    );
    const long = new MaskPatterns(['a-rather-long-secret-0001', 'another-rather-long-one-0002']);
    expect(
      long.mask(`${'x'.repeat(1000)}another-rather-long-one-0002${'y'.repeat(7)}a-rather-long-secret-0001`),
    ).toBe(`${'x'.repeat(1000)}${MASK}${'y'.repeat(7)}${MASK}`);
  });

  it('treats regular-expression characters in values literally', () => {
    const patterns = new MaskPatterns(['a.b*c(d)$', '\\d+[x]']);
    expect(patterns.mask('aXbbc(d)$ a.b*c(d)$ \\d+[x] 123')).toBe(`aXbbc(d)$ ${MASK} ${MASK} 123`);
  });

  it('masks the JSON-escaped form of a value when asked (log lines)', () => {
    const patterns = new MaskPatterns(['quo"te\\back'], { jsonEscaped: true });
    const line = JSON.stringify({ msg: 'x quo"te\\back y' });
    expect(patterns.mask(line)).toBe(JSON.stringify({ msg: `x ${MASK} y` }));
  });
});

describe('StreamMasker', () => {
  const secrets = ['hunter2!', 'abcdef', 'defghi', 'pass', 'password1', 'line-one\nline-two'];
  const patterns = new MaskPatterns(secrets);
  const texts = [
    'say hunter2! twice: hunter2!',
    'overlap abcdefghi end',
    'nested password1 and pass',
    'multi line-one\nline-two done',
    'prefix only: hunter2 and abcde',
    'hunter2!',
  ];

  it('masks a value split across two writes, at every cut', () => {
    for (const text of texts) {
      for (const [head, tail] of allSplits(text)) {
        expect(streamed(patterns, [head, tail]), JSON.stringify([head, tail])).toBe(patterns.mask(text));
      }
    }
  });

  it('masks a value written one character at a time', () => {
    for (const text of texts) expect(streamed(patterns, [...text])).toBe(patterns.mask(text));
  });

  it('holds back only a tail that could start a value, and releases it at the end', () => {
    const stream = patterns.stream();
    expect(stream.push('ready; ')).toBe('ready; ');
    expect(stream.held).toBe(0);
    expect(stream.push('the word is hunt')).toBe('the word is ');
    expect(stream.held).toBe(4);
    expect(stream.end()).toBe('hunt');
  });

  const longSecrets = [
    'secret-value-one',
    'value-one-two-three',
    'another-secret!!',
    'secret-value-one-and-more',
  ];
  it.each([
    ['short and overlapping values', secrets],
    ['long values only', longSecrets],
  ])('matches masking the whole text, for random texts cut at random (%s)', (_name, values) => {
    const set = new MaskPatterns(values);
    let seed = 7;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const alphabet = 'abcdefghi!2nturp-ov \n';
    for (let round = 0; round < 300; round++) {
      let text = '';
      while (text.length < 120) {
        text +=
          random() < 0.3
            ? (values[Math.floor(random() * values.length)] ?? '')
            : (alphabet[Math.floor(random() * alphabet.length)] ?? '');
      }
      const cuts: string[] = [];
      for (let at = 0; at < text.length; ) {
        const size = 1 + Math.floor(random() * 12);
        cuts.push(text.slice(at, at + size));
        at += size;
      }
      const out = streamed(set, cuts);
      for (const secret of values)
        expect(out.includes(secret), `${JSON.stringify(cuts)} → ${out}`).toBe(false);
      expect(out).toBe(set.mask(text));
    }
  });

  it('passes text through unchanged without values', () => {
    const none = new MaskPatterns([]);
    expect(streamed(none, ['a', 'bc', ''])).toBe('abc');
  });
});

describe('StepOutputMasker', () => {
  it('masks per stream: a value split across chunks of stdout, and on stderr', () => {
    const chunks: OutputChunk[] = [];
    const masker = new StepOutputMasker(new MaskPatterns(['hunter2!']), (chunk) => chunks.push(chunk));
    masker.push({ stream: 'stdout', text: 'out: hun' });
    masker.push({ stream: 'stderr', text: 'err: hunter2!\n' });
    masker.push({ stream: 'stdout', text: 'ter2!\n' });
    masker.end();
    const text = (stream: OutputChunk['stream']) =>
      chunks
        .filter((c) => c.stream === stream)
        .map((c) => c.text)
        .join('');
    expect(text('stdout')).toBe(`out: ${MASK}\n`);
    expect(text('stderr')).toBe(`err: ${MASK}\n`);
  });

  it('emits what it holds before a truncation marker', () => {
    const chunks: OutputChunk[] = [];
    const masker = new StepOutputMasker(new MaskPatterns(['hunter2!']), (chunk) => chunks.push(chunk));
    masker.push({ stream: 'stdout', text: 'last words: hunt' });
    masker.push({ stream: 'stdout', text: '[output truncated after 10 bytes]\n', truncated: true });
    expect(chunks.map((c) => c.text)).toEqual([
      'last words: ',
      'hunt',
      '[output truncated after 10 bytes]\n',
    ]);
    expect(chunks.at(-1)?.truncated).toBe(true);
  });
});
