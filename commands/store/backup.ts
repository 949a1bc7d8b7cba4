import { resolve } from 'node:path';
import { Args } from '@oclif/core';
import { DaemonCommand } from '../../src/cli/base-command.js';
import { connectToDaemon, targetProject } from '../../src/cli/daemon-client.js';
import { formatBytes } from '../../src/cli/format.js';
import { hasCode } from '../../src/errors/charter-error.js';
import type { StoreBackupResult } from '../../src/protocol/control.js';

export default class StoreBackup extends DaemonCommand {
  static override summary = 'Write a consistent copy of the daemon store to FILE (mode 0600).';
  static override description =
    `While the daemon runs, it makes the copy itself with SQLite's online backup API: runs go on meanwhile, and the copy is one committed state of the store. When no daemon runs, the copy is read from the store file directly.
FILE must not exist. Restore: stop the daemon, copy FILE to .charter/daemon/state.db (removing state.db-wal and state.db-shm), start it (see docs/operations.md, Backup and restore).`;
  static override examples = ['<%= config.bin %> store backup /backups/site-$(date +%F).db'];
  static override enableJsonFlag = true;
  static override args = {
    file: Args.string({ description: 'Where to write the copy (a new file).', required: true }),
  };

  async run(): Promise<StoreBackupResult | undefined> {
    const { args, flags } = await this.parse(StoreBackup);
    const target = targetProject(flags['project-path']);
    const path = resolve(args.file);
    let result: StoreBackupResult;
    try {
      const client = await connectToDaemon(target, this.warnUser);
      try {
        result = await client.backupStore({ path }, { timeoutMs: 30 * 60_000 });
      } finally {
        client.close();
      }
    } catch (error) {
      if (!hasCode(error, 'DAEMON_NOT_RUNNING')) throw error;
      const { backupStoppedStore } = await import('../../src/store/offline-backup.js');
      result = await backupStoppedStore(target.paths.storePath, path);
    }
    if (this.jsonEnabled()) return result;
    this.log(
      `store copied to ${result.path} (${formatBytes(result.bytes)}, seq up to ${result.last_seq}, ${result.online ? 'online, from the running daemon' : 'the daemon was not running'}, ${result.duration_ms} ms)`,
    );
    return undefined;
  }
}
