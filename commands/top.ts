import { DaemonCommand } from '../src/cli/base-command.js';
import { connectToDaemon, targetProject } from '../src/cli/daemon-client.js';
import { projectSuffix } from '../src/cli/format.js';
import { CharterError } from '../src/errors/charter-error.js';

export default class Top extends DaemonCommand {
  static override summary = 'A full-screen live view of the daemon: act on waiting runs with a key.';
  static override description =
    `Header: pid, uptime, gateway link and since when, backlog and the age of its oldest event, events per second over the last minute, run counts. Then the live runs (running, cancelling, waiting, queued) with their workflow, state, step, age and what they wait for, then the most recent finished runs. The daemon pushes every change; the view updates within a fraction of a second.
Keys: ↑/↓ or j/k select (PgUp/PgDn, Home/End); a approves and d denies the gate the selected run waits at (deny asks for a comment); c cancels the selected run (y confirms); Enter or l shows its log, live; ? help; q or Ctrl-C quits and restores the terminal. An input step shows the submit-input command that answers it.
Needs a terminal (stdin and stdout): in scripts and pipes use \`status\` or \`runs list\` instead (NOT_A_TERMINAL, exit 2).`;
  static override examples = ['<%= config.bin %> top', '<%= config.bin %> top --project-path ~/work/site'];

  async run(): Promise<void> {
    const { flags } = await this.parse(Top);
    if (!process.stdin.isTTY || !process.stdout.isTTY) {
      throw new CharterError(
        'NOT_A_TERMINAL',
        'charter-daemon top draws a full-screen view and reads keys: stdin and stdout must be a terminal',
      );
    }
    const target = targetProject(flags['project-path']);
    // terminal-kit is loaded here only: other commands never pay for it.
    const { runTop } = await import('../src/cli/top/app.js');
    await runTop({
      connect: () => connectToDaemon(target, this.warnUser),
      cli: this.config.bin,
      projectSuffix: projectSuffix(target),
    });
  }
}
