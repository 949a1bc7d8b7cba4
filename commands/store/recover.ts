import { DaemonCommand } from '../../src/cli/base-command.js';
import { targetProject } from '../../src/cli/daemon-client.js';
import { ProjectLock } from '../../src/daemon/lock.js';
import { prepareStateDirs } from '../../src/daemon/state-dir.js';
import { CharterError } from '../../src/errors/charter-error.js';
import { type RecoverReport, recoverStore } from '../../src/store/salvage.js';

export default class StoreRecover extends DaemonCommand {
  static override summary = 'Salvage a damaged daemon store into a fresh one.';
  static override description =
    `Moves .charter/daemon/state.db aside (kept as state.db.damaged-<time>, with its WAL), copies every row SQLite can still read into a fresh store, and reports what was lost.
The daemon identity and the seq high-water mark are kept (from the damaged store, else identity.json), so the gateway never sees seq go backwards or a new daemon id.
The daemon must be stopped (the command takes the project lock). Exits 0 once the fresh store is in place: then run charter-daemon start.`;
  static override examples = ['<%= config.bin %> store recover', '<%= config.bin %> store recover --json'];
  static override enableJsonFlag = true;

  async run(): Promise<RecoverReport | undefined> {
    const { flags } = await this.parse(StoreRecover);
    const target = targetProject(flags['project-path']);
    prepareStateDirs(target.paths);
    const lock = ProjectLock.tryAcquire(target.paths.lockPath);
    if (lock === undefined) {
      throw new CharterError(
        'STORE_IN_USE',
        `a daemon holds the lock of ${target.projectRoot}: not recovering its store`,
      );
    }
    let report: RecoverReport;
    try {
      report = recoverStore(target.paths.storePath, target.paths.identityPath);
    } finally {
      lock.release();
    }
    if (this.jsonEnabled()) return report;
    this.log(`store recovered: ${report.store_path}`);
    this.log(`  damaged copy kept: ${report.moved_to ?? '(there was no store file)'}`);
    this.log(`  daemon id:         ${report.daemon_id} (from ${report.daemon_id_source})`);
    this.log(`  seq high-water:    ${report.seq_high_water}`);
    for (const [name, table] of Object.entries(report.tables)) {
      const ranges =
        table.unreadable.length === 0 ? '' : `; unreadable rowids ${table.unreadable.join(', ')}`;
      this.log(`  ${`${name}:`.padEnd(18)} ${table.salvaged} salvaged, ${table.lost} lost${ranges}`);
    }
    if (report.runs_without_row > 0) {
      this.log(`  ${report.runs_without_row} run(s) lost their row; their events were kept`);
    }
    if (report.daemon_id_source === 'new') {
      this.warnUser(
        'neither the store nor identity.json had a readable daemon id: the gateway will see a new daemon',
      );
    }
    this.log('next: charter-daemon start');
    return undefined;
  }
}
