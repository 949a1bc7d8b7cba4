/**
 * `charter-daemon/client` loads the client and nothing of the daemon: the modules its built entry
 * point reaches through static and dynamic imports (as shipped, in dist/) are the client, the
 * protocol schemas, the error catalogue and the few project-path helpers, plus zod and Node's own
 * modules. A program that imports the client never pays for the daemon, its store or its machines.
 */
import { readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, repoRoot } from '../support/cli.js';

const entry = join(repoRoot, 'dist/src/client/index.js');
const IMPORT =
  /(?:^|\n)\s*(?:import|export)\s[^;]*?\sfrom\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;

/** Every module reachable from `start`: our files (relative to dist/) and bare package specifiers. */
function reachable(start: string): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const queue = [start];
  while (queue.length > 0) {
    const file = queue.pop() as string;
    const key = relative(join(repoRoot, 'dist'), file);
    if (files.has(key)) continue;
    files.add(key);
    const text = readFileSync(file, 'utf8');
    for (const match of text.matchAll(IMPORT)) {
      const specifier = match[1] ?? match[2];
      if (specifier === undefined) continue;
      if (specifier.startsWith('.')) queue.push(resolve(dirname(file), specifier));
      else packages.add(specifier);
    }
  }
  return { files, packages };
}

describe('the client entry point', () => {
  beforeAll(() => assertBuilt());

  it('reaches no daemon, store, machine or run module, and no package but zod', () => {
    const { files, packages } = reachable(entry);
    // The walk did read the client (a walk that reads nothing would pass vacuously).
    expect([...files]).toEqual(expect.arrayContaining(['src/client/index.js', 'src/client/connection.js']));
    const allowed = /^src\/(client|protocol|errors|project|control)\/[^/]+\.js$|^src\/version\.js$/;
    expect([...files].filter((file) => !allowed.test(file))).toEqual([]);
    const foreign = [...packages].filter((name) => !name.startsWith('node:') && name !== 'zod/mini');
    expect(foreign).toEqual([]);
  });
});
