/**
 * The dev gateway's operator language: one line typed on its standard input becomes a command
 * to send down (one of the four kinds of docs/protocol.md, "Commands downstream"), a local
 * request (`runs`, `help`, `quit`), or a one-line error. Pure: the runs it knows come in through
 * a RunDirectory, the fresh `cmd_id` is added by whoever sends the command.
 *
 *   approve RUN [--step S] [--comment TEXT]     gate.decide approve
 *   deny RUN --comment TEXT [--step S]          gate.decide deny
 *   submit RUN [--step S] JSON                  input.submit (answers)
 *   cancel RUN [--reason TEXT]                  run.cancel
 *   start WORKFLOW [JSON]                       run.start (inputs)
 *
 * Words are split on spaces; 'single' and "double" quotes keep spaces; a word starting with `{`
 * takes the rest of the line as JSON. A text value (`--comment`, `--reason`) runs to the next
 * `--flag`. Args are checked with the schemas the daemon applies (`commandArgs` of
 * src/protocol/gateway.ts), so an operator's typo is answered here, before anything is sent.
 */
import { type CommandKind, commandArgs } from '../protocol/gateway.js';
import { jsonTextDepthExceeds, MAX_JSON_DEPTH } from '../protocol/json-limits.js';
import { WorkflowIdSchema } from '../protocol/runs.js';
import { clip, printable } from './event-lines.js';
import type { RunDirectory, WaitPoint } from './run-board.js';

/** Who the dev gateway says decided, answered or cancelled (`by` of the args). */
export const OPERATOR_BY = 'dev-gateway';

/** A command to send, without its `cmd_id` (fresh for each one sent). */
export interface OperatorCommand {
  readonly kind: CommandKind;
  readonly run_id?: string;
  readonly args: Record<string, unknown>;
  /** A few words for the operator: `approve confirm`, `start greet`, … */
  readonly what: string;
}

export type OperatorLine =
  | { readonly kind: 'nothing' }
  | { readonly kind: 'help' }
  | { readonly kind: 'quit' }
  | { readonly kind: 'runs' }
  | { readonly kind: 'send'; readonly command: OperatorCommand }
  | { readonly kind: 'error'; readonly message: string };

/** What `help` prints. */
export const OPERATOR_HELP: readonly string[] = [
  'commands (RUN: a run id, or a unique prefix of one this gateway has seen):',
  '  runs                                     the runs seen: id, workflow, last state, what each waits for',
  '  approve RUN [--step S] [--comment TEXT]  approve the gate RUN waits at (or gate S)',
  '  deny RUN --comment TEXT [--step S]       deny it; the run fails with reason gate_denied',
  '  submit RUN [--step S] JSON               answer the input step RUN waits at, e.g. submit r01M {"count":1}',
  '  cancel RUN [--reason TEXT]               cancel RUN',
  '  start WORKFLOW [JSON]                    start a run with inputs, e.g. start greet {"name":"Ana"}',
  '  help                                     this list',
  '  quit                                     stop the gateway (also Ctrl-C)',
];

interface Word {
  readonly text: string;
  /** The rest of the line, from a `{`: JSON. */
  readonly json: boolean;
}

type Parsed<T> = { ok: true; value: T } | { ok: false; message: string };

const fail = (message: string): { kind: 'error'; message: string } => ({ kind: 'error', message });

/** Parses one operator line (without its newline). */
export function parseOperatorLine(line: string, runs: RunDirectory): OperatorLine {
  const split = splitWords(line);
  if (!split.ok) return fail(split.message);
  const [verb, ...rest] = split.value;
  if (verb === undefined) return { kind: 'nothing' };
  switch (verb.text) {
    case 'help':
    case '?':
      return rest.length === 0 ? { kind: 'help' } : fail(`${verb.text} takes no arguments`);
    case 'quit':
    case 'exit':
      return rest.length === 0 ? { kind: 'quit' } : fail(`${verb.text} takes no arguments`);
    case 'runs':
      return rest.length === 0 ? { kind: 'runs' } : fail('runs takes no arguments');
    case 'approve':
    case 'deny':
      return decide(verb.text, rest, runs);
    case 'submit':
      return submit(rest, runs);
    case 'cancel':
      return cancel(rest, runs);
    case 'start':
      return start(rest);
    default:
      return fail(`unknown command "${shown(verb.text)}": type help for the commands`);
  }
}

