/**
 * Driving the built charter-daemon CLI as a real subprocess, in throw-away projects.
 */
import { spawn } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { daemonPaths } from '../../src/project/paths.js';
import type { RunDetail } from '../../src/protocol/runs.js';
import { pidsWithEnv } from './processes.js';

export const repoRoot = resolve(fileURLToPath(new URL('../..', import.meta.url)));
export const cliPath = join(repoRoot, 'dist', 'src', 'cli', 'run.js');

export function assertBuilt(): void {
  if (!existsSync(cliPath) || !existsSync(join(repoRoot, 'oclif.manifest.json'))) {
    throw new Error(`the CLI is not built (${cliPath}): run \`npm run build\` (npm test does it)`);
  }
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
}

/** Runs a program to its end and collects what it printed; rejects when it outlives the deadline (then killed). */
export function runProgram(
  command: string,
  args: readonly string[],
  options: RunOptions = {},
): Promise<CliResult> {
  const timeoutMs = options.timeoutMs ?? 20_000;
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd ?? repoRoot,
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${command} ${args.join(' ')} did not finish in ${timeoutMs} ms; stderr: ${stderr}`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolvePromise({ code, stdout, stderr });
    });
  });
}

/** Runs the built CLI (`charter-daemon ARGS`) with the node running the tests. */
export function runCli(args: readonly string[], options: RunOptions = {}): Promise<CliResult> {
  return runProgram(process.execPath, [cliPath, ...args], options);
}

/**
 * The CLI for a test that must later search everything it printed (for a secret in clear): every
 * result is kept in `calls`. `show` is `runs show RUN_ID --json`, parsed.
 */
export function recordingCli(env: NodeJS.ProcessEnv = {}): {
  readonly calls: CliResult[];
  cli(root: string, ...args: string[]): Promise<CliResult>;
  show(root: string, runId: string): Promise<RunDetail>;
} {
  const calls: CliResult[] = [];
  const cli = async (root: string, ...args: string[]): Promise<CliResult> => {
    const result = await runCli([...args, '--project-path', root], { env });
    calls.push(result);
    return result;
  };
  const show = async (root: string, runId: string): Promise<RunDetail> => {
    const result = await cli(root, 'runs', 'show', runId, '--json');
    if (result.code !== 0) throw new Error(`runs show ${runId} exited ${result.code}: ${result.stderr}`);
    return parseJson<RunDetail>(result.stdout);
  };
  return { calls, cli, show };
}

/** A temporary Charter project; `depth` pads the path (deep project paths). */
export function makeProject(options: { charterYml?: string; minPathLength?: number } = {}): string {
  let root = mkdtempSync(join(tmpdir(), 'cdp-'));
  if (options.minPathLength !== undefined) {
    while (root.length < options.minPathLength) root = join(root, 'a-rather-long-folder-name');
    mkdirSync(root, { recursive: true });
  }
  writeFileSync(join(root, 'charter.yml'), options.charterYml ?? 'name: e2e\n');
  return root;
}

/** Pids of daemon processes (dist/src/daemon/main.js) serving this project root. */
export function daemonPids(projectRoot: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (!cmdline.includes('daemon/main.js')) continue;
      if (!cmdline.includes(JSON.stringify(projectRoot).slice(1, -1))) continue;
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z') continue;
      pids.push(Number(entry));
    } catch {
      // the process ended while we looked
    }
  }
  return pids;
}

/**
 * A fresh copy of the sample project's workflows (examples/hello) with a daemon started by the
 * built CLI; its root is pushed to `projects` for {@link destroyProjects}.
 */
export async function startSampleProject(
  projects: string[],
  options: { charterYml?: string; startArgs?: readonly string[] } = {},
): Promise<string> {
  const root = realpathSync(
    makeProject(options.charterYml === undefined ? {} : { charterYml: options.charterYml }),
  );
  projects.push(root);
  cpSync(join(repoRoot, 'examples/hello/workflows'), join(root, 'workflows'), { recursive: true });
  const started = await runCli(['start', '--project-path', root, ...(options.startArgs ?? [])]);
  if (started.code !== 0 || started.stderr !== '') {
    throw new Error(`start failed (exit ${started.code}): ${started.stderr}${started.stdout}`);
  }
  return root;
}

/** Ends every project of `projects` (emptying it): its daemon, the step processes left, its files. */
export function destroyProjects(projects: string[]): void {
  for (const root of projects.splice(0)) {
    destroyProject(root);
    // Step processes live in their own process groups and outlive a killed daemon: end them too.
    for (const pid of pidsWithEnv('CHARTER_PROJECT_ROOT', root)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
}

/** Kills whatever daemon still serves the project, then removes it. */
export function destroyProject(projectRoot: string): void {
  for (const pid of daemonPids(projectRoot)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  // A killed daemon of a deep project leaves its socket in the shared fallback directory.
  const paths = daemonPaths(projectRoot);
  if (paths.socketIsFallback) rmSync(paths.socketPath, { force: true });
  rmSync(projectRoot, { recursive: true, force: true });
}

export { waitUntil } from './wait.js';

export function parseJson<T>(text: string): T {
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new Error(`not JSON: ${text}`);
  }
}
