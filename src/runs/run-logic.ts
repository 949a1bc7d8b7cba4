/**
 * The run machine with its real implementations: checkpoints and output go to the store (and
 * to log followers), and `run` steps execute as supervised process groups.
 */
import { lstatSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { fromCallback } from 'xstate';
import {
  type Checkpoint,
  type RunContext,
  runMachine,
  type StepOutputsReport,
  type StepRunnerEvent,
  type StepRunnerInput,
} from '../../machines/run.machine.js';
import { errorMessage } from '../errors/error-message.js';
import { crashPoint } from '../faults/crash-points.js';
import type { ControlReply } from '../protocol/control.js';
import { capProblems } from '../protocol/field-limits.js';
import { outputTextBudget, splitTextToFit } from '../protocol/frame-budget.js';
import type { Waiting } from '../protocol/runs.js';
import type { LiveSecrets } from '../secrets/live-secrets.js';
import { MaskPatterns } from '../secrets/masker.js';
import { StepOutputMasker } from '../secrets/output-masker.js';
import { openAnswers, openInputs, openOutputs, outputAad } from '../secrets/seal-values.js';
import { redactSealed } from '../secrets/sealed.js';
import type { SecretBox } from '../secrets/secret-box.js';
import type { RunPatch, StepPatch } from '../store/run-store.js';
import type { Store } from '../store/store.js';
import type { RunStep, Workflow } from '../workflow/definition.js';
import {
  buildStepEnv,
  type StepEnvMode,
  type StepScalar,
  venvPath,
  writeContextFile,
} from '../workflow/step-env.js';
import { readStepOutputs, takenVariables } from '../workflow/step-outputs.js';
import { startStepProcess } from '../workflow/step-process.js';
import { fieldToWire } from '../workflow/values.js';

export interface RunLogicDeps {
  readonly projectRoot: string;
  /** Where per-run files (the CHARTER_CONTEXT file, the CHARTER_OUTPUT files) live. */
  readonly runsDir: string;
  readonly store: Store;
  /** Records a gateway command's result inside the checkpoint that applies it (see Intake). */
  readonly settleWithin: (key: string, reply: ControlReply) => void;
  readonly logger: Logger;
  readonly killGraceMs: number;
  /** Opens the run's sealed secrets for its steps' environments. */
  readonly secrets: SecretBox;
  /** `daemon.step_env`: what a step inherits of the daemon's environment. */
  readonly stepEnv: StepEnvMode;
  /** The daemon's own secrets (the gateway token), masked in every step's output too. */
  readonly daemonSecrets: () => readonly (string | null)[];
  /** Where opened secrets are registered while a step runs, so the log masks them too. */
  readonly liveSecrets?: LiveSecrets;
}

/** Run actors carry the shared workflow definition as their plan. */
const workflowOf = (context: RunContext): Workflow => context.plan as Workflow;

function waitingAt(workflow: Workflow, index: number, since: string): Waiting | null {
  const step = workflow.steps[index];
  if (step === undefined || step.kind === 'run') return null;
  return {
    kind: step.kind,
    step_id: step.id,
    prompt: step.prompt,
    fields:
      step.kind === 'input'
        ? Object.fromEntries(Object.entries(step.fields).map(([name, spec]) => [name, fieldToWire(spec)]))
        : null,
    since,
  };
}

/** The plan a step child gets is the shared workflow definition too. */
const workflowOfPlan = (input: StepRunnerInput): Workflow => input.plan as Workflow;

/**
 * Creates `runs/<id>/outputs/<step>.<attempt>`: empty, 0600, private to this attempt. Whatever
 * else is in that folder was left by an attempt cut off by a crash (it may hold secrets in
 * clear) and goes first: a run has one step executing at a time.
 */
function freshOutputFile(runDir: string, stepId: string, attempt: number): string {
  const dir = join(runDir, 'outputs');
  // A step knows the folder: one it replaced by a link (or a file) is removed, never followed.
  const found = lstatSafe(dir);
  if (found !== undefined && !found.isDirectory()) rmSync(dir, { force: true });
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  for (const name of readdirSync(dir)) rmSync(join(dir, name), { force: true, recursive: true });
  const path = join(dir, `${stepId}.${attempt}`);
  // `wx`: a fresh file, so `mode` applies.
  writeFileSync(path, '', { mode: 0o600, flag: 'wx' });
  return path;
}

function lstatSafe(path: string): ReturnType<typeof lstatSync> | undefined {
  try {
    return lstatSync(path);
  } catch {
    return undefined;
  }
}

/** Removes a step's output file; a failure is logged, never thrown (the step's end must be told). */
function removeOutputFile(path: string, log: Logger): void {
  try {
    rmSync(path, { force: true, recursive: true });
  } catch (error) {
    log.warn({ error: errorMessage(error) }, 'the CHARTER_OUTPUT file could not be removed');
  }
}

export function createRunLogic(deps: RunLogicDeps) {
  const { store } = deps;

  function checkpoint(context: RunContext, cp: Checkpoint): void {
    const now = new Date();
    const iso = now.toISOString();
    const workflow = workflowOf(context);
    const patch: RunPatch = {};
    const run = cp.run;
    if (run !== undefined) {
      if (run.state !== undefined) patch.state = run.state;
      if (run.reason !== undefined) patch.reason = run.reason;
      if (run.attempt !== undefined) patch.attempt = run.attempt;
      if (run.stepIndex !== undefined) {
        patch.stepIndex = run.stepIndex;
        patch.currentStep = workflow.steps[run.stepIndex]?.id ?? null;
      }
      if (run.waitingAt !== undefined) {
        patch.waiting = run.waitingAt === null ? null : waitingAt(workflow, run.waitingAt, iso);
      }
      if (run.answers !== undefined) {
        const current = store.runs.getRecord(context.runId)?.answers ?? {};
        patch.answers = { ...current, [run.answers.stepId]: run.answers.values };
      }
      if (run.finished) {
        patch.finishedAt = iso;
        patch.currentStep = null;
        patch.waiting = null;
      }
    }
    const steps: StepPatch[] = [];
    if (cp.step !== undefined) {
      const step: StepPatch = { idx: cp.step.idx, state: cp.step.state };
      if (cp.step.attempt !== undefined) step.attempt = cp.step.attempt;
      if (cp.step.exitCode !== undefined) step.exitCode = cp.step.exitCode;
      if (cp.step.reason !== undefined) step.reason = cp.step.reason;
      if (cp.step.started) step.startedAt = iso;
      if (cp.step.finished !== undefined) step.finishedAt = cp.step.finished ? iso : null;
      if (cp.step.outputs !== undefined) step.outputs = cp.step.outputs;
      if (cp.step.retryAt !== undefined) step.retryAt = cp.step.retryAt;
      if (cp.step.archiveAttempt) step.archiveAttempt = true;
      steps.push(step);
    }
    const events = cp.followedBy === undefined ? [cp.event] : [cp.event, cp.followedBy];
    const { answer } = cp;
    if (answer === undefined) {
      store.runs.record(context.runId, patch, events, steps, now);
      return;
    }
    // The command's effect and its result: one transaction, so no crash can separate them.
    store.runs.transaction(() => {
      store.runs.record(context.runId, patch, events, steps, now);
      deps.settleWithin(answer.key, answer.reply);
    });
    crashPoint('command.applied');
  }

  const stepRunner = fromCallback<StepRunnerEvent, StepRunnerInput>(({ input, sendBack, receive }) => {
    // The plan is the shared workflow definition, so the step is the workflow's own RunStep.
    const step = input.step as RunStep;
    const log = deps.logger.child({ run: input.runId, step: step.id });

    if (step.runtime === 'python' && venvPath(deps.projectRoot) === null) {
      const message =
        'this step needs the project runtime .charter/.venv, which does not exist: run `charter install` in the project, then start a new run';
      sendBack({ type: 'step.output', chunk: { stream: 'stderr', text: `${message}\n` } });
      sendBack({ type: 'step.exited', outcome: { kind: 'spawn_failed', message } });
      return undefined;
    }

    const record = store.runs.getRecord(input.runId);
    // From the store, not memory: what the steps before passed on survives restarts and gates.
    const passed = store.runs.passedOutputs(input.runId, input.stepIndex);
    let opened: {
      inputs: Record<string, StepScalar>;
      answers: Record<string, Record<string, StepScalar>>;
      outputs: Record<string, Record<string, StepScalar>>;
      secrets: string[];
    };
    try {
      const inputs = openInputs(input.runId, record?.inputs ?? {}, deps.secrets);
      const answers = openAnswers(input.runId, record?.answers ?? {}, deps.secrets);
      const outputs = openOutputs(input.runId, passed, deps.secrets);
      opened = {
        inputs: inputs.values,
        answers: answers.values,
        outputs: outputs.values,
        secrets: [...inputs.secrets, ...answers.secrets, ...outputs.secrets],
      };
    } catch (error) {
      // A clear reason on the run, never a crash (SECRETS_UNAVAILABLE: the key file).
      const message = `secrets unavailable: ${errorMessage(error)}`;
      log.error({ error: message }, 'step not started: its secrets cannot be decrypted');
      sendBack({ type: 'step.output', chunk: { stream: 'stderr', text: `${message}\n` } });
      sendBack({ type: 'step.exited', outcome: { kind: 'spawn_failed', message } });
      return undefined;
    }
    const runDir = join(deps.runsDir, input.runId);
    mkdirSync(runDir, { recursive: true, mode: 0o700 });
    const contextFile = join(runDir, 'context.json');
    // Secrets are `***` in the file: a step that needs one reads its environment variable.
    writeContextFile(contextFile, {
      run_id: input.runId,
      workflow_id: input.workflowId,
      inputs: redactSealed(record?.inputs ?? {}) as Record<string, StepScalar>,
      answers: redactSealed(record?.answers ?? {}) as Record<string, Record<string, StepScalar>>,
      outputs: redactSealed(passed) as Record<string, Record<string, StepScalar>>,
    });
    let outputFile: string;
    try {
      outputFile = freshOutputFile(runDir, step.id, input.attempt);
    } catch (error) {
      const message = `cannot create the CHARTER_OUTPUT file: ${errorMessage(error)}`;
      sendBack({ type: 'step.output', chunk: { stream: 'stderr', text: `${message}\n` } });
      sendBack({ type: 'step.exited', outcome: { kind: 'spawn_failed', message } });
      return undefined;
    }

    const liveOwner = `run:${input.runId}`;
    deps.liveSecrets?.set(liveOwner, opened.secrets);
    const knownSecrets = [...opened.secrets, ...deps.daemonSecrets().filter((s): s is string => s !== null)];
    const masker = new StepOutputMasker(new MaskPatterns(knownSecrets), (chunk) =>
      sendBack({ type: 'step.output', chunk }),
    );
    /** The outputs the step wrote, as they are to be recorded; never throws. */
    const collectOutputs = (): StepOutputsReport => {
      const checked = readStepOutputs(outputFile, {
        stepId: step.id,
        declared: step.outputs,
        taken: takenVariables(workflowOfPlan(input), step.id, passed),
        earlier: opened.outputs,
      });
      const secretNames = Object.keys(checked.values).filter(
        (name) => step.outputs?.[name]?.type === 'secret',
      );
      // A value (or a problem quoting one) that holds a secret of the run shows it masked.
      const mask = new MaskPatterns([
        ...knownSecrets,
        ...secretNames.map((name) => String(checked.values[name])),
      ]);
      const problems = capProblems(checked.problems.map((problem) => mask.mask(problem)));
      const values: Record<string, unknown> = {};
      try {
        for (const [name, value] of Object.entries(checked.values)) {
          values[name] = secretNames.includes(name)
            ? deps.secrets.seal(String(value), outputAad(input.runId, step.id, name))
            : typeof value === 'string'
              ? mask.mask(value)
              : value;
        }
      } catch (error) {
        // Not one secret output in clear: none is recorded, and the step fails.
        return {
          values: {},
          problems: [...problems, `secret outputs cannot be sealed: ${errorMessage(error)}`],
        };
      }
      return { values, problems };
    };
    const process_ = startStepProcess({
      command: step.command,
      cwd: deps.projectRoot,
      env: buildStepEnv({
        projectRoot: deps.projectRoot,
        runId: input.runId,
        workflowId: input.workflowId,
        inputs: opened.inputs,
        answers: opened.answers,
        outputs: opened.outputs,
        stepEnv: step.env,
        contextFile,
        outputFile,
        baseEnv: process.env,
        mode: deps.stepEnv,
      }),
      timeoutMs: step.timeoutMs,
      killGraceMs: deps.killGraceMs,
      // Masked before the run actor sees it: nothing downstream ever holds the clear text.
      onOutput: (chunk) => masker.push(chunk),
    });
    log.info({ pgid: process_.pid, attempt: input.attempt }, 'step started');
    let stopped = false;
    let finished = false;
    process_.done.then((outcome) => {
      finished = true;
      deps.liveSecrets?.delete(liveOwner);
      log.info({ outcome }, 'step finished');
      if (stopped) return;
      const outputs = collectOutputs();
      // Read once and recorded with the step's finish: the file (secrets in clear) goes.
      removeOutputFile(outputFile, log);
      masker.end();
      sendBack({ type: 'step.exited', outcome, outputs });
    });
    receive((event) => {
      if (event.type === 'step.cancel') process_.cancel(event.reason);
    });
    return () => {
      stopped = true;
      deps.liveSecrets?.delete(liveOwner);
      removeOutputFile(outputFile, log);
      // The run actor is being stopped (the daemon is exiting): nothing may outlive it.
      if (!finished && process_.pid !== undefined) {
        try {
          process.kill(-process_.pid, 'SIGKILL');
        } catch {
          // the group is already gone
        }
      }
    };
  });

  return runMachine.provide({
    actors: { stepRunner },
    actions: {
      checkpoint: ({ context }, params) => checkpoint(context, params),
      recordOutput: ({ context }, params) => {
        // Each event fits the frame the gateway announced (see src/protocol/frame-budget.ts).
        const pieces = splitTextToFit(params.chunk.text, outputTextBudget(store.gateway.maxFrame()));
        store.runs.appendEvents(
          context.runId,
          pieces.map((text, index) => ({
            type: 'step.output',
            data: {
              step_id: params.stepId,
              stream: params.chunk.stream,
              text,
              // The truncation marker belongs after the last of the text.
              ...(params.chunk.truncated && index === pieces.length - 1 ? { truncated: true } : {}),
            },
          })),
        );
      },
    },
  });
}
