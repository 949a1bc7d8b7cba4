/**
 * Hostile input at the edges of the built CLI and a real daemon: JSON nested thousands deep,
 * flags the parser refuses, thousands of unknown inputs, YAML alias bombs and oversized workflow
 * files, and values past their documented limits. Each must end in a clear catalogue error, with
 * the daemon still serving.
 */
import { cpSync, mkdirSync, realpathSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  assertBuilt,
  type CliResult,
  destroyProject,
  makeProject,
  parseJson,
  repoRoot,
  runCli,
} from '../support/cli.js';
import { pollUntil } from '../support/wait.js';

interface WireError {
  code: string;
  message: string;
  hint: string;
}

let root: string;

beforeAll(async () => {
  assertBuilt();
  root = realpathSync(makeProject());
  cpSync(join(repoRoot, 'examples/hello/workflows'), join(root, 'workflows'), { recursive: true });
  const started = await runCli(['start', '--project-path', root]);
  expect(started.stderr).toBe('');
  expect(started.code).toBe(0);
});

afterAll(() => {
  if (root !== undefined) destroyProject(root);
});

function cli(args: readonly string[]): Promise<CliResult> {
  return runCli([...args, '--project-path', root]);
}

/** The one JSON object a --json command printed on stdout, which must be an error. */
function jsonError(result: CliResult): WireError {
  return parseJson<{ error: WireError }>(result.stdout).error;
}

