import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { CharterError } from '../../src/errors/charter-error.js';
import {
  MAX_PROMPT_CHARS,
  MAX_VALUE_CHARS,
  MAX_WORKFLOW_FILE_BYTES,
} from '../../src/protocol/field-limits.js';
import { WorkflowCatalog } from '../../src/workflow/catalog.js';
import type { RunStep, Step, Workflow } from '../../src/workflow/definition.js';
import { listWorkflowIds, loadWorkflow } from '../../src/workflow/load.js';

const EXAMPLE = fileURLToPath(new URL('../../examples/hello', import.meta.url));

const dirs: string[] = [];
function project(): string {
  const dir = mkdtempSync(join(tmpdir(), 'cdw-'));
  dirs.push(dir);
  writeFileSync(join(dir, 'charter.yml'), 'name: t\n');
  return dir;
}
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function writeWorkflow(root: string, id: string, manifest: string | null, plan: string | null): string {
  const dir = join(root, 'workflows', id);
  mkdirSync(dir, { recursive: true });
  if (manifest !== null) writeFileSync(join(dir, 'manifest.yml'), manifest);
  if (plan !== null) writeFileSync(join(dir, 'plan.yml'), plan);
  return dir;
}

function loadError(root: string, id: string): CharterError {
  try {
    loadWorkflow(root, id);
  } catch (error) {
    if (error instanceof CharterError) return error;
    throw error;
  }
  throw new Error('expected an error');
}

const MANIFEST = 'id: wf\nname: A workflow\n';
const PLAN = 'steps:\n  - id: a\n    run: echo hi\n';

/** The INVALID_WORKFLOW message of a workflow `wf` made of these files. */
function problemsOf(manifest: string, plan: string): { root: string; message: string } {
  const root = project();
  writeWorkflow(root, 'wf', manifest, plan);
  const error = loadError(root, 'wf');
  expect(error.code).toBe('INVALID_WORKFLOW');
  return { root, message: error.message };
}

describe('the example project', () => {
  it('lists the five sample workflows', () => {
    expect(listWorkflowIds(EXAMPLE)).toEqual(['fail', 'greet', 'py', 'release', 'slow']);
  });

  it('loads every sample workflow', () => {
    for (const id of listWorkflowIds(EXAMPLE)) {
      const workflow = loadWorkflow(EXAMPLE, id);
      expect(workflow.id).toBe(id);
      expect(workflow.dir).toBe(join(EXAMPLE, 'workflows', id));
      expect(isAbsolute(workflow.dir)).toBe(true);
      expect(workflow.steps.length).toBeGreaterThan(0);
    }
  });

  it('reads greet into the definition types', () => {
    const greet = loadWorkflow(EXAMPLE, 'greet');
    expect(greet.name).toBe('Greet someone');
    expect(greet.inputs).toEqual({
      name: { type: 'string', required: true, description: 'Who to greet', values: null },
      shout: {
        type: 'boolean',
        required: false,
        default: false,
        description: 'Upper-case the greeting',
        values: null,
      },
    });
    expect(greet.steps.map((step) => [step.kind, step.id])).toEqual([
      ['run', 'compose'],
      ['gate', 'confirm'],
      ['input', 'details'],
      ['run', 'send'],
    ]);
    const [compose, confirm, details] = greet.steps;
    expect(compose).toMatchObject({
      kind: 'run',
      timeoutMs: 30_000,
      env: {},
      runtime: null,
      retryOnRestart: false,
    });
    expect(confirm).toEqual({ kind: 'gate', id: 'confirm', prompt: 'Send the greeting?' });
    expect(details).toMatchObject({
      kind: 'input',
      prompt: 'Anything to add?',
      fields: {
        note: { type: 'string', required: false, values: null },
        count: { type: 'integer', required: true, values: null },
      },
    });
    expect(loadWorkflow(EXAMPLE, 'py').steps[0]).toMatchObject({ kind: 'run', runtime: 'python' });
    expect(loadWorkflow(EXAMPLE, 'slow').steps[0]).toMatchObject({ kind: 'run', timeoutMs: 15 * 60_000 });
  });

  it("greet's run steps work in POSIX sh with the documented variables", () => {
    const greet = loadWorkflow(EXAMPLE, 'greet');
    const command = (index: number) => (greet.steps[index] as RunStep).command;
    const sh = (script: string, env: Record<string, string>) =>
      execFileSync('sh', ['-c', script], {
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
      }).toString();
    expect(sh(command(0), { CHARTER_INPUT_NAME: 'Ada', CHARTER_INPUT_SHOUT: 'false' })).toBe('Hello, Ada!\n');
    expect(sh(command(0), { CHARTER_INPUT_NAME: 'Ada', CHARTER_INPUT_SHOUT: 'true' })).toBe('HELLO, ADA!\n');
    expect(sh(command(3), { CHARTER_STEP_DETAILS_COUNT: '2' })).toBe(
      'Sending the greeting 2 time(s).\nNote: (none)\n',
    );
    expect(sh(command(3), { CHARTER_STEP_DETAILS_COUNT: '1', CHARTER_STEP_DETAILS_NOTE: 'hi' })).toContain(
      'Note: hi\n',
    );
  });

  it('freezes the whole definition', () => {
    const greet = loadWorkflow(EXAMPLE, 'greet');
    expect(Object.isFrozen(greet)).toBe(true);
    expect(Object.isFrozen(greet.inputs)).toBe(true);
    expect(Object.isFrozen(greet.inputs.name)).toBe(true);
    expect(Object.isFrozen(greet.steps)).toBe(true);
    for (const step of greet.steps) expect(Object.isFrozen(step)).toBe(true);
    const details = greet.steps[2] as Extract<Step, { kind: 'input' }>;
    expect(Object.isFrozen(details.fields)).toBe(true);
    expect(Object.isFrozen(details.fields.count)).toBe(true);
    expect(() => {
      (greet.steps as Step[]).push(details);
    }).toThrow(TypeError);
  });
});

