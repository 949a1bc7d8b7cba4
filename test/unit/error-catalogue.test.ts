/**
 * The error catalogue and docs/control-protocol.md agree: every code the daemon or the CLI can
 * report is documented in the "Error codes" table, with its exit code, and the table lists no
 * code that does not exist. (Scripts match on these codes: an undocumented one is a bug.)
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { errorCatalogue } from '../../src/errors/catalogue.js';
import { repoRoot } from '../support/cli.js';

function documentedCodes(): Map<string, number> {
  const text = readFileSync(join(repoRoot, 'docs', 'control-protocol.md'), 'utf8');
  const start = text.indexOf('\n## Error codes');
  expect(start, 'docs/control-protocol.md has an "Error codes" section').toBeGreaterThan(-1);
  const end = text.indexOf('\n## ', start + 1);
  const section = text.slice(start, end === -1 ? undefined : end);
  const codes = new Map<string, number>();
  for (const line of section.split('\n')) {
    const row = /^\|\s*`([A-Z_]+)`\s*\|\s*(\d+)\s*\|/.exec(line);
    if (row?.[1] !== undefined) codes.set(row[1], Number(row[2]));
  }
  return codes;
}

describe('the error catalogue and its documentation', () => {
  const documented = documentedCodes();
  const catalogued = Object.entries(errorCatalogue);

  it('documents every catalogue code, with its exit code', () => {
    // The table was found and read (a parser that reads nothing would pass the rest vacuously).
    expect(documented.size).toBeGreaterThanOrEqual(catalogued.length);
    const missing = catalogued.filter(([code]) => !documented.has(code)).map(([code]) => code);
    expect(missing).toEqual([]);
    const wrongExit = catalogued
      .filter(([code, spec]) => documented.get(code) !== spec.exitCode)
      .map(([code, spec]) => `${code}: catalogue ${spec.exitCode}, docs ${documented.get(code)}`);
    expect(wrongExit).toEqual([]);
  });

  it('documents no code that does not exist', () => {
    const unknown = [...documented.keys()].filter((code) => !(code in errorCatalogue));
    expect(unknown).toEqual([]);
  });
});
