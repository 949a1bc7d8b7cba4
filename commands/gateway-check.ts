import { readFileSync, statSync } from 'node:fs';
import * as Args from '@oclif/core/args';
import * as Flags from '@oclif/core/flags';
import { DaemonCommand } from '../src/cli/base-command.js';
import { CharterError } from '../src/errors/charter-error.js';
import { errorMessage } from '../src/errors/error-message.js';
import { daemonEndpoint } from '../src/gateway/endpoint.js';
import { type CheckReport, reportLines } from '../src/gateway-check/report.js';
import { runGatewayCheck } from '../src/gateway-check/runner.js';
import { GatewayUrlSchema } from '../src/project/gateway-url.js';

const MAX_DAEMON_ID_CHARS = 200;
const MAX_TOKEN_FILE_BYTES = 64 * 1024;
/** What can go in an HTTP header after "Bearer ": visible ASCII, no spaces. */
const TOKEN_CHARS = /^[\x21-\x7e]+$/;

/** `--NAME SECONDS`: a number of seconds within [min, max] (fractions allowed). */
function seconds(name: string, min: number, max: number) {
  return Flags.custom<number>({
    helpValue: 'SECONDS',
    parse: async (input) => {
      const value = Number(input);
      if (input.trim() === '' || !Number.isFinite(value) || value < min || value > max) {
        throw new CharterError(
          'INVALID_FLAG',
          `--${name}: expected seconds from ${min} to ${max}, got ${JSON.stringify(input)}`,
        );
      }
      return value;
    },
  });
}

export default class GatewayCheck extends DaemonCommand {
  static override summary =
    'Check a charter.v1 gateway against the protocol, clause by clause (a conformance kit).';
  static override description =
    `Plays the daemon side of charter.v1 against the gateway at URL (as the daemon takes it: the WebSocket endpoint is URL/v1/daemon) and checks one clause of docs/protocol.md per scenario: the upgrade (token, subprotocol), the handshake, framing and close codes, max_frame, cumulative acks, credit, resend and dedupe, commands and their resend, command.result, heartbeats. Prints a table (clause, section of docs/protocol.md, result, what it saw); --json prints {"clauses": [{"id", "section", "ok", "status", "saw"}], "ok", ...}.
It speaks as one daemon for the whole run: a fresh random daemon id unless --daemon-id. The command clauses need the gateway to send commands: queue at least one (any kind) for that daemon id beforehand, or while the kit waits (--command-wait; it says so on stderr). It applies none of them and answers each with a rejected command.result (CHECK_ONLY).
Connects to URL only, and closes every connection it opens. Exits 0 when every clause holds, 1 when one fails or could not be observed (or nothing answers at URL: GATEWAY_UNREACHABLE), 2 for a bad flag.`;
  static override examples = [
    '<%= config.bin %> gateway-check http://127.0.0.1:8765 --token-file ~/.charter/gateway.token',
    '<%= config.bin %> gateway-check https://gateway.example.com/charter --token-file token --daemon-id 7f0c… --json',
  ];
  static override enableJsonFlag = true;
  // A gateway is checked from anywhere: no project, so no --project-path. (The cast only keeps
  // DaemonCommand's static type; its parse and error rendering are what this command shares.)
  static override baseFlags = {} as typeof DaemonCommand.baseFlags;
  static override args = {
    url: Args.string({
      description: 'The gateway address, as given to `start --gateway` (http, https, ws or wss).',
      required: true,
    }),
  };
  static override flags = {
    'token-file': Flags.string({
      description:
        'File holding the bearer token a daemon would send (trimmed). Default: CHARTER_GATEWAY_TOKEN.',
      helpValue: 'FILE',
    }),
    'daemon-id': Flags.string({
      description:
        'The daemon id to play (default: a fresh random UUID, printed on stderr when the kit waits for commands).',
      helpValue: 'ID',
    }),
    timeout: seconds(
      'timeout',
      0.1,
      60,
    )({
      description: 'How long any one wait for the gateway may last (an answer, an ack, a close).',
      default: 5,
    }),
    'command-wait': seconds(
      'command-wait',
      0,
      600,
    )({
      description:
        'How long to wait for the gateway to send a first command, when none came right after welcome.',
      default: 10,
    }),
  };

  async run(): Promise<CheckReport | undefined> {
    const { args, flags } = await this.parse(GatewayCheck);
    const url = GatewayUrlSchema.safeParse(args.url);
    if (!url.success) {
      throw new CharterError(
        'INVALID_FLAG',
        `URL ${JSON.stringify(args.url.slice(0, 200))}: ${url.error.issues[0]?.message ?? 'invalid'}`,
      );
    }
    const daemonId = flags['daemon-id'];
    if (daemonId !== undefined && (daemonId.trim() === '' || daemonId.length > MAX_DAEMON_ID_CHARS)) {
      throw new CharterError('INVALID_FLAG', `--daemon-id: expected 1 to ${MAX_DAEMON_ID_CHARS} characters`);
    }
    const report = await runGatewayCheck({
      url: url.data,
      endpoint: daemonEndpoint(url.data),
      token: readToken(flags['token-file']),
      ...(daemonId === undefined ? {} : { daemonId }),
      timeoutMs: Math.round(flags.timeout * 1000),
      commandWaitMs: Math.round(flags['command-wait'] * 1000),
      notice: (text) => process.stderr.write(`gateway-check: ${text}\n`),
    });
    if (!report.ok) process.exitCode = 1;
    if (this.jsonEnabled()) return report;
    for (const line of reportLines(report)) this.log(line);
    return undefined;
  }
}

/** The token as the daemon reads it (the file's content, trimmed), else CHARTER_GATEWAY_TOKEN. */
function readToken(file: string | undefined): string {
  if (file === undefined) {
    const fromEnv = process.env.CHARTER_GATEWAY_TOKEN?.trim();
    if (fromEnv) return checkToken(fromEnv, 'CHARTER_GATEWAY_TOKEN');
    throw new CharterError('INVALID_FLAG', 'no token: pass --token-file FILE (or set CHARTER_GATEWAY_TOKEN)');
  }
  let text: string;
  try {
    const size = statSync(file).size;
    if (size > MAX_TOKEN_FILE_BYTES) {
      throw new CharterError(
        'INVALID_FLAG',
        `--token-file ${file}: ${size} bytes, more than a token (at most ${MAX_TOKEN_FILE_BYTES})`,
      );
    }
    text = readFileSync(file, 'utf8');
  } catch (error) {
    if (error instanceof CharterError) throw error;
    throw new CharterError('INVALID_FLAG', `--token-file ${file}: cannot be read (${errorMessage(error)})`);
  }
  return checkToken(text.trim(), `--token-file ${file}`);
}

function checkToken(token: string, where: string): string {
  if (token === '') throw new CharterError('INVALID_FLAG', `${where}: the token is empty`);
  if (!TOKEN_CHARS.test(token)) {
    throw new CharterError(
      'INVALID_FLAG',
      `${where}: the token holds spaces or characters an HTTP header cannot carry`,
    );
  }
  return token;
}
