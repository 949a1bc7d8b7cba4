/**
 * How the run commands (run, runs list/show, resume, submit-input, cancel, logs) present runs:
 * durations, times, tables, one line per journal entry, and the exact commands that answer a
 * waiting run. Light on purpose: the bundled commands import it, never anything of the daemon.
 */
import { realpathSync } from 'node:fs';
import { CharterError } from '../errors/charter-error.js';
import { isFinalRunState } from '../protocol/run-counts.js';
import type { LogEntry, RunDetail, StepRecord, Waiting } from '../protocol/runs.js';
import { RunIdSchema } from '../protocol/runs.js';
import type { OutputChunk } from '../protocol/steps.js';
import { formatDuration } from './base-command.js';
import type { ProjectTarget } from './daemon-client.js';
import { renderTable } from './table.js';

export { renderTable };

// ---- run ids -----------------------------------------------------------------------------------

/**
 * Checks a run id locally (the daemon checks it too) so a typo gets a clear error at once,
 * instead of the daemon's generic "invalid params".
 */
export function checkRunId(runId: string): string {
  if (RunIdSchema.safeParse(runId).success) return runId;
  throw new CharterError(
    'UNKNOWN_RUN',
    `"${runId}" is not a run id: run ids are "r" followed by 26 characters of 0-9 and A-Z without I, L, O, U (such as r01M895FFEVNRBYAD18R06K01NW)`,
  );
}

// ---- shell commands shown to the user ----------------------------------------------------------

