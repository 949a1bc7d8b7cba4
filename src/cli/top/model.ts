/**
 * What `charter-daemon top` knows and what a key press means: the live runs as the `watch`
 * stream reported them, the selection, the mode (list, help, a confirmation, a comment being
 * typed, a log). Pure: no terminal and no socket, so keys and updates are tested as data.
 */
import type { WatchHeader, WatchRun, WatchUpdate } from '../../protocol/observe.js';

export type Mode =
  | { kind: 'list' }
  | { kind: 'help' }
  | { kind: 'confirm-cancel'; runId: string }
  | { kind: 'deny-comment'; runId: string; stepId: string; text: string }
  | { kind: 'log'; runId: string; lines: string[] };

/** What the app must do after a key. */
export type Action =
  | { kind: 'none' }
  | { kind: 'quit' }
  | { kind: 'approve'; runId: string; stepId: string }
  | { kind: 'deny'; runId: string; stepId: string; comment: string }
  | { kind: 'cancel'; runId: string }
  | { kind: 'open-log'; runId: string }
  | { kind: 'close-log' };

export interface Notice {
  readonly text: string;
  readonly error: boolean;
}

/** Live runs are listed in this order of states, then oldest first. */
const STATE_RANK: Record<string, number> = { running: 0, cancelling: 1, waiting: 2, queued: 3 };
/** Lines of a log kept for the log view. */
const LOG_LINES_KEPT = 1000;
const MAX_COMMENT = 4096;

export class TopModel {
  header: WatchHeader | null = null;
  readonly live = new Map<string, WatchRun>();
  recent: WatchRun[] = [];
  mode: Mode = { kind: 'list' };
  notice: Notice | null = null;
  /** First live row shown (the list scrolls to keep the selection visible). */
  scrollTop = 0;
  #selectedId: string | null = null;
  /** Where the selection was, to stay near it when its run leaves the list. */
  #selectedIndex = 0;
  #sorted: WatchRun[] | null = null;

  apply(update: WatchUpdate): void {
    if (update.reset) this.live.clear();
    for (const run of update.runs) this.live.set(run.run_id, run);
    for (const runId of update.removed) this.live.delete(runId);
    if (update.recent !== undefined) this.recent = update.recent;
    this.header = update.header;
    if (update.reset || update.runs.length > 0 || update.removed.length > 0) this.#sorted = null;
  }

