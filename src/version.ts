import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function findPackageVersion(): string {
  // Walk up from this file: the same code runs from src/ (tests) and dist/src/ (the installed CLI).
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === 'charter-daemon' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // no package.json here: keep walking
    }
    const parent = dirname(dir);
    if (parent === dir) return '0.0.0-unknown';
    dir = parent;
  }
}

/** The charter-daemon package version, shared by the CLI and the daemon. */
export const packageVersion: string = findPackageVersion();
