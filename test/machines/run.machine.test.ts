import { describe, expect, it } from 'vitest';
import { createActor, fromCallback, SimulatedClock } from 'xstate';
import {
  type Checkpoint,
  type CommandAnswer,
  type RunPlan,
  type RunResume,
  type RunStateReport,
  runMachine,
  type StepRunnerEvent,
  type StepRunnerInput,
} from '../../machines/run.machine.js';

const plan: RunPlan = {
  id: 'greet',
  steps: [
    { id: 'build', kind: 'run' },
    { id: 'approve', kind: 'gate' },
    { id: 'details', kind: 'input' },
    { id: 'publish', kind: 'run' },
  ],
};

function harness(options: { stepIndex?: number; resume?: RunResume; attempt?: number; p?: RunPlan } = {}) {
  const checkpoints: Checkpoint[] = [];
  const reports: RunStateReport['state'][] = [];
  const answers: CommandAnswer[] = [];
  const started: StepRunnerInput[] = [];
  const cancels: StepRunnerEvent[] = [];
  const stopped: number[] = [];
  const outputs: string[] = [];
  const clock = new SimulatedClock();
  const machine = runMachine.provide({
    actors: {
      stepRunner: fromCallback<StepRunnerEvent, StepRunnerInput>(({ input, receive }) => {
        started.push(input);
        receive((event) => cancels.push(event));
        return () => stopped.push(input.stepIndex);
      }),
    },
    actions: {
      checkpoint: (_args, params) => checkpoints.push(params),
      recordOutput: (_args, params) => outputs.push(`${params.stepId}:${params.chunk.text}`),
      report: (_args, params) => reports.push(params.state),
      answer: (_args, params) => answers.push(params),
    },
  });
  const actor = createActor(machine, {
    clock,
    input: {
      runId: 'r01',
      plan: options.p ?? plan,
      stepIndex: options.stepIndex ?? 0,
      attempt: options.attempt ?? 1,
      resume: options.resume ?? 'queued',
    },
  }).start();
  const events = () =>
    checkpoints.flatMap((c) => (c.followedBy ? [c.event.type, c.followedBy.type] : [c.event.type]));
  return { actor, clock, checkpoints, reports, answers, started, cancels, stopped, outputs, events };
}

const exited = (exitCode: number) => ({
  type: 'step.exited' as const,
  outcome: { kind: 'exited' as const, exitCode },
});

