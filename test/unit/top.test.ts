/**
 * `top`'s model and layout as data: what each key does, how updates change the list, and what
 * fits on a wide, a narrow and a short screen.
 */
import { describe, expect, it } from 'vitest';
import { TopModel } from '../../src/cli/top/model.js';
import { render, sparkline } from '../../src/cli/top/render.js';
import type { WatchHeader, WatchRun, WatchUpdate } from '../../src/protocol/observe.js';

const NOW = Date.parse('2026-01-01T01:00:00Z');
const cli = { bin: 'charter-daemon', suffix: '' };

const header: WatchHeader = {
  pid: 42,
  version: '0.1.0',
  state: 'serving',
  started_at: '2026-01-01T00:00:00Z',
  project_root: '/p',
  gateway: { state: 'offline', url: null, since: '2026-01-01T00:00:00Z' },
  backlog: 3,
  oldest_unacked_age_seconds: 12,
  events_per_second: Array.from({ length: 60 }, (_, i) => i % 7),
  runs: { queued: 1, running: 1, waiting: 2, cancelling: 0, succeeded: 5, failed: 1, cancelled: 0 },
  store_fault: null,
};

function run(n: number, state: WatchRun['state'], waiting: WatchRun['waiting'] = null): WatchRun {
  return {
    run_id: `r${String(n).padStart(26, '0')}`,
    workflow_id: 'greet',
    state,
    reason: null,
    current_step: waiting === null ? 'compose' : null,
    created_at: `2026-01-01T00:${String(10 + n).padStart(2, '0')}:00Z`,
    updated_at: '2026-01-01T00:59:00Z',
    finished_at: null,
    waiting,
  };
}

const gate = {
  kind: 'gate' as const,
  step_id: 'confirm',
  prompt: 'Send it?',
  fields: null,
  since: '2026-01-01T00:59:00Z',
};
const input = {
  kind: 'input' as const,
  step_id: 'details',
  prompt: 'More?',
  fields: { count: { type: 'integer' as const, required: true, description: null, values: null } },
  since: '2026-01-01T00:59:00Z',
};

function model(): TopModel {
  const m = new TopModel();
  const update: WatchUpdate = {
    header,
    reset: true,
    runs: [run(3, 'queued'), run(1, 'waiting', gate), run(2, 'running'), run(4, 'waiting', input)],
    removed: [],
    recent: [{ ...run(9, 'succeeded'), finished_at: '2026-01-01T00:58:00Z' }],
  };
  m.apply(update);
  return m;
}

describe('TopModel', () => {
  it('lists running, then waiting, then queued runs, oldest first, and keeps the selection on its run', () => {
    const m = model();
    expect(m.rows().map((r) => [r.run_id.slice(-1), r.state])).toEqual([
      ['2', 'running'],
      ['1', 'waiting'],
      ['4', 'waiting'],
      ['3', 'queued'],
    ]);
    m.key('j', true);
    expect(m.selected()?.run_id.slice(-1)).toBe('1');
    // Run 2 finishes: the selection stays on run 1, now first.
    m.apply({ header, reset: false, runs: [], removed: [run(2, 'running').run_id] });
    expect(m.selectedIndex()).toBe(0);
    expect(m.selected()?.run_id.slice(-1)).toBe('1');
  });

  it('a approves and d denies (with a comment) the gate of the selected run; c asks for y first', () => {
    const m = model();
    m.key('DOWN', false);
    expect(m.key('a', true)).toEqual({ kind: 'approve', runId: run(1, 'waiting').run_id, stepId: 'confirm' });
    expect(m.key('d', true)).toEqual({ kind: 'none' });
    for (const ch of 'no!') m.key(ch, true);
    m.key('BACKSPACE', false);
    expect(m.key('ENTER', false)).toEqual({
      kind: 'deny',
      runId: run(1, 'waiting').run_id,
      stepId: 'confirm',
      comment: 'no',
    });
    expect(m.key('c', true)).toEqual({ kind: 'none' });
    expect(m.key('n', true)).toEqual({ kind: 'none' });
    m.key('c', true);
    expect(m.key('y', true)).toEqual({ kind: 'cancel', runId: run(1, 'waiting').run_id });
  });

  it('refuses to approve a run that waits at no gate, and q or Ctrl-C quits from anywhere', () => {
    const m = model();
    expect(m.key('a', true)).toEqual({ kind: 'none' });
    expect(m.notice?.error).toBe(true);
    m.key('?', true);
    expect(m.key('q', true)).toEqual({ kind: 'quit' });
    m.key('l', true);
    expect(m.key('CTRL_C', false)).toEqual({ kind: 'quit' });
  });

  it('keeps a log of output chunks and transitions', () => {
    const m = model();
    expect(m.key('ENTER', false)).toEqual({ kind: 'open-log', runId: run(2, 'running').run_id });
    const id = run(2, 'running').run_id;
    m.appendLine(id, '[00:00:01] step.started compose');
    m.appendOutput(id, 'hel');
    m.appendOutput(id, 'lo\nworld\n');
    m.appendLine(id, '[00:00:02] step.finished compose');
    expect(m.mode.kind === 'log' && m.mode.lines).toEqual([
      '[00:00:01] step.started compose',
      'hello',
      'world',
      '[00:00:02] step.finished compose',
      '',
    ]);
    expect(m.key('ESCAPE', false)).toEqual({ kind: 'close-log' });
  });
});

