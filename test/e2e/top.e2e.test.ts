/**
 * `charter-daemon top` in a real pseudo-terminal: tmux runs the built CLI (on a tmux server of
 * its own), send-keys types, capture-pane reads the screen. A run waiting at a gate appears; `a`
 * approves it (the daemon moves it on, and the screen shows it); a resize keeps the rows; `q`
 * quits and restores the terminal. Without a terminal, `top` refuses with NOT_A_TERMINAL.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { RunJson } from '../../commands/run.js';
import type { RunDetail } from '../../src/protocol/runs.js';
import {
  assertBuilt,
  cliPath,
  destroyProject,
  makeProject,
  parseJson,
  repoRoot,
  runCli,
  waitUntil,
} from '../support/cli.js';

const hasTmux = spawnSync('tmux', ['-V']).status === 0;
if (!hasTmux) {
  // biome-ignore lint/suspicious/noConsole: a skipped test says why
  console.warn('tmux is not installed: the top tests in a pseudo-terminal are skipped (.ci/run installs it)');
}

const projects: string[] = [];
const servers: string[] = [];

beforeAll(() => assertBuilt());
afterEach(() => {
  for (const server of servers.splice(0)) spawnSync('tmux', ['-L', server, 'kill-server']);
  for (const root of projects.splice(0)) destroyProject(root);
});

async function startedProject(): Promise<string> {
  const root = realpathSync(makeProject());
  projects.push(root);
  cpSync(join(repoRoot, 'examples/hello/workflows'), join(root, 'workflows'), { recursive: true });
  const started = await runCli(['start', '--project-path', root]);
  expect(started.code).toBe(0);
  return root;
}

async function show(root: string, runId: string): Promise<RunDetail> {
  const result = await runCli(['runs', 'show', runId, '--json', '--project-path', root]);
  expect(result.code).toBe(0);
  return parseJson<RunDetail>(result.stdout);
}

/** A tmux server of our own with one window running `command`, `width` × `height`. */
function tmux(width: number, height: number, command: string) {
  const server = `cdtop-${process.pid}-${servers.length}`;
  servers.push(server);
  const run = (...args: string[]) => execFileSync('tmux', ['-L', server, ...args], { encoding: 'utf8' });
  run(
    '-f',
    '/dev/null',
    'new-session',
    '-d',
    '-s',
    'top',
    '-x',
    String(width),
    '-y',
    String(height),
    command,
  );
  run('set-option', '-t', 'top', 'remain-on-exit', 'on');
  return {
    screen: () => run('capture-pane', '-p', '-t', 'top'),
    keys: (...keys: string[]) => run('send-keys', '-t', 'top', ...keys),
    resize: (w: number, h: number) => run('resize-window', '-t', 'top', '-x', String(w), '-y', String(h)),
    show: (format: string) => run('display-message', '-p', '-t', 'top', format).trim(),
  };
}

describe('charter-daemon top', () => {
  it('refuses to run without a terminal, pointing to status and runs list', async () => {
    const root = await startedProject();
    const result = await runCli(['top', '--project-path', root]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('NOT_A_TERMINAL');
    expect(result.stderr).toContain('charter-daemon status');
    expect(result.stderr).toContain('runs list');
  });

  it.skipIf(!hasTmux)(
    'shows a run waiting at a gate; `a` approves it; a resize keeps the rows; `q` restores the terminal',
    async () => {
      const root = await startedProject();
      const submitted = await runCli([
        'run',
        'greet',
        '--input',
        'name=Ana',
        '--wait',
        '--json',
        '--project-path',
        root,
      ]);
      expect(submitted.code).toBe(0);
      const runId = parseJson<RunJson>(submitted.stdout).run_id;
      expect((await show(root, runId)).waiting?.step_id).toBe('confirm');

      const term = tmux(
        140,
        30,
        `'${process.execPath}' '${cliPath}' top --project-path '${root}'; echo "TOP-EXITED $?"; sleep 30`,
      );
      await waitUntil(() => term.screen().includes('LIVE RUNS (1)'), 15_000, 'top to draw its screen');
      const row =
        term
          .screen()
          .split('\n')
          .find((line) => line.includes(runId)) ?? '';
      expect(row).toContain('waiting');
      expect(row).toContain('gate "confirm"');
      expect(term.show('#{alternate_on}')).toBe('1');

      term.keys('a');
      // The daemon moved the run on (through the same gate.decide as `resume`)…
      let detail = await show(root, runId);
      const deadline = Date.now() + 10_000;
      while (detail.waiting?.step_id !== 'details' && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        detail = await show(root, runId);
      }
      expect(detail.waiting?.step_id).toBe('details');
      expect(detail.steps.find((step) => step.id === 'confirm')?.state).toBe('succeeded');
      // …and the screen shows it, with the command that answers the input step.
      await waitUntil(() => term.screen().includes('input "details"'), 5_000, 'the change on screen');
      expect(term.screen()).toContain(
        `submit-input ${runId} --answers '{"note": "<string>", "count": <integer>}'`,
      );

      // Narrow: columns go, the row stays.
      term.resize(60, 20);
      await waitUntil(
        () =>
          term
            .screen()
            .split('\n')
            .some((line) => line.includes(runId) && line.includes('waiting')),
        5_000,
        'the row after a resize',
      );
      for (const line of term.screen().split('\n')) expect([...line].length).toBeLessThanOrEqual(60);

      term.keys('q');
      await waitUntil(() => term.screen().includes('TOP-EXITED'), 5_000, 'top to exit');
      expect(term.screen()).toContain('TOP-EXITED 0');
      expect(term.show('#{alternate_on}')).toBe('0');
      expect(term.show('#{cursor_flag}')).toBe('1');
    },
  );
});
