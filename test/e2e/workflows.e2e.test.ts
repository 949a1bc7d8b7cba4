/**
 * `workflows list` and `workflows show` of the built CLI against a real daemon, in a copy of the
 * sample project with a broken workflow and one with a secret input added: what can run, what
 * each takes (inputs, steps, a run step's retry policy and declared outputs), every problem of one
 * that does not load, and files read as they are now.
 */
import { cpSync, mkdirSync, realpathSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { RunDetail } from '../../src/protocol/runs.js';
import type { WorkflowDetail, WorkflowsListResult } from '../../src/protocol/workflows.js';
import {
  assertBuilt,
  type CliResult,
  destroyProject,
  makeProject,
  parseJson,
  repoRoot,
  runCli,
} from '../support/cli.js';

const projects: string[] = [];

beforeAll(() => assertBuilt());
afterEach(() => {
  for (const root of projects.splice(0)) destroyProject(root);
});

function writeWorkflow(root: string, id: string, manifest: string, plan: string): void {
  const dir = join(root, 'workflows', id);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'manifest.yml'), manifest);
  writeFileSync(join(dir, 'plan.yml'), plan);
}

async function startedProject(): Promise<string> {
  const root = realpathSync(makeProject());
  projects.push(root);
  cpSync(join(repoRoot, 'examples/hello/workflows'), join(root, 'workflows'), { recursive: true });
  writeWorkflow(
    root,
    'broken',
    'id: broken\nname: Broken\ninputs:\n  x: {type: nope}\n',
    'steps:\n  - id: a\n',
  );
  writeWorkflow(
    root,
    'deploy',
    [
      'id: deploy',
      'name: Deploy',
      'inputs:',
      '  token: {type: secret, required: true, description: API token}',
      '  env: {type: enum, values: [staging, prod], default: staging}',
      '',
    ].join('\n'),
    [
      'steps:',
      '  - id: push',
      '    run: echo pushing',
      '    timeout: 2m',
      '    retry_on_restart: true',
      '    retry: {limit: 2, delay: 5s, on: [75, timeout]}',
      '    outputs:',
      '      version: {type: string, required: true, description: The pushed version}',
      '      replicas: {type: integer, default: 1}',
      '',
    ].join('\n'),
  );
  const started = await runCli(['start', '--project-path', root]);
  expect(started.code).toBe(0);
  return root;
}

const cli = (root: string, args: readonly string[]): Promise<CliResult> =>
  runCli([...args, '--project-path', root]);

