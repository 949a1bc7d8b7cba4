import * as Flags from '@oclif/core/flags';
import { DaemonCommand } from '../../src/cli/base-command.js';
import { connectToDaemon, targetProject } from '../../src/cli/daemon-client.js';
import { formatBytes } from '../../src/cli/format.js';
import type { PruneReportResult } from '../../src/protocol/control.js';

export default class StorePrune extends DaemonCommand {
  static override summary = 'Prune the store now, by the retention policy of charter.yml.';
  static override description =
    `Asks the running daemon to apply daemon.retention now (it also does so after start and every interval_minutes): finished runs older than max_age_days, beyond max_finished_runs, or while the store is above max_store_mb, oldest first, with their events and runs/<id>/ folders; then the space is given back.
Never pruned: unfinished runs (queued, running, waiting, cancelling), and, with a gateway configured, events it has not acknowledged.
With --dry-run nothing changes: the report says what would go. Prints runs, events and bytes removed.`;
  static override examples = [
    '<%= config.bin %> store prune --dry-run',
    '<%= config.bin %> store prune --json',
  ];
  static override enableJsonFlag = true;
  static override flags = {
    'dry-run': Flags.boolean({ description: 'Report what would be pruned, change nothing.' }),
  };

  async run(): Promise<PruneReportResult | undefined> {
    const { flags } = await this.parse(StorePrune);
    const target = targetProject(flags['project-path']);
    const client = await connectToDaemon(target, this.warnUser);
    let report: PruneReportResult;
    try {
      // A prune of a large store can take minutes; it runs in slices, the daemon keeps serving.
      report = await client.pruneStore({ dry_run: flags['dry-run'] }, { timeoutMs: 30 * 60_000 });
    } finally {
      client.close();
    }
    if (this.jsonEnabled()) return report;
    const verb = report.dry_run ? 'would prune' : 'pruned';
    this.log(
      `${verb} ${report.runs} run(s) and ${report.events} event(s), ${formatBytes(report.bytes_freed)}${report.dry_run ? ' (estimated)' : ''} in ${report.duration_ms} ms`,
    );
    if (!report.dry_run) {
      this.log(`  store: ${formatBytes(report.bytes_before)} → ${formatBytes(report.bytes_after)}`);
    }
    if (report.kept_for_gateway) {
      this.log('  runs the policy would prune are kept until the gateway acknowledges their events');
    }
    if (report.over_budget) this.log(`  still over max_store_mb: ${report.over_budget_reason}`);
    return undefined;
  }
}
