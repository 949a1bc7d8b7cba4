import { describe, expect, it } from 'vitest';
import { MAX_VALUE_CHARS } from '../../src/protocol/field-limits.js';
import type { FieldSpec } from '../../src/workflow/definition.js';
import { inputEnvVar, stepFieldEnvVar } from '../../src/workflow/definition.js';
import { MAX_DURATION_MS, parseDuration } from '../../src/workflow/duration.js';
import { checkAnswers, coerceInputs, fieldToWire } from '../../src/workflow/values.js';

const field = (spec: Partial<FieldSpec> & Pick<FieldSpec, 'type'>): FieldSpec => ({
  required: false,
  description: null,
  values: null,
  ...spec,
});

const INPUTS: Record<string, FieldSpec> = {
  tag: field({ type: 'string', required: true, description: 'Git tag' }),
  dry_run: field({ type: 'boolean', default: false }),
  level: field({ type: 'enum', values: ['patch', 'minor', 'major'], default: 'patch' }),
  retries: field({ type: 'integer', default: 1 }),
  ratio: field({ type: 'number' }),
};

function problems(raw: Record<string, unknown>, specs = INPUTS): string[] {
  const checked = coerceInputs(specs, raw);
  if (checked.ok) throw new Error(`expected problems, got ${JSON.stringify(checked.value)}`);
  return checked.problems;
}

function value(raw: Record<string, unknown>, specs = INPUTS) {
  const checked = coerceInputs(specs, raw);
  if (!checked.ok) throw new Error(`unexpected problems: ${checked.problems.join('; ')}`);
  return checked.value;
}

