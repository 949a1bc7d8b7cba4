/**
 * Step outputs: the CHARTER_OUTPUT file format (GitHub Actions' `$GITHUB_OUTPUT` rules), its
 * bounds, reading the file as a hostile step may leave it, and checking the values against an
 * `outputs:` declaration.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { FieldSpec, Workflow } from '../../src/workflow/definition.js';
import { parseWorkflow } from '../../src/workflow/load.js';
import {
  checkOutputs,
  parseOutputText,
  readOutputFile,
  readStepOutputs,
  takenVariables,
} from '../../src/workflow/step-outputs.js';

const spec = (type: FieldSpec['type'], extra: Partial<FieldSpec> = {}): FieldSpec => ({
  type,
  required: false,
  description: null,
  values: type === 'enum' ? ['a', 'b'] : null,
  ...extra,
});

describe('parseOutputText', () => {
  it('reads name=value lines: the value is everything after the first =, empty allowed', () => {
    expect(parseOutputText('version=1.2.3\nurl=https://x/?a=b&c=d\nempty=\n')).toEqual({
      values: { version: '1.2.3', url: 'https://x/?a=b&c=d', empty: '' },
      problems: [],
    });
  });

  it('skips empty lines, lets the last of two values win, and reads a last line without a line end', () => {
    expect(parseOutputText('\n\na=1\n\na=2\nb=3')).toEqual({ values: { a: '2', b: '3' }, problems: [] });
  });

  it('reads a heredoc value: its lines as written, empty lines kept, without the last line end', () => {
    const text = 'notes<<EOF\nfirst line\n\n  indented = with << inside\nEOF\nafter=x\n';
    expect(parseOutputText(text)).toEqual({
      values: { notes: 'first line\n\n  indented = with << inside', after: 'x' },
      problems: [],
    });
  });

  it('reads an empty heredoc value, and a closing delimiter at the very end without a line end', () => {
    expect(parseOutputText('a<<END\nEND\nb<<END\nx\nEND')).toEqual({
      values: { a: '', b: 'x' },
      problems: [],
    });
  });

  it('takes whichever of = and << comes first', () => {
    expect(parseOutputText('a=b<<c\nd<<E=F\nvalue\nE=F\n')).toEqual({
      values: { a: 'b<<c', d: 'value' },
      problems: [],
    });
  });

  it('takes CRLF line ends: no \\r at the end of values or of the delimiter; inner line ends kept', () => {
    const text = 'version=1.2.3\r\nnotes<<EOF\r\none\r\ntwo\r\nEOF\r\n';
    expect(parseOutputText(text)).toEqual({
      values: { version: '1.2.3', notes: 'one\r\ntwo' },
      problems: [],
    });
  });

  it('only a line that is exactly the delimiter closes the value', () => {
    expect(parseOutputText('a<<EOF\n EOF\nEOF \nEOFX\nEOF\n').values).toEqual({ a: ' EOF\nEOF \nEOFX' });
  });

  it('a value never closed is a problem naming its first line, and ends the reading', () => {
    const parsed = parseOutputText('ok=1\nnotes<<EOF\nline\nlast=2\n');
    expect(parsed.values).toEqual({ ok: '1' });
    expect(parsed.problems).toEqual([
      'line 2: no line "EOF" closes the value of "notes" (name<<DELIMITER, the value\'s lines, then DELIMITER alone on its line)',
    ]);
  });

  it('a heredoc without a name or a delimiter is a problem and ends the reading', () => {
    expect(parseOutputText('a=1\n<<EOF\nb=2\n')).toEqual({
      values: { a: '1' },
      problems: ['line 2: no name before <<; the rest of the file is not read'],
    });
    expect(parseOutputText('x<<\nb=2\n').problems).toEqual([
      'line 1: no delimiter after "x"<<; the rest of the file is not read',
    ]);
  });

  it('a line with neither = nor << is a problem (its text is not repeated); the next lines are read', () => {
    expect(parseOutputText('a=1\nsecret-looking junk\nb=2\n')).toEqual({
      values: { a: '1', b: '2' },
      problems: ['line 2: expected name=value or name<<DELIMITER'],
    });
  });

  it('refuses names that break the name rule, and NUL characters in values', () => {
    const long = `n${'x'.repeat(64)}`;
    const parsed = parseOutputText(`9x=1\n=2\n__proto__=3\nwith space=4\n${long}=5\nnul=a\0b\nok-name_2=6\n`);
    expect(parsed.values).toEqual({ 'ok-name_2': '6' });
    expect(parsed.problems).toHaveLength(6);
    expect(parsed.problems[0]).toBe(
      'line 1: "9x" is not an output name (a name starts with a letter; then letters, digits, _ - (at most 64 characters))',
    );
    expect(parsed.problems[1]).toMatch(/^line 2: "" is not an output name/);
    expect(parsed.problems[2]).toMatch(/^line 3: "__proto__" is not an output name/);
    expect(parsed.problems[4]).toMatch(/^line 5: "nxxx/);
    expect(parsed.problems[5]).toBe(
      'line 6: the value of nul holds a NUL character, which no environment variable can',
    );
    expect(Object.getPrototypeOf(parsed.values)).toBe(Object.prototype);
  });

  it('takes 100 names (a name written again does not count twice), not 101', () => {
    const hundred = Array.from({ length: 100 }, (_, i) => `n${i}=${i}\n`).join('');
    expect(parseOutputText(`${hundred}n5=again\n`).problems).toEqual([]);
    const parsed = parseOutputText(`${hundred}extra=1\nlater=2\n`);
    expect(Object.keys(parsed.values)).toHaveLength(100);
    expect(parsed.problems).toEqual(['line 101: more than 100 output names; a step may write at most 100']);
  });
});

describe('readOutputFile', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'outputs-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('reads up to 64 KiB; one byte more is refused before it is read', () => {
    const path = join(dir, 'out');
    const exact = `v=${'x'.repeat(64 * 1024 - 2)}`;
    writeFileSync(path, exact);
    expect(readOutputFile(path)).toEqual({ text: exact });
    writeFileSync(path, `${exact}y`);
    expect(readOutputFile(path)).toEqual({
      problem: 'CHARTER_OUTPUT holds 65,537 bytes; a step may write at most 65,536 bytes (64 KiB) there',
    });
  });

  it('a removed file is no outputs; a symlink, a FIFO or bytes that are not UTF-8 are refused', () => {
    expect(readOutputFile(join(dir, 'gone'))).toEqual({ missing: true });
    writeFileSync(join(dir, 'target'), 'a=1\n');
    symlinkSync(join(dir, 'target'), join(dir, 'link'));
    expect(readOutputFile(join(dir, 'link'))).toEqual({
      problem: 'CHARTER_OUTPUT was replaced by a symbolic link',
    });
    execFileSync('mkfifo', [join(dir, 'fifo')]);
    // Opened without blocking and refused: a FIFO nobody writes to must not hold the daemon.
    expect(readOutputFile(join(dir, 'fifo'))).toEqual({
      problem: 'CHARTER_OUTPUT was replaced by something that is not a file',
    });
    writeFileSync(join(dir, 'latin1'), Buffer.from([0x61, 0x3d, 0xe9, 0x0a]));
    expect(readOutputFile(join(dir, 'latin1'))).toEqual({ problem: 'CHARTER_OUTPUT is not UTF-8 text' });
  });

  it('readStepOutputs: parse problems come first, then the declaration’s', () => {
    const path = join(dir, 'out');
    writeFileSync(path, 'version=1.2.3\nbroken\ncount=many\n');
    const checked = readStepOutputs(path, {
      stepId: 'build',
      declared: { version: spec('string', { required: true }), count: spec('integer') },
      taken: new Map(),
      earlier: {},
    });
    expect(checked).toEqual({
      values: { version: '1.2.3' },
      problems: ['line 2: expected name=value or name<<DELIMITER', 'count: expected an integer, got "many"'],
    });
  });
});

describe('checkOutputs', () => {
  const base = { stepId: 'build', taken: new Map<string, string>(), earlier: {} };

  it('without a declaration every name is a string', () => {
    expect(checkOutputs({ ...base, declared: null, raw: { count: '3', flag: 'true' } })).toEqual({
      values: { count: '3', flag: 'true' },
      problems: [],
    });
  });

  it('types values like inputs, fills defaults, and lists every problem', () => {
    const declared = {
      version: spec('string', { required: true }),
      count: spec('integer'),
      ratio: spec('number'),
      ok: spec('boolean', { default: false }),
      level: spec('enum'),
      token: spec('secret'),
      missing: spec('integer', { required: true }),
    };
    const checked = checkOutputs({
      ...base,
      declared,
      raw: { version: '', count: ' 7 ', ratio: 'x', level: 'c', token: '', extra: '1', other: '2' },
    });
    expect(checked.values).toEqual({ version: '', count: 7, ok: false });
    expect(checked.problems).toEqual([
      'ratio: expected a number, got "x"',
      'level: must be one of a, b',
      'token: a secret must not be empty',
      'missing: required',
      'extra: not a declared output of this step (declared: count, level, missing, ok, ratio, token, version)',
      'other: not a declared output of this step (declared: count, level, missing, ok, ratio, token, version)',
    ]);
  });

  it('a declared string or secret may be as long as the file allows (not capped like an input value)', () => {
    const long = 'x'.repeat(40_000);
    const checked = checkOutputs({
      ...base,
      declared: { notes: spec('string'), key: spec('secret') },
      raw: { notes: long, key: long },
    });
    expect(checked).toEqual({ values: { notes: long, key: long }, problems: [] });
  });

  it('refuses names whose CHARTER_STEP_ variable another output or another step already gives', () => {
    const taken = new Map([['CHARTER_STEP_BUILD_CODE', 'field "code" of step "build-"']]);
    const checked = checkOutputs({
      ...base,
      taken,
      declared: null,
      raw: { 'dry-run': '1', dry_run: '2', code: '3' },
    });
    expect(checked.values).toEqual({ 'dry-run': '1' });
    expect(checked.problems).toEqual([
      'dry_run: becomes CHARTER_STEP_BUILD_DRY_RUN like output "dry-run"; rename one of them',
      'code: becomes CHARTER_STEP_BUILD_CODE like field "code" of step "build-"; rename one of them',
    ]);
  });

  it('bounds the outputs of a run’s steps together at 256 KiB as JSON', () => {
    const big = 'x'.repeat(60_000);
    const earlier = { a: { v: big }, b: { v: big }, c: { v: big } };
    expect(
      checkOutputs({ ...base, earlier, declared: null, raw: { v: 'x'.repeat(50_000) } }).problems,
    ).toEqual([]);
    const over = checkOutputs({ ...base, earlier, declared: null, raw: { v: big, w: big } });
    expect(over.problems).toEqual([
      "(all outputs): the outputs of this run's steps would be 300,064 bytes as JSON together, at most 262,144 (256 KiB)",
    ]);
  });
});

describe('outputs in workflows', () => {
  const files = { dir: '/p/workflows/w', manifestPath: '/p/m.yml', planPath: '/p/plan.yml' };
  const load = (plan: string): Workflow => parseWorkflow('w', files, 'id: w\nname: W\n', plan);

  it('a run step declares typed outputs like inputs; other steps may not', () => {
    const workflow = load(`steps:
  - id: build
    run: echo
    outputs:
      version: { type: string, required: true }
      count: { type: integer, default: 1 }
      key: { type: secret }
`);
    expect(workflow.steps[0]).toMatchObject({
      outputs: {
        version: { type: 'string', required: true },
        count: { type: 'integer', required: false, default: 1 },
        key: { type: 'secret' },
      },
    });
    expect(() =>
      load(`steps:
  - id: hold
    gate: { prompt: Go? }
    outputs: { a: { type: string } }
`),
    ).toThrow('steps.0.outputs: only allowed on run steps (this is a gate step)');
  });

  it('refuses declared outputs that give the same variable as another step’s field or output', () => {
    expect(() =>
      load(`steps:
  - id: a_b
    input:
      prompt: x
      fields: { c: { type: string } }
  - id: a
    run: echo
    outputs:
      b_c: { type: string }
      dry-run: { type: string }
      dry_run: { type: string }
`),
    ).toThrow(
      /steps\.1\.outputs\.b_c: becomes CHARTER_STEP_A_B_C like steps\.0\.input\.fields\.c[\s\S]*steps\.1\.outputs\.dry_run: becomes CHARTER_STEP_A_DRY_RUN like steps\.1\.outputs\.dry-run/,
    );
  });

  it('takenVariables: other steps’ fields and declared outputs, and what earlier steps passed on', () => {
    const workflow = load(`steps:
  - id: ask
    input: { prompt: x, fields: { code: { type: string } } }
  - id: build
    run: echo
    outputs: { version: { type: string } }
  - id: publish
    run: echo
    outputs: { url: { type: string } }
`);
    const taken = takenVariables(workflow, 'publish', { build: { version: '1', extra: 'x' } });
    expect(Object.fromEntries(taken)).toEqual({
      CHARTER_STEP_ASK_CODE: 'field "code" of step "ask"',
      CHARTER_STEP_BUILD_VERSION: 'output "version" of step "build"',
      CHARTER_STEP_BUILD_EXTRA: 'output "extra" of step "build"',
    });
  });
});
