/**
 * `charter-daemon dev-gateway`: a charter.v1 gateway for development, on GatewayPeer (the strict
 * gateway the tests use), bound to 127.0.0.1. It starts the peer with the console's hooks,
 * says how to point a daemon at it, reads operator lines from stdin, and stops cleanly on
 * `quit`, SIGINT or SIGTERM. End of stdin stops it only on a terminal (Ctrl-D): a gateway
 * started in the background with `< /dev/null` keeps serving until a signal.
 */
import { CharterError } from '../errors/charter-error.js';
import { errorMessage } from '../errors/error-message.js';
import { DevConsole, type Printer } from './dev-console.js';
import {
  type DevToken,
  generatedTokenPath,
  newToken,
  readKeptToken,
  readTokenFile,
  writeTokenFile,
} from './dev-token.js';
import { GatewayPeer } from './gateway-peer.js';
import { OperatorInput } from './operator-input.js';

export interface DevGatewayOptions {
  /** 0: a free port (printed). */
  readonly port: number;
  readonly tokenFile: string | undefined;
  /** Also one line per frame in and out. */
  readonly frames: boolean;
  /** The CLI's name, for the commands it prints. */
  readonly cli: string;
}

const stdPrinter: Printer = {
  line: (text) => process.stdout.write(`${text}\n`),
  problem: (text) => process.stderr.write(`${text}\n`),
};

/** Runs the dev gateway until it is stopped; rejects with a CharterError when it cannot start. */
export async function runDevGateway(
  options: DevGatewayOptions,
  printer: Printer = stdPrinter,
): Promise<void> {
  // A free port (0) has no earlier start to keep a token from.
  const known =
    options.tokenFile !== undefined
      ? readTokenFile(options.tokenFile)
      : options.port === 0
        ? null
        : readKeptToken(generatedTokenPath(options.port));
  const token = known?.token ?? newToken();
  const devConsole = new DevConsole(printer, { frames: options.frames });
  const peer = await listen(options.port, token, devConsole);
  devConsole.attach(peer);
  const port = Number(new URL(peer.url).port);
  let where: DevToken;
  try {
    where = known ?? writeTokenFile(generatedTokenPath(port), token);
  } catch (error) {
    await peer.stop();
    throw error;
  }
  for (const line of banner(peer.url, where, options.cli)) printer.line(line);

  await new Promise<void>((resolve) => {
    let stopping = false;
    const input = new OperatorInput();
    const stop = (why: string): void => {
      if (stopping) return;
      stopping = true;
      process.stdin.off('data', onData);
      process.stdin.off('end', onEnd);
      // Released, not paused: an open pipe must not keep the process alive after a quit.
      process.stdin.destroy();
      printer.line(
        `stopping (${why}): ${peer.storedMax()} event(s) stored, ${devConsole.board.size} run(s) seen, ` +
          `${devConsole.commandsSent} command(s) sent; none of it is kept`,
      );
      peer.stop().then(
        () => {
          process.off('SIGINT', onSigint);
          process.off('SIGTERM', onSigterm);
          resolve();
        },
        (error: unknown) => {
          printer.problem(`error while stopping: ${errorMessage(error)}`);
          resolve();
        },
      );
    };
    const handle = (items: ReturnType<OperatorInput['push']>): void => {
      for (const item of items) {
        if (stopping) return;
        if (item.kind === 'tooLong') devConsole.lineTooLong();
        else if (devConsole.handleLine(item.text) === 'quit') stop('quit');
      }
    };
    const onData = (chunk: Buffer | string): void => {
      handle(input.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk));
    };
    const onEnd = (): void => {
      handle(input.end());
      if (stopping) return;
      if (process.stdin.isTTY) {
        stop('end of input');
      } else {
        printer.line(
          'stdin closed: no more operator commands; the gateway serves on until SIGINT or SIGTERM',
        );
      }
    };
    // A second signal while stopping exits at once.
    const onSignal = (signal: NodeJS.Signals): void => {
      if (stopping) process.exit(130);
      stop(signal);
    };
    const onSigint = (): void => onSignal('SIGINT');
    const onSigterm = (): void => onSignal('SIGTERM');
    process.on('SIGINT', onSigint);
    process.on('SIGTERM', onSigterm);
    process.stdin.on('data', onData);
    process.stdin.on('end', onEnd);
    process.stdin.resume();
  });
}

async function listen(port: number, token: string, devConsole: DevConsole): Promise<GatewayPeer> {
  try {
    return await GatewayPeer.start({
      port,
      token,
      // Nothing is kept across restarts: a daemon that stored earlier commands is served anyway.
      adoptDownApplied: true,
      onEvent: (event) => devConsole.onEvent(event),
      onConnection: (change) => devConsole.onConnection(change),
      onFrame: (record) => devConsole.onFrame(record),
      onNote: (note) => devConsole.onNote(note),
    });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === 'EADDRINUSE' ? 'the port is in use' : errorMessage(error);
    throw new CharterError('INVALID_FLAG', `--port ${port}: cannot listen on 127.0.0.1:${port}: ${why}`, {
      hint: 'Pick another --port (0 picks a free one), or stop what listens there.',
      cause: error,
    });
  }
}

/** What the gateway says at start: where it listens, where the token is, how to use it. */
function banner(url: string, token: DevToken, cli: string): string[] {
  return [
    `charter.v1 dev gateway listening on ${url} (127.0.0.1 only; daemon endpoint ${url}/v1/daemon)`,
    tokenLine(token),
    'start a daemon against it (from its project folder, or with --project-path):',
    `  ${cli} start --gateway ${url} --gateway-token-file ${shellWord(token.file)}`,
    'it keeps what it receives in memory only, and serves one daemon: the first one that connects',
    'type help for the commands; quit or Ctrl-C stops it',
  ];
}

function tokenLine(token: DevToken): string {
  switch (token.origin) {
    case 'given':
      return `token: from ${token.file}`;
    case 'kept':
      return `token: kept in ${token.file} since an earlier start on this port (remove the file for a new one)`;
    case 'new':
      return `token: new, written to ${token.file} (mode 0600)`;
  }
}

/** A path as one POSIX shell word. */
function shellWord(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}
