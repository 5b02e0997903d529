#!/usr/bin/env node
// The pchat-endpoint command line: serve, init, new, get, set, remove, check, trace, status. Exit codes in exit-codes.ts.

import { processIo } from './io.js';
import { runCli } from './program.js';

export { EXIT } from './exit-codes.js';

process.exitCode = await runCli(process.argv.slice(2), processIo());
