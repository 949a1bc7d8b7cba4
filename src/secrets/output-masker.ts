/**
 * Masks a step's output before anything else sees it (the run actor, the store, `logs`, the
 * gateway, the inspector): one {@link StreamMasker} per stream, so a secret written in two
 * pieces, or cut between two output chunks, is masked like one written at once. A tail held
 * back is emitted with the next output of its stream, before a truncation marker, or at the end.
 */
import type { OutputChunk } from '../protocol/steps.js';
import type { MaskPatterns, StreamMasker } from './masker.js';

export class StepOutputMasker {
  readonly #emit: (chunk: OutputChunk) => void;
  readonly #streams: Record<OutputChunk['stream'], StreamMasker> | null;

  constructor(patterns: MaskPatterns, emit: (chunk: OutputChunk) => void) {
    this.#emit = emit;
    this.#streams = patterns.empty ? null : { stdout: patterns.stream(), stderr: patterns.stream() };
  }

  push(chunk: OutputChunk): void {
    const streams = this.#streams;
    if (streams === null) {
      this.#emit(chunk);
      return;
    }
    if (chunk.truncated) {
      // Nothing follows a truncation marker: what is held goes out before it.
      this.end();
      this.#emit(chunk);
      return;
    }
    const text = streams[chunk.stream].push(chunk.text);
    if (text !== '') this.#emit({ stream: chunk.stream, text });
  }

  /** Emits whatever is still held (the step has ended). */
  end(): void {
    if (this.#streams === null) return;
    for (const stream of ['stdout', 'stderr'] as const) {
      const text = this.#streams[stream].end();
      if (text !== '') this.#emit({ stream, text });
    }
  }
}