describe('a complete workflow', () => {
  it('reads every key', () => {
    const root = project();
    writeWorkflow(
      root,
      'release-notes',
      [
        'id: release-notes',
        'name: Draft release notes',
        'description: Drafts them',
        'inputs:',
        '  tag:     { type: string, required: true, description: Git tag }',
        '  dry_run: { type: boolean, default: false }',
        '  level:   { type: enum, values: [patch, minor, major], default: patch }',
        '  retries: { type: integer, default: 1 }',
        '  ratio:   { type: number }',
      ].join('\n'),
      [
        'steps:',
        '  - id: build',
        '    run: ./scripts/build.sh "$CHARTER_INPUT_TAG"',
        '    timeout: 10m',
        '    env: { FOO: bar }',
        '    retry_on_restart: true',
        '  - id: approve',
        '    gate: { prompt: Publish these notes? }',
        '  - id: details',
        '    input:',
        '      prompt: Anything to add?',
        '      fields:',
        '        note:  { type: string }',
        '        count: { type: integer, required: true }',
        '  - id: publish',
        '    run: python scripts/publish.py',
        '    runtime: python',
        '    timeout: 45',
      ].join('\n'),
    );
    const workflow: Workflow = loadWorkflow(root, 'release-notes');
    expect(workflow.description).toBe('Drafts them');
    expect(Object.keys(workflow.inputs)).toEqual(['tag', 'dry_run', 'level', 'retries', 'ratio']);
    expect(workflow.inputs.level).toEqual({
      type: 'enum',
      required: false,
      default: 'patch',
      description: null,
      values: ['patch', 'minor', 'major'],
    });
    expect(workflow.inputs.ratio).toEqual({
      type: 'number',
      required: false,
      description: null,
      values: null,
    });
    expect(workflow.inputs.retries?.default).toBe(1);
    expect(workflow.steps[0]).toEqual({
      kind: 'run',
      id: 'build',
      command: './scripts/build.sh "$CHARTER_INPUT_TAG"',
      timeoutMs: 600_000,
      env: { FOO: 'bar' },
      runtime: null,
      retryOnRestart: true,
      outputs: null,
      retry: null,
    });
    expect(workflow.steps[3]).toMatchObject({ runtime: 'python', timeoutMs: 45_000 });
  });

  it('takes an empty optional value (`~`) as absent', () => {
    const root = project();
    writeWorkflow(
      root,
      'wf',
      'id: wf\nname: x\ndescription: ~\ninputs:\n',
      'steps:\n  - id: a\n    run: echo\n    env:\n    timeout: ~\n',
    );
    const workflow = loadWorkflow(root, 'wf');
    expect(workflow.inputs).toEqual({});
    expect(workflow.description).toBeNull();
    expect(workflow.steps[0]).toMatchObject({ env: {}, timeoutMs: null });
  });
});

