/**
 * The fault-injection e2e suite's parts (test/e2e/faults-*.e2e.test.ts): a project of small
 * workflows (a gate, an input step, a long single-line print, a large input), the built daemon
 * started with or without the `CHARTER_DAEMON_CRASH_AT` test switch, the CLI's views of a run, and
 * read-only looks into the daemon's store (its inbox and journal).
 */
import { mkdirSync, realpathSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { expect } from 'vitest';
import type { GatewayPeer, UpEvent } from '../../src/gateway-server/gateway-peer.js';
import { daemonPaths } from '../../src/project/paths.js';
import type { RunDetail } from '../../src/protocol/runs.js';
import { daemonPids, makeProject, parseJson, runCli, waitUntil } from './cli.js';

export const GATEWAY_TOKEN = 'tok-faults';

/** `seq 1 36000 | tr '\n' ','`: about 200 KB on one line, every part of it different. */
export const LONG_LINE_COMMAND = "seq 1 36000 | tr '\\n' ','";
export const LONG_LINE = `${Array.from({ length: 36_000 }, (_, i) => i + 1).join(',')},`;

const WORKFLOWS: Record<string, { manifest: string; plan: string }> = {
  // A gate, then a step: a run waits at `hold` until decided.
  hold: {
    manifest: 'id: hold\nname: Hold\n',
    plan: 'steps:\n  - id: hold\n    gate: { prompt: Go on? }\n  - id: after\n    run: echo past the gate\n',
  },
  // An input step, then a step that prints the answer.
  ask: {
    manifest: 'id: ask\nname: Ask\n',
    plan: [
      'steps:',
      '  - id: ask',
      '    input:',
      '      prompt: How many?',
      '      fields:',
      '        n: { type: integer, required: true }',
      '  - id: after',
      '    run: echo "n=$CHARTER_STEP_ASK_N"',
      '',
    ].join('\n'),
  },
  // One step printing LONG_LINE with no newline.
  longline: {
    manifest: 'id: longline\nname: Long line\n',
    plan: `steps:\n  - id: print\n    run: ${JSON.stringify(LONG_LINE_COMMAND)}\n    timeout: 1m\n`,
  },
  // A string input of any size, and a short step.
  blob: {
    manifest: 'id: blob\nname: Blob\ninputs:\n  blob: { type: string, required: true }\n',
    plan: 'steps:\n  - id: after\n    run: echo blob received\n',
  },
};

/** A throw-away project with the workflows above (its real path: daemons are found by it). */
export function faultProject(): string {
  const root = realpathSync(makeProject());
  for (const [id, files] of Object.entries(WORKFLOWS)) {
    mkdirSync(join(root, 'workflows', id), { recursive: true });
    writeFileSync(join(root, 'workflows', id, 'manifest.yml'), files.manifest);
    writeFileSync(join(root, 'workflows', id, 'plan.yml'), files.plan);
  }
  return root;
}

/**
 * Starts the built daemon for `root`, linked to `gateway` if given. `crashAt` sets the test-only
 * `CHARTER_DAEMON_CRASH_AT` switch; without it the switch is explicitly off.
 */
export async function startDaemon(
  root: string,
  options: { gateway?: GatewayPeer; crashAt?: string } = {},
): Promise<void> {
  const gatewayArgs = options.gateway === undefined ? [] : ['--gateway', options.gateway.url];
  const result = await runCli(['start', '--project-path', root, ...gatewayArgs], {
    env: { CHARTER_GATEWAY_TOKEN: GATEWAY_TOKEN, CHARTER_DAEMON_CRASH_AT: options.crashAt ?? '' },
  });
  expect(result.code, result.stderr).toBe(0);
}

/** Resolves once no daemon serves `root` any more (the crash switch killed it). */
export function waitForDeath(root: string): Promise<void> {
  return waitUntil(() => daemonPids(root).length === 0, 10_000, 'the daemon to be killed');
}

export async function stopDaemon(root: string): Promise<void> {
  const result = await runCli(['stop', '--project-path', root], { timeoutMs: 30_000 });
  expect(result.code, result.stderr).toBe(0);
}

/** `charter-daemon run WORKFLOW --json`: the new run's id. */
export async function submitRun(root: string, workflow: string, inputs: string[] = []): Promise<string> {
  const args = ['run', workflow, '--json', '--project-path', root];
  for (const input of inputs) args.push('--input', input);
  const result = await runCli(args);
  expect(result.code, result.stderr).toBe(0);
  return parseJson<{ run_id: string }>(result.stdout).run_id;
}

/** `charter-daemon runs show RUN --json`. */
export async function showRun(root: string, runId: string): Promise<RunDetail> {
  const result = await runCli(['runs', 'show', runId, '--json', '--project-path', root]);
  expect(result.code, result.stderr).toBe(0);
  return parseJson<RunDetail>(result.stdout);
}

/** Polls `runs show` until `check` holds; returns that view of the run. */
export async function untilRun(
  root: string,
  runId: string,
  check: (run: RunDetail) => boolean,
  what: string,
  timeoutMs = 15_000,
): Promise<RunDetail> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const run = await showRun(root, runId);
    if (check(run)) return run;
    if (Date.now() > deadline) throw new Error(`run ${runId} never ${what}; last: ${JSON.stringify(run)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface LogEntry {
  readonly seq: number;
  readonly type: string;
  readonly data: Record<string, unknown>;
}

/** `charter-daemon logs RUN --json`: the run's history as the daemon stored it. */
export async function runLog(root: string, runId: string): Promise<LogEntry[]> {
  const result = await runCli(['logs', runId, '--json', '--project-path', root]);
  expect(result.code, result.stderr).toBe(0);
  return result.stdout
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => parseJson<LogEntry>(line));
}

export interface InboxRow {
  readonly dseq: number;
  readonly cmd_id: string;
  readonly kind: string;
  readonly run_id: string | null;
  readonly args: string;
  readonly status: 'pending' | 'applied' | 'rejected';
}

export interface StoredEvent {
  readonly seq: number;
  readonly type: string;
  readonly run_id: string | null;
  readonly data: string;
}

/** The daemon's inbox and journal, read through a read-only connection (the daemon may be live). */
export function readStore(root: string): { inbox: InboxRow[]; journal: StoredEvent[] } {
  const db = new Database(daemonPaths(root).storePath, { readonly: true, fileMustExist: true });
  try {
    return {
      inbox: db
        .prepare('SELECT dseq, cmd_id, kind, run_id, args, status FROM inbox ORDER BY dseq')
        .all() as InboxRow[],
      journal: db.prepare('SELECT seq, type, run_id, data FROM journal ORDER BY seq').all() as StoredEvent[],
    };
  } finally {
    db.close();
  }
}

export interface CommandResult {
  readonly seq: number;
  readonly cmd_id: string;
  readonly status: 'applied' | 'duplicate' | 'rejected';
  readonly error?: { code: string; message: string };
  readonly run_id?: string;
}

/** The `command.result` events among `events` (the gateway's store: each seq once). */
export function commandResults(events: readonly UpEvent[]): CommandResult[] {
  return events
    .filter((event) => event.type === 'command.result')
    .map((event) => ({ seq: event.seq, ...(event.data as Omit<CommandResult, 'seq'>) }));
}

/**
 * Resolves, once the gateway holds every event the daemon has stored, with that view of the
 * store (read again until the gateway holds all of it: the daemon may still be writing).
 */
export async function caughtUpStore(
  root: string,
  peer: GatewayPeer,
  timeoutMs = 15_000,
): Promise<ReturnType<typeof readStore>> {
  let store = readStore(root);
  await peer.waitFor(
    () => {
      store = readStore(root);
      return peer.storedMax() >= (store.journal.at(-1)?.seq ?? 0);
    },
    timeoutMs,
    'every stored event at the gateway',
  );
  return store;
}

/** Resolves once the gateway holds an event of `type` for `runId`. */
export function waitForRunEvent(peer: GatewayPeer, runId: string, type: string, timeoutMs = 10_000) {
  return peer.waitFor(
    () => peer.events.some((event) => event.run_id === runId && event.type === type),
    timeoutMs,
    `${type} of ${runId} at the gateway`,
  );
}
