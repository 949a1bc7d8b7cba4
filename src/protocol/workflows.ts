/**
 * Control-protocol methods that say what can run: `workflows.list` (every workflow of the
 * project, whether it loads) and `workflows.show` (one workflow's inputs and steps). zod/mini,
 * like the rest of the control protocol (the CLI bundles it).
 */
import * as z from 'zod/mini';
import { FieldSpecSchema, WorkflowIdSchema } from './runs.js';

/** The most workflows `workflows.list` describes; the rest are counted in `omitted`. */
export const MAX_LISTED_WORKFLOWS = 1000;
/** A workflow that does not load is listed with the first line of its error, cut to this many bytes. */
export const MAX_LIST_ERROR_BYTES = 500;

export const WorkflowsListParamsSchema = z.strictObject({});

export const WorkflowLoadErrorSchema = z.object({
  /** INVALID_WORKFLOW (the YAML is wrong) or UNKNOWN_WORKFLOW (a file vanished meanwhile). */
  code: z.string(),
  message: z.string(),
});

/** One workflow as `workflows list` shows it. */
export const WorkflowSummarySchema = z.object({
  id: z.string(),
  /** The manifest's `name`; null when the workflow does not load. */
  name: z.nullable(z.string()),
  description: z.nullable(z.string()),
  /** Whether manifest.yml and plan.yml load and validate. */
  loads: z.boolean(),
  /** How many inputs and steps it has; null when it does not load. */
  inputs: z.nullable(z.int().check(z.nonnegative())),
  steps: z.nullable(z.int().check(z.nonnegative())),
  /** Why it does not load (its first problem: `workflows show` lists them all); null when it loads. */
  error: z.nullable(WorkflowLoadErrorSchema),
});
export type WorkflowSummary = z.infer<typeof WorkflowSummarySchema>;

export const WorkflowsListResultSchema = z.object({
  /** Sorted by id. */
  workflows: z.array(WorkflowSummarySchema),
  /** Workflows beyond MAX_LISTED_WORKFLOWS, not described. */
  omitted: z.int().check(z.nonnegative()),
});
export type WorkflowsListResult = z.infer<typeof WorkflowsListResultSchema>;

export const WorkflowsShowParamsSchema = z.strictObject({ workflow_id: WorkflowIdSchema });

/** An input (or an input step's field), with its default when it has one. */
export const InputSpecSchema = z.object({
  ...FieldSpecSchema.shape,
  /** Used when the value is absent; never for a required input nor a secret. */
  default: z.optional(z.union([z.string(), z.number(), z.boolean()])),
});

export const WorkflowStepSchema = z.object({
  id: z.string(),
  kind: z.enum(['run', 'gate', 'input']),
  /** run steps: the time limit (null: none), `python` when it needs .charter/.venv, retried after a daemon restart. */
  timeout_ms: z.optional(z.nullable(z.number())),
  runtime: z.optional(z.nullable(z.literal('python'))),
  retry_on_restart: z.optional(z.boolean()),
  /** run steps: automatic retries of a failed attempt (`retry:`), null without. */
  retry: z.optional(
    z.nullable(
      z.object({
        limit: z.int(),
        delay_ms: z.number(),
        backoff: z.number(),
        max_delay_ms: z.number(),
        /** `any` (every non-zero exit), `timeout`, exit codes. */
        on: z.array(z.union([z.literal('any'), z.literal('timeout'), z.int()])),
      }),
    ),
  ),
  /**
   * run steps: the outputs the step declares (`outputs:`), name → type, required, description
   * (and an enum's values, a default); null when undeclared: then it may write any names, all
   * strings.
   */
  outputs: z.optional(z.nullable(z.record(z.string(), InputSpecSchema))),
  /** gate and input steps: what the person is asked. */
  prompt: z.optional(z.string()),
  /** input steps: the fields of the answers. */
  fields: z.optional(z.record(z.string(), InputSpecSchema)),
});
export type WorkflowStep = z.infer<typeof WorkflowStepSchema>;

export const WorkflowDetailSchema = z.object({
  id: z.string(),
  name: z.string(),
  description: z.nullable(z.string()),
  inputs: z.record(z.string(), InputSpecSchema),
  steps: z.array(WorkflowStepSchema),
});
export type WorkflowDetail = z.infer<typeof WorkflowDetailSchema>;
