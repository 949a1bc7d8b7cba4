/**
 * Store health on real files: a damaged store refused at open (STORE_CORRUPT), salvaged by
 * recoverStore keeping the identity and the seq high-water mark; identity.json making a lost
 * store loud (STORE_MISSING) and keeping seq from going backwards after a restore; migrations
 * from the committed fixture of every earlier schema version, and store recover of each; a newer
 * store refused.
 */
import {
  closeSync,
  copyFileSync,
  existsSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CharterError } from '../../src/errors/charter-error.js';
import { checkStore } from '../../src/store/check.js';
import { readIdentity } from '../../src/store/identity.js';
import { latestSchemaVersion } from '../../src/store/migrations.js';
import { recoverStore } from '../../src/store/salvage.js';
import { Store } from '../../src/store/store.js';
import { repoRoot } from '../support/cli.js';

let dir: string;
let dbPath: string;
let identityPath: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'charter-health-'));
  dbPath = join(dir, 'state.db');
  identityPath = join(dir, 'identity.json');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    if (error instanceof CharterError) return error.code;
    throw error;
  }
  throw new Error('expected a CharterError');
}

/** A store with `runs` finished runs with output, closed cleanly; returns its id and last seq. */
function filledStore(runs: number): { daemonId: string; lastSeq: number } {
  const store = Store.open(dbPath, { identityPath });
  for (let i = 0; i < runs; i++) {
    const id = `r01FILL${String(i).padStart(20, '0')}`;
    store.runs.createRun(
      { runId: id, workflowId: 'w', inputs: { i }, steps: [{ id: 's', kind: 'run' }] },
      {
        type: 'run.queued',
      },
    );
    store.runs.appendEvents(id, [{ type: 'step.output', data: { text: `line ${i}\n`.repeat(30) } }]);
    store.runs.record(id, { state: 'succeeded', finishedAt: new Date().toISOString() }, [
      { type: 'run.succeeded' },
    ]);
  }
  const facts = { daemonId: store.daemonId, lastSeq: store.lastSeq() };
  store.close();
  return facts;
}

function garbageInTheMiddle(path: string, bytes = 16 * 1024): void {
  const offset = Math.floor(statSync(path).size / 2 / 4096) * 4096;
  const fd = openSync(path, 'r+');
  try {
    writeSync(fd, Buffer.alloc(bytes, 0x5a), 0, bytes, offset);
  } finally {
    closeSync(fd);
  }
}

describe('a damaged store', () => {
  it('is refused at open with STORE_CORRUPT naming the file, and store check says so', () => {
    filledStore(300);
    garbageInTheMiddle(dbPath);
    expect(codeOf(() => Store.open(dbPath, { identityPath }))).toBe('STORE_CORRUPT');
    const report = checkStore(dbPath, identityPath, false);
    expect(report.ok).toBe(false);
    expect(report.problems.length).toBeGreaterThan(0);
    expect(checkStore(dbPath, identityPath, true).ok).toBe(false);
  });

  it('gets the light check only while unchanged since a clean close', () => {
    filledStore(5);
    const reopened = Store.open(dbPath, { identityPath });
    expect(reopened.openReport.check).toBe('light');
    reopened.close();
    // Touched by someone else since: the full check.
    writeFileSync(identityPath, JSON.stringify({ ...readIdentity(identityPath), closed_store: null }));
    const checked = Store.open(dbPath, { identityPath });
    expect(checked.openReport.check).toBe('full');
    checked.close();
    expect(checkStore(dbPath, identityPath, true)).toMatchObject({ ok: true, problems: [] });
  });

  it('store recover keeps the damaged file aside, salvages the rest, keeps the identity and the seq', () => {
    const { daemonId, lastSeq } = filledStore(300);
    garbageInTheMiddle(dbPath);

    const report = recoverStore(dbPath, identityPath);

    expect(report.moved_to).not.toBeNull();
    expect(existsSync(report.moved_to as string)).toBe(true);
    expect(report).toMatchObject({ daemon_id: daemonId });
    expect(report.seq_high_water).toBeGreaterThanOrEqual(lastSeq);
    const { runs, journal } = report.tables;
    expect(runs.salvaged + journal.salvaged).toBeGreaterThan(0);
    // Something was lost, and said so.
    expect(runs.lost + journal.lost + report.tables.steps.lost).toBeGreaterThan(0);

    const store = Store.open(dbPath, { identityPath });
    try {
      expect(store.daemonId).toBe(daemonId);
      expect(store.append({ type: 'after.recover' }).seq).toBeGreaterThan(lastSeq);
    } finally {
      store.close();
    }
    expect(checkStore(dbPath, identityPath, true).ok).toBe(true);
  });

  it('store recover ends wherever the damage lands, and leaves a store that opens and passes the full check', () => {
    // Damage at every page in turn: some pages leave a row's rowid readable but not its columns
    // (an overflow page, a cell), which once made the salvage read the same row forever.
    filledStore(120);
    const clean = readFileSync(dbPath);
    const pages = Math.floor(clean.length / 4096);
    for (let page = 1; page < pages; page++) {
      rmSync(`${dbPath}-wal`, { force: true });
      rmSync(`${dbPath}-shm`, { force: true });
      const damaged = Buffer.from(clean);
      damaged.fill(0x5a, page * 4096, Math.min(damaged.length, page * 4096 + 16 * 1024));
      writeFileSync(dbPath, damaged);
      const report = recoverStore(dbPath, identityPath);
      expect(report.daemon_id, `damage at page ${page}`).toBeTruthy();
      expect(checkStore(dbPath, identityPath, true).ok, `damage at page ${page}`).toBe(true);
      if (report.moved_to !== null) rmSync(report.moved_to, { force: true });
    }
  }, 60_000);

  it('store recover without a readable daemon id in the file takes it from identity.json', () => {
    const { daemonId, lastSeq } = filledStore(3);
    writeFileSync(dbPath, Buffer.alloc(64 * 1024, 0x00));
    const report = recoverStore(dbPath, identityPath);
    expect(report).toMatchObject({ daemon_id: daemonId, daemon_id_source: 'identity' });
    expect(report.seq_high_water).toBe(lastSeq);
  });
});

