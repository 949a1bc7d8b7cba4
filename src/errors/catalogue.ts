/**
 * The one catalogue of errors charter-daemon can report, to a person or over the control socket.
 * Codes are stable (scripts match on them); every entry says what to do next. Exit codes follow
 * the LSB convention where one exists (3 = not running).
 */
export interface ErrorSpec {
  /** What went wrong, in a few words; the thrown error adds the specifics. */
  readonly title: string;
  /** The next step for the user. */
  readonly hint: string;
  /** Process exit code when the CLI ends on this error. */
  readonly exitCode: number;
}

export const errorCatalogue = {
  // Where the CLI is pointed.
  NOT_A_PROJECT: {
    title: 'not a Charter project',
    hint: 'Run the command in a project root (a folder with charter.yml) or pass --project-path PATH.',
    exitCode: 2,
  },
  INVALID_CONFIG: {
    title: 'invalid configuration',
    hint: 'Fix the named field in charter.yml, the environment or the flags, then retry.',
    exitCode: 2,
  },
  INVALID_FLAG: {
    title: 'invalid flag value',
    hint: 'See `charter-daemon COMMAND --help` for the accepted values.',
    exitCode: 2,
  },
  // Reaching the daemon.
  DAEMON_NOT_RUNNING: {
    title: 'the daemon is not running',
    hint: 'Start it with `charter-daemon start --project-path PATH`.',
    exitCode: 3,
  },
  DAEMON_NOT_ANSWERING: {
    title: 'the daemon accepted the connection but did not answer in time',
    hint: 'Look at the daemon log (`.charter/daemon/daemon.log`); if it is stuck, `charter-daemon stop --force`.',
    exitCode: 1,
  },
  SOCKET_PERMISSION_DENIED: {
    title: 'permission denied on the daemon socket',
    hint: 'The daemon was probably started by another user: run the command as that user, or stop that daemon and start your own.',
    exitCode: 1,
  },
  PROTOCOL_MISMATCH: {
    title: 'the CLI and the daemon speak different control protocol versions',
    hint: 'Restart the daemon with this CLI: `charter-daemon restart` (its stop falls back to SIGTERM).',
    exitCode: 1,
  },
  BAD_RESPONSE: {
    title: 'the daemon sent a response this client cannot read',
    hint: 'Make sure the CLI and the daemon come from the same charter-daemon release, then restart the daemon.',
    exitCode: 1,
  },
  ABORTED: {
    title: 'the call was aborted by the caller',
    hint: 'Nothing to fix: the caller stopped waiting. A change the daemon had already received (a decision, a cancel) still happens: check with `charter-daemon runs show RUN_ID`.',
    exitCode: 130,
  },
  // Lifecycle.
  START_FAILED: {
    title: 'the daemon failed to start',
    hint: 'Read the reason above and the daemon log; fix it and run `charter-daemon start` again.',
    exitCode: 1,
  },

  STOP_TIMEOUT: {
    title: 'the daemon did not stop in time',
    hint: 'Give it longer with --timeout, or kill it with `charter-daemon stop --force`.',
    exitCode: 1,
  },
  STATE_DIR_UNSAFE: {
    title: 'the daemon state directory is not safe to use',
    hint: 'The directory must be a real directory owned by you; remove or fix it and retry.',
    exitCode: 1,
  },
  STORE_FAILED: {
    title: 'the daemon store could not be opened or written',
    hint: 'Check that .charter/daemon/state.db is readable and writable; the log has the details. The daemon keeps serving and retries on the next write.',
    exitCode: 1,
  },
  DISK_FULL: {
    title: 'the disk holding the daemon store is full',
    hint: 'Free space on that filesystem (old files, logs, the .charter/daemon/runs folder); the daemon resumes by itself on its next write, nothing already stored is lost.',
    exitCode: 1,
  },
  STORE_TOO_NEW: {
    title: 'the daemon store was written by a newer charter-daemon',
    hint: 'Upgrade charter-daemon to the version that wrote it (or newer), or restore a backup made by this version (docs/operations.md, Backup and restore).',
    exitCode: 1,
  },
  STORE_CORRUPT: {
    title: 'the daemon store is damaged',
    hint: 'No daemon runs on a damaged store. Run `charter-daemon store recover`: it keeps the damaged file aside, salvages what is readable into a fresh store and reports what was lost; then `charter-daemon start`.',
    exitCode: 1,
  },
  STORE_MISSING: {
    title: 'the daemon store is missing or empty, but this project had a daemon identity',
    hint: 'Restore state.db from a backup (docs/operations.md, Backup and restore), or run `charter-daemon store recover` if a damaged copy remains. To start on purpose with an empty history (same daemon id, seq going on from the last known), run `charter-daemon start --fresh-store`.',
    exitCode: 1,
  },
  STORE_IN_USE: {
    title: 'a running daemon holds the store',
    hint: 'Stop it first: `charter-daemon stop`, then retry.',
    exitCode: 1,
  },
  METRICS_LISTEN_FAILED: {
    title: 'the metrics endpoint could not listen on its address',
    hint: 'Pick a free port (port 0 picks one) with --metrics HOST:PORT or daemon.metrics.listen, or leave metrics off.',
    exitCode: 1,
  },
  NOT_A_TERMINAL: {
    title: 'this command needs an interactive terminal',
    hint: 'In scripts and pipes use `charter-daemon status` or `charter-daemon runs list` (both take --json).',
    exitCode: 2,
  },
  // The gateway conformance kit (`gateway-check`).
  GATEWAY_UNREACHABLE: {
    title: 'nothing answers at the gateway address',
    hint: 'Check the URL (scheme, host, port) and that the gateway is listening, then run `charter-daemon gateway-check URL` again.',
    exitCode: 1,
  },
  CHECK_ONLY: {
    title: 'received by charter-daemon gateway-check, which applies no command',
    hint: 'The command reached a conformance check, not a daemon: queue it again for the real daemon.',
    exitCode: 1,
  },
  // Workflows and runs.
  UNKNOWN_WORKFLOW: {
    title: 'unknown workflow',
    hint: 'Workflows live in workflows/<id>/manifest.yml and plan.yml; the message lists the known ids.',
    exitCode: 2,
  },
  INVALID_WORKFLOW: {
    title: 'invalid workflow definition',
    hint: 'Fix the named file and field (see docs/workflows.md), then submit again.',
    exitCode: 2,
  },
  INVALID_INPUTS: {
    title: 'the run inputs do not match the workflow',
    hint: 'Fix every listed input (see the workflow manifest) and submit again.',
    exitCode: 2,
  },
  INVALID_ANSWERS: {
    title: 'the answers do not satisfy the input step',
    hint: 'Fix every listed field and submit again; the run keeps waiting.',
    exitCode: 2,
  },
  UNKNOWN_RUN: {
    title: 'unknown run',
    hint: 'List runs with `charter-daemon runs list`.',
    exitCode: 2,
  },
  RUN_NOT_WAITING: {
    title: 'the run is not waiting for that',
    hint: 'See what it waits for with `charter-daemon runs show RUN_ID`.',
    exitCode: 1,
  },
  RUN_FINISHED: {
    title: 'the run has already finished',
    hint: 'Start a new run with `charter-daemon run WORKFLOW_ID`.',
    exitCode: 1,
  },
  SECRETS_UNAVAILABLE: {
    title: 'secret values cannot be encrypted or decrypted',
    hint: 'The key file .charter/daemon/secrets.key is missing, unreadable or not the one the secrets were sealed with: restore it from the backup of the state directory (see docs/operations.md), or start a new run with the secrets given again.',
    exitCode: 1,
  },
  QUEUE_FULL: {
    title: 'the run queue is full',
    hint: 'Wait for queued runs to start, or raise daemon.max_queued_runs in charter.yml.',
    exitCode: 1,
  },
  // Control-socket request errors (sent by the daemon).
  BAD_JSON: {
    title: 'the request line is not valid JSON or is nested too deeply',
    hint: 'Send one JSON object per line (newline-delimited JSON), nested at most 64 levels deep.',
    exitCode: 1,
  },
  BAD_REQUEST: {
    title: 'the request does not have the shape {id, method, params}',
    hint: 'See docs/control-protocol.md.',
    exitCode: 1,
  },
  UNKNOWN_METHOD: {
    title: 'unknown method',
    hint: 'See docs/control-protocol.md for the methods this daemon serves.',
    exitCode: 1,
  },
  INVALID_PARAMS: {
    title: 'invalid params',
    hint: 'See docs/control-protocol.md for the params of this method.',
    exitCode: 1,
  },
  HELLO_REQUIRED: {
    title: 'the first request on a connection must be hello',
    hint: 'Send {"id":0,"method":"hello","params":{"protocol":1,"client_version":"…"}} first.',
    exitCode: 1,
  },
  FRAME_TOO_LARGE: {
    title: 'the request line is larger than 1 MiB',
    hint: 'Send smaller requests; the connection was closed.',
    exitCode: 1,
  },
  IDLE_TIMEOUT: {
    title: 'the connection sent nothing for too long',
    hint: 'Send a request right after connecting.',
    exitCode: 1,
  },
  TOO_MANY_CLIENTS: {
    title: 'the daemon has too many open control connections',
    hint: 'Retry in a moment; look for a process that opens connections without closing them.',
    exitCode: 1,
  },
  CLIENT_TOO_SLOW: {
    title: "the client did not read the daemon's answers and was disconnected",
    hint: "Read answers as they come (a stream's too): the daemon keeps a bounded amount unread per connection and for all connections together, and drops the slowest readers first.",
    exitCode: 1,
  },
  DRAINING: {
    title: 'the daemon is stopping and takes no new work',
    hint: 'Wait for it to stop, then start it again.',
    exitCode: 1,
  },
  INTERNAL: {
    title: 'internal daemon error',
    hint: 'This is a bug: please report it with the daemon log attached.',
    exitCode: 1,
  },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof errorCatalogue;

/**
 * Some codes of the catalogue, for a field that can carry only those: a name that is not in the
 * catalogue does not compile (`Extract` would quietly make it `never`).
 */
export type CodeOf<C extends ErrorCode> = C;

export function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(errorCatalogue, code);
}
