/**
 * Model-based test of the run machine: an abstract model of a 4-step run (command, gate, input,
 * command) with `xstate/graph` generating every simple path; the real machine (with a fake step
 * runner and a simulated clock) is driven along each one and must agree with the model at every
 * step. The paths together must reach every state and take every transition of the model.
 */
import { describe, expect, it } from 'vitest';
import { createActor, createMachine, fromCallback, SimulatedClock } from 'xstate';
import { getSimplePaths } from 'xstate/graph';
import {
  type RunPlan,
  runMachine,
  type StepRunnerEvent,
  type StepRunnerInput,
} from '../../machines/run.machine.js';

const plan: RunPlan = {
  id: 'model',
  steps: [
    { id: 'build', kind: 'run' },
    { id: 'approve', kind: 'gate' },
    { id: 'details', kind: 'input' },
    { id: 'publish', kind: 'run' },
  ],
};

const model = createMachine({
  id: 'model',
  initial: 'queued_build',
  states: {
    queued_build: { on: { ADMIT: 'running_build', CANCEL: 'cancelled' } },
    running_build: {
      on: { EXIT_OK: 'waiting_approve', EXIT_FAIL: 'failed', TIMEOUT: 'failed', CANCEL: 'cancelling' },
    },
    waiting_approve: { on: { APPROVE: 'queued_details', DENY: 'failed', CANCEL: 'cancelled' } },
    queued_details: { on: { ADMIT: 'waiting_details', CANCEL: 'cancelled' } },
    waiting_details: { on: { ANSWER: 'queued_publish', CANCEL: 'cancelled' } },
    queued_publish: { on: { ADMIT: 'running_publish', CANCEL: 'cancelled' } },
    running_publish: { on: { EXIT_OK: 'succeeded', EXIT_FAIL: 'failed', CANCEL: 'cancelling' } },
    cancelling: { on: { GONE: 'cancelled', WATCHDOG: 'cancelled' } },
    succeeded: { type: 'final' },
    failed: { type: 'final' },
    cancelled: { type: 'final' },
  },
});

type ModelEvent =
  | 'ADMIT'
  | 'EXIT_OK'
  | 'EXIT_FAIL'
  | 'TIMEOUT'
  | 'APPROVE'
  | 'DENY'
  | 'ANSWER'
  | 'CANCEL'
  | 'GONE'
  | 'WATCHDOG';

/** The run state a model state stands for. */
const publicState = (modelState: string) => modelState.split('_')[0];
/** The step index a model state stands for (`waiting_details` → 2), when it names one. */
const stepOf = (modelState: string): number | undefined => {
  const stepId = modelState.split('_')[1];
  return stepId === undefined ? undefined : plan.steps.findIndex((step) => step.id === stepId);
};

function realRun() {
  const clock = new SimulatedClock();
  const machine = runMachine.provide({
    actors: { stepRunner: fromCallback<StepRunnerEvent, StepRunnerInput>(() => undefined) },
    actions: {
      checkpoint: () => undefined,
      recordOutput: () => undefined,
      report: () => undefined,
      answer: () => undefined,
    },
  });
  const actor = createActor(machine, {
    clock,
    input: { runId: 'rM', plan, stepIndex: 0, attempt: 1, resume: 'queued' },
  }).start();
  const send = (event: ModelEvent) => {
    switch (event) {
      case 'ADMIT':
        return actor.send({ type: 'run.admit' });
      case 'EXIT_OK':
        return actor.send({ type: 'step.exited', outcome: { kind: 'exited', exitCode: 0 } });
      case 'EXIT_FAIL':
        return actor.send({ type: 'step.exited', outcome: { kind: 'exited', exitCode: 1 } });
      case 'TIMEOUT':
        return actor.send({ type: 'step.exited', outcome: { kind: 'timed_out', timeoutMs: 5 } });
      case 'APPROVE':
        return actor.send({ type: 'gate.decide', key: 'k', stepId: null, decision: 'approve' });
      case 'DENY':
        return actor.send({ type: 'gate.decide', key: 'k', stepId: null, decision: 'deny' });
      case 'ANSWER':
        return actor.send({ type: 'input.submit', key: 'k', stepId: null, answers: { count: 1 } });
      case 'CANCEL':
        return actor.send({ type: 'run.cancel', key: 'k', reason: 'model' });
      case 'GONE':
        return actor.send({ type: 'step.exited', outcome: { kind: 'cancelled', reason: 'model' } });
      case 'WATCHDOG':
        return clock.increment(60_000);
    }
  };
  const state = () => {
    const value = actor.getSnapshot().value;
    return typeof value === 'string' ? value : Object.keys(value)[0];
  };
  return { send, state, stepIndex: () => actor.getSnapshot().context.stepIndex };
}

describe('run machine, model-based', () => {
  const paths = getSimplePaths(model);
  const events = (path: (typeof paths)[number]) =>
    path.steps
      .map((step) => step.event.type)
      .filter((type): type is ModelEvent => !type.startsWith('xstate.'));

  it('the generated paths reach every state and take every transition of the model', () => {
    const reached = new Set(paths.map((path) => String(path.state.value)));
    expect([...reached].sort()).toEqual(Object.keys(model.config.states ?? {}).sort());
    const taken = new Set<string>();
    for (const path of paths) {
      const walker = createActor(model).start();
      for (const event of events(path)) {
        taken.add(`${String(walker.getSnapshot().value)}:${event}`);
        walker.send({ type: event });
      }
    }
    const all = Object.entries(model.config.states ?? {}).flatMap(([state, node]) =>
      Object.keys((node as { on?: Record<string, unknown> }).on ?? {}).map((event) => `${state}:${event}`),
    );
    expect([...taken].sort()).toEqual(all.sort());
  });

  it.each(paths.map((path) => [events(path).join(' → ') || '(initial)', path] as const))(
    'real machine follows %s',
    (_name, path) => {
      const real = realRun();
      const walker = createActor(model).start();
      expect(real.state()).toBe(publicState(String(walker.getSnapshot().value)));
      for (const event of events(path)) {
        walker.send({ type: event });
        real.send(event);
        const expected = String(walker.getSnapshot().value);
        expect(real.state(), `after ${event}`).toBe(publicState(expected));
        // The run must also stand at the model's step, not merely in the same kind of state.
        const step = stepOf(expected);
        if (step !== undefined) expect(real.stepIndex(), `step after ${event}`).toBe(step);
      }
    },
  );
});
