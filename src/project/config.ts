/**
 * The daemon's part of `charter.yml`, validated with zod. The file belongs to the whole Charter
 * toolchain, so unknown top-level keys are left alone; inside `daemon:` and `gateway:` unknown
 * keys are errors (a typo must not silently fall back to a default).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { z } from 'zod';
import { CharterError } from '../errors/charter-error.js';
import { errorMessage } from '../errors/error-message.js';
import { LOG_LEVELS, type LogLevel } from '../logging/levels.js';
import { STEP_ENV_MODES, type StepEnvMode } from '../workflow/step-env.js';
import { GatewayUrlSchema } from './gateway-url.js';
import { isLoopbackHost, type ListenAddress, parseListenAddress } from './metrics-address.js';

const seconds = (max: number) => z.number().positive().max(max);

export const ProjectConfigSchema = z.looseObject({
  name: z.string().min(1).max(200).optional(),
  gateway: z
    .strictObject({
      url: GatewayUrlSchema.optional(),
    })
    .optional(),
  daemon: z
    .strictObject({
      log_level: z.enum(LOG_LEVELS).optional(),
      /** How long `stop` lets in-flight work reach a safe point. */
      drain_timeout_seconds: seconds(24 * 3600).optional(),
      /** A control connection that sends nothing for this long is closed. */
      control_idle_timeout_seconds: z.number().min(0.05).max(3600).optional(),
      /** What the daemon keeps unread for all control clients together; the slowest are dropped past it. */
      control_max_buffered_mb: z.number().min(1).max(4096).optional(),
      /** Runs executing steps at once; waiting runs do not count. */
      max_runs: z.number().int().min(1).max(1024).optional(),
      /** Runs waiting for a slot at most; a submission past it is refused. */
      max_queued_runs: z.number().int().min(1).max(1_000_000).optional(),
      /** After SIGTERM, how long a step's processes get before SIGKILL (cancel, timeout). */
      kill_grace_seconds: seconds(3600).optional(),
      /** What a step inherits of the daemon's environment (never the daemon's CHARTER_* variables). */
      step_env: z.enum(STEP_ENV_MODES).optional(),
      /** The Prometheus endpoint: off unless `listen` is set. */
      metrics: z
        .strictObject({
          /** HOST:PORT (port 0: a free one); loopback only unless --metrics-allow-remote. */
          listen: z.string().min(1).max(300).optional(),
        })
        .optional(),
      /** Which finished runs the store keeps (docs/operations.md, Retention). */
      retention: z
        .strictObject({
          max_age_days: z.number().positive().max(36_500).optional(),
          max_finished_runs: z.number().int().min(0).max(100_000_000).optional(),
          max_store_mb: z.number().positive().max(1_048_576).optional(),
          /** Between automatic prunes. */
          interval_minutes: z.number().min(1).max(10_080).optional(),
        })
        .optional(),
    })
    .optional(),
});
export type ProjectConfig = z.infer<typeof ProjectConfigSchema>;

