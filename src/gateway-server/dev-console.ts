/**
 * The dev gateway's console: what a person at it sees and types. It turns the gateway's hooks
 * into lines (a daemon connecting or refused, one line per stored event, `command.result`s
 * named after the command they answer) and operator lines into commands sent down with a
 * fresh `cmd_id` (docs/protocol.md, "Commands downstream"). Output goes through a Printer;
 * nothing here touches the process (see dev-gateway.ts for stdin, signals and start-up).
 */
import { randomBytes } from 'node:crypto';
import { errorMessage } from '../errors/error-message.js';
import { clip, eventLine, frameLine, printable, type SentCommand } from './event-lines.js';
import type { ConnectionChange, DaemonHello, FrameRecord, GatewayPeer, UpEvent } from './gateway-peer.js';
import { OPERATOR_HELP, type OperatorCommand, parseOperatorLine } from './operator-commands.js';
import { MAX_OPERATOR_LINE_BYTES } from './operator-input.js';
import { RunBoard, runLines } from './run-board.js';

export interface Printer {
  /** What the gateway shows (events, connections, answers): stdout. */
  line(text: string): void;
  /** An operator's mistake or a problem: stderr. */
  problem(text: string): void;
}

/** Commands remembered to name their results; the oldest are forgotten past this. */
const MAX_REMEMBERED_COMMANDS = 1000;

/** What an operator line asked the console to do beyond printing. */
export type ConsoleOutcome = 'continue' | 'quit';

export class DevConsole {
  readonly board = new RunBoard();
  readonly #printer: Printer;
  readonly #frames: boolean;
  readonly #sent = new Map<string, SentCommand>();
  /** `dg-<random>-<n>`: unique across restarts of the gateway (the daemon dedupes by cmd_id for good). */
  readonly #session = randomBytes(4).toString('hex');
  #commandCount = 0;
  #peer: GatewayPeer | null = null;
  /** The hello of each welcomed connection still open (the daemon it serves). */
  readonly #welcomed = new Map<string, DaemonHello>();
  /** The project of the daemon whose stream is stored, once one was welcomed. */
  #storedProject: string | null = null;

  constructor(printer: Printer, options: { frames: boolean }) {
    this.#printer = printer;
    this.#frames = options.frames;
  }

  /** The gateway the commands go to (the hooks below are its options, so it comes after them). */
  attach(peer: GatewayPeer): void {
    this.#peer = peer;
  }

  get commandsSent(): number {
    return this.#commandCount;
  }

  // ---- the gateway's hooks -------------------------------------------------------------------

