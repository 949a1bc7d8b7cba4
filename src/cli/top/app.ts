/**
 * `charter-daemon top` at a terminal: terminal-kit for the full screen, keys and resizes; the
 * `watch` stream for what to show (the daemon pushes changes, nothing here polls); the ordinary
 * control methods (`gate.decide`, `run.cancel`, `run.logs`) for what a key does. Loaded only by
 * `top`, so no other command pays for terminal-kit.
 */
import type { ScreenBuffer } from 'terminal-kit';
import type { CharterClient } from '../../client/client.js';
import { hasCode } from '../../errors/charter-error.js';
import { errorMessage } from '../../errors/error-message.js';
import type { LogEntry } from '../../protocol/runs.js';
import type { Action } from './model.js';
import { TopModel } from './model.js';
import { type Line, type LineStyle, render } from './render.js';

export interface TopOptions {
  /** Connects to the project's daemon (the watch stream and each log run on connections of their own). */
  readonly connect: () => Promise<CharterClient>;
  /** How the user types the CLI, for the commands shown (e.g. `charter-daemon … --project-path P`). */
  readonly cli: string;
  readonly projectSuffix: string;
}

/** Redraws wait this long at most after a change, so a burst of changes draws once. */
const DRAW_EVERY_MS = 30;
const COMMAND_TIMEOUT_MS = 10_000;

const STYLES: Record<LineStyle, ScreenBuffer.Attributes> = {
  title: { inverse: true, bold: true },
  text: {},
  heading: { bold: true },
  columns: { underline: true },
  row: {},
  selected: { inverse: true },
  dim: { dim: true },
  notice: { color: 'yellow' },
  error: { color: 'red', bold: true },
};

