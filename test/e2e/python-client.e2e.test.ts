/**
 * A client written in another language from the docs alone: examples/python-client (Python
 * standard library only) against a real daemon (the built CLI, a throw-away copy of
 * examples/hello). `example.py` drives a greet run through its gate and input step to
 * `succeeded`, as the daemon's own `runs show` confirms; a second script calls every other
 * method and a few that must fail. Every line either sent or received is checked against
 * docs/control.v1.schema.json with ajv: requests against `request`, responses against
 * `response`, and each result against the result schema of the method it answered. Last, the
 * client meets a hostile peer on a real socket and ends every exchange with the right error.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MAX_CONTROL_LINE_BYTES } from '../../src/protocol/control.js';
import type { RunDetail } from '../../src/protocol/runs.js';
import {
  assertBuilt,
  type CliResult,
  destroyProjects,
  makeProject,
  parseJson,
  repoRoot,
  runCli,
  runProgram,
  startSampleProject,
} from '../support/cli.js';
import { describeErrors, loadControlSchema } from '../support/control-schema-validator.js';

const CLIENT_DIR = join(repoRoot, 'examples', 'python-client');
const PYTHON = 'python3';
const hasPython = spawnSync(PYTHON, ['--version'], { stdio: 'ignore' }).status === 0;
const SKIPPED = hasPython ? '' : ` (skipped: ${PYTHON} is not on PATH)`;

const projects: string[] = [];
const cleanups: (() => void)[] = [];

beforeAll(() => assertBuilt());
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
  destroyProjects(projects);
});

/** A fresh copy of examples/hello with a running daemon. */
const startedProject = (): Promise<string> => startSampleProject(projects);

type PythonResult = CliResult;

function runPython(args: readonly string[], timeoutMs = 20_000): Promise<PythonResult> {
  // No __pycache__ in the repository.
  return runProgram(PYTHON, args, { cwd: CLIENT_DIR, env: { PYTHONDONTWRITEBYTECODE: '1' }, timeoutMs });
}

type Message = Record<string, unknown>;

interface Exchange {
  request: Message;
  responses: Message[];
}

/**
 * Reads a transcript (every line sent and received, as NDJSON) and checks it against the
 * schema: each request, each response envelope, each result against its method's result, and
 * `more: true` only on methods that stream. Returns the exchanges, by request id.
 */
function checkTranscript(path: string): Map<unknown, Exchange> {
  const schema = loadControlSchema();
  const exchanges = new Map<unknown, Exchange>();
  const lines = readFileSync(path, 'utf8').split('\n').filter(Boolean);
  expect(lines.length).toBeGreaterThan(0);
  for (const line of lines) {
    const message = parseJson<Message>(line);
    if ('method' in message) {
      expect(exchanges.has(message.id), `id ${String(message.id)} used twice`).toBe(false);
      exchanges.set(message.id, { request: message, responses: [] });
      continue;
    }
    expect(schema.response(message), `${line}\n${describeErrors(schema.response.errors)}`).toBe(true);
    const exchange = exchanges.get(message.id);
    if (exchange === undefined) throw new Error(`a response to no request: ${line}`);
    exchange.responses.push(message);
    const method = String(exchange.request.method);
    if (message.more === true) expect(schema.document.methods[method]?.streams, line).toBe(true);
    if (message.ok === true) {
      const validate = schema.result(method);
      expect(validate(message.result), `${method}: ${line}\n${describeErrors(validate.errors)}`).toBe(true);
    }
  }
  for (const { request, responses } of exchanges.values()) {
    const refusedUnread = responses.some((response) => isRefusalOfShape(response));
    // The schema refuses exactly the requests the daemon refused for their shape.
    expect(
      schema.request(request),
      `${JSON.stringify(request)}\n${describeErrors(schema.request.errors)}`,
    ).toBe(!refusedUnread);
    // Every request got its answer, the last one without `more`; but a `watch` stream ends
    // only when the daemon stops or the client leaves (docs/control-protocol.md, `watch`).
    expect(responses.length, JSON.stringify(request)).toBeGreaterThan(0);
    if (request.method !== 'watch') expect(responses.at(-1)?.more, JSON.stringify(request)).toBeUndefined();
  }
  return exchanges;
}

/** An error the socket server sends before the daemon looks at the request (docs/control-protocol.md, "Methods"). */
function isRefusalOfShape(response: Message): boolean {
  const code = (response.error as { code?: unknown } | undefined)?.code;
  return code === 'INVALID_PARAMS' || code === 'UNKNOWN_METHOD' || code === 'BAD_REQUEST';
}

