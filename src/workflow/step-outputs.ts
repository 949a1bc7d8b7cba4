/**
 * Step outputs: what a run step wrote to its `CHARTER_OUTPUT` file, read once the step has
 * ended, checked against the step's `outputs:` declaration (when it has one) and bounded.
 *
 * The file format is the one of GitHub Actions' `$GITHUB_OUTPUT` (its runner's
 * `EnvFileKeyValuePairs`), with our name rule and bounds on top (docs/workflows.md, "Outputs"):
 *
 * - `name=value` on one line: the name is what precedes the first `=`, the value all that follows
 *   (more `=` included; it may be empty).
 * - `name<<DELIMITER`, then the value's lines, then a line that is exactly `DELIMITER`. The value
 *   is the text between the two lines, without the line end just before the delimiter line;
 *   empty lines inside belong to the value. A line with both `=` and `<<` is read by whichever
 *   comes first. A value whose closing delimiter never comes is a problem, and ends the reading.
 * - Empty lines outside a value are skipped. Lines end in `\n` or `\r\n` (GitHub's runner takes
 *   `\r\n` on Windows only; a `\r` kept at the end of every value is never what a step meant).
 * - A name given twice: the last value wins, as on GitHub.
 *
 * Pure functions, apart from {@link readOutputFile}.
 */
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { errorMessage } from '../errors/error-message.js';
import {
  jsonBytes,
  MAX_FIELD_NAME_CHARS,
  MAX_OUTPUT_FILE_BYTES,
  MAX_OUTPUT_NAMES,
  MAX_RUN_OUTPUTS_JSON_BYTES,
  MAX_VALUE_CHARS,
} from '../protocol/field-limits.js';
import { type FieldSpec, stepFieldEnvVar, type Workflow } from './definition.js';
import { NAME_PATTERN } from './load.js';
import { coerceValue, describeValue, type Value } from './values.js';

/** The `name=value` pairs a file holds, and what is wrong with it (each problem names its line). */
export interface OutputLines {
  readonly values: Record<string, string>;
  readonly problems: string[];
}

/** Checked outputs: the values to record (typed by the declaration) and every problem found. */
export interface CheckedOutputs {
  readonly values: Record<string, Value>;
  readonly problems: string[];
}

const NAME_RULE = 'a name starts with a letter; then letters, digits, _ - (at most 64 characters)';

interface Line {
  /** The line without its line end (`\n`, or `\r\n`). */
  readonly text: string;
  /** Where the next line starts. */
  readonly next: number;
  /** The line end's length: 0 for a last line without one. */
  readonly endLength: number;
}

function readLine(text: string, index: number): Line {
  const lf = text.indexOf('\n', index);
  if (lf < 0) return { text: text.slice(index), next: text.length, endLength: 0 };
  const crlf = lf > index && text.charCodeAt(lf - 1) === 13;
  return { text: text.slice(index, crlf ? lf - 1 : lf), next: lf + 1, endLength: crlf ? 2 : 1 };
}

