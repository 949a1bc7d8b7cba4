/**
 * What every charter-daemon command shares: `--project-path`, and errors from the catalogue
 * rendered the same way everywhere (human text on stderr, or `{"error": …}` with --json) with
 * the catalogue's exit code.
 */
import { Command } from '@oclif/core/command';
import * as Flags from '@oclif/core/flags';
import type { Input, ParserOutput } from '@oclif/core/interfaces';
import { CharterError, isCharterError } from '../errors/charter-error.js';
import { errorMessage } from '../errors/error-message.js';

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

  /**
   * oclif's parser throws its own errors for unknown flags, missing or extra arguments and bad
   * flag values: as they are, they exit 1 under --json with the whole parser state as "JSON", and
   * dump the usage otherwise. They are INVALID_FLAG like every other flag error: one line, exit 2.
   */
  protected override async parse<
    F extends Record<string, unknown>,
    B extends Record<string, unknown>,
    A extends Record<string, unknown>,
  >(options?: Input<F, B, A>, argv?: string[]): Promise<ParserOutput<F, B, A>> {
    try {
      return await super.parse(options, argv);
    } catch (error) {
      if (isCharterError(error)) throw error;
      // The arguments were read, and refused: oclif must not also warn that they were never parsed.
      this.parsed = true;
      throw new CharterError('INVALID_FLAG', parseErrorLine(error), {
        hint: `See \`${this.config.bin} ${this.id?.replaceAll(':', ' ') ?? 'COMMAND'} --help\` for the flags and arguments it accepts.`,
        cause: error,
      });
    }
  }

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

/**
 * One line out of an oclif parser error: its first paragraph without the "See more help" tail
 * (the hint says where help is), colours and layout; a missing argument by its usage name.
 */
export function parseErrorLine(error: unknown): string {
  const args = (error as { args?: unknown }).args;
  if (Array.isArray(args) && args.length > 0 && args.every((arg) => typeof arg?.name === 'string')) {
    const names = (args as { name: string }[]).map((arg) => arg.name.toUpperCase());
    return `missing argument${names.length === 1 ? '' : 's'} ${names.join(', ')}`;
  }
  const message = errorMessage(error);
  const firstParagraph = message
    // biome-ignore lint/suspicious/noControlCharactersInRegex: ANSI colour codes are what is removed
    .replace(/\u001b\[[0-9;]*m/g, '')
    .replace(/\n?See more help with --help\s*$/, '')
    .split(/\n\s*\n/)[0];
  const line = (firstParagraph ?? '')
    .replace(/^Parsing (--\S+)\s*\n\s*/, '$1: ')
    .replace(/\s+/g, ' ')
    .trim();
  return line === '' ? 'invalid flags or arguments' : line;
}

/** Formats a duration in seconds as "2h 5m", "3m 12s" or "4.2s". */
export function formatDuration(seconds: number): string {
  if (seconds < 60) return `${seconds.toFixed(1)}s`;
  const s = Math.floor(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h > 0 ? `${h}h ${m}m` : `${m}m ${s % 60}s`;
}
