/**
 * The dev gateway's operator lines: each of the commands becomes the command frame contents the
 * daemon expects (docs/protocol.md, "The four kinds"), runs are named by unique prefixes of the
 * ids a real RunBoard has seen, and every mistake is one error line; the input reader bounds a
 * line and recovers after an oversized one.
 */
import { describe, expect, it } from 'vitest';
import type { UpEvent } from '../../src/gateway-server/gateway-peer.js';
import {
  OPERATOR_BY,
  type OperatorLine,
  parseOperatorLine,
  splitWords,
} from '../../src/gateway-server/operator-commands.js';
import { OperatorInput } from '../../src/gateway-server/operator-input.js';
import { RunBoard, runLines } from '../../src/gateway-server/run-board.js';

const GATE_RUN = 'r01M896DNPB867TG7XKK63RRR5P';
const INPUT_RUN = 'r01M896E2XADVDKJ39CNQ476ET3';
const TWIN_RUN = 'r01M896E2XADVDKJ39CNQ476EZZ';

let seq = 0;
function event(runId: string | null, type: string, data: unknown): UpEvent {
  seq += 1;
  return {
    seq,
    run_id: runId,
    run_seq: runId === null ? null : seq,
    type,
    ts: '2026-11-25T11:10:59.000Z',
    data,
  };
}

/** A board that has seen: a run at gate confirm, a run at input details, a finished twin. */
function board(): RunBoard {
  const runs = new RunBoard();
  for (const runId of [GATE_RUN, INPUT_RUN, TWIN_RUN]) {
    runs.apply(event(runId, 'run.queued', { workflow_id: 'greet', inputs: { name: 'Ana' } }));
    runs.apply(event(runId, 'run.started', { workflow_id: 'greet', steps: 4 }));
  }
  runs.apply(event(GATE_RUN, 'run.waiting', { step_id: 'confirm', kind: 'gate' }));
  runs.apply(event(INPUT_RUN, 'run.waiting', { step_id: 'confirm', kind: 'gate' }));
  runs.apply(event(INPUT_RUN, 'gate.decided', { step_id: 'confirm', decision: 'approve' }));
  runs.apply(event(INPUT_RUN, 'run.waiting', { step_id: 'details', kind: 'input' }));
  runs.apply(event(TWIN_RUN, 'run.succeeded', { steps: 4 }));
  return runs;
}

function parse(line: string): OperatorLine {
  return parseOperatorLine(line, board());
}

function errorOf(line: string): string {
  const parsed = parse(line);
  if (parsed.kind !== 'error')
    throw new Error(`expected an error for ${line}, got ${JSON.stringify(parsed)}`);
  return parsed.message;
}

