/**
 * Writes the JSON Schema of protocol charter.v1 (`gatewayJsonSchema()`) for the gateway's
 * implementers:
 *
 *   node dist/src/protocol/export-schema.js [path]
 *
 * Without a path it writes `docs/charter.v1.schema.json` at the repository root, found by walking
 * up from this file (the same code runs from src/ and from dist/src/). A unit test keeps the
 * committed file equal to `gatewayJsonSchema()`.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gatewayJsonSchema } from './gateway.js';

/** Where the committed schema lives, relative to the repository root. */
export const SCHEMA_RELATIVE_PATH = 'docs/charter.v1.schema.json';

/** The schema file's exact contents: what the test compares and what the script writes. */
export function schemaFileText(): string {
  return `${JSON.stringify(gatewayJsonSchema(), null, 2)}\n`;
}

/** The repository root: the nearest directory above this file that holds a package.json. */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error('export-schema: no package.json above this file');
    dir = parent;
  }
}

function main(argv: readonly string[]): void {
  const target = argv[0] === undefined ? join(repoRoot(), SCHEMA_RELATIVE_PATH) : resolve(argv[0]);
  mkdirSync(dirname(target), { recursive: true });
  writeFileSync(target, schemaFileText());
  process.stdout.write(`wrote the charter.v1 JSON Schema to ${target}\n`);
}

// Run only as a script, not when imported (e.g. by the test).
if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2));
}
