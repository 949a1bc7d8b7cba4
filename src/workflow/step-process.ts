/**
 * One workflow `run` step as a supervised process group.
 *
 * The command runs under `/bin/sh -c` in a new session and process group (pgid = pid), so the
 * whole tree it starts can be signalled at once. The step is done only when the shell has exited
 * AND nothing is left in its group: children a step leaves in the background are SIGKILLed when
 * the shell exits, and a timeout or cancel escalates SIGTERM → (grace) → SIGKILL on the group.
 *
 * Output is coalesced per stream into chunks of at most `maxChunkBytes`, flushed every `flushMs`
 * or when a chunk is full, decoded as UTF-8 without splitting characters. Reading is limited to
 * `maxBytesPerSecond` (the pipes are paused past it, so a flooding step waits on its writes
 * rather than flooding the daemon). Past `maxBytesPerStep` one truncation marker is emitted and
 * the rest is read (at that rate) and dropped. Every chunk is delivered before `done` resolves;
 * `done` never rejects.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { statSync } from 'node:fs';
import { StringDecoder } from 'node:string_decoder';
import { errorMessage } from '../errors/error-message.js';
import type { OutputChunk, StepOutcome } from '../protocol/steps.js';
import { processGroupAlive } from './orphans.js';

export interface StepOutputOptions {
  /** Largest chunk handed to `onOutput`, in UTF-8 bytes. Default 64 KiB. */
  maxChunkBytes?: number;
  /** How long output may wait before it is flushed. Default 50 ms. */
  flushMs?: number;
  /** Bytes (both streams together) kept per step; the rest is dropped. Default 16 MiB. */
  maxBytesPerStep?: number;
  /**
   * Bytes per second read from the step (both streams). Past it the pipes are paused, so the
   * process waits on its writes: nothing is lost, and one run cannot flood the daemon, the store
   * or the gateway link. Default 8 MiB/s.
   */
  maxBytesPerSecond?: number;
}

export interface StepProcessOptions {
  /** Run with `/bin/sh -c`. */
  command: string;
  cwd: string;
  env: NodeJS.ProcessEnv;
  timeoutMs: number | null;
  /** SIGTERM → wait this long → SIGKILL. */
  killGraceMs: number;
  onOutput: (chunk: OutputChunk) => void;
  output?: StepOutputOptions;
}

export type { OutputChunk, StepOutcome };

export interface StepProcess {
  /** The shell's pid, which is also the process group id; undefined when the spawn failed. */
  readonly pid: number | undefined;
  readonly done: Promise<StepOutcome>;
  /** SIGTERM the group, SIGKILL it after the grace period. Idempotent; a no-op once the shell exited. */
  cancel(reason: string): void;
}

export const DEFAULT_MAX_CHUNK_BYTES = 64 * 1024;
export const DEFAULT_FLUSH_MS = 50;
export const DEFAULT_MAX_BYTES_PER_STEP = 16 * 1024 * 1024;
export const DEFAULT_MAX_BYTES_PER_SECOND = 8 * 1024 * 1024;
/** The rate is enforced per window of this length (budget = rate × window). */
const RATE_WINDOW_MS = 100;

const GROUP_POLL_MS = 20;
/** After the group is gone, how long to wait for pipes held open by an escaped process. */
const CLOSE_GRACE_MS = 1_000;
/** After SIGKILL, how long to wait for a group we cannot empty (EPERM, uninterruptible sleep). */
const GROUP_GONE_LIMIT_MS = 30_000;
/** setTimeout fires at once for delays above this. */
const MAX_TIMER_MS = 2 ** 31 - 1;

type StreamName = OutputChunk['stream'];
type KillReason = { kind: 'timed_out'; timeoutMs: number } | { kind: 'cancelled'; reason: string };

