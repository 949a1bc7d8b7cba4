/**
 * Protocol `charter.v1`: the one WebSocket between a daemon and charter-gateway. One JSON object
 * per text message, discriminated by `op`. Unknown fields are ignored (a newer peer may add some);
 * an unknown `op` is a protocol error. See docs/protocol.md. Pure schemas: no I/O.
 */
import { z } from 'zod';
import {
  jsonBytes,
  MAX_ANSWERS_JSON_BYTES,
  MAX_BY_CHARS,
  MAX_CANCEL_REASON_CHARS,
  MAX_COMMENT_CHARS,
  MAX_ID_CHARS,
  MAX_INPUTS_JSON_BYTES,
} from './field-limits.js';
import { GATEWAY_SUBPROTOCOL } from './gateway-constants.js';
import { MAX_JSON_DEPTH, valueDepthExceeds } from './json-limits.js';

export {
  CloseCode,
  DEFAULT_MAX_FRAME_BYTES,
  GATEWAY_PROTOCOL_VERSION,
  GATEWAY_SUBPROTOCOL,
  HANDSHAKE_TIMEOUT_MS,
} from './gateway-constants.js';

const seq = z.number().int().nonnegative();
const JsonObject = z.record(z.string(), z.unknown());

export const UpEventSchema = z
  .object({
    seq: z.number().int().positive(),
    run_id: z.string().nullable(),
    run_seq: z.number().int().positive().nullable(),
    type: z.string().min(1),
    ts: z.string(),
    data: z.unknown(),
    /**
     * Present when the event was too large for the frame: `data` then keeps only its small
     * fields, and `bytes` is the size of the full event, which stays in the daemon's journal.
     */
    truncated: z.object({ bytes: z.number().int().positive() }).optional(),
  })
  .meta({ id: 'UpEvent', description: 'One stored event: seq is daemon-wide, gap-free, increasing.' });
export type UpEvent = z.infer<typeof UpEventSchema>;

// ---- daemon → gateway ------------------------------------------------------------------------

export const HelloFrameSchema = z
  .object({
    op: z.literal('hello'),
    protocol: z.number().int().positive(),
    daemon_id: z.string().min(1),
    epoch: z.number().int().positive(),
    daemon_version: z.string(),
    project: z.object({ name: z.string() }),
    /** Highest dseq the daemon has durably stored; the gateway resends what follows. */
    down_applied: seq,
  })
  .meta({ id: 'Hello' });

export const EventsFrameSchema = z
  .object({ op: z.literal('events'), events: z.array(UpEventSchema).min(1) })
  .meta({ id: 'Events' });

export const CackFrameSchema = z
  .object({ op: z.literal('cack'), down: seq })
  .meta({ id: 'Cack', description: 'Cumulative: every command with dseq ≤ down is durably stored.' });

export const PingFrameSchema = z.object({ op: z.literal('ping'), t: z.number() }).meta({ id: 'Ping' });
export const PongFrameSchema = z.object({ op: z.literal('pong'), t: z.number() }).meta({ id: 'Pong' });
export const ErrorFrameSchema = z
  .object({ op: z.literal('error'), code: z.union([z.number().int(), z.string()]), message: z.string() })
  .meta({ id: 'Error' });

export const UpFrameSchema = z.discriminatedUnion('op', [
  HelloFrameSchema,
  EventsFrameSchema,
  CackFrameSchema,
  PingFrameSchema,
  PongFrameSchema,
  ErrorFrameSchema,
]);
export type UpFrame = z.infer<typeof UpFrameSchema>;

// ---- gateway → daemon ------------------------------------------------------------------------

export const WelcomeFrameSchema = z
  .object({
    op: z.literal('welcome'),
    conn_id: z.string(),
    /** Heartbeat interval; no inbound frame for 2 × hb_ms means the peer is gone. */
    hb_ms: z.number().int().min(100).max(600_000),
    max_frame: z
      .number()
      .int()
      .min(1024)
      .max(64 * 1024 * 1024),
    /** Every seq ≤ up_committed is durably stored by the gateway: resend from up_committed + 1. */
    up_committed: seq,
    /** Credit: the daemon never sends seq > up_limit. */
    up_limit: seq,
    server_time: z.string(),
  })
  .meta({ id: 'Welcome' });

