/**
 * Lays out one screen of `charter-daemon top` as lines of text with a style each. Pure: the
 * screen module paints them. Every line fits the width; a narrow terminal drops columns (age,
 * step, workflow, in that order), never rows; a short one gives the live runs the rows first.
 */
import type { WatchHeader, WatchRun } from '../../protocol/observe.js';
import type { TopModel } from './model.js';

export type LineStyle =
  | 'title'
  | 'text'
  | 'heading'
  | 'columns'
  | 'row'
  | 'selected'
  | 'dim'
  | 'notice'
  | 'error';

export interface Line {
  readonly text: string;
  readonly style: LineStyle;
}

export interface ScreenSize {
  readonly width: number;
  readonly height: number;
}

const SPARK = '▁▂▃▄▅▆▇█';
const RUN_ID_WIDTH = 27;

interface Column {
  readonly name: string;
  readonly width: number;
  /** Lower drops first when the terminal is narrow. */
  readonly keep: number;
  readonly cell: (run: WatchRun, now: number) => string;
}

const COLUMNS: readonly Column[] = [
  { name: 'RUN', width: RUN_ID_WIDTH, keep: 9, cell: (run) => run.run_id },
  { name: 'WORKFLOW', width: 16, keep: 3, cell: (run) => run.workflow_id },
  { name: 'STATE', width: 10, keep: 8, cell: (run) => run.state },
  { name: 'STEP', width: 14, keep: 2, cell: (run) => run.current_step ?? run.waiting?.step_id ?? '-' },
  { name: 'AGE', width: 7, keep: 1, cell: (run, now) => age(run.created_at, now) },
];
/** The last column takes what is left: what the run waits for. */
const WAITS_MIN = 16;

/** How the user calls the CLI, for the commands shown: `bin … suffix`. */
export interface CliSpelling {
  readonly bin: string;
  /** ` --project-path P` when the project is not the current directory, else empty. */
  readonly suffix: string;
}

export function render(model: TopModel, size: ScreenSize, now: number, cli: CliSpelling): Line[] {
  const width = Math.max(1, size.width);
  const height = Math.max(1, size.height);
  const clipped = (text: string, style: LineStyle): Line => ({ text: clip(text, width), style });
  const lines: Line[] = [];
  const header = model.header;
  lines.push(clipped(titleLine(header, now), 'title'));
  if (header !== null) {
    lines.push(clipped(linkLine(header, now), 'text'));
    lines.push(clipped(activityLine(header, width), 'text'));
  }

  const footer = footerLines(model, cli).map((line) => clipped(line.text, line.style));
  const mode = model.mode;
  if (mode.kind === 'help') {
    for (const text of HELP) lines.push(clipped(text, 'text'));
  } else if (mode.kind === 'log') {
    const room = Math.max(0, height - lines.length - footer.length - 1);
    lines.push(clipped(`LOG ${mode.runId} (live; Esc or l: back)`, 'heading'));
    const tail = mode.lines.slice(-room);
    for (const text of tail) lines.push(clipped(text.replace(/\t/g, '  '), 'text'));
  } else {
    lines.push(...table(model, width, Math.max(0, height - lines.length - footer.length), now));
  }
  // The footer sits on the last rows; whatever does not fit is cut from the middle.
  const body = lines.slice(0, Math.max(0, height - footer.length));
  while (body.length + footer.length < height) body.push({ text: '', style: 'text' });
  return [...body, ...footer].slice(0, height);
}

