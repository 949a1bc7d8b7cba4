/**
 * Reads a `command` frame from the gateway in two layers. The envelope (`dseq`, `cmd_id`) is
 * what the daemon needs to acknowledge and answer a command: without it the frame is a protocol
 * error. Everything else — the kind, the run, the args — is the command's content: when it is
 * unusable the command is still stored, acknowledged and answered `rejected`, never closed on,
 * because a gateway resends an unacknowledged command after every reconnect and one bad command
 * would otherwise wedge the link for good.
 *
 * Lenient in what it accepts: `null` counts as absent for optional fields (`run_id`, and any
 * optional arg such as `by`, `comment`, `reason`, `step_id`).
 */

import { z } from 'zod';
import type { CodeOf } from '../errors/catalogue.js';
import { errorMessage } from '../errors/error-message.js';
import { MAX_INPUTS_JSON_BYTES } from '../protocol/field-limits.js';
import { type CommandFrame, CommandFrameSchema } from '../protocol/gateway.js';
import { MAX_JSON_DEPTH, valueDepthExceeds } from '../protocol/json-limits.js';

/** The largest `args` the daemon stores and applies, as JSON: the largest inputs or answers, and room. */
export const MAX_COMMAND_ARGS_BYTES = MAX_INPUTS_JSON_BYTES + 8 * 1024;
/** The deepest nesting of `args` accepted (the inputs inside are bounded at 64 levels anyway). */
export const MAX_COMMAND_ARGS_DEPTH = MAX_JSON_DEPTH;
/** The stored copy of rejected args is cut to this many bytes. */
const REJECTED_ARGS_COPY_BYTES = 4096;
const KIND_COPY_CHARS = 64;
const MESSAGE_CHARS = 1024;

const CommandEnvelopeSchema = z.object({
  op: z.literal('command'),
  dseq: z.number().int().positive(),
  cmd_id: z.string().min(1).max(200),
});

export type ReadCommand =
  | { readonly kind: 'valid'; readonly frame: CommandFrame }
  | {
      readonly kind: 'rejected';
      readonly dseq: number;
      readonly cmdId: string;
      readonly commandKind: string;
      readonly runId: string | null;
      readonly argsCopy: string;
      readonly error: { code: CodeOf<'INVALID_PARAMS' | 'SECRETS_UNAVAILABLE'>; message: string };
    }
  /** No usable envelope: nothing can be acknowledged or answered. */
  | { readonly kind: 'malformed'; readonly message: string };

export function readCommand(raw: Record<string, unknown>): ReadCommand {
  const envelope = CommandEnvelopeSchema.safeParse(raw);
  if (!envelope.success) {
    const issue = envelope.error.issues[0];
    return {
      kind: 'malformed',
      message: `command envelope: ${issue?.path.join('.') ?? ''} ${issue?.message ?? ''}`,
    };
  }
  const { dseq, cmd_id: cmdId } = envelope.data;
  const reject = (message: string): ReadCommand => ({
    kind: 'rejected',
    dseq,
    cmdId,
    commandKind:
      typeof raw.kind === 'string'
        ? raw.kind.slice(0, KIND_COPY_CHARS)
        : JSON.stringify(raw.kind ?? null).slice(0, KIND_COPY_CHARS),
    runId: typeof raw.run_id === 'string' ? raw.run_id.slice(0, 200) : null,
    argsCopy: boundedCopy(raw.args),
    error: { code: 'INVALID_PARAMS', message: message.slice(0, MESSAGE_CHARS) },
  });

  const args = raw.args === null || raw.args === undefined ? {} : raw.args;
  if (typeof args !== 'object' || Array.isArray(args)) return reject('args must be an object');
  if (valueDepthExceeds(args, MAX_COMMAND_ARGS_DEPTH)) {
    return reject(`args are nested deeper than ${MAX_COMMAND_ARGS_DEPTH} levels`);
  }
  const argsBytes = Buffer.byteLength(JSON.stringify(args));
  if (argsBytes > MAX_COMMAND_ARGS_BYTES) {
    return reject(`args are ${argsBytes} bytes of JSON, more than the ${MAX_COMMAND_ARGS_BYTES} accepted`);
  }
  const candidate = { ...withoutNulls(raw), args: withoutNulls(args as Record<string, unknown>) };
  const parsed = CommandFrameSchema.safeParse(candidate);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return reject(`invalid command: ${issue?.path.join('.') || 'frame'}: ${issue?.message ?? 'invalid'}`);
  }
  return { kind: 'valid', frame: parsed.data };
}

/** `null` counts as absent: the keys whose value is null are left out. */
function withoutNulls(object: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(object).filter(([, value]) => value !== null));
}

/**
 * A valid command as the inbox keeps it: `seal` (the intake's) encrypts its input and answer
 * values, since which of them are secret is known only once it is checked. A command that cannot
 * be sealed is kept as rejected (SECRETS_UNAVAILABLE), without its values.
 */
export function sealForInbox(
  read: ReadCommand,
  seal: ((frame: CommandFrame) => CommandFrame) | undefined,
): ReadCommand {
  if (read.kind !== 'valid' || seal === undefined) return read;
  try {
    return { kind: 'valid', frame: seal(read.frame) };
  } catch (error) {
    const frame = read.frame;
    return {
      kind: 'rejected',
      dseq: frame.dseq,
      cmdId: frame.cmd_id,
      commandKind: frame.kind,
      runId: frame.run_id ?? null,
      argsCopy: boundedCopy(frame.args),
      error: {
        code: 'SECRETS_UNAVAILABLE',
        message: errorMessage(error).slice(0, MESSAGE_CHARS),
      },
    };
  }
}

/** Values a client gives (inputs, answers) may be secrets: the audit copy keeps only their names. */
const VALUE_FIELDS = ['inputs', 'answers'];

function withoutValues(args: unknown): unknown {
  if (typeof args !== 'object' || args === null || Array.isArray(args)) return args;
  const copy: Record<string, unknown> = { ...(args as Record<string, unknown>) };
  for (const field of VALUE_FIELDS) {
    const values = copy[field];
    if (typeof values === 'object' && values !== null && !Array.isArray(values)) {
      copy[field] = Object.fromEntries(Object.keys(values).map((name) => [name, '***']));
    } else if (values !== undefined) {
      copy[field] = '***';
    }
  }
  return copy;
}

/** A copy of what was sent, for the audit trail: JSON cut to a bounded size, never a crash. */
function boundedCopy(raw: unknown): string {
  if (valueDepthExceeds(raw, MAX_COMMAND_ARGS_DEPTH)) {
    return JSON.stringify({ unreadable: `nested deeper than ${MAX_COMMAND_ARGS_DEPTH} levels` });
  }
  const args = withoutValues(raw);
  const text = JSON.stringify(args ?? null);
  if (Buffer.byteLength(text) <= REJECTED_ARGS_COPY_BYTES) return text;
  return JSON.stringify({ truncated: true, bytes: Buffer.byteLength(text), head: text.slice(0, 1024) });
}