describe('run machine', () => {
  it('runs a command, pauses at a gate and an input, and succeeds', () => {
    const h = harness();
    expect(h.actor.getSnapshot().value).toBe('queued');
    h.actor.send({ type: 'run.admit' });
    expect(h.actor.getSnapshot().matches({ running: 'executing' })).toBe(true);
    expect(h.started).toEqual([
      {
        runId: 'r01',
        workflowId: 'greet',
        plan,
        step: { id: 'build', kind: 'run' },
        stepIndex: 0,
        attempt: 1,
      },
    ]);
    h.actor.send({ type: 'step.output', chunk: { stream: 'stdout', text: 'hi\n' } });
    h.actor.send(exited(0));
    expect(h.stopped).toEqual([0]);
    expect(h.actor.getSnapshot().value).toBe('waiting');
    expect(h.actor.getSnapshot().context.stepIndex).toBe(1);

    h.actor.send({ type: 'gate.decide', key: 'k', stepId: null, decision: 'approve', by: 'ana' });
    expect(h.actor.getSnapshot().value).toBe('queued');
    h.actor.send({ type: 'run.admit' });
    expect(h.actor.getSnapshot().value).toBe('waiting'); // the input step
    h.actor.send({ type: 'input.submit', key: 'k', stepId: null, answers: { count: 2 } });
    h.actor.send({ type: 'run.admit' });
    expect(h.started.at(-1)).toEqual({
      runId: 'r01',
      workflowId: 'greet',
      plan,
      step: { id: 'publish', kind: 'run' },
      stepIndex: 3,
      attempt: 1,
    });
    h.actor.send(exited(0));
    expect(h.actor.getSnapshot().value).toBe('succeeded');
    expect(h.actor.getSnapshot().status).toBe('done');

    expect(h.outputs).toEqual(['build:hi\n']);
    expect(h.events()).toEqual([
      'run.started',
      'step.started',
      'step.finished',
      'run.waiting',
      'gate.decided',
      'run.waiting',
      'input.submitted',
      'step.started',
      'step.finished',
      'run.succeeded',
    ]);
    expect(h.reports).toEqual([
      'queued',
      'running',
      'waiting',
      'queued',
      'running',
      'waiting',
      'queued',
      'running',
      'succeeded',
    ]);
    const submitted = h.checkpoints.find((c) => c.event.type === 'input.submitted');
    expect(submitted?.run?.answers).toEqual({ stepId: 'details', values: { count: 2 } });
  });

  it('fails on a non-zero exit, with the exit code in the reason', () => {
    const h = harness();
    h.actor.send({ type: 'run.admit' });
    h.actor.send(exited(3));
    expect(h.actor.getSnapshot().value).toBe('failed');
    expect(h.actor.getSnapshot().context.reason).toBe('step_failed: exit code 3');
    // One transaction: the step fails and so does the run (a crash cannot split them).
    expect(h.checkpoints.at(-1)).toMatchObject({
      event: { type: 'step.finished' },
      followedBy: { type: 'run.failed' },
      run: { state: 'failed', finished: true },
      step: { idx: 0, state: 'failed', exitCode: 3 },
    });
  });

  it('records a step’s outputs with its finish, and clears them when an attempt starts', () => {
    const h = harness();
    h.actor.send({ type: 'run.admit' });
    expect(h.checkpoints.at(-1)?.step).toMatchObject({ state: 'running', outputs: null });
    h.actor.send({ ...exited(0), outputs: { values: { version: '1.2.3' }, problems: [] } });
    expect(h.actor.getSnapshot().value).toBe('waiting');
    const finished = h.checkpoints.find((c) => c.event.type === 'step.finished');
    expect(finished).toMatchObject({
      event: { data: { outcome: 'succeeded', outputs: { version: '1.2.3' } } },
      step: { state: 'succeeded', outputs: { version: '1.2.3' } },
    });
  });

  it('a step that exits 0 with invalid outputs fails with invalid_outputs, its outputs recorded', () => {
    const h = harness();
    h.actor.send({ type: 'run.admit' });
    h.actor.send({
      ...exited(0),
      outputs: { values: { count: 3 }, problems: ['line 2: expected name=value', 'version: required'] },
    });
    expect(h.actor.getSnapshot().value).toBe('failed');
    const reason = 'invalid_outputs: line 2: expected name=value; version: required';
    expect(h.actor.getSnapshot().context.reason).toBe(reason);
    expect(h.checkpoints.at(-1)).toMatchObject({
      event: {
        type: 'step.finished',
        data: { exit_code: 0, outcome: 'invalid_outputs', outputs: { count: 3 } },
      },
      followedBy: { type: 'run.failed', data: { reason } },
      step: { state: 'failed', exitCode: 0, reason, outputs: { count: 3 } },
    });
  });

  it('a step that fails for another reason keeps that reason, whatever its outputs', () => {
    const h = harness();
    h.actor.send({ type: 'run.admit' });
    h.actor.send({ ...exited(2), outputs: { values: { a: '1' }, problems: ['b: required'] } });
    expect(h.actor.getSnapshot().context.reason).toBe('step_failed: exit code 2');
    expect(h.checkpoints.at(-1)?.step).toMatchObject({ state: 'failed', outputs: { a: '1' } });
  });

  it('fails on a timeout with reason timeout', () => {
    const h = harness();
    h.actor.send({ type: 'run.admit' });
    h.actor.send({ type: 'step.exited', outcome: { kind: 'timed_out', timeoutMs: 1000 } });
    expect(h.actor.getSnapshot().value).toBe('failed');
    expect(h.actor.getSnapshot().context.reason).toMatch(/^timeout/);
  });

  it('a denied gate fails the run with gate_denied', () => {
    const h = harness({ stepIndex: 1, resume: 'waiting' });
    expect(h.actor.getSnapshot().value).toBe('waiting');
    h.actor.send({ type: 'gate.decide', key: 'k', stepId: null, decision: 'deny', comment: 'no' });
    expect(h.actor.getSnapshot().value).toBe('failed');
    expect(h.actor.getSnapshot().context.reason).toBe('gate_denied');
    expect(h.events()).toEqual(['gate.decided', 'run.failed']);
  });

  it('cancel while queued, while waiting, and while running (waits for the process)', () => {
    const queued = harness();
    queued.actor.send({ type: 'run.cancel', key: 'k', reason: 'user' });
    expect(queued.actor.getSnapshot().value).toBe('cancelled');

    const waiting = harness({ stepIndex: 1, resume: 'waiting' });
    waiting.actor.send({ type: 'run.cancel', key: 'k', reason: 'user' });
    expect(waiting.actor.getSnapshot().value).toBe('cancelled');

    const running = harness();
    running.actor.send({ type: 'run.admit' });
    running.actor.send({ type: 'run.cancel', key: 'k', reason: 'user' });
    expect(running.actor.getSnapshot().value).toBe('cancelling');
    expect(running.cancels).toEqual([{ type: 'step.cancel', reason: 'user' }]);
    running.actor.send({ type: 'step.exited', outcome: { kind: 'cancelled', reason: 'user' } });
    expect(running.actor.getSnapshot().value).toBe('cancelled');
    expect(running.stopped).toEqual([0]);
    expect(running.reports).toEqual(['queued', 'running', 'cancelling', 'cancelled']);
  });

  it('a step that never reports after a cancel is given up on by the watchdog (simulated clock)', () => {
    const h = harness();
    h.actor.send({ type: 'run.admit' });
    h.actor.send({ type: 'run.cancel', key: 'k', reason: 'user' });
    h.clock.increment(59_999);
    expect(h.actor.getSnapshot().value).toBe('cancelling');
    h.clock.increment(1);
    expect(h.actor.getSnapshot().value).toBe('cancelled');
  });

  it('ignores decisions and answers when not waiting, and admits only when queued', () => {
    const h = harness();
    h.actor.send({ type: 'gate.decide', key: 'k', stepId: null, decision: 'approve' });
    h.actor.send({ type: 'input.submit', key: 'k', stepId: null, answers: {} });
    expect(h.actor.getSnapshot().value).toBe('queued');
    h.actor.send({ type: 'run.admit' });
    h.actor.send({ type: 'run.admit' });
    expect(h.started).toHaveLength(1);
  });

  it('records run.started once, at the first admission only', () => {
    const h = harness({
      p: {
        id: 'g',
        steps: [
          { id: 'a', kind: 'gate' },
          { id: 'b', kind: 'run' },
        ],
      },
    });
    h.actor.send({ type: 'run.admit' });
    h.actor.send({ type: 'gate.decide', key: 'k', stepId: null, decision: 'approve' });
    h.actor.send({ type: 'run.admit' });
    expect(h.events().filter((type) => type === 'run.started')).toHaveLength(1);
    const restored = harness({ stepIndex: 3, resume: 'queued', attempt: 2 });
    restored.actor.send({ type: 'run.admit' });
    expect(restored.events()).not.toContain('run.started');
  });

  it('a restored run resumes waiting at its step, or queued to re-run it', () => {
    const waiting = harness({ stepIndex: 2, resume: 'waiting' });
    expect(waiting.actor.getSnapshot().value).toBe('waiting');
    expect(waiting.reports).toEqual(['waiting']);
    expect(waiting.checkpoints).toEqual([]); // nothing new to record
    const retry = harness({ stepIndex: 3, resume: 'queued', attempt: 2 });
    retry.actor.send({ type: 'run.admit' });
    expect(retry.started).toMatchObject([
      { runId: 'r01', step: { id: 'publish' }, stepIndex: 3, attempt: 2 },
    ]);
  });

  it('a workflow of gates only never starts a process', () => {
    const h = harness({ p: { id: 'g', steps: [{ id: 'a', kind: 'gate' }] } });
    h.actor.send({ type: 'run.admit' });
    h.actor.send({ type: 'gate.decide', key: 'k', stepId: null, decision: 'approve' });
    h.actor.send({ type: 'run.admit' });
    expect(h.actor.getSnapshot().value).toBe('succeeded');
    expect(h.started).toEqual([]);
  });
});

