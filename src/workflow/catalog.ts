/**
 * A cache of loaded workflows for the daemon: every run of a workflow shares one (frozen)
 * definition. Each `get` stats manifest.yml and plan.yml once and reloads only when one of them
 * changed (mtime, size or inode: an editor that replaces the file by renaming counts too).
 */
import { type Stats, statSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Workflow } from './definition.js';
import { listWorkflowIds, loadWorkflow, workflowFiles } from './load.js';

interface Stamp {
  readonly mtimeMs: number;
  readonly size: number;
  readonly ino: number;
}

interface Entry {
  readonly manifest: Stamp;
  readonly plan: Stamp;
  readonly workflow: Workflow;
}

function stamp(stats: Stats): Stamp {
  return { mtimeMs: stats.mtimeMs, size: stats.size, ino: stats.ino };
}

function sameStamp(a: Stamp, b: Stamp): boolean {
  return a.mtimeMs === b.mtimeMs && a.size === b.size && a.ino === b.ino;
}

export class WorkflowCatalog {
  readonly #projectRoot: string;
  readonly #entries = new Map<string, Entry>();

  constructor(projectRoot: string) {
    this.#projectRoot = resolve(projectRoot);
  }

  /**
   * The workflow, loaded when first asked for or when its files changed since; throws like
   * `loadWorkflow` (UNKNOWN_WORKFLOW, INVALID_WORKFLOW). Failed loads are not cached.
   */
  get(workflowId: string): Workflow {
    const files = workflowFiles(this.#projectRoot, workflowId);
    let manifest: Stamp;
    let plan: Stamp;
    try {
      manifest = stamp(statSync(files.manifestPath));
      plan = stamp(statSync(files.planPath));
    } catch {
      // Gone (or never there): loadWorkflow throws the error that says which file and lists the ids.
      this.#entries.delete(workflowId);
      return loadWorkflow(this.#projectRoot, workflowId);
    }
    const cached = this.#entries.get(workflowId);
    if (cached !== undefined && sameStamp(cached.manifest, manifest) && sameStamp(cached.plan, plan)) {
      return cached.workflow;
    }
    this.#entries.delete(workflowId);
    // Stamps taken before reading: a change during the load is seen by the next get.
    const workflow = loadWorkflow(this.#projectRoot, workflowId);
    this.#entries.set(workflowId, { manifest, plan, workflow });
    return workflow;
  }

  /** The ids of the project's workflows (valid or not), sorted. */
  list(): string[] {
    return listWorkflowIds(this.#projectRoot);
  }
}