  /** Live runs in display order. */
  rows(): WatchRun[] {
    if (this.#sorted === null) {
      this.#sorted = [...this.live.values()].sort(
        (a, b) =>
          (STATE_RANK[a.state] ?? 9) - (STATE_RANK[b.state] ?? 9) ||
          a.created_at.localeCompare(b.created_at) ||
          a.run_id.localeCompare(b.run_id),
      );
    }
    return this.#sorted;
  }

  /** The selected row's index; the selection follows its run, or stays at its place when it left. */
  selectedIndex(): number {
    const rows = this.rows();
    if (rows.length === 0) return -1;
    const at = this.#selectedId === null ? -1 : rows.findIndex((run) => run.run_id === this.#selectedId);
    const index = at >= 0 ? at : Math.min(this.#selectedIndex, rows.length - 1);
    this.#selectedIndex = index;
    this.#selectedId = rows[index]?.run_id ?? null;
    return index;
  }

  selected(): WatchRun | undefined {
    const index = this.selectedIndex();
    return index < 0 ? undefined : this.rows()[index];
  }

  move(delta: number): void {
    const rows = this.rows();
    if (rows.length === 0) return;
    const index = Math.max(0, Math.min(rows.length - 1, this.selectedIndex() + delta));
    this.#selectedIndex = index;
    this.#selectedId = rows[index]?.run_id ?? null;
  }

  /** Keeps the selected row within a window of `visible` rows. */
  scrollFor(visible: number): void {
    const index = Math.max(0, this.selectedIndex());
    if (index < this.scrollTop) this.scrollTop = index;
    if (index >= this.scrollTop + visible) this.scrollTop = index - visible + 1;
    this.scrollTop = Math.max(0, Math.min(this.scrollTop, Math.max(0, this.rows().length - visible)));
  }

  say(text: string, error = false): void {
    this.notice = { text, error };
  }

  /** Step output, as it comes: chunks may end in the middle of a line. */
  appendOutput(runId: string, text: string): void {
    const lines = this.#logLines(runId);
    if (lines === undefined) return;
    const parts = text.split('\n');
    // The last line is the one still being written: the chunk continues it.
    lines.push(`${lines.pop() ?? ''}${parts[0] ?? ''}`, ...parts.slice(1));
    this.#trimLog(lines);
  }

  /** A whole line (a transition), on a line of its own. */
  appendLine(runId: string, line: string): void {
    const lines = this.#logLines(runId);
    if (lines === undefined) return;
    if (lines.at(-1) === '') lines.pop();
    lines.push(line, '');
    this.#trimLog(lines);
  }

  #logLines(runId: string): string[] | undefined {
    return this.mode.kind === 'log' && this.mode.runId === runId ? this.mode.lines : undefined;
  }

  #trimLog(lines: string[]): void {
    if (lines.length > LOG_LINES_KEPT) lines.splice(0, lines.length - LOG_LINES_KEPT);
  }

  /**
   * One key (terminal-kit names: `UP`, `ENTER`, `CTRL_C`, or the character typed); returns what
   * to do. `character` is true for a printable character (typed into a comment).
   */
  key(name: string, character: boolean): Action {
    if (name === 'CTRL_C') return { kind: 'quit' };
    const mode = this.mode;
    switch (mode.kind) {
      case 'deny-comment':
        return this.#commentKey(mode, name, character);
      case 'confirm-cancel':
        this.mode = { kind: 'list' };
        if (name === 'y' || name === 'Y') return { kind: 'cancel', runId: mode.runId };
        this.say('cancel dropped');
        return { kind: 'none' };
      case 'help':
        if (name === 'q') return { kind: 'quit' };
        this.mode = { kind: 'list' };
        return { kind: 'none' };
      case 'log':
        if (name === 'q') return { kind: 'quit' };
        if (name === 'ESCAPE' || name === 'l' || name === 'ENTER' || name === 'LEFT') {
          this.mode = { kind: 'list' };
          return { kind: 'close-log' };
        }
        return { kind: 'none' };
      case 'list':
        return this.#listKey(name);
    }
  }

  #listKey(name: string): Action {
    switch (name) {
      case 'q':
        return { kind: 'quit' };
      case 'UP':
      case 'k':
        this.move(-1);
        return { kind: 'none' };
      case 'DOWN':
      case 'j':
        this.move(1);
        return { kind: 'none' };
      case 'PAGE_UP':
        this.move(-10);
        return { kind: 'none' };
      case 'PAGE_DOWN':
        this.move(10);
        return { kind: 'none' };
      case 'HOME':
        this.move(-Number.MAX_SAFE_INTEGER);
        return { kind: 'none' };
      case 'END':
        this.move(Number.MAX_SAFE_INTEGER);
        return { kind: 'none' };
      case '?':
        this.mode = { kind: 'help' };
        return { kind: 'none' };
      case 'ENTER':
      case 'l': {
        const run = this.selected();
        if (run === undefined) return { kind: 'none' };
        this.mode = { kind: 'log', runId: run.run_id, lines: [] };
        return { kind: 'open-log', runId: run.run_id };
      }
      case 'a':
      case 'd': {
        const run = this.selected();
        if (run === undefined) return { kind: 'none' };
        if (run.state !== 'waiting' || run.waiting?.kind !== 'gate') {
          const what = run.waiting?.kind === 'input' ? 'an input step (see the command below)' : 'no gate';
          this.say(
            `run ${run.run_id} waits at ${what}: nothing to ${name === 'a' ? 'approve' : 'deny'}`,
            true,
          );
          return { kind: 'none' };
        }
        if (name === 'a') return { kind: 'approve', runId: run.run_id, stepId: run.waiting.step_id };
        this.mode = { kind: 'deny-comment', runId: run.run_id, stepId: run.waiting.step_id, text: '' };
        return { kind: 'none' };
      }
      case 'c': {
        const run = this.selected();
        if (run === undefined) return { kind: 'none' };
        this.mode = { kind: 'confirm-cancel', runId: run.run_id };
        return { kind: 'none' };
      }
      default:
        return { kind: 'none' };
    }
  }

  #commentKey(mode: Extract<Mode, { kind: 'deny-comment' }>, name: string, character: boolean): Action {
    if (name === 'ESCAPE') {
      this.mode = { kind: 'list' };
      this.say('deny dropped');
      return { kind: 'none' };
    }
    if (name === 'ENTER') {
      this.mode = { kind: 'list' };
      return { kind: 'deny', runId: mode.runId, stepId: mode.stepId, comment: mode.text.trim() };
    }
    if (name === 'BACKSPACE') {
      this.mode = { ...mode, text: [...mode.text].slice(0, -1).join('') };
      return { kind: 'none' };
    }
    if (character && mode.text.length < MAX_COMMENT) this.mode = { ...mode, text: mode.text + name };
    return { kind: 'none' };
  }
}
