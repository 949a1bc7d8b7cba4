/**
 * Writes the JSON Schemas of the daemon's two protocols, for implementers in any language:
 * charter.v1, the gateway WebSocket (`gatewayJsonSchema()`), and the control socket
 * (`controlJsonSchema()`):
 *
 *   node dist/src/protocol/export-schema.js [dir]      (npm run schema)
 *
 * Without a directory it writes both into `docs/` at the repository root, found by walking up
 * from this file (the same code runs from src/ and from dist/src/). Unit tests keep the committed
 * files equal to the generators (test/unit/protocol-schema.test.ts, control-schema.test.ts).
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { controlJsonSchema } from './control-json-schema.js';
import { gatewayJsonSchema } from './gateway.js';

/** Where the committed charter.v1 schema lives, relative to the repository root. */
export const SCHEMA_RELATIVE_PATH = 'docs/charter.v1.schema.json';
/** Where the committed control-protocol schema lives, relative to the repository root. */
export const CONTROL_SCHEMA_RELATIVE_PATH = 'docs/control.v1.schema.json';

function fileText(schema: Record<string, unknown>): string {
  return `${JSON.stringify(schema, null, 2)}\n`;
}

/** The charter.v1 schema file's exact contents: what the test compares and what the script writes. */
export function schemaFileText(): string {
  return fileText(gatewayJsonSchema());
}

/** The control-protocol schema file's exact contents. */
export function controlSchemaFileText(): string {
  return fileText(controlJsonSchema());
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

const schemaFiles = [
  { what: 'charter.v1', relativePath: SCHEMA_RELATIVE_PATH, text: schemaFileText },
  { what: 'control protocol', relativePath: CONTROL_SCHEMA_RELATIVE_PATH, text: controlSchemaFileText },
] as const;

function main(argv: readonly string[]): void {
  const dir = argv[0] === undefined ? join(repoRoot(), 'docs') : resolve(argv[0]);
  mkdirSync(dir, { recursive: true });
  for (const file of schemaFiles) {
    const target = join(dir, basename(file.relativePath));
    writeFileSync(target, file.text());
    process.stdout.write(`wrote the ${file.what} JSON Schema to ${target}\n`);
  }
}

// Run only as a script, not when imported (e.g. by the test).
if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2));
}
