/**
 * Where control calls enter the daemon. Reads (runs list/show, logs) are answered from the store;
 * everything that changes state is validated here — the workflow exists, inputs and answers fit
 * their specs — and handed to the root actor as a typed event, which decides. The gateway's
 * commands enter through the same functions (`applyGatewayCommand`).
 */
import type { DaemonEvent } from '../../machines/daemon.machine.js';
import type { ControlCall } from '../control/server.js';
import { type ErrorCode, errorCatalogue, isErrorCode } from '../errors/catalogue.js';
import { CharterError, isCharterError } from '../errors/charter-error.js';
import { errorMessage } from '../errors/error-message.js';
import { crashPoint } from '../faults/crash-points.js';
import type { WatchFeeds } from '../monitoring/watch-feed.js';
import type {
  ControlReply,
  ControlSocketStatus,
  LogFileStatus,
  RetentionPolicyStatus,
  StatusResult,
  StoreBackupResult,
  StoreStatus,
} from '../protocol/control.js';
import { type CommandFrame, commandArgs } from '../protocol/gateway.js';
import { type ControlParams, methodParams } from '../protocol/methods.js';
import type { LogEntry, RunDetail } from '../protocol/runs.js';
import type { RunFollowers } from '../runs/run-followers.js';
import { newRunId } from '../runs/run-id.js';
import { openGatewayCommand, sealGatewayCommand } from '../secrets/gateway-command.js';
import { answerAad, inputAad, sealSecretFields } from '../secrets/seal-values.js';
import type { SecretBox } from '../secrets/secret-box.js';
import type { RunRecord } from '../store/run-store.js';
import type { Store } from '../store/store.js';
import { isCorruptionError } from '../store/store-errors.js';
import type { StoreHealth } from '../store/store-health.js';
import type { WorkflowCatalog } from '../workflow/catalog.js';
import { describeWorkflow, listWorkflows } from '../workflow/describe.js';
import { checkAnswers, coerceInputs } from '../workflow/values.js';

export interface CallIo {
  /** Answers the call; false once the caller has gone. */
  reply(reply: ControlReply): boolean;
  /**
   * For a stream, between batches: true when the caller has a lot unread, and `resume` is then
   * called once it has read it (never if it goes away). Absent or false: produce on.
   */
  waitForRoom?(resume: () => void): boolean;
  toRoot(event: DaemonEvent): void;
}

export interface IntakeDeps {
  readonly store: Store;
  readonly catalog: WorkflowCatalog;
  readonly followers: RunFollowers;
  /** Store write failures, for status (absent in tests that do not look). */
  readonly health?: StoreHealth;
  /** The log file's figures for `status` (dropped lines, last error). */
  readonly logHealth?: () => LogFileStatus;
  /** Seals secret inputs and answers as they come in (src/secrets/). */
  readonly secrets: SecretBox;
  /** The Prometheus exposition for `metrics` (loads prom-client on first use). */
  readonly metrics?: () => Promise<string>;
  /** The HTTP metrics endpoint's URL while it listens, for `status`. */
  readonly metricsUrl?: () => string | null;
  /** The `watch` streams (charter-daemon top). */
  readonly watch?: WatchFeeds;
  /** The retention policy, for `status` (absent: no store section in status). */
  readonly retention?: RetentionPolicyStatus;
  /** The control socket's figures for `status` (null until it listens). */
  readonly controlSocket?: () => ControlSocketStatus | null;
}

const LOG_BATCH = 500;
const LOG_BATCH_FIRST_READ = 50;
/**
 * A log batch is cut once its entries pass this many bytes of JSON, so that a response line stays
 * well within the 1 MiB clients accept (step output entries are up to 64 KiB each).
 */
export const LOG_BATCH_MAX_BYTES = 256 * 1024;
/** The methods that write to the store. */
const WRITING_METHODS = new Set<ControlCall['method']>([
  'run.submit',
  'gate.decide',
  'input.submit',
  'run.cancel',
]);

export interface Intake {
  /** A control call from the socket. */
  handle(call: ControlCall, io: CallIo): void;
  /** A command from the gateway, already stored and acknowledged: same validation, same root events. */
  applyGatewayCommand(command: CommandFrame, toRoot: (event: DaemonEvent) => void): void;
  /** The caller of a call has gone: stop whatever still produces for it (a log follow). */
  abandon(key: string): void;
  /** The root's answer to a call: to the socket client, or (for gateway commands) upstream. */
  deliver(key: string, reply: ControlReply, toClient: (reply: ControlReply) => boolean): void;
  /**
   * Records the answer to a gateway command inside the caller's transaction — the one that
   * records the command's effect — so that effect and result commit together. Does nothing
   * for a socket call (its answer goes to the client once the transaction has committed).
   */
  settleWithin(key: string, reply: ControlReply): void;
  /**
   * A gateway command as it may be stored in the inbox: the values of `run.start` inputs and
   * `input.submit` answers sealed (which of them are secret is only known once the command is
   * checked). Throws SECRETS_UNAVAILABLE.
   */
  sealGatewayCommand(command: CommandFrame): CommandFrame;
}