/** Quotes a word for POSIX shells when it needs it. */
export function shellQuote(word: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word;
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

/**
 * ` --project-path ROOT` when the project is not the current directory, so a printed command
 * can be pasted as it is; empty otherwise.
 */
export function projectSuffix(target: ProjectTarget): string {
  let cwd: string;
  try {
    cwd = realpathSync(process.cwd());
  } catch {
    cwd = process.cwd();
  }
  return cwd === target.projectRoot ? '' : ` --project-path ${shellQuote(target.projectRoot)}`;
}

/** A sample value of a field's type, for the `submit-input` command shown to the user. */
function sampleValue(spec: NonNullable<Waiting['fields']>[string]): unknown {
  switch (spec.type) {
    case 'string':
      return 'text';
    case 'integer':
      return 1;
    case 'number':
      return 1.5;
    case 'boolean':
      return true;
    case 'enum':
      return spec.values?.[0] ?? '';
    case 'secret':
      return '<secret>';
  }
}

/** The command lines that answer what the run waits for (with sample answers for an input step). */
export function answerCommands(runId: string, waiting: Waiting, suffix = ''): string[] {
  if (waiting.kind === 'gate') {
    return [
      `charter-daemon resume ${runId} --approve${suffix}`,
      `charter-daemon resume ${runId} --deny --comment 'why'${suffix}`,
    ];
  }
  const fields = Object.entries(waiting.fields ?? {});
  // Required fields first: the sample is a starting point to edit, so it shows what must be there.
  fields.sort(([a, x], [b, y]) => Number(y.required) - Number(x.required) || a.localeCompare(b));
  const sample = Object.fromEntries(fields.map(([name, spec]) => [name, sampleValue(spec)]));
  return [`charter-daemon submit-input ${runId} --answers ${shellQuote(JSON.stringify(sample))}${suffix}`];
}

// ---- durations and times -----------------------------------------------------------------------

/** Milliseconds as "15ms", "4.2s", "3m 12s" or "2h 5m". */
export function formatMs(ms: number): string {
  const safe = Math.max(0, ms);
  return safe < 1000 ? `${Math.round(safe)}ms` : formatDuration(safe / 1000);
}

const pad2 = (n: number) => String(n).padStart(2, '0');

/** An ISO timestamp as local `HH:MM:SS`. */
export function formatClock(iso: string): string {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return `${pad2(date.getHours())}:${pad2(date.getMinutes())}:${pad2(date.getSeconds())}`;
}

/** An ISO timestamp as local `YYYY-MM-DD HH:MM:SS`. */
export function formatDateTime(iso: string | null): string {
  if (iso === null) return '-';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return `${date.getFullYear()}-${pad2(date.getMonth() + 1)}-${pad2(date.getDate())} ${formatClock(iso)}`;
}

/** How long a step ran (or has been running/waiting, marked "so far"); "-" before it started. */
export function stepDuration(step: StepRecord, now = Date.now()): string {
  if (step.started_at === null) return '-';
  const start = Date.parse(step.started_at);
  if (step.finished_at === null) return `${formatMs(now - start)} so far`;
  return formatMs(Date.parse(step.finished_at) - start);
}

// ---- values ------------------------------------------------------------------------------------

/** `name=value` pairs; strings are shown as JSON (quoted) so spaces and empty strings are visible. */
export function formatValues(values: Readonly<Record<string, unknown>>): string {
  const entries = Object.entries(values);
  if (entries.length === 0) return '(none)';
  return entries.map(([name, value]) => `${name}=${JSON.stringify(value)}`).join(', ');
}

/** Field specs of an input step, one line each: name, type (enum values), required, description. */
export function fieldLines(fields: NonNullable<Waiting['fields']>): string[] {
  const rows = Object.entries(fields).map(([name, spec]) => [
    name,
    spec.type === 'enum' && spec.values !== null ? `enum (${spec.values.join(', ')})` : spec.type,
    spec.required ? 'required' : 'optional',
    spec.description ?? '',
  ]);
  return renderTable(['FIELD', 'TYPE', 'REQUIRED', 'DESCRIPTION'], rows);
}

/** What a waiting run waits for, as lines (prompt, fields, the commands that answer it). */
export function waitingLines(runId: string, waiting: Waiting, suffix = ''): string[] {
  const lines: string[] = [];
  const since = `since ${formatDateTime(waiting.since)}`;
  if (waiting.kind === 'gate') {
    lines.push(`waiting for approval at gate "${waiting.step_id}" (${since}):`);
    lines.push(`  ${waiting.prompt}`);
    const [approve, deny] = answerCommands(runId, waiting, suffix);
    lines.push(`  approve: ${approve ?? ''}`);
    lines.push(`  deny:    ${deny ?? ''}`);
    return lines;
  }
  lines.push(`waiting for input at step "${waiting.step_id}" (${since}):`);
  lines.push(`  ${waiting.prompt}`);
  for (const line of fieldLines(waiting.fields ?? {})) lines.push(`    ${line}`);
  lines.push(`  answer:  ${answerCommands(runId, waiting, suffix)[0] ?? ''}`);
  return lines;
}

/** One line about where a run stands: `run R succeeded`, `run R failed (reason: …)`, … */
export function stateLine(run: Pick<RunDetail, 'run_id' | 'state' | 'reason' | 'current_step'>): string {
  const at = run.current_step !== null && !isFinal(run.state) ? ` at step "${run.current_step}"` : '';
  const reason = run.reason !== null && run.reason !== '' ? ` (reason: ${run.reason})` : '';
  return `run ${run.run_id} ${run.state}${at}${reason}`;
}

export const isFinal: (state: RunDetail['state']) => boolean = isFinalRunState;

// ---- journal entries ---------------------------------------------------------------------------

type Data = Record<string, unknown>;
const str = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined);
const isData = (value: unknown): value is Data =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** The chunk of a `step.output` entry, or undefined for a transition. */
export function outputOf(entry: LogEntry): OutputChunk | undefined {
  if (entry.type !== 'step.output') return undefined;
  const data = (entry.data ?? {}) as Data;
  return { stream: data.stream === 'stderr' ? 'stderr' : 'stdout', text: str(data.text) ?? '' };
}

