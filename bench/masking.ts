/**
 * Section 11 of `npm run bench` (alone: `npm run bench -- --only masking`): what masking secrets
 * costs a step's output. The real output path of a run step, in the bench process: a real step
 * process (`cat` of a 32 MiB log-like file, rate limit lifted) → the real `StepOutputMasker` →
 * split to the frame budget → `store.runs.appendEvents` into a fresh real store, exactly as
 * `stepRunner` and `recordOutput` do. Measured with 20 registered secrets and with none (the
 * masker passes text through), back to back in each round (the order swapped every round), in
 * the same run.
 *
 * Two figures per measurement: wall-clock MiB/s, and MiB per CPU-second of this process (the
 * daemon's side of the path: decoding, masking, splitting, SQLite; `cat` is another process).
 * The path is CPU-bound in this process, so the second is its throughput without the neighbours:
 * on a shared 2-core machine back-to-back wall-clock runs differ by ±20 %, more than what is
 * measured. The goal is judged on the median per-round cost in CPU time; the wall-clock cost is
 * printed beside it.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { outputTextBudget, splitTextToFit } from '../src/protocol/frame-budget.js';
import { MaskPatterns } from '../src/secrets/masker.js';
import { StepOutputMasker } from '../src/secrets/output-masker.js';
import { Store } from '../src/store/store.js';
import { startStepProcess } from '../src/workflow/step-process.js';
import { round1, summarize } from './measure.js';
import type { Goal } from './runs.js';

const SECRETS = 20;
const OUTPUT_BYTES = 32 * 1024 * 1024;
/** Rounds of (none, 20 secrets), the order swapped every round. */
const ROUNDS = 11;
/** One line in this many carries one of the secrets (so masking has work to do). */
const SECRET_EVERY_LINES = 500;
const GOAL_COST = 0.1;

export interface MaskingResults {
  readonly secrets: number;
  readonly output_mib: number;
  readonly rounds: number;
  /** Wall-clock output throughput through the whole path, MiB/s: median of the rounds. */
  readonly none_mib_s: number;
  readonly masked_mib_s: number;
  /** The same per CPU-second of this process, MiB/s: median of the rounds. */
  readonly none_mib_per_cpu_s: number;
  readonly masked_mib_per_cpu_s: number;
  /** 1 − masked / none in CPU time, per round (measured back to back); the median is judged. */
  readonly cost: number;
  readonly cost_per_round: readonly number[];
  /** 1 − masked / none in wall-clock time, median of the rounds (informational). */
  readonly wall_cost: number;
  /** The masker alone (20 secrets, 64 KiB pushes), MiB/s. */
  readonly masker_alone_mib_s: number;
  readonly goals: { readonly masking_cost: Goal };
}

/** 20 secrets like tokens and passwords, 12 to 40 characters. */
function makeSecrets(): string[] {
  return Array.from({ length: SECRETS }, (_, i) =>
    randomBytes(30)
      .toString('base64url')
      .slice(0, 12 + ((i * 7) % 29)),
  );
}

function makeOutput(secrets: readonly string[]): string {
  const lines: string[] = [];
  let bytes = 0;
  for (let i = 0; bytes < OUTPUT_BYTES; i++) {
    const extra = i % SECRET_EVERY_LINES === 0 ? ` token=${secrets[i % secrets.length]}` : '';
    const line = `2026-01-01T12:00:${String(i % 60).padStart(2, '0')}.${String(i % 1000).padStart(3, '0')}Z INFO worker-${i % 8} built module ${i} in ${(i * 37) % 997} ms (cache ${i % 3 === 0 ? 'hit' : 'miss'})${extra}\n`;
    lines.push(line);
    bytes += line.length;
  }
  return lines.join('').slice(0, OUTPUT_BYTES);
}

interface Measured {
  readonly wall: number;
  readonly cpu: number;
}

/** One step's output through the real path: MiB per wall-clock second and per CPU-second. */
async function throughput(
  dir: string,
  file: string,
  secrets: readonly string[],
  round: number,
): Promise<Measured> {
  const storeDir = mkdtempSync(join(dir, `store-${round}-${secrets.length}-`));
  const store = Store.open(join(storeDir, 'state.db'));
  try {
    const runId = `rbench${round}x${secrets.length}`;
    store.runs.createRun(
      { runId, workflowId: 'bench', inputs: {}, steps: [{ id: 'out', kind: 'run' }] },
      {
        type: 'run.queued',
      },
    );
    const budget = outputTextBudget(store.gateway.maxFrame());
    const masker = new StepOutputMasker(new MaskPatterns(secrets), (chunk) => {
      const pieces = splitTextToFit(chunk.text, budget);
      store.runs.appendEvents(
        runId,
        pieces.map((text) => ({ type: 'step.output', data: { step_id: 'out', stream: chunk.stream, text } })),
      );
    });
    const started = performance.now();
    const cpuBefore = process.cpuUsage();
    const step = startStepProcess({
      command: `cat '${file}'`,
      cwd: dir,
      env: process.env,
      timeoutMs: null,
      killGraceMs: 1000,
      onOutput: (chunk) => masker.push(chunk),
      output: { maxBytesPerStep: 2 * OUTPUT_BYTES, maxBytesPerSecond: 1024 * 1024 * 1024 },
    });
    const outcome = await step.done;
    masker.end();
    const seconds = (performance.now() - started) / 1000;
    const cpu = process.cpuUsage(cpuBefore);
    if (outcome.kind !== 'exited' || outcome.exitCode !== 0)
      throw new Error(`bench step: ${JSON.stringify(outcome)}`);
    const mib = OUTPUT_BYTES / (1024 * 1024);
    return { wall: mib / seconds, cpu: mib / ((cpu.user + cpu.system) / 1e6) };
  } finally {
    store.close();
    rmSync(storeDir, { recursive: true, force: true });
  }
}

