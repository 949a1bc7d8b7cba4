/**
 * Runs across a daemon crash (kill -9) and the project runtime: the real daemon, its real store
 * and real step processes, driven over the real control socket.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import * as z from 'zod/mini';
import { ControlConnection } from '../../src/client/connection.js';
import { daemonPaths } from '../../src/project/paths.js';
import type { RunDetail } from '../../src/protocol/runs.js';
import {
  assertBuilt,
  daemonPids,
  destroyProject,
  makeProject,
  repoRoot,
  runCli,
  waitUntil,
} from '../support/cli.js';
import { pollUntil } from '../support/wait.js';

const anything = z.unknown();
const projects: string[] = [];
const connections: ControlConnection[] = [];

beforeAll(() => assertBuilt());
afterEach(() => {
  for (const connection of connections.splice(0)) connection.close();
  for (const root of projects.splice(0)) destroyProject(root);
});

function project(extraWorkflows: Record<string, { manifest: string; plan: string }> = {}): string {
  const root = makeProject();
  projects.push(root);
  cpSync(join(repoRoot, 'examples/hello/workflows'), join(root, 'workflows'), { recursive: true });
  for (const [id, files] of Object.entries(extraWorkflows)) {
    mkdirSync(join(root, 'workflows', id), { recursive: true });
    writeFileSync(join(root, 'workflows', id, 'manifest.yml'), files.manifest);
    writeFileSync(join(root, 'workflows', id, 'plan.yml'), files.plan);
  }
  return root;
}

async function start(root: string): Promise<ControlConnection> {
  const result = await runCli(['start', '--project-path', root]);
  expect(result.code, result.stderr).toBe(0);
  const connection = await ControlConnection.open({
    socketPath: daemonPaths(root).socketPath,
    clientVersion: 'test',
  });
  connections.push(connection);
  return connection;
}

async function submit(
  connection: ControlConnection,
  workflowId: string,
  inputs: Record<string, unknown> = {},
) {
  const ack = (await connection.request('run.submit', { workflow_id: workflowId, inputs }, anything)) as {
    run_id: string;
  };
  return ack.run_id;
}

async function show(connection: ControlConnection, runId: string): Promise<RunDetail> {
  return (await connection.request('runs.show', { run_id: runId }, anything)) as RunDetail;
}

async function until(connection: () => ControlConnection, runId: string, check: (run: RunDetail) => boolean) {
  return pollUntil(() => show(connection(), runId), check, {
    timeoutMs: 15_000,
    what: `run ${runId} to get there`,
    everyMs: 50,
  });
}

/** Processes (not zombies) whose environment names this run. */
function runProcesses(runId: string): number[] {
  const found: number[] = [];
  for (const pid of readdirPids()) {
    try {
      const environ = readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0');
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z') continue;
      if (environ.includes(`CHARTER_RUN_ID=${runId}`)) found.push(pid);
    } catch {
      // gone
    }
  }
  return found;
}

function readdirPids(): number[] {
  return execFileSync('ls', ['/proc'], { encoding: 'utf8' })
    .split('\n')
    .filter((entry) => /^\d+$/.test(entry))
    .map(Number);
}

const retryWorkflow = {
  manifest: 'id: retry\nname: Retry\n',
  plan: 'steps:\n  - id: long\n    run: sleep 600\n    retry_on_restart: true\n',
};

