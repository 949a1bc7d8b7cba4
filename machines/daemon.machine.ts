/**
 * The root daemon actor: booting → serving → draining → stopped.
 *
 * It decides; it does no I/O. The control socket lives in a spawned callback actor (`control`),
 * start-up recovery in an invoked promise actor, and journaling in the named `journal` action;
 * the daemon wiring (src/daemon/) provides the real implementations through `provide()`, tests
 * provide fakes. Work that must reach a safe point before the daemon stops (runs, later) reports
 * `work.started` / `work.settled`; draining waits for it, bounded by the `drainTimeout` delay.
 */
import { assign, fromCallback, fromPromise, sendTo, setup } from 'xstate';
import type { ControlReply } from '../src/control/server.js';
import type {
  GatewayLinkStatus,
  RunCounts,
  RunState,
  StatusResult,
  StopParams,
} from '../src/protocol/control.js';

/** Facts about this daemon process, fixed at start. */
export interface DaemonFacts {
  readonly pid: number;
  readonly version: string;
  readonly startedAt: string;
  readonly daemonId: string;
  readonly epoch: number;
  readonly projectRoot: string;
  readonly socketPath: string;
  readonly storePath: string;
  readonly logPath: string;
  readonly gatewayUrl: string | null;
  readonly inspectorUrl: string | null;
}

export interface DaemonInput {
  readonly facts: DaemonFacts;
  /** Default bound on draining; a `stop` request may set its own. */
  readonly drainTimeoutMs: number;
}

export type PreviousShutdown = 'first-start' | 'clean' | 'unclean';

export interface RecoveryReport {
  readonly previousShutdown: PreviousShutdown;
}

export interface DaemonContext {
  readonly facts: DaemonFacts;
  drainTimeoutMs: number;
  /** Ids of children that must reach a safe point before the daemon may stop. */
  activeWork: string[];
  /** Latest known state of every run actor, by run id (filled by run actors). */
  runStates: Record<string, RunState>;
  previousShutdown: PreviousShutdown | null;
  stopReason: string | null;
  drainTimedOut: boolean;
  /** Set when the daemon stops because something failed; the process then exits non-zero. */
  failure: string | null;
}

export type ControlRequestEvent =
  | { type: 'control.request'; key: string; method: 'status'; params: Record<string, never> }
  | { type: 'control.request'; key: string; method: 'stop'; params: StopParams };

export type DaemonEvent =
  | ControlRequestEvent
  | { type: 'control.listening' }
  | { type: 'control.failed'; message: string }
  | { type: 'daemon.stop'; reason: string; timeoutMs?: number }
  | { type: 'work.started'; id: string }
  | { type: 'work.settled'; id: string };

/** What the control actor receives from the root. */
export type ControlActorEvent = { type: 'control.reply'; key: string; reply: ControlReply };

export interface DaemonOutput {
  readonly exitCode: number;
  readonly failure: string | null;
  readonly drainTimedOut: boolean;
}

export interface JournalParams {
  readonly type: string;
  readonly data: Record<string, unknown>;
}

const emptyRunCounts = (): RunCounts => ({
  queued: 0,
  running: 0,
  waiting: 0,
  cancelling: 0,
  succeeded: 0,
  failed: 0,
  cancelled: 0,
});

function gatewayStatus(facts: DaemonFacts): GatewayLinkStatus {
  return facts.gatewayUrl === null
    ? { state: 'offline', url: null, since: facts.startedAt, detail: 'no gateway configured' }
    : {
        state: 'offline',
        url: facts.gatewayUrl,
        since: facts.startedAt,
        detail: 'this daemon version has no gateway link yet: events are kept in the local store',
      };
}