const GATEWAY_KEY = 'gw:';

export function createIntake(deps: IntakeDeps): Intake {
  const { store, catalog, followers } = deps;
  /** Status calls in flight: their answers get the store's outbox figures added. */
  const statusKeys = new Set<string>();
  /** Log follows and watch streams in progress, by call key: how to stop each. */
  const follows = new Map<string, () => void>();

  const fail = (io: CallIo, error: unknown) => {
    const wire = isCharterError(error)
      ? error.toWire()
      : isCorruptionError(error)
        ? new CharterError('STORE_CORRUPT', `${store.path} is damaged: ${errorMessage(error)}`).toWire()
        : new CharterError('INTERNAL', errorMessage(error)).toWire();
    io.reply({ error: wire });
  };

  /** An online copy of the store (SQLite backup API), answered once written. */
  function backup(path: string, io: CallIo): void {
    store.backup(path).then(
      (facts) => {
        const result: StoreBackupResult = { ...facts, online: true };
        io.reply({ result });
      },
      (error: unknown) => fail(io, error),
    );
  }

  /** The run, if it exists and has not finished. */
  function liveRun(runId: string): RunRecord {
    const record = store.runs.getRecord(runId);
    if (record === undefined) throw new CharterError('UNKNOWN_RUN', `no run ${runId} in this project`);
    if (record.finishedAt !== null) {
      const why = record.reason === null ? '' : ` (${record.reason})`;
      throw new CharterError('RUN_FINISHED', `run ${runId} has already finished: ${record.state}${why}`);
    }
    return record;
  }

  function submit(
    call: ControlCall,
    params: ControlParams<'run.submit'>,
    io: CallIo,
    runId = newRunId(),
  ): void {
    const workflow = catalog.get(params.workflow_id);
    const inputs = coerceInputs(workflow.inputs, params.inputs);
    if (!inputs.ok) {
      throw new CharterError(
        'INVALID_INPUTS',
        `inputs of ${workflow.id} refused:\n${inputs.problems.map((p) => `  - ${p}`).join('\n')}`,
      );
    }
    const sealed = sealSecretFields(workflow.inputs, inputs.value, deps.secrets, (name) =>
      inputAad(runId, name),
    );
    io.toRoot({ type: 'run.submit', key: call.key, runId, plan: workflow, inputs: sealed });
  }

  function submitInput(call: ControlCall, params: ControlParams<'input.submit'>, io: CallIo): void {
    const record = liveRun(params.run_id);
    const step = catalog.get(record.workflowId).steps[record.stepIndex];
    if (record.state !== 'waiting' || step?.kind !== 'input') {
      throw new CharterError(
        'RUN_NOT_WAITING',
        `run ${params.run_id} is ${record.state}${step ? ` at ${step.kind} step "${step.id}"` : ''}, not waiting for answers`,
      );
    }
    const answers = checkAnswers(step.fields, params.answers);
    if (!answers.ok) {
      throw new CharterError(
        'INVALID_ANSWERS',
        `answers for step "${step.id}" refused (the run keeps waiting):\n${answers.problems.map((p) => `  - ${p}`).join('\n')}`,
      );
    }
    io.toRoot({
      type: 'run.command',
      runId: params.run_id,
      command: {
        type: 'input.submit',
        key: call.key,
        // Checked against this step: the run refuses them if it has moved on meanwhile.
        stepId: step.id,
        answers: sealSecretFields(step.fields, answers.value, deps.secrets, (name) =>
          answerAad(params.run_id, step.id, name),
        ),
        ...(params.by ? { by: params.by } : {}),
      },
    });
  }

  /**
   * A `run.logs` stream: the stored history in batches, then (with `follow`) entries as they are
   * stored. Batches are produced only as fast as the client reads them: while it has a lot
   * unread (`io.waitForRoom`) the stream pauses, and the store is read again from `lastSeq` when
   * it has caught up, so nothing piles up in the daemon for a client that stops reading.
   */
  function followLogs(key: string, params: ControlParams<'run.logs'>, io: CallIo): void {
    const detail = store.runs.get(params.run_id);
    if (detail === undefined)
      throw new CharterError('UNKNOWN_RUN', `no run ${params.run_id} in this project`);
    let lastSeq = params.after_seq;
    let done = false;
    /** Waiting for the client to read: notifications of new entries are left to the resume. */
    let paused = false;
    let unsubscribe: (() => void) | undefined;
    const stop = () => {
      done = true;
      unsubscribe?.();
      follows.delete(key);
    };
    const resume = () => {
      paused = false;
      catchUp();
    };
    /**
     * Entries read from the store at a time: starts small and doubles up to LOG_BATCH while
     * batches fit, and shrinks to what fitted when one is cut, so that large entries (step output
     * of up to 64 KiB each) are not read 500 at a time to send a handful.
     */
    let readLimit = LOG_BATCH_FIRST_READ;
    /** Sends what is stored after lastSeq: 'sent' when caught up, 'paused' or 'gone' before. */
    const sendStored = (state: RunDetail['state']): 'sent' | 'paused' | 'gone' => {
      for (;;) {
        const read = store.runs.events(params.run_id, lastSeq, readLimit);
        if (read.length === 0) return 'sent';
        const batch = boundedBatch(read);
        lastSeq = batch.at(-1)?.seq ?? lastSeq;
        if (!io.reply({ result: { entries: batch, state, done: false }, more: true })) return 'gone';
        const cut = batch.length < read.length;
        if (!cut && read.length < readLimit) return 'sent';
        readLimit = cut ? batch.length + 1 : Math.min(LOG_BATCH, readLimit * 2);
        if (io.waitForRoom?.(resume) === true) return 'paused';
      }
    };
    /** Catches up with the store; ends the follow once the run has finished (or the caller left). */
    const catchUp = () => {
      if (done || paused) return;
      const record = store.runs.getRecord(params.run_id);
      const state = record?.state ?? detail.state;
      const sent = sendStored(state);
      if (sent === 'gone') {
        stop();
        return;
      }
      if (sent === 'paused') {
        paused = true;
        follows.set(key, stop);
        return;
      }
      if (!params.follow || record === undefined || record.finishedAt !== null) {
        stop();
        io.reply({ result: { entries: [], state, done: true } });
      }
    };
    if (params.follow && detail.finished_at === null) {
      // Told of every entry any writer stores for this run (see RunFollowers); reads by seq.
      unsubscribe = followers.subscribe(params.run_id, catchUp);
      follows.set(key, stop);
    }
    catchUp();
  }

  /**
   * Calls that change a run are refused while the store cannot be written: a command the run
   * could not record would otherwise fail the run it was meant to steer.
   */
  function refuseWhileUnwritable(method: ControlCall['method']): void {
    if (!WRITING_METHODS.has(method) || deps.health === undefined || deps.health.writable()) return;
    const fault = deps.health.fault;
    if (fault === null) return;
    throw new CharterError(fault.code, `${fault.message}; ${method} refused, nothing was changed`);
  }

  function handle(call: ControlCall, io: CallIo, runId?: string): void {
    try {
      refuseWhileUnwritable(call.method);
      switch (call.method) {
        case 'status':
          statusKeys.add(call.key);
          io.toRoot({ type: 'control.request', ...call } as DaemonEvent);
          return;
        case 'stop':
        case 'store.prune':
          io.toRoot({ type: 'control.request', ...call } as DaemonEvent);
          return;
        case 'store.backup':
          backup((call.params as ControlParams<'store.backup'>).path, io);
          return;
        case 'runs.list':
          io.reply({ result: store.runs.list(call.params as ControlParams<'runs.list'>) });
          return;
        case 'runs.show': {
          const { run_id } = call.params as ControlParams<'runs.show'>;
          const detail = store.runs.get(run_id);
          if (detail === undefined) throw new CharterError('UNKNOWN_RUN', `no run ${run_id} in this project`);
          io.reply({ result: detail });
          return;
        }
        case 'run.submit':
          submit(call, call.params as ControlParams<'run.submit'>, io, runId);
          return;
        case 'gate.decide': {
          const params = call.params as ControlParams<'gate.decide'>;
          const record = liveRun(params.run_id);
          io.toRoot({
            type: 'run.command',
            runId: params.run_id,
            command: {
              type: 'gate.decide',
              key: call.key,
              // The step the caller named, else the one the run waits at now: a decision never
              // lands on a later gate the caller has not seen.
              stepId: params.step_id ?? record.waiting?.step_id ?? null,
              decision: params.decision,
              ...(params.by ? { by: params.by } : {}),
              ...(params.comment ? { comment: params.comment } : {}),
            },
          });
          return;
        }
        case 'input.submit':
          submitInput(call, call.params as ControlParams<'input.submit'>, io);
          return;
        case 'run.cancel': {
          const params = call.params as ControlParams<'run.cancel'>;
          liveRun(params.run_id);
          io.toRoot({
            type: 'run.command',
            runId: params.run_id,
            command: {
              type: 'run.cancel',
              key: call.key,
              reason: params.reason ?? 'cancelled by request',
              ...(params.by ? { by: params.by } : {}),
            },
          });
          return;
        }
        case 'run.logs':
          followLogs(call.key, call.params as ControlParams<'run.logs'>, io);
          return;
        case 'metrics':
          if (deps.metrics === undefined) throw new CharterError('INTERNAL', 'metrics are not available');
          deps.metrics().then(
            (text) => io.reply({ result: { text } }),
            (error: unknown) => fail(io, error),
          );
          return;
        case 'workflows.list':
          io.reply({ result: listWorkflows(catalog) });
          return;
        case 'workflows.show': {
          const { workflow_id } = call.params as ControlParams<'workflows.show'>;
          // Throws UNKNOWN_WORKFLOW (listing the known ids) or INVALID_WORKFLOW with every problem.
          io.reply({ result: describeWorkflow(catalog.get(workflow_id)) });
          return;
        }
        case 'watch': {
          if (deps.watch === undefined) throw new CharterError('INTERNAL', 'watch is not available');
          const stop = deps.watch.open(call.params as ControlParams<'watch'>, (update) =>
            io.reply({ result: update, more: true }),
          );
          follows.set(call.key, () => {
            stop();
            follows.delete(call.key);
          });
          return;
        }
      }
    } catch (error) {
      fail(io, error);
    }
  }

  /** Records a gateway command's outcome and its `command.result` (once: later calls do nothing). */
  function settleGatewayCommand(cmdId: string, reply: ControlReply): void {
    const runId = store.gateway.commandRun(cmdId) ?? undefined;
    if ('error' in reply) {
      const settled = store.gateway.settleCommand(cmdId, {
        status: 'rejected',
        error: { code: reply.error.code, message: reply.error.message },
        ...(runId === undefined ? {} : { runId }),
      });
      if (settled !== undefined) crashPoint('command.settled');
      return;
    }
    const result = reply.result as { run_id?: string } | undefined;
    const appliedRun = result?.run_id ?? runId;
    store.gateway.settleCommand(cmdId, {
      status: 'applied',
      ...(appliedRun === undefined ? {} : { runId: appliedRun }),
    });
  }

  function settleWithin(key: string, reply: ControlReply): void {
    if (key.startsWith(GATEWAY_KEY)) settleGatewayCommand(key.slice(GATEWAY_KEY.length), reply);
  }

  function applyGatewayCommand(command: CommandFrame, toRoot: (event: DaemonEvent) => void): void {
    const key = `${GATEWAY_KEY}${command.cmd_id}`;
    const io: CallIo = {
      reply: (reply) => {
        settleGatewayCommand(command.cmd_id, reply);
        return false;
      },
      toRoot,
    };
    let call: ReturnType<typeof gatewayCall>;
    try {
      call = gatewayCall(openGatewayCommand(command, deps.secrets), key);
    } catch (error) {
      settleGatewayCommand(command.cmd_id, {
        error: isCharterError(error)
          ? error.toWire()
          : new CharterError('INTERNAL', errorMessage(error)).toWire(),
      });
      return;
    }
    if ('error' in call) {
      settleGatewayCommand(command.cmd_id, { error: call.error });
      return;
    }
    if (call.method === 'run.submit') {
      // The run id is chosen once and kept with the command, so re-applying it after a crash
      // finds the run instead of starting a second one.
      const known = store.gateway.commandRun(command.cmd_id);
      if (known !== null && store.runs.getRecord(known) !== undefined) {
        settleGatewayCommand(command.cmd_id, { result: { run_id: known } });
        return;
      }
      const runId = known ?? newRunId();
      store.gateway.assignRun(command.cmd_id, runId);
      handle(call, io, runId);
      return;
    }
    handle(call, io);
  }

  function deliver(key: string, reply: ControlReply, toClient: (reply: ControlReply) => boolean): void {
    if (key.startsWith(GATEWAY_KEY)) {
      // Settled already when the answer was recorded with its effect; otherwise (a refusal) now.
      // If that write fails, the command stays pending and is applied again at the next start.
      try {
        settleGatewayCommand(key.slice(GATEWAY_KEY.length), reply);
      } catch (error) {
        deps.health?.failed(error);
      }
      return;
    }
    if (statusKeys.delete(key) && 'result' in reply) {
      toClient({ result: withOutbox(reply.result as StatusResult) });
      return;
    }
    // The root decides some errors (QUEUE_FULL, DRAINING, …) but knows no catalogue: add the hint.
    if ('error' in reply && reply.error.hint === undefined && isErrorCode(reply.error.code)) {
      toClient({ error: { ...reply.error, hint: errorCatalogue[reply.error.code].hint } });
      return;
    }
    toClient(reply);
  }

  function withOutbox(status: StatusResult): StatusResult {
    const { count, oldestTs } = store.gateway.backlog();
    const fault = deps.health?.fault ?? null;
    return {
      ...status,
      store_fault: fault,
      gateway: {
        ...status.gateway,
        backlog: count,
        oldest_unacked_age_seconds:
          oldestTs === null ? null : Math.max(0, (Date.now() - Date.parse(oldestTs)) / 1000),
      },
      ...(deps.logHealth === undefined ? {} : { log: deps.logHealth() }),
      ...(deps.metricsUrl === undefined ? {} : { metrics: metricsStatus(deps.metricsUrl()) }),
      ...(deps.retention === undefined ? {} : { store: storeStatus(deps.retention, count) }),
      ...controlStatus(),
    };
  }

  function controlStatus(): { control?: ControlSocketStatus } {
    const control = deps.controlSocket?.() ?? null;
    return control === null ? {} : { control };
  }

  function storeStatus(policy: RetentionPolicyStatus, backlog: number): StoreStatus {
    const figures = store.retention.figures();
    const lastPrune = store.retention.lastPrune();
    const overBudget = figures.used_bytes > policy.max_store_mb * 1024 * 1024;
    return {
      ...figures,
      policy,
      last_prune: lastPrune,
      over_budget: overBudget,
      over_budget_reason: !overBudget
        ? null
        : backlog > 0 && lastPrune?.kept_for_gateway
          ? `finished runs are kept until the gateway acknowledges their events (${backlog} unacknowledged)`
          : (lastPrune?.over_budget_reason ?? 'not pruned yet since the store grew past max_store_mb'),
    };
  }

  const abandon = (key: string): void => {
    statusKeys.delete(key);
    follows.get(key)?.();
  };

  return {
    handle: (call, io) => handle(call, io),
    applyGatewayCommand,
    deliver,
    abandon,
    settleWithin,
    sealGatewayCommand: (command) => sealGatewayCommand(command, deps.secrets),
  };
}