/** Reads the pairs of an output file's text (see the module comment for the format). */
export function parseOutputText(text: string): OutputLines {
  const values = new Map<string, string>();
  const problems: string[] = [];
  /** Records one pair; false when reading must stop (too many names). */
  const add = (lineNo: number, name: string, value: string): boolean => {
    if (name.length > MAX_FIELD_NAME_CHARS || !NAME_PATTERN.test(name)) {
      problems.push(`line ${lineNo}: ${describeValue(name)} is not an output name (${NAME_RULE})`);
      return true;
    }
    if (value.includes('\0')) {
      problems.push(
        `line ${lineNo}: the value of ${name} holds a NUL character, which no environment variable can`,
      );
      return true;
    }
    if (!values.has(name) && values.size >= MAX_OUTPUT_NAMES) {
      problems.push(
        `line ${lineNo}: more than ${MAX_OUTPUT_NAMES} output names; a step may write at most ${MAX_OUTPUT_NAMES}`,
      );
      return false;
    }
    values.set(name, value);
    return true;
  };

  let index = 0;
  let lineNo = 0;
  while (index < text.length) {
    const line = readLine(text, index);
    lineNo += 1;
    index = line.next;
    if (line.text === '') continue;
    const equals = line.text.indexOf('=');
    const heredoc = line.text.indexOf('<<');
    if (equals >= 0 && (heredoc < 0 || equals < heredoc)) {
      if (!add(lineNo, line.text.slice(0, equals), line.text.slice(equals + 1))) break;
      continue;
    }
    if (heredoc < 0) {
      problems.push(`line ${lineNo}: expected name=value or name<<DELIMITER`);
      continue;
    }
    const name = line.text.slice(0, heredoc);
    const delimiter = line.text.slice(heredoc + 2);
    if (name === '' || delimiter === '') {
      // Where its value would end cannot be known: the rest of the file cannot be read.
      problems.push(
        `line ${lineNo}: ${name === '' ? 'no name before <<' : `no delimiter after ${describeValue(name)}<<`}; the rest of the file is not read`,
      );
      break;
    }
    const firstLine = lineNo;
    const start = index;
    let end = index;
    let closed = false;
    while (index < text.length) {
      const valueLine = readLine(text, index);
      lineNo += 1;
      index = valueLine.next;
      if (valueLine.text === delimiter) {
        closed = true;
        break;
      }
      end = valueLine.next - valueLine.endLength;
    }
    if (!closed) {
      problems.push(
        `line ${firstLine}: no line ${describeValue(delimiter)} closes the value of ${describeValue(name)} (name<<DELIMITER, the value's lines, then DELIMITER alone on its line)`,
      );
      break;
    }
    if (!add(firstLine, name, end > start ? text.slice(start, end) : '')) break;
  }
  return { values: Object.fromEntries(values), problems };
}

/** An output value by its declared type: the rules of inputs, but a text value may fill the file. */
function coerceOutput(spec: FieldSpec, text: string) {
  // coerceValue caps strings at the size of an input value; an output is bounded by its file.
  if (text.length > MAX_VALUE_CHARS && spec.type === 'string') return { ok: true as const, value: text };
  if (text.length > MAX_VALUE_CHARS && spec.type === 'secret') return { ok: true as const, value: text };
  return coerceValue(spec, text);
}

export interface CheckOutputsInput {
  readonly stepId: string;
  /** The step's `outputs:`; null when it declares none (then every name is a string). */
  readonly declared: Readonly<Record<string, FieldSpec>> | null;
  readonly raw: Readonly<Record<string, string>>;
  /** `CHARTER_STEP_…` variables that other steps of the run own: variable → who owns it. */
  readonly taken: ReadonlyMap<string, string>;
  /** The outputs earlier steps passed on (step id → name → value), for the run's total bound. */
  readonly earlier: Readonly<Record<string, Readonly<Record<string, Value>>>>;
}

/**
 * Types the pairs by the declaration: a declared output that is absent takes its default or, when
 * required, is a problem; a value of the wrong type and an undeclared name are problems. Names
 * whose variable another output or another step's field already gives are problems too. Every
 * problem is listed; the values that passed are returned all the same (they are recorded).
 */
export function checkOutputs(input: CheckOutputsInput): CheckedOutputs {
  const { declared, raw } = input;
  const problems: string[] = [];
  const values: Record<string, Value> = {};
  if (declared === null) {
    Object.assign(values, raw);
  } else {
    for (const [name, spec] of Object.entries(declared)) {
      const given = Object.hasOwn(raw, name) ? raw[name] : undefined;
      if (given === undefined) {
        if (spec.default !== undefined) values[name] = spec.default;
        else if (spec.required) problems.push(`${name}: required`);
        continue;
      }
      const coerced = coerceOutput(spec, given);
      if (coerced.ok) values[name] = coerced.value;
      else problems.push(`${name}: ${coerced.problem}`);
    }
    const known = Object.keys(declared).sort().join(', ');
    for (const name of Object.keys(raw).filter((n) => !Object.hasOwn(declared, n))) {
      problems.push(`${name}: not a declared output of this step (declared: ${known})`);
    }
  }
  const seen = new Map<string, string>();
  for (const name of Object.keys(values)) {
    const variable = stepFieldEnvVar(input.stepId, name);
    const other = seen.get(variable) ?? input.taken.get(variable);
    if (other !== undefined) {
      problems.push(`${name}: becomes ${variable} like ${other}; rename one of them`);
      delete values[name];
    } else {
      seen.set(variable, `output "${name}"`);
    }
  }
  const total = jsonBytes({ ...input.earlier, [input.stepId]: values }) ?? Number.POSITIVE_INFINITY;
  if (total > MAX_RUN_OUTPUTS_JSON_BYTES) {
    problems.push(
      `(all outputs): the outputs of this run's steps would be ${total.toLocaleString('en-US')} bytes as JSON together, at most ${MAX_RUN_OUTPUTS_JSON_BYTES.toLocaleString('en-US')} (${MAX_RUN_OUTPUTS_JSON_BYTES / 1024} KiB)`,
    );
  }
  return { values, problems };
}