/** Reads and validates `charter.yml`; every problem is named by file and field. */
export function loadProjectConfig(projectRoot: string): ProjectConfig {
  const path = join(projectRoot, 'charter.yml');
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new CharterError('NOT_A_PROJECT', `cannot read ${path}: ${errorMessage(error)}`);
  }
  let raw: unknown;
  try {
    raw = parse(text) ?? {};
  } catch (error) {
    throw new CharterError('INVALID_CONFIG', `${path} is not valid YAML: ${errorMessage(error)}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new CharterError('INVALID_CONFIG', `${path} must be a YAML mapping`);
  }
  const parsed = ProjectConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map(
      (issue) => `  - ${issue.path.join('.') || '(root)'}: ${issue.message}`,
    );
    throw new CharterError('INVALID_CONFIG', `${path} is invalid:\n${problems.join('\n')}`);
  }
  return parsed.data;
}

export interface DaemonSettings {
  readonly projectName: string;
  readonly gatewayUrl: string | null;
  readonly logLevel: LogLevel;
  readonly drainTimeoutMs: number;
  readonly controlIdleTimeoutMs: number;
  /** `daemon.control_max_buffered_mb` in bytes. */
  readonly controlMaxBufferedBytes: number;
  readonly maxRuns: number;
  readonly maxQueuedRuns: number;
  readonly killGraceMs: number;
  readonly stepEnv: StepEnvMode;
  /** Where the metrics endpoint listens; null: no port is opened. */
  readonly metricsListen: ListenAddress | null;
  readonly retention: RetentionSettings;
}

export interface RetentionSettings {
  readonly maxAgeDays: number;
  readonly maxFinishedRuns: number;
  readonly maxStoreMb: number;
  readonly intervalMinutes: number;
}

export interface SettingOverrides {
  readonly gatewayUrl?: string | undefined;
  readonly logLevel?: LogLevel | undefined;
  readonly maxRuns?: number | undefined;
  /** `--metrics ADDR` */
  readonly metricsListen?: string | undefined;
  /** `--metrics-allow-remote`: accept a metrics address that is not loopback. */
  readonly metricsAllowRemote?: boolean | undefined;
}

/** Flags win over the environment, which wins over charter.yml, which wins over defaults. */
export function resolveDaemonSettings(
  projectRoot: string,
  config: ProjectConfig,
  overrides: SettingOverrides,
  env: NodeJS.ProcessEnv = process.env,
): DaemonSettings {
  const fromEnv = env.CHARTER_GATEWAY_URL?.trim() ? env.CHARTER_GATEWAY_URL : undefined;
  const rawGateway = overrides.gatewayUrl ?? fromEnv ?? config.gateway?.url;
  let gatewayUrl: string | null = null;
  if (rawGateway !== undefined) {
    const parsed = GatewayUrlSchema.safeParse(rawGateway);
    if (!parsed.success) {
      const source =
        overrides.gatewayUrl !== undefined
          ? '--gateway'
          : fromEnv !== undefined
            ? 'CHARTER_GATEWAY_URL'
            : 'gateway.url';
      throw new CharterError(
        'INVALID_CONFIG',
        `${source}: ${parsed.error.issues[0]?.message ?? 'invalid URL'}`,
      );
    }
    gatewayUrl = parsed.data;
  }
  return {
    projectName: config.name ?? projectRoot.split('/').at(-1) ?? 'project',
    gatewayUrl,
    logLevel: overrides.logLevel ?? config.daemon?.log_level ?? 'info',
    drainTimeoutMs: Math.round((config.daemon?.drain_timeout_seconds ?? 30) * 1000),
    controlIdleTimeoutMs: Math.round((config.daemon?.control_idle_timeout_seconds ?? 10) * 1000),
    controlMaxBufferedBytes: Math.round((config.daemon?.control_max_buffered_mb ?? 64) * 1024 * 1024),
    maxRuns: overrides.maxRuns ?? config.daemon?.max_runs ?? 4,
    maxQueuedRuns: config.daemon?.max_queued_runs ?? 1000,
    killGraceMs: Math.round((config.daemon?.kill_grace_seconds ?? 10) * 1000),
    stepEnv: config.daemon?.step_env ?? 'inherit',
    metricsListen: resolveMetricsListen(config, overrides),
    retention: {
      maxAgeDays: config.daemon?.retention?.max_age_days ?? 30,
      maxFinishedRuns: config.daemon?.retention?.max_finished_runs ?? 10_000,
      maxStoreMb: config.daemon?.retention?.max_store_mb ?? 1024,
      intervalMinutes: config.daemon?.retention?.interval_minutes ?? 60,
    },
  };
}

/**
 * The metrics address from `--metrics` or `daemon.metrics.listen`. The endpoint answers anyone
 * who can reach it, so an address other than loopback needs `--metrics-allow-remote`.
 */
function resolveMetricsListen(config: ProjectConfig, overrides: SettingOverrides): ListenAddress | null {
  const fromFlag = overrides.metricsListen !== undefined;
  const raw = overrides.metricsListen ?? config.daemon?.metrics?.listen;
  if (raw === undefined) return null;
  const source = fromFlag ? '--metrics' : 'daemon.metrics.listen';
  const parsed = parseListenAddress(raw);
  if (!parsed.ok)
    throw new CharterError(fromFlag ? 'INVALID_FLAG' : 'INVALID_CONFIG', `${source}: ${parsed.message}`);
  if (!isLoopbackHost(parsed.address.host) && overrides.metricsAllowRemote !== true) {
    throw new CharterError(
      fromFlag ? 'INVALID_FLAG' : 'INVALID_CONFIG',
      `${source}: ${parsed.address.host} is not a loopback address; the metrics endpoint has no authentication, so pass --metrics-allow-remote to expose it beyond this machine`,
    );
  }
  return parsed.address;
}
