/**
 * The charter.v1 schemas as the gateway's implementers get them: the committed JSON Schema
 * (docs/charter.v1.schema.json) is exactly `gatewayJsonSchema()`, names every frame op, and the
 * zod schemas behave as docs/protocol.md says (unknown fields ignored, unknown op and missing
 * fields refused).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot, SCHEMA_RELATIVE_PATH, schemaFileText } from '../../src/protocol/export-schema.js';
import {
  MAX_ANSWERS_JSON_BYTES,
  MAX_BY_CHARS,
  MAX_CANCEL_REASON_CHARS,
  MAX_COMMENT_CHARS,
  MAX_INPUTS_JSON_BYTES,
} from '../../src/protocol/field-limits.js';
import {
  CommandResultDataSchema,
  commandArgs,
  DownFrameSchema,
  gatewayJsonSchema,
  UpFrameSchema,
} from '../../src/protocol/gateway.js';
import { methodParams } from '../../src/protocol/methods.js';

const STALE =
  'docs/charter.v1.schema.json is out of date with src/protocol/gateway.ts: run ' +
  '`npx tsc -p tsconfig.build.json && node dist/src/protocol/export-schema.js` and commit the result';

function committedSchema(): unknown {
  return JSON.parse(readFileSync(join(repoRoot(), SCHEMA_RELATIVE_PATH), 'utf8')) as unknown;
}

/** The `op` literal of every member of a discriminated union of frames. */
function opsOf(union: typeof UpFrameSchema | typeof DownFrameSchema): string[] {
  return union.options.map((option) => option.shape.op.value);
}

/** Every `const` of an `op` property anywhere in a JSON Schema. */
function opConsts(schema: unknown): string[] {
  const found: string[] = [];
  const visit = (node: unknown): void => {
    if (Array.isArray(node)) {
      for (const item of node) visit(item);
      return;
    }
    if (node === null || typeof node !== 'object') return;
    const record = node as Record<string, unknown>;
    const op = (record.properties as Record<string, { const?: unknown }> | undefined)?.op?.const;
    if (typeof op === 'string') found.push(op);
    for (const value of Object.values(record)) visit(value);
  };
  visit(schema);
  return found;
}

describe('the committed JSON Schema (docs/charter.v1.schema.json)', () => {
  it('is exactly gatewayJsonSchema()', () => {
    expect(committedSchema(), STALE).toEqual(JSON.parse(schemaFileText()));
  });

  it('names every upstream and downstream frame op', () => {
    const schema = committedSchema() as { up: unknown; down: unknown };
    const upOps = opsOf(UpFrameSchema);
    const downOps = opsOf(DownFrameSchema);
    expect(upOps).toEqual(['hello', 'events', 'cack', 'ping', 'pong', 'error']);
    expect(downOps).toEqual(['welcome', 'ack', 'command', 'ping', 'pong', 'error']);
    expect(new Set(opConsts(schema.up)), STALE).toEqual(new Set(upOps));
    expect(new Set(opConsts(schema.down)), STALE).toEqual(new Set(downOps));
  });

  it('carries the args of every command kind and the command.result data', () => {
    const schema = committedSchema() as { command_args: Record<string, unknown>; command_result: unknown };
    expect(Object.keys(schema.command_args).sort(), STALE).toEqual(Object.keys(commandArgs).sort());
    expect(schema.command_result, STALE).toMatchObject({
      properties: { status: { enum: ['applied', 'duplicate', 'rejected'] } },
    });
  });

  it('is the same object each call (no randomness or time in it)', () => {
    expect(gatewayJsonSchema()).toEqual(gatewayJsonSchema());
  });
});

