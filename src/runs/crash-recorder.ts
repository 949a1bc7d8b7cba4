/**
 * Records runs whose actor crashed (see the run shard) as failed. The crash is often a failed
 * store write — the disk is full — so recording it can fail too: such runs are kept and
 * recorded again every few seconds until the store takes them, so the record never stays
 * `running` for a run that no longer runs (and followers learn the end as soon as it is stored).
 */
import type { Logger } from 'pino';
import type { CrashedRun } from '../../machines/run-shard.machine.js';
import type { Store } from '../store/store.js';
import { classifyStoreError, type StoreHealth } from '../store/store-health.js';

const RETRY_MS = 2000;

export class CrashRecorder {
  readonly #store: Store;
  readonly #health: StoreHealth;
  readonly #logger: Logger;
  /** Crashed runs not recorded yet, by run id: the reason to record. */
  readonly #unrecorded = new Map<string, { reason: string; error: string }>();
  #timer: NodeJS.Timeout | undefined;

  constructor(store: Store, health: StoreHealth, logger: Logger) {
    this.#store = store;
    this.#health = health;
    this.#logger = logger;
  }

  record(run: CrashedRun): void {
    const diskFull = classifyStoreError(run, this.#store.path).code === 'DISK_FULL';
    const reason = `${diskFull ? 'disk_full' : 'internal_error'}: ${run.message}`;
    this.#logger.error(
      { run: run.runId, error: run.message, code: run.code },
      'a run actor failed: the run is marked failed',
    );
    this.#unrecorded.set(run.runId, { reason, error: run.message });
    this.#flush();
  }

  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #flush(): void {
    for (const [runId, { reason, error }] of this.#unrecorded) {
      try {
        const record = this.#store.runs.getRecord(runId);
        if (record !== undefined && record.finishedAt === null) {
          this.#store.runs.record(
            runId,
            {
              state: 'failed',
              reason,
              finishedAt: new Date().toISOString(),
              currentStep: null,
              waiting: null,
            },
            [{ type: 'run.failed', data: { reason: reason.slice(0, reason.indexOf(':')), error } }],
          );
        }
        this.#unrecorded.delete(runId);
      } catch (err) {
        this.#health.failed(err);
        this.#logger.error({ run: runId, err }, 'could not record the failed run yet: retrying');
        break;
      }
    }
    if (this.#unrecorded.size > 0 && this.#timer === undefined) {
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.#flush();
      }, RETRY_MS);
      this.#timer.unref();
    }
  }
}