/** The (first) exchange of a method; throws when the transcript has none. */
function exchangeOf(exchanges: Map<unknown, Exchange>, method: string): Exchange {
  const found = [...exchanges.values()].find(({ request }) => request.method === method);
  if (found === undefined) throw new Error(`no ${method} request in the transcript`);
  return found;
}

function methodsOf(exchanges: Map<unknown, Exchange>): string[] {
  return [...new Set([...exchanges.values()].map(({ request }) => String(request.method)))].sort();
}

/** Calls every method example.py does not, and some that must fail; prints the error codes. */
const TOUR = `
import json, sys
from charter_client import CharterError, Client

project, transcript_path, backup_path = sys.argv[1:4]
codes = []

def refused(client, method, params):
    try:
        client.call(method, params)
    except CharterError as error:
        codes.append(error.code)
        return
    raise SystemExit(method + " was not refused")

with open(transcript_path, "w") as transcript, Client.connect(project, transcript=transcript) as client:
    client.call("status")
    run = client.call("run.submit", {"workflow_id": "greet", "inputs": {"name": "Bo", "shout": "yes"}})
    client.call("run.cancel", {"run_id": run["run_id"], "reason": "a tour"})
    client.call("runs.list", {"limit": 5})
    client.call("runs.show", {"run_id": run["run_id"]})
    batches = list(client.stream("run.logs", {"run_id": run["run_id"]}))
    for update in client.stream("watch", {"recent": 5}):
        break  # the first update is enough; the rest of the stream is dropped
    client.call("metrics")
    client.call("store.prune", {"dry_run": True})
    client.call("store.backup", {"path": backup_path})
    refused(client, "runs.show", {"run_id": "r" + "0" * 26})
    refused(client, "run.submit", {"workflow_id": "nope"})
    refused(client, "status", {"verbose": True})
    refused(client, "no.such.method", {})
    client.call("stop", {"timeout_ms": 5000})
print(json.dumps(codes))
`;

