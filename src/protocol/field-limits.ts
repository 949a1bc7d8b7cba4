/**
 * The size of every field a client or a workflow file can put into a stored event or an answer,
 * in one place. Each is enforced where the value comes in (the control-protocol and gateway
 * schemas, input and answer checking, workflow loading) with a refusal that names the limit,
 * so no run event can outgrow a gateway frame and no error can outgrow a control response.
 * Documented in docs/control-protocol.md (limits) and docs/workflows.md.
 *
 * Strings are measured in characters as JavaScript counts them (UTF-16 code units, what
 * `.length` and zod's `maxLength` count); serialized objects and error messages in UTF-8 bytes
 * of their JSON, which is what a frame carries. Pure: no I/O.
 */
import { MAX_JSON_DEPTH, valueDepthExceeds } from './json-limits.js';

/** One string value of a run input or of an input-step answer (and a field's default). */
export const MAX_VALUE_CHARS = 16 * 1024;
/** All inputs of a run, as JSON: as received, and after coercion and defaults. */
export const MAX_INPUTS_JSON_BYTES = 64 * 1024;
/** All answers to one input step, as JSON: as received, and after coercion and defaults. */
export const MAX_ANSWERS_JSON_BYTES = 64 * 1024;
/** The comment of a gate decision. */
export const MAX_COMMENT_CHARS = 4 * 1024;
/** Who decided, answered or cancelled (`by`). */
export const MAX_BY_CHARS = 200;
/** The reason given for a cancel. */
export const MAX_CANCEL_REASON_CHARS = 1000;
/** The prompt of a gate or input step in plan.yml. */
export const MAX_PROMPT_CHARS = 4 * 1024;
/** Names of inputs and input-step fields (in workflow files; longer names given by clients are unknown). */
export const MAX_FIELD_NAME_CHARS = 64;
/** Workflow and step ids. */
export const MAX_ID_CHARS = 100;
/** Each of manifest.yml and plan.yml, on disk. */
export const MAX_WORKFLOW_FILE_BYTES = 256 * 1024;
/** A run step's CHARTER_OUTPUT file, read when the step ends (docs/workflows.md, Outputs). */
export const MAX_OUTPUT_FILE_BYTES = 64 * 1024;
/** Distinct output names one step may write. */
export const MAX_OUTPUT_NAMES = 100;
/**
 * The outputs of all the steps of a run together, as JSON: later steps get them in their
 * environment, which the kernel bounds (about 2 MiB with the arguments on Linux).
 */
export const MAX_RUN_OUTPUTS_JSON_BYTES = 256 * 1024;

/** An error message on the wire; past it the message is cut (see {@link cutText}). */
export const MAX_ERROR_MESSAGE_BYTES = 64 * 1024;
/** An error hint on the wire. */
export const MAX_ERROR_HINT_BYTES = 4 * 1024;
/** Problems listed in one error (inputs, answers, a workflow's files); the rest are counted. */
export const MAX_LISTED_PROBLEMS = 25;
/** One listed problem; past it the problem is cut. */
export const MAX_PROBLEM_CHARS = 1000;

/**
 * Size of a value as UTF-8 JSON, or `undefined` when it nests deeper than JSON may (measuring
 * it would then overflow the stack of `JSON.stringify`; the caller refuses it for its depth).
 */
export function jsonBytes(value: unknown): number | undefined {
  if (valueDepthExceeds(value, MAX_JSON_DEPTH)) return undefined;
  return Buffer.byteLength(JSON.stringify(value) ?? '', 'utf8');
}

/**
 * The text, or when its UTF-8 form is longer than `maxBytes` its head cut on a character
 * boundary (never inside a surrogate pair) followed by `marker`, all within `maxBytes`.
 */
export function cutText(text: string, maxBytes: number, marker = '… (cut)'): string {
  // Fast path: at most 3 bytes per UTF-16 unit, so short strings need no measuring.
  if (text.length * 3 <= maxBytes || Buffer.byteLength(text, 'utf8') <= maxBytes) return text;
  const budget = Math.max(0, maxBytes - Buffer.byteLength(marker, 'utf8'));
  let bytes = 0;
  let end = 0;
  while (end < text.length) {
    const code = text.codePointAt(end) ?? 0;
    const units = code > 0xffff ? 2 : 1;
    const size = code < 0x80 ? 1 : code < 0x800 ? 2 : code < 0x10000 ? 3 : 4;
    if (bytes + size > budget) break;
    bytes += size;
    end += units;
  }
  return `${text.slice(0, end)}${marker}`;
}

/**
 * A list of problems fit for one error message: the first {@link MAX_LISTED_PROBLEMS}, each cut
 * to {@link MAX_PROBLEM_CHARS}, then `… and 1,990 more` when there were more.
 */
export function capProblems(problems: readonly string[], max: number = MAX_LISTED_PROBLEMS): string[] {
  const listed = problems
    .slice(0, max)
    .map((problem) =>
      problem.length > MAX_PROBLEM_CHARS ? `${headChars(problem, MAX_PROBLEM_CHARS)}…` : problem,
    );
  const more = problems.length - listed.length;
  if (more > 0) listed.push(`… and ${more.toLocaleString('en-US')} more`);
  return listed;
}

/** The first `max` characters of a text, one fewer rather than half a surrogate pair. */
export function headChars(text: string, max: number): string {
  if (text.length <= max) return text;
  const last = text.charCodeAt(max - 1);
  return text.slice(0, last >= 0xd800 && last <= 0xdbff ? max - 1 : max);
}
