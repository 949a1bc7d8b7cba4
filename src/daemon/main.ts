/**
 * Entry point of a detached daemon process, started by `charter-daemon start`:
 *   node dist/src/daemon/main.js '<launch options as JSON>'
 * Anything printed here lands in `.charter/daemon/daemon.out` (the CLI shows it on a failed start).
 */

import { z } from 'zod';
import { isCharterError } from '../errors/charter-error.js';
import { errorStack } from '../errors/error-message.js';
import { LaunchOptionsSchema } from './launch-options.js';
import { runDaemon } from './run-daemon.js';

async function main(): Promise<number> {
  let raw: unknown;
  try {
    raw = JSON.parse(process.argv[2] ?? '');
  } catch {
    process.stderr.write('charter-daemon: expected launch options as one JSON argument\n');
    return 2;
  }
  const parsed = LaunchOptionsSchema.safeParse(raw);
  if (!parsed.success) {
    process.stderr.write(`charter-daemon: invalid launch options:\n${z.prettifyError(parsed.error)}\n`);
    return 2;
  }
  return runDaemon({ ...parsed.data, foreground: false });
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    // Errors from the catalogue (bad config, unsafe state directory, …) are for a person: no stack.
    if (isCharterError(error)) {
      process.stderr.write(`${error.message} (${error.code})\n`);
      process.exit(error.exitCode || 1);
    }
    process.stderr.write(`charter-daemon: fatal: ${errorStack(error)}\n`);
    process.exit(1);
  },
);
