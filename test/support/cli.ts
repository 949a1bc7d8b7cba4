/**
 * Driving the built charter-daemon CLI as a real subprocess, in throw-away projects.
 */
import { spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { daemonPaths } from '../../src/project/paths.js';

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

export function runCli(
  args: readonly string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<CliResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [cliPath, ...args], {
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
      reject(
        new Error(`charter-daemon ${args.join(' ')} did not finish in ${options.timeoutMs ?? 20_000} ms`),
      );
    }, options.timeoutMs ?? 20_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolvePromise({ code, stdout, stderr });
    });
  });
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
