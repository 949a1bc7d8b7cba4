/**
 * The environment a workflow `run` step sees: the daemon's own environment plus the run's
 * identity, its inputs, the answers of earlier steps, the path of the context file and, when the
 * project has a Charter virtualenv, that venv first on PATH. The step's own `env` wins over all.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';

export type StepScalar = string | number | boolean;

export interface StepEnvInput {
  projectRoot: string;
  runId: string;
  workflowId: string;
  inputs: Readonly<Record<string, StepScalar>>;
  /** Answers of earlier steps, keyed by step id, then by field name. */
  answers: Readonly<Record<string, Readonly<Record<string, StepScalar>>>>;
  /** The step's own `env`, applied last. */
  stepEnv: Readonly<Record<string, string>>;
  contextFile: string;
  baseEnv: NodeJS.ProcessEnv;
}

export interface StepContext {
  run_id: string;
  workflow_id: string;
  inputs: Readonly<Record<string, StepScalar>>;
  answers: Readonly<Record<string, Readonly<Record<string, StepScalar>>>>;
}

/** `my-input` → `MY_INPUT`: upper-cased, every character outside [A-Z0-9] becomes `_`. */
export function envName(name: string): string {
  return name.toUpperCase().replace(/[^A-Z0-9]/g, '_');
}

/** `<projectRoot>/.charter/.venv` when `<venv>/bin/python` exists, else null. */
export function venvPath(projectRoot: string): string | null {
  const venv = join(projectRoot, '.charter', '.venv');
  return existsSync(join(venv, 'bin', 'python')) ? venv : null;
}

export function buildStepEnv(input: StepEnvInput): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...input.baseEnv };

  const venv = venvPath(input.projectRoot);
  if (venv !== null) {
    const bin = join(venv, 'bin');
    const path = env.PATH;
    env.PATH = path ? `${bin}${delimiter}${path}` : bin;
    env.VIRTUAL_ENV = venv;
    delete env.PYTHONHOME;
  }

  env.CHARTER_RUN_ID = input.runId;
  env.CHARTER_WORKFLOW_ID = input.workflowId;
  env.CHARTER_PROJECT_ROOT = input.projectRoot;
  for (const [name, value] of Object.entries(input.inputs)) {
    env[`CHARTER_INPUT_${envName(name)}`] = String(value);
  }
  for (const [stepId, fields] of Object.entries(input.answers)) {
    for (const [field, value] of Object.entries(fields)) {
      env[`CHARTER_STEP_${envName(stepId)}_${envName(field)}`] = String(value);
    }
  }
  env.CHARTER_CONTEXT = input.contextFile;

  for (const [name, value] of Object.entries(input.stepEnv)) env[name] = value;
  return env;
}

/** Writes the step context as JSON, mode 0600, atomically (temp file + rename). */
export function writeContextFile(path: string, context: StepContext): void {
  const body: StepContext = {
    run_id: context.run_id,
    workflow_id: context.workflow_id,
    inputs: context.inputs,
    answers: context.answers,
  };
  const temp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  // `wx`: a fresh file, so `mode` applies (it is ignored for a file that already exists).
  try {
    writeFileSync(temp, `${JSON.stringify(body, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
    renameSync(temp, path);
  } catch (error) {
    rmSync(temp, { force: true });
    throw error;
  }
}
