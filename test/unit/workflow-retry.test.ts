/** `retry:` of a run step in plan.yml: defaults, every form of `on`, and every problem reported. */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CharterError } from '../../src/errors/charter-error.js';
import type { RunStep } from '../../src/workflow/definition.js';
import { loadWorkflow } from '../../src/workflow/load.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function projectWith(plan: string): string {
  const root = mkdtempSync(join(tmpdir(), 'cdr-'));
  dirs.push(root);
  const dir = join(root, 'workflows', 'wf');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'manifest.yml'), 'id: wf\nname: A workflow\n');
  writeFileSync(join(dir, 'plan.yml'), plan);
  return root;
}

const stepWith = (retry: string) => `steps:\n  - id: a\n    run: exit 1\n    retry: ${retry}\n`;

function retryOf(retry: string): RunStep['retry'] {
  const step = loadWorkflow(projectWith(stepWith(retry)), 'wf').steps[0] as RunStep;
  return step.retry;
}

function problems(plan: string): string[] {
  try {
    loadWorkflow(projectWith(plan), 'wf');
  } catch (error) {
    expect(error).toBeInstanceOf(CharterError);
    expect((error as CharterError).code).toBe('INVALID_WORKFLOW');
    return (error as CharterError).message
      .split('\n')
      .slice(1)
      .map((line) => line.replace(/^ {2}- .*plan\.yml: /, ''));
  }
  throw new Error('expected INVALID_WORKFLOW');
}

describe('retry in plan.yml', () => {
  it('has defaults: delay 1s, backoff 2, max_delay 1h, on any', () => {
    expect(retryOf('{ limit: 3 }')).toEqual({
      limit: 3,
      delayMs: 1000,
      backoff: 2,
      maxDelayMs: 3_600_000,
      on: { anyFailure: true, exitCodes: [], timeout: false },
    });
    const step = loadWorkflow(projectWith('steps:\n  - id: a\n    run: exit 1\n'), 'wf').steps[0] as RunStep;
    expect(step.retry).toBeNull();
  });

  it('reads every key and every form of on', () => {
    expect(retryOf('{ limit: 10, delay: 5s, backoff: 1.5, max_delay: 5m, on: [1, 75] }')).toEqual({
      limit: 10,
      delayMs: 5000,
      backoff: 1.5,
      maxDelayMs: 300_000,
      on: { anyFailure: false, exitCodes: [1, 75], timeout: false },
    });
    expect(retryOf('{ limit: 1, on: timeout }')?.on).toEqual({
      anyFailure: false,
      exitCodes: [],
      timeout: true,
    });
    expect(retryOf('{ limit: 1, on: any }')?.on).toEqual({ anyFailure: true, exitCodes: [], timeout: false });
    expect(retryOf('{ limit: 1, on: 3 }')?.on).toEqual({ anyFailure: false, exitCodes: [3], timeout: false });
    expect(retryOf('{ limit: 1, on: [3, timeout] }')?.on).toEqual({
      anyFailure: false,
      exitCodes: [3],
      timeout: true,
    });
    expect(retryOf('{ limit: 1, on: [any, timeout] }')?.on).toEqual({
      anyFailure: true,
      exitCodes: [],
      timeout: true,
    });
    expect(retryOf('{ limit: 2, delay: 1h, max_delay: 1h, backoff: 1 }')).toMatchObject({
      delayMs: 3_600_000,
      maxDelayMs: 3_600_000,
      backoff: 1,
    });
  });

  it('reports every problem of a retry at once', () => {
    expect(
      problems(
        stepWith('{ limit: 0, delay: 2h, backoff: 0.5, max_delay: soon, on: [0, 256, x, 3, 3], tries: 2 }'),
      ),
    ).toEqual([
      'steps.0.retry.limit: must be at least 1 (the number of retries after the first attempt)',
      'steps.0.retry.backoff: must be at least 1 (1: the same wait every time)',
      'steps.0.retry.tries: unknown key (allowed: limit, delay, backoff, max_delay, on)',
      'steps.0.retry.delay: expected a duration such as 500ms, 5s or 2m (more than 0, at most 1h), got "2h"',
      'steps.0.retry.max_delay: expected a duration such as 500ms, 5s or 2m (more than 0, at most 1h), got "soon"',
      'steps.0.retry.on.0: expected an exit code from 1 to 255, any or timeout, got 0',
      'steps.0.retry.on.1: expected an exit code from 1 to 255, any or timeout, got 256',
      'steps.0.retry.on.2: expected an exit code from 1 to 255, any or timeout, got "x"',
      'steps.0.retry.on.4: duplicate 3',
    ]);
  });

  it('refuses a missing or too large limit, a wait past its cap, and redundant or empty on', () => {
    expect(problems(stepWith('{ delay: 1s }'))).toEqual(['steps.0.retry.limit: required']);
    expect(problems(stepWith('{ limit: 11 }'))).toEqual(['steps.0.retry.limit: must be at most 10']);
    expect(problems(stepWith('{ limit: 2.5 }'))).toEqual([
      'steps.0.retry.limit: expected an integer, got 2.5',
    ]);
    expect(problems(stepWith('{ limit: 1, backoff: 11 }'))).toEqual([
      'steps.0.retry.backoff: must be at most 10',
    ]);
    expect(problems(stepWith('{ limit: 1, delay: 10s, max_delay: 5s }'))).toEqual([
      'steps.0.retry.max_delay: must be at least delay ("10s"), got "5s"',
    ]);
    expect(problems(stepWith('{ limit: 1, on: [any, 3] }'))).toEqual([
      'steps.0.retry.on: any already retries every exit code: list either any or exit codes',
    ]);
    expect(problems(stepWith('{ limit: 1, on: [] }'))).toEqual([
      'steps.0.retry.on: must not be empty (leave on out to retry any failure)',
    ]);
    const many = `[${Array.from({ length: 33 }, (_, i) => i + 1).join(', ')}]`;
    expect(problems(stepWith(`{ limit: 1, on: ${many} }`))).toEqual([
      'steps.0.retry.on: must have at most 32 items',
    ]);
    expect(problems(stepWith('{ limit: 1, on: { code: 3 } }'))).toEqual([
      'steps.0.retry.on: expected an exit code from 1 to 255, any or timeout, or a list of them, got a mapping',
    ]);
    expect(problems(stepWith('3'))).toEqual(['steps.0.retry: expected a mapping, got 3']);
  });

  it('is refused on gates and input steps', () => {
    expect(problems('steps:\n  - id: g\n    gate: { prompt: ok? }\n    retry: { limit: 1 }\n')).toEqual([
      'steps.0.retry: only allowed on run steps (this is a gate step)',
    ]);
  });
});