/** The details of a transition, after its type: `compose (attempt 1)`, `: step_failed: exit code 3`, … */
function describe(type: string, data: Data): string {
  const step = str(data.step_id);
  switch (type) {
    case 'run.queued':
      return ` ${str(data.workflow_id) ?? ''} (inputs: ${formatValues((data.inputs ?? {}) as Data)})`;
    case 'run.started':
      return ` ${str(data.workflow_id) ?? ''} (${String(data.steps ?? '?')} steps)`;
    case 'run.cancelling':
      return `${step ? ` ${step}` : ''}${str(data.reason) ? `: ${str(data.reason)}` : ''}`;
    case 'step.started':
      return ` ${step ?? '?'} (attempt ${String(data.attempt ?? 1)})`;
    case 'step.finished': {
      const outcome = str(data.outcome) ?? 'finished';
      const code = typeof data.exit_code === 'number' ? `exit code ${data.exit_code}` : null;
      const outputs = isData(data.outputs) && Object.keys(data.outputs).length > 0 ? data.outputs : null;
      const written = outputs === null ? '' : ` outputs: ${formatValues(outputs)}`;
      if (outcome === 'succeeded') return ` ${step ?? '?'}: succeeded (exit code 0)${written}`;
      return ` ${step ?? '?'}: ${outcome === 'exited' ? 'failed' : outcome}${code ? ` (${code})` : ''}${written}`;
    }
    case 'step.retrying':
      return ` ${step ?? '?'}: ${retryingText(data)}`;
    case 'run.waiting':
      return ` at ${str(data.kind) ?? 'step'} ${step ?? '?'}`;
    case 'gate.decided': {
      const by = str(data.by) ? ` by ${str(data.by)}` : '';
      const comment = str(data.comment) ? `: ${JSON.stringify(data.comment)}` : '';
      return ` ${step ?? '?'}: ${str(data.decision) ?? '?'}${by}${comment}`;
    }
    case 'input.submitted': {
      const by = str(data.by) ? ` by ${str(data.by)}` : '';
      return ` ${step ?? '?'}${by}: ${formatValues((data.answers ?? {}) as Data)}`;
    }
    case 'run.succeeded':
      return '';
    case 'run.failed':
    case 'run.cancelled':
    case 'run.requeued': {
      const reason = str(data.reason);
      const where = str(data.while) ? ` (while ${str(data.while)})` : '';
      return `${reason ? `: ${reason}` : ''}${where}`;
    }
    default: {
      const pairs = Object.entries(data).map(([key, value]) => `${key}=${JSON.stringify(value)}`);
      return pairs.length === 0 ? '' : ` ${pairs.join(' ')}`;
    }
  }
}

/**
 * `attempt 1 failed (step_failed: exit code 3); attempt 2 of 4 in 5s (at 12:00:05)`, or for a step
 * re-run after a restart `attempt 1 interrupted; attempt 2 next`.
 */
function retryingText(data: Data): string {
  const attempt = typeof data.attempt === 'number' ? String(data.attempt) : '?';
  const next = typeof data.next_attempt === 'number' ? String(data.next_attempt) : '?';
  const reason = str(data.reason);
  const failed = reason === 'interrupted' ? 'interrupted' : `failed${reason ? ` (${reason})` : ''}`;
  const of = typeof data.max_attempts === 'number' ? ` of ${data.max_attempts}` : '';
  const due = str(data.due_at);
  const when =
    typeof data.in_ms === 'number'
      ? ` in ${formatMs(data.in_ms)}${due ? ` (at ${formatClock(due)})` : ''}`
      : ' next';
  return `attempt ${attempt} ${failed}; attempt ${next}${of}${when}`;
}

/** When a step waiting to retry starts its next attempt, as a line for `runs show`; null otherwise. */
export function retryLine(step: StepRecord, now = Date.now()): string | null {
  if (step.state !== 'retrying') return null;
  const at = step.retry_at ?? null;
  const when = at === null ? 'soon' : `at ${formatDateTime(at)} (${dueIn(Date.parse(at) - now)})`;
  return `retrying step "${step.id}": attempt ${step.attempt} failed; attempt ${step.attempt + 1} starts ${when}`;
}

