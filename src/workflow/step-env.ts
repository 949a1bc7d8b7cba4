/**
 * The environment a workflow `run` step sees, built deliberately (docs/workflows.md): a base
 * taken from the daemon's environment by `daemon.step_env` — `inherit`: all of it but the
 * daemon's own `CHARTER_*` variables (its settings and credentials, CHARTER_GATEWAY_TOKEN
 * among them); `minimal`: only {@link MINIMAL_ENV_NAMES} — then the run's identity, its inputs,
 * the answers and outputs of earlier steps, the path of the context file, the path of the step's
 * own output file and, when the project has a Charter virtualenv, that venv first on PATH. The
 * step's own `env` wins over all (it may not set `CHARTER_*` names).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';

export type StepScalar = string | number | boolean;

/** `daemon.step_env` in charter.yml. */
export const STEP_ENV_MODES = ['inherit', 'minimal'] as const;
export type StepEnvMode = (typeof STEP_ENV_MODES)[number];

/** What `minimal` keeps of the daemon's environment (besides every `LC_*`). */
export const MINIMAL_ENV_NAMES: readonly string[] = [
  'PATH',
  'HOME',
  'USER',
  'LOGNAME',
  'SHELL',
  'LANG',
  'LANGUAGE',
  'TZ',
  'TMPDIR',
];

/** The daemon's own namespace: its settings and credentials; a step's run variables use it too. */
const DAEMON_PREFIX = 'CHARTER_';

/** The part of the daemon's environment a step starts from. */
export function stepBaseEnv(env: NodeJS.ProcessEnv, mode: StepEnvMode): NodeJS.ProcessEnv {
  const base: NodeJS.ProcessEnv = {};
  const minimal = new Set(MINIMAL_ENV_NAMES);
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined || name.startsWith(DAEMON_PREFIX)) continue;
    if (mode === 'minimal' && !minimal.has(name) && !name.startsWith('LC_')) continue;
    base[name] = value;
  }
  return base;
}

export interface StepEnvInput {
  projectRoot: string;
  runId: string;
  workflowId: string;
  inputs: Readonly<Record<string, StepScalar>>;
  /** Answers of earlier steps, keyed by step id, then by field name. */
  answers: Readonly<Record<string, Readonly<Record<string, StepScalar>>>>;
  /** Outputs passed on by earlier run steps, keyed by step id, then by name. */
  outputs?: Readonly<Record<string, Readonly<Record<string, StepScalar>>>>;
  /** The step's own `env`, applied last. */
  stepEnv: Readonly<Record<string, string>>;
  contextFile: string;
  /** CHARTER_OUTPUT: the fresh file the step writes its outputs to. */
  outputFile?: string;
  /** The daemon's environment, filtered by `stepEnv` (see {@link stepBaseEnv}). */
  baseEnv: NodeJS.ProcessEnv;
  /** Default `inherit`. */
  mode?: StepEnvMode;
}

export interface StepContext {
  run_id: string;
  workflow_id: string;
  inputs: Readonly<Record<string, StepScalar>>;
  answers: Readonly<Record<string, Readonly<Record<string, StepScalar>>>>;
  /** Outputs of earlier run steps that succeeded: step id → name → value. */
  outputs?: Readonly<Record<string, Readonly<Record<string, StepScalar>>>>;
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
  const env = stepBaseEnv(input.baseEnv, input.mode ?? 'inherit');

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
  // Answers and outputs share the namespace; workflow loading and the output checks keep their
  // variables apart (src/workflow/load.ts, step-outputs.ts).
  for (const byStep of [input.answers, input.outputs ?? {}]) {
    for (const [stepId, fields] of Object.entries(byStep)) {
      for (const [field, value] of Object.entries(fields)) {
        env[`CHARTER_STEP_${envName(stepId)}_${envName(field)}`] = String(value);
      }
    }
  }
  env.CHARTER_CONTEXT = input.contextFile;
  if (input.outputFile !== undefined) env.CHARTER_OUTPUT = input.outputFile;

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
    outputs: context.outputs ?? {},
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