describe('charter.v1 frames', () => {
  const hello = {
    op: 'hello',
    protocol: 1,
    daemon_id: '94d7c3f3-853b-4ca8-93f9-beeb94624b0d',
    epoch: 3,
    daemon_version: '0.1.0',
    project: { name: 'demo' },
    down_applied: 0,
  };
  const events = {
    op: 'events',
    events: [
      {
        seq: 1,
        run_id: null,
        run_seq: null,
        type: 'daemon.started',
        ts: '2026-11-25T11:10:53.169Z',
        data: {},
      },
      {
        seq: 2,
        run_id: 'r01M896DFR9W7ZGTGZMTAQP9G5R',
        run_seq: 1,
        type: 'run.queued',
        ts: '2026-11-25T11:10:53.199Z',
        data: { workflow_id: 'greet', inputs: { name: 'Ana' } },
      },
    ],
  };
  const welcome = {
    op: 'welcome',
    conn_id: 'gw-1',
    hb_ms: 15_000,
    max_frame: 1_048_576,
    up_committed: 0,
    up_limit: 1000,
    server_time: '2026-11-25T11:10:53.181Z',
  };
  const command = {
    op: 'command',
    dseq: 1,
    cmd_id: 'c-1',
    kind: 'run.start',
    args: { workflow_id: 'greet', inputs: { name: 'Ana' } },
  };

  it('valid frames parse to themselves, both ways', () => {
    for (const frame of [
      hello,
      events,
      { op: 'cack', down: 4 },
      { op: 'ping', t: 1 },
      { op: 'pong', t: 1 },
      { op: 'error', code: 4002, message: 'invalid frame' },
    ]) {
      expect(UpFrameSchema.parse(frame)).toEqual(frame);
    }
    for (const frame of [
      welcome,
      { op: 'ack', up: 2, up_limit: 1002 },
      command,
      { ...command, dseq: 2, cmd_id: 'c-2', kind: 'run.cancel', run_id: 'r1', args: {} },
      { op: 'ping', t: 2 },
      { op: 'pong', t: 2 },
      { op: 'error', code: 'superseded', message: 'a newer epoch' },
    ]) {
      expect(DownFrameSchema.parse(frame)).toEqual(frame);
    }
  });

  it('ignores unknown fields: they are stripped, not refused', () => {
    expect(UpFrameSchema.parse({ ...hello, future: true, project: { name: 'demo', extra: 1 } })).toEqual(
      hello,
    );
    expect(DownFrameSchema.parse({ ...welcome, region: 'eu-1' })).toEqual(welcome);
    expect(DownFrameSchema.parse({ op: 'ack', up: 1, up_limit: 5, window_ms: 10 })).toEqual({
      op: 'ack',
      up: 1,
      up_limit: 5,
    });
    // Event data and command args are opaque at the frame level: kept whole.
    const withData = { ...events, events: [{ ...events.events[0], data: { anything: [1, 2] }, extra: 'x' }] };
    expect(UpFrameSchema.parse(withData)).toEqual({
      ...events,
      events: [{ ...events.events[0], data: { anything: [1, 2] } }],
    });
  });

  it('refuses an unknown op, a missing field and a wrong type', () => {
    expect(DownFrameSchema.safeParse({ op: 'teleport', x: 1 }).success).toBe(false);
    expect(UpFrameSchema.safeParse(welcome).success).toBe(false); // a downstream op sent upstream
    expect(DownFrameSchema.safeParse({ x: 1 }).success).toBe(false); // no op at all
    const { cmd_id: _dropped, ...noCmdId } = command;
    expect(DownFrameSchema.safeParse(noCmdId).success).toBe(false);
    const { epoch: _epoch, ...noEpoch } = hello;
    expect(UpFrameSchema.safeParse(noEpoch).success).toBe(false);
    expect(DownFrameSchema.safeParse({ ...command, kind: 'run.explode' }).success).toBe(false);
    expect(DownFrameSchema.safeParse({ ...welcome, hb_ms: 50 }).success).toBe(false);
    expect(UpFrameSchema.safeParse({ op: 'events', events: [] }).success).toBe(false);
    expect(UpFrameSchema.safeParse({ op: 'cack', down: -1 }).success).toBe(false);
  });

  it('checks command args after the frame, per kind', () => {
    expect(commandArgs['run.start'].parse({ workflow_id: 'greet' })).toEqual({
      workflow_id: 'greet',
      inputs: {},
    });
    expect(commandArgs['gate.decide'].safeParse({ step_id: 'confirm', decision: 'maybe' }).success).toBe(
      false,
    );
    expect(commandArgs['input.submit'].safeParse({ step_id: 'details' }).success).toBe(false);
    expect(commandArgs['run.cancel'].parse({ reason: 'no longer needed', extra: 1 })).toEqual({
      reason: 'no longer needed',
    });
    expect(
      CommandResultDataSchema.parse({
        cmd_id: 'c-1',
        status: 'applied',
        run_id: 'r01M896DFR9W7ZGTGZMTAQP9G5R',
      }),
    ).toEqual({ cmd_id: 'c-1', status: 'applied', run_id: 'r01M896DFR9W7ZGTGZMTAQP9G5R' });
  });
});

