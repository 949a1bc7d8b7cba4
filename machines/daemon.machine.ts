/**
 * The root daemon actor: booting → serving → draining → stopped.
 *
 * It decides; it does no I/O. The control socket lives in a spawned callback actor (`control`),
 * the gateway link in a spawned machine (`gateway`), the runs in run actors (`run:<id>`) under 64
 * shard actors, start-up recovery in an invoked promise actor, and journaling in named actions;
 * the daemon wiring (src/daemon/) provides the real implementations through `provide()`, tests
 * provide fakes. Draining waits for runs executing steps to reach a safe point, bounded by the
 * `drainTimeout` delay. Its types live in daemon-types.ts, the run registry in run-registry.ts and
 * the status projection in daemon-status.ts: this file is the setup and the chart.
 */
import { assign, enqueueActions, fromCallback, fromPromise, sendTo, setup } from 'xstate';
import type { ErrorCode } from '../src/errors/catalogue.js';
import { errorMessage } from '../src/errors/error-message.js';
import type { RunState } from '../src/protocol/control.js';
import { isFinalRunState } from '../src/protocol/run-counts.js';
import {
  controlFailed,
  DRAINING_NO_PRUNE,
  DRAINING_NO_RUNS,
  daemonStarted,
  daemonStopped,
  daemonStopping,
  gatewayAfter,
  initialContext,
  NO_RETENTION,
  newRun,
  notWaitingError,
  outputOf,
  pruneReplies,
  queueFullError,
  recovered,
  runGoneError,
  stopAccepted,
  stopRequested,
  unansweredCommands,
} from './daemon-builders.js';
import { statusOf } from './daemon-status.js';
import type {
  ControlActorEvent,
  ControlRequestEvent,
  DaemonContext,
  DaemonEvent,
  DaemonInput,
  DaemonOutput,
  JournalParams,
  PersistRunParams,
  RecoveryReport,
} from './daemon-types.js';
import { gatewayLinkMachine } from './gateway-link.machine.js';
import { retentionMachine } from './retention.machine.js';
import {
  executing,
  forgetCommand,
  freeSlotsFor,
  markAdmitted,
  register,
  rememberCommand,
  restoredWaitingFor,
  track,
  waitsFor,
} from './run-registry.js';
import { RUN_SHARDS, runShardMachine, shardOf } from './run-shard.machine.js';
import type { RunInput } from './run-types.js';

export { statusOf } from './daemon-status.js';
export type * from './daemon-types.js';

const shardId = (runId: string) => `runs-${shardOf(runId)}`;