/** The status the daemon reports; pure so that tests and the control plane agree. */
export function statusOf(context: DaemonContext, state: 'booting' | 'serving' | 'draining'): StatusResult {
  const runs = emptyRunCounts();
  for (const runState of Object.values(context.runStates)) runs[runState] += 1;
  const { facts } = context;
  return {
    pid: facts.pid,
    version: facts.version,
    state,
    started_at: facts.startedAt,
    daemon_id: facts.daemonId,
    project_root: facts.projectRoot,
    socket_path: facts.socketPath,
    store_path: facts.storePath,
    log_path: facts.logPath,
    gateway: gatewayStatus(facts),
    runs,
    inspector: facts.inspectorUrl === null ? null : { url: facts.inspectorUrl },
  };
}

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
    recoverState: fromPromise<RecoveryReport>(async () => ({ previousShutdown: 'first-start' })),
  },
  actions: {
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
        reply: { result: { pid: context.facts.pid, already_stopping: params.alreadyStopping } },
      }),
    ),
    acceptStopRequest: assign(({ context, event }) => {
      if (event.type === 'daemon.stop') {
        return { stopReason: event.reason, drainTimeoutMs: event.timeoutMs ?? context.drainTimeoutMs };
      }
      if (event.type === 'control.request' && event.method === 'stop') {
        return {
          stopReason: 'stop requested',
          drainTimeoutMs: event.params.timeout_ms ?? context.drainTimeoutMs,
        };
      }
      return {};
    }),
    trackWorkStarted: assign({
      activeWork: ({ context, event }) =>
        event.type === 'work.started' && !context.activeWork.includes(event.id)
          ? [...context.activeWork, event.id]
          : context.activeWork,
    }),
    trackWorkSettled: assign({
      activeWork: ({ context, event }) =>
        event.type === 'work.settled'
          ? context.activeWork.filter((id) => id !== event.id)
          : context.activeWork,
    }),
    recordFailure: assign({
      failure: (_args, params: { message: string }) => params.message,
      stopReason: 'failure',
    }),
    recordDrainTimeout: assign({ drainTimedOut: true }),
  },
  guards: {
    isStatusRequest: ({ event }) => event.type === 'control.request' && event.method === 'status',
    isStopRequest: ({ event }) => event.type === 'control.request' && event.method === 'stop',
    noActiveWork: ({ context }) => context.activeWork.length === 0,
  },
  delays: {
    drainTimeout: ({ context }) => context.drainTimeoutMs,
  },
}).createMachine({
  id: 'daemon',
  description: 'The root of the daemon: owns the control socket and, later, the gateway link and every run.',
  context: ({ input }) => ({
    facts: input.facts,
    drainTimeoutMs: input.drainTimeoutMs,
    activeWork: [],
    runStates: {},
    previousShutdown: null,
    stopReason: null,
    drainTimedOut: false,
    failure: null,
  }),
  initial: 'booting',
  on: {
    'work.started': { actions: 'trackWorkStarted' },
    'work.settled': { actions: 'trackWorkSettled' },
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
              actions: assign({ previousShutdown: ({ event }) => event.output.previousShutdown }),
            },
            onError: {
              target: '#daemon.stopped',
              actions: {
                type: 'recordFailure',
                params: ({ event }) => ({ message: `recovery failed: ${describeError(event.error)}` }),
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
              actions: {
                type: 'recordFailure',
                params: ({ event }) => ({ message: `control socket failed: ${event.message}` }),
              },
            },
          },
        },
      },
    },
    serving: {
      description: 'Answering the control socket; accepting work.',
      entry: {
        type: 'journal',
        params: ({ context }) => ({
          type: 'daemon.started',
          data: {
            pid: context.facts.pid,
            version: context.facts.version,
            epoch: context.facts.epoch,
            previous_shutdown: context.previousShutdown,
          },
        }),
      },
      on: {
        'control.request': [
          { guard: 'isStatusRequest', actions: { type: 'replyStatus', params: { state: 'serving' } } },
          {
            guard: 'isStopRequest',
            target: 'draining',
            actions: ['acceptStopRequest', { type: 'replyStopAccepted', params: { alreadyStopping: false } }],
          },
        ],
        'daemon.stop': { target: 'draining', actions: 'acceptStopRequest' },
        'control.failed': {
          target: 'draining',
          actions: {
            type: 'recordFailure',
            params: ({ event }) => ({ message: `control socket failed: ${event.message}` }),
          },
        },
      },
    },
    draining: {
      description: 'Refusing new work and waiting for in-flight work to reach a safe point.',
      entry: {
        type: 'journal',
        params: ({ context }) => ({
          type: 'daemon.stopping',
          data: { reason: context.stopReason, in_flight: context.activeWork.length },
        }),
      },
      always: { guard: 'noActiveWork', target: 'stopped' },
      after: {
        drainTimeout: { target: 'stopped', actions: 'recordDrainTimeout' },
      },
      on: {
        'control.request': [
          { guard: 'isStatusRequest', actions: { type: 'replyStatus', params: { state: 'draining' } } },
          {
            guard: 'isStopRequest',
            actions: { type: 'replyStopAccepted', params: { alreadyStopping: true } },
          },
        ],
      },
    },
    stopped: {
      description: 'Final: the wiring closes the store, releases the lock and exits.',
      type: 'final',
      entry: {
        type: 'journal',
        params: ({ context }) => ({
          type: 'daemon.stopped',
          data: {
            reason: context.stopReason,
            drain_timed_out: context.drainTimedOut,
            abandoned_work: context.activeWork,
            failure: context.failure,
          },
        }),
      },
    },
  },
  output: ({ context }) => ({
    exitCode: context.failure === null ? 0 : 1,
    failure: context.failure,
    drainTimedOut: context.drainTimedOut,
  }),
});

function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
