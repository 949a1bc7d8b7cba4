/** Log levels, shared by the CLI flags and the daemon logger (kept apart so the CLI needs no pino). */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
