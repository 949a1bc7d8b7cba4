import { describe, expect, it } from 'vitest';
import {
  jsonTextDepthExceeds,
  MAX_JSON_DEPTH,
  parseBoundedJson,
  valueDepthExceeds,
} from '../../src/protocol/json-limits.js';

const deepArray = (depth: number): string => `${'['.repeat(depth)}${']'.repeat(depth)}`;
const deepObject = (depth: number): string => `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;

describe('jsonTextDepthExceeds', () => {
  it('counts arrays and objects; scalars are 0 deep', () => {
    expect(jsonTextDepthExceeds('1', 0)).toBe(false);
    expect(jsonTextDepthExceeds('"x"', 0)).toBe(false);
    expect(jsonTextDepthExceeds('[]', 0)).toBe(true);
    expect(jsonTextDepthExceeds('[]', 1)).toBe(false);
    expect(jsonTextDepthExceeds('{"a":[1,{"b":2}]}', 3)).toBe(false);
    expect(jsonTextDepthExceeds('{"a":[1,{"b":2}]}', 2)).toBe(true);
    // Siblings do not add up: depth is the deepest path, not the number of containers.
    expect(jsonTextDepthExceeds(`[${Array(10_000).fill('[[1]]').join(',')}]`, 3)).toBe(false);
  });

  it('finds 5,000- and 100,000-deep arrays and objects, without recursion', () => {
    for (const depth of [5_000, 100_000]) {
      expect(jsonTextDepthExceeds(deepArray(depth), MAX_JSON_DEPTH)).toBe(true);
      expect(jsonTextDepthExceeds(deepObject(depth), MAX_JSON_DEPTH)).toBe(true);
      expect(jsonTextDepthExceeds(deepArray(depth), depth)).toBe(false);
    }
  });

  it('does not count brackets inside strings, escaped quotes included', () => {
    const brackets = JSON.stringify({ a: '[[[[[[{{{{{{', b: ']]]]' });
    expect(jsonTextDepthExceeds(brackets, 1)).toBe(false);
    // An escaped quote does not end the string: the brackets after it are still text.
    const escaped = JSON.stringify(['say \\"[[[[" and \\\\', '{{{{']);
    expect(jsonTextDepthExceeds(escaped, 1)).toBe(false);
    // A string that ends with an escaped backslash does end: the brackets after it count.
    expect(jsonTextDepthExceeds('["\\\\",[[1]]]', 2)).toBe(true);
    expect(jsonTextDepthExceeds('["\\\\",[[1]]]', 3)).toBe(false);
    expect(jsonTextDepthExceeds(JSON.stringify({ k: `${'['.repeat(100_000)}"` }), 1)).toBe(false);
  });
});

describe('valueDepthExceeds', () => {
  it('measures parsed values like their text', () => {
    expect(valueDepthExceeds(1, 0)).toBe(false);
    expect(valueDepthExceeds(null, 0)).toBe(false);
    expect(valueDepthExceeds({}, 0)).toBe(true);
    expect(valueDepthExceeds({ a: [1, { b: 2 }] }, 3)).toBe(false);
    expect(valueDepthExceeds({ a: [1, { b: 2 }] }, 2)).toBe(true);
    expect(valueDepthExceeds({ a: '[[[[[[' }, 1)).toBe(false);
  });

  it('walks 5,000- and 100,000-deep arrays and objects without recursion', () => {
    for (const depth of [5_000, 100_000]) {
      // V8's JSON.parse is iterative: it builds these; a recursive walk would overflow the stack.
      const array = JSON.parse(deepArray(depth)) as unknown;
      const object = JSON.parse(deepObject(depth)) as unknown;
      expect(valueDepthExceeds(array, MAX_JSON_DEPTH)).toBe(true);
      expect(valueDepthExceeds(object, MAX_JSON_DEPTH)).toBe(true);
      expect(valueDepthExceeds(array, depth)).toBe(false);
      expect(valueDepthExceeds(object, depth)).toBe(false);
    }
  });
});

describe('parseBoundedJson', () => {
  it('parses JSON up to the depth limit', () => {
    expect(parseBoundedJson('{"a":[1,"]"]}')).toEqual({ ok: true, value: { a: [1, ']'] } });
    const atLimit = parseBoundedJson(deepArray(MAX_JSON_DEPTH));
    expect(atLimit.ok).toBe(true);
  });

  it('refuses deeper JSON naming the limit, and invalid JSON saying so', () => {
    for (const text of [deepArray(MAX_JSON_DEPTH + 1), deepArray(5_000), deepObject(100_000)]) {
      const result = parseBoundedJson(text);
      expect(result).toEqual({
        ok: false,
        message: `nested more than ${MAX_JSON_DEPTH} levels deep (JSON nesting is limited to ${MAX_JSON_DEPTH})`,
      });
    }
    const custom = parseBoundedJson('[[1]]', 1);
    expect(custom.ok).toBe(false);
    const invalid = parseBoundedJson('{"a":');
    expect(invalid.ok).toBe(false);
    if (!invalid.ok) expect(invalid.message).toMatch(/^not valid JSON \(/);
  });
});