describe('identity.json', () => {
  it('refuses a missing or emptied store of a known identity, unless told to start afresh', () => {
    const { daemonId, lastSeq } = filledStore(2);
    rmSync(dbPath);
    expect(codeOf(() => Store.open(dbPath, { identityPath }))).toBe('STORE_MISSING');
    writeFileSync(dbPath, '');
    expect(codeOf(() => Store.open(dbPath, { identityPath }))).toBe('STORE_MISSING');

    const fresh = Store.open(dbPath, { identityPath, freshStore: true });
    try {
      expect(fresh.daemonId).toBe(daemonId);
      expect(fresh.runs.counts().succeeded).toBe(0);
      expect(fresh.append({ type: 'x' }).seq).toBe(lastSeq + 1);
    } finally {
      fresh.close();
    }
  });

  it('refuses a blank database put in place of a known store', () => {
    filledStore(1);
    rmSync(dbPath);
    new Database(dbPath).exec('CREATE TABLE t (x)');
    expect(codeOf(() => Store.open(dbPath, { identityPath }))).toBe('STORE_MISSING');
  });

  it('a restored older backup never hands out a seq again', async () => {
    const store = Store.open(dbPath, { identityPath });
    store.append({ type: 'one' });
    await store.backup(join(dir, 'backup.db'));
    for (let i = 0; i < 9; i++) store.append({ type: 'more' });
    store.close();
    expect(statSync(join(dir, 'backup.db')).mode & 0o777).toBe(0o600);

    copyFileSync(join(dir, 'backup.db'), dbPath);
    const restored = Store.open(dbPath, { identityPath });
    try {
      expect(restored.openReport.seqRaisedTo).toBe(10);
      expect(restored.lastSeq()).toBe(1);
      expect(restored.append({ type: 'after' }).seq).toBe(11);
    } finally {
      restored.close();
    }
  });
});

