/**
 * The daemon's pino logger: JSON lines to the bounded log file, and in the foreground also to
 * stdout — pretty on a TTY, JSON otherwise (systemd, containers). Secrets are redacted by path
 * and, with `maskText`, by value.
 */
import { type DestinationStream, type Level, type Logger, multistream, pino } from 'pino';
import type { LogFileStatus } from '../protocol/control.js';
import type { LogLevel } from './levels.js';
import { RotatingLogFile } from './log-file.js';

/** Keys whose values never reach a log line, at the top level or one object down. */
const SECRET_KEYS = [
  'token',
  'gatewayToken',
  'gateway_token',
  'authorization',
  'Authorization',
  'password',
  'secret',
];
export const REDACT_PATHS = [
  ...SECRET_KEYS,
  ...SECRET_KEYS.map((key) => `*.${key}`),
  'headers.authorization',
  '*.headers.authorization',
  'req.headers.authorization',
];

export interface DaemonLoggerOptions {
  readonly logPath: string;
  readonly level: LogLevel;
  /** Also log to stdout (foreground mode). */
  readonly foreground: boolean;
  readonly maxBytes?: number;
  /**
   * Masks secret values in each serialized line (src/secrets/live-secrets.ts): redaction by
   * value, for the secrets no key name gives away.
   */
  readonly maskText?: (line: string) => string;
}

export interface DaemonLogger {
  readonly logger: Logger;
  /** Whether the log file takes lines, and how many it dropped (for `status`). */
  status(): LogFileStatus;
  close(): void;
}

export async function createDaemonLogger(options: DaemonLoggerOptions): Promise<DaemonLogger> {
  let logger: Logger | undefined;
  const file = new RotatingLogFile({
    path: options.logPath,
    ...(options.maxBytes === undefined ? {} : { maxBytes: options.maxBytes }),
    onRecovered: ({ droppedLines, lastError }) =>
      logger?.warn(
        { dropped_lines: droppedLines, last_error: lastError },
        `the log file takes lines again: ${droppedLines} line(s) were dropped while it failed`,
      ),
  });
  const streams: { stream: DestinationStream; level: Level }[] = [{ stream: file, level: options.level }];
  if (options.foreground) streams.push({ stream: await consoleStream(), level: options.level });
  logger = pino(
    {
      level: options.level,
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      ...(options.maskText === undefined ? {} : { hooks: { streamWrite: options.maskText } }),
    },
    multistream(streams),
  );
  const status = (): LogFileStatus => {
    const health = file.health();
    return {
      path: health.path,
      dropped_lines: health.droppedLines,
      last_error: health.lastError,
      last_error_at: health.lastErrorAt,
      failing: health.failing,
    };
  };
  return { logger, status, close: () => file.close() };
}

async function consoleStream(): Promise<DestinationStream> {
  if (!process.stdout.isTTY) return pino.destination({ fd: 1, sync: true });
  // Loaded only for a person watching a terminal: pino-pretty is not needed anywhere else.
  const { default: pretty } = await import('pino-pretty');
  return pretty({ colorize: true, sync: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' });
}