const dueIn = (ms: number): string => (ms > 0 ? `in ${formatMs(ms)}` : 'due now');

/** Earlier attempts of retried steps, as rows of STEP, ATTEMPT, DURATION, EXIT, REASON. */
export function earlierAttemptRows(steps: readonly StepRecord[]): string[][] {
  return steps.flatMap((step) =>
    (step.attempts ?? []).map((attempt) => [
      step.id,
      String(attempt.attempt),
      attempt.started_at === null || attempt.finished_at === null
        ? '-'
        : formatMs(Date.parse(attempt.finished_at) - Date.parse(attempt.started_at)),
      attempt.exit_code === null ? '-' : String(attempt.exit_code),
      attempt.reason ?? '',
    ]),
  );
}

/**
 * The outputs run steps wrote, one line each, for `runs show`: a step's earlier attempts first
 * (never passed on), then its latest attempt, whose outputs are passed on only when it succeeded.
 */
export function outputLines(steps: readonly StepRecord[]): string[] {
  return steps.flatMap((step) => {
    const earlier = (step.attempts ?? [])
      .filter((attempt) => Object.keys(attempt.outputs ?? {}).length > 0)
      .map(
        (attempt) =>
          `${step.id} (attempt ${attempt.attempt}): ${formatValues(attempt.outputs ?? {})} (earlier attempt: not passed on)`,
      );
    const outputs = step.outputs ?? {};
    if (Object.keys(outputs).length === 0) return earlier;
    const which = earlier.length > 0 ? ` (attempt ${step.attempt})` : '';
    // Only a succeeded step passes its outputs on; a failed one's are shown to say why.
    const note = step.state === 'succeeded' ? '' : ` (${step.state}: not passed on)`;
    return [...earlier, `${step.id}${which}: ${formatValues(outputs)}${note}`];
  });
}

/** A transition as one line: `[HH:MM:SS] step.started build (attempt 1)`. */
export function transitionLine(entry: LogEntry): string {
  const data = typeof entry.data === 'object' && entry.data !== null ? (entry.data as Data) : {};
  return `[${formatClock(entry.ts)}] ${entry.type}${describe(entry.type, data)}`;
}

/**
 * Writes entries for a person: output text as it is (stderr chunks to stderr), each transition
 * as one line on stdout, starting on a fresh line when output left one unfinished.
 */
export class EntryPrinter {
  #stdoutAtLineStart = true;
  #stderrAtLineStart = true;

  constructor(
    private readonly out: (text: string) => void = (text) => process.stdout.write(text),
    private readonly err: (text: string) => void = (text) => process.stderr.write(text),
  ) {}

  print(entry: LogEntry): void {
    const chunk = outputOf(entry);
    if (chunk !== undefined) {
      if (chunk.text === '') return;
      if (chunk.stream === 'stderr') {
        this.err(chunk.text);
        this.#stderrAtLineStart = chunk.text.endsWith('\n');
      } else {
        this.out(chunk.text);
        this.#stdoutAtLineStart = chunk.text.endsWith('\n');
      }
      return;
    }
    this.line(transitionLine(entry));
  }

  /** A line of our own on stdout (a transition, a final state). */
  line(text: string): void {
    this.out(`${this.#stdoutAtLineStart ? '' : '\n'}${text}\n`);
    this.#stdoutAtLineStart = true;
  }

  /** Ends an unfinished stderr line, so the shell prompt starts on its own line. */
  finish(): void {
    if (!this.#stderrAtLineStart) this.err('\n');
    if (!this.#stdoutAtLineStart) this.out('\n');
    this.#stderrAtLineStart = true;
    this.#stdoutAtLineStart = true;
  }
}

/** Bytes as "512 B", "3.4 KiB", "12.0 MiB", "1.2 GiB". */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}