describe('upgrades', () => {
  const fixtures = readdirSync(join(repoRoot, 'test/fixtures/store')).filter((f) => /^v\d+\.db$/.test(f));

  it('there is a fixture for every schema version from 3 on', () => {
    for (let version = 3; version <= latestSchemaVersion; version++)
      expect(fixtures).toContain(`v${version}.db`);
  });

  it.each(fixtures)('opens the store of fixture %s with every row intact', (fixture) => {
    copyFileSync(join(repoRoot, 'test/fixtures/store', fixture), dbPath);
    const raw = new Database(dbPath, { readonly: true });
    const journal = raw.prepare('SELECT * FROM journal ORDER BY seq').all();
    const runs = raw.prepare('SELECT * FROM runs ORDER BY run_id').all();
    const steps = raw.prepare('SELECT * FROM steps ORDER BY run_id, idx').all();
    const inbox = raw.prepare('SELECT * FROM inbox ORDER BY dseq').all();
    const id = raw
      .prepare<[], { value: string }>("SELECT value FROM meta WHERE key = 'daemon_id'")
      .get()?.value;
    raw.close();

    const store = Store.open(dbPath);
    try {
      expect(store.schemaVersion()).toBe(latestSchemaVersion);
      expect(store.daemonId).toBe(id);
      expect(store.readJournal({ limit: 10_000 }).length).toBe(journal.length);
      expect(store.runs.counts()).toMatchObject({ succeeded: 1, failed: 1, waiting: 1 });
      expect(store.gateway.upAcked()).toBe(5);
      expect(store.gateway.pendingCommands().map((c) => c.cmdId)).toEqual(['cmd-2']);
    } finally {
      store.close();
    }
    const after = new Database(dbPath, { readonly: true });
    try {
      expect(after.prepare('SELECT * FROM journal ORDER BY seq').all()).toEqual(journal);
      expect(after.prepare('SELECT * FROM runs ORDER BY run_id').all()).toEqual(runs);
      // Columns added by later migrations hold their defaults; every column the fixture had is intact.
      expectStepsKept(after, steps);
      expect(after.prepare('SELECT * FROM inbox ORDER BY dseq').all()).toEqual(inbox);
      // Pruning can give space back.
      expect(after.pragma('auto_vacuum', { simple: true })).toBe(2);
    } finally {
      after.close();
    }
  });

  it.each(fixtures)('store recover salvages the store of fixture %s with every step column', (fixture) => {
    copyFileSync(join(repoRoot, 'test/fixtures/store', fixture), dbPath);
    const raw = new Database(dbPath, { readonly: true });
    const steps = raw.prepare('SELECT * FROM steps ORDER BY run_id, idx').all() as Record<string, unknown>[];
    const runs = raw.prepare('SELECT * FROM runs ORDER BY run_id').all();
    raw.close();

    const report = recoverStore(dbPath, identityPath);
    expect(report.tables.steps).toMatchObject({ salvaged: steps.length, lost: 0 });
    expect(report.tables.runs).toMatchObject({ salvaged: runs.length, lost: 0 });
    const after = new Database(dbPath, { readonly: true });
    try {
      expect(after.pragma('user_version', { simple: true })).toBe(latestSchemaVersion);
      expect(after.prepare('SELECT * FROM runs ORDER BY run_id').all()).toEqual(runs);
      // Outputs, due times and earlier attempts are kept; a store from before them gets the defaults.
      expectStepsKept(after, steps);
    } finally {
      after.close();
    }
  });

  it('an older release refuses a newer store with STORE_TOO_NEW', () => {
    copyFileSync(join(repoRoot, 'test/fixtures/store', `v${latestSchemaVersion}.db`), dbPath);
    const raw = new Database(dbPath);
    raw.pragma(`user_version = ${latestSchemaVersion + 1}`);
    raw.close();
    expect(codeOf(() => Store.open(dbPath))).toBe('STORE_TOO_NEW');
  });
});

/** The steps columns later migrations added, with the value a row from before them gets. */
const ADDED_STEP_COLUMNS: Readonly<Record<string, unknown>> = {
  retry_at: null, // migration 5
  attempts: '[]', // migration 5
  outputs: null, // migration 6
};

/** `row` with only the keys `like` has. */
function pick(row: Record<string, unknown>, like: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.keys(like).map((key) => [key, row[key]]));
}

/**
 * The steps of `after` are `before` with every column `before` had unchanged, and each column a
 * later migration added (absent from `before`) at its default.
 */
function expectStepsKept(after: Database.Database, before: readonly unknown[]): void {
  const stepsAfter = after.prepare('SELECT * FROM steps ORDER BY run_id, idx').all() as Record<
    string,
    unknown
  >[];
  const had = before[0] as Record<string, unknown>;
  expect(stepsAfter.map((row) => pick(row, had))).toEqual(before);
  const added = Object.entries(ADDED_STEP_COLUMNS).filter(([column]) => !(column in had));
  for (const row of stepsAfter) expect(row).toMatchObject(Object.fromEntries(added));
}