/** What reading the file gave: its text, nothing (the step removed it), or why it cannot be read. */
export type OutputFileText = { text: string } | { missing: true } | { problem: string };

const OPEN_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

/**
 * Reads the output file, at most {@link MAX_OUTPUT_FILE_BYTES}: its size is checked before it is
 * read, and no more than the limit is ever read. The step may have replaced it: a symbolic link
 * is not followed, and anything but a regular file (a FIFO would block the daemon) is refused.
 */
export function readOutputFile(path: string): OutputFileText {
  let fd: number;
  try {
    fd = openSync(path, OPEN_FLAGS);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { missing: true };
    if (code === 'ELOOP') return { problem: 'CHARTER_OUTPUT was replaced by a symbolic link' };
    return { problem: `CHARTER_OUTPUT cannot be read: ${errorMessage(error)}` };
  }
  try {
    const stats = fstatSync(fd);
    if (!stats.isFile()) return { problem: 'CHARTER_OUTPUT was replaced by something that is not a file' };
    const tooLarge = (size: string) => ({
      problem: `CHARTER_OUTPUT holds ${size}; a step may write at most ${MAX_OUTPUT_FILE_BYTES.toLocaleString('en-US')} bytes (${MAX_OUTPUT_FILE_BYTES / 1024} KiB) there`,
    });
    if (stats.size > MAX_OUTPUT_FILE_BYTES) return tooLarge(`${stats.size.toLocaleString('en-US')} bytes`);
    const buffer = Buffer.alloc(MAX_OUTPUT_FILE_BYTES + 1);
    let length = 0;
    for (;;) {
      const read = readSync(fd, buffer, length, buffer.length - length, null);
      if (read === 0) break;
      length += read;
      if (length > MAX_OUTPUT_FILE_BYTES)
        return tooLarge(`more than ${MAX_OUTPUT_FILE_BYTES.toLocaleString('en-US')} bytes`);
    }
    try {
      return { text: new TextDecoder('utf-8', { fatal: true }).decode(buffer.subarray(0, length)) };
    } catch {
      return { problem: 'CHARTER_OUTPUT is not UTF-8 text' };
    }
  } catch (error) {
    return { problem: `CHARTER_OUTPUT cannot be read: ${errorMessage(error)}` };
  } finally {
    closeSync(fd);
  }
}

/** Reads, parses and checks a step's output file: the values to record and every problem. */
export function readStepOutputs(path: string, check: Omit<CheckOutputsInput, 'raw'>): CheckedOutputs {
  const file = readOutputFile(path);
  if ('problem' in file) return { values: {}, problems: [file.problem] };
  const parsed = 'missing' in file ? { values: {}, problems: [] } : parseOutputText(file.text);
  const checked = checkOutputs({ ...check, raw: parsed.values });
  return { values: checked.values, problems: [...parsed.problems, ...checked.problems] };
}

/**
 * The `CHARTER_STEP_…` variables a step's outputs may not take, each with who owns it: the fields
 * of the other input steps, the declared outputs of the other run steps, and the outputs that
 * earlier steps of the run actually passed on (undeclared names are known only then).
 */
export function takenVariables(
  workflow: Workflow,
  stepId: string,
  passed: Readonly<Record<string, Readonly<Record<string, unknown>>>>,
): Map<string, string> {
  const taken = new Map<string, string>();
  const take = (owner: string, name: string, what: string) => {
    if (owner !== stepId) taken.set(stepFieldEnvVar(owner, name), `${what} "${name}" of step "${owner}"`);
  };
  for (const step of workflow.steps) {
    if (step.kind === 'input') for (const name of Object.keys(step.fields)) take(step.id, name, 'field');
    if (step.kind === 'run')
      for (const name of Object.keys(step.outputs ?? {})) take(step.id, name, 'output');
  }
  for (const [owner, values] of Object.entries(passed)) {
    for (const name of Object.keys(values)) take(owner, name, 'output');
  }
  return taken;
}
