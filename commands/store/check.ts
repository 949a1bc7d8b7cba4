import * as Flags from '@oclif/core/flags';
import { DaemonCommand } from '../../src/cli/base-command.js';
import { targetProject } from '../../src/cli/daemon-client.js';
import { formatBytes } from '../../src/cli/format.js';
import { checkStore, type StoreCheckReport } from '../../src/store/check.js';

export default class StoreCheck extends DaemonCommand {
  static override summary = 'Check the integrity of the daemon store.';
  static override description =
    `Runs SQLite's quick_check on .charter/daemon/state.db (with --full, integrity_check, which also compares every index with its table), whether or not the daemon runs: it reads beside a running daemon.
Also checks that the store belongs to the daemon identity.json names.
Exits 0 when the store is sound, 1 when it is damaged (the problems are listed, and the next step: charter-daemon store recover).`;
  static override examples = ['<%= config.bin %> store check', '<%= config.bin %> store check --full --json'];
  static override enableJsonFlag = true;
  static override flags = {
    full: Flags.boolean({
      description: 'integrity_check instead of quick_check (slower, also checks indexes).',
    }),
  };

  async run(): Promise<StoreCheckReport | undefined> {
    const { flags } = await this.parse(StoreCheck);
    const target = targetProject(flags['project-path']);
    const report = checkStore(target.paths.storePath, target.paths.identityPath, flags.full);
    if (!report.ok) process.exitCode = 1;
    if (this.jsonEnabled()) return report;
    const size = `${formatBytes(report.size_bytes)} + ${formatBytes(report.wal_bytes)} WAL`;
    if (report.ok) {
      this.log(`store ${report.store_path}: ok (${report.check}, ${size}, ${report.duration_ms} ms)`);
    } else {
      this.log(`store ${report.store_path}: DAMAGED (${report.check}, ${size})`);
      for (const problem of report.problems) this.log(`  - ${problem}`);
      this.log('  next: stop the daemon if it runs, then `charter-daemon store recover`');
    }
    this.log(
      `  schema:    ${report.schema_version ?? 'unreadable'} (this charter-daemon knows up to ${report.latest_schema_version})`,
    );
    this.log(`  daemon id: ${report.daemon_id ?? 'unreadable'}`);
    return undefined;
  }
}
