/**
 * Automatic retries of a run step (`retry:` in plan.yml) through the built CLI and a real daemon:
 * a step that fails twice and then succeeds, an exit code that `on` does not cover, and a daemon
 * killed (kill -9) while a step waits to retry, which resumes the wait and runs the next attempt
 * once; step outputs across attempts (only the final attempt's reach the next step) and an
 * `invalid_outputs` failure that is not retried. Attempts are counted by the step itself, in a
 * file in the project directory.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { LogEntry, RunDetail } from '../../src/protocol/runs.js';
import {
  assertBuilt,
  daemonPids,
  destroyProject,
  makeProject,
  parseJson,
  runCli,
  waitUntil,
} from '../support/cli.js';
import { pollUntil } from '../support/wait.js';

const projects: string[] = [];
beforeAll(() => assertBuilt());
afterEach(() => {
  for (const root of projects.splice(0)) destroyProject(root);
});

/** Fails with exit code 3 until its `failures` attempts are used up, counting in `count`. */
const FLAKY = (failures: number, code = 3) =>
  `n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo "$n" > count; echo "attempt $n"; [ "$n" -gt ${failures} ] || exit ${code}`;

function project(retry: string, failures: number, code = 3): string {
  const root = makeProject();
  projects.push(root);
  const dir = join(root, 'workflows', 'flaky');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'manifest.yml'), 'id: flaky\nname: Flaky\n');
  writeFileSync(
    join(dir, 'plan.yml'),
    `steps:\n  - id: fetch\n    run: '${FLAKY(failures, code)}'\n    retry: ${retry}\n  - id: after\n    run: echo done\n`,
  );
  return root;
}

async function cli(root: string, args: string[]) {
  const result = await runCli([...args, '--project-path', root]);
  expect(result.code, result.stderr).toBe(0);
  return result.stdout;
}

async function submit(root: string): Promise<string> {
  await cli(root, ['start']);
  return parseJson<{ run_id: string }>(await cli(root, ['run', 'flaky', '--json'])).run_id;
}

const show = async (root: string, runId: string) =>
  parseJson<RunDetail>(await cli(root, ['runs', 'show', runId, '--json']));

const until = (root: string, runId: string, check: (run: RunDetail) => boolean, what: string) =>
  pollUntil(() => show(root, runId), check, { timeoutMs: 20_000, what, everyMs: 100 });

/** The run once it succeeded or failed. */
const ended = (root: string, runId: string): Promise<RunDetail> =>
  until(root, runId, (r) => r.state === 'succeeded' || r.state === 'failed', 'the run to end');

async function events(root: string, runId: string): Promise<LogEntry[]> {
  const out = await cli(root, ['logs', runId, '--json']);
  return out
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => parseJson<LogEntry>(line));
}

const data = (entry: LogEntry | undefined) => (entry?.data ?? {}) as Record<string, unknown>;
const attemptsCounted = (root: string) => Number(readFileSync(join(root, 'count'), 'utf8').trim());