describe('workflow rules', () => {
  const manifestCases: Array<[string, string, string]> = [
    ['id must equal the folder', 'id: other\nname: x\n', 'id: must equal the folder name "wf", got "other"'],
    ['name is required', 'id: wf\n', 'name: required'],
    ['name is a string', 'id: wf\nname: [a]\n', 'name: expected a string, got a list'],
    [
      'unknown top-level key',
      `${MANIFEST}nmae: x\n`,
      'nmae: unknown key (allowed: id, name, description, inputs)',
    ],
    ['inputs is a mapping', `${MANIFEST}inputs: [a]\n`, 'inputs: expected a mapping, got a list'],
    [
      'unknown key in an input',
      `${MANIFEST}inputs:\n  tag: { type: string, requried: true }\n`,
      'inputs.tag.requried: unknown key (allowed: type, required, default, description, values)',
    ],
    [
      'input types',
      `${MANIFEST}inputs:\n  tag: { type: str }\n`,
      'inputs.tag.type: expected one of string, boolean, integer, number, enum, secret, got "str"',
    ],
    ['type is required', `${MANIFEST}inputs:\n  tag: { required: true }\n`, 'inputs.tag.type: required'],
    [
      'enum needs values',
      `${MANIFEST}inputs:\n  level: { type: enum }\n`,
      'inputs.level.values: an enum needs a non-empty list of values',
    ],
    [
      'enum needs non-empty values',
      `${MANIFEST}inputs:\n  level: { type: enum, values: [] }\n`,
      'inputs.level.values: an enum needs a non-empty list of values',
    ],
    [
      'enum values are strings',
      `${MANIFEST}inputs:\n  level: { type: enum, values: [a, 2] }\n`,
      'inputs.level.values.1: expected a string, got 2',
    ],
    [
      'enum values are unique',
      `${MANIFEST}inputs:\n  level: { type: enum, values: [a, b, a] }\n`,
      'inputs.level.values.2: duplicate value "a"',
    ],
    [
      'values only on enum',
      `${MANIFEST}inputs:\n  tag: { type: string, values: [a] }\n`,
      'inputs.tag.values: only allowed with type enum (this is string)',
    ],
    [
      'string default',
      `${MANIFEST}inputs:\n  tag: { type: string, default: 3 }\n`,
      'inputs.tag.default: expected a string (the type is string), got 3',
    ],
    [
      'boolean default',
      `${MANIFEST}inputs:\n  dry: { type: boolean, default: "yes" }\n`,
      'inputs.dry.default: expected true or false (the type is boolean), got "yes"',
    ],
    [
      'integer default',
      `${MANIFEST}inputs:\n  n: { type: integer, default: 1.5 }\n`,
      'inputs.n.default: expected an integer (the type is integer), got 1.5',
    ],
    [
      'integer default given as text',
      `${MANIFEST}inputs:\n  n: { type: integer, default: "3" }\n`,
      'inputs.n.default: expected an integer (the type is integer), got "3"',
    ],
    [
      'number default',
      `${MANIFEST}inputs:\n  r: { type: number, default: x }\n`,
      'inputs.r.default: expected a number (the type is number), got "x"',
    ],
    [
      'enum default',
      `${MANIFEST}inputs:\n  level: { type: enum, values: [patch, minor], default: major }\n`,
      'inputs.level.default: must be one of patch, minor, got "major"',
    ],
    [
      'required with a default',
      `${MANIFEST}inputs:\n  tag: { type: string, required: true, default: v1 }\n`,
      'inputs.tag.default: a required value cannot have a default',
    ],
    [
      'required is a boolean',
      `${MANIFEST}inputs:\n  tag: { type: string, required: "yes" }\n`,
      'inputs.tag.required: expected true or false, got "yes"',
    ],
    [
      'input names',
      `${MANIFEST}inputs:\n  1tag: { type: string }\n`,
      'inputs.1tag: a name starts with a letter',
    ],
    [
      'input names that give the same variable',
      `${MANIFEST}inputs:\n  dry-run: { type: boolean }\n  dry_run: { type: boolean }\n`,
      'inputs.dry_run: becomes CHARTER_INPUT_DRY_RUN like input "dry-run"',
    ],
    ['the manifest is a mapping', '- a\n- b\n', '(root): expected a mapping, got a list'],
    ['the manifest is not empty', '', 'the file is empty'],
    ['the manifest is YAML', 'id: [wf\n', 'not valid YAML'],
    ['no duplicate keys', 'id: wf\nid: wf\nname: x\n', 'not valid YAML: Map keys must be unique'],
  ];

  it.each(manifestCases)('manifest: %s', (_rule, manifest, expected) => {
    const { root, message } = problemsOf(manifest, PLAN);
    expect(message).toContain(`${join(root, 'workflows', 'wf', 'manifest.yml')}: ${expected}`);
  });

  const step = (yaml: string) => `steps:\n  - id: a\n${yaml}`;
  const planCases: Array<[string, string, string]> = [
    ['steps are required', 'other: 1\n', 'steps: required'],
    ['at least one step', 'steps: []\n', 'steps: a plan needs at least one step'],
    ['steps is a list', 'steps: { a: 1 }\n', 'steps: expected a list, got a mapping'],
    ['unknown top-level key', `${PLAN}stpes: []\n`, 'stpes: unknown key (allowed: steps)'],
    [
      'a step needs a kind',
      step('    timeout: 1m\n'),
      'steps.0: a step needs exactly one of run, gate, input',
    ],
    [
      'a step has only one kind',
      step('    run: echo\n    gate: { prompt: ok? }\n'),
      'steps.0: a step has exactly one of run, gate, input (this one has run and gate)',
    ],
    ['step id is required', 'steps:\n  - run: echo\n', 'steps.0.id: required'],
    [
      'step id rule',
      'steps:\n  - id: -a\n    run: echo\n',
      'steps.0.id: an id starts with a letter or digit',
    ],
    ['step id without slashes', 'steps:\n  - id: a/b\n    run: echo\n', 'steps.0.id: an id starts with'],
    [
      'step ids are unique',
      `${PLAN}  - id: b\n    run: echo\n  - id: a\n    gate: { prompt: p }\n`,
      'steps.2.id: duplicate step id "a" (also steps.0.id)',
    ],
    ['run is a string', step('    run: 3\n'), 'steps.0.run: expected a string, got 3'],
    ['run is not empty', step('    run: "  "\n'), 'steps.0.run: must not be empty'],
    ['run is not null', step('    run:\n'), 'steps.0.run: expected a string, got nothing'],
    [
      'unknown step key',
      step('    run: echo\n    tiemout: 1m\n'),
      'steps.0.tiemout: unknown key (allowed: id, run',
    ],
    [
      'runtime is python',
      step('    run: echo\n    runtime: node\n'),
      'steps.0.runtime: expected python, got "node"',
    ],
    [
      'runtime only on run steps',
      step('    gate: { prompt: ok? }\n    runtime: python\n'),
      'steps.0.runtime: only allowed on run steps (this is a gate step)',
    ],
    [
      'timeout only on run steps',
      step('    input: { prompt: p, fields: { x: { type: string } } }\n    timeout: 1m\n'),
      'steps.0.timeout: only allowed on run steps (this is a input step)',
    ],
    [
      'timeout format',
      step('    run: echo\n    timeout: 10 minutes\n'),
      'steps.0.timeout: expected a duration',
    ],
    ['timeout above 0', step('    run: echo\n    timeout: 0s\n'), 'steps.0.timeout: expected a duration'],
    [
      'timeout at most 7 days',
      step('    run: echo\n    timeout: 169h\n'),
      'steps.0.timeout: expected a duration',
    ],
    [
      'timeout not negative',
      step('    run: echo\n    timeout: -5\n'),
      'steps.0.timeout: expected a duration',
    ],
    [
      'env values are strings',
      step('    run: echo\n    env: { FOO: 1 }\n'),
      'steps.0.env.FOO: expected a string, got 1',
    ],
    [
      'env is a mapping',
      step('    run: echo\n    env: [FOO]\n'),
      'steps.0.env: expected a mapping, got a list',
    ],
    [
      'env names',
      step('    run: echo\n    env: { 1X: a }\n'),
      'steps.0.env.1X: an environment variable name is letters',
    ],
    [
      'CHARTER_ variables are the daemon’s',
      step('    run: echo\n    env: { CHARTER_RUN_ID: a }\n'),
      'steps.0.env.CHARTER_RUN_ID: names starting with CHARTER_ are set by the daemon',
    ],
    [
      'retry_on_restart is a boolean',
      step('    run: echo\n    retry_on_restart: "yes"\n'),
      'steps.0.retry_on_restart: expected true or false, got "yes"',
    ],
    [
      'gate prompt is a string',
      step('    gate: { prompt: 3 }\n'),
      'steps.0.gate.prompt: expected a string, got 3',
    ],
    ['gate prompt is required', step('    gate: {}\n'), 'steps.0.gate.prompt: required'],
    ['gate is a mapping', step('    gate: ok?\n'), 'steps.0.gate: expected a mapping, got "ok?"'],
    [
      'unknown gate key',
      step('    gate: { promt: ok? }\n'),
      'steps.0.gate.promt: unknown key (allowed: prompt)',
    ],
    ['input fields are required', step('    input: { prompt: p }\n'), 'steps.0.input.fields: required'],
    [
      'an input step has fields',
      step('    input: { prompt: p, fields: {} }\n'),
      'steps.0.input.fields: an input step needs at least one field',
    ],
    [
      'input field types',
      step('    input: { prompt: p, fields: { n: { type: int } } }\n'),
      'steps.0.input.fields.n.type: expected one of string, boolean, integer, number, enum, secret, got "int"',
    ],
    [
      'input field defaults',
      step('    input: { prompt: p, fields: { n: { type: integer, default: x } } }\n'),
      'steps.0.input.fields.n.default: expected an integer',
    ],
    [
      'unknown input key',
      step('    input: { prompt: p, fields: { n: { type: string } }, title: t }\n'),
      'steps.0.input.title: unknown key (allowed: prompt, fields)',
    ],
    [
      'answers that give the same variable',
      'steps:\n  - id: a-b\n    input: { prompt: p, fields: { c: { type: string } } }\n' +
        '  - id: a\n    input: { prompt: p, fields: { b_c: { type: string } } }\n',
      'steps.1.input.fields.b_c: becomes CHARTER_STEP_A_B_C like steps.0.input.fields.c',
    ],
    ['the plan is YAML', 'steps:\n\t- id: a\n', 'not valid YAML: Tabs are not allowed'],
  ];

  it.each(planCases)('plan: %s', (_rule, plan, expected) => {
    const { root, message } = problemsOf(MANIFEST, plan);
    expect(message).toContain(`${join(root, 'workflows', 'wf', 'plan.yml')}: ${expected}`);
  });

  it('lists every problem of both files at once', () => {
    const { root, message } = problemsOf(
      'id: wf\nname: 3\ninputs:\n  a: { type: enum }\n  b: { type: string, extra: 1 }\n',
      'steps:\n  - id: x\n    gate: { prompt: 3 }\n  - id: x\n    run: echo\n    timeout: soon\n',
    );
    const manifest = join(root, 'workflows', 'wf', 'manifest.yml');
    const plan = join(root, 'workflows', 'wf', 'plan.yml');
    const expected = [
      `${manifest}: name: expected a string, got 3`,
      `${manifest}: inputs.a.values: an enum needs a non-empty list of values`,
      `${manifest}: inputs.b.extra: unknown key`,
      `${plan}: steps.0.gate.prompt: expected a string, got 3`,
      `${plan}: steps.1.id: duplicate step id "x"`,
      `${plan}: steps.1.timeout: expected a duration`,
    ];
    for (const line of expected) expect(message).toContain(`  - ${line}`);
    expect(message).toContain('workflow "wf" is invalid (6 problems):');
  });

  it('lists a YAML error of one file with the problems of the other', () => {
    const { message } = problemsOf('id: [wf\n', 'steps: []\n');
    expect(message).toContain('manifest.yml: not valid YAML');
    expect(message).toContain('plan.yml: steps: a plan needs at least one step');
  });
});

