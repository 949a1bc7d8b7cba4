/**
 * What a step's process reports: the shapes the run machine decides on and the executor produces.
 * Types only.
 */
export type StepOutcome =
  | { kind: 'exited'; exitCode: number }
  | { kind: 'signalled'; signal: string }
  | { kind: 'timed_out'; timeoutMs: number }
  | { kind: 'cancelled'; reason: string }
  | { kind: 'spawn_failed'; message: string };

export interface OutputChunk {
  readonly stream: 'stdout' | 'stderr';
  readonly text: string;
  readonly truncated?: true;
}