describe('field limits in the params and command args schemas', () => {
  const RUN_ID = 'r01M895FFEVNRBYAD18R06K01NW';
  const deep = JSON.parse(`${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}`) as unknown;

  /** The messages of a control params refusal (zod/mini), or [] when the params pass. */
  function paramsProblems(method: keyof typeof methodParams, params: unknown): string[] {
    const parsed = methodParams[method].safeParse(params);
    return parsed.success ? [] : parsed.error.issues.map((issue) => issue.message);
  }

  function argsProblems(kind: keyof typeof commandArgs, args: unknown): string[] {
    const parsed = commandArgs[kind].safeParse(args);
    return parsed.success ? [] : parsed.error.issues.map((issue) => issue.message);
  }

  it('bounds comment, by, reason and step_id on the control socket', () => {
    const decide = { run_id: RUN_ID, decision: 'approve' };
    expect(paramsProblems('gate.decide', { ...decide, comment: 'c'.repeat(MAX_COMMENT_CHARS) })).toEqual([]);
    expect(paramsProblems('gate.decide', { ...decide, comment: 'c'.repeat(MAX_COMMENT_CHARS + 1) })).toEqual([
      'comment: at most 4096 characters',
    ]);
    expect(paramsProblems('gate.decide', { ...decide, by: 'b'.repeat(MAX_BY_CHARS + 1) })).toEqual([
      'by: at most 200 characters',
    ]);
    expect(paramsProblems('gate.decide', { ...decide, step_id: 's'.repeat(101) })).toEqual([
      'step_id: at most 100 characters',
    ]);
    expect(
      paramsProblems('run.cancel', { run_id: RUN_ID, reason: 'r'.repeat(MAX_CANCEL_REASON_CHARS + 1) }),
    ).toEqual(['reason: at most 1000 characters']);
  });

  it('bounds inputs and answers as JSON (64 KiB) and in depth, without overflowing on deep values', () => {
    const big = { a: 'x'.repeat(MAX_INPUTS_JSON_BYTES) };
    expect(paramsProblems('run.submit', { workflow_id: 'w', inputs: big })).toEqual([
      'inputs: at most 65536 bytes as JSON (64 KiB)',
    ]);
    expect(paramsProblems('run.submit', { workflow_id: 'w', inputs: { a: 'x'.repeat(60_000) } })).toEqual([]);
    expect(
      paramsProblems('input.submit', { run_id: RUN_ID, answers: { a: 'x'.repeat(MAX_ANSWERS_JSON_BYTES) } }),
    ).toEqual(['answers: at most 65536 bytes as JSON (64 KiB)']);
    expect(paramsProblems('run.submit', { workflow_id: 'w', inputs: { a: deep } })).toEqual([
      'inputs: nested more than 64 levels deep',
    ]);
    expect(argsProblems('run.start', { workflow_id: 'w', inputs: { a: deep } })).toEqual([
      'inputs: nested more than 64 levels deep',
    ]);
    expect(argsProblems('input.submit', { step_id: 's', answers: big })).toEqual([
      'answers: at most 65536 bytes as JSON (64 KiB)',
    ]);
  });

  it('bounds the gateway command args like the control params', () => {
    expect(
      argsProblems('gate.decide', { step_id: 's', decision: 'deny', comment: 'c'.repeat(5_000) }),
    ).toEqual(['comment: at most 4096 characters']);
    expect(argsProblems('run.cancel', { reason: 'r'.repeat(2_000), by: 'b'.repeat(300) })).toEqual([
      'reason: at most 1000 characters',
      'by: at most 200 characters',
    ]);
    expect(argsProblems('run.start', { workflow_id: 'w'.repeat(1_000_000) })).toEqual([
      'workflow_id: at most 100 characters',
    ]);
  });
});
