import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CharterError } from '../../src/errors/charter-error.js';
import { latestSchemaVersion, migrations } from '../../src/store/migrations.js';
import { Store } from '../../src/store/store.js';

let dir: string;
let dbPath: string;
const opened: Store[] = [];

function open(): Store {
  const store = Store.open(dbPath);
  opened.push(store);
  return store;
}

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected the call to throw');
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'charter-store-'));
  dbPath = join(dir, 'state.db');
});

afterEach(() => {
  for (const store of opened.splice(0)) store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('migrations', () => {
  it('are numbered 1, 2, 3… in order', () => {
    expect(migrations.map((m) => m.version)).toEqual(migrations.map((_, i) => i + 1));
    expect(latestSchemaVersion).toBe(migrations.length);
  });
});

describe('Store.open', () => {
  it('creates the schema at the latest version, in WAL mode, with a private file', () => {
    const store = open();
    expect(store.schemaVersion()).toBe(latestSchemaVersion);
    expect(store.path).toBe(dbPath);
    expect(statSync(dbPath).mode & 0o777).toBe(0o600);
    store.append({ type: 'x' });
    // SQLite copies the database's mode to the WAL it creates.
    expect(statSync(`${dbPath}-wal`).mode & 0o777).toBe(0o600);

    const raw = new Database(dbPath, { readonly: true });
    try {
      expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
      const tables = raw
        .prepare<[], { name: string }>("SELECT name FROM sqlite_master WHERE type IN ('table', 'trigger')")
        .all()
        .map((r) => r.name);
      expect(tables).toEqual(
        expect.arrayContaining(['meta', 'journal', 'journal_no_update', 'journal_no_delete']),
      );
    } finally {
      raw.close();
    }
  });

  it('keeps the daemon id across close and reopen', () => {
    const first = open();
    const id = first.daemonId;
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    first.close();
    first.close(); // idempotent
    expect(open().daemonId).toBe(id);
  });

  it('increments the epoch across reopens', () => {
    const epochs: number[] = [];
    for (let i = 0; i < 3; i++) {
      const store = Store.open(dbPath);
      epochs.push(store.beginEpoch());
      store.close();
    }
    expect(epochs).toEqual([1, 2, 3]);
  });

  it('refuses a store written by a newer schema with STORE_TOO_NEW', () => {
    const raw = new Database(dbPath);
    raw.pragma('user_version = 999');
    raw.close();
    const error = thrown(() => Store.open(dbPath));
    expect(error).toBeInstanceOf(CharterError);
    expect((error as CharterError).code).toBe('STORE_TOO_NEW');
    expect((error as CharterError).message).toContain('999');
    expect((error as CharterError).message).toContain(String(latestSchemaVersion));
  });

  it('reports a file that is not a database as STORE_CORRUPT naming the path', () => {
    writeFileSync(dbPath, Buffer.alloc(8192, 0xab));
    const error = thrown(() => Store.open(dbPath));
    expect(error).toBeInstanceOf(CharterError);
    expect((error as CharterError).code).toBe('STORE_CORRUPT');
    expect((error as CharterError).message).toContain(dbPath);
  });

  it('reports a missing directory as STORE_FAILED', () => {
    const error = thrown(() => Store.open(join(dir, 'missing', 'state.db')));
    expect((error as CharterError).code).toBe('STORE_FAILED');
  });
});

describe('journal', () => {
  it('appends with strictly increasing, gap-free seqs and reads them back', () => {
    const store = open();
    expect(store.lastSeq()).toBe(0);
    const ts = new Date('2026-11-02T10:00:00.000Z');
    const first = store.append({ type: 'daemon.started', ts });
    expect(first).toEqual({
      seq: 1,
      ts: ts.toISOString(),
      run_id: null,
      run_seq: null,
      type: 'daemon.started',
      data: {},
    });
    const seqs = [first.seq];
    for (let i = 0; i < 20; i++) {
      seqs.push(store.append({ type: 'run.event', runId: 'r1', runSeq: i, data: { i } }).seq);
    }
    expect(seqs).toEqual(Array.from({ length: 21 }, (_, i) => i + 1));
    expect(store.lastSeq()).toBe(21);

    const read = store.readJournal({ afterSeq: 5, limit: 3 });
    expect(read.map((e) => e.seq)).toEqual([6, 7, 8]);
    expect(read[0]).toMatchObject({ run_id: 'r1', run_seq: 4, type: 'run.event', data: { i: 4 } });
    expect(store.readJournal({ type: 'daemon.started' })).toEqual([first]);
    expect(store.readJournal({})).toHaveLength(21);
  });

  it('returns the entry as stored', () => {
    const store = open();
    const entry = store.append({
      type: 't',
      data: { at: new Date('2026-01-01T00:00:00Z'), gone: undefined },
    });
    expect(entry.data).toEqual({ at: '2026-01-01T00:00:00.000Z' });
    expect(store.readJournal({})[0]).toEqual(entry);
  });

  it('caps the read limit', () => {
    const store = open();
    store.appendMany(Array.from({ length: 10_050 }, () => ({ type: 't' })));
    expect(store.readJournal({})).toHaveLength(1000);
    expect(store.readJournal({ limit: 50_000 })).toHaveLength(10_000);
    expect(store.readJournal({ limit: -1 })).toHaveLength(0);
  });

  it('finds the newest entry of the given types', () => {
    const store = open();
    store.append({ type: 'daemon.started' });
    const stopped = store.append({ type: 'daemon.stopped' });
    store.append({ type: 'run.event' });
    expect(store.lastOfTypes(['daemon.started', 'daemon.stopped'])).toEqual(stopped);
    expect(store.lastOfTypes(['nope'])).toBeUndefined();
    expect(store.lastOfTypes([])).toBeUndefined();
  });

  it('stores a batch all or nothing', () => {
    const store = open();
    store.append({ type: 'before' });
    const batch = store.appendMany([{ type: 'a' }, { type: 'b' }]);
    expect(batch.map((e) => e.seq)).toEqual([2, 3]);

    expect(() => store.appendMany([{ type: 'c' }, { type: 'd', data: { n: 1n } }, { type: 'e' }])).toThrow(
      TypeError,
    );
    expect(store.lastSeq()).toBe(3);
    expect(store.readJournal({}).map((e) => e.type)).toEqual(['before', 'a', 'b']);
    // The rolled-back batch consumed no seqs.
    expect(store.append({ type: 'after' }).seq).toBe(4);
  });

  it('refuses UPDATE and DELETE on the journal', () => {
    const store = open();
    store.append({ type: 't' });
    store.close();
    const raw = new Database(dbPath);
    try {
      expect(() => raw.prepare("UPDATE journal SET type = 'x'").run()).toThrow('journal is append-only');
      expect(() => raw.prepare('DELETE FROM journal').run()).toThrow('journal is append-only');
    } finally {
      raw.close();
    }
  });

  it('never reuses a seq, even after the newest row is deleted', () => {
    const store = open();
    store.appendMany([{ type: 'a' }, { type: 'b' }, { type: 'c' }]);
    store.close();
    const raw = new Database(dbPath);
    raw.exec('DROP TRIGGER journal_no_delete; DELETE FROM journal WHERE seq = 3;');
    raw.close();

    const reopened = open();
    expect(reopened.lastSeq()).toBe(2);
    expect(reopened.append({ type: 'd' }).seq).toBe(4);
  });
});

describe('durability', () => {
  it('keeps every committed row when the writer is killed with SIGKILL', async () => {
    open().close(); // the schema, created by the Store
    const betterSqlite = createRequire(import.meta.url).resolve('better-sqlite3');
    // Same pragmas as Store; one transaction per row, like Store.append.
    const script = `
      const Database = require(${JSON.stringify(betterSqlite)});
      const db = new Database(${JSON.stringify(dbPath)});
      db.pragma('busy_timeout = 5000');
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      const insert = db.prepare("INSERT INTO journal (ts, type, data) VALUES (?, 'child', '{}')");
      const appendOne = db.transaction(() => insert.run(new Date().toISOString()));
      for (let i = 0; i < 1000; i++) appendOne();
      process.stdout.write('done\\n');
      setInterval(() => {}, 1000);
    `;
    const child = spawn(process.execPath, ['--input-type=commonjs', '-e', script], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const exited = new Promise<NodeJS.Signals | null>((resolve) =>
      child.on('exit', (_code, signal) => resolve(signal)),
    );
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (chunk: Buffer) => {
        if (chunk.toString().includes('done')) resolve();
      });
      child.on('exit', (code) => reject(new Error(`child exited early (${code}): ${stderr}`)));
    });
    child.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');

    const store = open();
    expect(store.lastSeq()).toBe(1000);
    expect(store.readJournal({ type: 'child', limit: 10_000 })).toHaveLength(1000);
  });
});
