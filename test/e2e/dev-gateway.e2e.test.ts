/**
 * `charter-daemon dev-gateway` as a person uses it: the built CLI runs the gateway on a free
 * port, a real daemon on a copy of examples/hello connects to it with the generated token file,
 * and the operator drives a `greet` run to its end from the gateway's stdin (runs, approve,
 * submit) while the gateway prints the events and the command results. Bad operator lines are
 * answered and the gateway goes on; a second daemon is refused with what to do; a port in use
 * is a flag error; quit, SIGTERM and the end of piped stdin behave as documented.
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  assertBuilt,
  cliPath,
  destroyProject,
  makeProject,
  parseJson,
  repoRoot,
  runCli,
} from '../support/cli.js';
import { pollUntil } from '../support/wait.js';

const WAIT_MS = 15_000;

const cleanups: (() => Promise<void> | void)[] = [];
beforeAll(() => assertBuilt());
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** The dev gateway as a subprocess of the built CLI, its stdin ours to type on. */
class DevGateway {
  stdout = '';
  stderr = '';
  readonly exited: Promise<number | null>;
  readonly #child: ChildProcessWithoutNullStreams;

  constructor(args: readonly string[], env: NodeJS.ProcessEnv) {
    this.#child = spawn(process.execPath, [cliPath, 'dev-gateway', ...args], {
      cwd: repoRoot,
      env: { ...process.env, ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.#child.stdout.on('data', (chunk: Buffer) => {
      this.stdout += chunk.toString();
    });
    this.#child.stderr.on('data', (chunk: Buffer) => {
      this.stderr += chunk.toString();
    });
    this.#child.stdin.on('error', () => {});
    this.exited = new Promise((resolve) => this.#child.on('close', (code) => resolve(code)));
    cleanups.push(() => {
      if (this.#child.exitCode === null && this.#child.signalCode === null) this.#child.kill('SIGKILL');
    });
  }

  type(line: string): void {
    this.#child.stdin.write(`${line}\n`);
  }

  endInput(): void {
    this.#child.stdin.end();
  }

  signal(signal: NodeJS.Signals): void {
    this.#child.kill(signal);
  }

  /** The first match of `pattern` in stdout (or stderr), once it is there. */
  async waitFor(pattern: RegExp, stream: 'stdout' | 'stderr' = 'stdout'): Promise<RegExpMatchArray> {
    const match = await pollUntil(
      () => this[stream].match(pattern),
      (found) => found !== null,
      {
        timeoutMs: WAIT_MS,
        what: `${pattern} on the dev gateway's ${stream} (stdout: ${this.stdout.slice(-1500)} stderr: ${this.stderr.slice(-500)})`,
      },
    );
    if (match === null) throw new Error('unreachable');
    return match;
  }

  /** The URL and token file of the start-up lines. */
  async started(): Promise<{ url: string; tokenFile: string }> {
    const [, url] = await this.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+) /);
    const [, tokenFile] = await this.waitFor(/ --gateway-token-file (\S+)\n/);
    if (url === undefined || tokenFile === undefined) throw new Error('no URL or token file printed');
    return { url, tokenFile };
  }
}

function privateDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'cdg-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function helloProject(): string {
  const root = makeProject({ charterYml: 'name: hello\n' });
  cpSync(join(repoRoot, 'examples/hello/workflows'), join(root, 'workflows'), { recursive: true });
  cleanups.push(() => destroyProject(root));
  return root;
}

async function startDaemon(root: string, url: string, tokenFile: string): Promise<void> {
  const started = await runCli([
    'start',
    '--project-path',
    root,
    '--gateway',
    url,
    '--gateway-token-file',
    tokenFile,
  ]);
  expect(started.code, started.stderr).toBe(0);
  cleanups.push(async () => {
    await runCli(['stop', '--project-path', root, '--force']);
  });
}

