/**
 * What the dev gateway knows of runs, from the events it stored: each run's workflow, its last
 * state and what it waits for (a gate or an input step, from `run.waiting`). It answers the
 * operator's `runs`, resolves the run an operator names by a prefix of its id, and gives the
 * step a decision or answers are for. In memory only, like everything the dev gateway keeps.
 */
import { RunIdSchema } from '../protocol/runs.js';
import { clip, printable } from './event-lines.js';
import type { UpEvent } from './gateway-peer.js';

export type RunState = 'queued' | 'running' | 'waiting' | 'cancelling' | 'succeeded' | 'failed' | 'cancelled';

/** Where a waiting run waits (docs/operations.md, "Journal entries": `run.waiting`). */
export interface WaitPoint {
  readonly kind: 'gate' | 'input';
  readonly stepId: string;
}

export interface RunView {
  readonly runId: string;
  readonly workflowId: string | null;
  readonly state: RunState;
  readonly waiting: WaitPoint | null;
  readonly lastType: string;
  readonly lastTs: string;
}

/** How a run named by the operator was resolved. */
export type RunResolution = { ok: true; runId: string } | { ok: false; message: string };

/** What the operator-line parser needs to know of runs (RunBoard implements it). */
export interface RunDirectory {
  resolve(ref: string): RunResolution;
  waitingAt(runId: string): WaitPoint | null;
}

/** The widest cell of the `runs` table (ids and types come from the daemon: untrusted). */
const MAX_CELL_CHARS = 60;

/** The run ids matched by name when a prefix is ambiguous, at most. */
const MAX_LISTED_MATCHES = 5;

/** Which state each run event leaves the run in; other types leave it as it was. */
const STATE_AFTER: Readonly<Record<string, RunState>> = {
  'run.queued': 'queued',
  'run.started': 'running',
  'step.started': 'running',
  'step.retrying': 'running',
  'run.waiting': 'waiting',
  'gate.decided': 'queued',
  'input.submitted': 'queued',
  'run.requeued': 'queued',
  'run.cancelling': 'cancelling',
  'run.succeeded': 'succeeded',
  'run.failed': 'failed',
  'run.cancelled': 'cancelled',
};

interface MutableRun {
  runId: string;
  workflowId: string | null;
  state: RunState;
  waiting: WaitPoint | null;
  lastType: string;
  lastTs: string;
}

export class RunBoard implements RunDirectory {
  /** In the order the runs were first seen. */
  readonly #runs = new Map<string, MutableRun>();

  /** Takes one stored event into account (daemon-level events are ignored). */
  apply(event: UpEvent): void {
    const runId = event.run_id;
    if (runId === null) return;
    let run = this.#runs.get(runId);
    if (run === undefined) {
      run = {
        runId,
        workflowId: null,
        state: 'queued',
        waiting: null,
        lastType: event.type,
        lastTs: event.ts,
      };
      this.#runs.set(runId, run);
    }
    const data: Record<string, unknown> =
      event.data !== null && typeof event.data === 'object' && !Array.isArray(event.data)
        ? (event.data as Record<string, unknown>)
        : {};
    if (event.type === 'run.queued' && typeof data.workflow_id === 'string')
      run.workflowId = data.workflow_id;
    const next = STATE_AFTER[event.type];
    if (next !== undefined) {
      run.state = next;
      run.waiting = null;
    }
    if (event.type === 'run.waiting' && typeof data.step_id === 'string') {
      run.waiting = { kind: data.kind === 'input' ? 'input' : 'gate', stepId: data.step_id };
    }
    run.lastType = event.type;
    run.lastTs = event.ts;
  }

  /** Every run seen, in the order first seen. */
  list(): RunView[] {
    return [...this.#runs.values()].map((run) => ({ ...run }));
  }

  get size(): number {
    return this.#runs.size;
  }

  /**
   * A run id seen, or a unique prefix of one. A full run id never seen is taken as it is (the
   * daemon knows runs this gateway may not have seen: it keeps nothing across its restarts).
   */
  resolve(ref: string): RunResolution {
    if (this.#runs.has(ref)) return { ok: true, runId: ref };
    const matches = [...this.#runs.keys()].filter((runId) => runId.startsWith(ref));
    const [only] = matches;
    if (matches.length === 1 && only !== undefined) return { ok: true, runId: only };
    if (matches.length > 1) {
      const listed = matches.slice(0, MAX_LISTED_MATCHES).join(', ');
      const more = matches.length > MAX_LISTED_MATCHES ? `, … (${matches.length} in all)` : '';
      return {
        ok: false,
        message: `"${ref}" matches ${matches.length} runs (${listed}${more}): give more of the id`,
      };
    }
    if (RunIdSchema.safeParse(ref).success) return { ok: true, runId: ref };
    return {
      ok: false,
      message: `no run seen whose id starts with "${ref}": \`runs\` lists the runs this gateway has seen`,
    };
  }

  waitingAt(runId: string): WaitPoint | null {
    return this.#runs.get(runId)?.waiting ?? null;
  }
}

/** The `runs` answer: one row per run seen, aligned columns; `no runs seen yet` when none. */
export function runLines(runs: readonly RunView[]): string[] {
  if (runs.length === 0) return ['no runs seen yet'];
  const rows = runs.map((run) =>
    [
      run.runId,
      run.workflowId ?? '?',
      run.state,
      run.waiting === null ? '-' : `${run.waiting.kind} ${run.waiting.stepId}`,
      run.lastType,
    ].map((cell) => printable(clip(cell, MAX_CELL_CHARS))),
  );
  const header = ['RUN', 'WORKFLOW', 'STATE', 'WAITING FOR', 'LAST EVENT'];
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => row[column]?.length ?? 0)),
  );
  return [header, ...rows].map((cells) =>
    cells
      .map((cell, column) => (column === cells.length - 1 ? cell : cell.padEnd(widths[column] ?? 0)))
      .join('  '),
  );
}
