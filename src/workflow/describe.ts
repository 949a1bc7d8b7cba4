/**
 * What a workflow looks like from outside, for `workflows list` and `workflows show`: a loaded
 * definition projected onto the control protocol's shapes (src/protocol/workflows.ts). Nothing
 * secret is in a definition (a secret input has no default), so nothing needs redacting here.
 */
import { isCharterError } from '../errors/charter-error.js';
import { errorMessage } from '../errors/error-message.js';
import { cutText } from '../protocol/field-limits.js';
import {
  MAX_LIST_ERROR_BYTES,
  MAX_LISTED_WORKFLOWS,
  type WorkflowDetail,
  type WorkflowStep,
  type WorkflowSummary,
  type WorkflowsListResult,
} from '../protocol/workflows.js';
import type { WorkflowCatalog } from './catalog.js';
import type { FieldSpec, RetryPolicy, Step, Workflow } from './definition.js';

/** Every workflow of the project, loaded through the catalog (so a list reloads only what changed). */
export function listWorkflows(catalog: WorkflowCatalog): WorkflowsListResult {
  const ids = catalog.list();
  const workflows = ids.slice(0, MAX_LISTED_WORKFLOWS).map((id) => summarize(catalog, id));
  return { workflows, omitted: Math.max(0, ids.length - MAX_LISTED_WORKFLOWS) };
}

function summarize(catalog: WorkflowCatalog, id: string): WorkflowSummary {
  try {
    const workflow = catalog.get(id);
    return {
      id,
      name: workflow.name,
      description: workflow.description,
      loads: true,
      inputs: Object.keys(workflow.inputs).length,
      steps: workflow.steps.length,
      error: null,
    };
  } catch (error) {
    const code = isCharterError(error) ? error.code : 'INTERNAL';
    // The first problem only: `workflows show` gives them all.
    const firstLines = errorMessage(error).split('\n').slice(0, 2).join(' ').replace(/\s+/g, ' ');
    return {
      id,
      name: null,
      description: null,
      loads: false,
      inputs: null,
      steps: null,
      error: { code, message: cutText(firstLines, MAX_LIST_ERROR_BYTES, '…') },
    };
  }
}

/** A loaded workflow's inputs and steps. */
export function describeWorkflow(workflow: Workflow): WorkflowDetail {
  return {
    id: workflow.id,
    name: workflow.name,
    description: workflow.description,
    inputs: mapFields(workflow.inputs),
    steps: workflow.steps.map(describeStep),
  };
}

function describeStep(step: Step): WorkflowStep {
  switch (step.kind) {
    case 'run':
      return {
        id: step.id,
        kind: 'run',
        timeout_ms: step.timeoutMs,
        runtime: step.runtime,
        retry_on_restart: step.retryOnRestart,
        retry: retryOf(step.retry),
        outputs: step.outputs === null ? null : mapFields(step.outputs),
      };
    case 'gate':
      return { id: step.id, kind: 'gate', prompt: step.prompt };
    case 'input':
      return { id: step.id, kind: 'input', prompt: step.prompt, fields: mapFields(step.fields) };
  }
}

function retryOf(policy: RetryPolicy | null): WorkflowStep['retry'] {
  if (policy === null) return null;
  const on: ('any' | 'timeout' | number)[] = [];
  if (policy.on.anyFailure) on.push('any');
  if (policy.on.timeout) on.push('timeout');
  on.push(...policy.on.exitCodes);
  return {
    limit: policy.limit,
    delay_ms: policy.delayMs,
    backoff: policy.backoff,
    max_delay_ms: policy.maxDelayMs,
    on,
  };
}

function mapFields(fields: Readonly<Record<string, FieldSpec>>): WorkflowDetail['inputs'] {
  return Object.fromEntries(
    Object.entries(fields).map(([name, spec]) => [
      name,
      {
        type: spec.type,
        required: spec.required,
        description: spec.description,
        values: spec.values === null ? null : [...spec.values],
        ...(spec.default === undefined ? {} : { default: spec.default }),
      },
    ]),
  );
}