async function runState(root: string, runId: string): Promise<string> {
  const shown = await runCli(['runs', 'show', runId, '--json', '--project-path', root]);
  if (shown.code !== 0) throw new Error(`runs show failed (${shown.code}): ${shown.stderr}`);
  return parseJson<{ state: string }>(shown.stdout).state;
}

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('charter-daemon dev-gateway', () => {
  it('drives a greet run from its stdin to the end: runs, approve, submit; prints events and command results; quit exits 0', async () => {
    const gateway = new DevGateway(['--port', '0'], { XDG_RUNTIME_DIR: privateDir() });
    const { url, tokenFile } = await gateway.started();
    expect(statSync(tokenFile).mode & 0o777).toBe(0o600);
    const token = readFileSync(tokenFile, 'utf8').trim();
    expect(token.length).toBeGreaterThanOrEqual(32);
    await gateway.waitFor(/in memory only/);

    const root = helloProject();
    await startDaemon(root, url, tokenFile);
    await gateway.waitFor(/daemon \S+ connected: project "hello", epoch 1, version \S+, connection gw-1-/);

    const run = await runCli(['run', 'greet', '--input', 'name=Ana', '--json', '--project-path', root]);
    expect(run.code, run.stderr).toBe(0);
    const runId = parseJson<{ run_id: string }>(run.stdout).run_id;
    const prefix = runId.slice(0, 20);
    await gateway.waitFor(
      new RegExp(`\\d\\d:\\d\\d:\\d\\d ${runId} run\\.queued greet \\(inputs: name="Ana", shout=false\\)`),
    );
    await gateway.waitFor(new RegExp(`${runId} step\\.output compose stdout: "Hello, Ana!\\\\n"`));
    await gateway.waitFor(new RegExp(`${runId} run\\.waiting at gate confirm`));

    gateway.type('runs');
    await gateway.waitFor(new RegExp(`\\n${runId} +greet +waiting +gate confirm +run\\.waiting\\n`));

    // Mistakes are answered on stderr, one line each, and the gateway goes on.
    gateway.type('approve rNOPE');
    await gateway.waitFor(/error: no run seen whose id starts with "rNOPE"/, 'stderr');
    gateway.type(`submit ${prefix} {"count":`);
    await gateway.waitFor(/error: answers: not JSON/, 'stderr');
    gateway.type('x'.repeat(80 * 1024));
    await gateway.waitFor(/error: line longer than 73728 bytes: ignored/, 'stderr');

    gateway.type(`approve ${prefix}`);
    const [, approveId] = await gateway.waitFor(
      new RegExp(`sent (dg-[0-9a-f]+-1) gate\\.decide \\(approve confirm\\) to ${runId}, dseq 1\\n`),
    );
    await gateway.waitFor(new RegExp(`${runId} gate\\.decided confirm: approve by dev-gateway`));
    await gateway.waitFor(new RegExp(` - command\\.result ${approveId} \\(approve confirm\\) applied\\n`));
    await gateway.waitFor(new RegExp(`${runId} run\\.waiting at input details`));

    gateway.type(`submit ${prefix} {"count":1}`);
    const [, submitId] = await gateway.waitFor(/sent (dg-[0-9a-f]+-2) input\.submit \(answers for details\)/);
    await gateway.waitFor(new RegExp(` - command\\.result ${submitId} \\(answers for details\\) applied\\n`));

    await pollUntil(
      () => runState(root, runId),
      (state) => state === 'succeeded',
      { timeoutMs: WAIT_MS, what: `run ${runId} to succeed`, everyMs: 100 },
    );
    await gateway.waitFor(
      new RegExp(`${runId} step\\.output send stdout: "Sending the greeting 1 time\\(s\\)\\.\\\\n`),
    );
    await gateway.waitFor(new RegExp(`${runId} run\\.succeeded\\n`));
    expect(gateway.stdout).toContain(`${runId} input.submitted details by dev-gateway: count=1`);

    // A rejected command comes back rejected, with the daemon's code.
    gateway.type(`cancel ${runId}`);
    await gateway.waitFor(/command\.result dg-[0-9a-f]+-3 \(cancel\) rejected: RUN_FINISHED: /);

    gateway.type('quit');
    expect(await gateway.exited).toBe(0);
    expect(gateway.stdout).toMatch(
      /stopping \(quit\): \d+ event\(s\) stored, 1 run\(s\) seen, 3 command\(s\) sent/,
    );
    expect(`${gateway.stdout}${gateway.stderr}`).not.toContain(token);

    // Started again on the port, it keeps the token: the daemon reconnects with the file it has,
    // replays its journal, and commands go on after the three the daemon stored.
    const port = new URL(url).port;
    const again = new DevGateway(['--port', port], { XDG_RUNTIME_DIR: dirname(dirname(tokenFile)) });
    await again.waitFor(new RegExp(`token: kept in ${escapeRegExp(tokenFile)} since an earlier start`));
    expect(readFileSync(tokenFile, 'utf8').trim()).toBe(token);
    await again.waitFor(/: adopted down_applied 3 \(was 0\)/);
    await again.waitFor(/daemon \S+ connected: project "hello", epoch 1, .* \(commands stored there: 3\)/);
    await again.waitFor(new RegExp(`${runId} run\\.succeeded\\n`));
    again.type('start greet {"name":"Bo"}');
    await again.waitFor(/sent dg-[0-9a-f]+-1 run\.start \(start greet\), dseq 4\n/);
    const [, secondRun] = await again.waitFor(
      /command\.result dg-[0-9a-f]+-1 \(start greet\) applied run (r\w{26})\n/,
    );
    await again.waitFor(new RegExp(`${secondRun} run\\.waiting at gate confirm`));
    again.type('quit');
    expect(await again.exited).toBe(0);
  });

  it('refuses a second daemon with what to do, keeps serving after piped stdin ends, stops on SIGTERM; a port in use is refused', async () => {
    const dir = privateDir();
    const tokenFile = join(dir, 'given.token');
    const token = 'given-dev-token-not-for-printing';
    writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
    const gateway = new DevGateway(['--port', '0', '--token-file', tokenFile], { XDG_RUNTIME_DIR: dir });
    const started = await gateway.started();
    expect(started.tokenFile).toBe(tokenFile);
    await gateway.waitFor(new RegExp(`token: from ${escapeRegExp(tokenFile)}\\n`));

    gateway.endInput();
    await gateway.waitFor(
      /stdin closed: no more operator commands; the gateway serves on until SIGINT or SIGTERM/,
    );

    const first = helloProject();
    await startDaemon(first, started.url, tokenFile);
    const [, firstId] = await gateway.waitFor(/daemon (\S+) connected: project "hello"/);
    const second = makeProject({ charterYml: 'name: other\n' });
    cleanups.push(() => destroyProject(second));
    await startDaemon(second, started.url, tokenFile);
    await gateway.waitFor(
      new RegExp(
        `refused daemon \\S+ \\(project "other"\\): this dev gateway stores the stream of one daemon, ${firstId} \\(project "hello"\\)\\. Give the other daemon a dev gateway of its own \\(another --port\\)`,
      ),
      'stderr',
    );

    const port = new URL(started.url).port;
    const busy = await runCli(['dev-gateway', '--port', port, '--token-file', tokenFile]);
    expect(busy.code).toBe(2);
    expect(busy.stderr).toContain(`--port ${port}: cannot listen on 127.0.0.1:${port}: the port is in use`);
    expect(busy.stderr).toContain('code: INVALID_FLAG');

    gateway.signal('SIGTERM');
    expect(await gateway.exited).toBe(0);
    expect(gateway.stdout).toMatch(/stopping \(SIGTERM\)/);
    expect(`${gateway.stdout}${gateway.stderr}${busy.stdout}${busy.stderr}`).not.toContain(token);
  });
});
