/**
 * What the CLI hands a daemon process it starts: one JSON argument, validated here, so a detached
 * daemon and a foreground one are configured through the same path.
 */
import { z } from 'zod';
import { LOG_LEVELS } from '../logging/levels.js';

export const LaunchOptionsSchema = z.strictObject({
  projectRoot: z.string().min(1),
  gatewayUrl: z.string().optional(),
  /** File holding the gateway token (re-read at every connect); else CHARTER_GATEWAY_TOKEN. */
  gatewayTokenFile: z.string().optional(),
  logLevel: z.enum(LOG_LEVELS).optional(),
  foreground: z.boolean().default(false),
  inspect: z.boolean().default(false),
  inspectPort: z.number().int().min(0).max(65535).optional(),
  maxRuns: z.number().int().min(1).max(1024).optional(),
  /** `--metrics ADDR`: serve /metrics and /healthz there (checked with the settings). */
  metricsListen: z.string().min(1).max(300).optional(),
  metricsAllowRemote: z.boolean().default(false),
  /** Start with an empty store on purpose although identity.json names a previous one. */
  freshStore: z.boolean().optional(),
});
export type LaunchOptions = z.input<typeof LaunchOptionsSchema>;

/** Exit code of a daemon process that found another daemon holding the project lock. */
export const EXIT_ALREADY_RUNNING = 75;