describe('coerceInputs', () => {
  it('fills defaults and leaves out absent optional inputs without one', () => {
    expect(value({ tag: 'v1' })).toEqual({ tag: 'v1', dry_run: false, level: 'patch', retries: 1 });
    expect(value({ tag: 'v1', ratio: null })).not.toHaveProperty('ratio');
  });

  it('passes JSON values of the right type as they are', () => {
    expect(value({ tag: 'v1', dry_run: true, level: 'major', retries: -4, ratio: 0.25 })).toEqual({
      tag: 'v1',
      dry_run: true,
      level: 'major',
      retries: -4,
      ratio: 0.25,
    });
  });

  it('coerces strings from the CLI by type', () => {
    expect(value({ tag: 'v1', dry_run: 'YES', retries: '3', ratio: '2.5' })).toMatchObject({
      dry_run: true,
      retries: 3,
      ratio: 2.5,
    });
    for (const [text, expected] of [
      ['true', true],
      ['True', true],
      ['1', true],
      ['yes', true],
      ['false', false],
      ['FALSE', false],
      ['0', false],
      ['No', false],
    ] as const) {
      expect(value({ tag: 'v', dry_run: text }).dry_run).toBe(expected);
    }
    for (const [text, expected] of [
      ['3', 3],
      ['-2', -2],
      ['+7', 7],
      ['0', 0],
      [' 12 ', 12],
    ] as const) {
      expect(value({ tag: 'v', retries: text }).retries).toBe(expected);
    }
    for (const [text, expected] of [
      ['2.5', 2.5],
      ['-0.5', -0.5],
      ['.5', 0.5],
      ['3', 3],
      ['1e3', 1000],
    ] as const) {
      expect(value({ tag: 'v', ratio: text }).ratio).toBe(expected);
    }
    // A string input keeps its text, even one that looks like a number; the empty string is a value.
    expect(value({ tag: '007' }).tag).toBe('007');
    expect(value({ tag: '' }).tag).toBe('');
  });

  it('refuses strings that are not of the type', () => {
    for (const text of ['3.5', '3x', '', '1e3', '0x10', 'three']) {
      expect(problems({ tag: 'v', retries: text })).toEqual([
        `retries: expected an integer, got ${JSON.stringify(text)}`,
      ]);
    }
    for (const text of ['abc', '', '1,5', 'NaN', 'Infinity', '0x10', '1.2.3']) {
      expect(problems({ tag: 'v', ratio: text })).toEqual([
        `ratio: expected a number, got ${JSON.stringify(text)}`,
      ]);
    }
    for (const text of ['maybe', '', 'on', '2']) {
      expect(problems({ tag: 'v', dry_run: text })).toEqual([
        `dry_run: expected true or false (or yes/no, 1/0), got ${JSON.stringify(text)}`,
      ]);
    }
    expect(problems({ tag: 'v', retries: '99999999999999999999' })[0]).toMatch(/^retries: must be between/);
  });

  it('refuses JSON values of the wrong type', () => {
    expect(problems({ tag: 3 })).toEqual(['tag: expected a string, got 3']);
    expect(problems({ tag: 'v', dry_run: 1 })).toEqual([
      'dry_run: expected true or false (or yes/no, 1/0), got 1',
    ]);
    expect(problems({ tag: 'v', retries: 1.5 })).toEqual(['retries: expected an integer, got 1.5']);
    expect(problems({ tag: 'v', retries: true })).toEqual(['retries: expected an integer, got true']);
    expect(problems({ tag: 'v', ratio: [1] })).toEqual(['ratio: expected a number, got a list']);
    expect(problems({ tag: { a: 1 } })).toEqual(['tag: expected a string, got an object']);
  });

  it('checks enum values exactly', () => {
    expect(problems({ tag: 'v', level: 'huge' })).toEqual(['level: must be one of patch, minor, major']);
    expect(problems({ tag: 'v', level: 'Patch' })).toEqual(['level: must be one of patch, minor, major']);
    expect(problems({ tag: 'v', level: 1 })).toEqual(['level: must be one of patch, minor, major']);
  });

  it('lists every problem at once: required, types and unknown names', () => {
    expect(problems({ dry_run: 'maybe', retries: '3.5', nope: 1, also: 2 })).toEqual([
      'tag: required',
      'dry_run: expected true or false (or yes/no, 1/0), got "maybe"',
      'retries: expected an integer, got "3.5"',
      'also: unknown input (known: dry_run, level, ratio, retries, tag)',
      'nope: unknown input (known: dry_run, level, ratio, retries, tag)',
    ]);
    expect(problems({ tag: null })).toEqual(['tag: required']);
  });

  it('says when a workflow takes no inputs', () => {
    expect(coerceInputs({}, {})).toEqual({ ok: true, value: {} });
    expect(problems({ x: '1' }, {})).toEqual(['x: unknown input (this workflow takes no inputs)']);
  });

  it('does not take names from the prototype', () => {
    const raw = JSON.parse('{"__proto__": {"tag": "x"}, "constructor": 1}') as Record<string, unknown>;
    expect(problems(raw)).toEqual([
      'tag: required',
      '__proto__: unknown input (known: dry_run, level, ratio, retries, tag)',
      'constructor: unknown input (known: dry_run, level, ratio, retries, tag)',
    ]);
  });
});

describe('checkAnswers', () => {
  const FIELDS: Record<string, FieldSpec> = {
    note: field({ type: 'string' }),
    count: field({ type: 'integer', required: true }),
  };

  it('applies the same rules to input-step fields', () => {
    expect(checkAnswers(FIELDS, { count: '2' })).toEqual({ ok: true, value: { count: 2 } });
    expect(checkAnswers(FIELDS, { count: 2, note: 'hi' })).toEqual({
      ok: true,
      value: { count: 2, note: 'hi' },
    });
    expect(checkAnswers(FIELDS, { note: 5, extra: true })).toEqual({
      ok: false,
      problems: [
        'note: expected a string, got 5',
        'count: required',
        'extra: unknown field (known: count, note)',
      ],
    });
  });
});

