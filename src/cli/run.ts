#!/usr/bin/env node
// The charter-daemon CLI. oclif reads the shipped oclif.manifest.json, so only the command being
// run is imported.
import { execute } from '@oclif/core';

await execute({ dir: import.meta.url });