/** Runs the view until `q` or Ctrl-C; rejects when the daemon goes away (the terminal restored first). */
export async function runTop(options: TopOptions): Promise<void> {
  const client = await options.connect();
  // Imported here, not at the top: the command's bundle would otherwise load it on every call.
  const { default: termkit } = await import('terminal-kit');
  const term = termkit.terminal;
  const model = new TopModel();
  let buffer: ScreenBuffer | undefined;
  /** Ends the log being shown (its stream, and so its connection). */
  let logView: AbortController | undefined;
  const watching = new AbortController();
  let drawTimer: NodeJS.Timeout | undefined;
  let finish: (error?: unknown) => void = () => undefined;
  const finished = new Promise<void>((resolve, reject) => {
    finish = (error?: unknown) => (error === undefined ? resolve() : reject(error));
  });
  let done = false;

  const paint = (lines: readonly Line[], width: number, height: number) => {
    if (buffer === undefined || buffer.width !== width || buffer.height !== height) {
      buffer = new termkit.ScreenBuffer({ dst: term, width, height });
      term.clear();
    }
    buffer.fill({ attr: {}, char: ' ' });
    lines.forEach((line, y) => {
      // Styled rows span the whole width (the selection bar).
      const text = line.style === 'selected' || line.style === 'title' ? line.text.padEnd(width) : line.text;
      buffer?.put({ x: 0, y, dx: 1, dy: 0, attr: STYLES[line.style], wrap: false }, text);
    });
    buffer.draw({ delta: true });
  };
  const draw = () => {
    drawTimer = undefined;
    if (done) return;
    const width = term.width;
    const height = term.height;
    paint(
      render(model, { width, height }, Date.now(), { bin: options.cli, suffix: options.projectSuffix }),
      width,
      height,
    );
  };
  const scheduleDraw = (now = false) => {
    if (now) {
      if (drawTimer !== undefined) clearTimeout(drawTimer);
      draw();
      return;
    }
    drawTimer ??= setTimeout(draw, DRAW_EVERY_MS);
  };

  const restore = () => {
    if (done) return;
    done = true;
    if (drawTimer !== undefined) clearTimeout(drawTimer);
    clearInterval(clock);
    term.off('key', onKey);
    term.off('resize', onResize);
    term.grabInput(false);
    term.styleReset();
    term.hideCursor(false);
    term.fullscreen(false);
    logView?.abort();
    watching.abort();
    client.close();
  };

  const command = (what: string, done: string, call: () => Promise<{ run_id: string; state: string }>) => {
    model.say(`${what}…`);
    call().then(
      (ack) => {
        model.say(`run ${ack.run_id} ${done}: now ${ack.state}`);
        scheduleDraw();
      },
      (error: unknown) => {
        model.say(`${what} failed: ${errorMessage(error)}`, true);
        scheduleDraw();
      },
    );
  };

  const openLog = async (runId: string) => {
    logView?.abort();
    const view = new AbortController();
    logView = view;
    const batches = client.logs(
      runId,
      { follow: true },
      { timeoutMs: COMMAND_TIMEOUT_MS, signal: view.signal },
    );
    for await (const batch of batches) {
      for (const entry of batch.entries) {
        if (entry.type === 'step.output') model.appendOutput(runId, outputText(entry));
        else model.appendLine(runId, transitionLine(entry));
      }
      if (batch.done) model.appendLine(runId, `— the run ended: ${batch.state} —`);
      scheduleDraw();
    }
  };

  const perform = (action: Action) => {
    switch (action.kind) {
      case 'none':
        return;
      case 'quit':
        restore();
        finish();
        return;
      case 'approve':
        command(`approve ${action.runId}`, 'approved', () =>
          client.decideGate({ run_id: action.runId, decision: 'approve', step_id: action.stepId }),
        );
        return;
      case 'deny':
        command(`deny ${action.runId}`, 'denied', () =>
          client.decideGate({
            run_id: action.runId,
            decision: 'deny',
            step_id: action.stepId,
            ...(action.comment === '' ? {} : { comment: action.comment }),
          }),
        );
        return;
      case 'cancel':
        command(`cancel ${action.runId}`, 'cancelled', () => client.cancelRun({ run_id: action.runId }));
        return;
      case 'open-log':
        openLog(action.runId).catch((error: unknown) => {
          // A log closed on purpose (another one opened, the view closed) is no failure.
          if (hasCode(error, 'ABORTED')) return;
          model.appendLine(action.runId, `— ${errorMessage(error)} —`);
          scheduleDraw();
        });
        return;
      case 'close-log':
        logView?.abort();
        logView = undefined;
        return;
    }
  };

  const onKey = (name: string, _matches: string[], data: { isCharacter?: boolean }) => {
    if (model.mode.kind === 'list' && model.notice !== null && !model.notice.text.endsWith('…')) {
      model.notice = null;
    }
    perform(model.key(name, data?.isCharacter === true));
    // A key is answered on screen at once, not at the next batch of changes.
    scheduleDraw(true);
  };
  const onResize = () => scheduleDraw(true);

  term.fullscreen(true);
  term.hideCursor(true);
  term.grabInput(true);
  term.on('key', onKey);
  term.on('resize', onResize);
  // Ages and uptime move even when nothing happens.
  const clock = setInterval(() => scheduleDraw(), 1000);
  draw();

  const follow = async (): Promise<void> => {
    const updates = client.watch({ recent: 20 }, { timeoutMs: COMMAND_TIMEOUT_MS, signal: watching.signal });
    for await (const update of updates) {
      model.apply(update);
      scheduleDraw();
    }
  };
  follow().then(
    () => {
      restore();
      finish();
    },
    (error: unknown) => {
      if (done) return;
      restore();
      finish(error);
    },
  );
  return finished;
}

function outputText(entry: LogEntry): string {
  const text = (entry.data as { text?: unknown } | null)?.text;
  return typeof text === 'string' ? text : '';
}

/** A transition as `logs` prints it: `[HH:MM:SS] step.started build (reason)`, local time. */
function transitionLine(entry: LogEntry): string {
  const data = (entry.data ?? {}) as { step_id?: unknown; reason?: unknown };
  const time = new Date(entry.ts).toTimeString().slice(0, 8);
  const step = typeof data.step_id === 'string' ? ` ${data.step_id}` : '';
  const reason = typeof data.reason === 'string' ? ` (${data.reason})` : '';
  return `[${time}] ${entry.type}${step}${reason}`;
}