function table(model: TopModel, width: number, room: number, now: number): Line[] {
  const rows = model.rows();
  const recent = model.recent;
  // Live runs come first: the recent list gets what a third of the room allows, if any.
  const recentRows = Math.min(recent.length, Math.max(0, Math.floor((room - 4) / 3)));
  const liveRoom = Math.max(1, room - 2 - (recentRows > 0 ? recentRows + 1 : 0));
  const columns = columnsFor(width);
  const out: Line[] = [];
  out.push({ text: clip(`LIVE RUNS (${rows.length})`, width), style: 'heading' });
  out.push({
    text: clip(
      formatRow(columns, width, (c) => c.name, 'WAITS FOR'),
      width,
    ),
    style: 'columns',
  });
  model.scrollFor(liveRoom);
  const selected = model.selectedIndex();
  if (rows.length === 0) out.push({ text: clip('  (no live runs)', width), style: 'dim' });
  for (let i = model.scrollTop; i < Math.min(rows.length, model.scrollTop + liveRoom); i++) {
    const run = rows[i] as WatchRun;
    out.push({
      text: clip(
        formatRow(columns, width, (c) => c.cell(run, now), waitsFor(run, now)),
        width,
      ),
      style: i === selected ? 'selected' : 'row',
    });
  }
  if (recentRows > 0) {
    out.push({ text: clip('RECENT', width), style: 'heading' });
    for (const run of recent.slice(0, recentRows)) {
      const ended = run.finished_at === null ? '' : `${age(run.finished_at, now)} ago`;
      const why = run.reason === null ? '' : `  ${run.reason}`;
      out.push({
        text: clip(
          formatRow(columns, width, (c) => (c.name === 'AGE' ? ended : c.cell(run, now)), why.trim()),
          width,
        ),
        style: 'dim',
      });
    }
  }
  return out;
}

/** The columns that fit, dropping the least needed first. */
function columnsFor(width: number): Column[] {
  let kept = [...COLUMNS];
  const need = (cols: Column[]) => cols.reduce((sum, c) => sum + c.width + 1, 0) + WAITS_MIN;
  while (need(kept) > width && kept.length > 1) {
    const weakest = kept.reduce((low, c) => (c.keep < low.keep ? c : low));
    if (weakest.keep >= 8) break;
    kept = kept.filter((c) => c !== weakest);
  }
  return kept;
}

function formatRow(
  columns: readonly Column[],
  width: number,
  cell: (c: Column) => string,
  last: string,
): string {
  const parts = columns.map((c) => pad(clip(cell(c), c.width), c.width));
  const used = columns.reduce((sum, c) => sum + c.width + 1, 0);
  return `${parts.join(' ')} ${clip(last, Math.max(0, width - used))}`;
}

function waitsFor(run: WatchRun, now: number): string {
  const waiting = run.waiting;
  if (waiting === null) return run.state === 'queued' ? 'a slot' : '';
  const since = age(waiting.since, now);
  if (waiting.kind === 'gate') return `gate "${waiting.step_id}" ${since}: ${waiting.prompt}`;
  return `input "${waiting.step_id}" ${since}: ${waiting.prompt}`;
}

function footerLines(model: TopModel, cli: CliSpelling): Line[] {
  const mode = model.mode;
  const lines: Line[] = [];
  const run = mode.kind === 'list' ? model.selected() : undefined;
  lines.push({ text: run === undefined ? '' : detail(run, cli), style: 'text' });
  if (mode.kind === 'deny-comment') {
    lines.push({
      text: `deny ${mode.runId}: comment (Enter sends, Esc cancels): ${mode.text}_`,
      style: 'notice',
    });
  } else if (mode.kind === 'confirm-cancel') {
    lines.push({ text: `cancel ${mode.runId}? y to confirm, any other key to keep it`, style: 'notice' });
  } else {
    lines.push({ text: model.notice?.text ?? '', style: model.notice?.error ? 'error' : 'notice' });
  }
  lines.push({
    text: '↑↓/jk select  a approve  d deny  c cancel  ⏎/l log  ? help  q quit',
    style: 'dim',
  });
  return lines;
}

/** What to do about the selected run, spelled as a command where one answers it. */
function detail(run: WatchRun, cli: CliSpelling): string {
  const waiting = run.waiting;
  if (waiting?.kind === 'input') {
    const fields = Object.entries(waiting.fields ?? {}).map(([name, spec]) => {
      const placeholder =
        spec.type === 'string' || spec.type === 'enum' ? `"<${spec.type}>"` : `<${spec.type}>`;
      return `"${name}": ${placeholder}`;
    });
    return `answer: ${cli.bin} submit-input ${run.run_id} --answers '{${fields.join(', ')}}'${cli.suffix}`;
  }
  if (waiting?.kind === 'gate')
    return `gate "${waiting.step_id}": a approves, d denies (or ${cli.bin} resume ${run.run_id} --approve${cli.suffix})`;
  return `${run.run_id}: ${run.state}${run.current_step === null ? '' : ` at ${run.current_step}`}`;
}