describe('render', () => {
  it('shows the header, the live runs with what they wait for, and the command that answers an input', () => {
    const m = model();
    m.key('j', true);
    m.key('j', true);
    const lines = render(m, { width: 140, height: 30 }, NOW, cli);
    expect(lines).toHaveLength(30);
    const text = lines.map((l) => l.text);
    expect(text[0]).toContain('pid 42 · up 1h00m · serving');
    expect(text[1]).toContain('backlog 3, oldest 12s');
    expect(text.find((t) => t.includes(run(1, 'waiting').run_id))).toContain(
      'gate "confirm" 1m00s: Send it?',
    );
    expect(lines.find((l) => l.style === 'selected')?.text).toContain(run(4, 'waiting').run_id);
    expect(text).toContain(
      `answer: charter-daemon submit-input ${run(4, 'waiting').run_id} --answers '{"count": <integer>}'`,
    );
    expect(text.some((t) => t.startsWith('RECENT'))).toBe(true);
    for (const line of lines) expect([...line.text].length).toBeLessThanOrEqual(140);
  });

  it('drops columns, not rows, on a narrow screen; a short one keeps the live runs', () => {
    const m = model();
    const narrow = render(m, { width: 60, height: 30 }, NOW, cli);
    const columns = narrow.find((l) => l.style === 'columns')?.text ?? '';
    expect(columns).toContain('RUN');
    expect(columns).toContain('STATE');
    expect(columns).not.toContain('AGE');
    expect(narrow.filter((l) => l.style === 'row' || l.style === 'selected')).toHaveLength(4);
    for (const line of narrow) expect([...line.text].length).toBeLessThanOrEqual(60);

    const short = render(m, { width: 120, height: 9 }, NOW, cli);
    expect(short).toHaveLength(9);
    expect(short.some((l) => l.style === 'selected')).toBe(true);
  });

  it('never passes control characters through', () => {
    const m = model();
    m.key('l', true);
    m.appendOutput(run(2, 'running').run_id, '\u001b[2Jboom\u0007\n');
    const lines = render(m, { width: 80, height: 20 }, NOW, cli);
    expect(lines.some((l) => l.text.includes('[2Jboom'))).toBe(true);
    const controls = [...lines.map((l) => l.text).join('')].filter((ch) => (ch.codePointAt(0) ?? 32) < 32);
    expect(controls).toEqual([]);
  });

  it('draws a sparkline scaled to its maximum', () => {
    expect(sparkline([0, 1, 2, 4])).toBe('▁▂▄█');
    expect(sparkline([0, 0])).toBe('▁▁');
  });
});
