import { resolve } from 'node:path';
import * as Flags from '@oclif/core/flags';
import { DaemonCommand } from '../src/cli/base-command.js';
import { fetchStatus, targetProject } from '../src/cli/daemon-client.js';
import { CharterError, hasCode } from '../src/errors/charter-error.js';
import { LOG_LEVELS } from '../src/logging/levels.js';
import { GatewayUrlSchema } from '../src/project/gateway-url.js';
import { isLoopbackHost, parseListenAddress } from '../src/project/metrics-address.js';

export interface StartJson {
  already_running: boolean;
  pid: number;
  socket_path: string;
  log_path: string;
  gateway: string | null;
  inspector_url: string | null;
  /** The Prometheus endpoint, when the daemon serves one. */
  metrics_url: string | null;
}

export default class Start extends DaemonCommand {
  static override summary = 'Start the daemon for a Charter project (one per project root).';
  static override description =
    `By default the daemon detaches: the command waits until it answers on its socket, prints its pid, socket and log file, and exits 0. A failed start exits non-zero with the reason.
If a daemon already runs for the project, says so and exits 0.
With --foreground it stays attached (for systemd and containers), logs to stdout (pretty on a terminal, JSON otherwise) and stops gracefully on SIGTERM or SIGINT.
Without a gateway the daemon runs fully, "offline": events are kept in the local store.`;
  static override examples = [
    '<%= config.bin %> start',
    '<%= config.bin %> start --project-path ~/work/site --gateway http://127.0.0.1:8765',
    '<%= config.bin %> start --foreground --log-level debug',
    '<%= config.bin %> start --inspect --inspect-port 9464',
    '<%= config.bin %> start --metrics 127.0.0.1:9464',
  ];
  static override enableJsonFlag = true;
  static override flags = {
    gateway: Flags.string({
      description: 'charter-gateway address (also CHARTER_GATEWAY_URL or gateway.url in charter.yml).',
      helpValue: 'URL',
    }),
    'gateway-token-file': Flags.string({
      description: 'File with the gateway token, re-read at every connect (else CHARTER_GATEWAY_TOKEN).',
      helpValue: 'FILE',
    }),
    'max-runs': Flags.integer({
      description: 'Runs executing steps at once (waiting runs do not count; default 4 or daemon.max_runs).',
      min: 1,
      max: 1024,
    }),
    foreground: Flags.boolean({ description: 'Stay attached to the terminal instead of detaching.' }),
    'log-level': Flags.option({
      options: LOG_LEVELS,
      description: 'Log level (default: info, or daemon.log_level).',
    })(),
    inspect: Flags.boolean({ description: 'Attach the Stately inspector through a relay on 127.0.0.1.' }),
    'inspect-port': Flags.integer({
      description: 'Port of the inspector relay (default: a free port).',
      min: 0,
      max: 65_535,
      dependsOn: ['inspect'],
    }),
    metrics: Flags.string({
      description:
        'Serve Prometheus metrics (GET /metrics) and GET /healthz on HOST:PORT (port 0: a free one; also daemon.metrics.listen). Off by default.',
      helpValue: 'ADDR',
    }),
    'metrics-allow-remote': Flags.boolean({
      description: 'Allow a --metrics address that is not loopback (the endpoint has no authentication).',
    }),
    'fresh-store': Flags.boolean({
      description:
        'Start with an empty store although identity.json shows a previous one (keeps the daemon id and seq).',
    }),
    'wait-timeout': Flags.integer({
      description: 'Seconds to wait for a detached daemon to answer.',
      default: 15,
      min: 1,
      max: 600,
      helpValue: 'SECONDS',
    }),
  };

