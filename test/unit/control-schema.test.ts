/**
 * The control protocol as clients in other languages get it: the committed JSON Schema
 * (docs/control.v1.schema.json) is exactly `controlJsonSchema()`, lists every method of
 * src/protocol/methods.ts and every catalogue code, says what the daemon accepts (checked with
 * ajv against hostile and edge-case messages, and against the zod schemas themselves), and its
 * generator stays out of the CLI's and the daemon's code.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { errorCatalogue } from '../../src/errors/catalogue.js';
import { controlJsonSchema } from '../../src/protocol/control-json-schema.js';
import { controlSchemaFileText, repoRoot } from '../../src/protocol/export-schema.js';
import {
  type ControlMethod,
  methodParams,
  methodResults,
  streamingMethods,
} from '../../src/protocol/methods.js';
import { describeErrors, loadControlSchema } from '../support/control-schema-validator.js';

const STALE =
  'docs/control.v1.schema.json is out of date with the control-protocol schemas: run ' +
  '`npx tsc -p tsconfig.build.json && node dist/src/protocol/export-schema.js` and commit the result';

const RUN_ID = 'r01M895FFEVNRBYAD18R06K01NW';
const schema = loadControlSchema();

function accepts(validate: (value: unknown) => boolean, value: unknown): boolean {
  return validate(value) === true;
}

describe('the committed JSON Schema (docs/control.v1.schema.json)', () => {
  it('is exactly controlJsonSchema()', () => {
    expect(schema.document, STALE).toEqual(JSON.parse(controlSchemaFileText()));
  });

  it('is the same object each call (no randomness or time in it)', () => {
    expect(controlJsonSchema()).toEqual(controlJsonSchema());
  });

  it('lists hello and every method of methods.ts, with whether it streams', () => {
    const methods = Object.keys(methodParams) as ControlMethod[];
    expect(Object.keys(schema.document.methods), STALE).toEqual(['hello', ...methods]);
    expect(schema.document.methods.hello?.streams).toBe(false);
    for (const method of methods) {
      expect(schema.document.methods[method]?.streams, method).toBe(streamingMethods.has(method));
    }
    expect(methods.filter((method) => schema.document.methods[method]?.streams)).toEqual([
      'run.logs',
      'watch',
    ]);
  });

  it('gives error.code as an enum of every catalogue code', () => {
    const defs = schema.document.$defs as Record<string, { properties: { code: { enum: string[] } } }>;
    expect(defs.WireError?.properties.code.enum, STALE).toEqual(Object.keys(errorCatalogue));
  });
});

describe('messages checked against the schema', () => {
  const error = {
    code: 'IDLE_TIMEOUT',
    message: 'no request for 10000 ms',
    hint: 'Send a request right after connecting.',
  };

  it('accepts a connection-level error (id null), and only errors may have a null id', () => {
    const connectionError = { id: null, ok: false, error };
    expect(accepts(schema.response, connectionError), describeErrors(schema.response.errors)).toBe(true);
    expect(accepts(schema.connectionError, connectionError)).toBe(true);
    expect(accepts(schema.connectionError, { ...connectionError, id: 7 })).toBe(false);
    expect(accepts(schema.response, { id: null, ok: true, result: {} })).toBe(false);
    expect(accepts(schema.response, { id: 7, ok: false, error })).toBe(true);
  });

  it('refuses an unknown error code, a missing message and an oversized hint', () => {
    expect(accepts(schema.error, { code: 'NO_SUCH_CODE', message: 'x' })).toBe(false);
    expect(
      accepts(schema.response, { id: 1, ok: false, error: { code: 'NO_SUCH_CODE', message: 'x' } }),
    ).toBe(false);
    expect(accepts(schema.error, { code: 'UNKNOWN_RUN' })).toBe(false);
    expect(accepts(schema.error, { code: 'UNKNOWN_RUN', message: 'x', hint: 'h'.repeat(4097) })).toBe(false);
    expect(accepts(schema.error, { code: 'UNKNOWN_RUN', message: 'x' })).toBe(true);
  });

  it('refuses a response that is neither a success nor an error', () => {
    expect(accepts(schema.response, { id: 1, ok: true })).toBe(false); // no result
    expect(accepts(schema.response, { id: 1, ok: 'yes', result: {} })).toBe(false);
    expect(accepts(schema.response, { id: 1, ok: true, result: {}, more: 'no' })).toBe(false);
    expect(accepts(schema.response, { id: 1, ok: true, result: null, more: true })).toBe(true);
  });

  it('accepts a request that leaves out params with defaults (run.logs without follow)', () => {
    const logs = { id: 1, method: 'run.logs', params: { run_id: RUN_ID } };
    expect(accepts(schema.request, logs), describeErrors(schema.request.errors)).toBe(true);
    expect(accepts(schema.request, { id: 2, method: 'runs.list' })).toBe(true);
    expect(accepts(schema.request, { id: 3, method: 'watch', params: null })).toBe(true);
    expect(accepts(schema.request, { id: 'a', method: 'status', params: {}, trace: 'x' })).toBe(true); // other keys are ignored
  });

  it('refuses a request without the params its method needs, or with unknown ones', () => {
    expect(accepts(schema.request, { id: 1, method: 'run.submit' })).toBe(false);
    expect(accepts(schema.request, { id: 1, method: 'run.submit', params: null })).toBe(false);
    expect(accepts(schema.request, { id: 1, method: 'hello', params: null })).toBe(false);
    expect(accepts(schema.request, { id: 1, method: 'status', params: { a: 1 } })).toBe(false);
    expect(
      accepts(schema.request, { id: 1, method: 'run.logs', params: { run_id: 'r1', follow: true } }),
    ).toBe(false);
    expect(accepts(schema.request, { id: 1, method: 'nope', params: {} })).toBe(false);
    expect(accepts(schema.request, { id: 1, params: {} })).toBe(false);
  });

  it('bounds the request id as the daemon does', () => {
    const status = (id: unknown) => ({ id, method: 'status' });
    for (const id of [0, Number.MAX_SAFE_INTEGER, 'x', 'i'.repeat(64)]) {
      expect(accepts(schema.request, status(id)), String(id)).toBe(true);
    }
    for (const id of [-1, 1.5, Number.MAX_SAFE_INTEGER + 2, '', 'i'.repeat(65), null, true, {}]) {
      expect(accepts(schema.request, status(id)), JSON.stringify(id)).toBe(false);
    }
  });
});

describe('the schema and the zod schemas agree', () => {
  const samples: { [M in ControlMethod]: unknown[] } = {
    status: [{}, { a: 1 }, null, []],
    stop: [
      {},
      { timeout_ms: 1 },
      { timeout_ms: 0 },
      { timeout_ms: 24 * 3600 * 1000 + 1 },
      { timeout_ms: 'x' },
    ],
    'run.submit': [
      { workflow_id: 'greet' },
      { workflow_id: 'greet', inputs: { name: 'Ana' } },
      { workflow_id: '../x' },
      { workflow_id: 'w'.repeat(101) },
      { workflow_id: 'greet', inputs: [] },
      { inputs: {} },
    ],
    'runs.list': [
      {},
      { limit: 500 },
      { limit: 501 },
      { limit: 0 },
      { state: 'waiting' },
      { state: 'asleep' },
    ],
    'runs.show': [{ run_id: RUN_ID }, { run_id: 'r123' }, {}, { run_id: RUN_ID, x: 1 }],
    'gate.decide': [
      { run_id: RUN_ID, decision: 'approve' },
      { run_id: RUN_ID, decision: 'maybe' },
      { run_id: RUN_ID, decision: 'deny', comment: 'c'.repeat(4097) },
      { run_id: RUN_ID, decision: 'deny', by: '' },
      { run_id: RUN_ID, decision: 'deny', step_id: 'confirm', by: 'ana', comment: 'no' },
    ],
    'input.submit': [
      { run_id: RUN_ID, answers: { count: 2 } },
      { run_id: RUN_ID },
      { run_id: RUN_ID, answers: 'count=2' },
    ],
    'run.cancel': [{ run_id: RUN_ID }, { run_id: RUN_ID, reason: 'r'.repeat(1001) }],
    'run.logs': [
      { run_id: RUN_ID },
      { run_id: RUN_ID, follow: true, after_seq: 3 },
      { run_id: RUN_ID, after_seq: -1 },
      { run_id: RUN_ID, follow: 'yes' },
    ],
    metrics: [{}, { text: true }],
    watch: [{}, { recent: 0 }, { recent: 100 }, { recent: 101 }],
    'store.prune': [{}, { dry_run: true }, { dry_run: 1 }],
    'store.backup': [{ path: '/tmp/copy.db' }, { path: 'relative.db' }, {}],
    'workflows.list': [{}, { all: true }],
    'workflows.show': [{ workflow_id: 'greet' }, { workflow_id: '../x' }, {}],
  };

  it('on the params of every method (what zod parses, the schema accepts)', () => {
    for (const [method, values] of Object.entries(samples) as [ControlMethod, unknown[]][]) {
      for (const value of values) {
        const zodAccepts = methodParams[method].safeParse(value).success;
        expect(accepts(schema.params(method), value), `${method} ${JSON.stringify(value)}`).toBe(zodAccepts);
      }
      // Not vacuous: each method has a sample of each kind.
      expect(new Set(values.map((value) => methodParams[method].safeParse(value).success)), method).toEqual(
        new Set([true, false]),
      );
    }
  });

  it('on results, including fields a newer daemon may add', () => {
    const ack = { run_id: RUN_ID, state: 'queued' };
    const batch = {
      entries: [{ seq: 4, run_seq: 1, ts: '2026-11-25T11:10:59.000Z', type: 'run.queued', data: {} }],
      state: 'queued',
      done: false,
    };
    const cases: [ControlMethod, unknown][] = [
      ['run.submit', ack],
      ['run.submit', { ...ack, state: 'asleep' }],
      ['run.submit', { ...ack, position: 3 }],
      ['run.logs', batch],
      ['run.logs', { ...batch, done: 'no' }],
      ['run.logs', { ...batch, entries: [{ seq: 1 }] }],
      ['metrics', { text: '# HELP x\n' }],
      ['metrics', {}],
    ];
    for (const [method, value] of cases) {
      const zodAccepts = methodResults[method].safeParse(value).success;
      expect(accepts(schema.result(method), value), `${method} ${JSON.stringify(value)}`).toBe(zodAccepts);
    }
  });
});

describe('the generator stays out of the shipped code paths', () => {
  /** Relative imports (static and dynamic) of a TypeScript source, as repository paths. */
  function importsOf(file: string): string[] {
    const text = readFileSync(join(repoRoot(), file), 'utf8');
    const specifiers = [...text.matchAll(/(?:from\s*|import\s*\(\s*|import\s+)['"](\.{1,2}\/[^'"]+)['"]/g)];
    return specifiers.map((match) =>
      relative(repoRoot(), join(repoRoot(), dirname(file), (match[1] ?? '').replace(/\.js$/, '.ts'))),
    );
  }

  /** Every source a CLI command can load, eagerly or lazily (which includes the daemon's). */
  function reachableFromCommands(): Set<string> {
    const queue = readdirSync(join(repoRoot(), 'commands'), { recursive: true, encoding: 'utf8' })
      .filter((file) => file.endsWith('.ts'))
      .map((file) => join('commands', file));
    queue.push('src/cli/run.ts', 'src/daemon/main.ts');
    const seen = new Set<string>();
    while (queue.length > 0) {
      const file = queue.pop() as string;
      if (seen.has(file)) continue;
      seen.add(file);
      queue.push(...importsOf(file));
    }
    return seen;
  }

  it('no command and not the daemon imports control-json-schema.ts or export-schema.ts', () => {
    const reachable = reachableFromCommands();
    expect(reachable).toContain('src/protocol/methods.ts'); // the walk does follow imports
    expect(reachable).toContain('src/daemon/run-daemon.ts'); // and lazy ones
    expect(reachable).not.toContain('src/protocol/control-json-schema.ts');
    expect(reachable).not.toContain('src/protocol/export-schema.ts');
  });
});