describe('operator lines', () => {
  it('approve: gate.decide at the gate the run waits at, by the dev gateway; a unique prefix names the run', () => {
    expect(parse('approve r01M896DN')).toEqual({
      kind: 'send',
      command: {
        kind: 'gate.decide',
        run_id: GATE_RUN,
        args: { step_id: 'confirm', decision: 'approve', by: OPERATOR_BY },
        what: 'approve confirm',
      },
    });
    expect(parse(`  approve ${GATE_RUN} --step other --comment looks good  `)).toMatchObject({
      kind: 'send',
      command: { args: { step_id: 'other', decision: 'approve', comment: 'looks good' } },
    });
  });

  it('deny needs a comment; quoted or bare words, up to the next flag', () => {
    expect(parse(`deny ${GATE_RUN} --comment 'not this week' --step confirm`)).toMatchObject({
      kind: 'send',
      command: {
        kind: 'gate.decide',
        args: { decision: 'deny', comment: 'not this week', step_id: 'confirm' },
      },
    });
    expect(parse(`deny ${GATE_RUN} --comment not this "week's" end`)).toMatchObject({
      command: { args: { comment: "not this week's end" } },
    });
    expect(parse(`deny ${GATE_RUN} --comment=why`)).toMatchObject({ command: { args: { comment: 'why' } } });
    expect(errorOf(`deny ${GATE_RUN}`)).toMatch(/^deny needs a reason/);
    expect(errorOf(`deny ${GATE_RUN} --comment`)).toMatch(/--comment needs a value/);
  });

  it('submit: input.submit with the answers, at the input step the run waits at', () => {
    expect(parse('submit r01M896E2XADVDKJ39CNQ476ET {"count": 1, "note": "a b"}')).toEqual({
      kind: 'send',
      command: {
        kind: 'input.submit',
        run_id: INPUT_RUN,
        args: { step_id: 'details', answers: { count: 1, note: 'a b' }, by: OPERATOR_BY },
        what: 'answers for details',
      },
    });
    expect(parse(`submit ${GATE_RUN} --step details {"count":1}`)).toMatchObject({
      command: { args: { step_id: 'details' } },
    });
  });

  it('cancel and start', () => {
    expect(parse(`cancel ${GATE_RUN} --reason wrong tag`)).toEqual({
      kind: 'send',
      command: {
        kind: 'run.cancel',
        run_id: GATE_RUN,
        args: { by: OPERATOR_BY, reason: 'wrong tag' },
        what: 'cancel',
      },
    });
    expect(parse('start greet {"name":"Ana","shout":true}')).toEqual({
      kind: 'send',
      command: {
        kind: 'run.start',
        args: { workflow_id: 'greet', inputs: { name: 'Ana', shout: true } },
        what: 'start greet',
      },
    });
    expect(parse('start slow')).toMatchObject({ command: { args: { workflow_id: 'slow', inputs: {} } } });
  });

  it('local requests: runs, help, quit, and nothing for a blank line', () => {
    expect(parse('runs')).toEqual({ kind: 'runs' });
    expect(parse('help')).toEqual({ kind: 'help' });
    expect(parse('quit')).toEqual({ kind: 'quit' });
    expect(parse('exit')).toEqual({ kind: 'quit' });
    expect(parse('   \t ')).toEqual({ kind: 'nothing' });
    expect(errorOf('quit now')).toBe('quit takes no arguments');
  });

  it('runs are resolved by unique prefix; ambiguous and unknown ones are answered', () => {
    expect(errorOf('approve r01M896E2XADVDKJ39CNQ476E')).toMatch(/matches 2 runs .*give more of the id/);
    expect(errorOf('approve rNOPE')).toMatch(/no run seen whose id starts with "rNOPE"/);
    // A full run id never seen is taken as given: the daemon knows runs this gateway may not.
    const unseen = 'r01M896DNPB867TG7XKK63RRR00';
    expect(parse(`cancel ${unseen}`)).toMatchObject({ kind: 'send', command: { run_id: unseen } });
  });

  it('a decision or answers for a run that waits for something else name what it waits for', () => {
    expect(errorOf('approve r01M896E2XADVDKJ39CNQ476ET')).toMatch(
      /is not waiting at a gate \(it waits at input step details\): name the step with --step S/,
    );
    expect(errorOf(`submit ${GATE_RUN} {"count":1}`)).toMatch(
      /not waiting at an input step \(it waits at gate confirm\)/,
    );
    expect(errorOf(`approve ${TWIN_RUN}`)).toMatch(/as far as this gateway has seen/);
  });

  it('bad JSON, non-objects, deep nesting and oversized args are refused before anything is sent', () => {
    expect(errorOf(`submit ${INPUT_RUN} {"count":`)).toMatch(/^answers: not JSON/);
    expect(errorOf(`submit ${INPUT_RUN} {"a":1} trailing`)).toMatch(/^answers: not JSON/);
    expect(errorOf(`submit ${INPUT_RUN}`)).toMatch(/^usage: submit RUN/);
    expect(errorOf(`submit ${INPUT_RUN} [1]`)).toMatch(/^usage: submit RUN/);
    expect(errorOf(`submit ${INPUT_RUN} ${'{"a":'.repeat(65)}1${'}'.repeat(65)}`)).toBe(
      'answers: nested more than 64 levels deep',
    );
    expect(errorOf(`start greet {"name":"${'x'.repeat(70 * 1024)}"}`)).toMatch(
      /^inputs: at most 65536 bytes/,
    );
    expect(errorOf(`deny ${GATE_RUN} --comment ${'x'.repeat(5000)}`)).toMatch(
      /^comment: at most 4096 characters/,
    );
    expect(errorOf('start ../etc')).toMatch(/is not a workflow id/);
  });

  it('unknown commands and flags, stray words and quotes: one error line each, control characters escaped', () => {
    expect(errorOf('frobnicate now')).toBe('unknown command "frobnicate": type help for the commands');
    expect(errorOf('\u001b[2Jclear')).toBe('unknown command "\\u001b[2Jclear": type help for the commands');
    expect(errorOf(`approve ${GATE_RUN} --force`)).toMatch(/^unknown flag --force/);
    expect(errorOf(`approve ${GATE_RUN} extra`)).toMatch(/^usage: approve RUN/);
    expect(errorOf(`approve ${GATE_RUN} --step a --step b`)).toBe('--step given twice');
    expect(errorOf(`deny ${GATE_RUN} --comment 'open`)).toBe('unterminated single quote');
    expect(errorOf('approve')).toMatch(/^usage: approve RUN/);
  });

  it('splits words: quotes group and may escape, a { takes the rest of the line', () => {
    const words = splitWords(`a "b c" 'd "e"' "f \\"g\\"" {"x": "y z"}  `);
    expect(words).toEqual({
      ok: true,
      value: [
        { text: 'a', json: false },
        { text: 'b c', json: false },
        { text: 'd "e"', json: false },
        { text: 'f "g"', json: false },
        { text: '{"x": "y z"}', json: true },
      ],
    });
  });
});

