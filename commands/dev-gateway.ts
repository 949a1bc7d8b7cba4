import * as Flags from '@oclif/core/flags';
import { DaemonCommand } from '../src/cli/base-command.js';

export default class DevGateway extends DaemonCommand {
  static override summary =
    "Run a charter.v1 gateway on 127.0.0.1 for development: see a daemon's events, send it commands.";
  static override description =
    `Listens on 127.0.0.1 only (--port, 8765 by default; 0 picks a free port, printed). The token: from --token-file FILE (read once, never printed), or else the one kept for the port in $XDG_RUNTIME_DIR/charter-dev-gateway/token-PORT (or <tmp>/charter-dev-gateway-<uid>/token-PORT) while that file is private to you, or else a new random one written there (0600). The start-up lines print the \`start --gateway … --gateway-token-file …\` command that points a daemon at it.
Prints the daemons that connect and disconnect (daemon id, project, epoch, connection), and one line per event stored: time, run, type and a short summary ("run.waiting at gate confirm", "command.result dg-…-1 (approve confirm) applied"). --frames adds one line per frame in and out.
Reads operator commands on stdin, one per line (at most 72 KiB): runs; approve RUN [--step S] [--comment TEXT]; deny RUN --comment TEXT [--step S]; submit RUN [--step S] JSON; cancel RUN [--reason TEXT]; start WORKFLOW [JSON]; help; quit. RUN is a run id or a unique prefix of one it has seen; each is sent as a command frame with a fresh cmd_id, and its command.result is printed when it comes back. A bad line gets one error line on stderr and nothing is sent.
Keeps what it receives in memory only, and stores the stream of one daemon (the first one that connects): another daemon is refused, with what to do. A port in use is INVALID_FLAG (exit 2). Stops on quit, SIGINT or SIGTERM, and at the end of stdin on a terminal (Ctrl-D); when stdin is a pipe or /dev/null, its end leaves the gateway serving.`;
  static override examples = [
    '<%= config.bin %> dev-gateway',
    '<%= config.bin %> dev-gateway --port 0 --token-file ~/.config/charter/dev.token',
    '<%= config.bin %> dev-gateway --frames < /dev/null > gateway.log &',
  ];
  // No --project-path: the dev gateway belongs to no project.
  static override baseFlags = {} as typeof DaemonCommand.baseFlags;
  static override flags = {
    port: Flags.integer({
      description: 'Port on 127.0.0.1 (0: a free one, printed).',
      default: 8765,
      min: 0,
      max: 65_535,
      helpValue: 'PORT',
    }),
    'token-file': Flags.string({
      description:
        'File holding the token daemons must present (default: one kept or made for the port, 0600).',
      helpValue: 'FILE',
    }),
    frames: Flags.boolean({ description: 'Also print one line per frame in and out (pings included).' }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(DevGateway);
    // The gateway (ws, zod, the peer) is loaded only when it runs, not for --help.
    const { runDevGateway } = await import('../src/gateway-server/dev-gateway.js');
    await runDevGateway({
      port: flags.port,
      tokenFile: flags['token-file'],
      frames: flags.frames,
      cli: this.config.bin,
    });
  }
}
