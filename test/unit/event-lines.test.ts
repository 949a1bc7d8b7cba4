/**
 * One readable line per event (and per frame, for --frames): what each journal entry type of
 * docs/operations.md ("Journal entries") shows, command results named after the command they
 * answer, and hostile content (terminal escapes, huge or deeply nested data) kept harmless.
 */
import { describe, expect, it } from 'vitest';
import { clock, eventLine, frameLine, MAX_EVENT_LINE_CHARS } from '../../src/gateway-server/event-lines.js';
import type { UpEvent } from '../../src/gateway-server/gateway-peer.js';

const RUN = 'r01M896DNPB867TG7XKK63RRR5P';
const TS = '2026-11-25T11:10:59.123Z';
const AT = clock(TS);

function event(type: string, data: unknown, runId: string | null = RUN): UpEvent {
  return { seq: 7, run_id: runId, run_seq: runId === null ? null : 3, type, ts: TS, data };
}

describe('event lines', () => {
  it('show time, run, type and a short summary for the run events', () => {
    const cases: [string, unknown, string][] = [
      [
        'run.queued',
        { workflow_id: 'greet', inputs: { name: 'Ana', shout: false } },
        'greet (inputs: name="Ana", shout=false)',
      ],
      ['run.started', { workflow_id: 'greet', steps: 4 }, 'greet (4 steps)'],
      ['step.started', { step_id: 'compose', index: 0, attempt: 1 }, 'compose (attempt 1)'],
      [
        'step.output',
        { step_id: 'compose', stream: 'stdout', text: 'Hello, Ana!\n' },
        'compose stdout: "Hello, Ana!\\n"',
      ],
      [
        'step.finished',
        { step_id: 'compose', exit_code: 0, outcome: 'succeeded' },
        'compose: succeeded (exit code 0)',
      ],
      ['step.finished', { step_id: 'build', exit_code: 3, outcome: 'exited' }, 'build: failed (exit code 3)'],
      [
        'step.finished',
        { step_id: 'build', exit_code: 0, outcome: 'succeeded', outputs: { version: '1.2.3', token: '***' } },
        'build: succeeded (exit code 0) outputs: version="1.2.3", token="***"',
      ],
      [
        'step.finished',
        { step_id: 'build', exit_code: 0, outcome: 'succeeded', outputs: {} },
        'build: succeeded (exit code 0)',
      ],
      ['run.waiting', { step_id: 'confirm', kind: 'gate' }, 'at gate confirm'],
      [
        'gate.decided',
        { step_id: 'confirm', decision: 'deny', by: 'ops', comment: 'not now' },
        'confirm: deny by ops: "not now"',
      ],
      [
        'input.submitted',
        { step_id: 'details', answers: { count: 1 }, by: 'dev-gateway' },
        'details by dev-gateway: count=1',
      ],
    ];
    for (const [type, data, summary] of cases) {
      expect(eventLine(event(type, data))).toBe(`${AT} ${RUN} ${type} ${summary}`);
    }
    expect(eventLine(event('run.succeeded', { steps: 4 }))).toBe(`${AT} ${RUN} run.succeeded`);
    expect(eventLine(event('run.failed', { reason: 'gate_denied', step_id: 'confirm' }))).toBe(
      `${AT} ${RUN} run.failed: gate_denied`,
    );
    expect(eventLine(event('run.cancelled', { reason: 'wrong tag', while: 'waiting' }))).toBe(
      `${AT} ${RUN} run.cancelled: wrong tag (while waiting)`,
    );
  });

  it('daemon events show - for the run', () => {
    expect(
      eventLine(
        event(
          'daemon.started',
          { pid: 42, version: '0.1.0', epoch: 3, previous_shutdown: 'clean', restored_runs: 1 },
          null,
        ),
      ),
    ).toBe(
      `${AT} - daemon.started pid 42, epoch 3, version 0.1.0 (previous shutdown: clean, 1 run(s) restored)`,
    );
    expect(eventLine(event('daemon.stopping', { reason: 'SIGTERM', executing_runs: 0 }, null))).toBe(
      `${AT} - daemon.stopping: SIGTERM (0 run(s) executing)`,
    );
  });

  it('a command.result names the command this gateway sent, and says ok or why not', () => {
    const sent = (cmdId: string) =>
      cmdId === 'dg-1' ? { kind: 'gate.decide', runId: RUN, what: 'approve confirm' } : undefined;
    expect(
      eventLine(event('command.result', { cmd_id: 'dg-1', status: 'applied', run_id: RUN }, null), sent),
    ).toBe(`${AT} - command.result dg-1 (approve confirm) applied`);
    const rejected = {
      cmd_id: 'c-9',
      status: 'rejected',
      error: { code: 'INVALID_ANSWERS', message: 'answers refused:\n  - count: expected an integer' },
      run_id: RUN,
    };
    expect(eventLine(event('command.result', rejected, null), sent)).toBe(
      `${AT} - command.result c-9 rejected: INVALID_ANSWERS: answers refused: … run ${RUN}`,
    );
  });

  it('escapes control characters, clips output and whole lines, marks truncated events', () => {
    const escaped = eventLine(
      event('step.output', { step_id: 's', stream: 'stderr', text: '\u001b[31mred\u0007' }),
    );
    expect(escaped).toBe(`${AT} ${RUN} step.output s stderr: "\\u001b[31mred\\u0007"`);
    expect(eventLine(event('run.waiting', { step_id: 'a\u001b]0;owned\u0007', kind: 'gate' }))).not.toMatch(
      // biome-ignore lint/suspicious/noControlCharactersInRegex: no control character may remain
      /[\u0000-\u001f]/,
    );
    const long = eventLine(
      event('step.output', { step_id: 's', stream: 'stdout', text: 'y'.repeat(10_000) }),
    );
    expect(long).toContain(`"${'y'.repeat(79)}…"`);
    expect(eventLine(event('custom.thing', { blob: 'z'.repeat(100_000) }))).toMatch(/ blob="z+…$/);
    for (const huge of [
      eventLine(event('t'.repeat(100_000), {})),
      eventLine(event('run.waiting', { step_id: 's'.repeat(100_000), kind: 'gate' })),
    ]) {
      expect(huge.length).toBe(MAX_EVENT_LINE_CHARS);
      expect(huge.endsWith('…')).toBe(true);
    }
    const cut = {
      ...event('step.output', { step_id: 's', stream: 'stdout' }),
      truncated: { bytes: 2_000_000 },
    };
    expect(eventLine(cut)).toBe(`${AT} ${RUN} step.output s stdout: "" [cut to fit a frame: 2000000 bytes]`);
  });

  it('data of any shape prints a line: missing fields, non-objects, nesting too deep to stringify', () => {
    expect(eventLine(event('step.started', null))).toBe(`${AT} ${RUN} step.started ? (attempt ?)`);
    expect(eventLine(event('run.queued', 'text'))).toBe(`${AT} ${RUN} run.queued ? (inputs: (none))`);
    let deep: unknown = 1;
    for (let i = 0; i < 200_000; i++) deep = [deep];
    expect(eventLine(event('custom.deep', { deep }))).toBe(`${AT} ${RUN} custom.deep deep=(unprintable)`);
  });
});

describe('frame lines', () => {
  it('summarise each frame with direction and connection', () => {
    const at = Date.parse(TS);
    const line = (dir: 'in' | 'out', frame: unknown) =>
      frameLine({ dir, frame, bytes: 10, at, connId: 'gw-1-abc' });
    expect(
      line('in', {
        op: 'events',
        events: [
          { seq: 1, type: 'a' },
          { seq: 2, type: 'b' },
        ],
      }),
    ).toBe('11:10:59.123 → in  gw-1-abc events n=2 seq=1..2 types=a,b');
    expect(line('out', { op: 'ack', up: 2, up_limit: 1002 })).toBe(
      '11:10:59.123 ← out gw-1-abc ack up=2 up_limit=1002',
    );
    expect(line('in', 'not json\u001b')).toBe('11:10:59.123 → in  gw-1-abc raw "not json\\u001b"');
    expect(
      line('out', { op: 'command', dseq: 1, kind: 'run.start', cmd_id: 'c', args: { workflow_id: 'w' } }),
    ).toBe('11:10:59.123 ← out gw-1-abc command dseq=1 run.start cmd_id=c args={"workflow_id":"w"}');
  });
});