describe('the Python client (examples/python-client)', () => {
  it(`drives a greet run to succeeded; every message it exchanged matches the JSON Schema${SKIPPED}`, async (context) => {
    if (!hasPython) context.skip();
    const root = await startedProject();
    const transcript = join(root, 'transcript.ndjson');
    const result = await runPython(['example.py', '--project-path', root, '--transcript', transcript]);
    expect(result.stderr).toBe('');
    expect(result.code, result.stdout).toBe(0);

    const exchanges = checkTranscript(transcript);
    expect(methodsOf(exchanges)).toEqual([
      'gate.decide',
      'hello',
      'input.submit',
      'run.logs',
      'run.submit',
      'runs.show',
    ]);
    const ack = exchangeOf(exchanges, 'run.submit').responses[0]?.result as { run_id?: string } | undefined;
    const runId = ack?.run_id ?? '';
    expect(runId).toMatch(/^r[0-9A-HJKMNP-TV-Z]{26}$/);
    const logs = exchangeOf(exchanges, 'run.logs');
    expect(logs.responses.filter((response) => response.more === true).length).toBeGreaterThan(1);
    expect(logs.responses.at(-1)?.result).toMatchObject({ entries: [], state: 'succeeded', done: true });
    expect(result.stdout).toContain(`run ${runId} succeeded`);

    // The daemon's own account of the run.
    const shown = await runCli(['runs', 'show', runId, '--json', '--project-path', root]);
    expect(shown.code, shown.stderr).toBe(0);
    const run = parseJson<RunDetail>(shown.stdout);
    expect(run.state).toBe('succeeded');
    expect(run.answers).toEqual({ details: { count: 2 } });
    expect(run.steps.map((step) => [step.id, step.state])).toEqual([
      ['compose', 'succeeded'],
      ['confirm', 'succeeded'],
      ['details', 'succeeded'],
      ['send', 'succeeded'],
    ]);
  });

  it(`calls every other method and gets the errors it should, all matching the JSON Schema${SKIPPED}`, async (context) => {
    if (!hasPython) context.skip();
    const root = await startedProject();
    const transcript = join(root, 'transcript.ndjson');
    const result = await runPython(['-c', TOUR, root, transcript, join(root, 'backup.db')]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(parseJson<string[]>(result.stdout)).toEqual([
      'UNKNOWN_RUN',
      'UNKNOWN_WORKFLOW',
      'INVALID_PARAMS',
      'UNKNOWN_METHOD',
    ]);
    const exchanges = checkTranscript(transcript);
    expect(methodsOf(exchanges)).toEqual(
      [
        'hello',
        'metrics',
        'no.such.method',
        'run.cancel',
        'run.logs',
        'run.submit',
        'runs.list',
        'runs.show',
        'status',
        'stop',
        'store.backup',
        'store.prune',
        'watch',
      ].sort(),
    );
  });

  it(`says when no daemon runs for the project (exit 3)${SKIPPED}`, async (context) => {
    if (!hasPython) context.skip();
    const root = realpathSync(makeProject());
    projects.push(root);
    const result = await runPython(['example.py', '--project-path', root]);
    expect(result.code).toBe(3);
    expect(result.stderr).toContain('(DAEMON_NOT_RUNNING)');
    expect(result.stdout).toBe('');
  });
});

/**
 * How the hostile peer answers `status`, chosen by the `client_version` of the hello (the
 * scenario's name), and the error the client must end with.
 */
const HOSTILE: Record<string, { answer: (socket: Socket) => void; code: string }> = {
  // A line over 1 MiB that never ends: the client stops reading at the bound.
  'huge-line': {
    answer: (socket) => socket.write('x'.repeat(MAX_CONTROL_LINE_BYTES + 1024)),
    code: 'BAD_RESPONSE',
  },
  deep: {
    answer: (socket) => socket.write(`{"id":1,"ok":true,"result":${'['.repeat(100)}${']'.repeat(100)}}\n`),
    code: 'BAD_RESPONSE',
  },
  'not-json': { answer: (socket) => socket.write('not json\n'), code: 'BAD_RESPONSE' },
  'no-envelope': { answer: (socket) => socket.write('{"id":1,"result":{}}\n'), code: 'BAD_RESPONSE' },
  // `true` is not the id 1 (Python's `True == 1` holds).
  'bool-id': {
    answer: (socket) => socket.write('{"id":true,"ok":true,"result":{}}\n'),
    code: 'BAD_RESPONSE',
  },
  stranger: { answer: (socket) => socket.write('{"id":99,"ok":true,"result":{}}\n'), code: 'BAD_RESPONSE' },
  silent: { answer: () => undefined, code: 'DAEMON_NOT_ANSWERING' },
  closes: { answer: (socket) => socket.end(), code: 'DAEMON_NOT_ANSWERING' },
  'connection-error': {
    answer: (socket) =>
      socket.write('{"id":null,"ok":false,"error":{"code":"TOO_MANY_CLIENTS","message":"too many"}}\n'),
    code: 'TOO_MANY_CLIENTS',
  },
  'error-answer': {
    answer: (socket) =>
      socket.write('{"id":1,"ok":false,"error":{"code":"DRAINING","message":"stopping","hint":"wait"}}\n'),
    code: 'DRAINING',
  },
};

/** A peer on a real Unix socket that says hello (protocol 2 to `mismatch`), then plays a scenario. */
async function hostilePeer(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'cdh-'));
  const path = join(dir, 'hostile.sock');
  const server: Server = createServer((socket) => {
    socket.on('error', () => undefined); // the client may leave mid-write
    let buffered = '';
    let scenario = '';
    socket.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      for (let newline = buffered.indexOf('\n'); newline >= 0; newline = buffered.indexOf('\n')) {
        const request = JSON.parse(buffered.slice(0, newline)) as {
          id: number;
          method: string;
          params: { client_version: string };
        };
        buffered = buffered.slice(newline + 1);
        if (request.method === 'hello') {
          scenario = request.params.client_version;
          const protocol = scenario === 'mismatch' ? 2 : 1;
          socket.write(
            `${JSON.stringify({ id: request.id, ok: true, result: { protocol, daemon_version: '9', pid: 1 } })}\n`,
          );
        } else {
          HOSTILE[scenario]?.answer(socket);
        }
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  cleanups.push(() => {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return path;
}

/** Each scenario on its own connection; prints the error code each call ended with. */
const AGAINST_HOSTILE = `
import json, sys
from charter_client import CharterError, Client

path, scenarios = sys.argv[1], sys.argv[2:]
codes = {}
for scenario in scenarios:
    try:
        with Client(path, timeout=2, client_version=scenario) as client:
            client.call("status")
        codes[scenario] = "no error"
    except CharterError as error:
        codes[scenario] = error.code
print(json.dumps(codes))
`;

describe('the Python client against a hostile peer', () => {
  it(`ends every exchange with an error from the catalogue, never a hang or a crash${SKIPPED}`, async (context) => {
    if (!hasPython) context.skip();
    const path = await hostilePeer();
    const scenarios = [...Object.keys(HOSTILE), 'mismatch'];
    const result = await runPython(['-c', AGAINST_HOSTILE, path, ...scenarios]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(parseJson<Record<string, string>>(result.stdout)).toEqual({
      ...Object.fromEntries(Object.entries(HOSTILE).map(([name, { code }]) => [name, code])),
      mismatch: 'PROTOCOL_MISMATCH',
    });
  });
});
