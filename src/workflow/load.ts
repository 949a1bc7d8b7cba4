/**
 * Loading workflows from `workflows/<id>/manifest.yml` and `workflows/<id>/plan.yml`, validated
 * with zod. Unknown keys are errors everywhere (a typo must not be silently ignored), both files
 * are validated before anything is thrown, and every problem names the file (absolute path) and
 * the field path: `/p/workflows/x/plan.yml: steps.2.gate.prompt: expected a string, got 3`.
 * The format is documented in docs/workflows.md.
 */
import { closeSync, fstatSync, openSync, readdirSync, readSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import { CharterError } from '../errors/charter-error.js';
import { errorMessage } from '../errors/error-message.js';
import {
  capProblems,
  MAX_FIELD_NAME_CHARS,
  MAX_ID_CHARS,
  MAX_PROMPT_CHARS,
  MAX_VALUE_CHARS,
  MAX_WORKFLOW_FILE_BYTES,
} from '../protocol/field-limits.js';
import { MAX_JSON_DEPTH, valueDepthExceeds } from '../protocol/json-limits.js';
import {
  deepFreeze,
  type FieldSpec,
  inputEnvVar,
  type RetryOn,
  type RetryPolicy,
  type Step,
  stepFieldEnvVar,
  VALUE_TYPES,
  type ValueType,
  type Workflow,
} from './definition.js';
import { MAX_DURATION_MS, parseDuration } from './duration.js';

export const WORKFLOWS_DIR = 'workflows';
export const MANIFEST_FILE = 'manifest.yml';
export const PLAN_FILE = 'plan.yml';

/** Workflow ids and step ids: a letter or digit, then letters, digits, `.`, `_`, `-`. */
export const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
export const MAX_ID_LENGTH = MAX_ID_CHARS;
const ID_RULE = 'starts with a letter or digit; then letters, digits, . _ - (at most 100 characters)';

/** Names of inputs and input-step fields: a letter, then letters, digits, `_`, `-`. */
export const NAME_PATTERN = /^[A-Za-z][A-Za-z0-9_-]*$/;
export const MAX_NAME_LENGTH = MAX_FIELD_NAME_CHARS;
const NAME_RULE = 'a name starts with a letter; then letters, digits, _ - (at most 64 characters)';

const ENV_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function isValidWorkflowId(id: string): boolean {
  return id.length <= MAX_ID_LENGTH && ID_PATTERN.test(id);
}

export interface WorkflowFiles {
  /** Absolute path of `workflows/<id>/`. */
  readonly dir: string;
  readonly manifestPath: string;
  readonly planPath: string;
}

/**
 * The files of a workflow. The id is validated before any path is built (no traversal with
 * `../x` or `a/b`): an invalid id is an UNKNOWN_WORKFLOW.
 */
export function workflowFiles(projectRoot: string, workflowId: string): WorkflowFiles {
  if (typeof workflowId !== 'string' || !isValidWorkflowId(workflowId)) {
    throw new CharterError(
      'UNKNOWN_WORKFLOW',
      `${JSON.stringify(workflowId)} is not a workflow id: a workflow id ${ID_RULE}`,
    );
  }
  const dir = join(resolve(projectRoot), WORKFLOWS_DIR, workflowId);
  return { dir, manifestPath: join(dir, MANIFEST_FILE), planPath: join(dir, PLAN_FILE) };
}

/** The workflows of a project: folders under `workflows/` with a valid id and both files; sorted. */
export function listWorkflowIds(projectRoot: string): string[] {
  const root = join(resolve(projectRoot), WORKFLOWS_DIR);
  let names: string[];
  try {
    names = readdirSync(root);
  } catch {
    return [];
  }
  return names
    .filter((name) => isValidWorkflowId(name))
    .filter((name) => isFile(join(root, name, MANIFEST_FILE)) && isFile(join(root, name, PLAN_FILE)))
    .sort();
}

/**
 * Loads and validates one workflow. Throws UNKNOWN_WORKFLOW when the id is invalid or the folder,
 * manifest.yml or plan.yml is missing (the message lists the known ids), INVALID_WORKFLOW with
 * every problem of both files otherwise. The result is deeply frozen.
 */
export function loadWorkflow(projectRoot: string, workflowId: string): Workflow {
  const files = workflowFiles(projectRoot, workflowId);
  const manifestText = readWorkflowFile(projectRoot, workflowId, files, files.manifestPath);
  const planText = readWorkflowFile(projectRoot, workflowId, files, files.planPath);
  const oversized = [manifestText, planText].filter((text) => typeof text !== 'string');
  if (oversized.length > 0)
    throw invalidWorkflow(
      workflowId,
      oversized.map((text) => text.problem),
    );
  return parseWorkflow(workflowId, files, manifestText as string, planText as string);
}

/** Validates the texts of both files of a workflow (already read) and builds the definition. */
export function parseWorkflow(
  workflowId: string,
  files: WorkflowFiles,
  manifestText: string,
  planText: string,
): Workflow {
  const problems: string[] = [];
  const manifest = validateFile(files.manifestPath, manifestText, ManifestSchema, problems);
  const plan = validateFile(files.planPath, planText, PlanSchema, problems);
  if (manifest.raw !== undefined) {
    const id = (manifest.raw as { id?: unknown } | null)?.id;
    if (typeof id === 'string' && id !== workflowId) {
      problems.push(
        `${files.manifestPath}: id: must equal the folder name ${JSON.stringify(workflowId)}, got ${JSON.stringify(id)}`,
      );
    }
  }
  if (problems.length > 0 || manifest.data === undefined || plan.data === undefined) {
    throw invalidWorkflow(workflowId, problems);
  }
  return deepFreeze(buildWorkflow(files.dir, manifest.data, plan.data));
}

/** INVALID_WORKFLOW listing the problems (the first few of many, so the message stays bounded). */
function invalidWorkflow(workflowId: string, problems: readonly string[]): CharterError {
  const count = problems.length === 1 ? '1 problem' : `${problems.length.toLocaleString('en-US')} problems`;
  return new CharterError(
    'INVALID_WORKFLOW',
    `workflow ${JSON.stringify(workflowId)} is invalid (${count}):\n${capProblems(problems)
      .map((p) => `  - ${p}`)
      .join('\n')}`,
  );
}

// ---- reading ---------------------------------------------------------------------------------

/**
 * The text of a workflow file, or the problem that it is larger than
 * {@link MAX_WORKFLOW_FILE_BYTES}: its size is checked (fstat) before it is read, and no more
 * than the limit is ever read (a file growing meanwhile is caught too), so a huge file cannot
 * hold the daemon's event loop. Throws UNKNOWN_WORKFLOW when it is missing.
 */
function readWorkflowFile(
  projectRoot: string,
  workflowId: string,
  files: WorkflowFiles,
  path: string,
): string | { problem: string } {
  try {
    return readBounded(path, MAX_WORKFLOW_FILE_BYTES);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT' && code !== 'ENOTDIR') {
      throw new CharterError('INVALID_WORKFLOW', `cannot read ${path}: ${errorMessage(error)}`, {
        cause: error,
      });
    }
    const known = listWorkflowIds(projectRoot);
    const where = `workflows live in ${join(resolve(projectRoot), WORKFLOWS_DIR)}/<id>/${MANIFEST_FILE} and ${PLAN_FILE}`;
    const knownText =
      known.length > 0 ? `known workflows: ${known.join(', ')}` : `this project has no workflows (${where})`;
    let what: string;
    if (!isDirectory(files.dir)) {
      what = `unknown workflow ${JSON.stringify(workflowId)}: there is no folder ${files.dir}`;
    } else {
      const yamlName = path.endsWith(MANIFEST_FILE) ? 'manifest.yaml' : 'plan.yaml';
      const misnamed = isFile(join(files.dir, yamlName)) ? ` (found ${yamlName}: rename it to .yml)` : '';
      what = `unknown workflow ${JSON.stringify(workflowId)}: ${path} does not exist${misnamed}`;
    }
    throw new CharterError('UNKNOWN_WORKFLOW', `${what}; ${knownText}`);
  }
}