  onEvent(event: UpEvent): void {
    // Runs inside the gateway's store step: whatever an event holds, it must not throw there.
    try {
      this.board.apply(event);
      this.#printer.line(eventLine(event, (cmdId) => this.#sent.get(cmdId)));
    } catch (error) {
      this.#printer.problem(
        `error: event seq ${event.seq} could not be shown: ${clip(errorMessage(error), 200)}`,
      );
    }
  }

  onConnection(change: ConnectionChange): void {
    const now = clockNow();
    switch (change.kind) {
      case 'welcomed': {
        const { hello } = change;
        this.#welcomed.set(change.connId, hello);
        this.#storedProject ??= hello.project.name;
        this.#printer.line(
          shown(
            `${now} daemon ${hello.daemon_id} connected: project "${hello.project.name}", epoch ${hello.epoch}, ` +
              `version ${hello.daemon_version}, connection ${change.connId} (commands stored there: ${hello.down_applied})`,
          ),
        );
        return;
      }
      case 'failed': {
        const stored = this.#peer?.storedDaemonId() ?? null;
        const hello = change.hello;
        if (hello !== null && stored !== null && hello.daemon_id !== stored) {
          this.#printer.problem(
            shown(
              `${now} refused daemon ${hello.daemon_id} (project "${hello.project.name}"): this dev gateway stores ` +
                `the stream of one daemon, ${stored} (project "${this.#storedProject ?? '?'}"). Give the other ` +
                'daemon a dev gateway of its own (another --port), or restart this one to serve it instead.',
            ),
          );
          return;
        }
        this.#printer.problem(
          shown(`${now} connection ${change.connId} closed by the gateway: ${change.code} ${change.message}`),
        );
        return;
      }
      case 'closed': {
        const hello = this.#welcomed.get(change.record.connId);
        if (hello === undefined) return;
        this.#welcomed.delete(change.record.connId);
        this.#printer.line(
          shown(
            `${now} daemon ${hello.daemon_id} disconnected (connection ${change.record.connId}, ` +
              `close code ${change.record.closedWith ?? '?'})`,
          ),
        );
        return;
      }
    }
  }

  onFrame(record: FrameRecord): void {
    if (this.#frames) this.#printer.line(frameLine(record));
  }

  /** The gateway's notes: upgrades it refused are worth saying (a wrong token, mostly). */
  onNote(note: string): void {
    if (note.startsWith('upgrade refused')) {
      const hint = note.includes('bearer token')
        ? ": the daemon's --gateway-token-file must hold this gateway's token"
        : '';
      this.#printer.problem(shown(`${clockNow()} ${note}${hint}`));
    } else if (this.#frames || note.includes('adopted')) {
      this.#printer.line(shown(`${clockNow()} ${note}`));
    }
  }

  // ---- the operator --------------------------------------------------------------------------

  /** Handles one operator line; 'quit' when it asked to stop. */
  handleLine(line: string): ConsoleOutcome {
    const parsed = parseOperatorLine(line, this.board);
    switch (parsed.kind) {
      case 'nothing':
        return 'continue';
      case 'help':
        for (const help of OPERATOR_HELP) this.#printer.line(help);
        return 'continue';
      case 'runs':
        for (const row of runLines(this.board.list())) this.#printer.line(row);
        return 'continue';
      case 'quit':
        return 'quit';
      case 'send':
        this.#send(parsed.command);
        return 'continue';
      case 'error':
        this.#printer.problem(`error: ${parsed.message}`);
        return 'continue';
    }
  }

  /** An input line over the bound: said once, the line dropped. */
  lineTooLong(): void {
    this.#printer.problem(`error: line longer than ${MAX_OPERATOR_LINE_BYTES} bytes: ignored`);
  }

  #send(command: OperatorCommand): void {
    const peer = this.#peer;
    if (peer === null) {
      this.#printer.problem('error: the gateway is not listening yet');
      return;
    }
    const cmdId = `dg-${this.#session}-${this.#commandCount + 1}`;
    let dseq: number;
    try {
      dseq = peer.sendCommand({
        cmd_id: cmdId,
        kind: command.kind,
        ...(command.run_id === undefined ? {} : { run_id: command.run_id }),
        args: command.args,
      });
    } catch (error) {
      this.#printer.problem(`error: the command could not be queued: ${clip(errorMessage(error), 200)}`);
      return;
    }
    this.#commandCount += 1;
    this.#remember(cmdId, { kind: command.kind, runId: command.run_id ?? null, what: command.what });
    const connected = peer.currentConnection() !== null;
    this.#printer.line(
      shown(
        `${clockNow()} sent ${cmdId} ${command.kind} (${command.what})${command.run_id === undefined ? '' : ` to ${command.run_id}`}, ` +
          `dseq ${dseq}${connected ? '' : ': no daemon connected, it goes down when one connects'}`,
      ),
    );
  }

  #remember(cmdId: string, command: SentCommand): void {
    this.#sent.set(cmdId, command);
    if (this.#sent.size > MAX_REMEMBERED_COMMANDS) {
      const oldest = this.#sent.keys().next().value;
      if (oldest !== undefined) this.#sent.delete(oldest);
    }
  }
}

/** Local `HH:MM:SS`, the time column of the gateway's own lines. */
function clockNow(): string {
  const now = new Date();
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${pad(now.getHours())}:${pad(now.getMinutes())}:${pad(now.getSeconds())}`;
}

/** A line built of daemon-given text: control characters escaped, clipped. */
function shown(text: string): string {
  return printable(clip(text, 400));
}
