#!/usr/bin/env node
// The charter-daemon CLI. oclif reads the shipped oclif.manifest.json, so only the command being
// run is loaded, and only the parts of @oclif/core that running a command needs.
import { execute } from '@oclif/core/execute';
import { settings } from '@oclif/core/settings';

// Always run the compiled commands: never look for TypeScript sources beside them (oclif does so
// when NODE_ENV is "development" or "test", which is slow and would run code other than dist/).
settings.enableAutoTranspile = false;

await execute({ dir: import.meta.url });
