/**
 * What every charter-daemon command shares: `--project-path`, and errors from the catalogue
 * rendered the same way everywhere (human text on stderr, or `{"error": …}` with --json) with
 * the catalogue's exit code.
 */
import { Command } from '@oclif/core/command';
import * as Flags from '@oclif/core/flags';
import { isCharterError } from '../errors/charter-error.js';

export abstract class DaemonCommand extends Command {
  static override baseFlags = {
    'project-path': Flags.string({
      description: 'Root of the Charter project (the folder with charter.yml).',
      default: '.',
      helpValue: 'PATH',
      env: 'CHARTER_PROJECT_PATH',
    }),
  };

  /** Warnings go to stderr only, never into --json output (oclif's own helpers are muted under --json). */
  protected warnUser = (message: string): void => {
    process.stderr.write(`Warning: ${message}\n`);
  };

  protected override async catch(error: Error & { exitCode?: number }): Promise<unknown> {
    if (!isCharterError(error)) return super.catch(error);
    process.exitCode = error.exitCode;
    if (this.jsonEnabled()) {
      this.logJson({ error: error.toWire() });
    } else {
      this.logToStderr(`Error: ${error.message}\n  code: ${error.code}\n  next: ${error.hint}`);
    }
    return undefined;
  }
}

/** Formats a duration in seconds as "2h 5m", "3m 12s" or "4.2s". */
export function formatDuration(seconds: number): string {
  if (seconds < 60) return `${seconds.toFixed(1)}s`;
  const s = Math.floor(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h > 0 ? `${h}h ${m}m` : `${m}m ${s % 60}s`;
}