describe('limits', () => {
  it('refuses a string value over 16 KiB, of any type, and takes one of exactly 16 KiB', () => {
    expect(value({ tag: 't'.repeat(MAX_VALUE_CHARS) }).tag).toHaveLength(MAX_VALUE_CHARS);
    expect(problems({ tag: 't'.repeat(MAX_VALUE_CHARS + 1) })).toEqual([
      `tag: a value is at most 16,384 characters, got 16,385`,
    ]);
    expect(problems({ tag: 'v1', retries: '1'.padStart(MAX_VALUE_CHARS + 1, '0') })).toEqual([
      `retries: a value is at most 16,384 characters, got 16,385`,
    ]);
  });

  it('refuses inputs over 64 KiB as JSON once coerced, and answers likewise', () => {
    const specs: Record<string, FieldSpec> = {};
    const raw: Record<string, string> = {};
    for (const name of ['a', 'b', 'c', 'd', 'e']) {
      specs[name] = field({ type: 'string' });
      raw[name] = 'x'.repeat(14_000);
    }
    expect(problems(raw, specs)).toEqual(['(all inputs): 70,036 bytes as JSON, at most 65,536 (64 KiB)']);
    const answers = checkAnswers(specs, raw);
    expect(answers).toEqual({
      ok: false,
      problems: ['(all fields): 70,036 bytes as JSON, at most 65,536 (64 KiB)'],
    });
    delete raw.e;
    expect(Object.keys(value(raw, specs))).toEqual(['a', 'b', 'c', 'd']);
  });

  it('lists the first 25 of 2,000 unknown names and counts the rest; a long name is cut', () => {
    const raw: Record<string, unknown> = { tag: 'v1' };
    for (let index = 0; index < 2_000; index++) raw[`unknown_${String(index).padStart(4, '0')}`] = 1;
    const listed = problems(raw);
    expect(listed).toHaveLength(26);
    expect(listed[0]).toBe('unknown_0000: unknown input (known: dry_run, level, ratio, retries, tag)');
    expect(listed[25]).toBe('… and 1,975 more');
    expect(listed.join('\n').length).toBeLessThan(4 * 1024);

    const long = problems({ tag: 'v1', [`n${'x'.repeat(100_000)}`]: 1 });
    expect(long).toEqual([`n${'x'.repeat(63)}…: unknown input (known: dry_run, level, ratio, retries, tag)`]);
  });
});

describe('fieldToWire', () => {
  it('gives the protocol form with plain arrays and no default', () => {
    const values = Object.freeze(['a', 'b']);
    const wire = fieldToWire(field({ type: 'enum', values, default: 'a', description: 'd' }));
    expect(wire).toEqual({ type: 'enum', required: false, description: 'd', values: ['a', 'b'] });
    expect(Object.isFrozen(wire.values)).toBe(false);
    expect(wire.values).not.toBe(values);
    expect(fieldToWire(field({ type: 'string', required: true }))).toEqual({
      type: 'string',
      required: true,
      description: null,
      values: null,
    });
  });
});

describe('environment variable names', () => {
  it('upper-cases and replaces what is not a letter or digit', () => {
    expect(inputEnvVar('dry-run')).toBe('CHARTER_INPUT_DRY_RUN');
    expect(inputEnvVar('tag')).toBe('CHARTER_INPUT_TAG');
    expect(stepFieldEnvVar('details', 'count')).toBe('CHARTER_STEP_DETAILS_COUNT');
    expect(stepFieldEnvVar('ask.v2', 'note-1')).toBe('CHARTER_STEP_ASK_V2_NOTE_1');
  });
});

describe('parseDuration', () => {
  it('reads a number with a unit, or bare seconds', () => {
    expect(parseDuration('500ms')).toBe(500);
    expect(parseDuration('30s')).toBe(30_000);
    expect(parseDuration('1.5s')).toBe(1500);
    expect(parseDuration('10m')).toBe(600_000);
    expect(parseDuration('2h')).toBe(7_200_000);
    expect(parseDuration('0.1h')).toBe(360_000);
    expect(parseDuration('45')).toBe(45_000);
    expect(parseDuration(' 1m ')).toBe(60_000);
    expect(parseDuration('168h')).toBe(MAX_DURATION_MS);
  });

  it('refuses what is not a positive duration of at most 7 days', () => {
    for (const text of [
      '',
      '0',
      '0s',
      '0ms',
      '-5s',
      '-5',
      '1.5',
      '0.5ms',
      '10 m',
      '10M',
      '1d',
      '1h30m',
      'm',
      '.5s',
      '5.s',
      '169h',
      '604800001ms',
      'Infinity',
      '1e3s',
    ]) {
      expect(parseDuration(text), text).toBeUndefined();
    }
  });
});