function maskerAlone(text: string, secrets: readonly string[]): number {
  const patterns = new MaskPatterns(secrets);
  const piece = 64 * 1024;
  let best = 0;
  for (let run = 0; run < 3; run++) {
    const stream = patterns.stream();
    const started = performance.now();
    for (let at = 0; at < text.length; at += piece) stream.push(text.slice(at, at + piece));
    stream.end();
    best = Math.max(best, text.length / (1024 * 1024) / ((performance.now() - started) / 1000));
  }
  return best;
}

export async function maskingBench(): Promise<MaskingResults> {
  const dir = mkdtempSync(join(tmpdir(), 'cdb-mask-'));
  try {
    const secrets = makeSecrets();
    const text = makeOutput(secrets);
    const file = join(dir, 'output.log');
    writeFileSync(file, text);
    // Check the masker masks what the file holds before timing it.
    if (new MaskPatterns(secrets).mask(text).includes(secrets[0] ?? '')) throw new Error('masking failed');
    await throughput(dir, file, [], -1); // warm-up
    const none: Measured[] = [];
    const masked: Measured[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 === 0 ? [[], secrets] : [secrets, []];
      for (const set of order)
        (set.length === 0 ? none : masked).push(await throughput(dir, file, set, round));
    }
    const costOf = (a: number, b: number) => Math.round((1 - a / b) * 1000) / 1000;
    const perRound = none.map((value, i) => costOf(masked[i]?.cpu ?? 0, value.cpu));
    const wallPerRound = none.map((value, i) => costOf(masked[i]?.wall ?? 0, value.wall));
    const cost = summarize(perRound).median;
    return {
      secrets: SECRETS,
      output_mib: OUTPUT_BYTES / (1024 * 1024),
      rounds: ROUNDS,
      none_mib_s: round1(summarize(none.map((m) => m.wall)).median),
      masked_mib_s: round1(summarize(masked.map((m) => m.wall)).median),
      none_mib_per_cpu_s: round1(summarize(none.map((m) => m.cpu)).median),
      masked_mib_per_cpu_s: round1(summarize(masked.map((m) => m.cpu)).median),
      cost,
      cost_per_round: perRound,
      wall_cost: summarize(wallPerRound).median,
      masker_alone_mib_s: round1(maskerAlone(text, secrets)),
      goals: { masking_cost: { goal: `< ${GOAL_COST * 100} %`, value: cost, met: cost < GOAL_COST } },
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function printMasking(results: MaskingResults, verdict: (met: boolean) => string): void {
  const pct = (value: number) => `${(value * 100).toFixed(1)} %`;
  console.log(
    `\n11. Masking secrets in step output: ${results.output_mib} MiB through step process → masker → store, N=${results.rounds} rounds, medians`,
  );
  console.log(`  ${''.padEnd(34)}${'wall MiB/s'.padStart(12)}${'MiB/CPU-s'.padStart(12)}`);
  console.log(
    `  ${'no secrets'.padEnd(34)}${String(results.none_mib_s).padStart(12)}${String(results.none_mib_per_cpu_s).padStart(12)}`,
  );
  console.log(
    `  ${`${results.secrets} secrets`.padEnd(34)}${String(results.masked_mib_s).padStart(12)}${String(results.masked_mib_per_cpu_s).padStart(12)}`,
  );
  const goal = results.goals.masking_cost;
  console.log(
    `  ${'cost, CPU time (per round)'.padEnd(34)}${pct(results.cost).padStart(12)}  goal ${goal.goal}  ${verdict(goal.met)}`,
  );
  console.log(`  ${'cost, wall clock (informational)'.padEnd(34)}${pct(results.wall_cost).padStart(12)}`);
  console.log(
    `  ${'the masker alone (informational)'.padEnd(34)}${`${results.masker_alone_mib_s} MiB/s`.padStart(12)}`,
  );
}
