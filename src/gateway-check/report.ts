/**
 * The report of a check run: per clause its id, the section of docs/protocol.md, pass / fail /
 * not observed, and what the kit saw; `ok` only when every clause passed. As JSON for CI
 * (`--json`: `{clauses: [{id, section, ok, status, saw}], ok, …}`) and as a table.
 */
import { renderTable } from '../cli/table.js';
import { CLAUSES, type ClauseResult, type ClauseStatus } from './clauses.js';
import type { CheckOptions } from './session.js';

export interface ReportClause {
  readonly id: string;
  readonly section: string;
  readonly ok: boolean;
  readonly status: ClauseStatus;
  readonly saw: string;
}

export interface CheckReport {
  readonly clauses: ReportClause[];
  readonly ok: boolean;
  readonly gateway: string;
  readonly endpoint: string;
  readonly daemon_id: string;
}

export function reportOf(
  options: CheckOptions,
  daemonId: string,
  results: readonly ClauseResult[],
): CheckReport {
  const clauses = results.map((result) => ({
    id: result.id,
    section: `docs/protocol.md${CLAUSES[result.id].section}`,
    ok: result.status === 'pass',
    status: result.status,
    saw: result.saw,
  }));
  return {
    clauses,
    ok: clauses.length > 0 && clauses.every((clause) => clause.ok),
    gateway: options.url,
    endpoint: options.endpoint,
    daemon_id: daemonId,
  };
}

const STATUS_LABEL: Record<ClauseStatus, string> = {
  pass: 'pass',
  fail: 'FAIL',
  'not-observed': 'NOT OBSERVED',
};

/** The report as lines: a table (clause, section, result, what it saw) and a verdict. */
export function reportLines(report: CheckReport): string[] {
  const header = ['CLAUSE', 'SECTION', 'RESULT', 'SAW'];
  const rows = report.clauses.map((clause) => [
    clause.id,
    clause.section.replace(/^docs\/protocol\.md/, ''),
    STATUS_LABEL[clause.status],
    clause.saw,
  ]);
  const passed = report.clauses.filter((clause) => clause.ok).length;
  const unobserved = report.clauses.filter((clause) => clause.status === 'not-observed').length;
  return [
    `gateway-check ${report.endpoint} as daemon ${report.daemon_id} (sections of docs/protocol.md)`,
    '',
    ...renderTable(header, rows),
    '',
    report.ok
      ? `all ${report.clauses.length} clauses hold`
      : `${passed} of ${report.clauses.length} clauses hold; ${report.clauses.length - passed - unobserved} failed, ${unobserved} not observed`,
  ];
}