/** The first entries of `entries` within LOG_BATCH_MAX_BYTES of JSON (at least one). */
function boundedBatch(entries: LogEntry[]): LogEntry[] {
  let bytes = 0;
  for (let index = 0; index < entries.length; index++) {
    bytes += Buffer.byteLength(JSON.stringify(entries[index]));
    if (bytes > LOG_BATCH_MAX_BYTES && index > 0) return entries.slice(0, index);
  }
  return entries;
}

function metricsStatus(url: string | null): { url: string } | null {
  return url === null ? null : { url };
}

/** A gateway command as the control call it stands for, validated by the same schemas. */
function gatewayCall(
  command: CommandFrame,
  key: string,
): ControlCall | { error: { code: ErrorCode; message: string } } {
  const argsSchema = commandArgs[command.kind];
  const args = argsSchema.safeParse(command.args);
  if (!args.success) {
    return {
      error: {
        code: 'INVALID_PARAMS',
        message: `invalid args for ${command.kind}: ${args.error.issues[0]?.message}`,
      },
    };
  }
  const needsRun = command.kind !== 'run.start';
  if (needsRun && command.run_id === undefined) {
    return { error: { code: 'INVALID_PARAMS', message: `${command.kind} needs run_id` } };
  }
  const raw = ((): { method: ControlCall['method']; params: unknown } => {
    const a = args.data as Record<string, unknown>;
    switch (command.kind) {
      case 'run.start':
        return { method: 'run.submit', params: { workflow_id: a.workflow_id, inputs: a.inputs ?? {} } };
      case 'run.cancel':
        return {
          method: 'run.cancel',
          params: { run_id: command.run_id, ...a },
        };
      case 'gate.decide':
        return { method: 'gate.decide', params: { run_id: command.run_id, ...a } };
      case 'input.submit':
        return { method: 'input.submit', params: { run_id: command.run_id, ...a } };
    }
  })();
  const params = methodParams[raw.method].safeParse(raw.params);
  if (!params.success) {
    return {
      error: {
        code: 'INVALID_PARAMS',
        message: `invalid ${command.kind}: ${params.error.issues[0]?.message}`,
      },
    };
  }
  return { key, method: raw.method, params: params.data };
}
