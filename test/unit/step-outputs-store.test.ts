/**
 * Step outputs in the store: recorded on the step row with its checkpoint, passed on only by
 * succeeded steps before the current one, secrets sealed at rest and `***` on the wire, opened
 * for a later step bound to their place; a retried attempt's kept in the step's history and
 * never passed on; kept by `store recover`, also from a store that predates them.
 */
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openOutputs, outputAad } from '../../src/secrets/seal-values.js';
import { SecretBox } from '../../src/secrets/secret-box.js';
import { recoverStore } from '../../src/store/salvage.js';
import { Store } from '../../src/store/store.js';
import { repoRoot } from '../support/cli.js';

let dir: string;
let dbPath: string;
let identityPath: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'outputs-store-'));
  dbPath = join(dir, 'state.db');
  identityPath = join(dir, 'identity.json');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const RUN = 'r01OUTPUTS0000000000000000A';
const steps = [
  { id: 'build', kind: 'run' as const },
  { id: 'lint', kind: 'run' as const },
  { id: 'hold', kind: 'gate' as const },
  { id: 'publish', kind: 'run' as const },
];

describe('step outputs in the store', () => {
  it('only succeeded steps before the current one pass theirs on; a new attempt clears its own', () => {
    const box = new SecretBox(join(dir, 'secrets.key'));
    const store = Store.open(dbPath, { identityPath });
    try {
      store.runs.createRun({ runId: RUN, workflowId: 'w', inputs: {}, steps }, { type: 'run.queued' });
      const sealed = box.seal('s3cret-token-value', outputAad(RUN, 'build', 'token'));
      store.runs.record(
        RUN,
        {},
        [{ type: 'step.finished' }],
        [
          { idx: 0, state: 'succeeded', outputs: { version: '1.2.3', token: sealed } },
          { idx: 1, state: 'failed', outputs: { why: 'lint errors' } },
        ],
      );
      expect(store.runs.passedOutputs(RUN, 3)).toEqual({ build: { version: '1.2.3', token: sealed } });
      // The step at `before` and after it pass nothing on, whatever they hold.
      expect(store.runs.passedOutputs(RUN, 0)).toEqual({});

      // On the wire: every step has `outputs`, a secret as ***; the failed step's are shown too.
      const shown = store.runs.get(RUN)?.steps.map((step) => step.outputs);
      expect(shown).toEqual([{ version: '1.2.3', token: '***' }, { why: 'lint errors' }, {}, {}]);
      // Not in the store's files (the WAL included), nor anywhere else in its folder.
      for (const name of readdirSync(dir)) {
        expect(readFileSync(join(dir, name)).includes('s3cret-token-value'), name).toBe(false);
      }

      const opened = openOutputs(RUN, store.runs.passedOutputs(RUN, 3), box);
      expect(opened).toEqual({
        values: { build: { version: '1.2.3', token: 's3cret-token-value' } },
        secrets: ['s3cret-token-value'],
      });
      // Bound to its place: the same envelope under another name does not open.
      expect(() => openOutputs(RUN, { build: { other: sealed } }, box)).toThrow(/SECRETS_UNAVAILABLE|secret/);

      store.runs.record(RUN, {}, [{ type: 'step.started' }], [{ idx: 0, state: 'running', outputs: null }]);
      expect(store.runs.passedOutputs(RUN, 3)).toEqual({});
      expect(store.runs.get(RUN)?.steps[0]?.outputs).toEqual({});
    } finally {
      store.close();
    }
  });

  it('a retried attempt keeps its outputs in the step history, sealed, and passes none on', () => {
    const box = new SecretBox(join(dir, 'secrets.key'));
    const store = Store.open(dbPath, { identityPath });
    try {
      store.runs.createRun({ runId: RUN, workflowId: 'w', inputs: {}, steps }, { type: 'run.queued' });
      const start = (attempt: number) =>
        store.runs.record(
          RUN,
          { state: 'running', attempt },
          [{ type: 'step.started' }],
          [
            {
              idx: 0,
              state: 'running',
              attempt,
              startedAt: new Date().toISOString(),
              outputs: null,
              ...(attempt > 1
                ? { archiveAttempt: true, finishedAt: null, exitCode: null, retryAt: null }
                : {}),
            },
          ],
        );
      start(1);
      const sealed = box.seal('first-attempt-token', outputAad(RUN, 'build', 'token'));
      store.runs.record(
        RUN,
        {},
        [{ type: 'step.finished' }, { type: 'step.retrying' }],
        [
          {
            idx: 0,
            state: 'retrying',
            exitCode: 1,
            finishedAt: new Date().toISOString(),
            retryAt: new Date().toISOString(),
            outputs: { version: '1.0.0', token: sealed },
          },
        ],
      );
      expect(store.runs.passedOutputs(RUN, 1)).toEqual({});
      start(2);
      // The new attempt starts with none; the first one's are in its history entry.
      let step = store.runs.get(RUN)?.steps[0];
      expect(step?.outputs).toEqual({});
      expect(step?.attempts?.map((attempt) => attempt.outputs)).toEqual([{ version: '1.0.0', token: '***' }]);
      expect(store.runs.passedOutputs(RUN, 1)).toEqual({});

      store.runs.record(
        RUN,
        { stepIndex: 1, attempt: 1 },
        [{ type: 'step.finished' }],
        [
          {
            idx: 0,
            state: 'succeeded',
            exitCode: 0,
            finishedAt: new Date().toISOString(),
            outputs: { version: '2.0.0' },
          },
        ],
      );
      step = store.runs.get(RUN)?.steps[0];
      expect(step?.outputs).toEqual({ version: '2.0.0' });
      // Only the final, succeeded attempt's outputs are passed on.
      expect(store.runs.passedOutputs(RUN, 1)).toEqual({ build: { version: '2.0.0' } });
      for (const name of readdirSync(dir)) {
        expect(readFileSync(join(dir, name)).includes('first-attempt-token'), name).toBe(false);
      }
    } finally {
      store.close();
    }
  });

  it('store recover keeps them, and salvages a store from before them (schema 4) with none', () => {
    const store = Store.open(dbPath, { identityPath });
    store.runs.createRun({ runId: RUN, workflowId: 'w', inputs: {}, steps }, { type: 'run.queued' });
    store.runs.record(
      RUN,
      {},
      [{ type: 'step.finished' }],
      [{ idx: 0, state: 'succeeded', outputs: { version: '1.2.3' } }],
    );
    store.close();
    recoverStore(dbPath, identityPath);
    const recovered = Store.open(dbPath, { identityPath });
    try {
      expect(recovered.runs.passedOutputs(RUN, 3)).toEqual({ build: { version: '1.2.3' } });
    } finally {
      recovered.close();
    }

    rmSync(dir, { recursive: true, force: true });
    dir = mkdtempSync(join(tmpdir(), 'outputs-store-'));
    dbPath = join(dir, 'state.db');
    identityPath = join(dir, 'identity.json');
    copyFileSync(join(repoRoot, 'test/fixtures/store/v4.db'), dbPath);
    const report = recoverStore(dbPath, identityPath);
    expect(report.tables.steps).toMatchObject({ salvaged: 6, lost: 0 });
    const old = Store.open(dbPath, { identityPath, freshStore: true });
    try {
      const [run] = old.runs.list({ limit: 1, state: 'succeeded' }).runs;
      expect(old.runs.get(run?.run_id ?? '')?.steps.map((step) => step.outputs)).toEqual([{}, {}]);
    } finally {
      old.close();
    }
  });
});
