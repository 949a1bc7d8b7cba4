/**
 * One daemon per project, enforced by the kernel: the lock is an SQLite file held in EXCLUSIVE
 * locking mode, i.e. a POSIX advisory lock that the kernel drops the moment the holder dies
 * (kill -9 included). No pid guessing, no staleness timeouts, no window where two holders agree.
 */
import { closeSync, openSync } from 'node:fs';
import Database from 'better-sqlite3';

export class ProjectLock {
  readonly #db: Database.Database;

  private constructor(db: Database.Database) {
    this.#db = db;
  }

  /** The lock, or undefined when another live process holds it. Other failures throw. */
  static tryAcquire(path: string): ProjectLock | undefined {
    // Create it private first: SQLite would create it with the umask's mode.
    closeSync(openSync(path, 'a', 0o600));
    const db = new Database(path, { timeout: 0 });
    try {
      db.pragma('locking_mode = EXCLUSIVE');
      db.exec('CREATE TABLE IF NOT EXISTS holder(pid INTEGER NOT NULL, since TEXT NOT NULL)');
      // The first write in EXCLUSIVE mode takes the exclusive lock and keeps it until close.
      db.transaction(() => {
        db.exec('DELETE FROM holder');
        db.prepare('INSERT INTO holder(pid, since) VALUES (?, ?)').run(process.pid, new Date().toISOString());
      })();
      return new ProjectLock(db);
    } catch (error) {
      db.close();
      if ((error as { code?: string }).code === 'SQLITE_BUSY') return undefined;
      throw error;
    }
  }

  release(): void {
    if (this.#db.open) this.#db.close();
  }
}