/** A YAML "billion laughs": 9 levels of 9 aliases each, 9^9 strings once expanded. */
const ALIAS_BOMB = [
  'a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]',
  ...'bcdefghi'.split('').map((name, index) => {
    const previous = 'abcdefghi'[index];
    return `${name}: &${name} [${Array(9).fill(`*${previous}`).join(', ')}]`;
  }),
].join('\n');

describe('hostile workflow files', () => {
  it('reports a YAML alias bomb in plan.yml or manifest.yml as INVALID_WORKFLOW naming the file', () => {
    const plan = problemsOf(MANIFEST, `${PLAN}${ALIAS_BOMB}\n`);
    expect(plan.message).toContain(
      `${join(plan.root, 'workflows', 'wf', 'plan.yml')}: not valid YAML: its aliases (*name) expand more than 100 times`,
    );
    const manifest = problemsOf(`${MANIFEST}${ALIAS_BOMB}\n`, PLAN);
    expect(manifest.message).toContain(
      `${join(manifest.root, 'workflows', 'wf', 'manifest.yml')}: not valid YAML`,
    );
  });

  it('still takes a few aliases', () => {
    const root = project();
    writeWorkflow(
      root,
      'wf',
      MANIFEST,
      'steps:\n  - id: a\n    run: &cmd echo hi\n  - id: b\n    run: *cmd\n',
    );
    expect(loadWorkflow(root, 'wf').steps).toHaveLength(2);
  });

  it('refuses a file over 256 KiB by its size, naming the file and the limit; takes one of exactly 256 KiB', () => {
    const root = project();
    const dir = writeWorkflow(root, 'wf', MANIFEST, PLAN);
    const atLimit = `${PLAN}#`.padEnd(MAX_WORKFLOW_FILE_BYTES - 1, 'x');
    writeFileSync(join(dir, 'plan.yml'), `${atLimit}\n`);
    expect(loadWorkflow(root, 'wf').steps).toHaveLength(1);

    writeFileSync(join(dir, 'plan.yml'), `${atLimit}x\n`);
    const error = loadError(root, 'wf');
    expect(error.code).toBe('INVALID_WORKFLOW');
    expect(error.message).toContain(
      `${join(dir, 'plan.yml')}: the file is 256 KiB; a workflow file may be at most 256 KiB`,
    );
    writeFileSync(join(dir, 'manifest.yml'), `${MANIFEST}#${'x'.repeat(8 * 1024 * 1024)}\n`);
    const both = loadError(root, 'wf');
    expect(both.message).toContain('workflow "wf" is invalid (2 problems)');
    expect(both.message).toContain(
      `${join(dir, 'manifest.yml')}: the file is 8 MiB; a workflow file may be at most 256 KiB`,
    );
  });

  it('refuses YAML nested deeper than 64 levels, and nesting that overflows the YAML parser', () => {
    const deep = problemsOf(MANIFEST, `${PLAN}extra: ${'['.repeat(65)}1${']'.repeat(65)}\n`);
    expect(deep.message).toContain('plan.yml: nested more than 64 levels deep');
    const deeper = problemsOf(MANIFEST, `${PLAN}extra: ${'['.repeat(100_000)}${']'.repeat(100_000)}\n`);
    expect(deeper.message).toContain('plan.yml: not valid YAML');
  });

  it('bounds prompts (4 KiB) and string defaults (16 KiB)', () => {
    const prompt = problemsOf(
      MANIFEST,
      `steps:\n  - id: g\n    gate:\n      prompt: ${'p'.repeat(MAX_PROMPT_CHARS + 1)}\n`,
    );
    expect(prompt.message).toContain(`steps.0.gate.prompt: must be at most ${MAX_PROMPT_CHARS} characters`);
    const root = project();
    writeWorkflow(
      root,
      'wf',
      MANIFEST,
      `steps:\n  - id: g\n    gate:\n      prompt: ${'p'.repeat(MAX_PROMPT_CHARS)}\n`,
    );
    expect(loadWorkflow(root, 'wf').steps[0]).toMatchObject({ kind: 'gate' });

    const fallback = problemsOf(
      `${MANIFEST}inputs:\n  note: { type: string, default: ${'d'.repeat(MAX_VALUE_CHARS + 1)} }\n`,
      PLAN,
    );
    expect(fallback.message).toContain(`inputs.note.default: must be at most ${MAX_VALUE_CHARS} characters`);
  });

  it('lists the first 25 of many problems and counts the rest, each problem bounded', () => {
    const keys = [
      `long${'x'.repeat(1_010)}: 1`,
      ...Array.from({ length: 1_999 }, (_, index) => `k${index}: 1`),
    ];
    const { message } = problemsOf(`${MANIFEST}${keys.join('\n')}\n`, PLAN);
    expect(message).toContain('workflow "wf" is invalid (2,000 problems):');
    expect(message).toContain(': k23: unknown key');
    expect(message).not.toContain(': k24: unknown key');
    expect(message).toMatch(/\n {2}- … and 1,975 more$/);
    const lines = message.split('\n');
    expect(lines).toHaveLength(1 + 25 + 1);
    expect(lines[1]).toMatch(/: longxxx+…$/);
    expect(lines[1]?.length).toBeLessThanOrEqual(4 + 1000 + 1);
  });
});