describe('retries of a run step', () => {
  it('a step failing twice with a covered exit code is retried and the run succeeds', async () => {
    const root = project('{ limit: 3, delay: 200ms, backoff: 2, on: [3] }', 2);
    const runId = await submit(root);
    const run = await ended(root, runId);
    expect(run.state).toBe('succeeded');
    expect(attemptsCounted(root)).toBe(3);
    expect(run.steps[0]).toMatchObject({ state: 'succeeded', attempt: 3, exit_code: 0, retry_at: null });
    expect(run.steps[0]?.attempts).toMatchObject([
      { attempt: 1, exit_code: 3, reason: 'step_failed: exit code 3 (attempt 1 of 4)' },
      { attempt: 2, exit_code: 3, reason: 'step_failed: exit code 3 (attempt 2 of 4)' },
    ]);
    expect(run.steps[1]).toMatchObject({ state: 'succeeded', attempt: 1, attempts: [] });

    const entries = await events(root, runId);
    const fetch = entries.filter((e) => data(e).step_id === 'fetch' && e.type !== 'step.output');
    expect(fetch.map((e) => [e.type, data(e).attempt ?? data(e).exit_code])).toEqual([
      ['step.started', 1],
      ['step.finished', 3],
      ['step.retrying', 1],
      ['step.started', 2],
      ['step.finished', 3],
      ['step.retrying', 2],
      ['step.started', 3],
      ['step.finished', 0],
    ]);
    const retrying = entries.filter((e) => e.type === 'step.retrying').map(data);
    expect(retrying).toMatchObject([
      { attempt: 1, next_attempt: 2, max_attempts: 4, in_ms: 200, reason: 'step_failed: exit code 3' },
      { attempt: 2, next_attempt: 3, max_attempts: 4, in_ms: 400, reason: 'step_failed: exit code 3' },
    ]);
    // Each attempt starts no earlier than the due time its step.retrying announced.
    const started = entries.filter((e) => e.type === 'step.started' && data(e).step_id === 'fetch');
    for (const [i, announced] of retrying.entries()) {
      expect(Date.parse(started[i + 1]?.ts ?? '')).toBeGreaterThanOrEqual(
        Date.parse(String(announced.due_at)),
      );
    }

    const text = await cli(root, ['logs', runId]);
    expect(text).toContain(
      'step.retrying fetch: attempt 1 failed (step_failed: exit code 3); attempt 2 of 4 in 200ms',
    );
    const shown = await cli(root, ['runs', 'show', runId]);
    expect(shown).toContain('earlier attempts:');
    expect(shown).toMatch(/fetch\s+1\s+\S+\s+3\s+step_failed: exit code 3 \(attempt 1 of 4\)/);
  });

  it('an exit code that on does not cover fails the run at once', async () => {
    const root = project('{ limit: 3, delay: 200ms, on: [3] }', 5, 2);
    const runId = await submit(root);
    const run = await until(root, runId, (r) => r.state === 'failed', 'the run to fail');
    expect(run.reason).toBe('step_failed: exit code 2 (attempt 1 of 4)');
    expect(attemptsCounted(root)).toBe(1);
    expect((await events(root, runId)).map((e) => e.type)).not.toContain('step.retrying');
  });

  it('a daemon killed during a retry wait resumes it and runs the next attempt once', async () => {
    const root = project('{ limit: 2, delay: 3s }', 1);
    const runId = await submit(root);
    const waiting = await until(
      root,
      runId,
      (r) => r.steps[0]?.state === 'retrying',
      'the step to wait to retry',
    );
    expect(waiting.state).toBe('running');
    expect(waiting.steps[0]).toMatchObject({ attempt: 1, exit_code: 3 });
    const dueAt = Date.parse(waiting.steps[0]?.retry_at ?? '');
    expect(await cli(root, ['runs', 'show', runId])).toMatch(
      /retrying step "fetch": attempt 1 failed; attempt 2 starts at .* \((in .*|due now)\)/,
    );

    const [pid] = daemonPids(root);
    process.kill(pid ?? 0, 'SIGKILL');
    await waitUntil(() => daemonPids(root).length === 0, 5000, 'the daemon to die');
    expect(attemptsCounted(root)).toBe(1);

    await cli(root, ['start']);
    const run = await ended(root, runId);
    expect(run.state).toBe('succeeded');
    expect(attemptsCounted(root)).toBe(2); // the command ran twice: none skipped, none repeated
    const entries = await events(root, runId);
    const started = entries.filter((e) => e.type === 'step.started' && data(e).step_id === 'fetch');
    expect(started.map((e) => data(e).attempt)).toEqual([1, 2]);
    expect(Date.parse(started[1]?.ts ?? '')).toBeGreaterThanOrEqual(dueAt);
    expect(entries.filter((e) => e.type === 'run.started')).toHaveLength(1);
    expect(entries.filter((e) => e.type === 'step.retrying')).toHaveLength(1);
  });
});