export const AckFrameSchema = z
  .object({ op: z.literal('ack'), up: seq, up_limit: seq })
  .meta({ id: 'Ack', description: 'Cumulative ack of upstream events, and new credit.' });

export const CommandKindSchema = z.enum(['run.start', 'run.cancel', 'gate.decide', 'input.submit']);
export type CommandKind = z.infer<typeof CommandKindSchema>;

export const CommandFrameSchema = z
  .object({
    op: z.literal('command'),
    dseq: z.number().int().positive(),
    cmd_id: z.string().min(1).max(200),
    kind: CommandKindSchema,
    run_id: z.string().optional(),
    args: JsonObject,
  })
  .meta({ id: 'Command' });
export type CommandFrame = z.infer<typeof CommandFrameSchema>;

export const DownFrameSchema = z.discriminatedUnion('op', [
  WelcomeFrameSchema,
  AckFrameSchema,
  CommandFrameSchema,
  PingFrameSchema,
  PongFrameSchema,
  ErrorFrameSchema,
]);
export type DownFrame = z.infer<typeof DownFrameSchema>;

// ---- command arguments (checked after the frame, so a bad command is rejected, not fatal) ------

// The limits of src/protocol/field-limits.ts, the same as on the control socket (the command is
// then validated again as the control call it stands for); messages name the field, since a
// rejected command reports only its first problem.

/** A JSON object of values at most `maxBytes` as JSON, nested at most MAX_JSON_DEPTH deep. */
function boundedValues(what: 'inputs' | 'answers', maxBytes: number) {
  return JsonObject.refine((value) => !valueDepthExceeds(value, MAX_JSON_DEPTH), {
    error: `${what}: nested more than ${MAX_JSON_DEPTH} levels deep`,
  }).refine((value) => (jsonBytes(value) ?? 0) <= maxBytes, {
    error: `${what}: at most ${maxBytes} bytes as JSON (${maxBytes / 1024} KiB)`,
  });
}
const text = (what: string, max: number) => z.string().max(max, `${what}: at most ${max} characters`);

export const RunStartArgsSchema = z.object({
  workflow_id: text('workflow_id', MAX_ID_CHARS),
  inputs: boundedValues('inputs', MAX_INPUTS_JSON_BYTES).default({}),
});
export const RunCancelArgsSchema = z.object({
  reason: text('reason', MAX_CANCEL_REASON_CHARS).optional(),
  by: text('by', MAX_BY_CHARS).optional(),
});
export const GateDecideArgsSchema = z.object({
  step_id: text('step_id', MAX_ID_CHARS),
  decision: z.enum(['approve', 'deny']),
  by: text('by', MAX_BY_CHARS).optional(),
  comment: text('comment', MAX_COMMENT_CHARS).optional(),
});
export const InputSubmitArgsSchema = z.object({
  step_id: text('step_id', MAX_ID_CHARS),
  answers: boundedValues('answers', MAX_ANSWERS_JSON_BYTES),
  by: text('by', MAX_BY_CHARS).optional(),
});

export const commandArgs = {
  'run.start': RunStartArgsSchema,
  'run.cancel': RunCancelArgsSchema,
  'gate.decide': GateDecideArgsSchema,
  'input.submit': InputSubmitArgsSchema,
} as const satisfies Record<CommandKind, z.ZodType>;

/** The upstream event that reports what became of a command. */
export const CommandResultDataSchema = z.object({
  cmd_id: z.string(),
  status: z.enum(['applied', 'duplicate', 'rejected']),
  error: z.object({ code: z.string(), message: z.string() }).optional(),
  run_id: z.string().optional(),
});
export type CommandResultData = z.infer<typeof CommandResultDataSchema>;

/** JSON Schema of every frame, for the gateway's implementers. */
export function gatewayJsonSchema(): Record<string, unknown> {
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    title: `charter-daemon gateway protocol ${GATEWAY_SUBPROTOCOL}`,
    up: z.toJSONSchema(UpFrameSchema, { target: 'draft-2020-12', io: 'input' }),
    down: z.toJSONSchema(DownFrameSchema, { target: 'draft-2020-12', io: 'input' }),
    command_args: Object.fromEntries(
      Object.entries(commandArgs).map(([kind, schema]) => [kind, z.toJSONSchema(schema, { io: 'input' })]),
    ),
    command_result: z.toJSONSchema(CommandResultDataSchema),
  };
}