describe('unknown workflows', () => {
  it('lists the known ids, sorted', () => {
    const root = project();
    writeWorkflow(root, 'zeta', MANIFEST.replace('wf', 'zeta'), PLAN);
    writeWorkflow(root, 'alpha', MANIFEST.replace('wf', 'alpha'), PLAN);
    const error = loadError(root, 'nope');
    expect(error.code).toBe('UNKNOWN_WORKFLOW');
    expect(error.message).toContain('unknown workflow "nope"');
    expect(error.message).toContain(join(root, 'workflows', 'nope'));
    expect(error.message).toContain('known workflows: alpha, zeta');
  });

  it('says where workflows live when there are none', () => {
    const root = project();
    const error = loadError(root, 'nope');
    expect(error.code).toBe('UNKNOWN_WORKFLOW');
    expect(error.message).toContain('this project has no workflows');
    expect(error.message).toContain(`${join(root, 'workflows')}/<id>/manifest.yml and plan.yml`);
  });

  it('names the missing file', () => {
    const root = project();
    writeWorkflow(root, 'wf', MANIFEST, null);
    const error = loadError(root, 'wf');
    expect(error.code).toBe('UNKNOWN_WORKFLOW');
    expect(error.message).toContain(`${join(root, 'workflows', 'wf', 'plan.yml')} does not exist`);

    writeWorkflow(root, 'other', null, PLAN);
    writeFileSync(join(root, 'workflows', 'other', 'manifest.yaml'), MANIFEST);
    const misnamed = loadError(root, 'other');
    expect(misnamed.code).toBe('UNKNOWN_WORKFLOW');
    expect(misnamed.message).toContain(
      'manifest.yml does not exist (found manifest.yaml: rename it to .yml)',
    );
  });

  it.each(['../x', 'a/b', '.hidden', '..', '', '/etc', 'a\\b', 'x'.repeat(101)])(
    'refuses the id %j before touching the file system',
    (id) => {
      const root = project();
      // Files a traversal would reach: the project root itself and a hidden workflow folder.
      writeFileSync(join(root, 'manifest.yml'), MANIFEST);
      writeFileSync(join(root, 'plan.yml'), PLAN);
      writeWorkflow(root, '.hidden', 'id: .hidden\nname: x\n', PLAN);
      mkdirSync(join(root, 'workflows', 'a', 'b'), { recursive: true });
      const error = loadError(root, id);
      expect(error.code).toBe('UNKNOWN_WORKFLOW');
      expect(error.message).toContain('is not a workflow id');
      expect(() => new WorkflowCatalog(root).get(id)).toThrow(/is not a workflow id/);
    },
  );

  it('lists only folders with a valid id and both files', () => {
    const root = project();
    writeWorkflow(root, 'b', MANIFEST, PLAN);
    writeWorkflow(root, 'a.1', MANIFEST, PLAN);
    writeWorkflow(root, '.hidden', MANIFEST, PLAN);
    writeWorkflow(root, 'no-plan', MANIFEST, null);
    writeWorkflow(root, 'no-manifest', null, PLAN);
    writeWorkflow(root, 'bad id', MANIFEST, PLAN);
    writeFileSync(join(root, 'workflows', 'file.yml'), 'x: 1\n');
    expect(listWorkflowIds(root)).toEqual(['a.1', 'b']);
    expect(listWorkflowIds(join(root, 'missing'))).toEqual([]);
  });
});