function decide(decision: 'approve' | 'deny', words: readonly Word[], runs: RunDirectory): OperatorLine {
  const usage =
    decision === 'approve' ? 'approve RUN [--step S] [--comment TEXT]' : 'deny RUN --comment TEXT [--step S]';
  const parts = readParts(words, ['step', 'comment'], usage);
  if (!parts.ok) return fail(parts.message);
  const { positional, flags } = parts.value;
  if (positional.length !== 1 || positional[0]?.json) return fail(`usage: ${usage}`);
  const run = runs.resolve(positional[0]?.text ?? '');
  if (!run.ok) return fail(run.message);
  const comment = flags.get('comment');
  if (decision === 'deny' && (comment === undefined || comment === '')) {
    return fail(`deny needs a reason: ${usage}`);
  }
  const step = stepFor(flags.get('step'), run.runId, 'gate', runs);
  if (!step.ok) return fail(step.message);
  return checked({
    kind: 'gate.decide',
    run_id: run.runId,
    args: {
      step_id: step.value,
      decision,
      by: OPERATOR_BY,
      ...(comment === undefined ? {} : { comment }),
    },
    what: `${decision} ${step.value}`,
  });
}

function submit(words: readonly Word[], runs: RunDirectory): OperatorLine {
  const usage = 'submit RUN [--step S] JSON   (JSON: the answers, an object, e.g. {"count":1})';
  const parts = readParts(words, ['step'], usage);
  if (!parts.ok) return fail(parts.message);
  const { positional, flags } = parts.value;
  const [runWord, answersWord] = positional;
  if (positional.length !== 2 || runWord === undefined || runWord.json || !answersWord?.json) {
    return fail(`usage: ${usage}`);
  }
  const run = runs.resolve(runWord.text);
  if (!run.ok) return fail(run.message);
  const answers = jsonObject('answers', answersWord.text);
  if (!answers.ok) return fail(answers.message);
  const step = stepFor(flags.get('step'), run.runId, 'input', runs);
  if (!step.ok) return fail(step.message);
  return checked({
    kind: 'input.submit',
    run_id: run.runId,
    args: { step_id: step.value, answers: answers.value, by: OPERATOR_BY },
    what: `answers for ${step.value}`,
  });
}

function cancel(words: readonly Word[], runs: RunDirectory): OperatorLine {
  const usage = 'cancel RUN [--reason TEXT]';
  const parts = readParts(words, ['reason'], usage);
  if (!parts.ok) return fail(parts.message);
  const { positional, flags } = parts.value;
  if (positional.length !== 1 || positional[0]?.json) return fail(`usage: ${usage}`);
  const run = runs.resolve(positional[0]?.text ?? '');
  if (!run.ok) return fail(run.message);
  const reason = flags.get('reason');
  return checked({
    kind: 'run.cancel',
    run_id: run.runId,
    args: { by: OPERATOR_BY, ...(reason === undefined ? {} : { reason }) },
    what: 'cancel',
  });
}

function start(words: readonly Word[]): OperatorLine {
  const usage = 'start WORKFLOW [JSON]   (JSON: the inputs, an object, e.g. {"name":"Ana"})';
  const parts = readParts(words, [], usage);
  if (!parts.ok) return fail(parts.message);
  const [workflow, inputsWord, ...extra] = parts.value.positional;
  if (
    workflow === undefined ||
    workflow.json ||
    extra.length > 0 ||
    (inputsWord !== undefined && !inputsWord.json)
  ) {
    return fail(`usage: ${usage}`);
  }
  const id = WorkflowIdSchema.safeParse(workflow.text);
  if (!id.success) {
    return fail(
      `"${shown(workflow.text)}" is not a workflow id (letters, digits, ".", "_", "-"; at most 100 characters)`,
    );
  }
  const inputs =
    inputsWord === undefined ? { ok: true as const, value: {} } : jsonObject('inputs', inputsWord.text);
  if (!inputs.ok) return fail(inputs.message);
  return checked({
    kind: 'run.start',
    args: { workflow_id: workflow.text, inputs: inputs.value },
    what: `start ${workflow.text}`,
  });
}

/** The command if its args pass the daemon's own schema for the kind, else its first problem. */
function checked(command: OperatorCommand): OperatorLine {
  const result = commandArgs[command.kind].safeParse(command.args);
  if (result.success) return { kind: 'send', command };
  const issue = result.error.issues[0];
  return fail(shown(issue?.message ?? 'invalid arguments', 300));
}