describe('runs across a daemon crash', () => {
  it('kill -9 with runs waiting and running: waiting runs can still be approved, interrupted runs fail, nothing orphaned', async () => {
    const root = project({ retry: retryWorkflow });
    let connection = await start(root);
    const waiting = await submit(connection, 'greet', { name: 'Ana' });
    const running = await submit(connection, 'slow');
    const retried = await submit(connection, 'retry');
    await until(
      () => connection,
      waiting,
      (run) => run.state === 'waiting',
    );
    await until(
      () => connection,
      running,
      (run) => run.state === 'running' && run.steps[0]?.state === 'running',
    );
    await until(
      () => connection,
      retried,
      (run) => run.state === 'running',
    );
    await waitUntil(() => runProcesses(running).length > 0, 5000, 'the slow step process');
    expect(runProcesses(retried).length).toBeGreaterThan(0);

    const [daemonPid] = daemonPids(root);
    process.kill(daemonPid ?? 0, 'SIGKILL');
    await waitUntil(() => daemonPids(root).length === 0, 5000, 'the daemon to die');
    // The step processes live in their own process groups: they survived the daemon…
    expect(runProcesses(running).length).toBeGreaterThan(0);

    connection.close();
    connection = await start(root);
    // …and the new daemon killed them.
    expect(runProcesses(running)).toEqual([]);

    const interrupted = await show(connection, running);
    expect(interrupted).toMatchObject({ state: 'failed', reason: 'interrupted' });
    expect(interrupted.steps[0]).toMatchObject({ state: 'interrupted' });

    // retry_on_restart: queued again and running its step a second time.
    const again = await until(
      () => connection,
      retried,
      (run) => run.state === 'running' && run.steps[0]?.state === 'running',
    );
    expect(again.steps[0]?.attempt).toBe(2);
    await waitUntil(() => runProcesses(retried).length > 0, 5000, 'the retried step process');

    // The waiting run survived and can be driven to the end.
    expect(await show(connection, waiting)).toMatchObject({
      state: 'waiting',
      waiting: { step_id: 'confirm' },
    });
    await connection.request('gate.decide', { run_id: waiting, decision: 'approve' }, anything);
    await until(
      () => connection,
      waiting,
      (run) => run.state === 'waiting' && run.waiting?.kind === 'input',
    );
    await connection.request('input.submit', { run_id: waiting, answers: { count: 1 } }, anything);
    const done = await until(
      () => connection,
      waiting,
      (run) => run.state === 'succeeded',
    );
    expect(done.answers).toEqual({ details: { count: 1 } });

    // stop: no process of a run outlives the daemon.
    const stopped = await runCli(['stop', '--timeout', '1', '--project-path', root], { timeoutMs: 30_000 });
    expect(stopped.code).toBe(0);
    expect(runProcesses(retried)).toEqual([]);
  });

  it('cancel of a long step leaves no process behind', async () => {
    const root = project();
    const connection = await start(root);
    const runId = await submit(connection, 'slow');
    await until(
      () => connection,
      runId,
      (run) => run.state === 'running' && run.steps[0]?.state === 'running',
    );
    await waitUntil(() => runProcesses(runId).length > 0, 5000, 'the step process');
    await connection.request('run.cancel', { run_id: runId }, anything);
    await until(
      () => connection,
      runId,
      (run) => run.state === 'cancelled',
    );
    expect(runProcesses(runId)).toEqual([]);
  });
});

describe('the project runtime', () => {
  it('a runtime: python step fails clearly without .charter/.venv, and runs with a real venv', async () => {
    const root = project();
    const connection = await start(root);
    const without = await submit(connection, 'py');
    const failed = await until(
      () => connection,
      without,
      (run) => run.state === 'failed',
    );
    expect(failed.reason).toContain('charter install');

    execFileSync('python3', ['-m', 'venv', join(root, '.charter', '.venv')], { stdio: 'ignore' });
    const withVenv = await submit(connection, 'py');
    const succeeded = await until(
      () => connection,
      withVenv,
      (run) => run.state !== 'queued' && run.state !== 'running',
    );
    expect(succeeded.state).toBe('succeeded');
    let output = '';
    await connection.stream('run.logs', { run_id: withVenv }, anything, (batch) => {
      for (const entry of (batch as { entries: { type: string; data: { text?: string } }[] }).entries) {
        if (entry.type === 'step.output') output += entry.data.text ?? '';
      }
      return undefined;
    });
    // sys.prefix of the venv's python is the venv itself.
    expect(output.trim()).toBe(join(root, '.charter', '.venv'));
  }, 60_000);
});