  async run(): Promise<StartJson | undefined> {
    const { flags } = await this.parse(Start);
    const target = targetProject(flags['project-path']);
    let gatewayUrl: string | undefined;
    if (flags.gateway !== undefined) {
      const parsed = GatewayUrlSchema.safeParse(flags.gateway);
      if (!parsed.success)
        throw new CharterError('INVALID_FLAG', `--gateway: ${parsed.error.issues[0]?.message}`);
      gatewayUrl = parsed.data;
    }

    try {
      const running = await fetchStatus(target, this.warnUser, {
        connectTimeoutMs: 1000,
        requestTimeoutMs: 3000,
      });
      return this.report(running, true);
    } catch (error) {
      if (!hasCode(error, 'DAEMON_NOT_RUNNING')) throw error;
    }

    const metrics = flags.metrics;
    if (metrics !== undefined) {
      // Checked here too, so a bad address fails before a daemon is spawned.
      const parsed = parseListenAddress(metrics);
      if (!parsed.ok) throw new CharterError('INVALID_FLAG', `--metrics: ${parsed.message}`);
      if (!isLoopbackHost(parsed.address.host) && !flags['metrics-allow-remote']) {
        throw new CharterError(
          'INVALID_FLAG',
          `--metrics: ${parsed.address.host} is not a loopback address; the metrics endpoint has no authentication, so pass --metrics-allow-remote to expose it beyond this machine`,
        );
      }
    }

    const tokenFile = flags['gateway-token-file'];
    const options = {
      ...(gatewayUrl === undefined ? {} : { gatewayUrl }),
      ...(tokenFile === undefined ? {} : { gatewayTokenFile: resolve(tokenFile) }),
      ...(flags['max-runs'] === undefined ? {} : { maxRuns: flags['max-runs'] }),
      ...(flags['log-level'] === undefined ? {} : { logLevel: flags['log-level'] }),
      inspect: flags.inspect,
      ...(flags['inspect-port'] === undefined ? {} : { inspectPort: flags['inspect-port'] }),
      ...(metrics === undefined ? {} : { metricsListen: metrics }),
      metricsAllowRemote: flags['metrics-allow-remote'],
      ...(flags['fresh-store'] ? { freshStore: true } : {}),
    };

    if (flags.foreground) {
      const [{ runDaemon }, { EXIT_ALREADY_RUNNING }] = await Promise.all([
        import('../src/daemon/run-daemon.js'),
        import('../src/daemon/launch-options.js'),
      ]);
      const code = await runDaemon({ ...options, projectRoot: target.projectRoot, foreground: true });
      if (code === EXIT_ALREADY_RUNNING) {
        this.logToStderr('charter-daemon is already running for this project (another start won the race)');
        return undefined;
      }
      if (code !== 0) {
        throw new CharterError(
          'START_FAILED',
          `the daemon stopped with exit code ${code}; see ${target.paths.logPath}`,
        );
      }
      return undefined;
    }

    const { launchDetached } = await import('../src/cli/launcher.js');
    const launched = await launchDetached(target, options, flags['wait-timeout'] * 1000, this.warnUser);
    return this.report(launched.status, !launched.startedByUs);
  }

  private report(
    status: {
      pid: number;
      socket_path: string;
      log_path: string;
      gateway: { url: string | null };
      inspector: { url: string } | null;
      metrics?: { url: string } | null | undefined;
    },
    alreadyRunning: boolean,
  ): StartJson | undefined {
    const result: StartJson = {
      already_running: alreadyRunning,
      pid: status.pid,
      socket_path: status.socket_path,
      log_path: status.log_path,
      gateway: status.gateway.url,
      inspector_url: status.inspector?.url ?? null,
      metrics_url: status.metrics?.url ?? null,
    };
    if (this.jsonEnabled()) return result;
    this.log(
      alreadyRunning
        ? `charter-daemon is already running (pid ${status.pid})`
        : `charter-daemon started (pid ${status.pid})`,
    );
    this.log(`  socket:    ${status.socket_path}`);
    this.log(`  log:       ${status.log_path}`);
    this.log(`  gateway:   ${status.gateway.url ?? 'offline (no gateway configured)'}`);
    if (status.inspector !== null) this.log(`  inspector: open ${status.inspector.url} in a browser`);
    if (result.metrics_url !== null) this.log(`  metrics:   ${result.metrics_url}`);
    return undefined;
  }
}