describe('WorkflowCatalog', () => {
  it('returns the same definition until a file changes, then a new one', () => {
    const root = project();
    const dir = writeWorkflow(root, 'wf', MANIFEST, PLAN);
    const catalog = new WorkflowCatalog(root);
    const first = catalog.get('wf');
    expect(catalog.get('wf')).toBe(first);

    writeFileSync(join(dir, 'plan.yml'), `${PLAN}  - id: b\n    gate: { prompt: ok? }\n`);
    const later = new Date(Date.now() + 10_000);
    utimesSync(join(dir, 'plan.yml'), later, later);
    const second = catalog.get('wf');
    expect(second).not.toBe(first);
    expect(second.steps.map((s) => s.id)).toEqual(['a', 'b']);
    expect(catalog.get('wf')).toBe(second);

    // Same size, new mtime: reloaded too.
    writeFileSync(join(dir, 'manifest.yml'), MANIFEST.replace('A workflow', 'B workflow'));
    const evenLater = new Date(Date.now() + 20_000);
    utimesSync(join(dir, 'manifest.yml'), evenLater, evenLater);
    const third = catalog.get('wf');
    expect(third).not.toBe(second);
    expect(third.name).toBe('B workflow');
    expect(catalog.list()).toEqual(['wf']);
  });

  it('reports a broken file on every get, and recovers when it is fixed', () => {
    const root = project();
    const dir = writeWorkflow(root, 'wf', MANIFEST, PLAN);
    const catalog = new WorkflowCatalog(root);
    catalog.get('wf');
    writeFileSync(join(dir, 'plan.yml'), 'steps: []\n');
    utimesSync(join(dir, 'plan.yml'), new Date(Date.now() + 10_000), new Date(Date.now() + 10_000));
    expect(() => catalog.get('wf')).toThrow(/a plan needs at least one step/);
    expect(() => catalog.get('wf')).toThrow(/a plan needs at least one step/);
    writeFileSync(join(dir, 'plan.yml'), PLAN);
    utimesSync(join(dir, 'plan.yml'), new Date(Date.now() + 20_000), new Date(Date.now() + 20_000));
    expect(catalog.get('wf').steps).toHaveLength(1);

    unlinkSync(join(dir, 'plan.yml'));
    expect(() => catalog.get('wf')).toThrow(CharterError);
    try {
      catalog.get('wf');
    } catch (error) {
      expect((error as CharterError).code).toBe('UNKNOWN_WORKFLOW');
    }
    expect(catalog.list()).toEqual([]);
  });
});