function titleLine(header: WatchHeader | null, now: number): string {
  if (header === null) return 'charter-daemon top · connecting…';
  const up = age(header.started_at, now);
  return `charter-daemon top · pid ${header.pid} · up ${up} · ${header.state} · ${header.project_root}`;
}

function linkLine(header: WatchHeader, now: number): string {
  const link = header.gateway;
  const since = link.since === null ? '' : ` since ${age(link.since, now)} ago`;
  const target = link.url === null ? ' (no gateway configured)' : ` → ${link.url}`;
  const oldest =
    header.oldest_unacked_age_seconds === null
      ? ''
      : `, oldest ${duration(header.oldest_unacked_age_seconds)}`;
  const fault = header.store_fault === null ? '' : ` · STORE ${header.store_fault.code}`;
  return `gateway: ${link.state}${target}${since} · backlog ${header.backlog}${oldest}${fault}`;
}

function activityLine(header: WatchHeader, width: number): string {
  const runs = header.runs;
  const counts =
    `runs: ${runs.running} running, ${runs.waiting} waiting, ${runs.queued} queued, ${runs.cancelling} cancelling · ` +
    `${runs.succeeded} succeeded, ${runs.failed} failed, ${runs.cancelled} cancelled`;
  const rates = header.events_per_second;
  const perSecond = rates.reduce((sum, n) => sum + n, 0) / Math.max(1, rates.length);
  const sparkWidth = Math.max(0, Math.min(rates.length, width - counts.length - 24));
  return `events/s ${sparkline(rates.slice(-sparkWidth))} ${perSecond.toFixed(1)} avg · ${counts}`;
}

export function sparkline(values: readonly number[]): string {
  const max = Math.max(0, ...values);
  if (max === 0) return SPARK[0]?.repeat(values.length) ?? '';
  return values
    .map((v) => SPARK[Math.min(SPARK.length - 1, Math.floor((v / max) * (SPARK.length - 1)))])
    .join('');
}

const HELP = [
  '',
  'KEYS',
  '  ↑ ↓  k j        select a run (PgUp PgDn Home End)',
  '  a               approve the gate the selected run waits at',
  '  d               deny it (asks for a comment; Enter sends, Esc cancels)',
  '  c               cancel the selected run (y confirms)',
  "  Enter  l        the selected run's log, live (Esc or l: back)",
  '  ?               this help (any key: back)',
  '  q  Ctrl-C       quit',
  '',
  'An input step is answered with the submit-input command shown at the bottom.',
];

function age(iso: string, now: number): string {
  return duration(Math.max(0, (now - Date.parse(iso)) / 1000));
}

function duration(seconds: number): string {
  if (seconds < 60) return `${Math.floor(seconds)}s`;
  if (seconds < 3600)
    return `${Math.floor(seconds / 60)}m${String(Math.floor(seconds % 60)).padStart(2, '0')}s`;
  if (seconds < 86_400)
    return `${Math.floor(seconds / 3600)}h${String(Math.floor((seconds % 3600) / 60)).padStart(2, '0')}m`;
  return `${Math.floor(seconds / 86_400)}d${Math.floor((seconds % 86_400) / 3600)}h`;
}

/** Control characters (escape sequences from a step's output, say) never reach the terminal. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: that is the point
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g;

function clip(text: string, width: number): string {
  const chars = [
    ...text
      .replace(/[\r\n]+/g, ' ')
      .replace(/\t/g, '  ')
      .replace(CONTROL, ''),
  ];
  if (chars.length <= width) return chars.join('');
  if (width <= 1) return chars.slice(0, width).join('');
  return `${chars.slice(0, width - 1).join('')}…`;
}

function pad(text: string, width: number): string {
  const length = [...text].length;
  return length >= width ? text : text + ' '.repeat(width - length);
}