/** A workflow `flaky` with the given plan (its steps' text), in a fresh project. */
function projectWithPlan(plan: string): string {
  const root = makeProject();
  projects.push(root);
  const dir = join(root, 'workflows', 'flaky');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'manifest.yml'), 'id: flaky\nname: Flaky\n');
  writeFileSync(join(dir, 'plan.yml'), plan);
  return root;
}

describe('retries and step outputs', () => {
  it('a retried attempt’s outputs are kept but not passed on; the next step sees only the final attempt’s', async () => {
    const root = projectWithPlan(
      [
        'steps:',
        '  - id: fetch',
        '    run: |',
        '      n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo "$n" > count',
        '      basename "$CHARTER_OUTPUT" >> files',
        '      if [ "$n" -eq 1 ]; then echo "version=first" >> "$CHARTER_OUTPUT"; echo "only1=yes" >> "$CHARTER_OUTPUT"; exit 3; fi',
        '      echo "version=second" >> "$CHARTER_OUTPUT"',
        '    retry: { limit: 2, delay: 200ms }',
        '  - id: after',
        '    run: |',
        '      printf "%s|%s\\n" "$CHARTER_STEP_FETCH_VERSION" "$(printenv CHARTER_STEP_FETCH_ONLY1 || echo unset)" > seen',
        '      cat "$CHARTER_CONTEXT" > context.json',
        '',
      ].join('\n'),
    );
    const runId = await submit(root);
    const run = await ended(root, runId);
    expect(run.state, run.reason ?? '').toBe('succeeded');
    // Each attempt had its own, fresh CHARTER_OUTPUT file.
    expect(readFileSync(join(root, 'files'), 'utf8')).toBe('fetch.1\nfetch.2\n');
    // The next step sees the second attempt's value only, and nothing the first alone wrote.
    expect(readFileSync(join(root, 'seen'), 'utf8')).toBe('second|unset\n');
    const context = parseJson<{ outputs: unknown }>(readFileSync(join(root, 'context.json'), 'utf8'));
    expect(context.outputs).toEqual({ fetch: { version: 'second' } });

    expect(run.steps[0]).toMatchObject({ state: 'succeeded', attempt: 2, outputs: { version: 'second' } });
    expect(run.steps[0]?.attempts).toMatchObject([
      { attempt: 1, exit_code: 3, outputs: { version: 'first', only1: 'yes' } },
    ]);
    const finished = (await events(root, runId)).filter(
      (e) => e.type === 'step.finished' && data(e).step_id === 'fetch',
    );
    expect(finished.map((e) => data(e).outputs)).toEqual([
      { version: 'first', only1: 'yes' },
      { version: 'second' },
    ]);
    const text = await cli(root, ['runs', 'show', runId]);
    expect(text).toContain(
      'fetch (attempt 1): version="first", only1="yes" (earlier attempt: not passed on)',
    );
    expect(text).toContain('fetch (attempt 2): version="second"\n');
  });

  it('invalid_outputs is not retried, even with on: any', async () => {
    const root = projectWithPlan(
      [
        'steps:',
        '  - id: fetch',
        '    run: |',
        '      n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo "$n" > count',
        '      echo "count=many" >> "$CHARTER_OUTPUT"',
        '    outputs:',
        '      count: { type: integer, required: true }',
        '    retry: { limit: 3, delay: 200ms, on: any }',
        '  - id: after',
        '    run: echo never',
        '',
      ].join('\n'),
    );
    const runId = await submit(root);
    const run = await until(root, runId, (r) => r.state === 'failed', 'the run to fail');
    expect(run.reason).toBe('invalid_outputs: count: expected an integer, got "many" (attempt 1 of 4)');
    expect(run.steps[0]).toMatchObject({ state: 'failed', exit_code: 0, attempt: 1, attempts: [] });
    expect(attemptsCounted(root)).toBe(1);
    expect((await events(root, runId)).map((e) => e.type)).not.toContain('step.retrying');
  });
});