function readBounded(path: string, maxBytes: number): string | { problem: string } {
  const tooLarge = (size: string) => ({
    problem: `${path}: the file is ${size}; a workflow file may be at most ${formatBytes(maxBytes)} (see docs/workflows.md)`,
  });
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    if (size > maxBytes) return tooLarge(formatBytes(size));
    const buffer = Buffer.alloc(maxBytes + 1);
    let length = 0;
    for (;;) {
      const read = readSync(fd, buffer, length, buffer.length - length, null);
      if (read === 0) break;
      length += read;
      if (length > maxBytes) return tooLarge(`larger than ${formatBytes(maxBytes)}`);
    }
    return buffer.toString('utf8', 0, length);
  } finally {
    closeSync(fd);
  }
}

function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} bytes`;
  if (bytes < 1024 * 1024) return `${Number((bytes / 1024).toFixed(1))} KiB`;
  return `${Number((bytes / (1024 * 1024)).toFixed(1))} MiB`;
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

// ---- validation ------------------------------------------------------------------------------

/** Refinements that must run even when the object has other problems: all problems at once. */
const ALWAYS = { when: () => true };

/** A strict object whose unknown-key problems list the allowed keys. */
function strict<Shape extends z.ZodRawShape>(shape: Shape) {
  const allowed = Object.keys(shape).join(', ');
  return z.strictObject(shape, {
    error: (issue) => (issue.code === 'unrecognized_keys' ? `unknown key (allowed: ${allowed})` : undefined),
  });
}

const IdSchema = z.string().max(MAX_ID_LENGTH).regex(ID_PATTERN, `an id ${ID_RULE}`);
const NameSchema = z.string().max(MAX_NAME_LENGTH).regex(NAME_PATTERN, NAME_RULE);
const TextSchema = z.string().trim().min(1).max(10_000);
const PromptSchema = z.string().trim().min(1).max(MAX_PROMPT_CHARS);
const DescriptionSchema = z.string().max(10_000).nullish();

const FieldSchema = strict({
  type: z.enum(VALUE_TYPES as [ValueType, ...ValueType[]]),
  required: z.boolean().nullish(),
  default: z.unknown().optional(),
  description: DescriptionSchema,
  values: z.array(z.string().min(1).max(200)).max(1000).nullish(),
}).superRefine((value, ctx) => checkField(value, ctx), ALWAYS);

function fieldsSchema(noun: 'input' | 'field') {
  return z
    .record(NameSchema, FieldSchema)
    .superRefine((value, ctx) => checkEnvCollisions(value, ctx, noun), ALWAYS);
}

const ManifestSchema = strict({
  id: IdSchema,
  name: z.string().trim().min(1).max(200),
  description: DescriptionSchema,
  inputs: fieldsSchema('input').nullish(),
});

// ---- retry -----------------------------------------------------------------------------------

/** `retry.limit`: retries after the first attempt. */
export const MAX_RETRY_LIMIT = 10;
/**
 * The longest wait between two attempts (`delay`, `max_delay`), and the default `max_delay`. The
 * run keeps its execution slot while it waits (see machines/run.machine.ts), so waits are short.
 */
export const MAX_RETRY_DELAY_MS = 3_600_000;
export const DEFAULT_RETRY_DELAY_MS = 1000;
export const DEFAULT_RETRY_BACKOFF = 2;
export const MAX_RETRY_BACKOFF = 10;
/** Items of a `retry.on` list (exit codes, `any`, `timeout`). */
export const MAX_RETRY_ON_ITEMS = 32;
const RETRY_DURATION_RULE = 'a duration such as 500ms, 5s or 2m (more than 0, at most 1h)';

const RetrySchema = strict({
  limit: z
    .int()
    .min(1, 'must be at least 1 (the number of retries after the first attempt)')
    .max(MAX_RETRY_LIMIT, `must be at most ${MAX_RETRY_LIMIT}`),
  delay: z.unknown().optional(),
  backoff: z
    .number()
    .min(1, 'must be at least 1 (1: the same wait every time)')
    .max(MAX_RETRY_BACKOFF, `must be at most ${MAX_RETRY_BACKOFF}`)
    .nullish(),
  max_delay: z.unknown().optional(),
  on: z.unknown().optional(),
}).superRefine((value, ctx) => checkRetry(value, ctx), ALWAYS);

const StepSchema = strict({
  id: IdSchema,
  run: TextSchema.optional(),
  gate: strict({ prompt: PromptSchema }).optional(),
  input: strict({ prompt: PromptSchema, fields: fieldsSchema('field') }).optional(),
  timeout: z.unknown().optional(),
  env: z
    .record(
      z
        .string()
        .regex(
          ENV_NAME_PATTERN,
          'an environment variable name is letters, digits and _, not starting with a digit',
        )
        .refine((name) => !name.startsWith('CHARTER_'), 'names starting with CHARTER_ are set by the daemon'),
      z.string(),
    )
    .nullish(),
  retry_on_restart: z.boolean().nullish(),
  runtime: z.literal('python').nullish(),
  outputs: z.record(NameSchema, FieldSchema).nullish(),
  retry: RetrySchema.nullish(),
}).superRefine((value, ctx) => checkStep(value, ctx), ALWAYS);

const PlanSchema = strict({
  steps: z.array(StepSchema).min(1, 'a plan needs at least one step'),
}).superRefine((value, ctx) => checkPlan(value, ctx), ALWAYS);

export { FieldSchema, ManifestSchema, PlanSchema, StepSchema };
export type ManifestData = z.output<typeof ManifestSchema>;
export type PlanData = z.output<typeof PlanSchema>;
type FieldData = z.output<typeof FieldSchema>;

type Ctx = z.RefinementCtx;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const EXPECTED_DEFAULT: Record<Exclude<ValueType, 'enum' | 'secret'>, string> = {
  string: 'a string',
  boolean: 'true or false',
  integer: 'an integer',
  number: 'a number',
};

function checkField(value: unknown, ctx: Ctx): void {
  if (!isRecord(value)) return;
  const type = value.type;
  if (typeof type !== 'string' || !(VALUE_TYPES as readonly string[]).includes(type)) return;
  const values = value.values;
  if (type === 'enum') {
    if (values === undefined || values === null || (Array.isArray(values) && values.length === 0)) {
      ctx.addIssue({ code: 'custom', path: ['values'], message: 'an enum needs a non-empty list of values' });
    } else if (Array.isArray(values)) {
      const seen = new Set<unknown>();
      for (const [index, item] of values.entries()) {
        if (seen.has(item)) {
          ctx.addIssue({
            code: 'custom',
            path: ['values', index],
            message: `duplicate value ${JSON.stringify(item)}`,
          });
        }
        seen.add(item);
      }
    }
  } else if (values !== undefined && values !== null) {
    ctx.addIssue({
      code: 'custom',
      path: ['values'],
      message: `only allowed with type enum (this is ${type})`,
    });
  }
  const given = value.default;
  if (given === undefined || given === null) return;
  if (type === 'secret') {
    // The value is not described: it is meant to be secret.
    ctx.addIssue({
      code: 'custom',
      path: ['default'],
      message: 'a secret cannot have a default (it would be written in clear in the workflow file)',
    });
    return;
  }
  if (value.required === true) {
    ctx.addIssue({
      code: 'custom',
      path: ['default'],
      message: 'a required value cannot have a default (remove one of them)',
    });
  }
  if (type === 'enum') {
    if (!Array.isArray(values)) return;
    if (typeof given !== 'string' || !values.includes(given)) {
      ctx.addIssue({
        code: 'custom',
        path: ['default'],
        message: `must be one of ${values.map(String).join(', ')}, got ${describeYaml(given)}`,
      });
    }
    return;
  }
  if (typeof given === 'string' && given.length > MAX_VALUE_CHARS) {
    ctx.addIssue({
      code: 'custom',
      path: ['default'],
      message: `must be at most ${MAX_VALUE_CHARS} characters (the limit of a value), got ${given.length}`,
    });
    return;
  }
  const matches =
    type === 'string'
      ? typeof given === 'string'
      : type === 'boolean'
        ? typeof given === 'boolean'
        : type === 'integer'
          ? Number.isSafeInteger(given)
          : typeof given === 'number' && Number.isFinite(given);
  if (!matches) {
    ctx.addIssue({
      code: 'custom',
      path: ['default'],
      message: `expected ${EXPECTED_DEFAULT[type as Exclude<ValueType, 'enum' | 'secret'>]} (the type is ${type}), got ${describeYaml(given)}`,
    });
  }
}

/** Two names that give the same environment variable (`dry-run`, `dry_run`, `DRY_RUN`) are refused. */
function checkEnvCollisions(value: unknown, ctx: Ctx, noun: 'input' | 'field'): void {
  if (!isRecord(value)) return;
  if (noun === 'field' && Object.keys(value).length === 0) {
    ctx.addIssue({ code: 'custom', message: 'an input step needs at least one field' });
  }
  if (noun !== 'input') return; // fields collide across steps: checked for the whole plan
  const seen = new Map<string, string>();
  for (const name of Object.keys(value)) {
    if (!NAME_PATTERN.test(name)) continue;
    const variable = inputEnvVar(name);
    const other = seen.get(variable);
    if (other !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: [name],
        message: `becomes ${variable} like input ${JSON.stringify(other)}; rename one of them`,
      });
    } else {
      seen.set(variable, name);
    }
  }
}

const STEP_KINDS = ['run', 'gate', 'input'] as const;
const RUN_ONLY_KEYS = ['timeout', 'env', 'retry_on_restart', 'runtime', 'outputs', 'retry'] as const;

function checkStep(value: unknown, ctx: Ctx): void {
  if (!isRecord(value)) return;
  const kinds = STEP_KINDS.filter((kind) => value[kind] !== undefined);
  if (kinds.length !== 1) {
    ctx.addIssue({
      code: 'custom',
      message:
        kinds.length === 0
          ? 'a step needs exactly one of run, gate, input'
          : `a step has exactly one of run, gate, input (this one has ${kinds.join(' and ')})`,
    });
  }
  if (kinds.length === 1 && kinds[0] !== 'run') {
    for (const key of RUN_ONLY_KEYS) {
      if (value[key] !== undefined && value[key] !== null) {
        ctx.addIssue({
          code: 'custom',
          path: [key],
          message: `only allowed on run steps (this is a ${kinds[0]} step)`,
        });
      }
    }
  }
  const timeout = value.timeout;
  if (timeout !== undefined && timeout !== null && parseTimeout(timeout) === undefined) {
    ctx.addIssue({
      code: 'custom',
      path: ['timeout'],
      message: `expected a duration such as 500ms, 30s, 10m or 2h (more than 0, at most ${MAX_DURATION_MS / 86_400_000} days), got ${describeYaml(timeout)}`,
    });
  }
}

function parseTimeout(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isInteger(value) ? parseDuration(String(value)) : undefined;
  return typeof value === 'string' ? parseDuration(value) : undefined;
}

function parseRetryDuration(value: unknown): number | undefined {
  const ms = parseTimeout(value);
  return ms !== undefined && ms <= MAX_RETRY_DELAY_MS ? ms : undefined;
}

function checkRetry(value: unknown, ctx: Ctx): void {
  if (!isRecord(value)) return;
  const durations: Partial<Record<'delay' | 'max_delay', number>> = {};
  for (const key of ['delay', 'max_delay'] as const) {
    const given = value[key];
    if (given === undefined || given === null) continue;
    const ms = parseRetryDuration(given);
    if (ms === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: [key],
        message: `expected ${RETRY_DURATION_RULE}, got ${describeYaml(given)}`,
      });
    } else {
      durations[key] = ms;
    }
  }
  if (durations.delay !== undefined && durations.max_delay !== undefined) {
    if (durations.max_delay < durations.delay) {
      ctx.addIssue({
        code: 'custom',
        path: ['max_delay'],
        message: `must be at least delay (${describeYaml(value.delay)}), got ${describeYaml(value.max_delay)}`,
      });
    }
  }
  const on = value.on;
  if (on === undefined || on === null) return;
  for (const problem of retryOnProblems(on)) {
    ctx.addIssue({ code: 'custom', path: ['on', ...problem.path], message: problem.message });
  }
}

const RETRY_ON_RULE = 'an exit code from 1 to 255, any or timeout';

/** One item of `retry.on`, or undefined when it is none. */
function retryOnItem(item: unknown): number | 'any' | 'timeout' | undefined {
  if (item === 'any' || item === 'timeout') return item;
  return typeof item === 'number' && Number.isInteger(item) && item >= 1 && item <= 255 ? item : undefined;
}

/** The problems of a `retry.on` value (a single item or a list of them), with their paths below `on`. */
function retryOnProblems(on: unknown): { path: number[]; message: string }[] {
  if (!Array.isArray(on)) {
    return retryOnItem(on) === undefined
      ? [{ path: [], message: `expected ${RETRY_ON_RULE}, or a list of them, got ${describeYaml(on)}` }]
      : [];
  }
  if (on.length === 0)
    return [{ path: [], message: `must not be empty (leave on out to retry any failure)` }];
  if (on.length > MAX_RETRY_ON_ITEMS)
    return [{ path: [], message: `must have at most ${MAX_RETRY_ON_ITEMS} items` }];
  const problems: { path: number[]; message: string }[] = [];
  const seen = new Set<unknown>();
  for (const [index, item] of on.entries()) {
    const parsed = retryOnItem(item);
    if (parsed === undefined) {
      problems.push({ path: [index], message: `expected ${RETRY_ON_RULE}, got ${describeYaml(item)}` });
    } else if (seen.has(parsed)) {
      problems.push({ path: [index], message: `duplicate ${describeYaml(item)}` });
    }
    seen.add(parsed);
  }
  if (seen.has('any') && on.some((item) => typeof retryOnItem(item) === 'number')) {
    problems.push({
      path: [],
      message: 'any already retries every exit code: list either any or exit codes',
    });
  }
  return problems;
}

/** `retry.on` as validated: a single item or a list; absent means `any`. */
function toRetryOn(on: unknown): RetryOn {
  const items = (on === undefined || on === null ? ['any'] : Array.isArray(on) ? on : [on]).map(retryOnItem);
  return {
    anyFailure: items.includes('any'),
    exitCodes: items.filter((item): item is number => typeof item === 'number'),
    timeout: items.includes('timeout'),
  };
}

function toRetryPolicy(retry: z.output<typeof RetrySchema>): RetryPolicy {
  return {
    limit: retry.limit,
    delayMs: parseRetryDuration(retry.delay) ?? DEFAULT_RETRY_DELAY_MS,
    backoff: retry.backoff ?? DEFAULT_RETRY_BACKOFF,
    maxDelayMs: parseRetryDuration(retry.max_delay) ?? MAX_RETRY_DELAY_MS,
    on: toRetryOn(retry.on),
  };
}

function checkPlan(value: unknown, ctx: Ctx): void {
  if (!isRecord(value) || !Array.isArray(value.steps)) return;
  const stepIds = new Map<string, number>();
  const variables = new Map<string, string>();
  for (const [index, step] of value.steps.entries()) {
    if (!isRecord(step) || typeof step.id !== 'string') continue;
    const first = stepIds.get(step.id);
    if (first !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['steps', index, 'id'],
        message: `duplicate step id ${JSON.stringify(step.id)} (also steps.${first}.id)`,
      });
    } else {
      stepIds.set(step.id, index);
    }
    if (!ID_PATTERN.test(step.id)) continue;
    // Answers of input steps and declared outputs of run steps share the CHARTER_STEP_ namespace.
    const named: [readonly (string | number)[], unknown][] = [
      [['input', 'fields'], isRecord(step.input) ? step.input.fields : undefined],
      [['outputs'], step.run !== undefined ? step.outputs : undefined],
    ];
    for (const [at, fields] of named) {
      if (!isRecord(fields)) continue;
      for (const name of Object.keys(fields)) {
        if (!NAME_PATTERN.test(name)) continue;
        const variable = stepFieldEnvVar(step.id, name);
        const path = ['steps', index, ...at, name];
        const other = variables.get(variable);
        if (other !== undefined) {
          ctx.addIssue({
            code: 'custom',
            path,
            message: `becomes ${variable} like ${other}; rename one of them`,
          });
        } else {
          variables.set(variable, path.join('.'));
        }
      }
    }
  }
}

// ---- problems --------------------------------------------------------------------------------

const EXPECTED: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  boolean: 'true or false',
  object: 'a mapping',
  record: 'a mapping',
  array: 'a list',
};

/** Messages for zod's own issues; refinements bring their own. */
const errorMap: z.core.$ZodErrorMap = (issue) => {
  switch (issue.code) {
    case 'invalid_type':
      if (issue.input === undefined) return 'required';
      return `expected ${EXPECTED[issue.expected] ?? issue.expected}, got ${describeYaml(issue.input)}`;
    case 'invalid_value':
      if (issue.input === undefined) return 'required';
      return issue.values.length === 1
        ? `expected ${String(issue.values[0])}, got ${describeYaml(issue.input)}`
        : `expected one of ${issue.values.map(String).join(', ')}, got ${describeYaml(issue.input)}`;
    case 'too_small':
      if (issue.origin === 'string') return 'must not be empty';
      return `must have at least ${String(issue.minimum)} item(s)`;
    case 'too_big':
      if (issue.origin === 'string') return `must be at most ${String(issue.maximum)} characters`;
      return `must have at most ${String(issue.maximum)} items`;
    case 'invalid_key':
      return issue.issues[0]?.message ?? 'invalid name';
    default:
      return undefined;
  }
};

/** A short description of a YAML value for a problem message. */
function describeYaml(value: unknown): string {
  if (value === null) return 'nothing';
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  return typeof value;
}

function formatPath(path: readonly PropertyKey[]): string {
  return path.length === 0 ? '(root)' : path.map(String).join('.');
}

/** Alias expansions (`*name`) one workflow file may make before it counts as an alias bomb. */
const MAX_ALIAS_EXPANSIONS = 100;

function validateFile<Schema extends z.ZodType>(
  file: string,
  text: string,
  schema: Schema,
  problems: string[],
): { raw?: unknown; data?: z.output<Schema> } {
  const document = parseDocument(text);
  if (document.errors.length > 0) {
    for (const error of document.errors) {
      const line = error.message.split('\n')[0]?.replace(/:$/, '') ?? error.code;
      problems.push(`${file}: not valid YAML: ${line}`);
    }
    return {};
  }
  let raw: unknown;
  try {
    raw = document.toJS({ maxAliasCount: MAX_ALIAS_EXPANSIONS });
  } catch (error) {
    // yaml throws (a ReferenceError) when aliases expand past the count: a "billion laughs".
    const message = errorMessage(error);
    problems.push(
      /alias/i.test(message)
        ? `${file}: not valid YAML: its aliases (*name) expand more than ${MAX_ALIAS_EXPANSIONS} times; write the values out instead`
        : `${file}: not valid YAML: ${message}`,
    );
    return {};
  }
  if (valueDepthExceeds(raw, MAX_JSON_DEPTH)) {
    problems.push(`${file}: nested more than ${MAX_JSON_DEPTH} levels deep (see docs/workflows.md)`);
    return {};
  }
  if (raw === null || raw === undefined) {
    problems.push(`${file}: the file is empty; expected a mapping (see docs/workflows.md)`);
    return { raw };
  }
  const parsed = schema.safeParse(raw, { error: errorMap });
  if (parsed.success) return { raw, data: parsed.data };
  for (const issue of parsed.error.issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys)
        problems.push(`${file}: ${formatPath([...issue.path, key])}: ${issue.message}`);
    } else {
      problems.push(`${file}: ${formatPath(issue.path)}: ${issue.message}`);
    }
  }
  return { raw };
}

// ---- building --------------------------------------------------------------------------------

function toFieldSpec(field: FieldData): FieldSpec {
  const spec: {
    type: ValueType;
    required: boolean;
    default?: string | number | boolean;
    description: string | null;
    values: readonly string[] | null;
  } = {
    type: field.type,
    required: field.required ?? false,
    description: field.description ?? null,
    values: field.type === 'enum' ? (field.values ?? []) : null,
  };
  const given = field.default;
  if (typeof given === 'string' || typeof given === 'number' || typeof given === 'boolean')
    spec.default = given;
  return spec;
}

function toFieldSpecs(fields: Record<string, FieldData> | null | undefined): Record<string, FieldSpec> {
  const specs: Record<string, FieldSpec> = {};
  for (const [name, field] of Object.entries(fields ?? {})) specs[name] = toFieldSpec(field);
  return specs;
}

function toStep(step: PlanData['steps'][number]): Step {
  if (step.gate !== undefined) return { kind: 'gate', id: step.id, prompt: step.gate.prompt };
  if (step.input !== undefined) {
    return { kind: 'input', id: step.id, prompt: step.input.prompt, fields: toFieldSpecs(step.input.fields) };
  }
  return {
    kind: 'run',
    id: step.id,
    command: step.run ?? '',
    timeoutMs:
      step.timeout === undefined || step.timeout === null ? null : (parseTimeout(step.timeout) ?? null),
    env: { ...(step.env ?? {}) },
    runtime: step.runtime ?? null,
    retryOnRestart: step.retry_on_restart ?? false,
    outputs: step.outputs === undefined || step.outputs === null ? null : toFieldSpecs(step.outputs),
    retry: step.retry === undefined || step.retry === null ? null : toRetryPolicy(step.retry),
  };
}

function buildWorkflow(dir: string, manifest: ManifestData, plan: PlanData): Workflow {
  return {
    id: manifest.id,
    name: manifest.name,
    description: manifest.description ?? null,
    inputs: toFieldSpecs(manifest.inputs),
    steps: plan.steps.map(toStep),
    dir,
  };
}