const deepObject = (depth: number): string => `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;

/** Writes workflows/<id>/ into the project; returns the path of its plan.yml. */
function writeWorkflow(id: string, manifest: string, plan: string): { manifest: string; plan: string } {
  const dir = join(root, 'workflows', id);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'manifest.yml'), manifest);
  writeFileSync(join(dir, 'plan.yml'), plan);
  return { manifest: join(dir, 'manifest.yml'), plan: join(dir, 'plan.yml') };
}

/** A YAML "billion laughs": 9 levels of 9 aliases each. */
const ALIAS_BOMB = [
  'a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]',
  ...'bcdefghi'
    .split('')
    .map((name, index) => `${name}: &${name} [${Array(9).fill(`*${'abcdefghi'[index]}`).join(', ')}]`),
].join('\n');

describe('hostile input at the CLI and the daemon', () => {
  it('refuses JSON flags nested thousands deep with INVALID_FLAG, without a stack overflow', async () => {
    const inputs = await cli(['run', 'greet', '--inputs-json', deepObject(5_000)]);
    expect(inputs.code).toBe(2);
    expect(inputs.stderr).not.toContain('RangeError');
    expect(inputs.stderr).toContain('--inputs-json: nested more than 64 levels deep');
    expect(inputs.stderr).toContain('code: INVALID_FLAG');

    const json = await cli(['run', 'greet', '--inputs-json', `{"name":${deepObject(5_000)}}`, '--json']);
    expect(json.code).toBe(2);
    expect(jsonError(json)).toMatchObject({ code: 'INVALID_FLAG' });

    const answers = await cli([
      'submit-input',
      'r01M895FFEVNRBYAD18R06K01NW',
      '--answers',
      deepObject(5_000),
    ]);
    expect(answers.code).toBe(2);
    expect(answers.stderr).toContain('--answers: nested more than 64 levels deep');
  });

  it('turns flag and argument parse errors into one INVALID_FLAG line, exit 2 (one JSON object with --json)', async () => {
    const json = await cli(['run', '-x', '--json']);
    expect(json.code).toBe(2);
    expect(json.stderr).toBe('');
    expect(jsonError(json)).toEqual({
      code: 'INVALID_FLAG',
      message: 'Nonexistent flag: -x',
      hint: 'See `charter-daemon run --help` for the flags and arguments it accepts.',
    });

    const text = await cli(['run', '-x']);
    expect(text.code).toBe(2);
    expect(text.stdout).toBe('');
    expect(text.stderr).toBe(
      'Error: Nonexistent flag: -x\n  code: INVALID_FLAG\n  next: See `charter-daemon run --help` for the flags and arguments it accepts.\n',
    );

    for (const [args, message] of [
      [['run'], 'missing argument WORKFLOW_ID'],
      [['run', 'greet', 'extra'], 'Unexpected argument: extra'],
      [
        ['runs', 'list', '--limit', '0'],
        '--limit: Expected an integer greater than or equal to 1 but received: 0',
      ],
      [['stop', '--timeout', 'soon'], '--timeout: Expected an integer but received: soon'],
    ] as const) {
      const result = await cli([...args, '--json']);
      expect(result.code, args.join(' ')).toBe(2);
      expect(jsonError(result)).toMatchObject({ code: 'INVALID_FLAG', message });
    }
  });

  it('reports a YAML alias bomb as INVALID_WORKFLOW naming the file, not INTERNAL', async () => {
    const files = writeWorkflow(
      'bomb',
      `id: bomb\nname: Bomb\n${ALIAS_BOMB}\n`,
      'steps:\n  - id: a\n    run: echo\n',
    );
    const result = await cli(['run', 'bomb', '--json']);
    expect(result.code).toBe(2);
    const error = jsonError(result);
    expect(error.code).toBe('INVALID_WORKFLOW');
    expect(error.message).toContain(
      `${files.manifest}: not valid YAML: its aliases (*name) expand more than 100 times`,
    );
  });

  it('refuses an 8 MiB plan.yml by its size while a concurrent status still answers', async () => {
    const step = '  - id: s\n    run: echo hello\n';
    const files = writeWorkflow(
      'huge',
      'id: huge\nname: Huge\n',
      `steps:\n${step.repeat((8 * 1024 * 1024) / step.length)}`,
    );
    const [run, status] = await Promise.all([cli(['run', 'huge', '--json']), cli(['status', '--json'])]);
    expect(run.code).toBe(2);
    const error = jsonError(run);
    expect(error.code).toBe('INVALID_WORKFLOW');
    expect(error.message).toContain(
      `${files.plan}: the file is 8 MiB; a workflow file may be at most 256 KiB`,
    );
    expect(status.code).toBe(0);
    expect(parseJson<{ state: string }>(status.stdout).state).toBe('serving');
  });

  it('answers 2,000 unknown inputs with a bounded INVALID_INPUTS the CLI shows, not BAD_RESPONSE', async () => {
    const inputs: Record<string, string> = { name: 'Ana' };
    for (let index = 0; index < 2_000; index++)
      inputs[`unknown_input_${String(index).padStart(4, '0')}`] = 'x';
    const json = await cli(['run', 'greet', '--inputs-json', JSON.stringify(inputs), '--json']);
    expect(json.code).toBe(2);
    const error = jsonError(json);
    expect(error.code).toBe('INVALID_INPUTS');
    expect(Buffer.byteLength(error.message)).toBeLessThan(64 * 1024);
    expect(error.message).toContain('unknown_input_0000: unknown input (known: name, shout)');
    expect(error.message).toContain('… and 1,975 more');

    const text = await cli(['run', 'greet', '--inputs-json', JSON.stringify(inputs)]);
    expect(text.code).toBe(2);
    expect(text.stderr).toContain('code: INVALID_INPUTS');
    expect(text.stderr).toContain('  - … and 1,975 more');
  });

  it('refuses values past their limits: an input value, all inputs, a gate comment', async () => {
    const value = await cli(['run', 'greet', '--input', `name=${'n'.repeat(17_000)}`, '--json']);
    expect(value.code).toBe(2);
    expect(jsonError(value)).toMatchObject({
      code: 'INVALID_INPUTS',
      message: expect.stringContaining('name: a value is at most 16,384 characters, got 17,000'),
    });

    const all = await cli([
      'run',
      'greet',
      '--input',
      'name=Ana',
      '--input',
      `shout=${' '.repeat(70_000)}no`,
      '--json',
    ]);
    expect(all.code).toBe(1);
    expect(jsonError(all)).toMatchObject({
      code: 'INVALID_PARAMS',
      message: expect.stringContaining('inputs: at most 65536 bytes as JSON (64 KiB)'),
    });

    const submitted = await cli(['run', 'greet', '--input', 'name=Di', '--json']);
    expect(submitted.code).toBe(0);
    const { run_id: runId } = parseJson<{ run_id: string }>(submitted.stdout);
    await waitForGate(runId);
    const comment = await cli(['resume', runId, '--approve', '--comment', 'c'.repeat(5_000), '--json']);
    expect(comment.code).toBe(1);
    expect(jsonError(comment)).toMatchObject({
      code: 'INVALID_PARAMS',
      message: expect.stringContaining('comment: at most 4096 characters'),
    });
    // The run still waits: the refused decision changed nothing.
    const shown = await cli(['runs', 'show', runId, '--json']);
    expect(parseJson<{ state: string }>(shown.stdout).state).toBe('waiting');
    const cancel = await cli(['cancel', runId, '--reason', 'r'.repeat(1_001), '--json']);
    expect(jsonError(cancel)).toMatchObject({
      code: 'INVALID_PARAMS',
      message: expect.stringContaining('reason: at most 1000 characters'),
    });
  });
});

/** Polls `runs show` until the run waits at its gate (bounded). */
async function waitForGate(runId: string): Promise<void> {
  await pollUntil(
    async () =>
      parseJson<{ state: string; waiting: { kind: string } | null }>(
        (await cli(['runs', 'show', runId, '--json'])).stdout,
      ),
    (run) => run.state === 'waiting' && run.waiting?.kind === 'gate',
    { timeoutMs: 15_000, what: `run ${runId} to reach its gate`, everyMs: 50 },
  );
}
