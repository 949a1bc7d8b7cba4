/**
 * Wiring: builds the daemon's actor system with real implementations and runs it to the end.
 * Order matters: lock first (everything after it is ours alone), then stale-state clean-up, the
 * store, and finally the root actor, which binds the socket. Returns the process exit code.
 */
import { lstatSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { type AnyActorRef, createActor, fromPromise, type InspectionEvent, toPromise } from 'xstate';
import { type DaemonEvent, daemonMachine, type RecoveryReport } from '../../machines/daemon.machine.js';
import { gatewayLinkMachine } from '../../machines/gateway-link.machine.js';
import { retentionMachine } from '../../machines/retention.machine.js';
import { runShardMachine } from '../../machines/run-shard.machine.js';
import { isCharterError } from '../errors/charter-error.js';
import { errorMessage } from '../errors/error-message.js';
import { crashPoint } from '../faults/crash-points.js';
import { gatewayTokenSource } from '../gateway/token.js';
import { transportLogic } from '../gateway/transport.js';
import { createIntake } from '../intake/intake.js';
import { createDaemonLogger, type DaemonLogger } from '../logging/logger.js';
import { daemonFigures, healthOf, type RootSnapshot, statusOfSnapshot } from '../monitoring/daemon-view.js';
import { MetricsEndpoint } from '../monitoring/endpoint.js';
import { DaemonMetrics } from '../monitoring/recorder.js';
import { WatchFeeds } from '../monitoring/watch-feed.js';
import { type DaemonSettings, loadProjectConfig, resolveDaemonSettings } from '../project/config.js';
import { daemonPaths, resolveProjectRoot } from '../project/paths.js';
import { readRuntimeFile, writeRuntimeFile } from '../project/runtime-file.js';
import type { ControlSocketStatus } from '../protocol/control.js';
import { CrashRecorder } from '../runs/crash-recorder.js';
import { recoverRuns } from '../runs/recovery.js';
import { RunFollowers } from '../runs/run-followers.js';
import { createRunLogic } from '../runs/run-logic.js';
import { LiveSecrets } from '../secrets/live-secrets.js';
import { SecretBox } from '../secrets/secret-box.js';
import { Store } from '../store/store.js';
import { corruptStoreError, isCorruptionError } from '../store/store-errors.js';
import { StoreHealth } from '../store/store-health.js';
import { packageVersion } from '../version.js';
import { WorkflowCatalog } from '../workflow/catalog.js';
import { controlServerLogic } from './control-actor.js';
import { EXIT_ALREADY_RUNNING, type LaunchOptions, LaunchOptionsSchema } from './launch-options.js';
import { ProjectLock } from './lock.js';
import { clearStaleState, prepareStateDirs } from './state-dir.js';
import { removeIfSame, type StateWatch, watchStateFiles } from './state-watch.js';

const LIFECYCLE_TYPES = ['daemon.started', 'daemon.stopped'] as const;
/** The first automatic prune comes this long after start, or after one interval if shorter. */
const FIRST_PRUNE_MS = 5 * 60_000;
/** The stop reason when the lock file or the socket is gone or replaced. */
const STATE_REMOVED = 'state directory removed';

interface InspectorHandle {
  readonly pageUrl: string;
  readonly inspect: (event: InspectionEvent) => void;
  stop(): Promise<void>;
}

/** Runs a daemon until it stops; the exit code says how it ended. */
export async function runDaemon(launch: LaunchOptions): Promise<number> {
  const options = LaunchOptionsSchema.parse(launch);
  const projectRoot = resolveProjectRoot(options.projectRoot);
  const paths = daemonPaths(projectRoot);
  prepareStateDirs(paths);

  // The lock comes first: everything after it (log file, socket, store) is this daemon's alone.
  const lock = ProjectLock.tryAcquire(paths.lockPath);
  if (lock === undefined) {
    process.stderr.write(
      `charter-daemon: another daemon holds the lock of ${projectRoot}: not starting a second one\n`,
    );
    return EXIT_ALREADY_RUNNING;
  }

  let log: DaemonLogger;
  let settings: DaemonSettings;
  // Secret values held in clear (the token, executing runs' secrets): masked in every log line.
  const liveSecrets = new LiveSecrets();
  try {
    const config = loadProjectConfig(projectRoot);
    settings = resolveDaemonSettings(projectRoot, config, {
      gatewayUrl: options.gatewayUrl,
      logLevel: options.logLevel,
      maxRuns: options.maxRuns,
      metricsListen: options.metricsListen,
      metricsAllowRemote: options.metricsAllowRemote,
    });
    log = await createDaemonLogger({
      logPath: paths.logPath,
      level: settings.logLevel,
      foreground: options.foreground,
      maskText: (line) => liveSecrets.mask(line),
    });
  } catch (error) {
    lock.release();
    throw error;
  }
  const logger = log.logger;

  let store: Store | undefined;
  let crashes: CrashRecorder | undefined;
  let inspector: InspectorHandle | undefined;
  let stateWatch: StateWatch | undefined;
  let recorder: DaemonMetrics | undefined;
  let metrics: MetricsEndpoint | undefined;
  let watchers: WatchFeeds | undefined;
  const removeSignalHandlers: (() => void)[] = [];
  try {
    const stale = clearStaleState(paths);
    if (stale.stalePid !== null || stale.removedSocket) {
      logger.warn(
        { stalePid: stale.stalePid, removedSocket: stale.removedSocket },
        'cleaned up after a daemon that did not exit cleanly',
      );
    }
    store = Store.open(paths.storePath, { identityPath: paths.identityPath, freshStore: options.freshStore });
    const openStore = store;
    logger.info({ ...store.openReport, daemonId: store.daemonId }, 'store opened');
    const epoch = store.beginEpoch();
    if (options.inspect) inspector = await startInspector(options.inspectPort ?? 0, logger);

    const startedAt = new Date().toISOString();
    const catalog = new WorkflowCatalog(projectRoot);
    const followers = new RunFollowers(openStore);
    const health = new StoreHealth(openStore, (fault) => {
      if (fault === null) logger.info('store writes succeed again');
      else
        logger.error(
          { code: fault.code, error: fault.message },
          'a store write failed: the daemon keeps serving',
        );
    });
    const secrets = new SecretBox(paths.secretKeyPath);
    // Metrics, /healthz and the live view read the root's snapshot once the root exists.
    let rootSnapshot: () => RootSnapshot | undefined = () => undefined;
    recorder = new DaemonMetrics(openStore);
    const counters = recorder;
    const metricsEndpoint = new MetricsEndpoint({
      recorder: counters,
      daemon: () => daemonFigures(rootSnapshot()),
      backlog: () => openStore.gateway.backlog(),
      storeFiles: [paths.storePath, `${paths.storePath}-wal`],
      logLinesDropped: () => log.status().dropped_lines,
      storeFault: () => health.fault,
    });
    metrics = metricsEndpoint;
    if (settings.metricsListen !== null) {
      const url = await metricsEndpoint.listen(settings.metricsListen, () =>
        healthOf(rootSnapshot(), health.fault),
      );
      logger.info({ url }, 'metrics endpoint listening (GET /metrics, GET /healthz)');
    }
    const feeds = new WatchFeeds({
      store: openStore,
      recorder: counters,
      status: () => statusOfSnapshot(rootSnapshot()),
      storeFault: () => health.fault,
    });
    watchers = feeds;
    const retention = settings.retention;
    /** The control server's figures once it exists (the control actor publishes them). */
    let readControlFigures: (() => ControlSocketStatus) | undefined;
    const intake = createIntake({
      store: openStore,
      catalog,
      followers,
      health,
      logHealth: log.status,
      secrets,
      metrics: () => metricsEndpoint.text(),
      metricsUrl: () => metricsEndpoint.url,
      watch: feeds,
      controlSocket: () => readControlFigures?.() ?? null,
      retention: {
        max_age_days: retention.maxAgeDays,
        max_finished_runs: retention.maxFinishedRuns,
        max_store_mb: retention.maxStoreMb,
        interval_minutes: retention.intervalMinutes,
      },
    });
    crashes = new CrashRecorder(openStore, health, logger);
    const crashRecorder = crashes;
    // The root, once created: gateway commands enter the actor system through it.
    let rootRef: AnyActorRef | undefined;
    const toRoot = (event: DaemonEvent) => rootRef?.send(event);
    const tokens = gatewayTokenSource(options.gatewayTokenFile);
    liveSecrets.set('gateway token', [tokens.read()]);
    /** daemon.json, so clients find the socket (they fall back to its default path without it). */
    const writeReadyRuntimeFile = () => {
      try {
        writeRuntimeFile(paths.runtimeFile, {
          pid: process.pid,
          socket_path: paths.socketPath,
          version: packageVersion,
          started_at: startedAt,
          launch: {
            foreground: options.foreground,
            ...(options.gatewayUrl === undefined ? {} : { gatewayUrl: options.gatewayUrl }),
            ...(options.gatewayTokenFile === undefined ? {} : { gatewayTokenFile: options.gatewayTokenFile }),
            ...(options.logLevel === undefined ? {} : { logLevel: options.logLevel }),
            ...(options.maxRuns === undefined ? {} : { maxRuns: options.maxRuns }),
            inspect: options.inspect,
            ...(options.inspectPort === undefined ? {} : { inspectPort: options.inspectPort }),
          },
        });
      } catch (error) {
        logger.error({ err: error, path: paths.runtimeFile }, 'daemon.json could not be written');
      }
    };
    /**
     * Entered with `serving` (the root's `announceReady`): commands stored before a crash but
     * never applied are applied (at most once each), `daemon.json` is written, the ready line is
     * logged, and the watch on the state files begins.
     */
    const announceReady = () => {
      // Commands stored before a crash but never applied: apply them now (at most once each).
      // This runs inside the root's transition: nothing here may throw, or the root would fail.
      for (const pending of pendingCommands(openStore, logger)) {
        try {
          intake.applyGatewayCommand(
            {
              op: 'command',
              dseq: pending.dseq,
              cmd_id: pending.cmdId,
              kind: pending.kind,
              args: pending.args,
              ...(pending.runId ? { run_id: pending.runId } : {}),
            },
            toRoot,
          );
        } catch (error) {
          // Still pending in the store: applied again at the next start.
          health.failed(error);
          logger.error(
            { err: error, cmdId: pending.cmdId },
            'a pending gateway command could not be applied',
          );
        }
      }
      writeReadyRuntimeFile();
      logger.info(
        { socket: paths.socketPath, project: projectRoot, gateway: settings.gatewayUrl ?? 'offline' },
        'daemon ready',
      );
      stateWatch = watchStateFiles({
        files: [paths.lockPath, paths.socketPath],
        onLost: (lost) => {
          const what = lost.cause === 'missing' ? 'is gone' : 'now names another file';
          logger.error(lost, `${STATE_REMOVED}: ${lost.path} ${what}; draining and stopping`);
          toRoot({ type: 'daemon.stop', reason: STATE_REMOVED });
        },
      });
    };

    const machine = daemonMachine.provide({
      actors: {
        controlServer: controlServerLogic({
          socketPath: paths.socketPath,
          daemonVersion: packageVersion,
          idleTimeoutMs: settings.controlIdleTimeoutMs,
          maxTotalBufferedBytes: settings.controlMaxBufferedBytes,
          publishFigures: (read) => {
            readControlFigures = read;
          },
          logger: logger.child({ component: 'control' }),
          intake,
        }),
        recoverState: fromPromise<RecoveryReport>(async () => {
          const last = openStore.lastOfTypes(LIFECYCLE_TYPES);
          const previousShutdown =
            last === undefined ? 'first-start' : last.type === 'daemon.stopped' ? 'clean' : 'unclean';
          if (previousShutdown === 'unclean') {
            logger.warn({ lastSeq: last?.seq }, 'the previous daemon did not journal a clean stop');
          }
          try {
            const runs = await recoverRuns(
              openStore,
              catalog,
              logger.child({ component: 'recovery' }),
              settings.killGraceMs,
              join(paths.stateDir, 'runs'),
            );
            return { previousShutdown, ...runs };
          } catch (error) {
            // Damage the start-up check could not see (the file looked unchanged): say so plainly.
            if (isCorruptionError(error)) {
              const corrupt = corruptStoreError(openStore.path, error);
              logger.fatal({ code: corrupt.code, err: corrupt }, describe(corrupt));
            }
            throw error;
          }
        }),
        gatewayLink: gatewayLinkMachine.provide({
          actors: {
            transport: transportLogic({
              store: openStore,
              logger: logger.child({ component: 'gateway' }),
              hello: {
                daemonId: openStore.daemonId,
                epoch,
                daemonVersion: packageVersion,
                projectName: settings.projectName,
              },
              token: tokens.read,
              applyCommand: (command) => intake.applyGatewayCommand(command, toRoot),
              onStoreError: (error) => health.failed(error),
              sealCommand: intake.sealGatewayCommand,
              counters,
            }),
          },
        }),
        retention: retentionMachine.provide({
          actors: {
            prune: fromPromise(async ({ input, signal }) => {
              const report = await openStore.retention.prune({
                policy: retention,
                dryRun: input.dryRun,
                // With a gateway configured, what it has not acknowledged is kept.
                protectUnacked: settings.gatewayUrl !== null,
                runsDir: join(paths.stateDir, 'runs'),
                signal,
              });
              if (!report.dry_run) {
                openStore.saveIdentity(false);
                logger.info({ ...report }, `store pruned: ${report.runs} run(s), ${report.events} event(s)`);
              }
              return { ...report };
            }),
          },
        }),
        runShard: runShardMachine.provide({
          actions: {
            recordCrash: (_args, crashed) => crashRecorder.record(crashed),
          },
          actors: {
            run: createRunLogic({
              projectRoot,
              runsDir: join(paths.stateDir, 'runs'),
              store: openStore,
              settleWithin: intake.settleWithin,
              logger: logger.child({ component: 'runs' }),
              killGraceMs: settings.killGraceMs,
              secrets,
              stepEnv: settings.stepEnv,
              daemonSecrets: () => [tokens.read()],
              liveSecrets,
            }),
          },
        }),
      },
      actions: {
        announceReady: () => announceReady(),
        // Once draining, our own clean-up removes the socket: that is no loss to report.
        stopStateWatch: () => stateWatch?.stop(),
        persistRun: ({ self }, params) => {
          try {
            // The run and, for a gateway run.start, its command.result: one transaction.
            openStore.runs.transaction(() => {
              openStore.runs.createRun(
                {
                  runId: params.runId,
                  workflowId: params.plan.id,
                  inputs: params.inputs,
                  steps: params.plan.steps.map((step) => ({ id: step.id, kind: step.kind })),
                },
                { type: 'run.queued', data: { workflow_id: params.plan.id, inputs: params.inputs } },
              );
              intake.settleWithin(params.key, { result: { run_id: params.runId, state: 'queued' } });
            });
          } catch (error) {
            self.send({
              type: 'run.storeFailed',
              key: params.key,
              runId: params.runId,
              error: health.failed(error),
            });
            return;
          }
          crashPoint('run.stored');
          self.send({ type: 'run.stored', key: params.key, runId: params.runId, plan: params.plan });
        },
        journal: (_args, params) => {
          try {
            openStore.append({ type: params.type, data: params.data });
            logger.info({ data: params.data }, `journal: ${params.type}`);
          } catch (error) {
            // A lifecycle entry that cannot be stored is logged, never fatal: the daemon serves on.
            health.failed(error);
            logger.error({ data: params.data, err: error }, `journal: ${params.type} could not be stored`);
          }
        },
      },
    });

    const root = createActor(machine, {
      systemId: 'daemon',
      input: {
        facts: {
          pid: process.pid,
          version: packageVersion,
          startedAt,
          daemonId: store.daemonId,
          epoch,
          projectRoot,
          socketPath: paths.socketPath,
          storePath: paths.storePath,
          logPath: paths.logPath,
          gatewayUrl: settings.gatewayUrl,
          inspectorUrl: inspector?.pageUrl ?? null,
        },
        drainTimeoutMs: settings.drainTimeoutMs,
        maxRuns: settings.maxRuns,
        maxQueuedRuns: settings.maxQueuedRuns,
        retention: {
          intervalMs: retention.intervalMinutes * 60_000,
          firstDelayMs: Math.min(FIRST_PRUNE_MS, retention.intervalMinutes * 60_000),
        },
      },
      logger: (...args: unknown[]) => logger.debug({ args }, 'xstate log'),
      ...(inspector === undefined ? {} : { inspect: inspector.inspect }),
    });

    rootSnapshot = () => root.getSnapshot();
    let linkState = '';
    root.subscribe({
      next: (snapshot) => {
        const link = snapshot.context.gateway;
        if (link.state !== linkState) {
          linkState = link.state;
          logger.info(
            { state: link.state, lastError: link.lastError, connId: link.connId },
            `gateway link: ${link.state}`,
          );
          feeds.poke();
        }
      },
      // Without an error observer an action that throws would crash the process unlogged.
      error: (error) => logger.fatal({ err: error }, 'root actor failed'),
    });

    removeSignalHandlers.push(...installSignalHandlers(root, logger));
    rootRef = root;
    removeSignalHandlers.push(
      tokens.watch(() => {
        liveSecrets.set('gateway token', [tokens.read()]);
        logger.info('the gateway token file changed: reconnecting');
        root.system.get('gateway')?.send({ type: 'link.tokenChanged' });
      }),
    );
    root.start();
    const output = await toPromise(root);
    if (output.failure !== null) logger.error({ failure: output.failure }, 'daemon stopped on a failure');
    if (output.drainTimedOut) logger.warn('drain timed out: in-flight work was cut off');
    logger.info({ exitCode: output.exitCode }, 'daemon stopped');
    return output.exitCode;
  } catch (error) {
    logger.fatal({ err: error, code: isCharterError(error) ? error.code : undefined }, describe(error));
    return isCharterError(error) ? error.exitCode || 1 : 1;
  } finally {
    for (const remove of removeSignalHandlers) remove();
    stateWatch?.stop();
    // Only our own runtime file and socket: after the state directory was removed, another
    // daemon may serve the project from the same paths.
    if (readRuntimeFile(paths.runtimeFile)?.pid === process.pid) rmSync(paths.runtimeFile, { force: true });
    const ownSocket = stateWatch?.identities.get(paths.socketPath);
    if (ownSocket === undefined) removeSocketFile(paths.socketPath);
    else removeIfSame(paths.socketPath, ownSocket);
    watchers?.stopAll();
    await metrics?.close();
    recorder?.stop();
    await inspector?.stop();
    crashes?.stop();
    store?.close();
    lock.release();
    log.close();
  }
}

/** Pending gateway commands; a store that cannot be read here is logged, never thrown at the subscriber. */
function pendingCommands(store: Store, logger: Logger): ReturnType<Store['gateway']['pendingCommands']> {
  try {
    return store.gateway.pendingCommands();
  } catch (error) {
    const code = isCorruptionError(error) ? 'STORE_CORRUPT' : 'STORE_FAILED';
    logger.error({ err: error, code }, `pending gateway commands cannot be read (${code})`);
    return [];
  }
}

/** Removes our socket on the way out, and nothing else that may sit at that path. */
function removeSocketFile(path: string): void {
  try {
    if (lstatSync(path).isSocket()) rmSync(path);
  } catch {
    // already gone
  }
}

function installSignalHandlers(root: AnyActorRef, logger: Logger): (() => void)[] {
  let signalled = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signalled += 1;
    if (signalled === 1) {
      logger.info({ signal }, 'signal received: draining');
      root.send({ type: 'daemon.stop', reason: signal });
      return;
    }
    // A second signal means "now": the store is synchronous, so nothing accepted is lost.
    logger.warn({ signal }, 'second signal: exiting without waiting for the drain');
    process.exit(130);
  };
  const signals: NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP'];
  for (const signal of signals) process.on(signal, onSignal);
  return signals.map((signal) => () => process.off(signal, onSignal));
}

async function startInspector(port: number, logger: Logger): Promise<InspectorHandle> {
  // Loaded only with --inspect: no cost when off.
  const { startInspectorRelay } = await import('../inspector/relay.js');
  const relay = await startInspectorRelay({ port });
  logger.info({ url: relay.pageUrl }, 'Stately inspector relay listening: open the URL in a browser');
  return relay;
}

function describe(error: unknown): string {
  if (isCharterError(error)) return `${error.message} (${error.code}). ${error.hint}`;
  return errorMessage(error);
}
