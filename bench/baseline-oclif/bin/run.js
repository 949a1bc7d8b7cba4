#!/usr/bin/env node
// Started exactly like charter-daemon's dist/src/cli/run.js.
import { execute } from '@oclif/core';

await execute({ dir: import.meta.url });
