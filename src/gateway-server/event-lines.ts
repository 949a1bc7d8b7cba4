/**
 * How the dev gateway shows what it receives: one readable line per stored event (time, run,
 * type, a short summary) and, with `--frames`, one line per frame in or out. Pure. Everything a
 * daemon sends is untrusted text: control characters are shown escaped (step output may carry
 * terminal escapes) and every line is clipped, so a hostile event can neither garble the
 * operator's terminal nor flood it.
 */
import type { FrameRecord, UpEvent } from './gateway-peer.js';

/** The longest line printed for one event or frame, in characters (the rest is cut, marked …). */
export const MAX_EVENT_LINE_CHARS = 240;
/** How much of a step's output chunk an event line shows. */
const OUTPUT_CLIP_CHARS = 80;
/** How much of a free-text field (a reason, a comment, an error message) an event line shows. */
const TEXT_CLIP_CHARS = 100;

/** What the dev gateway remembers of a command it sent, to name it when its result comes back. */
export interface SentCommand {
  readonly kind: string;
  readonly runId: string | null;
  /** A few words: `approve confirm`, `deny confirm`, `greet`, … */
  readonly what: string;
}

type Data = Record<string, unknown>;

/**
 * One line for a stored event: `11:10:59 r01M896DNPB867TG7XKK63RRR5P run.waiting at gate confirm`.
 * Daemon-level events (no run) show `-` in the run column. `sent` names the commands this
 * gateway sent, so a `command.result` says what it answers.
 */
export function eventLine(event: UpEvent, sent?: (cmdId: string) => SentCommand | undefined): string {
  const data = isRecord(event.data) ? event.data : {};
  const summary = summarise(event.type, data, sent);
  const truncated =
    event.truncated === undefined ? '' : ` [cut to fit a frame: ${event.truncated.bytes} bytes]`;
  const line = `${clock(event.ts)} ${event.run_id ?? '-'} ${event.type}${summary}${truncated}`;
  return clip(printable(line), MAX_EVENT_LINE_CHARS);
}

/** The summary after the type, with its leading space or colon. */
function summarise(type: string, data: Data, sent?: (cmdId: string) => SentCommand | undefined): string {
  const step = str(data.step_id);
  switch (type) {
    case 'daemon.started':
      return ` pid ${num(data.pid)}, epoch ${num(data.epoch)}, version ${str(data.version) ?? '?'} (previous shutdown: ${str(data.previous_shutdown) ?? '?'}, ${num(data.restored_runs)} run(s) restored)`;
    case 'daemon.stopping':
      return `: ${str(data.reason) ?? '?'} (${num(data.executing_runs)} run(s) executing)`;
    case 'daemon.stopped':
      return `: ${str(data.reason) ?? '?'}${data.drain_timed_out === true ? ' (drain timed out)' : ''}${
        str(data.failure) === undefined ? '' : `, failure: ${text(data.failure)}`
      }`;
    case 'command.result':
      return commandResult(data, sent);
    case 'run.queued':
      return ` ${str(data.workflow_id) ?? '?'} (inputs: ${values(data.inputs)})`;
    case 'run.started':
      return ` ${str(data.workflow_id) ?? '?'} (${num(data.steps)} steps)`;
    case 'step.started':
      return ` ${step ?? '?'} (attempt ${num(data.attempt)})`;
    case 'step.output': {
      const stream = data.stream === 'stderr' ? 'stderr' : 'stdout';
      const chunk = str(data.text) ?? '';
      return ` ${step ?? '?'} ${stream}: ${JSON.stringify(clip(chunk, OUTPUT_CLIP_CHARS))}`;
    }
    case 'step.finished': {
      const outcome = str(data.outcome) ?? 'finished';
      const code = typeof data.exit_code === 'number' ? ` (exit code ${data.exit_code})` : '';
      // What the attempt wrote to CHARTER_OUTPUT (secrets arrive as ***), when anything.
      const written =
        isRecord(data.outputs) && Object.keys(data.outputs).length > 0
          ? ` outputs: ${values(data.outputs)}`
          : '';
      return ` ${step ?? '?'}: ${outcome === 'exited' ? 'failed' : outcome}${code}${written}`;
    }
    case 'step.retrying':
      return ` ${step ?? '?'} (attempt ${num(data.attempt)})${reason(data)}`;
    case 'run.waiting':
      return ` at ${str(data.kind) ?? 'step'} ${step ?? '?'}`;
    case 'gate.decided':
      return ` ${step ?? '?'}: ${str(data.decision) ?? '?'}${by(data)}${
        str(data.comment) === undefined
          ? ''
          : `: ${JSON.stringify(clip(str(data.comment) ?? '', TEXT_CLIP_CHARS))}`
      }`;
    case 'input.submitted':
      return ` ${step ?? '?'}${by(data)}: ${values(data.answers)}`;
    case 'run.cancelling':
      return `${step === undefined ? '' : ` at ${step}`}${reason(data)}${by(data)}`;
    case 'run.succeeded':
      return '';
    case 'run.failed':
    case 'run.cancelled':
    case 'run.requeued':
      return `${reason(data)}${str(data.while) === undefined ? '' : ` (while ${str(data.while)})`}`;
    default:
      return pairs(data);
  }
}