export function startStepProcess(options: StepProcessOptions): StepProcess {
  let child: ChildProcess;
  try {
    child = spawn('/bin/sh', ['-c', options.command], {
      cwd: options.cwd,
      env: options.env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (error) {
    return {
      pid: undefined,
      done: Promise.resolve({ kind: 'spawn_failed', message: spawnErrorMessage(error, options.cwd) }),
      cancel: () => {},
    };
  }
  return new StepSupervisor(child, options);
}

class StepSupervisor implements StepProcess {
  readonly pid: number | undefined;
  readonly done: Promise<StepOutcome>;

  private resolveDone!: (outcome: StepOutcome) => void;
  private readonly output: OutputCoalescer;
  private exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  private streamsClosed = false;
  private groupGone = false;
  private killReason: KillReason | null = null;
  /** True once survivors are SIGKILLed on every poll (shell exited on its own, or grace expired). */
  private killHard = false;
  private killHardSince = 0;
  private settled = false;
  private timeoutTimer: NodeJS.Timeout | undefined;
  private graceTimer: NodeJS.Timeout | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private closeTimer: NodeJS.Timeout | undefined;
  private rateTimer: NodeJS.Timeout | undefined;
  private readonly windowBudget: number;
  private windowStart = Date.now();
  private windowBytes = 0;

  constructor(
    private readonly child: ChildProcess,
    private readonly options: StepProcessOptions,
  ) {
    this.pid = child.pid;
    this.done = new Promise((resolve) => {
      this.resolveDone = resolve;
    });
    const out = options.output ?? {};
    this.output = new OutputCoalescer(
      (chunk) => this.deliver(chunk),
      Math.max(4, out.maxChunkBytes ?? DEFAULT_MAX_CHUNK_BYTES),
      Math.max(0, out.flushMs ?? DEFAULT_FLUSH_MS),
      Math.max(0, out.maxBytesPerStep ?? DEFAULT_MAX_BYTES_PER_STEP),
    );

    this.windowBudget = Math.max(
      1,
      ((out.maxBytesPerSecond ?? DEFAULT_MAX_BYTES_PER_SECOND) * RATE_WINDOW_MS) / 1000,
    );
    child.stdout?.on('data', (data: Buffer) => {
      this.output.push('stdout', data);
      this.meter(data.length);
    });
    child.stderr?.on('data', (data: Buffer) => {
      this.output.push('stderr', data);
      this.meter(data.length);
    });
    // A pipe error must not become an uncaught exception; 'close' still follows.
    child.stdout?.on('error', () => {});
    child.stderr?.on('error', () => {});
    child.on('error', (error) => {
      // With a pid the process exists and 'exit'/'close' follow; without one the spawn failed.
      if (this.pid === undefined) this.failSpawn(spawnErrorMessage(error, options.cwd));
    });
    child.on('exit', (code, signal) => this.onExit(code, signal));
    child.on('close', () => {
      this.streamsClosed = true;
      this.maybeFinish();
    });

    if (this.pid !== undefined && options.timeoutMs !== null && Number.isFinite(options.timeoutMs)) {
      const timeoutMs = Math.max(0, options.timeoutMs);
      this.timeoutTimer = setTimeout(
        () => {
          this.timeoutTimer = undefined;
          if (this.exit === null) this.startKill({ kind: 'timed_out', timeoutMs });
        },
        Math.min(timeoutMs, MAX_TIMER_MS),
      );
    }
  }

  /** Counts bytes read; past the window's budget, pauses the pipes until the next window. */
  private meter(bytes: number): void {
    const now = Date.now();
    if (now - this.windowStart >= RATE_WINDOW_MS) {
      this.windowStart = now;
      this.windowBytes = 0;
    }
    this.windowBytes += bytes;
    if (this.windowBytes < this.windowBudget || this.rateTimer !== undefined) return;
    this.child.stdout?.pause();
    this.child.stderr?.pause();
    // Resume when the bytes already read fit the rate (a large read may span several windows).
    const waitMs =
      Math.ceil((this.windowBytes / this.windowBudget) * RATE_WINDOW_MS) - (now - this.windowStart);
    this.rateTimer = setTimeout(
      () => {
        this.rateTimer = undefined;
        this.windowStart = Date.now();
        this.windowBytes = 0;
        this.child.stdout?.resume();
        this.child.stderr?.resume();
      },
      Math.max(1, waitMs),
    );
  }

  cancel(reason: string): void {
    if (this.settled || this.exit !== null || this.pid === undefined || this.killReason !== null) return;
    this.startKill({ kind: 'cancelled', reason });
  }

  private startKill(reason: KillReason): void {
    this.killReason = reason;
    this.clearTimer('timeoutTimer');
    this.signalGroup('SIGTERM');
    this.graceTimer = setTimeout(
      () => {
        this.graceTimer = undefined;
        if (this.settled || this.groupGone) return;
        this.escalate();
      },
      Math.min(Math.max(0, this.options.killGraceMs), MAX_TIMER_MS),
    );
  }

  private escalate(): void {
    if (!this.killHard) {
      this.killHard = true;
      this.killHardSince = Date.now();
    }
    this.signalGroup('SIGKILL');
  }

  private onExit(code: number | null, signal: NodeJS.Signals | null): void {
    if (this.exit !== null) return;
    this.exit = { code, signal };
    this.clearTimer('timeoutTimer');
    // The shell exited on its own: whatever it left in its group goes now, without a grace period.
    if (this.killReason === null) this.escalate();
    this.pollGroup();
  }

  private pollGroup(): void {
    this.pollTimer = undefined;
    if (this.settled || this.pid === undefined) return;
    const gaveUp = this.killHard && Date.now() - this.killHardSince > GROUP_GONE_LIMIT_MS;
    if (gaveUp || !processGroupAlive(this.pid)) {
      this.groupGone = true;
      this.clearTimer('graceTimer');
      this.maybeFinish();
      return;
    }
    if (this.killHard) this.signalGroup('SIGKILL');
    this.pollTimer = setTimeout(() => this.pollGroup(), GROUP_POLL_MS);
  }

  private maybeFinish(): void {
    if (this.settled || this.exit === null || !this.groupGone) return;
    if (!this.streamsClosed) {
      // The group is gone, so only a process that left it (setsid) can still hold our pipes.
      this.closeTimer ??= setTimeout(() => {
        this.closeTimer = undefined;
        this.child.stdout?.destroy();
        this.child.stderr?.destroy();
        this.streamsClosed = true;
        this.maybeFinish();
      }, CLOSE_GRACE_MS);
      return;
    }
    this.settle(this.outcome());
  }

  private outcome(): StepOutcome {
    const reason = this.killReason;
    if (reason !== null) return reason;
    const exit = this.exit;
    if (exit !== null && exit.code !== null) return { kind: 'exited', exitCode: exit.code };
    return { kind: 'signalled', signal: exit?.signal ?? 'unknown' };
  }

  private failSpawn(message: string): void {
    this.settle({ kind: 'spawn_failed', message });
  }

  private settle(outcome: StepOutcome): void {
    if (this.settled) return;
    this.settled = true;
    this.clearTimer('timeoutTimer');
    this.clearTimer('graceTimer');
    this.clearTimer('pollTimer');
    this.clearTimer('closeTimer');
    this.clearTimer('rateTimer');
    this.output.end();
    this.resolveDone(outcome);
  }

  private clearTimer(name: 'timeoutTimer' | 'graceTimer' | 'pollTimer' | 'closeTimer' | 'rateTimer'): void {
    const timer = this[name];
    if (timer !== undefined) clearTimeout(timer);
    this[name] = undefined;
  }

  private signalGroup(signal: NodeJS.Signals): void {
    if (this.pid === undefined || this.groupGone) return;
    try {
      process.kill(-this.pid, signal);
    } catch {
      // ESRCH: the group is already empty. EPERM: a member we may not signal; nothing to do.
    }
  }

  private deliver(chunk: OutputChunk): void {
    try {
      this.options.onOutput(chunk);
    } catch {
      // A failing consumer must not break supervision of the process group.
    }
  }
}

function spawnErrorMessage(error: unknown, cwd: string): string {
  const message = errorMessage(error);
  let cwdIsDirectory = false;
  try {
    cwdIsDirectory = statSync(cwd).isDirectory();
  } catch {
    // missing or unreadable
  }
  // A missing cwd surfaces as "spawn /bin/sh ENOENT", which blames the wrong path.
  return cwdIsDirectory ? message : `working directory ${cwd} is missing or not a directory (${message})`;
}

class OutputCoalescer {
  private readonly decoders: Record<StreamName, StringDecoder> = {
    stdout: new StringDecoder('utf8'),
    stderr: new StringDecoder('utf8'),
  };
  private readonly pending: Record<StreamName, { parts: string[]; bytes: number }> = {
    stdout: { parts: [], bytes: 0 },
    stderr: { parts: [], bytes: 0 },
  };
  private received = 0;
  private truncated = false;
  private ended = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly emit: (chunk: OutputChunk) => void,
    private readonly maxChunkBytes: number,
    private readonly flushMs: number,
    private readonly maxBytes: number,
  ) {}

  push(stream: StreamName, data: Buffer): void {
    if (this.truncated || this.ended) return; // still read, so the writer never blocks
    const room = this.maxBytes - this.received;
    if (data.length <= room) {
      this.received += data.length;
      this.append(stream, this.decoders[stream].write(data));
      return;
    }
    // A character cut at the limit stays in the decoder and is dropped with the rest.
    if (room > 0) this.append(stream, this.decoders[stream].write(data.subarray(0, room)));
    this.received = this.maxBytes;
    this.truncated = true;
    this.flush();
    this.emit({ stream, text: `[output truncated after ${this.maxBytes} bytes]\n`, truncated: true });
  }

  /** Flushes what the decoders still hold and everything pending; later pushes are ignored. */
  end(): void {
    if (this.ended) return;
    if (!this.truncated) {
      this.append('stdout', this.decoders.stdout.end());
      this.append('stderr', this.decoders.stderr.end());
    }
    this.ended = true;
    this.flush();
  }

  private append(stream: StreamName, text: string): void {
    if (text === '') return;
    const pending = this.pending[stream];
    pending.parts.push(text);
    pending.bytes += Buffer.byteLength(text, 'utf8');
    if (pending.bytes >= this.maxChunkBytes) this.emitFullChunks(stream);
    if (pending.bytes > 0 && this.timer === undefined && !this.ended) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.flush();
      }, this.flushMs);
    }
  }

  /** Emits every complete chunk of `maxChunkBytes` and keeps the remainder pending. */
  private emitFullChunks(stream: StreamName): void {
    const pending = this.pending[stream];
    const bytes = Buffer.from(pending.parts.join(''), 'utf8');
    let start = 0;
    while (bytes.length - start >= this.maxChunkBytes) {
      let end = start + this.maxChunkBytes;
      // Back off to the start of a character: continuation bytes are 10xxxxxx.
      while (end < bytes.length && end > start && ((bytes[end] ?? 0) & 0xc0) === 0x80) end -= 1;
      if (end === start) end = start + this.maxChunkBytes;
      this.emit({ stream, text: bytes.toString('utf8', start, end) });
      start = end;
    }
    pending.parts = start < bytes.length ? [bytes.toString('utf8', start)] : [];
    pending.bytes = bytes.length - start;
  }

  private flush(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    for (const stream of ['stdout', 'stderr'] as const) {
      const pending = this.pending[stream];
      if (pending.bytes === 0) continue;
      if (pending.bytes >= this.maxChunkBytes) this.emitFullChunks(stream);
      if (pending.bytes === 0) continue;
      const text = pending.parts.join('');
      pending.parts = [];
      pending.bytes = 0;
      this.emit({ stream, text });
    }
  }
}