describe('the runs table', () => {
  it('lists every run seen with its workflow, last state and what it waits for', () => {
    const lines = runLines(board().list());
    expect(lines[0]).toMatch(/^RUN +WORKFLOW +STATE +WAITING FOR +LAST EVENT$/);
    expect(lines.slice(1)).toEqual([
      expect.stringMatching(new RegExp(`^${GATE_RUN} +greet +waiting +gate confirm +run.waiting$`)),
      expect.stringMatching(new RegExp(`^${INPUT_RUN} +greet +waiting +input details +run.waiting$`)),
      expect.stringMatching(new RegExp(`^${TWIN_RUN} +greet +succeeded +- +run.succeeded$`)),
    ]);
    expect(runLines([])).toEqual(['no runs seen yet']);
  });
});

describe('operator input', () => {
  it('splits lines across chunks (multi-byte characters included), strips \\r, keeps a last unterminated line', () => {
    const input = new OperatorInput(64);
    const bytes = Buffer.from('runs\r\nstart grëet\nhel');
    expect([...input.push(bytes.subarray(0, 14)), ...input.push(bytes.subarray(14))]).toEqual([
      { kind: 'line', text: 'runs' },
      { kind: 'line', text: 'start grëet' },
    ]);
    expect(input.push(Buffer.from('p'))).toEqual([]);
    expect(input.end()).toEqual([{ kind: 'line', text: 'help' }]);
  });

  it('reports an oversized line once, as soon as it passes the bound, skips it and reads the next', () => {
    const input = new OperatorInput(16);
    expect(input.push(Buffer.from('x'.repeat(17)))).toEqual([{ kind: 'tooLong' }]);
    expect(input.push(Buffer.from('y'.repeat(100_000)))).toEqual([]);
    expect(input.push(Buffer.from('zzz\nruns\n'))).toEqual([{ kind: 'line', text: 'runs' }]);
    expect(input.push(Buffer.from(`${'a'.repeat(16)}\n`))).toEqual([{ kind: 'line', text: 'a'.repeat(16) }]);
    expect(input.push(Buffer.from(`${'b'.repeat(20)}`))).toEqual([{ kind: 'tooLong' }]);
    expect(input.end()).toEqual([]);
  });
});