/** `command.result dg-…-3 (approve confirm) applied`, `… rejected: RUN_NOT_WAITING: …`. */
function commandResult(data: Data, sent?: (cmdId: string) => SentCommand | undefined): string {
  const cmdId = str(data.cmd_id) ?? '?';
  const command = sent?.(cmdId);
  const about = command === undefined ? '' : ` (${command.what})`;
  const status = str(data.status) ?? '?';
  const error = isRecord(data.error) ? data.error : undefined;
  const why =
    error === undefined ? '' : `: ${str(error.code) ?? '?'}: ${text(firstLine(str(error.message) ?? ''))}`;
  const run = str(data.run_id);
  const runPart = run === undefined || command?.runId === run ? '' : ` run ${run}`;
  return ` ${cmdId}${about} ${status}${why}${runPart}`;
}

/**
 * One line for a frame (`--frames`): time, direction, connection and a summary of the frame,
 * e.g. `11:11:56.656 → in  gw-1-6fbbac events n=58 seq=1..58 types=daemon.started,run.queued,…`.
 */
export function frameLine(record: FrameRecord): string {
  const arrow = record.dir === 'in' ? '→ in ' : '← out';
  const time = new Date(record.at).toISOString().slice(11, 23);
  return clip(
    printable(`${time} ${arrow} ${record.connId} ${frameSummary(record.frame)}`),
    MAX_EVENT_LINE_CHARS,
  );
}

function frameSummary(frame: unknown): string {
  if (typeof frame === 'string') return `raw ${JSON.stringify(clip(frame, 80))}`;
  if (!isRecord(frame)) return clip(json(frame), 80);
  const f = frame;
  switch (f.op) {
    case 'hello': {
      const project = isRecord(f.project) ? str(f.project.name) : undefined;
      return `hello daemon=${field(f.daemon_id)} epoch=${field(f.epoch)} v=${field(f.daemon_version)} project=${project ?? '?'} down_applied=${field(f.down_applied)}`;
    }
    case 'welcome':
      return `welcome conn=${field(f.conn_id)} hb_ms=${field(f.hb_ms)} max_frame=${field(f.max_frame)} up_committed=${field(f.up_committed)} up_limit=${field(f.up_limit)}`;
    case 'events': {
      const events = Array.isArray(f.events) ? f.events.filter(isRecord) : [];
      const types = [...new Set(events.map((e) => String(e.type)))].join(',');
      return `events n=${events.length} seq=${field(events[0]?.seq)}..${field(events.at(-1)?.seq)} types=${clip(types, 50)}`;
    }
    case 'ack':
      return `ack up=${field(f.up)} up_limit=${field(f.up_limit)}`;
    case 'command':
      return `command dseq=${field(f.dseq)} ${field(f.kind)} cmd_id=${field(f.cmd_id)}${
        f.run_id === undefined ? '' : ` run=${field(f.run_id)}`
      } args=${clip(json(f.args), 60)}`;
    case 'cack':
      return `cack down=${field(f.down)}`;
    case 'ping':
    case 'pong':
      return `${f.op} t=${field(f.t)}`;
    case 'error':
      return `error code=${field(f.code)} ${text(field(f.message))}`;
    default:
      return clip(json(f), 80);
  }
}

// ---- text ------------------------------------------------------------------------------------

/** Cuts to `max` characters, marking the cut with `…`. */
export function clip(value: string, max: number): string {
  return value.length > max ? `${value.slice(0, max - 1)}…` : value;
}

/** C0 controls, DEL and C1 controls. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is escaped
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f-\u009f]/g;

/** Control characters (C0, DEL, C1) as `\u001b`-style escapes: nothing can drive the terminal. */
export function printable(value: string): string {
  return value.replace(CONTROL_CHARACTERS, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Local `HH:MM:SS` of an ISO time (as `charter-daemon logs` shows), the text itself if unreadable. */
export function clock(iso: string): string {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return clip(iso, 30);
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

/**
 * JSON text of an untrusted value; `(unprintable)` when it cannot be written (nested too deep
 * for the stack, say): a line is printed whatever the daemon sent.
 */
function json(value: unknown): string {
  try {
    return JSON.stringify(value) ?? 'undefined';
  } catch {
    return '(unprintable)';
  }
}

function isRecord(value: unknown): value is Data {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function str(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function num(value: unknown): string {
  return typeof value === 'number' ? String(value) : '?';
}

function field(value: unknown): string {
  return typeof value === 'string' ? clip(value, 60) : clip(json(value), 60);
}

function text(value: unknown): string {
  return clip(typeof value === 'string' ? value : json(value), TEXT_CLIP_CHARS);
}

function firstLine(value: string): string {
  const newline = value.indexOf('\n');
  return newline === -1 ? value : `${value.slice(0, newline)} …`;
}

function reason(data: Data): string {
  return str(data.reason) === undefined ? '' : `: ${text(data.reason)}`;
}

function by(data: Data): string {
  return str(data.by) === undefined ? '' : ` by ${clip(str(data.by) ?? '', 60)}`;
}

/** `name="Ana", shout=false` (strings as JSON, so spaces and empty strings show), `(none)`. */
function values(value: unknown): string {
  if (!isRecord(value)) return '(none)';
  const entries = Object.entries(value);
  if (entries.length === 0) return '(none)';
  return clip(entries.map(([name, v]) => `${name}=${json(v)}`).join(', '), TEXT_CLIP_CHARS);
}

function pairs(data: Data): string {
  const entries = Object.entries(data);
  if (entries.length === 0) return '';
  return ` ${clip(entries.map(([key, v]) => `${key}=${json(v)}`).join(' '), TEXT_CLIP_CHARS)}`;
}