describe('workflows list and show', () => {
  it('lists every workflow, whether it loads and its first problem', async () => {
    const root = await startedProject();
    const text = await cli(root, ['workflows', 'list']);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^greet\s+Greet someone\s+yes\s+2\s+4\s*$/m);
    expect(text.stdout).toMatch(/^broken\s+-\s+no\s+-\s+-\s+INVALID_WORKFLOW: /m);
    expect(text.stdout).toContain(`details: charter-daemon workflows show ID --project-path ${root}`);

    const json = await cli(root, ['workflows', 'list', '--json']);
    expect(json.code).toBe(0);
    const list = parseJson<WorkflowsListResult>(json.stdout);
    expect(list.omitted).toBe(0);
    expect(list.workflows.map((w) => w.id)).toEqual([
      'broken',
      'deploy',
      'fail',
      'greet',
      'py',
      'release',
      'slow',
    ]);
    const broken = list.workflows.find((w) => w.id === 'broken');
    expect(broken).toMatchObject({ loads: false, name: null, inputs: null, steps: null });
    expect(broken?.error?.code).toBe('INVALID_WORKFLOW');
    expect(list.workflows.find((w) => w.id === 'deploy')).toMatchObject({
      loads: true,
      name: 'Deploy',
      inputs: 2,
      steps: 1,
      error: null,
    });
  });

  it('shows inputs with types, defaults, required and secret, and steps by kind', async () => {
    const root = await startedProject();
    const text = await cli(root, ['workflows', 'show', 'greet']);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain('workflow greet: Greet someone');
    expect(text.stdout).toMatch(/^\s+shout\s+boolean\s+optional\s+false\s+Upper-case the greeting$/m);
    expect(text.stdout).toMatch(
      /^\s+3\s+details\s+input\s+"Anything to add\?"; fields: note \(string\), count \(integer, required\)$/m,
    );
    expect(text.stdout).toContain(
      `run it: charter-daemon run greet --input name=VALUE --project-path ${root}`,
    );

    const json = await cli(root, ['workflows', 'show', 'deploy', '--json']);
    expect(json.code).toBe(0);
    const deploy = parseJson<WorkflowDetail>(json.stdout);
    expect(deploy.inputs.token).toEqual({
      type: 'secret',
      required: true,
      description: 'API token',
      values: null,
    });
    expect(deploy.inputs.env).toMatchObject({
      type: 'enum',
      values: ['staging', 'prod'],
      default: 'staging',
    });
    expect(deploy.steps).toEqual([
      {
        id: 'push',
        kind: 'run',
        timeout_ms: 120_000,
        runtime: null,
        retry_on_restart: true,
        retry: { limit: 2, delay_ms: 5000, backoff: 2, max_delay_ms: 3_600_000, on: ['timeout', 75] },
        outputs: {
          version: { type: 'string', required: true, description: 'The pushed version', values: null },
          replicas: { type: 'integer', required: false, description: null, values: null, default: 1 },
        },
      },
    ]);
    const deployText = await cli(root, ['workflows', 'show', 'deploy']);
    expect(deployText.stdout).toMatch(/^\s+token\s+secret\s+required\s+-\s+API token$/m);
    expect(deployText.stdout).toMatch(
      /^\s+1\s+push\s+run\s+timeout 2m 0s, retry up to 2× on timeout, 75 \(wait 5\.0s, ×2, at most 1h 0m\), retried after a daemon restart, outputs: version \(string, required\), replicas \(integer\)$/m,
    );
    // A run step that declares no outputs: null (it may write any names, all strings).
    const greet = parseJson<WorkflowDetail>(
      (await cli(root, ['workflows', 'show', 'greet', '--json'])).stdout,
    );
    expect(greet.steps.filter((step) => step.kind === 'run').map((step) => step.outputs)).toEqual([
      null,
      null,
    ]);
  });

  it('a workflow that does not load: INVALID_WORKFLOW with every problem; an unknown one lists the known', async () => {
    const root = await startedProject();
    const broken = await cli(root, ['workflows', 'show', 'broken']);
    expect(broken.code).toBe(2);
    expect(broken.stderr).toContain('code: INVALID_WORKFLOW');
    expect(broken.stderr).toContain('manifest.yml: inputs.x.type');
    expect(broken.stderr).toContain('plan.yml: steps.0: a step needs exactly one of run, gate, input');

    const unknown = await cli(root, ['workflows', 'show', 'nope', '--json']);
    expect(unknown.code).toBe(2);
    const { error } = parseJson<{ error: { code: string; message: string } }>(unknown.stdout);
    expect(error.code).toBe('UNKNOWN_WORKFLOW');
    expect(error.message).toContain('known workflows: broken, deploy, fail, greet, py, release, slow');
  });

  it('reads the files as they are now: a fixed workflow loads, an edited one shows its new name', async () => {
    const root = await startedProject();
    expect((await cli(root, ['workflows', 'show', 'broken'])).code).toBe(2);
    writeWorkflow(root, 'broken', 'id: broken\nname: Fixed\n', 'steps:\n  - id: a\n    run: "true"\n');
    const fixed = parseJson<WorkflowDetail>(
      (await cli(root, ['workflows', 'show', 'broken', '--json'])).stdout,
    );
    expect(fixed.name).toBe('Fixed');
    const list = parseJson<WorkflowsListResult>((await cli(root, ['workflows', 'list', '--json'])).stdout);
    expect(list.workflows.find((w) => w.id === 'broken')).toMatchObject({
      loads: true,
      name: 'Fixed',
      steps: 1,
    });
  });

  it('the sample release workflow: a retried build hands its package to publish across the gate', async () => {
    const root = await startedProject();
    const waiting = await cli(root, ['run', 'release', '--input', 'version=2.0.1', '--wait']);
    expect(waiting.code).toBe(0);
    expect(waiting.stdout).toContain('step.retrying build: attempt 1 failed (step_failed: exit code 75)');
    expect(waiting.stdout).toContain('outputs: package="dist/app-2.0.1.tgz", size=18432');
    const runId = /run (r[0-9A-Z]{26}) waiting at step "confirm"/.exec(waiting.stdout)?.[1] ?? '';
    expect(runId).not.toBe('');
    expect((await cli(root, ['resume', runId, '--approve'])).code).toBe(0);
    const logs = await cli(root, ['logs', runId, '--follow']);
    expect(logs.stdout).toContain('Publishing dist/app-2.0.1.tgz (18432 bytes).');
    const run = parseJson<RunDetail>((await cli(root, ['runs', 'show', runId, '--json'])).stdout);
    expect(run.state).toBe('succeeded');
    expect(run.steps.map((step) => [step.id, step.attempt])).toEqual([
      ['build', 2],
      ['confirm', 1],
      ['publish', 1],
    ]);
  });

  it('without a daemon: DAEMON_NOT_RUNNING, exit 3', async () => {
    const root = realpathSync(makeProject());
    projects.push(root);
    const result = await cli(root, ['workflows', 'list']);
    expect(result.code).toBe(3);
    expect(result.stderr).toContain('DAEMON_NOT_RUNNING');
  });
});
