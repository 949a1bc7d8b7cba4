/**
 * The run machine with its real implementations: checkpoints and output go to the store (and
 * to log followers), and `run` steps execute as supervised process groups.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { fromCallback } from 'xstate';
import {
  type Checkpoint,
  type RunContext,
  runMachine,
  type StepRunnerEvent,
  type StepRunnerInput,
} from '../../machines/run.machine.js';
import type { ControlReply } from '../protocol/control.js';
import { outputTextBudget, splitTextToFit } from '../protocol/frame-budget.js';
import type { Waiting } from '../protocol/runs.js';
import type { RunPatch, StepPatch } from '../store/run-store.js';
import type { Store } from '../store/store.js';
import type { RunStep, Workflow } from '../workflow/definition.js';
import { buildStepEnv, type StepScalar, venvPath, writeContextFile } from '../workflow/step-env.js';
import { startStepProcess } from '../workflow/step-process.js';
import { fieldToWire } from '../workflow/values.js';
import { crashPoint } from './crash-points.js';

export interface RunLogicDeps {
  readonly projectRoot: string;
  /** Where per-run files (the CHARTER_CONTEXT file) live. */
  readonly runsDir: string;
  readonly store: Store;
  /** Records a gateway command's result inside the checkpoint that applies it (see Intake). */
  readonly settleWithin: (key: string, reply: ControlReply) => void;
  readonly logger: Logger;
  readonly killGraceMs: number;
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
      if (cp.step.finished) step.finishedAt = iso;
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

  const stepRunner = fromCallback<StepRunnerEvent, StepRunnerInput>(
    ({ input, sendBack, receive, system }) => {
      const runActor = system.get(`run:${input.runId}`);
      const workflow = workflowOf(runActor.getSnapshot().context as RunContext);
      const step = workflow.steps[input.stepIndex] as RunStep;
      const log = deps.logger.child({ run: input.runId, step: step.id });

      if (step.runtime === 'python' && venvPath(deps.projectRoot) === null) {
        const message =
          'this step needs the project runtime .charter/.venv, which does not exist: run `charter install` in the project, then start a new run';
        sendBack({ type: 'step.output', chunk: { stream: 'stderr', text: `${message}\n` } });
        sendBack({ type: 'step.exited', outcome: { kind: 'spawn_failed', message } });
        return undefined;
      }

      const record = store.runs.getRecord(input.runId);
      const inputs = (record?.inputs ?? {}) as Record<string, StepScalar>;
      const answers = (record?.answers ?? {}) as Record<string, Record<string, StepScalar>>;
      const runDir = join(deps.runsDir, input.runId);
      mkdirSync(runDir, { recursive: true, mode: 0o700 });
      const contextFile = join(runDir, 'context.json');
      writeContextFile(contextFile, { run_id: input.runId, workflow_id: workflow.id, inputs, answers });

      const process_ = startStepProcess({
        command: step.command,
        cwd: deps.projectRoot,
        env: buildStepEnv({
          projectRoot: deps.projectRoot,
          runId: input.runId,
          workflowId: workflow.id,
          inputs,
          answers,
          stepEnv: step.env,
          contextFile,
          baseEnv: process.env,
        }),
        timeoutMs: step.timeoutMs,
        killGraceMs: deps.killGraceMs,
        onOutput: (chunk) => sendBack({ type: 'step.output', chunk }),
      });
      log.info({ pgid: process_.pid, attempt: input.attempt }, 'step started');
      let stopped = false;
      let finished = false;
      process_.done.then((outcome) => {
        finished = true;
        log.info({ outcome }, 'step finished');
        if (!stopped) sendBack({ type: 'step.exited', outcome });
      });
      receive((event) => {
        if (event.type === 'step.cancel') process_.cancel(event.reason);
      });
      return () => {
        stopped = true;
        // The run actor is being stopped (the daemon is exiting): nothing may outlive it.
        if (!finished && process_.pid !== undefined) {
          try {
            process.kill(-process_.pid, 'SIGKILL');
          } catch {
            // the group is already gone
          }
        }
      };
    },
  );

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