/** The step given with --step, else the one the run is known to wait at (of that kind). */
function stepFor(
  given: string | undefined,
  runId: string,
  kind: WaitPoint['kind'],
  runs: RunDirectory,
): Parsed<string> {
  if (given !== undefined) {
    if (given === '') return { ok: false, message: '--step needs a step id' };
    return { ok: true, value: given };
  }
  const waiting = runs.waitingAt(runId);
  if (waiting?.kind === kind) return { ok: true, value: waiting.stepId };
  const what = kind === 'gate' ? 'a gate' : 'an input step';
  const where =
    waiting === null
      ? 'as far as this gateway has seen'
      : `it waits at ${waiting.kind === 'gate' ? 'gate' : 'input step'} ${shown(waiting.stepId)}`;
  return {
    ok: false,
    message: `run ${runId} is not waiting at ${what} (${where}): name the step with --step S`,
  };
}

/** A JSON object, nested at most MAX_JSON_DEPTH deep (checked on the text, before parsing). */
function jsonObject(what: 'answers' | 'inputs', text: string): Parsed<Record<string, unknown>> {
  if (jsonTextDepthExceeds(text, MAX_JSON_DEPTH)) {
    return { ok: false, message: `${what}: nested more than ${MAX_JSON_DEPTH} levels deep` };
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return { ok: false, message: `${what}: not JSON (${shown((error as SyntaxError).message, 120)})` };
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return { ok: false, message: `${what}: expected a JSON object such as {"name":"value"}` };
  }
  return { ok: true, value: value as Record<string, unknown> };
}

// ---- words and flags -------------------------------------------------------------------------

interface Parts {
  readonly positional: readonly Word[];
  readonly flags: ReadonlyMap<string, string>;
}

/**
 * Positional words and `--name value` flags (also `--name=value`). A text flag (`comment`,
 * `reason`) takes the words up to the next `--flag`; `--step` takes one word.
 */
function readParts(words: readonly Word[], known: readonly string[], usage: string): Parsed<Parts> {
  const positional: Word[] = [];
  const flags = new Map<string, string>();
  for (let i = 0; i < words.length; i++) {
    const word = words[i];
    if (word === undefined) break;
    if (word.json || !word.text.startsWith('--')) {
      positional.push(word);
      continue;
    }
    const eq = word.text.indexOf('=');
    const name = word.text.slice(2, eq === -1 ? undefined : eq);
    if (!known.includes(name))
      return { ok: false, message: `unknown flag --${shown(name)}: usage: ${usage}` };
    if (flags.has(name)) return { ok: false, message: `--${name} given twice` };
    if (eq !== -1) {
      flags.set(name, word.text.slice(eq + 1));
      continue;
    }
    const values: string[] = [];
    while (i + 1 < words.length) {
      const next = words[i + 1];
      if (next === undefined || next.json || next.text.startsWith('--')) break;
      values.push(next.text);
      i += 1;
      if (name === 'step') break;
    }
    if (values.length === 0) return { ok: false, message: `--${name} needs a value: usage: ${usage}` };
    flags.set(name, values.join(' '));
  }
  return { ok: true, value: { positional, flags } };
}

/** Splits a line into words: spaces separate, quotes group, `{` starts JSON to the end of the line. */
export function splitWords(line: string): Parsed<Word[]> {
  const words: Word[] = [];
  let i = 0;
  while (i < line.length) {
    while (i < line.length && isSpace(line.charCodeAt(i))) i += 1;
    if (i >= line.length) break;
    if (line[i] === '{') {
      words.push({ text: line.slice(i).trim(), json: true });
      break;
    }
    let text = '';
    while (i < line.length && !isSpace(line.charCodeAt(i))) {
      const quote = line[i];
      if (quote === "'" || quote === '"') {
        const end = closingQuote(line, i);
        if (end === -1)
          return { ok: false, message: `unterminated ${quote === "'" ? 'single' : 'double'} quote` };
        const inner = line.slice(i + 1, end);
        text += quote === '"' ? inner.replace(/\\(["\\])/g, '$1') : inner;
        i = end + 1;
      } else {
        text += line[i];
        i += 1;
      }
    }
    words.push({ text, json: false });
  }
  return { ok: true, value: words };
}

/** The index of the quote closing the one at `open` (a backslash escapes inside "…"), or -1. */
function closingQuote(line: string, open: number): number {
  const quote = line[open];
  for (let i = open + 1; i < line.length; i++) {
    if (quote === '"' && line[i] === '\\') {
      i += 1;
      continue;
    }
    if (line[i] === quote) return i;
  }
  return -1;
}

function isSpace(code: number): boolean {
  return code === 0x20 || code === 0x09;
}

/** Operator text echoed in an error: clipped, control characters escaped. */
function shown(text: string, max = 40): string {
  return printable(clip(text, max));
}