export const daemonMachine = setup({
  types: {
    context: {} as DaemonContext,
    events: {} as DaemonEvent,
    input: {} as DaemonInput,
    output: {} as DaemonOutput,
  },
  actors: {
    // Both are provided by the wiring (src/daemon/) or by tests.
    controlServer: fromCallback<ControlActorEvent, undefined>(() => undefined),
    recoverState: fromPromise<RecoveryReport>(async () => ({
      previousShutdown: 'first-start',
      runs: [],
      finished: { succeeded: 0, failed: 0, cancelled: 0 },
    })),
    // Parents of the run actors; provided with the real run logic by the wiring.
    runShard: runShardMachine,
    // Provided with its real transport by the wiring.
    gatewayLink: gatewayLinkMachine,
    // Provided with the real pruning by the wiring.
    retention: retentionMachine,
  },
  actions: {
    /**
     * The daemon is ready (provided by the wiring): pending gateway commands are applied,
     * `daemon.json` is written, the ready line is logged, the state files are watched.
     */
    announceReady: (_args, _params: undefined) => undefined,
    /** Stops watching the state files: from draining on, the daemon removes them itself. */
    stopStateWatch: (_args, _params: undefined) => undefined,
    /** Appends a lifecycle entry to the durable journal; provided by the wiring. */
    journal: (_args, _params: JournalParams) => undefined,
    replyStatus: sendTo(
      'control',
      ({ context, event }, params: { state: 'serving' | 'draining' }): ControlActorEvent => ({
        type: 'control.reply',
        key: (event as ControlRequestEvent).key,
        reply: { result: statusOf(context, params.state) },
      }),
    ),
    replyStopAccepted: sendTo(
      'control',
      ({ context, event }, params: { alreadyStopping: boolean }): ControlActorEvent => ({
        type: 'control.reply',
        key: (event as ControlRequestEvent).key,
        reply: { result: stopAccepted(context, params.alreadyStopping) },
      }),
    ),
    acceptStopRequest: assign(({ context, event }) => stopRequested(context, event)),
    recordFailure: assign({
      failure: (_args, params: { message: string }) => params.message,
      stopReason: 'failure',
    }),
    recordDrainTimeout: assign({ drainTimedOut: true }),
    /**
     * Stores a new run (its row and `run.queued` event) and reports the outcome back as
     * `run.stored` or `run.storeFailed`: the run is registered and acknowledged only once stored,
     * and a failed write is answered instead of taking the root down. Provided by the wiring.
     */
    persistRun: ({ self }, params: PersistRunParams) => {
      self.send({ type: 'run.stored', key: params.key, runId: params.runId, plan: params.plan });
    },
    countSubmitting: assign({
      submitting: ({ context }, params: { delta: 1 | -1 }) => Math.max(0, context.submitting + params.delta),
    }),

    replyError: sendTo(
      'control',
      ({ event }, params: { code: ErrorCode; message: string }): ControlActorEvent => ({
        type: 'control.reply',
        key: keyOf(event),
        reply: { error: { code: params.code, message: params.message } },
      }),
    ),
    replyRunAck: sendTo(
      'control',
      ({ event }, params: { runId: string; state: RunState }): ControlActorEvent => ({
        type: 'control.reply',
        key: keyOf(event),
        reply: { result: { run_id: params.runId, state: params.state } },
      }),
    ),
    /** A run's answer to a command, once it has recorded the effect. */
    replyAnswer: enqueueActions(({ event, enqueue }) => {
      if (event.type !== 'run.answer') return;
      enqueue.sendTo('control', {
        type: 'control.reply',
        key: event.key,
        reply: event.reply,
      } as ControlActorEvent);
      enqueue.assign(({ context }) => forgetCommand(context, event.key));
    }),
    spawnRun: sendTo(
      (_args, params: RunInput) => shardId(params.runId),
      (_args, params: RunInput) => ({ type: 'shard.spawn' as const, run: params }),
    ),
    startShards: enqueueActions(({ enqueue }) => {
      for (let shard = 0; shard < RUN_SHARDS; shard++) {
        enqueue.spawnChild('runShard', { id: `runs-${shard}`, systemId: `runs:${shard}` });
      }
    }),
    registerRun: assign(({ context }, params: { runId: string; state: RunState }) => {
      register(context, params.runId, params.state);
      return { runs: context.runs, liveCounts: context.liveCounts, queue: context.queue };
    }),
    restoreRuns: enqueueActions(({ context, enqueue }) => {
      for (const run of context.restoring) {
        enqueue.assign(({ context: current }) => {
          register(current, run.runId, run.resume, restoredWaitingFor(run));
          return { runs: current.runs, liveCounts: current.liveCounts, queue: current.queue };
        });
        enqueue.sendTo(shardId(run.runId), { type: 'shard.spawn', run });
      }
      enqueue.assign({ restoring: [] });
    }),
    /**
     * Hands a command to its run, which answers it after recording the effect. A run actor that
     * is already gone (it finished a moment ago) will not answer: its final `run.state` is on
     * its way, and `trackRun` answers the command then.
     */
    forwardCommand: enqueueActions(({ system, event, enqueue }) => {
      if (event.type !== 'run.command') return;
      const run = system.get(`run:${event.runId}`);
      if (run !== undefined) enqueue.sendTo(run, event.command);
      enqueue.assign(({ context }) => rememberCommand(context, event.command.key, event.runId));
    }),
    /** Keeps the registry and the slot queue in step with what a run reports. */
    trackRun: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'run.state') return;
      const { runId, state } = event;
      if (context.runs[runId] === undefined) return;
      if (isFinalRunState(state)) {
        // Commands the run did not answer before it ended: answered here, never left hanging.
        for (const reply of unansweredCommands(context, runId, state)) {
          enqueue.sendTo('control', reply);
          enqueue.assign(({ context: current }) => forgetCommand(current, reply.key));
        }
      }
      enqueue.assign(({ context: current }) => {
        const ended = track(current, event);
        return {
          runs: current.runs,
          liveCounts: current.liveCounts,
          queue: current.queue,
          ...(ended === null
            ? {}
            : { finished: { ...current.finished, [ended]: current.finished[ended] + 1 } }),
        };
      });
    }),
    trackGateway: assign({
      gateway: ({ context, event }) =>
        event.type === 'gateway.status' ? gatewayAfter(context.gateway, event) : context.gateway,
    }),
    startRetention: enqueueActions(({ context, enqueue }) => {
      if (context.retention === null) return;
      enqueue.spawnChild('retention', { id: 'retention', systemId: 'retention', input: context.retention });
    }),
    forwardPrune: sendTo('retention', ({ event }) => {
      const request = event as Extract<ControlRequestEvent, { method: 'store.prune' }>;
      return {
        type: 'retention.request' as const,
        key: request.key,
        dryRun: request.params.dry_run ?? false,
      };
    }),
    /** A prune's outcome, to every caller it answers. */
    replyPruned: enqueueActions(({ event, enqueue }) => {
      if (event.type !== 'store.pruned' && event.type !== 'store.pruneFailed') return;
      for (const reply of pruneReplies(event)) enqueue.sendTo('control', reply);
    }),
    startGateway: enqueueActions(({ context, enqueue }) => {
      enqueue.spawnChild('gatewayLink', {
        id: 'gateway',
        systemId: 'gateway',
        input: { url: context.facts.gatewayUrl },
      });
    }),
    /** Hands free slots to queued runs, oldest first. */
    admitRuns: enqueueActions(({ context, enqueue }) => {
      const admitted = freeSlotsFor(context, context.maxRuns);
      if (admitted.length === 0) return;
      for (const runId of admitted) {
        enqueue.sendTo(({ system }) => system.get(`run:${runId}`), { type: 'run.admit' });
      }
      enqueue.assign(({ context: current }) => {
        markAdmitted(current, admitted);
        return { runs: current.runs, liveCounts: current.liveCounts, queue: current.queue };
      });
    }),
    /** Tells the link the daemon is stopping (it says goodbye, 1001, and reports `closed`). */
    closeLink: enqueueActions(({ system, enqueue }) => {
      const link = system.get('gateway');
      if (link !== undefined) enqueue.sendTo(link, { type: 'link.close' });
    }),
  },
  guards: {
    isStatusRequest: ({ event }) => event.type === 'control.request' && event.method === 'status',
    isStopRequest: ({ event }) => event.type === 'control.request' && event.method === 'stop',
    isPruneRequest: ({ event }) => event.type === 'control.request' && event.method === 'store.prune',
    retentionOff: ({ context, event }) =>
      event.type === 'control.request' && event.method === 'store.prune' && context.retention === null,
    noRunExecuting: ({ context }) => executing(context) === 0,
    queueFull: ({ context }) => context.liveCounts.queued + context.submitting >= context.maxQueuedRuns,
    runGone: ({ context, event }) => event.type === 'run.command' && context.runs[event.runId] === undefined,
    notWaitingForIt: ({ context, event }) => event.type === 'run.command' && !waitsFor(context, event),
    alreadyCancelling: ({ context, event }) =>
      event.type === 'run.command' &&
      event.command.type === 'run.cancel' &&
      context.runs[event.runId]?.state === 'cancelling',
  },
  delays: {
    drainTimeout: ({ context }) => context.drainTimeoutMs,
  },
}).createMachine({
  id: 'daemon',
  description: 'The root of the daemon: owns the control socket, the gateway link and every run.',
  context: ({ input }) => initialContext(input),
  initial: 'booting',
  on: {
    'run.state': { actions: 'trackRun' },
    'gateway.status': { actions: 'trackGateway' },
    'run.command': [
      {
        guard: 'runGone',
        actions: { type: 'replyError', params: ({ event }) => runGoneError(event.runId) },
      },
      {
        guard: 'notWaitingForIt',
        actions: { type: 'replyError', params: ({ context, event }) => notWaitingError(context, event) },
      },
      {
        guard: 'alreadyCancelling',
        actions: {
          type: 'replyRunAck',
          params: ({ event }) => ({ runId: event.runId, state: 'cancelling' }),
        },
      },
      // The run answers once the effect is recorded (see forwardCommand).
      { actions: 'forwardCommand' },
    ],
    'run.answer': { actions: 'replyAnswer' },
    'store.pruned': { actions: 'replyPruned' },
    'store.pruneFailed': { actions: 'replyPruned' },
    // A new run, stored: registered, given its actor, acknowledged (also while draining: it was
    // accepted before the drain began, and waits queued for the next start).
    'run.stored': {
      actions: [
        { type: 'countSubmitting', params: { delta: -1 } },
        { type: 'registerRun', params: ({ event }) => ({ runId: event.runId, state: 'queued' }) },
        { type: 'spawnRun', params: ({ event }) => newRun(event.runId, event.plan) },
        { type: 'replyRunAck', params: ({ event }) => ({ runId: event.runId, state: 'queued' }) },
      ],
    },
    'run.storeFailed': {
      actions: [
        { type: 'countSubmitting', params: { delta: -1 } },
        { type: 'replyError', params: ({ event }) => event.error },
      ],
    },
  },
  states: {
    booting: {
      description: 'Recovering durable state, then binding the control socket.',
      initial: 'recovering',
      on: {
        'daemon.stop': { target: 'stopped', actions: 'acceptStopRequest' },
      },
      states: {
        recovering: {
          description: 'Reading the store to learn how the previous daemon ended.',
          invoke: {
            src: 'recoverState',
            onDone: {
              target: 'listening',
              actions: assign(({ event }) => recovered(event.output)),
            },
            onError: {
              target: '#daemon.stopped',
              actions: {
                type: 'recordFailure',
                params: ({ event }) => ({ message: `recovery failed: ${errorMessage(event.error)}` }),
              },
            },
          },
        },
        listening: {
          description: 'Binding the control socket.',
          entry: assign(({ spawn }) => {
            // The control actor lives as long as the root: it answers status while draining.
            spawn('controlServer', { id: 'control', systemId: 'control' });
            return {};
          }),
          on: {
            'control.listening': { target: '#daemon.serving' },
            'control.failed': {
              target: '#daemon.stopped',
              actions: { type: 'recordFailure', params: ({ event }) => controlFailed(event.message) },
            },
          },
        },
      },
    },
    serving: {
      description: 'Answering the control socket; accepting work.',
      entry: [
        { type: 'journal', params: daemonStarted },
        'startShards',
        'restoreRuns',
        'startGateway',
        'startRetention',
        'announceReady',
      ],
      exit: 'stopStateWatch',
      on: {
        'run.state': { actions: ['trackRun', 'admitRuns'] },
        'run.submit': [
          {
            guard: 'queueFull',
            actions: { type: 'replyError', params: ({ context }) => queueFullError(context) },
          },
          {
            actions: [
              { type: 'countSubmitting', params: { delta: 1 } },
              { type: 'persistRun', params: ({ event }) => event },
            ],
          },
        ],
        'control.request': [
          { guard: 'isStatusRequest', actions: { type: 'replyStatus', params: { state: 'serving' } } },
          {
            guard: 'isStopRequest',
            target: 'draining',
            actions: ['acceptStopRequest', { type: 'replyStopAccepted', params: { alreadyStopping: false } }],
          },
          { guard: 'retentionOff', actions: { type: 'replyError', params: NO_RETENTION } },
          { guard: 'isPruneRequest', actions: 'forwardPrune' },
        ],
        'daemon.stop': { target: 'draining', actions: 'acceptStopRequest' },
        'control.failed': {
          target: 'draining',
          actions: { type: 'recordFailure', params: ({ event }) => controlFailed(event.message) },
        },
      },
    },
    draining: {
      description: 'Refusing new work and waiting for in-flight work to reach a safe point.',
      entry: { type: 'journal', params: daemonStopping },
      always: { guard: 'noRunExecuting', target: 'stopped' },
      after: {
        drainTimeout: { target: 'stopped', actions: 'recordDrainTimeout' },
      },
      on: {
        'run.submit': { actions: { type: 'replyError', params: DRAINING_NO_RUNS } },
        'control.request': [
          { guard: 'isStatusRequest', actions: { type: 'replyStatus', params: { state: 'draining' } } },
          {
            guard: 'isStopRequest',
            actions: { type: 'replyStopAccepted', params: { alreadyStopping: true } },
          },
          { guard: 'isPruneRequest', actions: { type: 'replyError', params: DRAINING_NO_PRUNE } },
        ],
      },
    },
    stopped: {
      description: 'Final: the wiring closes the store, releases the lock and exits.',
      type: 'final',
      entry: [{ type: 'journal', params: daemonStopped }, 'closeLink'],
    },
  },
  output: ({ context }) => outputOf(context),
});

/** The key of the call an event answers. */
function keyOf(event: DaemonEvent): string {
  if (event.type === 'run.command') return event.command.key;
  return (event as { key: string }).key;
}
