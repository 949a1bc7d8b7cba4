/**
 * With WRITE_STORE_FIXTURE=1: writes test/fixtures/store/v<N>.db for the schema version of this
 * code (once per version; committed and never rewritten). Without it, does nothing: the
 * migration tests that use the fixtures live in store-migrations.test.ts.
 */
import { existsSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../support/cli.js';
import { writeStoreFixture } from '../support/store-fixture.js';

describe.runIf(process.env.WRITE_STORE_FIXTURE === '1')('store fixture writer', () => {
  it('writes the fixture of the current schema version', () => {
    const temp = join(repoRoot, 'test', 'fixtures', 'store', 'new.db');
    rmSync(temp, { force: true });
    const version = writeStoreFixture(temp);
    const target = join(repoRoot, 'test', 'fixtures', 'store', `v${version}.db`);
    expect(existsSync(target)).toBe(false);
    renameSync(temp, target);
  });
});