describe('run machine: every command is answered', () => {
  it('answers each command with the state it reached, and the checkpoint carries the answer', () => {
    const h = harness({ stepIndex: 1, resume: 'waiting' });
    h.actor.send({ type: 'gate.decide', key: 'g1', stepId: 'approve', decision: 'approve' });
    expect(h.answers.at(-1)).toEqual({ key: 'g1', reply: { result: { run_id: 'r01', state: 'queued' } } });
    expect(h.checkpoints.at(-1)?.answer?.key).toBe('g1');
    h.actor.send({ type: 'run.admit' });
    h.actor.send({ type: 'input.submit', key: 'i1', stepId: 'details', answers: { count: 1 } });
    expect(h.answers.at(-1)).toEqual({ key: 'i1', reply: { result: { run_id: 'r01', state: 'queued' } } });
    h.actor.send({ type: 'run.admit' });
    h.actor.send({ type: 'run.cancel', key: 'c1', reason: 'enough' });
    expect(h.answers.at(-1)).toEqual({
      key: 'c1',
      reply: { result: { run_id: 'r01', state: 'cancelling' } },
    });
    h.actor.send({ type: 'run.cancel', key: 'c2', reason: 'again' });
    expect(h.answers.at(-1)).toEqual({
      key: 'c2',
      reply: { result: { run_id: 'r01', state: 'cancelling' } },
    });
  });

  it('refuses, and answers, a decision for another step or a command it cannot take now', () => {
    const h = harness({ stepIndex: 1, resume: 'waiting' });
    h.actor.send({ type: 'input.submit', key: 'wrong-kind', stepId: null, answers: {} });
    h.actor.send({ type: 'gate.decide', key: 'wrong-step', stepId: 'details', decision: 'approve' });
    h.actor.send({ type: 'gate.decide', key: 'ok', stepId: 'approve', decision: 'deny' });
    expect(
      h.answers.map((a) => [a.key, 'error' in a.reply ? a.reply.error.code : a.reply.result.state]),
    ).toEqual([
      ['wrong-kind', 'RUN_NOT_WAITING'],
      ['wrong-step', 'RUN_NOT_WAITING'],
      ['ok', 'failed'],
    ]);
    expect(h.events()).toEqual(['gate.decided', 'run.failed']); // the refusals recorded nothing
    const queued = harness();
    queued.actor.send({ type: 'gate.decide', key: 'early', stepId: null, decision: 'approve' });
    expect(queued.answers).toMatchObject([{ key: 'early', reply: { error: { code: 'RUN_NOT_WAITING' } } }]);
    expect(queued.actor.getSnapshot().value).toBe('queued');
  });
});
